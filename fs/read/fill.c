/* fill.c — the contract is in fill.h. */
#include "read_int.h"
#include "file.h"
#include "fill.h"
#include "req.h"
#include "route.h"
#include "window.h"

static void fill_kick(rd_ctx *c);

/* A fill walks its byte ranges window by window (a piece never crosses an
 * 8 MiB window), as background reads that stop once the bytes are stored.
 * All fills share BG_WINDOWS pieces in flight, handed out round-robin;
 * their cells' xorb fetches queue behind any a FUSE read waits on. */
#define BG_WINDOWS 6

struct zf_fill {
    zf_fill *next;             /* c->fills, then c->fills_done */
    rd_ctx *c;
    rd_file *f;
    uint64_t *rg;              /* [start, end) pairs */
    size_t nrg, ri;
    uint64_t pos;              /* next byte of rg[ri] to hand out */
    uint64_t total, done;
    int inflight;
    int err;
    bool cancelled, finished;
    /* pieces that failed with a transient error, handed out again first once
     * their backoff is over; the fill fails only when one piece has failed
     * FILL_STALL times with no piece of the fill stored in between (a slow
     * shared link makes progress, just slowly: a pull must not give up) */
    struct fill_retry { uint64_t off, len, not_before, epoch; int tries; } *retry;
    size_t nretry, retry_cap;
    uint64_t nok;              /* pieces stored so far (progress) */
    bool nocache;              /* zf_fill_nocache: a pull */
    zf_fill_cb cb;
    void *ud;
};


void zf_fill_nocache(zf_fill *fl)
{
    fl->nocache = true;
}

#define FILL_STALL 6


/* Everything that hands out pieces or ends fills runs from this zero-delay
 * timer, never nested in a caller or in a completion. */
static void fill_kick(rd_ctx *c)
{
    if (c->stopping)
        c->fill_timer_cb(&c->fill_timer); /* the timer is closed: end them now */
    else if (!uv_is_active((uv_handle_t *)&c->fill_timer) ||
             uv_timer_get_due_in(&c->fill_timer) > 0) /* a retry wait: now instead */
        uv_timer_start(&c->fill_timer, c->fill_timer_cb, 0, 0);
}

static bool fill_exhausted(const zf_fill *fl)
{
    return (fl->ri >= fl->nrg && !fl->nretry) || fl->err || fl->cancelled;
}

/* Worth another try later: the network or a peer failed, not the request. */
static bool fill_retryable(const zf_fill *fl, int err)
{
    return rd_retryable(err) && err != -ENETDOWN && err != -ENOSPC && err != -EBADMSG &&
           !fl->c->stopping && fl->c->http;
}

static int fill_retry_add(zf_fill *fl, uint64_t off, uint64_t len, int tries)
{
    if (fl->nretry == fl->retry_cap) {
        size_t nc = fl->retry_cap ? fl->retry_cap * 2 : 8;
        struct fill_retry *nr = realloc(fl->retry, nc * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        fl->retry = nr;
        fl->retry_cap = nc;
    }
    /* 1 s, 2 s, .. 16 s (ZESTFS_FILL_RETRY_MS: the first) */
    uint64_t delay = zf_env_ms("ZESTFS_FILL_RETRY_MS", 1000) << (tries > 5 ? 4 : tries - 1);
    fl->retry[fl->nretry++] = (struct fill_retry){off, len, now_ms() + delay, fl->nok, tries};
    return 0;
}

/* Finished: off c->fills, onto c->fills_done (its callback comes from the timer). */
static void fill_maybe_finish(zf_fill *fl)
{
    rd_ctx *c = fl->c;
    if (fl->inflight || !fill_exhausted(fl) || fl->finished)
        return;
    fl->finished = true;
    for (zf_fill **pp = &c->fills; *pp; pp = &(*pp)->next)
        if (*pp == fl) {
            *pp = fl->next;
            break;
        }
    fl->next = c->fills_done;
    c->fills_done = fl;
    fill_kick(c);
}

/* ---- a piece: a request of kind "fill" (req.h) ---- */

typedef struct fill_read {
    rd_read r;
    zf_fill *fl;
    int tries;                 /* handed out again: its failures so far */
    uint64_t epoch;            /* ... and the fill's progress (nok) at the last one */
} fill_read;

/* The piece is stored (or failed): the fill goes on (the request is freed after). */
static void piece_answer(rd_read *r, int err, const uint8_t *data, size_t dlen)
{
    (void)data;
    (void)dlen;
    fill_read *p = (fill_read *)r;
    zf_fill *fl = p->fl;
    rd_ctx *c = r->c;
    uint64_t off = r->off, len = r->len;
    /* failures of this piece in a row, with no progress of the fill between */
    int tries = p->tries && p->epoch == fl->nok ? p->tries + 1 : 1;
    c->bg_reads--;
    fl->inflight--;
    if (err) {
        if (!fl->err && !fl->cancelled) {
            if (fill_retryable(fl, err) && tries < FILL_STALL &&
                fill_retry_add(fl, off, len, tries) == 0)
                zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s; the fill tries "
                       "it again\n", fl->f->path, off, off + len, zf_strerror(-err));
            else
                fl->err = err;
        }
    } else {
        fl->nok++;
        fl->done += len;
        if (!fl->cancelled && !fl->err)
            fl->cb(fl->ud, fl, fl->done, fl->total, false, 0);
    }
    fill_maybe_finish(fl);
    fill_kick(c);
}

static int piece_want(const rd_read *r)
{
    return ((const fill_read *)r)->fl->nocache ? RD_WANT_PULL : RD_WANT_FILL;
}

static const rd_ops piece_ops = {
    .name = "fill", .store = RD_STORE_WALK, .stored_enough = true, .bg = true,
    .want = piece_want, .answer = piece_answer,
};

/* Start a background read of [off, off + len) for fl. */
static bool fill_piece(zf_fill *fl, uint64_t off, uint64_t len, int tries, uint64_t epoch)
{
    fill_read *p = (fill_read *)rd_read_new(sizeof *p, &piece_ops, fl->c, fl->f, off, len);
    if (!p) {
        fl->err = -ENOMEM;
        return false;
    }
    p->fl = fl;
    p->tries = tries;
    p->epoch = epoch;
    fl->inflight++;
    fl->c->bg_reads++;
    rd_read_go(&p->r);
    return true;
}

/* Hand out the next piece of fl (a retry that is due first): false when it
 * has none left. */
static bool fill_next(zf_fill *fl)
{
    if (fill_exhausted(fl))
        return false;
    uint64_t now = now_ms();
    for (size_t i = 0; i < fl->nretry; i++)
        if (fl->retry[i].not_before <= now) {
            struct fill_retry rt = fl->retry[i];
            fl->retry[i] = fl->retry[--fl->nretry];
            return fill_piece(fl, rt.off, rt.len, rt.tries, rt.epoch);
        }
    if (fl->ri >= fl->nrg)
        return false; /* only retries left, not due yet */
    uint64_t end = fl->rg[2 * fl->ri + 1];
    uint64_t off = fl->pos, pend = umin(end, (off / CELL_SIZE + 1) * CELL_SIZE);
    fl->pos = pend;
    if (fl->pos >= end && ++fl->ri < fl->nrg)
        fl->pos = fl->rg[2 * fl->ri];
    return fill_piece(fl, off, pend - off, 0, 0);
}

void rd_fill_timer_cb(uv_timer_t *t)
{
    rd_ctx *c = t->data;
    /* rounds: each fill with pieces left gets one, while slots are free */
    bool any = true;
    while (any && c->bg_reads < BG_WINDOWS && !c->stopping) {
        any = false;
        for (zf_fill *fl = c->fills; fl && c->bg_reads < BG_WINDOWS; fl = fl->next)
            any |= fill_next(fl);
    }
    uint64_t due = UINT64_MAX;
    for (zf_fill *fl = c->fills, *nx; fl; fl = nx) {
        nx = fl->next;
        for (size_t i = 0; !fill_exhausted(fl) && i < fl->nretry; i++)
            due = umin(due, fl->retry[i].not_before);
        fill_maybe_finish(fl);
    }
    while (c->fills_done) {
        zf_fill *fl = c->fills_done;
        c->fills_done = fl->next;
        int err = fl->err ? fl->err : fl->cancelled ? -ECANCELED : 0;
        fl->cb(fl->ud, fl, fl->done, fl->total, true, err);
        free(fl->retry);
        free(fl->rg);
        free(fl);
    }
    /* wake up for the first retry not due yet; one due now waits for a free
     * slot, and every piece that ends kicks the timer */
    uint64_t now = now_ms();
    if (due != UINT64_MAX && due > now && !c->stopping)
        uv_timer_start(&c->fill_timer, c->fill_timer_cb, due - now, 0);
}

int rd_fill_start_file(rd_file *f, const uint64_t *ranges, size_t nranges, zf_fill_cb cb,
                           void *ud, zf_fill **out)
{
    rd_ctx *c = f->c;
    if (c->stopping)
        return -ESHUTDOWN;
    zf_fill *fl = calloc(1, sizeof *fl);
    if (!fl)
        return -ENOMEM;
    uint64_t whole[2] = {0, f->size};
    if (!ranges || !f->xet) { /* non-Xet files come whole anyway */
        ranges = whole;
        nranges = 1;
    }
    fl->rg = malloc(nranges * 2 * sizeof *fl->rg + 1);
    if (!fl->rg) {
        free(fl);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nranges; i++) {
        uint64_t st = ranges[2 * i], en = umin(ranges[2 * i + 1], f->size);
        if (st >= en)
            continue;
        fl->rg[2 * fl->nrg] = st;
        fl->rg[2 * fl->nrg + 1] = en;
        fl->nrg++;
        fl->total += en - st;
    }
    fl->c = c;
    fl->f = f;
    fl->pos = fl->nrg ? fl->rg[0] : 0;
    fl->cb = cb;
    fl->ud = ud;
    fl->next = c->fills;
    c->fills = fl;
    if (out)
        *out = fl;
    fill_kick(c);
    return 0;
}

int zf_fill_start(zf_fs *fs, const zv_ent *e, const uint64_t *ranges, size_t nranges,
                  zf_fill_cb cb, void *ud, zf_fill **out)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb)
        return -EINVAL;
    rd_file *f = rd_file_get(c, e);
    if (!f)
        return -ENOMEM;
    return rd_fill_start_file(f, ranges, nranges, cb, ud, out);
}

void zf_fill_cancel(zf_fill *fl)
{
    if (!fl || fl->finished)
        return;
    fl->cancelled = true;
    fill_maybe_finish(fl);
}

/* zf_read_stop: every fill is cancelled; those with nothing in flight end
 * now, the others as their pieces end. */
void rd_fill_stop(rd_ctx *c)
{
    for (zf_fill *fl = c->fills; fl; fl = fl->next)
        fl->cancelled = true;
    fill_kick(c);
}
