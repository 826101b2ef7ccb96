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

void rd_cell_done(rd_cell *cl, int err)
{
    rd_file *f = cl->f;
    if (!err && f->done && cl->start == cl->idx * CELL_SIZE &&
        cl->end == umin(f->size, (cl->idx + 1) * CELL_SIZE)) /* a whole window */
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
    if (now_ms() - cl->t0 + delay > env_ms("ZESTFS_CELL_DEADLINE_MS", DEADLINE_MS)) {
        rd_cell_done(cl, err);
        return;
    }
    zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s, trying again\n", cl->f->id,
            cl->start, cl->end, zf_strerror(-err));
    uv_timer_start(&cl->timer, cell_retry_timer, delay, 0);
}

static void cell_fetches_done(rd_cell *cl)
{
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

static void on_recon(void *ud, int err, xet_recon *rc)
{
    rd_cell *cl = ud;
    rd_file *f = cl->f;
    rd_ctx *c = f->c;
    if (!err && c->stopping)
        err = -ECANCELED;
    if (err) {
        zn_recon_free(rc);
        rd_cell_attempt_failed(cl, err);
        return;
    }
    zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction in %" PRIu64 " ms\n", f->id,
             cl->start, cl->end, now_ms() - cl->t0);
    /* terms -> extents; they must cover the cell */
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
        int a = rd_ext_add(f, &e);
        if (a > 0 && c->fs->p2p) /* the repo's swarm may serve this xorb now */
            zf_p2p_repo_xorb(c->fs->p2p, zf_p2p_type_name((enum zf_repo_type)f->type), f->repo,
                             &t->xorb);
        if (a < 0)
            err = a;
        changed |= a > 0;
        pos += t->unpacked_length;
    }
    if (!err && (rc->base > cl->start || pos < cl->end))
        err = -EBADMSG;
    if (changed)
        rd_map_save(f);
    if (err) {
        zf_log(ZF_LOG_WARN, "zestfs: %s: reconstruction does not match the file\n", f->id);
        zn_recon_free(rc);
        rd_cell_attempt_failed(cl, err);
        return;
    }
    cl->err = 0;
    cl->pending = 1; /* held while descriptors are set up */
    for (size_t k = 0; k < rc->nfetch; k++) {
        const xet_fetch *d = &rc->fetch[k];
        bool used = false;
        for (size_t t = 0; t < rc->nterms && !used; t++)
            used = rc->terms[t].fetch == d;
        if (!used)
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
    if (--cl->pending == 0)
        cell_fetches_done(cl);
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
    zn_range range = {cl->start, cl->end - 1};
    int rc = zn_cas_reconstruction(c->hub, f->type, f->repo, f->rev, f->id, &range, on_recon, cl,
                                   NULL);
    if (rc)
        rd_cell_attempt_failed(cl, rc);
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
