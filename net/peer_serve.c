/* peer_serve.c — answering peers: upload pacing, serving chunk ranges and
 * manifests from the provider, the manifest and parts caches. */
#include "peer_int.h"

/* ---- upload pacing ------------------------------------------------------------ */

static void pace_run(zn_peer_node *n);

static void on_pace(uv_timer_t *t)
{
    pace_run(t->data);
}

static void pace_run(zn_peer_node *n)
{
    uint64_t now = uv_hrtime() / 1000;
    while (n->pq) {
        if (n->pace_next_us > now + 1000) {
            uv_timer_start(&n->pace, on_pace, (n->pace_next_us - now) / 1000, 0);
            return;
        }
        zp_paced *e = n->pq;
        n->pq = e->next;
        if (!n->pq)
            n->pq_tail = NULL;
        if (n->pace_next_us < now)
            n->pace_next_us = now;
        n->pace_next_us += e->len * 1000000ull / n->o.upload_rate;
        zp__conn_write2(e->c, e->buf, e->len, true);
        free(e);
    }
}

/* buf's len is already counted in c->out. */
static void send_paced(zp_conn *c, uint8_t *buf, size_t len)
{
    zn_peer_node *n = c->n;
    if (!n->o.upload_rate) {
        zp__conn_write2(c, buf, len, true);
        return;
    }
    zp_paced *e = calloc(1, sizeof *e);
    if (!e) {
        zp__out_sub(n, c, len);
        free(buf);
        zp__conn_close(c);
        return;
    }
    e->c = c, e->buf = buf, e->len = len;
    if (n->pq_tail)
        n->pq_tail->next = e;
    else
        n->pq = e;
    n->pq_tail = e;
    pace_run(n);
}

void zp__pace_drop_conn(zn_peer_node *n, zp_conn *c)
{
    zp_paced **pp = &n->pq;
    n->pq_tail = NULL;
    while (*pp) {
        if ((*pp)->c == c) {
            zp_paced *e = *pp;
            *pp = e->next;
            zp__out_sub(n, NULL, e->len); /* c is closing: its own count goes with it */
            free(e->buf);
            free(e);
        } else {
            n->pq_tail = *pp;
            pp = &(*pp)->next;
        }
    }
}

/* ---- serving -------------------------------------------------------------------- */

static void serve_unlink(zp_serve *s)
{
    zp_conn *c = s->c;
    if (!c)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->serves = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nserves--;
    s->c = NULL;
}

static void refuse(zp_conn *c, bool ut, uint32_t req, uint32_t code, const xet_hash *x)
{
    uint8_t p[37];
    c->n->st.requests_refused++;
    if (ut) {
        if (c->their_ut)
            zp__send_ext(c, c->their_ut, p, zp_ut_not_found(p, req, x));
    } else {
        zp__send_ext(c, c->their_zfs, p, zp_zfs_refuse(p, req, code));
    }
}

static void serve_read_cb(void *arg, int err, const uint32_t *lens, const xet_hash *hashes,
                          const uint8_t *data, size_t len)
{
    zp_serve *s = arg;
    zn_peer_node *n = s->n;
    zp_conn *c = s->c;
    serve_unlink(s);
    if (c && s->big)
        c->big_serve = false;
    zp__out_sub(n, c, s->res);
    if (!c || s->cancelled || c->state != C_OPEN)
        goto out;
    uint32_t nch = s->end - s->start;
    size_t total = 0, dsum = 0;
    for (uint32_t k = 0; !err && k < nch; k++) {
        total += XET_CHUNK_HEADER_LEN + lens[k];
        dsum += lens[k];
        if (lens[k] == 0 || lens[k] > XET_CHUNK_MAX)
            err = -EIO;
    }
    if (!err && dsum != len)
        err = -EIO;
    size_t hdr = s->ut ? 13 : 9;
    if (!err && 6 + hdr + total > n->o.data_frame_max)
        err = -EFBIG;
    uint8_t ext = s->ut ? c->their_ut : c->their_zfs;
    if (err || !ext) {
        refuse(c, s->ut, s->req, ZP_NOT_FOUND, NULL);
        goto out;
    }
    uint8_t *b = malloc(6 + hdr + total);
    if (!b) {
        refuse(c, s->ut, s->req, ZP_BUSY, NULL);
        goto out;
    }
    xet_put_be32(b, (uint32_t)(2 + hdr + total));
    b[4] = 20;
    b[5] = ext;
    if (s->ut)
        zp_ut_response_hdr(b + 6, s->req, s->start, (uint32_t)total);
    else
        zp_zfs_data_hdr(b + 6, s->req, s->start);
    uint8_t *p = b + 6 + hdr;
    for (uint32_t k = 0; k < nch; k++) {
        xet_chunk_header h = {0, XET_SCHEME_NONE, lens[k], lens[k]};
        xet_chunk_header_write(&h, p);
        memcpy(p + XET_CHUNK_HEADER_LEN, data, lens[k]);
        p += XET_CHUNK_HEADER_LEN + lens[k];
        data += lens[k];
    }
    n->st.requests_served++;
    n->st.data_up += len;
    zp__out_add(c, 6 + hdr + total);
    send_paced(c, b, 6 + hdr + total);
out:
    free(s);
    zp__node_unref(n);
}

static bool held_covers(zn_peer_node *n, const xet_hash *x, uint32_t s, uint32_t e)
{
    if (!n->p.held)
        return false;
    zn_chunk_run *runs = malloc(ZP_MAX_HAVE_RUNS * sizeof *runs);
    if (!runs)
        return false;
    size_t nr = n->p.held(n->p.ud, x, runs, ZP_MAX_HAVE_RUNS);
    if (nr > ZP_MAX_HAVE_RUNS)
        nr = ZP_MAX_HAVE_RUNS;
    /* runs may come in any order: advance s while some run covers it */
    bool progress = true;
    while (s < e && progress) {
        progress = false;
        for (size_t k = 0; k < nr; k++)
            if (runs[k].start <= s && runs[k].end > s) {
                s = runs[k].end;
                progress = true;
            }
    }
    free(runs);
    return s >= e;
}

/* The size of the answer to [s,e): exact with the manifest in memory, else
 * at Xet's target chunk size (the real size replaces it once read). */
static uint64_t answer_estimate(zn_peer_node *n, const xet_hash *x, uint32_t s, uint32_t e)
{
    zp_mcache *m = zp__mcache_find(n, x);
    uint64_t b = 15u + (uint64_t)(e - s) * XET_CHUNK_HEADER_LEN;
    if (m && e <= m->n) {
        for (uint32_t i = s; i < e; i++)
            b += m->l[i];
        return b;
    }
    return b + (uint64_t)(e - s) * (64u << 10);
}

static zp_mcache *mcache_load(zn_peer_node *n, const xet_hash *x)
{
    if (!zp__mcache_find(n, x) && n->p.manifest) {
        xet_hash *h = NULL;
        uint32_t *l = NULL, cnt = 0;
        if (n->p.manifest(n->p.ud, x, &h, &l, &cnt) == 0 && cnt > 0 && cnt <= XET_XORB_MAX_CHUNKS)
            zp__mcache_put(n, x, h, l, cnt);
        free(h), free(l);
    }
    return zp__mcache_find(n, x);
}

/* zest caches what a request from chunk 0 brings as the xorb's entry and
 * later serves its other ranges from it (or fails, RangeOutOfBounds, and
 * goes to the CDN): such a request is answered with the whole xorb, as zest
 * itself answers, when it is held whole and the answer fits now. */
static uint32_t ut_widen(zp_conn *c, const xet_hash *x, uint32_t e)
{
    zn_peer_node *n = c->n;
    zp_mcache *mc = mcache_load(n, x);
    if (!mc || e >= mc->n || c->big_serve || !held_covers(n, x, 0, mc->n))
        return e;
    uint64_t res = answer_estimate(n, x, 0, mc->n);
    if (res > n->o.data_frame_max || n->out_total + res > n->o.upload_mem_max)
        return e;
    return mc->n;
}

void zp__serve_request(zp_conn *c, bool ut, uint32_t req, const xet_hash *x, uint32_t s,
                       uint32_t e)
{
    zn_peer_node *n = c->n;
    if (n->p.may_serve && !n->p.may_serve(n->p.ud, c->ih)) {
        refuse(c, ut, req, ZP_NOT_ALLOWED, x);
        return;
    }
    if (s >= e || e - s > (ut ? XET_XORB_MAX_CHUNKS : ZP_MAX_REQ_CHUNKS) || !n->p.read_chunks ||
        (n->p.may_serve_xorb && !n->p.may_serve_xorb(n->p.ud, c->ih, x)) ||
        !held_covers(n, x, s, e)) {
        refuse(c, ut, req, ZP_NOT_FOUND, x);
        return;
    }
    if (ut && s == 0)
        e = ut_widen(c, x, e);
    bool big = e - s > MAX_PART_CHUNKS;
    uint64_t res = 0;
    if (big) {
        /* zest asks for whole xorbs (up to 8192 chunks) and takes one answer
         * per request: ut_xet only, one at a time per peer, sized exactly from
         * the manifest, within the frame cap and the node's upload memory */
        zp_mcache *mc = mcache_load(n, x);
        if (!ut || !mc || e > mc->n) {
            refuse(c, ut, req, ZP_BAD_REQUEST, x);
            return;
        }
        res = answer_estimate(n, x, s, e);
        if (res > n->o.data_frame_max || c->big_serve ||
            n->out_total + res > n->o.upload_mem_max) {
            refuse(c, ut, req, ZP_BUSY, x);
            return;
        }
    }
    if (c->nserves >= MAX_SERVES) {
        refuse(c, ut, req, ZP_BUSY, x);
        return;
    }
    zp_serve *sv = calloc(1, sizeof *sv);
    if (!sv) {
        refuse(c, ut, req, ZP_BUSY, x);
        return;
    }
    sv->n = n, sv->c = c, sv->req = req, sv->ut = ut, sv->start = s, sv->end = e;
    sv->res = big ? res : answer_estimate(n, x, s, e);
    sv->big = big;
    if (big)
        c->big_serve = true;
    zp__out_add(c, sv->res);
    sv->next = c->serves;
    if (c->serves)
        c->serves->prev = sv;
    c->serves = sv;
    c->nserves++;
    n->refs++;
    int r = n->p.read_chunks(n->p.ud, x, s, e, serve_read_cb, sv);
    if (r) {
        zp_conn *cc = sv->c;
        serve_unlink(sv);
        if (cc && big)
            cc->big_serve = false;
        zp__out_sub(n, cc, sv->res);
        free(sv);
        zp__node_unref(n);
        if (cc)
            refuse(cc, ut, req, ZP_NOT_FOUND, x);
    }
}

zp_mcache *zp__mcache_find(zn_peer_node *n, const xet_hash *x)
{
    for (size_t k = 0; k < n->nmc; k++)
        if (n->mc[k].n && xet_hash_eq(&n->mc[k].xorb, x))
            return &n->mc[k];
    return NULL;
}

/* MREQ answers come from memory: the node's manifest cache (filled from
 * the provider the first time, and by every manifest verified), and for
 * parts a short-lived cache of provider->parts; the store is read at most
 * once per xorb (manifest) or per PARTS_TTL_MS (parts), whatever peers ask. */
static zp_pcache *pcache_get(zn_peer_node *n, const xet_hash *x)
{
    uint64_t now = uv_now(n->loop);
    for (size_t k = 0; k < PARTS_CACHE; k++)
        if (n->pc[k].at && now - n->pc[k].at < PARTS_TTL_MS && xet_hash_eq(&n->pc[k].xorb, x))
            return &n->pc[k];
    zp_pcache *e = &n->pc[n->pc_next++ % PARTS_CACHE];
    free(e->idx), free(e->h), free(e->l);
    memset(e, 0, sizeof *e);
    e->xorb = *x;
    e->at = now ? now : 1;
    if (n->p.parts && n->p.parts(n->p.ud, x, &e->idx, &e->h, &e->l, &e->m) == 0 && e->m > 0 &&
        e->m <= XET_XORB_MAX_CHUNKS)
        return e;
    free(e->idx), free(e->h), free(e->l);
    e->idx = NULL, e->h = NULL, e->l = NULL, e->m = 0;
    return e;
}

void zp__serve_manifest(zp_conn *c, uint32_t req, const xet_hash *x)
{
    zn_peer_node *n = c->n;
    if (n->p.may_serve && !n->p.may_serve(n->p.ud, c->ih)) {
        refuse(c, false, req, ZP_NOT_ALLOWED, x);
        return;
    }
    if (n->p.may_serve_xorb && !n->p.may_serve_xorb(n->p.ud, c->ih, x)) {
        refuse(c, false, req, ZP_NOT_FOUND, x); /* as if we had never heard of it */
        return;
    }
    zp_mcache *mc = zp__mcache_find(n, x);
    if (!mc && n->p.manifest) {
        xet_hash *h = NULL;
        uint32_t *l = NULL, cnt = 0;
        if (n->p.manifest(n->p.ud, x, &h, &l, &cnt) == 0 && cnt > 0 && cnt <= XET_XORB_MAX_CHUNKS)
            mc = zp__mcache_put(n, x, h, l, cnt);
        free(h), free(l);
    }
    if (!mc) {
        zp_pcache *pe = (c->caps & ZP_CAP_MPART) ? pcache_get(n, x) : NULL;
        if (pe && pe->m) {
            uint8_t *q = malloc(9 + 40 * (size_t)pe->m);
            if (q) {
                size_t len = zp_zfs_mpart(q, req, pe->idx, pe->h, pe->l, pe->m);
                zp__send_ext(c, c->their_zfs, q, len);
                free(q);
                n->st.mparts_out++;
            }
            return;
        }
        refuse(c, false, req, ZP_NOT_FOUND, x);
        return;
    }
    uint8_t *p = malloc(9 + 36 * (size_t)mc->n);
    if (p) {
        size_t len = zp_zfs_manifest(p, req, mc->h, mc->l, mc->n);
        zp__send_ext(c, c->their_zfs, p, len);
        free(p);
    }
}
