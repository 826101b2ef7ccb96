/* peer_fetch.c — fetch scheduling: the manifest (whole or from MPARTs),
 * parts cut at the peers' runs, picking a peer per part, finishing. */
#include "peer_int.h"

static void manifest_accept(zp_fetch *f, xet_hash *h, uint32_t *l, uint32_t cnt);

void zp__on_manifest(zp_conn *c, zp_req *r, const zp_zfs_msg *m)
{
    zn_peer_node *n = c->n;
    zp_fetch *f = r->f;
    xet_hash *h = malloc(m->n * sizeof *h);
    uint32_t *l = malloc(m->n * sizeof *l);
    if (!h || !l) {
        free(h), free(l);
        zp__req_failed(r, -ENOMEM);
        return;
    }
    for (uint32_t k = 0; k < m->n; k++) {
        memcpy(h[k].b, m->body + 36 * (size_t)k, 32);
        l[k] = xet_be32(m->body + 36 * (size_t)k + 32);
    }
    if (zp_manifest_verify(&f->xorb, h, l, m->n) != 0) {
        free(h), free(l);
        n->st.verify_failures++;
        zp__conn_ban(c); /* fails r through conn_close → next peer */
        return;
    }
    zp__req_unlink(r);
    free(r);
    manifest_accept(f, h, l, m->n);
}

/* Copy a verified manifest into the node's cache; the entry, or NULL. */
zp_mcache *zp__mcache_put(zn_peer_node *n, const xet_hash *x, const xet_hash *h,
                          const uint32_t *l, uint32_t cnt)
{
    zp_mcache *e = zp__mcache_find(n, x);
    if (!e)
        e = &n->mc[n->nmc < MANIFEST_CACHE ? n->nmc++ : n->mc_next++ % MANIFEST_CACHE];
    free(e->h), free(e->l);
    e->xorb = *x;
    e->h = malloc(cnt * sizeof *h);
    e->l = malloc(cnt * sizeof *l);
    e->n = cnt;
    if (!e->h || !e->l) {
        free(e->h), free(e->l);
        e->h = NULL, e->l = NULL, e->n = 0;
        memset(&e->xorb, 0, sizeof e->xorb);
        return NULL;
    }
    memcpy(e->h, h, cnt * sizeof *h);
    memcpy(e->l, l, cnt * sizeof *l);
    return e;
}

/* Accept the manifest h/l of n chunks (verified): cache it, go on. */
static void manifest_accept(zp_fetch *f, xet_hash *h, uint32_t *l, uint32_t cnt)
{
    zn_peer_node *n = f->n;
    f->manifest_pending = false;
    zp__mcache_put(n, &f->xorb, h, l, cnt);
    f->mh = h, f->ml = l, f->mn = cnt;
    zp__fetch_schedule(f);
}

/* Merge m parts (idx increasing, each < XET_XORB_MAX_CHUNKS) into f's
 * assembly; 0, or -ENOMEM. */
static int parts_merge(zp_fetch *f, const uint32_t *idx, const xet_hash *h, const uint32_t *l,
                       const uint8_t *wire, uint32_t m)
{
    if (!f->ak) {
        f->ah = malloc(XET_XORB_MAX_CHUNKS * sizeof *f->ah);
        f->al = malloc(XET_XORB_MAX_CHUNKS * sizeof *f->al);
        f->ak = calloc(XET_XORB_MAX_CHUNKS, 1);
        if (!f->ah || !f->al || !f->ak) {
            free(f->ah), free(f->al), free(f->ak);
            f->ah = NULL, f->al = NULL, f->ak = NULL;
            return -ENOMEM;
        }
    }
    for (uint32_t k = 0; k < m; k++) {
        uint32_t i = wire ? xet_be32(wire + 40 * (size_t)k) : idx[k];
        if (i >= XET_XORB_MAX_CHUNKS || f->ak[i])
            continue; /* the first word on a chunk stands; a lie fails the whole below */
        if (wire) {
            memcpy(f->ah[i].b, wire + 40 * (size_t)k + 4, 32);
            f->al[i] = xet_be32(wire + 40 * (size_t)k + 36);
        } else {
            f->ah[i] = h[k];
            f->al[i] = l[k];
        }
        f->ak[i] = 1;
    }
    return 0;
}

/* Chunks [0, top) all known, top = one past the highest known: the
 * manifest if they aggregate to the xorb hash. */
static bool parts_try(zp_fetch *f)
{
    uint32_t top = 0;
    for (uint32_t i = XET_XORB_MAX_CHUNKS; i > 0; i--)
        if (f->ak[i - 1]) {
            top = i;
            break;
        }
    if (!top || top < f->end || memchr(f->ak, 0, top))
        return false;
    if (zp_manifest_verify(&f->xorb, f->ah, f->al, top) != 0)
        return false;
    xet_hash *h = malloc(top * sizeof *h);
    uint32_t *l = malloc(top * sizeof *l);
    if (!h || !l) {
        free(h), free(l);
        return false;
    }
    memcpy(h, f->ah, top * sizeof *h);
    memcpy(l, f->al, top * sizeof *l);
    free(f->ah), free(f->al), free(f->ak);
    f->ah = NULL, f->al = NULL, f->ak = NULL;
    f->n->st.manifests_joined++;
    manifest_accept(f, h, l, top);
    return true;
}

/* MPART: what the peer knows of the manifest, with ours; complete and
 * aggregating: accepted; else the next peer is asked. */
void zp__on_mpart(zp_conn *c, zp_req *r, const zp_zfs_msg *m)
{
    zn_peer_node *n = c->n;
    zp_fetch *f = r->f;
    zp__req_unlink(r);
    free(r);
    f->manifest_pending = false;
    n->st.mparts_in++;
    int rc = parts_merge(f, NULL, NULL, NULL, m->body, m->n);
    if (!rc && !f->own_merged && n->p.parts) {
        f->own_merged = true;
        uint32_t *pi = NULL, *pl = NULL, k = 0;
        xet_hash *ph = NULL;
        if (n->p.parts(n->p.ud, &f->xorb, &pi, &ph, &pl, &k) == 0 && k > 0)
            rc = parts_merge(f, pi, ph, pl, NULL, k);
        free(pi), free(ph), free(pl);
    }
    if (rc) {
        zp__fetch_finish(f, rc);
        return;
    }
    if (!parts_try(f))
        zp__fetch_manifest_next(f);
}

/* ---- fetches ----------------------------------------------------------------------- */

void zp__kick_all(zn_peer_node *n)
{
    for (zp_fetch *f = n->fetches; f; f = f->next)
        if (!f->finishing) {
            if (f->mn)
                zp__fetch_schedule(f);
            else if (!f->manifest_pending)
                zp__fetch_manifest_next(f);
        }
}

static zp_req *req_new(zp_conn *c, zp_fetch *f, int kind, size_t part)
{
    zp_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->id = c->next_id++;
    r->kind = kind;
    r->c = c;
    r->f = f;
    r->part = part;
    r->deadline = uv_now(c->n->loop) + c->n->o.req_timeout_ms;
    r->cap = kind == R_MANIFEST ? MANIFEST_FRAME_MAX : c->n->o.data_frame_max;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->nreqs++;
    return r;
}

static bool conn_usable(const zp_conn *c)
{
    return c->state == C_OPEN && c->got_ext && (c->their_zfs || c->their_ut);
}

/* The manifest: from a zfs_xet peer (MREQ; one announcing the xorb first),
 * else — none left — the whole xorb from a ut_xet-only peer (zest has no
 * manifests), checked by rebuilding its Merkle tree (zp__start_whole). */
void zp__fetch_manifest_next(zp_fetch *f)
{
    zn_peer_node *n = f->n;
    if (f->finishing || f->mn || f->manifest_pending)
        return;
    zp_conn *best = NULL, *ut = NULL;
    bool waiting = false;
    for (zp_conn *c = n->conns; c; c = c->next) {
        if (c->state == C_CONNECTING || c->state == C_HS || (c->state == C_OPEN && !c->got_ext))
            waiting = true;
        if (!conn_usable(c) || zp__tried(f->mtried, f->nmtried, c->serial))
            continue;
        if (!c->their_zfs) {
            if (ut || zp__ut_lacks(c, &f->xorb))
                continue;
            if (c->nreqs >= UT_OUTSTANDING || n->utx >= UTX_MAX)
                waiting = true; /* zest answers one request at a time: after it;
                                 * and whole xorbs are held UTX_MAX at a time */
            else
                ut = c;
            continue;
        }
        if (zp__have_find(c, &f->xorb)) {
            best = c;
            break;
        }
        if (!best)
            best = c;
    }
    if (!best && !ut) {
        if (!waiting)
            zp__fetch_finish(f, f->last_err == -ETIMEDOUT ? -ETIMEDOUT : -ENOENT);
        return;
    }
    zp_conn *c = best ? best : ut;
    zp__add_tried(&f->mtried, &f->nmtried, c->serial);
    zp_req *r = req_new(c, f, best ? R_MANIFEST : R_UTX, 0);
    if (!r) {
        zp__fetch_finish(f, -ENOMEM);
        return;
    }
    if (!best)
        n->utx++;
    f->manifest_pending = true;
    uint8_t p[45];
    if (best) {
        zp__send_ext(c, c->their_zfs, p, zp_zfs_mreq(p, r->id, &f->xorb));
        return;
    }
    /* zest answers with its whole cached entry whatever range_end says; the
     * transfer may be up to 64 MiB, so it gets more time than a part */
    uint64_t now = uv_now(n->loop), t = n->o.req_timeout_ms;
    r->deadline = now + (t > UTX_MIN_MS ? t : UTX_MIN_MS);
    if (f->deadline && f->deadline < r->deadline)
        f->deadline = r->deadline;
    zp__send_ext(c, c->their_ut, p, zp_ut_request(p, r->id, &f->xorb, f->start, f->end));
}

static int fetch_build_parts(zp_fetch *f)
{
    zn_peer_node *n = f->n;
    uint32_t span = f->end - f->start;
    f->off = malloc((span + 1) * sizeof *f->off);
    uint8_t *edge = calloc(span + 1, 1);
    if (!f->off || !edge) {
        free(edge);
        return -ENOMEM;
    }
    f->off[0] = 0;
    for (uint32_t k = 0; k < span; k++)
        f->off[k + 1] = f->off[k] + f->ml[f->start + k];
    f->len = f->off[span];
    f->data = malloc(f->len ? f->len : 1);
    if (!f->data) {
        free(edge);
        return -ENOMEM;
    }
    edge[0] = edge[span] = 1;
    for (uint32_t k = MAX_PART_CHUNKS; k < span; k += MAX_PART_CHUNKS)
        edge[k] = 1;
    for (zp_conn *c = n->conns; c; c = c->next) {
        zp_have *h = zp__have_find(c, &f->xorb);
        if (!h)
            continue;
        for (uint32_t k = 1; k < span; k++)
            if (zp__have_bit(h, f->start + k) != zp__have_bit(h, f->start + k - 1))
                edge[k] = 1;
    }
    size_t np = 0;
    for (uint32_t k = 1; k <= span; k++)
        np += edge[k];
    f->parts = calloc(np, sizeof *f->parts);
    if (!f->parts) {
        free(edge);
        return -ENOMEM;
    }
    uint32_t s = 0;
    for (uint32_t k = 1; k <= span; k++)
        if (edge[k]) {
            f->parts[f->nparts].start = f->start + s;
            f->parts[f->nparts].end = f->start + k;
            f->nparts++;
            s = k;
        }
    free(edge);
    return 0;
}

static uint64_t part_bytes(const zp_fetch *f, const zp_part *p)
{
    uint64_t b = 0;
    for (uint32_t i = p->start; i < p->end; i++)
        b += f->ml[i];
    return b;
}

static bool conn_measured(const zp_conn *c)
{
    return c->busy_ms >= 500;
}

/* B/ms a connection delivers while busy; an unmeasured one is assumed as
 * fast as the best measured one (dflt), so it is tried when that one is
 * busy but never preferred over it. */
static uint64_t conn_rate(const zp_conn *c, uint64_t dflt)
{
    if (!conn_measured(c))
        return dflt;
    uint64_t r = c->data_bytes / c->busy_ms;
    return r ? r : 1;
}

/* Candidates for part p: zfs peers announcing it, then zest peers; of each,
 * the one expected to finish it first (queued bytes / rate). */
static zp_conn *pick(zp_fetch *f, zp_part *p, unsigned *holders)
{
    zp_conn *best = NULL, *zest = NULL;
    uint64_t pb = part_bytes(f, p), tb = UINT64_MAX, tz = UINT64_MAX, top = 0;
    bool mb = false, mz = false;
    *holders = 0;
    for (zp_conn *c = f->n->conns; c; c = c->next)
        if (conn_usable(c) && conn_measured(c) && conn_rate(c, 0) > top)
            top = conn_rate(c, 0);
    if (!top)
        top = f->n->o.min_rate / 1000 + 1;
    for (zp_conn *c = f->n->conns; c; c = c->next) {
        if (!conn_usable(c) || zp__tried(p->tried, p->ntried, c->serial))
            continue;
        bool zfs = c->their_zfs != 0;
        if (zfs && !zp__have_covers(c, &f->xorb, p->start, p->end))
            continue;
        if (!zfs && zp__ut_lacks(c, &f->xorb))
            continue;
        bool asked = !zfs && f->ut_work; /* zest answers each request with its whole
                                          * entry: one request of a fetch at a time,
                                          * its tail fills the other parts
                                          * (peer_verify.c) */
        for (zp_req *q = c->reqs; !zfs && q && !asked; q = q->next)
            asked = q->f == f;
        if (asked) {
            ++*holders;
            continue;
        }
        ++*holders;
        if (c->nreqs >= (zfs ? MAX_OUTSTANDING : UT_OUTSTANDING))
            continue;
        uint64_t t = (c->qbytes + pb) / conn_rate(c, top);
        bool m = conn_measured(c);
        if (zfs && (t < tb || (t == tb && m && !mb)))
            best = c, tb = t, mb = m;
        else if (!zfs && (t < tz || (t == tz && m && !mz)))
            zest = c, tz = t, mz = m;
    }
    return best ? best : zest;
}

void zp__fetch_schedule(zp_fetch *f)
{
    if (f->finishing)
        return;
    if (!f->mn) {
        zp__fetch_manifest_next(f);
        return;
    }
    if (!f->parts) {
        if (f->end > f->mn) {
            zp__fetch_finish(f, -ERANGE);
            return;
        }
        int r = fetch_build_parts(f);
        if (r) {
            zp__fetch_finish(f, r);
            return;
        }
    }
    /* rarest first: parts with fewer holders are requested first */
    for (unsigned want = 1; want <= f->n->nconns + 1 && !f->finishing; want++) {
        for (size_t k = 0; k < f->nparts && !f->finishing; k++) {
            zp_part *p = &f->parts[k];
            if (p->state != P_TODO)
                continue;
            unsigned holders;
            zp_conn *c = pick(f, p, &holders);
            if (holders == 0) {
                zp__fetch_finish(f, f->last_err == -ETIMEDOUT ? -ETIMEDOUT : -ENOENT);
                return;
            }
            if (!c || (holders > want && want <= f->n->nconns))
                continue;
            bool ut = !c->their_zfs;
            zp_req *r = req_new(c, f, ut ? R_UT : R_DATA, k);
            if (!r) {
                zp__fetch_finish(f, -ENOMEM);
                return;
            }
            r->bytes = part_bytes(f, p);
            c->qbytes += r->bytes;
            if (!ut) { /* DATA: the records of exactly the part (LZ4's worst case allowed) */
                uint64_t cap = 2 + 9;
                for (uint32_t i = p->start; i < p->end; i++)
                    cap += XET_CHUNK_HEADER_LEN + f->ml[i] + f->ml[i] / 64 + 64;
                if (cap < r->cap)
                    r->cap = (uint32_t)cap;
            }
            p->state = P_INFLIGHT;
            uint8_t m[45];
            if (ut) { /* zest sends its whole entry: time for up to 64 MiB */
                uint64_t now = uv_now(f->n->loop), t = f->n->o.req_timeout_ms;
                r->deadline = now + (t > UTX_MIN_MS ? t : UTX_MIN_MS);
                if (f->deadline && f->deadline < r->deadline)
                    f->deadline = r->deadline;
                zp__send_ext(c, c->their_ut, m,
                             zp_ut_request(m, r->id, &f->xorb, p->start, p->end));
            } else {
                zp__send_ext(c, c->their_zfs, m,
                             zp_zfs_request(m, r->id, &f->xorb, p->start, p->end));
            }
        }
    }
}

void zp__fetch_maybe_free(zp_fetch *f)
{
    if (!f->timer_closed || f->work)
        return;
    zn_peer_node *n = f->n;
    if (f->prev)
        f->prev->next = f->next;
    else
        n->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    for (size_t k = 0; k < f->nparts; k++)
        free(f->parts[k].tried);
    free(f->parts);
    free(f->mtried);
    free(f->ah);
    free(f->al);
    free(f->ak);
    free(f->mh);
    free(f->ml);
    free(f->off);
    free(f->data);
    free(f);
    zp__node_unref(n);
}

static void on_fetch_timer_closed(uv_handle_t *h)
{
    zp_fetch *f = h->data;
    f->timer_closed = true;
    zp__fetch_maybe_free(f);
}

void zp__fetch_deliver(zp_fetch *f)
{
    if (f->delivered)
        return;
    f->delivered = true;
    uv_timer_stop(&f->timer);
    if (f->result == 0)
        f->cb(f->ud, 0, f->ml + f->start, f->mh + f->start, f->data, f->len);
    else
        f->cb(f->ud, f->result, NULL, NULL, NULL, 0);
    uv_close((uv_handle_t *)&f->timer, on_fetch_timer_closed);
}

static void on_fetch_timer(uv_timer_t *t)
{
    zp__fetch_deliver(t->data);
}

void zp__fetch_finish(zp_fetch *f, int err)
{
    if (f->finishing)
        return;
    zn_peer_node *n = f->n;
    f->finishing = true;
    f->result = err;
    for (zp_conn *c = n->conns; c; c = c->next) {
        zp_req *r = c->reqs;
        while (r) {
            zp_req *nx = r->next;
            if (r->f == f) {
                zp__req_forget(r);
                zp__req_unlink(r);
                free(r);
            }
            r = nx;
        }
    }
    if (err)
        n->st.fetches_failed++;
    else
        n->st.fetches_ok++;
    uv_timer_start(&f->timer, on_fetch_timer, 0, 0);
}

/* A whole xorb from a ut_xet peer, verified (h, l: its manifest, taken;
 * data: every chunk decoded): the manifest is kept, the fetch is served
 * from data at once. */
/* Serve f (manifest known) from every chunk of its xorb decoded (data). */
static void fetch_fill(zp_fetch *f, const uint8_t *data)
{
    zn_peer_node *n = f->n;
    if (f->end > f->mn) {
        zp__fetch_finish(f, -ERANGE);
        return;
    }
    int r = f->parts ? 0 : fetch_build_parts(f);
    if (r) {
        zp__fetch_finish(f, r);
        return;
    }
    uint64_t skip = 0;
    for (uint32_t i = 0; i < f->start; i++)
        skip += f->ml[i];
    memcpy(f->data, data + skip, f->len);
    for (size_t k = 0; k < f->nparts; k++)
        f->parts[k].state = P_DONE;
    f->ndone = f->nparts;
    n->st.data_down += f->len;
    f->done_bytes = f->len;
    zp__fetch_finish(f, 0);
}

/* A whole xorb from a ut_xet peer, verified (h, l: its manifest, taken;
 * data: every chunk decoded): the manifest is kept, the fetch is served
 * from data at once. */
void zp__fetch_whole_done(zp_fetch *f, xet_hash *h, uint32_t *l, uint32_t cnt,
                          const uint8_t *data)
{
    f->manifest_pending = false;
    zp__mcache_put(f->n, &f->xorb, h, l, cnt);
    f->mh = h, f->ml = l, f->mn = cnt;
    fetch_fill(f, data);
}

void zp__whole_drop(zn_peer_node *n)
{
    free(n->wdata);
    n->wdata = NULL;
}

int zn_peer_fetch(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end,
                  unsigned deadline_ms, zn_peer_fetch_cb cb, void *ud, zn_peer_op **op)
{
    if (n->closing)
        return -ESHUTDOWN;
    if (start >= end || end > XET_XORB_MAX_CHUNKS || !cb)
        return -EINVAL;
    zp_fetch *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->n = n;
    f->xorb = *xorb;
    f->start = start, f->end = end;
    f->cb = cb, f->ud = ud;
    f->deadline = deadline_ms ? uv_now(n->loop) + deadline_ms : 0;
    uv_timer_init(n->loop, &f->timer);
    f->timer.data = f;
    f->next = n->fetches;
    if (n->fetches)
        n->fetches->prev = f;
    n->fetches = f;
    n->refs++;
    if (op)
        *op = (zn_peer_op *)f;
    /* manifest: the owner's, else one verified earlier */
    xet_hash *h = NULL;
    uint32_t *l = NULL, cnt = 0;
    if (n->p.manifest && n->p.manifest(n->p.ud, xorb, &h, &l, &cnt) == 0 && cnt > 0) {
        f->mh = h, f->ml = l, f->mn = cnt;
    } else {
        free(h), free(l);
        for (size_t k = 0; k < n->nmc; k++)
            if (n->mc[k].n && xet_hash_eq(&n->mc[k].xorb, xorb)) {
                f->mh = malloc(n->mc[k].n * sizeof *f->mh);
                f->ml = malloc(n->mc[k].n * sizeof *f->ml);
                if (f->mh && f->ml) {
                    memcpy(f->mh, n->mc[k].h, n->mc[k].n * sizeof *f->mh);
                    memcpy(f->ml, n->mc[k].l, n->mc[k].n * sizeof *f->ml);
                    f->mn = n->mc[k].n;
                } else {
                    free(f->mh), free(f->ml);
                    f->mh = NULL, f->ml = NULL;
                }
                break;
            }
    }
    /* zest sends whole xorbs: the last one, verified, serves the fetches of
     * its other ranges that follow it (a reader going through a file) */
    if (f->mn && n->wdata && xet_hash_eq(&n->wx, xorb) && uv_now(n->loop) < n->wuntil) {
        uint64_t tot = 0;
        for (uint32_t i = 0; i < f->mn; i++)
            tot += f->ml[i];
        if (tot == n->wlen) {
            fetch_fill(f, n->wdata);
            return 0;
        }
    }
    zp__fetch_schedule(f);
    return 0;
}

void zn_peer_op_cancel(zn_peer_op *op)
{
    zp_fetch *f = (zp_fetch *)op;
    zp__fetch_finish(f, -ECANCELED);
}
