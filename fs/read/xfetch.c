/* xfetch.c — the contract is in xfetch.h. */
#include "read_int.h"
#include "fmap.h"
#include "req.h"
#include "source.h"
#include "xfetch.h"

static int check_terms(const rd_xf *xf, const rd_check *chk, size_t n, const uint32_t *lens);
static void xf_decode_start(rd_xf *xf);
static void xf_peer_work(uv_work_t *w);
static void queue_put(rd_xf *xf, uv_work_cb work);
static void early_collect(rd_xf *xf);

static void xf_decoded(rd_xf *xf, int err);

/* The run is in and checked: its bytes count for their source now, before
 * the reads answered from it return (a status asked after them sees them). */
static void count_src(rd_xf *xf)
{
    xf->c->m.bytes_by_src[xf->src] += xf->src == ZF_SRC_PEER ? xf->got : xf->bytes;
}

void rd_xf_finish(rd_xf *xf, int err)
{
    rd_ctx *c = xf->c;
    if (xf->finished)
        return;
    xf->finished = true;
    for (rd_xf **pp = &c->xfs; *pp; pp = &(*pp)->next)
        if (*pp == xf) {
            *pp = xf->next;
            break;
        }
    const rd_file *f = xf->f;
    const char *ftype = f ? zf_p2p_type_name((enum zf_repo_type)f->type) : NULL;
    if (xf->started) {
        c->xf_bytes -= xf->bytes;
        c->m.fetches_inflight--;
        if (!err) {
            bool peer = xf->src == ZF_SRC_PEER;
            double ms = (double)(uv_hrtime() - xf->t0) / 1e6;
            zf_hist_add(&c->m.fetch_ms[xf->src], ms);
            if (zf_log_level >= ZF_LOG_DEBUG) {
                char xs[65];
                xet_hash_to_string(&xf->xorb, xs);
                zf_debug("zestfs: fetched xorb %.16s chunks [%u, %u) from the %s: %" PRIu64
                         " bytes in %.1f ms%s\n",
                         xs, xf->cs, xf->ce, peer ? "peers" : "CDN", peer ? xf->got : xf->bytes, ms,
                         xf->raced ? (xf->cdn_won ? " (raced: the CDN won)" : " (raced: peers won)")
                                   : "");
            }
            if (c->fs->p2p && !c->stopping) /* tell peers, in the swarm of the repo read */
                zf_p2p_stored(c->fs->p2p, ftype, f ? f->repo : NULL, &xf->xorb, xf->cs, xf->ce);
        }
        if (err == -EBADMSG || err == -EILSEQ || err == -EPROTO)
            c->m.verify_failures++;
    }
    if (xf->pend_on && c->fs->p2p) /* after HAVE: peers waiting on us ask us now */
        zf_p2p_cdn_fetching(c->fs->p2p, ftype, f ? f->repo : NULL, &xf->xorb, xf->cs, xf->ce,
                            false);
    xf->pend_on = false;
    if (err && err != -ECANCELED) {
        char xs[65];
        xet_hash_to_string(&xf->xorb, xs);
        zf_log(ZF_LOG_WARN, "zestfs: xorb %s chunks [%u, %u): %s\n", xs, xf->cs, xf->ce,
                zf_strerror(-err));
    }
    rd_pin *pin = !err && xf->pin.seg ? rd_pin_new(&xf->pin) : NULL;
    if (!pin)
        zc_unpin(&xf->pin);
    for (size_t i = 0; i < xf->nw; i++) /* the waiters: each takes a reference */
        xf->w[i].ops->done(xf->w[i].ud, err, pin);
    if (pin)
        rd_pin_put(pin);
    /* a loser still running is told to stop; its callback frees us */
    if (xf->creq)
        zn_req_cancel(xf->creq);
    if (xf->pop)
        zn_peer_op_cancel(xf->pop);
    if (!xf->nops)
        rd_xf_free(xf);
    rd_xf_pump(c);
    rd_net_prio(c);
}

static int check_terms(const rd_xf *xf, const rd_check *chk, size_t n, const uint32_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        if (chk[i].cs < xf->cs || chk[i].ce > xf->ce || chk[i].cs >= chk[i].ce)
            return -EBADMSG;
        uint64_t sum = 0;
        for (uint32_t k = chk[i].cs; k < chk[i].ce; k++)
            sum += lens[k - xf->cs];
        if (sum != chk[i].ulen)
            return -EILSEQ;
    }
    return 0;
}

/* A CDN body is decoded by up to DEC_PARTS pool jobs at once, each a run of
 * its records (split by compressed bytes): the first read of a mount waits
 * for one body's decode, and the pool has a thread per core. */
#define DEC_PARTS 2
#define DEC_SPLIT (2u << 20) /* bodies under this are one job */

typedef struct dec_part {
    uv_work_t work;
    rd_xf *xf;
    long r0, r1;    /* records [r0, r1) */
    uint64_t out0;  /* where record r0 decodes to */
    int rc;
} dec_part;


/* Pool: decode records [r0, r1) of the body into the run. */
static void dec_work(uv_work_t *w)
{
    dec_part *d = w->data;
    rd_xf *xf = d->xf;
    uint64_t pos = d->out0;
    for (long i = d->r0; i < d->r1 && !d->rc; i++) {
        const xet_record *r = &xf->recs[i];
        d->rc = xet_chunk_decode(&r->hdr, xf->buf + r->offset + XET_CHUNK_HEADER_LEN,
                                 xf->data + pos);
        pos += r->hdr.ulen;
    }
}

static void dec_after(uv_work_t *w, int status)
{
    dec_part *d = w->data;
    rd_xf *xf = d->xf;
    if (!xf->err)
        xf->err = status ? status : d->rc;
    free(d);
    if (--xf->dparts == 0)
        xf_decoded(xf, xf->err);
}

/* Loop: the body is in.  Walk its record headers (no payload is touched
 * here), size the run, and hand the decoding to the pool in parts. */
static void xf_decode_start(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    long n = xet_xorb_index(xf->buf, xf->bytes, &xf->recs);
    int rc = n < 0 ? (int)n : 0;
    uint32_t want = xf->ce - xf->cs;
    if (!rc && (uint64_t)n != want)
        rc = -EBADMSG;
    uint64_t total = 0;
    for (long i = 0; !rc && i < n; i++) {
        if (xf->recs[i].hdr.ulen == 0)
            rc = -EBADMSG;
        total += xf->recs[i].hdr.ulen;
    }
    if (!rc) {
        xf->lens = malloc(want * sizeof *xf->lens);
        xf->data = zf_buf_get(total);
        if (!xf->lens || !xf->data)
            rc = -ENOMEM;
    }
    if (rc) {
        xf_decoded(xf, rc);
        return;
    }
    for (long i = 0; i < n; i++)
        xf->lens[i] = xf->recs[i].hdr.ulen;
    xf->dlen = total;
    int parts = xf->bytes >= DEC_SPLIT ? DEC_PARTS : 1;
    xf->err = 0;
    xf->dparts = 1; /* held while the parts are queued */
    long r0 = 0;
    uint64_t out = 0;
    for (int p = 0; p < parts && r0 < n; p++) {
        long r1 = n;
        if (p + 1 < parts) { /* the first record past this part's share of the body */
            uint64_t cut = xf->bytes * (uint64_t)(p + 1) / (uint64_t)parts;
            r1 = r0 + 1;
            while (r1 < n && xf->recs[r1].offset < cut)
                r1++;
        }
        dec_part *d = calloc(1, sizeof *d);
        if (!d) {
            xf->err = -ENOMEM;
            break;
        }
        d->xf = xf;
        d->r0 = r0;
        d->r1 = r1;
        d->out0 = out;
        d->work.data = d;
        for (long i = r0; i < r1; i++)
            out += xf->recs[i].hdr.ulen;
        xf->dparts++;
        if (uv_queue_work(c->loop, &d->work, dec_work, dec_after) != 0) {
            d->rc = -EIO;
            dec_after(&d->work, 0);
        }
        r0 = r1;
    }
    if (--xf->dparts == 0)
        xf_decoded(xf, xf->err);
}

/* Pool: send the replies of the reads answered from the run in memory. */
static void early_send(rd_xf *xf)
{
    while (xf->early) {
        rd_early *e = xf->early;
        xf->early = e->next;
        fuse_reply_iov(e->req, e->iov, e->n);
        free(e);
    }
}

/* Pool: the decoded run from the CDN: answer the reads taken from it, then
 * hash and store it. */
static void xf_put_work(uv_work_t *w)
{
    rd_xf *xf = w->data;
    early_send(xf);
    int rc = zc_put(xf->c->store, &xf->xorb, xf->cs, xf->ce, xf->lens, NULL, xf->data, xf->dlen,
                    xf->nocache ? ZC_PUT_NOCACHE : 0, &xf->pin);
    if (!rc && xf->c->fs->p2p) /* a whole xorb from [0, n): its manifest, and proof */
        zf_p2p_after_put(xf->c->fs->p2p, &xf->xorb, xf->cs, xf->ce);
    xf->err = rc;
}

/* Pool: a verified run from peers (decoded, hashes known, terms checked on
 * the loop): answer the reads taken from it, store it like CDN data. */
static void xf_peer_work(uv_work_t *w)
{
    rd_xf *xf = w->data;
    early_send(xf);
    int rc = zc_put(xf->c->store, &xf->xorb, xf->cs, xf->ce, xf->lens, xf->hashes, xf->data,
                    xf->dlen, xf->nocache ? ZC_PUT_NOCACHE : 0, &xf->pin);
    if (!rc && xf->c->fs->p2p)
        zf_p2p_after_put(xf->c->fs->p2p, &xf->xorb, xf->cs, xf->ce);
    xf->err = rc;
}

/* Loop: the run is stored (or not): free it, finish the fetch. */
static void xf_put_after(uv_work_t *w, int status)
{
    rd_xf *xf = w->data;
    zf_buf_free(xf->data);
    free(xf->pre);
    xf->data = NULL;
    xf->pre = NULL;
    rd_xf_finish(xf, status ? status : xf->err);
}

/* The store job of a run (inline if the pool refuses it: its replies must go out). */
static void queue_put(rd_xf *xf, uv_work_cb work)
{
    xf->work.data = xf;
    if (uv_queue_work(xf->c->loop, &xf->work, work, xf_put_after) != 0) {
        work(&xf->work);
        xf_put_after(&xf->work, 0);
    }
}

/* The iovec of [off, end) of f in the run of xf in memory: 1 if it is
 * all there (n pieces), else 0.  Loop thread. */
static int run_iov(const rd_xf *xf, const rd_file *f, uint64_t off, uint64_t end,
                   struct iovec *iov, int max, int *n)
{
    const uint64_t *pre = xf->pre;
    int ni = 0;
    uint64_t pos = off;
    if (!pre || rd_ext_uncovered(f, off, end) != end)
        return 0;
    while (pos < end) {
        long x = rd_ext_floor(f, pos);
        const rd_ext *e = x >= 0 ? &f->ext[x] : NULL;
        if (!e || pos >= e->off + e->len || !xet_hash_eq(&e->xorb, &xf->xorb) ||
            e->cs < xf->cs || e->ce > xf->ce ||
            pre[e->ce - xf->cs] - pre[e->cs - xf->cs] != e->len)
            return 0;
        uint64_t b = umin(end, e->off + e->len);
        uint8_t *src = xf->data + pre[e->cs - xf->cs] + (pos - e->off);
        if (ni && (uint8_t *)iov[ni - 1].iov_base + iov[ni - 1].iov_len == src)
            iov[ni - 1].iov_len += b - pos;
        else if (ni < max)
            iov[ni++] = (struct iovec){src, b - pos};
        else
            return 0;
        pos = b;
    }
    *n = ni;
    return 1;
}

/* A FUSE read about to wait for fetches whose bytes are all in a run
 * decoded and being stored: answered from it now, on the loop (the store
 * job only reads the run too; it is freed on the loop after).  1 if so. */
int rd_read_from_runs(rd_read *r)
{
    if (!r->ops->early) /* FUSE reads only */
        return 0;
    for (rd_xf *xf = r->c->xfs; xf; xf = xf->next) {
        struct iovec iov[8];
        int n;
        if (run_iov(xf, r->f, r->off, r->off + r->len, iov, 8, &n)) {
            rd_read_answered_early(r);
            fuse_reply_iov(r->req, iov, n);
            rd_read_free(r);
            return 1;
        }
    }
    return 0;
}

/* The FUSE reads waiting on the fetch's windows whose bytes all lie in the
 * run [data) (decoded and checked against the terms) are answered from it
 * now: their replies go out first in the job that stores the run, so a
 * first read does not wait for the store's writes.  The read is left in
 * its windows, marked answered (expired), and freed when they are done.
 * Loop thread. */
static void early_collect(rd_xf *xf)
{
    uint32_t n = xf->ce - xf->cs;
    if (!(xf->pre = malloc((n + 1) * sizeof *xf->pre)))
        return;
    xf->pre[0] = 0;
    for (uint32_t k = 0; k < n; k++)
        xf->pre[k + 1] = xf->pre[k] + xf->lens[k];
    for (size_t i = 0; i < xf->nw; i++)
        if (xf->w[i].ops->early(xf->w[i].ud, xf) < 0)
            return;
}

/* A FUSE read waiting on xf whose bytes [off, off + len) of f all lie in
 * its run: 0 and its reply is queued (sent first by the job that stores the
 * run); -ENOENT when they do not; -ENOMEM.  For the waiters' early op. */
int rd_xf_early(rd_xf *xf, const rd_file *f, fuse_req_t req, uint64_t off, uint64_t len)
{
    struct iovec iov[8];
    int ni;
    if (!run_iov(xf, f, off, off + len, iov, 8, &ni))
        return -ENOENT;
    rd_early *ea = malloc(sizeof *ea + (size_t)ni * sizeof ea->iov[0]);
    if (!ea)
        return -ENOMEM;
    ea->req = req;
    ea->n = ni;
    memcpy(ea->iov, iov, (size_t)ni * sizeof iov[0]);
    ea->next = xf->early;
    xf->early = ea;
    return 0;
}

/* Loop: the CDN run is decoded (or failed): checked against the terms,
 * answer what it can, then store it. */
static void xf_decoded(rd_xf *xf, int err)
{
    free(xf->recs);
    xf->recs = NULL;
    zf_buf_free(xf->buf);
    xf->buf = NULL;
    if (!err)
        err = check_terms(xf, xf->chk, xf->nchk, xf->lens);
    if (err) {
        zf_buf_free(xf->data);
        xf->data = NULL;
        rd_xf_finish(xf, err);
        return;
    }
    count_src(xf);
    early_collect(xf);
    queue_put(xf, xf_put_work);
}

static int add_waiter(rd_xf *xf, const rd_waiter *w)
{
    if (xf->nw == xf->cw) {
        size_t nc = xf->cw ? xf->cw * 2 : 4;
        rd_waiter *nv = realloc(xf->w, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        xf->w = nv;
        xf->cw = nc;
    }
    xf->w[xf->nw++] = *w;
    return 0;
}

static int add_checks(rd_xf *xf, const xet_recon *rc, const xet_fetch *d)
{
    for (size_t t = 0; t < rc->nterms; t++) {
        const xet_recon_term *tm = &rc->terms[t];
        if (tm->fetch != d)
            continue;
        if (xf->nchk == xf->cchk) {
            size_t nc = xf->cchk ? xf->cchk * 2 : 4;
            rd_check *nv = realloc(xf->chk, nc * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            xf->chk = nv;
            xf->cchk = nc;
        }
        xf->chk[xf->nchk++] = (rd_check){tm->chunk_start, tm->chunk_end, tm->unpacked_length};
    }
    return 0;
}

/* Waiter w (of file f) needs descriptor d: join a fetch in flight that
 * covers it or start one.  0 (w is told through its done op, maybe before
 * this returns: count it first) or negative errno (w was not added). */
int rd_xf_need(rd_ctx *c, rd_file *f, const rd_waiter *w, const xet_recon *rc,
               const xet_fetch *d)
{
    bool fg = w->ops->want(w->ud) & RD_W_FG;
    rd_xf *xf = NULL;
    for (rd_xf *x = c->xfs; x; x = x->next)
        if (xet_hash_eq(&x->xorb, &d->xorb) && x->cs <= d->chunk_start && d->chunk_end <= x->ce) {
            xf = x;
            break;
        }
    if (xf) {
        if (add_waiter(xf, w))
            return -ENOMEM;
        if (!xf->decoding)
            add_checks(xf, rc, d);
        rd_net_prio(c); /* a read may wait for it now */
        if (!xf->started && c->xq != xf && fg) { /* a read waits now: to the front */
            for (rd_xf **pp = &c->xq; *pp; pp = &(*pp)->qnext)
                if (*pp == xf) {
                    *pp = xf->qnext;
                    if (c->xqtail == &xf->qnext)
                        c->xqtail = pp;
                    xf->qnext = c->xq;
                    c->xq = xf;
                    break;
                }
        }
        return 0;
    }
    if (d->byte_end < d->byte_start || d->byte_end - d->byte_start >= XET_XORB_MAX_BYTES ||
        d->chunk_start >= d->chunk_end || d->chunk_end - d->chunk_start > XET_XORB_MAX_CHUNKS ||
        !d->url)
        return -EBADMSG;
    xf = calloc(1, sizeof *xf);
    if (!xf || !(xf->url = strdup(d->url))) {
        free(xf);
        return -ENOMEM;
    }
    xf->c = c;
    xf->xorb = d->xorb;
    xf->cs = d->chunk_start;
    xf->ce = d->chunk_end;
    xf->bs = d->byte_start;
    xf->be = d->byte_end;
    xf->bytes = d->byte_end - d->byte_start + 1;
    xf->f = f;
    xf->pin.seg = NULL;
    if (add_waiter(xf, w) || add_checks(xf, rc, d)) {
        free(xf->w);
        free(xf->chk);
        free(xf->url);
        free(xf);
        return -ENOMEM;
    }
    xf->next = c->xfs;
    c->xfs = xf;
    if (fg && c->xq) { /* a read waits: ahead of prefetches */
        xf->qnext = c->xq;
        c->xq = xf;
    } else {
        *c->xqtail = xf;
        c->xqtail = &xf->qnext;
    }
    rd_xf_pump(c);
    return 0;
}

/* The sources' report (rd_ctx.xf_body): err, or xf's body is in: a CDN
 * body in buf to decode, or a verified run from the peers in data. */
void rd_xf_body(rd_xf *xf, int err)
{
    if (err) {
        rd_xf_finish(xf, err);
        return;
    }
    if (xf->src == ZF_SRC_CDN) {
        xf_decode_start(xf);
        return;
    }
    int ck = check_terms(xf, xf->chk, xf->nchk, xf->lens);
    if (ck) {
        rd_xf_finish(xf, ck);
        return;
    }
    count_src(xf);
    early_collect(xf);
    queue_put(xf, xf_peer_work);
}
