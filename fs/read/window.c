/* window.c — the contract is in window.h. */
#include "read_int.h"
#include "fmap.h"
#include "req.h"
#include "source.h"
#include "tspan.h"
#include "window.h"
#include "xfetch.h"

static void waits_over(rd_read *r);


static void cell_closed(uv_handle_t *h)
{
    rd_cell *cl = h->data;
    rd_pins_clear(&cl->pins);
    free(cl->w);
    free(cl);
}

/* Does cl hold its whole window (not a tensor's span of it)? */
static bool cell_whole(const rd_cell *cl)
{
    return cl->start == cl->idx * CELL_SIZE && cl->end == umin(cl->f->size, (cl->idx + 1) * CELL_SIZE);
}

void rd_cell_done(rd_cell *cl, int err)
{
    rd_file *f = cl->f;
    if (!err && f->done && cell_whole(cl))
        f->done[cl->idx / 8] |= (uint8_t)(1u << (cl->idx % 8));
    for (rd_cell **pp = &f->cells; *pp; pp = &(*pp)->next)
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    if (err && err != -ECANCELED)
        zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s after %d attempt(s)\n", f->id,
                cl->start, cl->end, zf_strerror(-err), cl->attempt);
    rd_read **w = cl->w;
    size_t nw = cl->nw;
    cl->w = NULL;
    cl->nw = 0;
    uv_close((uv_handle_t *)&cl->timer, cell_closed);
    for (size_t i = 0; i < nw; i++) {
        rd_read *r = w[i];
        if (err && !r->err)
            r->err = err;
        for (size_t k = 0; !err && k < cl->pins.n; k++)
            rd_pins_add(&r->pins, cl->pins.v[k]);
        if (--r->waits > 0)
            continue;
        waits_over(r);
    }
    free(w);
}

static void cell_retry_timer(uv_timer_t *t)
{
    rd_cell *cl = t->data;
    if (cl->f->c->stopping)
        rd_cell_done(cl, -ECANCELED);
    else
        rd_cell_start(cl);
}

bool rd_retryable(int err)
{
    return !(err == -ENOENT || err == -EACCES || err == -EPERM || err == -EINVAL ||
             err == -ENOMEM || err == -ECANCELED || err == -ERANGE || err == -EKEYREJECTED);
}

void rd_cell_attempt_failed(rd_cell *cl, int err)
{
    rd_ctx *c = cl->f->c;
    if (c->stopping || !rd_retryable(err) || cl->attempt >= MAX_ATTEMPTS) {
        rd_cell_done(cl, err);
        return;
    }
    uint64_t delay = 500;
    for (int i = 1; i < cl->attempt; i++)
        delay *= 3;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)now_ms();
    delay = delay / 2 + (delay / 2) * (rnd % 1000) / 1000;
    if (now_ms() - cl->t0 + delay > zf_env_ms("ZESTFS_CELL_DEADLINE_MS", DEADLINE_MS)) {
        rd_cell_done(cl, err);
        return;
    }
    zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s, trying again\n", cl->f->id,
            cl->start, cl->end, zf_strerror(-err));
    uv_timer_start(&cl->timer, cell_retry_timer, delay, 0);
}

static void learn_ahead(rd_file *f, uint64_t k);

/* The windows around a miss are learned once its first fetch has ended (not
 * alongside its own reconstruction and fetches: they would share the token's
 * wait, the connections and the CPU with the read that waits). */
static void learn_after(rd_cell *cl)
{
    if (cl->attempt == 1 && !cl->ahead_asked) {
        cl->ahead_asked = true;
        learn_ahead(cl->f, cl->idx);
    }
}

static void cell_fetches_done(rd_cell *cl)
{
    learn_after(cl);
    if (cl->err)
        rd_cell_attempt_failed(cl, cl->err);
    else
        rd_cell_done(cl, 0);
}

/* Hold the stored segments of a descriptor that needs no fetch. */
static void pin_present(rd_cell *cl, const xet_fetch *d)
{
    zc_store *s = cl->f->c->store;
    for (uint32_t ch = d->chunk_start; ch < d->chunk_end;) {
        zc_ref ref;
        int rc = zc_lookup(s, &d->xorb, ch, &ref);
        if (rc != 0 && rc != -EAGAIN)
            return;
        rd_pin *p = rd_pin_new(&ref);
        if (!p) {
            zc_unpin(&ref);
            return;
        }
        rd_pins_add(&cl->pins, p);
        rd_pin_put(p);
        ch = ref.seg_end;
    }
}

/* ---- a window as the waiter of xorb range fetches (rd_waiter_ops) ---- */

/* The fetch ended: its error is the window's, its stored run is held. */
static void cell_xf_done(void *ud, int err, rd_pin *pin)
{
    rd_cell *cl = ud;
    if (err && !cl->err)
        cl->err = err;
    if (pin)
        rd_pins_add(&cl->pins, pin);
    learn_after(cl);
    if (--cl->pending == 0)
        cell_fetches_done(cl);
}

/* Who waits for the window: its reads' kinds, and a sequential reader. */
static unsigned cell_want(const void *ud)
{
    const rd_cell *cl = ud;
    unsigned w = cl->ahead ? RD_W_AHEAD : 0;
    for (size_t i = 0; i < cl->nw; i++) {
        int k = rd_read_want(cl->w[i]);
        w |= k == RD_WANT_FG ? RD_W_FG
             : k == RD_WANT_FILL ? RD_W_FILL | RD_W_CACHED_FILL
                                 : RD_W_FILL;
    }
    return w;
}

/* The run is in memory: the FUSE reads not yet answered whose bytes all lie
 * in it are answered from it (freed once no window holds them). */
static int cell_early(void *ud, rd_xf *xf)
{
    rd_cell *cl = ud;
    for (size_t j = 0; j < cl->nw; j++) {
        rd_read *r = cl->w[j];
        if (!r->ops->early || r->expired || r->err)
            continue;
        int e = rd_xf_early(xf, cl->f, r->req, r->off, r->len);
        if (e == -ENOMEM)
            return e;
        if (e)
            continue;
        r->expired = true; /* answered: freed once no window holds it */
        rd_read_answered_early(r);
    }
    return 0;
}

static const rd_waiter_ops cell_waiter = {cell_xf_done, cell_want, cell_early};

/* Whether a term of rc holding bytes of [a, b) is fetched through d. */
static bool recon_uses(const xet_recon *rc, const xet_fetch *d, uint64_t a, uint64_t b)
{
    uint64_t pos = rc->base;
    for (size_t t = 0; t < rc->nterms; t++) {
        const xet_recon_term *tm = &rc->terms[t];
        if (tm->fetch == d && pos < b && pos + tm->unpacked_length > a)
            return true;
        pos += tm->unpacked_length;
    }
    return false;
}

/* The reconstruction of piece [a, b) of the window is in (or failed): its
 * terms become extents, its descriptors fetches.  A window asks for one
 * piece (itself) or a few (piece.h below); each holds cl->pending until its
 * answer is set up, and the window ends when the last fetch of the last
 * piece does (with the first error any had). */
static void cell_recon(rd_cell *cl, uint64_t a, uint64_t b, int err, xet_recon *rc)
{
    rd_file *f = cl->f;
    rd_ctx *c = f->c;
    if (!err && c->stopping)
        err = -ECANCELED;
    if (!err) {
        zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction in %" PRIu64 " ms\n", f->id,
                 a, b, now_ms() - cl->t0);
        /* terms -> extents; they must cover the piece */
        uint64_t pos = rc->base;
        bool changed = false;
        for (size_t i = 0; i < rc->nterms && !err; i++) {
            const xet_recon_term *t = &rc->terms[i];
            if (t->unpacked_length == 0 || t->chunk_start >= t->chunk_end ||
                pos + t->unpacked_length > f->size) {
                err = -EBADMSG;
                break;
            }
            rd_ext e = {pos, t->unpacked_length, t->xorb, t->chunk_start, t->chunk_end};
            int x = rd_ext_add(f, &e);
            if (x > 0 && c->fs->p2p) /* the repo's swarm may serve this xorb now */
                zf_p2p_repo_xorb(c->fs->p2p, zf_p2p_type_name((enum zf_repo_type)f->type),
                                 f->repo, &t->xorb);
            if (x < 0)
                err = x;
            changed |= x > 0;
            pos += t->unpacked_length;
        }
        if (!err && (rc->base > a || pos < b))
            err = -EBADMSG;
        if (changed)
            rd_map_save(f);
        if (err == -EBADMSG)
            zf_log(ZF_LOG_WARN, "zestfs: %s: reconstruction does not match the file\n", f->id);
    }
    for (size_t k = 0; !err && k < rc->nfetch; k++) {
        const xet_fetch *d = &rc->fetch[k];
        if (!recon_uses(rc, d, a, b)) /* a cell narrower than a learned window */
            continue;
        if (zc_missing(c->store, &d->xorb, d->chunk_start, d->chunk_end, NULL, 0) == 0) {
            pin_present(cl, d);
            continue;
        }
        cl->pending++; /* before: the fetch may end inside rd_xf_need */
        int e = rd_xf_need(c, f, &(rd_waiter){&cell_waiter, cl}, rc, d);
        if (e) {
            cl->pending--;
            if (!cl->err)
                cl->err = e;
        }
    }
    zn_recon_free(rc);
    if (err && !cl->err)
        cl->err = err;
    if (--cl->pending == 0)
        cell_fetches_done(cl);
}

/* A piece asked of the CAS. */
typedef struct rd_piece {
    rd_cell *cl;
    uint64_t a, b;
} rd_piece;

static void on_piece(void *ud, int err, xet_recon *rc)
{
    rd_piece *pc = ud;
    rd_cell *cl = pc->cl;
    uint64_t a = pc->a, b = pc->b;
    free(pc);
    cell_recon(cl, a, b, err, rc);
}

/* The window's whole reconstruction (learned ahead, window.c below). */
static void on_recon(void *ud, int err, xet_recon *rc)
{
    rd_cell *cl = ud;
    cell_recon(cl, cl->start, cl->end, err, rc);
}

/* Ask for the reconstruction of [a, b) of the window (cl->pending held). */
static void ask_piece(rd_cell *cl, uint64_t a, uint64_t b)
{
    rd_file *f = cl->f;
    rd_ctx *c = f->c;
    rd_piece *pc = malloc(sizeof *pc);
    int rc = -ENOMEM;
    zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction asked\n", f->id, a, b);
    c->m.recons++;
    if (pc) {
        *pc = (rd_piece){cl, a, b};
        zn_range range = {a, b - 1};
        rc = zn_cas_reconstruction(c->hub, f->type, f->repo, f->rev, f->id, &range, on_piece, pc,
                                   NULL);
        if (rc)
            free(pc);
    }
    if (rc)
        cell_recon(cl, a, b, rc, NULL);
}

/* A window nobody learned ahead asks the CAS for its reconstruction: when a
 * read waits (or it is a file's first window, where headers are), as the
 * PIECE-aligned piece holding the read's first byte and the rest, all at
 * once: that piece's xorb range is small, so the read is answered (early,
 * from the run) after one round trip and its own transfer, not the whole
 * window's; the pieces' ranges meet at a chunk that both fetch. */
#define PIECE (1ull << 20)
static void ask_window(rd_cell *cl)
{
    uint64_t at = UINT64_MAX;
    for (size_t i = 0; i < cl->nw && at == UINT64_MAX; i++)
        if (rd_read_want(cl->w[i]) == RD_WANT_FG)
            at = cl->w[i]->off > cl->start ? cl->w[i]->off : cl->start;
    if (at == UINT64_MAX && cl->idx == 0)
        at = cl->start; /* the header's piece first (a cell may start past it) */
    uint64_t a = cl->start, b = cl->end;
    if (at != UINT64_MAX && cl->end - cl->start > 2 * PIECE) {
        a = cl->start + (at - cl->start) / PIECE * PIECE;
        b = umin(cl->end, a + PIECE);
    }
    uint64_t cuts[4] = {cl->start, a, b, cl->end};
    cl->pending = 0;
    for (int i = 0; i < 3; i++)
        cl->pending += cuts[i] < cuts[i + 1];
    /* the read's piece first */
    ask_piece(cl, a, b);
    if (cl->start < a)
        ask_piece(cl, cl->start, a);
    if (b < cl->end)
        ask_piece(cl, b, cl->end);
}

/* ---- window reconstructions learned ahead of their misses ----
 *
 * A miss asks the CAS for its window's reconstruction and then fetches the
 * xorb ranges it names: two round trips.  The byte offsets of the chunks
 * inside a term are known only from a reconstruction asked for a range
 * (spec/xet.md 5.3: terms trimmed at chunk granularity), so one whole-file
 * reconstruction cannot cut a 64 MiB term into the ranges a window needs:
 * the reconstructions of the windows around a miss are asked ahead instead
 * (LEARN_INFLIGHT at a time, nearest first: after, before, after ...) and
 * kept until used, so the next miss in them is one round trip (the xorb
 * range).  A window that finds its reconstruction being asked waits for that
 * answer.  A learned one is used only on a window's first attempt and while
 * its URLs are fresh (their Expires, less a margin: a quarter of their life,
 * at most 30 s); stale ones are dropped and asked again at the file's next
 * miss; a failed fetch retries from a fresh reconstruction as before.
 * Bounds: LEARN_PER_FILE per file (windows within twice that of the miss,
 * those farther dropped to make room), LEARN_MAX and LEARN_BYTES in all
 * (oldest dropped first).  Windows the map already covers (stored by an
 * earlier mount, most likely) and windows done are not asked. */

enum { L_QUEUED, L_ASKING, L_READY };

struct rd_learn {
    rd_learn *next;            /* f->learn */
    rd_learn *qnext;           /* c->lq, while queued */
    rd_learn *older, *newer;   /* c->lru_*, while learned */
    rd_file *f;
    uint64_t idx;
    int state;
    xet_recon *rc;             /* learned */
    int64_t exp, got;          /* Unix s: its URLs' earliest Expires (0: none), when learned */
    uint64_t bytes;            /* what it holds, roughly */
    rd_cell *cell;             /* a window waiting for the answer */
};

static void on_recon(void *ud, int err, xet_recon *rc);

static int64_t url_expires(const char *url)
{
    for (const char *p = url ? strchr(url, '?') : NULL; p; p = strchr(p + 1, '&'))
        if (!strncmp(p + 1, "Expires=", 8))
            return strtoll(p + 9, NULL, 10);
    return 0;
}

static uint64_t recon_bytes(const xet_recon *rc)
{
    uint64_t b = sizeof *rc + rc->nterms * sizeof *rc->terms + rc->nfetch * sizeof *rc->fetch;
    for (size_t i = 0; i < rc->nfetch; i++)
        b += rc->fetch[i].url ? strlen(rc->fetch[i].url) + 1 : 0;
    return b;
}

/* Whether a learned window's reconstruction fetches about [a, b) only:
 * the xorb bytes of the ranges its terms over [a, b) use, at most 1.2
 * times the span plus a chunk each side (terms end on chunk boundaries). */
static bool learn_cheap(const xet_recon *rc, uint64_t a, uint64_t b)
{
    uint64_t cost = 0;
    for (size_t k = 0; k < rc->nfetch; k++)
        if (recon_uses(rc, &rc->fetch[k], a, b))
            cost += rc->fetch[k].byte_end - rc->fetch[k].byte_start + 1;
    return cost <= (b - a) + (b - a) / 5 + (256u << 10);
}

static bool learn_fresh(const rd_learn *e)
{
    int64_t now = (int64_t)time(NULL);
    if (!e->exp)
        return now - e->got < LEARN_TTL_S;
    int64_t margin = (e->exp - e->got) / 4;
    if (margin > 30)
        margin = 30;
    return now + margin < e->exp;
}

static void learn_unlink(rd_learn *e)
{
    rd_file *f = e->f;
    rd_ctx *c = f->c;
    for (rd_learn **pp = &f->learn; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    f->nlearn--;
    c->nlearn--;
    if (e->state == L_QUEUED) {
        for (rd_learn **pp = &c->lq; *pp; pp = &(*pp)->qnext)
            if (*pp == e) {
                *pp = e->qnext;
                if (c->lqtail == &e->qnext)
                    c->lqtail = pp;
                break;
            }
    } else if (e->state == L_READY) {
        if (e->older)
            e->older->newer = e->newer;
        else
            c->lru_old = e->newer;
        if (e->newer)
            e->newer->older = e->older;
        else
            c->lru_new = e->older;
        c->learn_bytes -= e->bytes;
    }
}

static void learn_drop(rd_learn *e)
{
    learn_unlink(e);
    zn_recon_free(e->rc);
    free(e);
}

static rd_learn *learn_find(const rd_file *f, uint64_t idx)
{
    for (rd_learn *e = f->learn; e; e = e->next)
        if (e->idx == idx)
            return e;
    return NULL;
}

static void learn_done(void *ud, int err, xet_recon *rc);

static void learn_pump(rd_ctx *c)
{
    while (c->lq && c->learn_asking < LEARN_INFLIGHT && !c->stopping && c->hub) {
        rd_learn *e = c->lq;
        if (!(c->lq = e->qnext))
            c->lqtail = &c->lq;
        e->state = L_ASKING;
        rd_file *f = e->f;
        uint64_t start = e->idx * CELL_SIZE, end = umin(f->size, start + CELL_SIZE);
        zn_range range = {start, end - 1};
        c->learn_asking++;
        c->m.recons++;
        zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction asked ahead\n", f->id,
                 start, end);
        int rc = zn_cas_reconstruction(c->hub, f->type, f->repo, f->rev, f->id, &range, learn_done,
                                       e, NULL);
        if (rc) {
            c->learn_asking--;
            learn_drop(e);
            break;
        }
    }
}

/* The oldest learned ones go while over the bounds. */
static void learn_trim(rd_ctx *c, unsigned room)
{
    while (c->lru_old && (c->nlearn + room > LEARN_MAX || c->learn_bytes > LEARN_BYTES))
        learn_drop(c->lru_old);
}

static void learn_done(void *ud, int err, xet_recon *rc)
{
    rd_learn *e = ud;
    rd_file *f = e->f;
    rd_ctx *c = f->c;
    c->learn_asking--;
    rd_cell *cl = e->cell;
    if (cl || err || c->stopping) {
        learn_unlink(e);
        free(e);
        if (cl) { /* a window waits for it: on with the answer (or the failure) */
            c->m.recons_learned++;
            on_recon(cl, err, rc);
        } else
            zn_recon_free(rc);
    } else {
        e->rc = rc;
        e->state = L_READY;
        e->got = (int64_t)time(NULL);
        e->exp = 0;
        for (size_t i = 0; i < rc->nfetch; i++) {
            int64_t x = url_expires(rc->fetch[i].url);
            if (x && (!e->exp || x < e->exp))
                e->exp = x;
        }
        e->bytes = recon_bytes(rc);
        zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction learned, URLs until %lld\n",
                 f->id, (uint64_t)(e->idx * CELL_SIZE), umin(f->size, (e->idx + 1) * CELL_SIZE),
                 (long long)e->exp);
        e->older = c->lru_new;
        e->newer = NULL;
        if (c->lru_new)
            c->lru_new->newer = e;
        else
            c->lru_old = e;
        c->lru_new = e;
        c->learn_bytes += e->bytes;
        learn_trim(c, 0);
    }
    learn_pump(c);
}

/* Ask ahead for the reconstructions of the windows around window k of f. */
static void learn_ahead(rd_file *f, uint64_t k)
{
    rd_ctx *c = f->c;
    if (!f->xet || f->big || c->stopping || !c->hub)
        return;
    uint64_t nwin = (f->size + CELL_SIZE - 1) / CELL_SIZE;
    if (nwin <= 1)
        return;
    for (rd_learn *e = f->learn, *nx; e; e = nx) { /* stale, or far when the file is full */
        nx = e->next;
        uint64_t dist = e->idx > k ? e->idx - k : k - e->idx;
        bool stale = e->state == L_READY && !learn_fresh(e);
        if (stale)
            zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): learned reconstruction stale: asked "
                     "again\n", f->id, (uint64_t)(e->idx * CELL_SIZE), umin(f->size, (e->idx + 1) * CELL_SIZE));
        if (stale || (e->state == L_READY && f->nlearn >= LEARN_PER_FILE && dist > LEARN_PER_FILE / 2))
            learn_drop(e);
    }
    for (uint64_t d = 1; d <= 2 * LEARN_PER_FILE && f->nlearn < LEARN_PER_FILE; d++) {
        if (d > k && k + d >= nwin)
            break;
        for (int side = 0; side < 2 && f->nlearn < LEARN_PER_FILE; side++) {
            if (side ? d > k : k + d >= nwin)
                continue;
            uint64_t j = side ? k - d : k + d;
            uint64_t start = j * CELL_SIZE, end = umin(f->size, start + CELL_SIZE);
            if ((f->done && f->done[j / 8] & (1u << (j % 8))) || rd_cell_find(f, j) ||
                learn_find(f, j) || rd_ext_uncovered(f, start, end) == end)
                continue;
            learn_trim(c, 1);
            if (c->nlearn >= LEARN_MAX)
                goto out;
            rd_learn *e = calloc(1, sizeof *e);
            if (!e)
                goto out;
            e->f = f;
            e->idx = j;
            e->state = L_QUEUED;
            e->next = f->learn;
            f->learn = e;
            f->nlearn++;
            c->nlearn++;
            *c->lqtail = e;
            c->lqtail = &e->qnext;
        }
    }
out:
    learn_pump(c);
}

void rd_learn_free(rd_file *f)
{
    while (f->learn)
        learn_drop(f->learn);
}

void rd_cell_start(rd_cell *cl)
{
    rd_file *f = cl->f;
    rd_ctx *c = f->c;
    cl->attempt++;
    cl->err = 0;
    if (f->big) {
        c->big_window(cl);
        return;
    }
    if (cl->attempt == 1) { /* a retry asks afresh */
        rd_learn *e = learn_find(f, cl->idx);
        if (e && !cell_whole(cl) && (e->state != L_READY || !learn_cheap(e->rc, cl->start, cl->end))) {
            /* a cell narrower than its window (a tensor's span, prefetch.h):
             * the learned window would fetch far more than it needs, and the
             * CAS trims a reconstruction asked for its bytes; the learned
             * one stays for the window's other cells */
            ask_window(cl);
            return;
        }
        if (e && e->state == L_ASKING && !e->cell) { /* being asked: wait for it */
            e->cell = cl;
            cl->pending = 1;
            zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction being learned: "
                     "waits for it\n", f->id, cl->start, cl->end);
            cl->ahead_asked = true;
            learn_ahead(f, cl->idx);
            return;
        }
        if (e && e->state == L_READY && learn_fresh(e)) {
            xet_recon *rc = e->rc;
            e->rc = NULL;
            learn_drop(e);
            c->m.recons_learned++;
            cl->ahead_asked = true;
            zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction learned ahead\n",
                     f->id, cl->start, cl->end);
            learn_ahead(f, cl->idx);
            cl->pending = 1;
            on_recon(cl, 0, rc);
            return;
        }
        if (e && e->state != L_ASKING)
            learn_drop(e);
    }
    ask_window(cl); /* the windows around are learned once its first fetch ends */
}

rd_cell *rd_cell_find(rd_file *f, uint64_t k)
{
    for (rd_cell *x = f->cells; x; x = x->next)
        if (x->idx == k)
            return x;
    return NULL;
}

/* The cell of window k holding byte pos, if any (cells of a tensor file may
 * hold less than their window: rd_fetch_cells, prefetch.h). */
rd_cell *rd_cell_at(rd_file *f, uint64_t k, uint64_t pos)
{
    for (rd_cell *x = f->cells; x; x = x->next)
        if (x->idx == k && x->start <= pos && pos < x->end)
            return x;
    return NULL;
}

/* Cut [*lo, *hi), around a byte pos no cell of window k holds, to the
 * bytes no cell of it holds. */
void rd_cell_gap(rd_file *f, uint64_t k, uint64_t pos, uint64_t *lo, uint64_t *hi)
{
    for (rd_cell *x = f->cells; x; x = x->next) {
        if (x->idx != k)
            continue;
        if (x->end <= pos && x->end > *lo)
            *lo = x->end;
        if (x->start > pos && x->start < *hi)
            *hi = x->start;
    }
}

rd_cell *rd_cell_new(rd_file *f, uint64_t k)
{
    rd_cell *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->f = f;
    cl->idx = k;
    cl->start = k * CELL_SIZE;
    cl->end = umin(f->size, (k + 1) * CELL_SIZE);
    cl->t0 = now_ms();
    uv_timer_init(f->c->loop, &cl->timer);
    cl->timer.data = cl;
    cl->next = f->cells;
    f->cells = cl;
    return cl;
}

/* A read (FUSE or HTTP) still waiting for fetches at its deadline is
 * answered EIO then; the cells it waits on go on (other reads may want
 * them) and it is freed when the last lets go of it.  Loop thread. */
static void read_deadline(uv_timer_t *t)
{
    rd_read *r = t->data;
    if (r->waits <= 0 || r->expired)
        return;
    r->expired = true;
    zf_log(ZF_LOG_WARN, "zestfs: %s/%s [%" PRIu64 ", +%" PRIu64 "): no bytes after %.0f s: EIO\n",
           r->f->repo ? r->f->repo : "?", r->f->path ? r->f->path : "?", r->off, r->len,
           (double)(uv_hrtime() - r->t0) / 1e9);
    r->ops->answer(r, -EIO, NULL, 0); /* freed once no cell holds it */
}

static uint64_t read_deadline_ms(void)
{
    static uint64_t ms;
    if (!ms) {
        const char *e = getenv("ZESTFS_READ_DEADLINE");
        ms = e && atol(e) > 0 ? (uint64_t)atol(e) * 1000 : READ_DEADLINE_MS;
    }
    return ms;
}

/* Start (or keep) the deadline of a read that waits, if its kind has one. */
static void deadline_arm(rd_read *r)
{
    if (!r->ops->deadline || !r->t0 || r->expired || (r->deadline && uv_is_active((uv_handle_t *)r->deadline)))
        return;
    if (!r->deadline) {
        if (!(r->deadline = malloc(sizeof *r->deadline)))
            return;
        uv_timer_init(r->c->loop, r->deadline);
        r->deadline->data = r;
    }
    uint64_t age = (uv_hrtime() - r->t0) / 1000000, dl = read_deadline_ms();
    uv_timer_start(r->deadline, read_deadline, age < dl ? dl - age : 0, 0);
}

/* The last cell a read waited on is done: on with it (or free it, when its
 * deadline already answered it). */
static void waits_over(rd_read *r)
{
    if (r->deadline)
        uv_timer_stop(r->deadline);
    if (r->expired) {
        rd_read_free(r);
        return;
    }
    if (r->err)
        rd_read_fail(r, r->err);
    else
        r->c->resume(r);
}

/* A span narrower than its window, widened (within the window) to whole
 * extents of the file's map: the store reads an extent's bytes from its
 * first chunk on, so a fetch of a few chunks in the middle of an extent
 * mapped earlier (a window's reconstruction, then evicted) would leave the
 * bytes unreadable: its reconstruction maps an extent contained in the
 * known one, which the map keeps (fs-passthrough: "still missing after 4
 * fetches", EIO, SIGBUS under mmap, after `zestfs evict`). */
static void span_whole_extents(rd_file *f, uint64_t k, uint64_t *lo, uint64_t *hi)
{
    uint64_t ws = k * CELL_SIZE, we = umin(f->size, ws + CELL_SIZE);
    long i = *lo > ws ? rd_ext_floor(f, *lo) : -1;
    if (i >= 0 && f->ext[i].off < *lo && f->ext[i].off + f->ext[i].len > *lo)
        *lo = f->ext[i].off > ws ? f->ext[i].off : ws;
    i = *hi < we ? rd_ext_floor(f, *hi - 1) : -1;
    if (i >= 0 && f->ext[i].off < *hi && f->ext[i].off + f->ext[i].len > *hi)
        *hi = umin(f->ext[i].off + f->ext[i].len, we);
}

/* The read waits for every cell holding a byte of [from, end). */
void rd_fetch_cells(rd_read *r, uint64_t from)
{
    rd_file *f = r->f;
    rd_ctx *c = f->c;
    if (!r->ops->bg && !r->ops->nofetch)
        zf_debug("zestfs: read %s/%s [%" PRIu64 ", +%" PRIu64 ") waits for a fetch from %" PRIu64 "\n",
                 f->repo ? f->repo : "?", f->path ? f->path : "?", r->off, r->len, from);
    if (r->ops->nofetch) {
        rd_read_fail(r, -ENOENT);
        return;
    }
    if (rd_read_from_runs(r))
        return;
    if (!c->hub || c->stopping) {
        rd_read_fail(r, -ENETDOWN);
        return;
    }
    if (++r->rounds > MAX_ROUNDS) {
        zf_log(ZF_LOG_WARN, "zestfs: %s at %" PRIu64 ": still missing after %d fetches\n", f->id,
                from, MAX_ROUNDS);
        rd_read_fail(r, -EIO);
        return;
    }
    uint64_t end = r->off + r->len;
    r->waits = 1;
    r->err = 0;
    for (uint64_t pos = from; pos < end;) { /* the cells holding [pos, end), in order */
        uint64_t k = pos / CELL_SIZE;
        rd_cell *cl = rd_cell_at(f, k, pos);
        bool fresh = false;
        if (!cl) {
            uint64_t lo = k * CELL_SIZE, hi = umin(f->size, lo + CELL_SIZE);
            if (r->ops->seq && f->tmap) /* a reader's miss: its tensor, no wider (tspan.h) */
                rd_miss_span(f, r->off, pos, end, &lo, &hi);
            span_whole_extents(f, k, &lo, &hi);
            rd_cell_gap(f, k, pos, &lo, &hi);
            if (!(cl = rd_cell_new(f, k))) {
                r->err = -ENOMEM;
                break;
            }
            cl->start = lo;
            cl->end = hi;
            fresh = true;
        }
        if (push_ptr((void ***)&cl->w, &cl->nw, &cl->cw, r)) {
            r->err = -ENOMEM;
            if (fresh)
                rd_cell_done(cl, -ENOMEM);
            break;
        }
        r->waits++;
        if (fresh)
            rd_cell_start(cl);
        pos = cl->end;
    }
    if (--r->waits == 0) {
        waits_over(r);
    } else {
        deadline_arm(r);
        if (!r->ops->bg)
            rd_net_prio(c); /* it may have joined a held transfer */
    }
}
