/* peer_verify.c — a peer's DATA verified on the thread pool against the
 * manifest before a fetch takes it. */
#include "peer_int.h"

/* ---- verification work on the pool -------------------------------------------- */

typedef struct zp_work {
    uv_work_t w;
    zp_fetch *f;
    size_t part;
    uint64_t serial;
    uint8_t *buf;        /* owned copy of the records */
    size_t len;
    uint32_t first, n;   /* chunks the records cover (first = chunk_offset for ut) */
    uint32_t skip;       /* chunks to drop from the front (ut) */
    bool trailing;
    int result;
    /* ut: zest sends its whole entry; the chunks after the part, up to the
     * fetch's end, verified as far as they go (loop: fills parts not asked
     * for yet) */
    uint32_t pend_, extra_n;
    uint8_t *extra;
} zp_work;

/* ut: verify the records after the part's (at buf + off) one by one,
 * chunks [k->pend_, f->end) at most, into k->extra; stops at the first
 * that is missing or wrong (nothing was asked of them). */
static void work_extra(zp_work *k, size_t off)
{
    zp_fetch *f = k->f;
    if (k->pend_ >= f->end)
        return;
    uint64_t tot = f->off[f->end - f->start] - f->off[k->pend_ - f->start];
    if (!(k->extra = malloc(tot ? tot : 1)))
        return;
    uint64_t o = 0;
    for (uint32_t i = k->pend_; i < f->end && off < k->len; i++) {
        xet_chunk_header h;
        if (xet_chunk_header_parse(k->buf + off, k->len - off, &h) != 0 ||
            h.clen > k->len - off - XET_CHUNK_HEADER_LEN ||
            zp_records_verify(k->buf + off, XET_CHUNK_HEADER_LEN + h.clen, f->ml + i, f->mh + i, 1,
                              k->extra + o, false) != 0)
            break;
        off += XET_CHUNK_HEADER_LEN + h.clen;
        o += f->ml[i];
        k->extra_n++;
    }
}

/* Bytes of the first n records of buf (already verified). */
static size_t recs_len(const uint8_t *buf, size_t len, uint32_t n)
{
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        xet_chunk_header h;
        if (xet_chunk_header_parse(buf + off, len - off, &h) != 0)
            return len;
        off += XET_CHUNK_HEADER_LEN + h.clen;
    }
    return off;
}

static void work_run(uv_work_t *w)
{
    zp_work *k = (zp_work *)w;
    zp_fetch *f = k->f;
    uint32_t rel = k->first - f->start;
    if (!k->skip) {
        k->result = zp_records_verify(k->buf, k->len, f->ml + k->first, f->mh + k->first, k->n,
                                      f->data + f->off[rel], k->trailing);
        if (!k->result && k->trailing)
            work_extra(k, recs_len(k->buf, k->len, k->n));
        return;
    }
    /* ut: records start before the part; decode all, keep the tail */
    size_t tot = 0;
    for (uint32_t i = 0; i < k->n; i++)
        tot += f->ml[k->first + i];
    uint8_t *tmp = malloc(tot ? tot : 1);
    if (!tmp) {
        k->result = -ENOMEM;
        return;
    }
    k->result = zp_records_verify(k->buf, k->len, f->ml + k->first, f->mh + k->first, k->n, tmp,
                                  k->trailing);
    if (!k->result) {
        size_t skipb = 0;
        for (uint32_t i = 0; i < k->skip; i++)
            skipb += f->ml[k->first + i];
        uint32_t ps = k->first + k->skip;
        memcpy(f->data + f->off[ps - f->start], tmp + skipb, tot - skipb);
        work_extra(k, recs_len(k->buf, k->len, k->n));
    }
    free(tmp);
}

/* Loop: parts not asked for yet that the extra chunks cover are done. */
static void take_extra(zp_work *k)
{
    zp_fetch *f = k->f;
    zn_peer_node *n = f->n;
    uint32_t top = k->pend_ + k->extra_n;
    for (size_t j = 0; j < f->nparts && k->extra_n; j++) {
        zp_part *q = &f->parts[j];
        if (q->state != P_TODO || q->start < k->pend_ || q->end > top)
            continue;
        uint64_t from = f->off[q->start - f->start] - f->off[k->pend_ - f->start];
        uint64_t len = f->off[q->end - f->start] - f->off[q->start - f->start];
        memcpy(f->data + f->off[q->start - f->start], k->extra + from, len);
        q->state = P_DONE;
        f->ndone++;
        n->st.data_down += len;
        f->done_bytes += len;
    }
}

static void work_done(uv_work_t *w, int status)
{
    zp_work *k = (zp_work *)w;
    zp_fetch *f = k->f;
    zn_peer_node *n = f->n;
    f->work--;
    if (k->trailing)
        f->ut_work--;
    free(k->buf);
    int r = status ? status : k->result;
    if (f->finishing) {
        free(k->extra);
        free(k);
        zp__fetch_maybe_free(f);
        zp__node_unref(n);
        return;
    }
    zp_part *p = &f->parts[k->part];
    if (r == 0) {
        p->state = P_DONE;
        f->ndone++;
        for (uint32_t i = p->start; i < p->end; i++) {
            n->st.data_down += f->ml[i];
            f->done_bytes += f->ml[i];
        }
        take_extra(k);
        if (f->ndone == f->nparts)
            zp__fetch_finish(f, 0);
        zp__kick_all(n); /* a request slot on that peer is free again */
    } else {
        if (r != -ENOMEM && status == 0) {
            n->st.verify_failures++;
            zp_conn *c = zp__conn_by_serial(n, k->serial);
            if (c)
                zp__conn_ban(c);
        }
        p->state = P_TODO;
        zp__add_tried(&p->tried, &p->ntried, k->serial);
        f->last_err = -ENOENT;
        zp__fetch_schedule(f);
    }
    free(k->extra);
    free(k);
    zp__node_unref(n);
}

void zp__start_verify(zp_conn *c, zp_req *r, const uint8_t *recs, size_t len, uint32_t first,
                      bool ut)
{
    zp_fetch *f = r->f;
    zn_peer_node *n = c->n;
    zp_part *p = &f->parts[r->part];
    zp_work *k = calloc(1, sizeof *k);
    uint8_t *copy = malloc(len ? len : 1);
    if (!k || !copy) {
        free(k), free(copy);
        zp__req_failed(r, -ENOMEM);
        return;
    }
    memcpy(copy, recs, len);
    c->data_bytes += r->bytes;
    k->f = f, k->part = r->part, k->serial = c->serial, k->buf = copy, k->len = len;
    k->first = first;
    k->skip = p->start - first;
    k->n = p->end - first;
    k->trailing = ut;
    k->pend_ = p->end;
    zp__req_unlink(r);
    free(r);
    p->state = P_VERIFY;
    f->work++;
    if (ut)
        f->ut_work++;
    n->refs++;
    if (uv_queue_work(n->loop, &k->w, work_run, work_done) != 0) {
        /* no pool: verify inline (same checks) */
        work_run(&k->w);
        work_done(&k->w, 0);
    }
}

/* ---- a whole xorb from a ut_xet peer, no manifest at hand ------------------------- */

typedef struct zp_wwork {
    uv_work_t w;
    zp_fetch *f;
    uint64_t serial;
    uint8_t *buf;
    size_t len;
    xet_xorb_decoded d;
    int result;          /* 0, -ERANGE (too few chunks: lacks it), else a lie */
} zp_wwork;

/* Decode every record (caps per record as everywhere; at most 8192 of them
 * and UTX_DECODED_MAX decoded), rebuild the chunk Merkle tree and compare
 * its root with the xorb hash. */
static void whole_run(uv_work_t *w)
{
    zp_wwork *k = (zp_wwork *)w;
    xet_record *recs = NULL;
    long n = xet_xorb_index(k->buf, k->len, &recs);
    uint64_t tot = 0;
    for (long i = 0; i < n; i++)
        tot += recs[i].hdr.ulen;
    free(recs);
    if (n <= 0 || n > (long)XET_XORB_MAX_CHUNKS || tot > UTX_DECODED_MAX) {
        k->result = n == 0 ? -ERANGE : -EBADMSG;
        return;
    }
    if (xet_xorb_decode_all(k->buf, k->len, &k->d) != 0) {
        k->result = -EBADMSG;
        return;
    }
    if (k->d.nchunks < k->f->end)
        k->result = -ERANGE; /* not the part we need: it may hold less, not a lie */
    else if (!xet_hash_eq(&k->d.xorb_hash, &k->f->xorb))
        k->result = -EILSEQ;
}

static void whole_done(uv_work_t *w, int status)
{
    zp_wwork *k = (zp_wwork *)w;
    zp_fetch *f = k->f;
    zn_peer_node *n = f->n;
    f->work--;
    n->utx--;
    free(k->buf);
    int r = status ? status : k->result;
    if (!f->finishing) {
        zp_conn *c = zp__conn_by_serial(n, k->serial);
        if (r == 0) {
            xet_hash *h = malloc(k->d.nchunks * sizeof *h);
            uint32_t *l = malloc(k->d.nchunks * sizeof *l);
            if (h && l) {
                memcpy(h, k->d.chunk_hash, k->d.nchunks * sizeof *h);
                memcpy(l, k->d.chunk_len, k->d.nchunks * sizeof *l);
                if (c)
                    c->data_bytes += k->d.len;
                zp__fetch_whole_done(f, h, l, (uint32_t)k->d.nchunks, k->d.data);
                if (k->d.len <= XET_XORB_MAX_BYTES && !n->closing) { /* kept a while */
                    zp__whole_drop(n);
                    n->wx = f->xorb;
                    n->wdata = k->d.data;
                    n->wlen = k->d.len;
                    n->wuntil = uv_now(n->loop) + WHOLE_TTL_MS;
                    k->d.data = NULL;
                }
            } else {
                free(h), free(l);
                zp__fetch_finish(f, -ENOMEM);
            }
        } else {
            if (r != -ENOMEM && r != -ERANGE && status == 0) {
                n->st.verify_failures++;
                if (c)
                    zp__conn_ban(c);
            } else if (c) {
                zp__ut_nf_add(c, &f->xorb);
            }
            f->last_err = -ENOENT;
            f->manifest_pending = false;
            zp__fetch_manifest_next(f);
        }
    }
    xet_xorb_decoded_free(&k->d);
    free(k);
    zp__fetch_maybe_free(f);
    if (!n->closing)
        zp__kick_all(n); /* fetches waiting for that zest peer */
    zp__node_unref(n);
}

void zp__start_whole(zp_conn *c, zp_req *r, const uint8_t *recs, size_t len)
{
    zp_fetch *f = r->f;
    zn_peer_node *n = c->n;
    zp_wwork *k = calloc(1, sizeof *k);
    uint8_t *copy = malloc(len ? len : 1);
    if (!k || !copy) {
        free(k), free(copy);
        zp__req_failed(r, -ENOMEM);
        return;
    }
    memcpy(copy, recs, len);
    k->f = f, k->serial = c->serial, k->buf = copy, k->len = len;
    zp__req_unlink(r);
    free(r);
    n->utx++; /* until checked (whole_done) */
    f->work++;
    n->refs++;
    if (uv_queue_work(n->loop, &k->w, whole_run, whole_done) != 0) {
        whole_run(&k->w);
        whole_done(&k->w, 0);
    }
}
