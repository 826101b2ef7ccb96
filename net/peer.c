/* peer.c — the peer node: connections, BT + BEP 10 framing, zfs_xet and
 * ut_xet message handling, verified fetches, paced uploads (see peer.h for
 * the design and the wire format; codecs in peer_wire.c).
 *
 * Life cycle.  Everything that can outlive a call — connections (their
 *   uv_tcp_t), fetches (their completion timer), pool work, provider reads
 *   in progress — holds a reference on the node; zn_peer_node_free closes
 *   what it can and the memory goes when the last reference does.  A
 *   connection's memory goes in its close callback; requests, serves and
 *   paced sends that point at it are detached first.  A fetch's memory goes
 *   when its timer is closed and no pool work refers to it.
 * Fetch.  manifest (provider, node cache, or MREQ to peers one at a time) →
 *   parts (≤ 64 chunks, cut at every edge of the peers' announced runs so a
 *   part is wholly held or not by each peer) → each part requested from the
 *   least busy unbanned peer holding it that it was not tried on (zest peers,
 *   which announce nothing, last) → DATA verified on the pool → done when
 *   every part is; a part with no peer left fails the fetch.
 * Files.  This one: helpers, bans, writing, teardown, connection setup,
 *   timers, the node.  peer_msg.c what peers send (HAVE, messages, framing,
 *   reading); peer_serve.c answers and upload pacing; peer_verify.c DATA
 *   checked on the pool; peer_fetch.c fetch scheduling; pex.c PEX;
 *   peer_int.h what they share. */
#include "peer_int.h"

/* ---- small helpers --------------------------------------------------------- */

void zp__node_unref(zn_peer_node *n)
{
    if (--n->refs == 0 && n->closing) {
        for (size_t k = 0; k < n->nmc; k++)
            free(n->mc[k].h), free(n->mc[k].l);
        for (size_t k = 0; k < PARTS_CACHE; k++)
            free(n->pc[k].idx), free(n->pc[k].h), free(n->pc[k].l);
        free(n->bans);
        free(n->slow);
        free(n->mypend);
        free(n->swarms);
        free(n->adv);
        free(n->wdata);
        free(n);
    }
}

void zp__ip_key(const struct sockaddr_storage *ss, uint8_t ip[16], uint16_t *port)
{
    memset(ip, 0, 16);
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ss;
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &a->sin_addr, 4);
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        memcpy(ip, &a->sin6_addr, 16);
        *port = ntohs(a->sin6_port);
    }
}

/* Bans.  A liar's IP may not connect to us again (whatever peer id it
 * uses next) and its listen address is not dialled again, until the ban
 * expires (BAN_MS); at most MAX_BANS are kept (the one ending first goes). */
bool zp__banned_addr(zn_peer_node *n, const struct sockaddr_storage *ss)
{
    uint8_t ip[16];
    uint16_t port;
    zp__ip_key(ss, ip, &port);
    uint64_t now = uv_now(n->loop);
    for (size_t k = 0; k < n->nbans; k++)
        if (n->bans[k].until > now && !memcmp(n->bans[k].ip, ip, 16) && n->bans[k].port == port)
            return true;
    return false;
}

bool zp__banned_ip(zn_peer_node *n, const struct sockaddr_storage *ss)
{
    uint8_t ip[16];
    uint16_t port;
    zp__ip_key(ss, ip, &port);
    uint64_t now = uv_now(n->loop);
    for (size_t k = 0; k < n->nbans; k++)
        if (n->bans[k].until > now && !memcmp(n->bans[k].ip, ip, 16))
            return true;
    return false;
}

static void ban_add(zn_peer_node *n, const struct sockaddr_storage *ss, uint16_t listen_port)
{
    uint64_t now = uv_now(n->loop);
    size_t k2 = 0;
    for (size_t k = 0; k < n->nbans; k++) /* expired entries go */
        if (n->bans[k].until > now)
            n->bans[k2++] = n->bans[k];
    n->nbans = k2;
    zp_ban *e;
    if (n->nbans >= MAX_BANS) {
        size_t o = 0;
        for (size_t k = 1; k < n->nbans; k++)
            if (n->bans[k].until < n->bans[o].until)
                o = k;
        e = &n->bans[o];
    } else {
        zp_ban *b = realloc(n->bans, (n->nbans + 1) * sizeof *b);
        if (!b)
            return;
        n->bans = b;
        e = &b[n->nbans++];
    }
    memset(e, 0, sizeof *e);
    uint16_t port;
    zp__ip_key(ss, e->ip, &port);
    e->port = listen_port;
    e->until = now + n->o.ban_ms;
}

zp_conn *zp__conn_by_serial(zn_peer_node *n, uint64_t serial)
{
    for (zp_conn *c = n->conns; c; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

bool zp__tried(const uint64_t *t, size_t nt, uint64_t s)
{
    for (size_t k = 0; k < nt; k++)
        if (t[k] == s)
            return true;
    return false;
}

void zp__add_tried(uint64_t **t, size_t *nt, uint64_t s)
{
    uint64_t *q = realloc(*t, (*nt + 1) * sizeof *q);
    if (!q)
        return; /* then it may be retried on the same peer: harmless */
    q[(*nt)++] = s;
    *t = q;
}

/* ---- writing ------------------------------------------------------------------ */

typedef struct zp_wreq {
    uv_write_t w;
    zp_conn *c;
    uint8_t *buf;
    size_t len;
} zp_wreq;

/* Upload memory.  c->out counts what is queued for writing to c's peer
 * (libuv's queue, the pacing queue, answers being read from the store);
 * n->out_total the same over all peers.  Past PEER_OUT_CAP (or the node's
 * upload_mem_max) nothing more c's peer sent is handled — its requests
 * included — until the queue drains: reading stops, TCP pushes back. */
void zp__out_add(zp_conn *c, uint64_t b)
{
    if (c)
        c->out += b;
    c->n->out_total += b;
}

bool zp__out_full(const zp_conn *c)
{
    return c->out >= PEER_OUT_CAP || c->n->out_total >= c->n->o.upload_mem_max;
}

void zp__out_sub(zn_peer_node *n, zp_conn *c, uint64_t b)
{
    bool was_full = n->out_total >= n->o.upload_mem_max;
    n->out_total -= b;
    if (c) {
        c->out -= b;
        c->last_drain = uv_now(n->loop);
        if (c->blocked && !zp__out_full(c) && c->state != C_CLOSING) {
            c->blocked = false;
            c->more = true; /* what it sent meanwhile is handled on the next turn */
            zp__yield_start(n);
        }
    }
    if (was_full && n->out_total < n->o.upload_mem_max)
        for (zp_conn *o = n->conns; o; o = o->next)
            if (o->blocked && !zp__out_full(o)) {
                o->blocked = false;
                o->more = true;
                zp__yield_start(n);
            }
}

static void on_write(uv_write_t *w, int status)
{
    zp_wreq *r = (zp_wreq *)w;
    zp_conn *c = r->c; /* write callbacks come before the close callback */
    if (status == 0 && r->len > 4)
        c->last_active = uv_now(c->n->loop);
    zp__out_sub(c->n, c->state == C_CLOSING ? NULL : c, r->len);
    free(r->buf);
    free(r);
}

/* Takes ownership of buf (a whole frame); counted: already in c->out. */
void zp__conn_write2(zp_conn *c, uint8_t *buf, size_t len, bool counted)
{
    if (c->state == C_CLOSING || c->state == C_CONNECTING) {
        if (counted)
            zp__out_sub(c->n, c, len);
        free(buf);
        return;
    }
    zp_wreq *r = malloc(sizeof *r);
    if (!r) {
        if (counted)
            zp__out_sub(c->n, c, len);
        free(buf);
        zp__conn_close(c);
        return;
    }
    r->buf = buf;
    r->c = c;
    r->len = len;
    if (!counted)
        zp__out_add(c, len);
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        zp__out_sub(c->n, c, len);
        free(buf);
        free(r);
        zp__conn_close(c);
        return;
    }
    c->n->st.bytes_up += len;
    c->last_tx = uv_now(c->n->loop);
}

void zp__conn_write(zp_conn *c, uint8_t *buf, size_t len)
{
    zp__conn_write2(c, buf, len, false);
}

/* An extended message: [len][20][ext id][payload]. */
void zp__send_ext(zp_conn *c, uint8_t ext, const uint8_t *payload, size_t plen)
{
    uint8_t *b = malloc(6 + plen);
    if (!b) {
        zp__conn_close(c);
        return;
    }
    xet_put_be32(b, (uint32_t)(2 + plen));
    b[4] = 20;
    b[5] = ext;
    memcpy(b + 6, payload, plen);
    zp__conn_write(c, b, 6 + plen);
}

void zp__send_ext_handshake(zp_conn *c)
{
    zb_buf b = {0};
    zb_dict(&b);
    zb_cstr(&b, "m");
    zb_dict(&b);
    if (!c->n->o.no_pex) {
        zb_cstr(&b, "ut_pex");
        zb_int(&b, ZP_EXT_UT_PEX);
    }
    zb_cstr(&b, "ut_xet");
    zb_int(&b, ZP_EXT_UT_XET);
    zb_cstr(&b, "zfs_xet");
    zb_int(&b, ZP_EXT_ZFS_XET);
    zb_end(&b);
    if (c->n->port > 0) {
        zb_cstr(&b, "p");
        zb_int(&b, c->n->port);
    }
    zb_cstr(&b, "reqq");
    zb_int(&b, 250);
    zb_cstr(&b, "v");
    zb_cstr(&b, "zestfs/0.1");
    zb_cstr(&b, "zfs_caps");
    zb_int(&b, ZP_CAP_PENDING | ZP_CAP_MPART);
    zb_end(&b);
    if (b.err) {
        free(b.p);
        zp__conn_close(c);
        return;
    }
    zp__send_ext(c, 0, b.p, b.len);
    free(b.p);
}

/* ---- connection teardown ------------------------------------------------------- */

void zp__req_unlink(zp_req *r)
{
    zp_conn *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->nreqs--;
    c->qbytes -= r->bytes;
    if (r->kind == R_UTX)
        c->n->utx--;
}

/* A request given up (cancelled, timed out): its late answer is legitimate. */
void zp__req_forget(zp_req *r)
{
    zp_conn *c = r->c;
    c->gone_cap[c->ngone % 32] = r->cap;
    c->gone[c->ngone++ % 32] = r->id;
    if (r->kind == R_DATA && c->their_zfs) {
        uint8_t m[5];
        zp__send_ext(c, c->their_zfs, m, zp_zfs_cancel(m, r->id));
    }
}

/* A request failed on its peer (err: -ETIMEDOUT, -ENOENT, -EBADMSG...):
 * the part (or manifest) goes on with another peer. */
void zp__req_failed(zp_req *r, int err)
{
    zp_fetch *f = r->f;
    uint64_t serial = r->c->serial;
    zp__req_unlink(r);
    int kind = r->kind;
    size_t part = r->part;
    free(r);
    if (f->finishing)
        return;
    f->last_err = err;
    if (kind == R_MANIFEST || kind == R_UTX) {
        f->manifest_pending = false;
        zp__fetch_manifest_next(f);
        if (kind == R_UTX)
            zp__kick_all(f->n); /* fetches waiting for that zest peer */
    } else {
        f->parts[part].state = P_TODO;
        zp__add_tried(&f->parts[part].tried, &f->parts[part].ntried, serial);
        zp__fetch_schedule(f);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    zp_conn *c = h->data;
    zn_peer_node *n = c->n;
    free(c->rbuf);
    for (size_t k = 0; k < c->nhave; k++)
        free(c->have[k].runs);
    free(c->have);
    free(c->pex_told);
    free(c->pend);
    free(c);
    zp__node_unref(n);
}

void zp__conn_close(zp_conn *c)
{
    if (c->state == C_CLOSING)
        return;
    zn_peer_node *n = c->n;
    bool was_open = c->state == C_OPEN;
    c->state = C_CLOSING;
    if (was_open) {
        n->st.peers--;
        if (c->got_ext)
            n->st.ext_peers--;
    }
    n->nconns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    zp__pace_drop_conn(n, c);
    for (zp_serve *s = c->serves; s; s = s->next)
        s->c = NULL;
    c->serves = NULL;
    while (c->reqs)
        zp__req_failed(c->reqs, -ECONNRESET);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (!n->closing)
        zp__kick_all(n); /* fetches waiting for this peer, or for any peer */
}

void zp__conn_ban(zp_conn *c)
{
    zn_peer_node *n = c->n;
    if (c->state == C_CLOSING)
        return;
    struct sockaddr_storage a;
    uint16_t lport = 0; /* an incoming peer's source port means nothing */
    if (zp__listen_addr(c, &a)) {
        uint8_t ip[16];
        zp__ip_key(&a, ip, &lport);
    }
    ban_add(n, &c->addr, lport);
    n->st.bans++;
    zp__conn_close(c);
}

/* A peer that is too slow: disconnected, not dialled again for a while. */
static void conn_slow(zp_conn *c)
{
    zn_peer_node *n = c->n;
    if (c->state == C_CLOSING)
        return;
    struct sockaddr_storage a;
    if (zp__listen_addr(c, &a)) {
        uint64_t now = uv_now(n->loop);
        size_t k2 = 0;
        for (size_t k = 0; k < n->nslow; k++) /* expired entries go */
            if (n->slow[k].until > now)
                n->slow[k2++] = n->slow[k];
        n->nslow = k2;
        zp_slow *v = realloc(n->slow, (n->nslow + 1) * sizeof *v);
        if (v) {
            n->slow = v;
            zp__ip_key(&a, v[n->nslow].ip, &v[n->nslow].port);
            v[n->nslow++].until = now + n->o.slow_ban_ms;
        }
    }
    n->st.slow_drops++;
    zp__conn_close(c);
}

bool zp__slow_listed(zn_peer_node *n, const struct sockaddr_storage *ss)
{
    uint8_t ip[16];
    uint16_t port;
    zp__ip_key(ss, ip, &port);
    uint64_t now = uv_now(n->loop);
    for (size_t k = 0; k < n->nslow; k++)
        if (n->slow[k].until > now && n->slow[k].port == port && !memcmp(n->slow[k].ip, ip, 16))
            return true;
    return false;
}

/* ---- connection setup ------------------------------------------------------------ */

static zp_conn *conn_new(zn_peer_node *n, bool outgoing)
{
    zp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (uv_tcp_init(n->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    c->n = n;
    c->tcp.data = c;
    c->serial = ++n->serial;
    c->outgoing = outgoing;
    c->next_id = 1;
    c->t_open = c->last_rx = c->last_tx = c->last_active = c->last_drain = uv_now(n->loop);
    c->next = n->conns;
    if (n->conns)
        n->conns->prev = c;
    n->conns = c;
    n->nconns++;
    n->refs++;
    return c;
}

static void on_connect(uv_connect_t *req, int status)
{
    zp_conn *c = req->data;
    if (c->state == C_CLOSING)
        return;
    if (status != 0) {
        zp__conn_close(c);
        return;
    }
    c->state = C_HS;
    uint8_t *hs = malloc(68);
    if (!hs || uv_read_start((uv_stream_t *)&c->tcp, zp__on_alloc, zp__on_read) != 0) {
        free(hs);
        zp__conn_close(c);
        return;
    }
    c->reading = true;
    zp_handshake(hs, c->ih, c->n->id);
    zp__conn_write(c, hs, 68);
}

static void on_connection(uv_stream_t *srv, int status)
{
    zn_peer_node *n = srv->data;
    if (status != 0 || n->closing)
        return;
    zp_conn *c = conn_new(n, false);
    if (!c)
        return;
    c->state = C_HS;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        zp__conn_close(c);
        return;
    }
    int alen = sizeof c->addr;
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->addr, &alen);
    if (n->nconns > n->o.max_conns || zp__banned_ip(n, &c->addr) ||
        uv_read_start((uv_stream_t *)&c->tcp, zp__on_alloc, zp__on_read) != 0) {
        zp__conn_close(c);
        return;
    }
    c->reading = true;
}

bool zp__swarm_ok(zn_peer_node *n, const uint8_t ih[20])
{
    for (size_t k = 0; k < n->nswarms; k++)
        if (!memcmp(n->swarms[k], ih, 20))
            return true;
    return n->p.may_serve && n->p.may_serve(n->p.ud, ih);
}

/* ---- timers ------------------------------------------------------------------------- */

/* Whether c's peer read nothing of what we queued for it for write_stall_ms. */
static bool conn_stalled(zp_conn *c, uint64_t now)
{
    uint64_t q = c->tcp.write_queue_size;
    if (q == 0 || q < c->out_seen)
        c->last_drain = now;
    c->out_seen = q;
    return now - c->last_drain > c->n->o.write_stall_ms;
}

static void on_tick(uv_timer_t *t)
{
    zn_peer_node *n = t->data;
    uint64_t now = uv_now(n->loop);
    uint64_t dt = n->last_tick && now > n->last_tick ? now - n->last_tick : TICK_MS;
    n->last_tick = now;
    if (dt > 1000)
        dt = 1000; /* the loop was blocked: do not blame the peers */
    zp_conn *c = n->conns;
    while (c) {
        zp_conn *nx = c->next;
        if (c->state == C_OPEN && (c->nreqs || c->skip || c->head_counted)) { /* speed while busy */
            c->busy_ms += dt;
            if (c->busy_ms >= n->o.slow_window_ms &&
                c->data_bytes * 1000 / c->busy_ms < n->o.min_rate) {
                conn_slow(c);
                c = nx;
                continue;
            }
            if (c->busy_ms > 4ull * n->o.slow_window_ms) { /* decay: recent speed counts */
                c->busy_ms /= 2;
                c->data_bytes /= 2;
            }
        }
        if (c->state == C_OPEN && c->their_pex && now >= c->pex_next) {
            zp__pex_send(c);
            /* until something was said, look again at every tick */
            if (c->pex_sent_msgs)
                c->pex_next = now + n->o.pex_interval_ms;
        }
        if ((c->state == C_HS || c->state == C_CONNECTING) && now - c->t_open > HS_TIMEOUT_MS) {
            zp__conn_close(c);
        } else if (c->state == C_OPEN && now - c->last_active > IDLE_TIMEOUT_MS) {
            zp__conn_close(c); /* keep-alives alone do not hold a connection */
        } else if (c->state == C_OPEN && conn_stalled(c, now)) {
            n->st.stall_drops++;
            conn_slow(c);
        } else if (c->state == C_OPEN) {
            if (now - c->last_tx > KEEPALIVE_MS) {
                uint8_t *ka = calloc(1, 4);
                if (ka)
                    zp__conn_write(c, ka, 4);
            }
            for (zp_req *r = c->reqs; r && c->state == C_OPEN;) {
                if (r->deadline <= now) {
                    zp__req_forget(r);
                    zp__req_failed(r, -ETIMEDOUT);
                    c->timeouts++;
                    r = c->reqs; /* the list may have changed */
                } else {
                    r = r->next;
                }
            }
            if (c->state == C_OPEN && c->timeouts >= SLOW_TIMEOUTS)
                conn_slow(c);
        }
        c = nx;
    }
    /* a zest peer answers one request at a time and fetches wait for it: once
     * a second, while one is idle, they are looked at again (a safety net:
     * its answers and failures kick them already) */
    if (n->wdata && now >= n->wuntil)
        zp__whole_drop(n);
    bool ut = false;
    if (now - n->ut_kick >= 1000) {
        for (zp_conn *c = n->conns; c && !ut; c = c->next)
            ut = zp__ut_only(c) && c->nreqs < UT_OUTSTANDING;
        if (ut)
            n->ut_kick = now;
    }
    for (zp_fetch *f = n->fetches; f; f = f->next)
        if (!f->finishing && f->deadline && now >= f->deadline)
            zp__fetch_finish(f, -ETIMEDOUT);
        else if (ut && !f->finishing && !f->mn && !f->manifest_pending)
            zp__fetch_manifest_next(f);
        else if (ut && !f->finishing && f->mn && f->ndone + f->work < f->nparts)
            zp__fetch_schedule(f);
}

/* ---- node ------------------------------------------------------------------------------ */

static void on_node_handle_closed(uv_handle_t *h)
{
    zp__node_unref(h->data);
}

int zn_peer_node_new(uv_loop_t *loop, const zn_peer_opts *o, const zn_peer_provider *p,
                     zn_peer_node **out)
{
    zn_peer_node *n = calloc(1, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->loop = loop;
    if (o)
        n->o = *o;
    if (p)
        n->p = *p;
    if (!n->o.max_conns)
        n->o.max_conns = 64;
    if (!n->o.req_timeout_ms)
        n->o.req_timeout_ms = 15000;
    if (!n->o.ctrl_frame_max)
        n->o.ctrl_frame_max = ZP_CTRL_FRAME_MAX;
    if (!n->o.data_frame_max)
        n->o.data_frame_max = ZP_DATA_FRAME_MAX;
    if (!n->o.pex_interval_ms)
        n->o.pex_interval_ms = 60000;
    if (!n->o.min_rate)
        n->o.min_rate = 256u << 10;
    if (!n->o.slow_window_ms)
        n->o.slow_window_ms = 4000;
    if (!n->o.slow_ban_ms)
        n->o.slow_ban_ms = 600000;
    if (!n->o.ban_ms)
        n->o.ban_ms = BAN_MS;
    if (!n->o.upload_mem_max)
        n->o.upload_mem_max = UPLOAD_MEM_MAX;
    if (!n->o.write_stall_ms)
        n->o.write_stall_ms = WRITE_STALL_MS;
    memcpy(n->id, ZP_PEER_ID_PREFIX, 8);
    if (uv_random(NULL, NULL, n->id + 8, 12, 0, NULL) != 0) {
        free(n);
        return -EIO;
    }
    int r;
    if (!n->o.no_listen) {
        const char *bind = n->o.bind ? n->o.bind : "0.0.0.0";
        struct sockaddr_storage ss;
        if (strchr(bind, ':'))
            r = uv_ip6_addr(bind, n->o.listen_port, (struct sockaddr_in6 *)&ss);
        else
            r = uv_ip4_addr(bind, n->o.listen_port, (struct sockaddr_in *)&ss);
        if (r) {
            free(n);
            return -EINVAL;
        }
        uv_tcp_init(loop, &n->listener);
        n->listener.data = n;
        n->refs++;
        r = uv_tcp_bind(&n->listener, (struct sockaddr *)&ss, 0);
        if (!r)
            r = uv_listen((uv_stream_t *)&n->listener, 128, on_connection);
        if (r) {
            n->closing = true;
            uv_close((uv_handle_t *)&n->listener, on_node_handle_closed);
            return r;
        }
        n->listening = true;
        int alen = sizeof ss;
        uv_tcp_getsockname(&n->listener, (struct sockaddr *)&ss, &alen);
        n->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    uv_timer_init(loop, &n->tick);
    n->tick.data = n;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&n->tick);
    uv_timer_init(loop, &n->pace);
    n->pace.data = n;
    uv_idle_init(loop, &n->yield);
    n->yield.data = n;
    n->refs += 3;
    *out = n;
    return 0;
}

int zn_peer_node_port(zn_peer_node *n)
{
    return n->port;
}

const uint8_t *zn_peer_node_id(zn_peer_node *n)
{
    return n->id;
}

void zn_peer_node_free(zn_peer_node *n)
{
    if (!n || n->closing)
        return;
    n->closing = true;
    n->refs++; /* held while we go */
    for (zp_fetch *f = n->fetches; f; f = f->next)
        zp__fetch_finish(f, -ECANCELED);
    for (zp_fetch *f = n->fetches, *nx; f; f = nx) {
        nx = f->next;
        zp__fetch_deliver(f);
    }
    while (n->conns)
        zp__conn_close(n->conns);
    while (n->pq) {
        zp_paced *e = n->pq;
        n->pq = e->next;
        free(e->buf);
        free(e);
    }
    n->pq_tail = NULL;
    if (n->listening)
        uv_close((uv_handle_t *)&n->listener, on_node_handle_closed);
    uv_close((uv_handle_t *)&n->tick, on_node_handle_closed);
    uv_close((uv_handle_t *)&n->pace, on_node_handle_closed);
    uv_close((uv_handle_t *)&n->yield, on_node_handle_closed);
    zp__node_unref(n);
}

int zn_peer_swarm_join(zn_peer_node *n, const uint8_t info_hash[20])
{
    for (size_t k = 0; k < n->nswarms; k++)
        if (!memcmp(n->swarms[k], info_hash, 20))
            return 0;
    uint8_t(*s)[20] = realloc(n->swarms, (n->nswarms + 1) * sizeof *s);
    if (!s)
        return -ENOMEM;
    n->swarms = s;
    memcpy(s[n->nswarms++], info_hash, 20);
    return 0;
}

/* An IPv4 or IPv6 address into ss (zeroed first); false for another family. */
static bool addr_copy(struct sockaddr_storage *ss, const struct sockaddr *sa)
{
    memset(ss, 0, sizeof *ss);
    if (sa->sa_family == AF_INET)
        memcpy(ss, sa, sizeof(struct sockaddr_in));
    else if (sa->sa_family == AF_INET6)
        memcpy(ss, sa, sizeof(struct sockaddr_in6));
    return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

int zn_peer_add(zn_peer_node *n, const uint8_t info_hash[20], const struct sockaddr *sa)
{
    if (n->closing)
        return -ESHUTDOWN;
    struct sockaddr_storage ss;
    if (!addr_copy(&ss, sa))
        return -EAFNOSUPPORT;
    if (zp__banned_addr(n, &ss))
        return -EPERM;
    if (zp__slow_listed(n, &ss))
        return -EAGAIN;
    if (n->nconns >= n->o.max_conns)
        return -EMFILE;
    uint8_t ip[16], ip2[16];
    uint16_t port, port2;
    zp__ip_key(&ss, ip, &port);
    for (zp_conn *c = n->conns; c; c = c->next) {
        if (!c->outgoing)
            continue;
        zp__ip_key(&c->addr, ip2, &port2);
        if (port == port2 && !memcmp(ip, ip2, 16) && !memcmp(c->ih, info_hash, 20))
            return -EALREADY;
    }
    int r = zn_peer_swarm_join(n, info_hash);
    if (r)
        return r;
    zp_conn *c = conn_new(n, true);
    if (!c)
        return -ENOMEM;
    c->addr = ss;
    memcpy(c->ih, info_hash, 20);
    c->state = C_CONNECTING;
    c->creq.data = c;
    r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (r) {
        c->state = C_HS; /* so conn_close does the normal teardown */
        zp__conn_close(c);
        return r;
    }
    return 0;
}

int zn_peer_add_xorb(zn_peer_node *n, const uint8_t info_hash[20], const struct sockaddr *sa)
{
    struct sockaddr_storage ss;
    if (!addr_copy(&ss, sa))
        return -EAFNOSUPPORT;
    uint8_t ip[16], ip2[16];
    uint16_t port, port2;
    zp__ip_key(&ss, ip, &port);
    for (zp_conn *c = n->conns; c; c = c->next) {
        if (!c->outgoing || c->state == C_CLOSING)
            continue;
        zp__ip_key(&c->addr, ip2, &port2);
        if (port == port2 && !memcmp(ip, ip2, 16) &&
            (c->state != C_OPEN || !c->got_ext || zp__ut_only(c)))
            return -EALREADY; /* zest (or not known yet): one connection serves every xorb */
    }
    return zn_peer_add(n, info_hash, sa);
}

int zn_peer_adopt(zn_peer_node *n, int fd, const uint8_t info_hash[20])
{
    if (n->closing)
        return -ESHUTDOWN;
    if (n->nconns >= n->o.max_conns)
        return -EMFILE;
    if (info_hash) {
        int r = zn_peer_swarm_join(n, info_hash);
        if (r)
            return r;
    }
    zp_conn *c = conn_new(n, info_hash != NULL);
    if (!c)
        return -ENOMEM;
    c->state = C_HS;
    if (info_hash)
        memcpy(c->ih, info_hash, 20);
    int r = uv_tcp_open(&c->tcp, fd);
    if (!r)
        r = uv_read_start((uv_stream_t *)&c->tcp, zp__on_alloc, zp__on_read);
    if (r) {
        zp__conn_close(c);
        return r;
    }
    c->reading = true;
    if (info_hash) {
        uint8_t *hs = malloc(68);
        if (!hs) {
            zp__conn_close(c);
            return -ENOMEM;
        }
        zp_handshake(hs, c->ih, n->id);
        zp__conn_write(c, hs, 68);
    }
    return 0;
}
