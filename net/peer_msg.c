/* peer_msg.c — what peers send us: HAVE and pending runs, zfs_xet and ut_xet
 * messages, the BT handshake, framing and its per-turn budget, reading. */
#include "peer_int.h"

/* ---- HAVE --------------------------------------------------------------------- */

static bool may_serve_xorb(zn_peer_node *n, const uint8_t ih[20], const xet_hash *xorb)
{
    if (n->p.may_serve && !n->p.may_serve(n->p.ud, ih))
        return false;
    return !n->p.may_serve_xorb || n->p.may_serve_xorb(n->p.ud, ih, xorb);
}

static void send_have(zp_conn *c, const xet_hash *xorb)
{
    zn_peer_node *n = c->n;
    if (!c->their_zfs || c->state != C_OPEN || !n->p.held)
        return;
    if (!may_serve_xorb(n, c->ih, xorb))
        return;
    zn_chunk_run *runs = malloc(ZP_MAX_HAVE_RUNS * sizeof *runs);
    if (!runs)
        return;
    size_t nr = n->p.held(n->p.ud, xorb, runs, ZP_MAX_HAVE_RUNS), k2 = 0;
    if (nr > ZP_MAX_HAVE_RUNS)
        nr = ZP_MAX_HAVE_RUNS;
    for (size_t k = 0; k < nr; k++)
        if (runs[k].start < runs[k].end && runs[k].end <= XET_XORB_MAX_CHUNKS)
            runs[k2++] = runs[k];
    if (k2) {
        uint8_t *p = malloc(37 + 8 * k2);
        if (p) {
            size_t l = zp_zfs_have(p, xorb, runs, (uint32_t)k2);
            zp__send_ext(c, c->their_zfs, p, l);
            free(p);
        }
    }
    free(runs);
}

zp_have *zp__have_find(zp_conn *c, const xet_hash *x)
{
    for (size_t k = 0; k < c->nhave; k++)
        if (xet_hash_eq(&c->have[k].xorb, x))
            return &c->have[k];
    return NULL;
}

/* The run of h containing chunk i, or NULL (binary search). */
static const zn_chunk_run *have_run(const zp_have *h, uint32_t i)
{
    uint32_t lo = 0, hi = h->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->runs[mid].end <= i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->n && h->runs[lo].start <= i ? &h->runs[lo] : NULL;
}

bool zp__have_covers(zp_conn *c, const xet_hash *x, uint32_t s, uint32_t e)
{
    zp_have *h = zp__have_find(c, x);
    if (!h || e > XET_XORB_MAX_CHUNKS || s >= e)
        return false;
    const zn_chunk_run *r = have_run(h, s);
    return r && r->end >= e;
}

bool zp__have_bit(const zp_have *h, uint32_t i)
{
    return have_run(h, i) != NULL;
}

static int run_cmp(const void *a, const void *b)
{
    const zn_chunk_run *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Add the runs of a HAVE (8n bytes, checked by the parser) to h: new runs
 * not already covered are joined with the old ones, sorted and merged.
 * Cost ~ the message's size (log factors aside), never the chunks named. */
static void have_merge(zp_conn *c, zp_have *h, const uint8_t *body, uint32_t cnt)
{
    zn_chunk_run *add = NULL;
    uint32_t na = 0;
    for (uint32_t k = 0; k < cnt; k++) {
        uint32_t s = xet_be32(body + 8 * k), e = xet_be32(body + 8 * k + 4);
        const zn_chunk_run *r = have_run(h, s);
        if (r && r->end >= e)
            continue; /* known already */
        if (!add && !(add = malloc((h->n + cnt) * sizeof *add)))
            return;
        add[na++] = (zn_chunk_run){s, e};
    }
    if (!na)
        return;
    if (h->n)
        memcpy(add + na, h->runs, h->n * sizeof *add);
    uint32_t tot = na + h->n, m = 0;
    qsort(add, tot, sizeof *add, run_cmp);
    for (uint32_t k = 0; k < tot; k++) {
        if (m && add[k].start <= add[m - 1].end) {
            if (add[k].end > add[m - 1].end)
                add[m - 1].end = add[k].end;
        } else {
            add[m++] = add[k];
        }
    }
    if (c->have_runs - h->n + m > MAX_HAVE_RUNS_PEER) {
        free(add); /* more than we keep for one peer: ignored */
        return;
    }
    zn_chunk_run *q = realloc(add, m * sizeof *q);
    if (q)
        add = q;
    c->have_runs = c->have_runs - h->n + m;
    free(h->runs);
    h->runs = add;
    h->n = m;
}

/* ---- incoming messages ----------------------------------------------------------- */

static zp_req *req_find(zp_conn *c, uint32_t id, int kind)
{
    for (zp_req *r = c->reqs; r; r = r->next)
        if (r->id == id && r->kind == kind)
            return r;
    return NULL;
}

static void handle_zfs(zp_conn *c, const uint8_t *p, size_t len)
{
    zn_peer_node *n = c->n;
    zp_zfs_msg m;
    if (zp_zfs_parse(p, len, &m) != 0) {
        zp__conn_ban(c);
        return;
    }
    zp_req *r;
    switch (m.type) {
    case ZP_HAVE: {
        zp_have *h = zp__have_find(c, &m.xorb);
        if (!h) {
            if (c->nhave >= MAX_HAVE_XORBS)
                return;
            zp_have *nh = realloc(c->have, (c->nhave + 1) * sizeof *nh);
            if (!nh)
                return;
            c->have = nh;
            h = &nh[c->nhave++];
            memset(h, 0, sizeof *h);
            h->xorb = m.xorb;
        }
        have_merge(c, h, m.body, m.n);
        return;
    }
    case ZP_PENDING: {
        n->st.pending_in++;
        zp_pend *e = NULL;
        for (size_t k = 0; k < c->npend && !e; k++)
            if (xet_hash_eq(&c->pend[k].xorb, &m.xorb))
                e = &c->pend[k];
        if (!e && m.n == 0)
            return;
        if (!e) {
            if (c->npend == MAX_PEND) { /* forget the one that expires first */
                size_t o = 0;
                for (size_t k = 1; k < c->npend; k++)
                    if (c->pend[k].until < c->pend[o].until)
                        o = k;
                e = &c->pend[o];
            } else {
                zp_pend *np = realloc(c->pend, (c->npend + 1) * sizeof *np);
                if (!np)
                    return;
                c->pend = np;
                e = &np[c->npend++];
            }
            e->xorb = m.xorb;
        }
        e->n = 0;
        for (uint32_t k = 0; k < m.n && e->n < MAX_PEND_RUNS; k++)
            e->runs[e->n++] = (zn_chunk_run){xet_be32(m.body + 8 * k), xet_be32(m.body + 8 * k + 4)};
        e->until = uv_now(n->loop) + ZP_PENDING_TTL_MS;
        return;
    }
    case ZP_REQUEST:
        zp__serve_request(c, false, m.req, &m.xorb, m.start, m.end);
        return;
    case ZP_MREQ:
        zp__serve_manifest(c, m.req, &m.xorb);
        return;
    case ZP_CANCEL:
        for (zp_serve *s = c->serves; s; s = s->next)
            if (!s->ut && s->req == m.req)
                s->cancelled = true;
        return;
    case ZP_DATA:
        if (!(r = req_find(c, m.req, R_DATA)))
            return; /* a late answer to a cancelled request */
        if (m.start != r->f->parts[r->part].start) {
            n->st.verify_failures++;
            zp__conn_ban(c);
            return;
        }
        zp__start_verify(c, r, m.body, m.body_len, m.start, false);
        return;
    case ZP_MANIFEST:
        if (!(r = req_find(c, m.req, R_MANIFEST)))
            return;
        zp__on_manifest(c, r, &m);
        return;
    case ZP_MPART:
        if (!(r = req_find(c, m.req, R_MANIFEST)))
            return;
        zp__on_mpart(c, r, &m);
        return;
    case ZP_REFUSE:
        if ((r = req_find(c, m.req, R_DATA)) || (r = req_find(c, m.req, R_MANIFEST)))
            zp__req_failed(r, -ENOENT);
        return;
    }
}

/* ---- ut_xet-only peers (zest) ------------------------------------------------------ */

/* A peer that speaks ut_xet and not zfs_xet (zest): it announces nothing,
 * so it is a candidate holder of every xorb until it says it lacks one. */
bool zp__ut_only(const zp_conn *c)
{
    return c->state == C_OPEN && c->got_ext && c->their_ut && !c->their_zfs;
}

bool zp__ut_lacks(const zp_conn *c, const xet_hash *x)
{
    unsigned n = c->nut_nf < UT_NF_MAX ? c->nut_nf : UT_NF_MAX;
    for (unsigned k = 0; k < n; k++)
        if (xet_hash_eq(&c->ut_nf[k], x))
            return true;
    return false;
}

void zp__ut_nf_add(zp_conn *c, const xet_hash *x)
{
    if (!zp__ut_lacks(c, x))
        c->ut_nf[c->nut_nf++ % UT_NF_MAX] = *x;
}

static zp_req *req_find_ut(zp_conn *c, uint32_t id)
{
    zp_req *r = req_find(c, id, R_UT);
    return r ? r : req_find(c, id, R_UTX);
}

static void handle_ut(zp_conn *c, const uint8_t *p, size_t len)
{
    zp_ut_msg m;
    if (zp_ut_parse(p, len, &m) != 0) {
        zp__conn_ban(c);
        return;
    }
    zp_req *r;
    switch (m.type) {
    case ZP_UT_REQUEST:
        zp__serve_request(c, true, m.req, &m.hash, m.start, m.end);
        return;
    case ZP_UT_RESPONSE:
        if (!(r = req_find_ut(c, m.req)))
            return;
        if (r->kind == R_UTX) { /* no manifest: only a whole xorb can be checked */
            if (m.chunk_offset != 0) {
                zp__req_failed(r, -ENOENT); /* a partial entry: not verifiable here */
                return;
            }
            zp__start_whole(c, r, m.data, m.data_len);
            return;
        }
        if (m.chunk_offset > r->f->parts[r->part].start) {
            zp__req_failed(r, -ENOENT); /* holds a later part only */
            return;
        }
        zp__start_verify(c, r, m.data, m.data_len, m.chunk_offset, true);
        return;
    case ZP_UT_NOT_FOUND:
    case ZP_UT_ERROR:
        if ((r = req_find_ut(c, m.req))) {
            zp__ut_nf_add(c, &r->f->xorb);
            zp__req_failed(r, -ENOENT);
        }
        return;
    }
}

static void send_pending(zp_conn *c, const xet_hash *xorb)
{
    zn_peer_node *n = c->n;
    if (!c->their_zfs || !(c->caps & ZP_CAP_PENDING) || c->state != C_OPEN ||
        !may_serve_xorb(n, c->ih, xorb))
        return;
    zn_chunk_run runs[MAX_PEND_RUNS];
    uint32_t k = 0;
    for (size_t i = 0; i < n->nmypend && k < MAX_PEND_RUNS; i++)
        if (xet_hash_eq(&n->mypend[i].xorb, xorb))
            runs[k++] = (zn_chunk_run){n->mypend[i].start, n->mypend[i].end};
    uint8_t p[37 + 8 * MAX_PEND_RUNS];
    zp__send_ext(c, c->their_zfs, p, zp_zfs_pending(p, xorb, runs, k));
}

static void handle_ext_handshake(zp_conn *c, const uint8_t *p, size_t len)
{
    zn_peer_node *n = c->n;
    zp_ext_info ei;
    if (zp_ext_handshake_info(p, len, &ei) != 0) {
        zp__conn_ban(c);
        return;
    }
    c->their_ut = ei.ut_xet;
    c->their_zfs = ei.zfs_xet;
    c->their_pex = n->o.no_pex ? 0 : ei.ut_pex;
    c->their_port = ei.port;
    c->caps = ei.caps;
    if (!c->got_ext) {
        c->got_ext = true;
        n->st.ext_peers++;
        c->pex_next = uv_now(n->loop);
        for (size_t k = 0; k < n->nadv && c->state == C_OPEN; k++)
            send_have(c, &n->adv[k]);
        for (size_t k = 0; k < n->nmypend && c->state == C_OPEN; k++) {
            bool first = true; /* one PENDING per xorb */
            for (size_t j = 0; j < k && first; j++)
                first = !xet_hash_eq(&n->mypend[j].xorb, &n->mypend[k].xorb);
            if (first)
                send_pending(c, &n->mypend[k].xorb);
        }
    }
    /* a new peer may unblock waiting fetches */
    for (zp_fetch *f = n->fetches; f; f = f->next)
        if (!f->finishing && !f->mn && !f->manifest_pending)
            zp__fetch_manifest_next(f);
}

/* Returns false when the connection was closed. */
static bool handle_msg(zp_conn *c, const uint8_t *p, size_t len)
{
    uint8_t id = p[0];
    static const int fixed[10] = {1, 1, 1, 1, 5, -1, 13, -1, 13, 3};
    if (id <= 9 && fixed[id] > 0 && (size_t)fixed[id] != len) {
        zp__conn_ban(c);
        return false;
    }
    if (id != 20)
        return true; /* BT messages we do not use (choke, bitfield, …) and unknown ids */
    if (len < 2) {
        zp__conn_ban(c);
        return false;
    }
    if (p[1] == 0)
        handle_ext_handshake(c, p + 2, len - 2);
    else if (!c->got_ext)
        return true;
    else if (p[1] == ZP_EXT_ZFS_XET)
        handle_zfs(c, p + 2, len - 2);
    else if (p[1] == ZP_EXT_UT_XET)
        handle_ut(c, p + 2, len - 2);
    else if (p[1] == ZP_EXT_UT_PEX && !c->n->o.no_pex)
        zp__handle_pex(c, p + 2, len - 2);
    return c->state != C_CLOSING;
}

static bool handle_handshake(zp_conn *c, const uint8_t *p)
{
    zn_peer_node *n = c->n;
    uint8_t ih[20], pid[20];
    bool ext;
    if (zp_handshake_parse(p, ih, pid, &ext) != 0) {
        zp__conn_close(c); /* not BitTorrent (e.g. an encrypted handshake): not a lie */
        return false;
    }
    memcpy(c->pid, pid, 20);
    c->has_pid = true;
    if (c->outgoing ? memcmp(ih, c->ih, 20) != 0 : !zp__swarm_ok(n, ih)) {
        zp__conn_close(c);
        return false;
    }
    bool banned = c->outgoing ? zp__banned_addr(n, &c->addr) : zp__banned_ip(n, &c->addr);
    if (!memcmp(pid, n->id, 20) || banned || !ext) {
        zp__conn_close(c);
        return false;
    }
    memcpy(c->ih, ih, 20);
    if (!c->outgoing) {
        uint8_t *hs = malloc(68);
        if (!hs) {
            zp__conn_close(c);
            return false;
        }
        zp_handshake(hs, c->ih, n->id);
        zp__conn_write(c, hs, 68);
    }
    c->state = C_OPEN;
    n->st.peers++;
    zp__send_ext_handshake(c);
    return c->state == C_OPEN;
}

/* The header of a frame above ctrl_frame_max (11 bytes at p), before its
 * body is read: 0 buffer it, 1 discard it as it comes (the answer to a
 * request we gave up), -1 refuse it (a ban).  Only answers to our own
 * requests may be large, and none larger than what was asked for. */
static int frame_check(zp_conn *c, const uint8_t *p, uint32_t L)
{
    if (p[4] != 20)
        return -1;
    uint8_t ext = p[5], t = p[6];
    uint32_t id = xet_be32(p + 7);
    int kind;
    if (ext == ZP_EXT_ZFS_XET && t == ZP_DATA)
        kind = R_DATA;
    else if (ext == ZP_EXT_UT_XET && t == ZP_UT_RESPONSE)
        kind = R_UT;
    else if (ext == ZP_EXT_ZFS_XET && (t == ZP_MANIFEST || t == ZP_MPART))
        kind = R_MANIFEST;
    else
        return -1;
    zp_req *r = kind == R_UT ? req_find_ut(c, id) : req_find(c, id, kind);
    if (r)
        return L <= r->cap ? 0 : -1;
    for (unsigned k = 0; k < 32 && k < c->ngone; k++)
        if (c->gone[k] == id)
            return L <= c->gone_cap[k] ? 1 : -1;
    return -1;
}

/* Whether we answer the frame at p (7 bytes): requests, and the extension
 * handshake (our HAVEs follow it).  Only these wait while the queue is full;
 * answers to our own requests and announcements go on being handled. */
static bool frame_answered(const uint8_t *p)
{
    if (p[4] != 20)
        return false;
    return p[5] == 0 || (p[5] == ZP_EXT_ZFS_XET && (p[6] == ZP_REQUEST || p[6] == ZP_MREQ)) ||
           (p[5] == ZP_EXT_UT_XET && p[6] == ZP_UT_REQUEST);
}

static bool frame_is_data(const uint8_t *p)
{
    return p[4] == 20 && ((p[5] == ZP_EXT_ZFS_XET && p[6] == ZP_DATA) ||
                          (p[5] == ZP_EXT_UT_XET && p[6] == ZP_UT_RESPONSE));
}

/* Handle the complete frames in c->rbuf, at most TURN_MSGS / TURN_BYTES of
 * them (then c->more: the rest on the next loop turn, see on_yield), and
 * none while c's upload queue is full (c->blocked). */
static void process(zp_conn *c)
{
    zn_peer_node *n = c->n;
    size_t off = 0;
    unsigned msgs = 0;
    size_t bytes = 0;
    bool hok = c->head_ok;          /* of the frame at off */
    uint64_t hcnt = c->head_counted;
    while (c->state != C_CLOSING) {
        uint8_t *p = c->rbuf + off;
        size_t avail = c->rlen - off;
        if (c->skip) { /* a frame discarded as it comes */
            size_t k = avail < c->skip ? avail : (size_t)c->skip;
            c->skip -= k;
            c->data_bytes += k;
            off += k;
            hok = false, hcnt = 0;
            if (c->skip)
                break;
            continue;
        }
        if (c->state == C_HS) {
            if (avail < 68)
                break;
            if (!handle_handshake(c, p))
                return;
            off += 68;
            continue;
        }
        if (avail < 4)
            break;
        uint32_t L = xet_be32(p);
        if (L == 0) { /* keep-alive: not activity */
            off += 4;
            hok = false, hcnt = 0;
            continue;
        }
        if (avail >= 4 + (size_t)L && (msgs >= TURN_MSGS || bytes >= TURN_BYTES)) {
            c->more = true; /* the loop is shared: the rest on the next turn */
            zp__yield_start(n);
            break;
        }
        if (zp__out_full(c) && L >= 3 && (avail < 7 || frame_answered(p))) {
            c->blocked = true; /* its requests wait until what we owe it drains (out_sub) */
            break;
        }
        if (L > n->o.ctrl_frame_max && !hok) {
            if (avail < 11)
                break;
            int v = frame_check(c, p, L);
            if (v < 0) {
                zp__conn_ban(c);
                return;
            }
            if (v > 0) {
                c->skip = 4 + (uint64_t)L;
                continue;
            }
            hok = true;
        }
        if (avail >= 7 && frame_is_data(p)) { /* progress, counted as it comes */
            size_t got = avail < 4 + (size_t)L ? avail : 4 + (size_t)L;
            c->data_bytes += got - hcnt;
            hcnt = got;
        }
        if (avail < 4 + (size_t)L)
            break;
        c->last_active = uv_now(n->loop);
        if (!handle_msg(c, p + 4, L))
            return;
        off += 4 + (size_t)L;
        msgs++;
        bytes += 4 + (size_t)L;
        hok = false, hcnt = 0;
    }
    if (c->state == C_CLOSING)
        return;
    c->head_ok = hok;
    c->head_counted = hcnt;
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    /* shrink a buffer grown for a large frame */
    if (c->rcap > (1u << 20) && c->rlen < (256u << 10)) {
        uint8_t *q = realloc(c->rbuf, 256u << 10);
        if (q)
            c->rbuf = q, c->rcap = 256u << 10;
    }
}

void zp__on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *buf)
{
    zp_conn *c = h->data;
    size_t need = c->rlen + 65536;
    if (c->state == C_OPEN && c->head_ok && !c->skip && c->rlen >= 4) {
        size_t fl = 4 + (size_t)xet_be32(c->rbuf); /* checked by frame_check */
        if (fl > need)
            need = fl;
    }
    if (need > c->rcap) {
        size_t cap = c->rcap ? c->rcap : 65536;
        while (cap < need)
            cap *= 2;
        if (cap > need + 65536)
            cap = need + 65536; /* never far above the frame */
        uint8_t *q = realloc(c->rbuf, cap);
        if (!q) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->rbuf = q, c->rcap = cap;
    }
    size_t room = c->rcap - c->rlen;
    if (room > (1u << 30))
        room = 1u << 30;
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)room);
}

/* Read while there is room to handle what comes: not while a turn's
 * budget ran out (c->more) or c's upload queue is full (c->blocked). */

static void conn_reading(zp_conn *c)
{
    if (c->state != C_HS && c->state != C_OPEN)
        return;
    bool want = !c->more && !c->blocked;
    if (want == c->reading)
        return;
    if (want) {
        if (uv_read_start((uv_stream_t *)&c->tcp, zp__on_alloc, zp__on_read) != 0) {
            zp__conn_close(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = want;
}

static void on_yield(uv_idle_t *h)
{
    zn_peer_node *n = h->data;
    for (zp_conn *c = n->conns, *nx; c; c = nx) {
        nx = c->next;
        if (!c->more)
            continue;
        c->more = false;
        process(c);
        conn_reading(c);
    }
    bool again = false;
    for (zp_conn *c = n->conns; c && !again; c = c->next)
        again = c->more;
    if (!again) {
        uv_idle_stop(&n->yield);
        n->yielding = false;
    }
}

void zp__yield_start(zn_peer_node *n)
{
    if (n->yielding || n->closing)
        return;
    n->yielding = true;
    uv_idle_start(&n->yield, on_yield);
}

void zp__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    zp_conn *c = s->data;
    if (nread < 0 || (nread == 0 && !buf->base)) {
        if (c->state == C_OPEN && (c->rlen > 0 || c->skip) && nread == UV_EOF)
            zp__conn_ban(c); /* ended inside a frame: a truncated frame */
        else
            zp__conn_close(c);
        return;
    }
    if (c->state == C_CLOSING)
        return;
    c->rlen += (size_t)nread;
    c->n->st.bytes_down += (uint64_t)nread;
    c->last_rx = uv_now(c->n->loop);
    process(c);
    conn_reading(c);
}

void zn_peer_announce_have(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end)
{
    bool known = false;
    for (size_t k = 0; k < n->nadv && !known; k++)
        known = xet_hash_eq(&n->adv[k], xorb);
    if (!known) {
        xet_hash *a = realloc(n->adv, (n->nadv + 1) * sizeof *a);
        if (a) {
            n->adv = a;
            a[n->nadv++] = *xorb;
        }
    }
    for (zp_conn *c = n->conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->state == C_OPEN && c->got_ext)
            send_have(c, xorb);
    }
}

unsigned zn_peer_holders(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end)
{
    unsigned k = 0;
    for (zp_conn *c = n->conns; c; c = c->next)
        if (c->state == C_OPEN && (zp__have_covers(c, xorb, start, end) ||
                                   (zp__ut_only(c) && !zp__ut_lacks(c, xorb))))
            k++;
    return k;
}

void zn_peer_get_stats(zn_peer_node *n, zn_peer_stats *st)
{
    *st = n->st;
    st->conns = n->nconns;
}

void zn_peer_op_progress(const zn_peer_op *op, uint64_t *done, uint64_t *total)
{
    const zp_fetch *f = (const zp_fetch *)op;
    *done = f->done_bytes;
    *total = f->mn ? f->len : 0;
}

void zn_peer_announce_pending(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end,
                              bool on)
{
    if (n->closing || start >= end)
        return;
    size_t k = 0;
    for (; k < n->nmypend; k++)
        if (xet_hash_eq(&n->mypend[k].xorb, xorb) && n->mypend[k].start == start &&
            n->mypend[k].end == end)
            break;
    if (on && k == n->nmypend) {
        if (n->nmypend == MAX_MYPEND)
            return;
        zp_mypend *v = realloc(n->mypend, (n->nmypend + 1) * sizeof *v);
        if (!v)
            return;
        n->mypend = v;
        v[n->nmypend++] = (zp_mypend){*xorb, start, end};
    } else if (!on && k < n->nmypend) {
        n->mypend[k] = n->mypend[--n->nmypend];
    } else {
        return;
    }
    for (zp_conn *c = n->conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->state == C_OPEN && c->got_ext)
            send_pending(c, xorb);
    }
}

unsigned zn_peer_pending(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end)
{
    uint64_t now = uv_now(n->loop);
    unsigned cnt = 0;
    for (zp_conn *c = n->conns; c; c = c->next) {
        if (c->state != C_OPEN)
            continue;
        for (size_t k = 0; k < c->npend; k++) {
            zp_pend *e = &c->pend[k];
            if (e->until <= now || !xet_hash_eq(&e->xorb, xorb))
                continue;
            if (start >= end) { /* any run of the xorb */
                cnt += e->n > 0;
                break;
            }
            uint32_t s = start; /* runs in any order: advance while covered */
            bool progress = true;
            while (s < end && progress) {
                progress = false;
                for (uint32_t i = 0; i < e->n; i++)
                    if (e->runs[i].start <= s && e->runs[i].end > s) {
                        s = e->runs[i].end;
                        progress = true;
                    }
            }
            if (s >= end)
                cnt++;
            break;
        }
    }
    return cnt;
}
