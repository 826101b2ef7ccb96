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
 *   every part is; a part with no peer left fails the fetch. */
#include "peer.h"
#include "bencode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "disc.h"

#define MAX_PART_CHUNKS 64u
#define MAX_OUTSTANDING 16u     /* requests we keep outstanding on one connection */
#define MAX_SERVES 64u          /* requests of one peer we answer concurrently */
#define MAX_HAVE_XORBS 4096u    /* xorbs remembered per peer */
#define MANIFEST_CACHE 256u
#define HS_TIMEOUT_MS 10000u
#define IDLE_TIMEOUT_MS 300000u
#define KEEPALIVE_MS 90000u
#define TICK_MS 50u
#define MAX_PEX_SENT 200u       /* addresses remembered as told, per connection */
#define MAX_PEND 256u           /* xorbs with pending runs remembered per peer */
#define MAX_PEND_RUNS 16u
#define MAX_MYPEND 1024u        /* our own pending runs */
#define SLOW_TIMEOUTS 2u
/* bounds on what one peer can make us hold or spend (issue #19) */
#define ANSWER_MAX (15u + MAX_PART_CHUNKS * (XET_CHUNK_HEADER_LEN + XET_CHUNK_MAX))
#define PEER_OUT_CAP (2u * ANSWER_MAX)   /* queued for writing to one peer: two answers */
#define UPLOAD_MEM_MAX (64u << 20)       /* queued for writing to all peers */
#define WRITE_STALL_MS 20000u            /* a peer that reads nothing for this long goes */
#define SMALL_FRAME_MAX (64u << 10)      /* frames nobody asked for (HAVE ≤ 32 KiB) */
#define MANIFEST_FRAME_MAX (2u + 9u + 40u * XET_XORB_MAX_CHUNKS) /* MANIFEST / MPART */
#define TURN_MSGS 16u                    /* messages of one peer handled per loop turn */
#define TURN_BYTES (64u << 10)           /* frame bytes of one peer handled per loop turn */
#define MAX_HAVE_RUNS_PEER 65536u        /* announced runs remembered per peer */
#define MAX_BANS 1024u
#define BAN_MS (3600u * 1000u)
#define PARTS_TTL_MS 2000u               /* an MPART answer is reused for this long */
#define PARTS_CACHE 64u

enum { C_CONNECTING, C_HS, C_OPEN, C_CLOSING };
enum { R_DATA, R_MANIFEST, R_UT };
enum { P_TODO, P_INFLIGHT, P_VERIFY, P_DONE };

typedef struct zp_conn zp_conn;
typedef struct zp_fetch zp_fetch;

typedef struct zp_have { /* what a peer announced: sorted disjoint runs */
    xet_hash xorb;
    zn_chunk_run *runs;
    uint32_t n;
} zp_have;

typedef struct zp_part {
    uint32_t start, end;
    int state;
    uint64_t *tried;   /* conn serials this part failed on */
    size_t ntried;
} zp_part;

typedef struct zp_pend { /* runs a peer said it is fetching */
    xet_hash xorb;
    zn_chunk_run runs[MAX_PEND_RUNS];
    uint32_t n;
    uint64_t until;
} zp_pend;

typedef struct zp_mypend { /* runs we are fetching elsewhere */
    xet_hash xorb;
    uint32_t start, end;
} zp_mypend;

typedef struct zp_slow {
    uint8_t ip[16];
    uint16_t port;
    uint64_t until;
} zp_slow;

typedef struct zp_req {
    uint32_t id;
    int kind;
    uint64_t bytes;    /* decoded bytes asked for (R_DATA / R_UT) */
    zp_conn *c;
    zp_fetch *f;
    size_t part;       /* R_DATA / R_UT */
    uint64_t deadline;
    uint32_t cap;      /* the largest answer frame it may get */
    struct zp_req *next, *prev;
} zp_req;

typedef struct zp_serve {
    zn_peer_node *n;
    zp_conn *c;        /* NULL once the connection is gone */
    uint32_t req;
    bool ut, cancelled;
    uint32_t start, end;
    uint64_t res;      /* upload bytes reserved for the answer */
    struct zp_serve *next, *prev;
} zp_serve;

typedef struct zp_paced {
    zp_conn *c;
    uint8_t *buf;
    size_t len;
    struct zp_paced *next;
} zp_paced;

struct zp_conn {
    zn_peer_node *n;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uint64_t serial;
    int state;
    bool outgoing, got_ext;
    struct sockaddr_storage addr;
    uint8_t ih[20], pid[20];
    bool has_pid;
    uint8_t their_ut, their_zfs, their_pex;
    uint16_t their_port;  /* listen port of its extension handshake */
    uint32_t caps;
    uint8_t *rbuf;
    size_t rlen, rcap;
    zp_req *reqs;
    unsigned nreqs;
    uint32_t next_id;
    uint32_t gone[32];  /* ids of requests recently cancelled or timed out */
    uint32_t gone_cap[32]; /* and the largest answer each may still get */
    unsigned ngone;
    zp_have *have;
    size_t nhave, have_runs;
    /* bounds (issue #19) */
    uint64_t out;       /* bytes queued for writing (written, paced, reserved) */
    uint64_t out_seen;  /* libuv's write queue at the last tick */
    uint64_t last_drain; /* when writing last made progress */
    uint64_t skip;      /* bytes of a frame being discarded as they come */
    uint64_t head_counted; /* bytes of the data frame at rbuf[0] counted as progress */
    bool head_ok;       /* the frame at rbuf[0] passed its header checks */
    uint64_t last_active; /* a message other than a keep-alive, either way */
    bool reading, more, blocked;
    zp_serve *serves;
    unsigned nserves;
    uint64_t t_open, last_rx, last_tx;
    /* PEX */
    uint64_t pex_next, pex_last_rx;
    unsigned pex_sent_msgs, pex_rx_msgs;
    struct sockaddr_storage *pex_told;
    size_t npex_told;
    /* speed: data bytes per ms of our requests outstanding (decayed) */
    uint64_t busy_ms, data_bytes, qbytes;
    unsigned timeouts;
    zp_pend *pend;
    size_t npend;
    zp_conn *next, *prev;
};

struct zp_fetch {
    zn_peer_node *n;
    xet_hash xorb;
    uint32_t start, end;
    zn_peer_fetch_cb cb;
    void *ud;
    uint64_t deadline;
    xet_hash *mh;
    uint32_t *ml;
    uint32_t mn;
    uint64_t *off;     /* output offset of chunk start+k */
    uint8_t *data;
    size_t len;
    zp_part *parts;
    size_t nparts, ndone;
    uint64_t done_bytes;
    uint64_t *mtried;  /* conns asked for the manifest */
    size_t nmtried;
    /* a manifest being put together from MPARTs (and our own parts):
     * XET_XORB_MAX_CHUNKS entries each, allocated at the first part */
    xet_hash *ah;
    uint32_t *al;
    uint8_t *ak;       /* 1: entry known */
    bool own_merged;
    bool manifest_pending, finishing, delivered, timer_closed;
    int result, last_err;
    unsigned work;     /* pool items referring to this fetch */
    uv_timer_t timer;
    zp_fetch *next, *prev;
};

struct zn_peer_op {
    zp_fetch f;
};

typedef struct zp_ban { /* an address that lied: no connection from its IP, no dial of it */
    uint8_t ip[16];
    uint16_t port;     /* its listen port (0: unknown) */
    uint64_t until;
} zp_ban;

typedef struct zp_pcache { /* what provider->parts said lately */
    xet_hash xorb;
    uint64_t at;
    uint32_t *idx, *l;
    xet_hash *h;
    uint32_t m;        /* 0: none */
} zp_pcache;

typedef struct zp_mcache {
    xet_hash xorb;
    xet_hash *h;
    uint32_t *l;
    uint32_t n;
} zp_mcache;

struct zn_peer_node {
    uv_loop_t *loop;
    zn_peer_opts o;
    zn_peer_provider p;
    uv_tcp_t listener;
    bool listening;
    uv_timer_t tick, pace;
    uint8_t id[20];
    int port;
    zp_conn *conns;
    unsigned nconns;
    uint64_t serial;
    zp_fetch *fetches;
    zp_ban *bans;
    size_t nbans;
    uint8_t (*swarms)[20];
    size_t nswarms;
    xet_hash *adv;       /* xorbs announced with zn_peer_announce_have */
    size_t nadv;
    zp_mcache mc[MANIFEST_CACHE];
    size_t nmc, mc_next;
    zp_pcache pc[PARTS_CACHE];
    size_t pc_next;
    uint64_t out_total;  /* bytes queued for writing to all peers */
    uv_idle_t yield;     /* handles the rest of what peers sent after a full turn */
    bool yielding;
    zp_paced *pq, *pq_tail;
    uint64_t pace_next_us;
    zp_slow *slow;
    size_t nslow;
    zp_mypend *mypend;
    size_t nmypend;
    uint64_t last_tick;
    zn_peer_stats st;
    unsigned refs;
    bool closing;
};

static void conn_close(zp_conn *c);
static void conn_ban(zp_conn *c);
static void fetch_schedule(zp_fetch *f);
static void fetch_finish(zp_fetch *f, int err);
static void manifest_accept(zp_fetch *f, xet_hash *h, uint32_t *l, uint32_t cnt);
static void fetch_manifest_next(zp_fetch *f);
static void kick_all(zn_peer_node *n);
static bool listen_addr(const zp_conn *c, struct sockaddr_storage *out);

/* ---- small helpers --------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void node_unref(zn_peer_node *n)
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
        free(n);
    }
}

static void ip_key(const struct sockaddr_storage *ss, uint8_t ip[16], uint16_t *port)
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
static bool banned_addr(zn_peer_node *n, const struct sockaddr_storage *ss)
{
    uint8_t ip[16];
    uint16_t port;
    ip_key(ss, ip, &port);
    uint64_t now = uv_now(n->loop);
    for (size_t k = 0; k < n->nbans; k++)
        if (n->bans[k].until > now && !memcmp(n->bans[k].ip, ip, 16) && n->bans[k].port == port)
            return true;
    return false;
}

static bool banned_ip(zn_peer_node *n, const struct sockaddr_storage *ss)
{
    uint8_t ip[16];
    uint16_t port;
    ip_key(ss, ip, &port);
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
    ip_key(ss, e->ip, &port);
    e->port = listen_port;
    e->until = now + n->o.ban_ms;
}

static zp_conn *conn_by_serial(zn_peer_node *n, uint64_t serial)
{
    for (zp_conn *c = n->conns; c; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

static bool tried(const uint64_t *t, size_t nt, uint64_t s)
{
    for (size_t k = 0; k < nt; k++)
        if (t[k] == s)
            return true;
    return false;
}

static void add_tried(uint64_t **t, size_t *nt, uint64_t s)
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
static void out_add(zp_conn *c, uint64_t b)
{
    if (c)
        c->out += b;
    c->n->out_total += b;
}

static bool out_full(const zp_conn *c)
{
    return c->out >= PEER_OUT_CAP || c->n->out_total >= c->n->o.upload_mem_max;
}

static void conn_reading(zp_conn *c);
static void yield_start(zn_peer_node *n);

static void out_sub(zn_peer_node *n, zp_conn *c, uint64_t b)
{
    bool was_full = n->out_total >= n->o.upload_mem_max;
    n->out_total -= b;
    if (c) {
        c->out -= b;
        c->last_drain = uv_now(n->loop);
        if (c->blocked && !out_full(c) && c->state != C_CLOSING) {
            c->blocked = false;
            c->more = true; /* what it sent meanwhile is handled on the next turn */
            yield_start(n);
        }
    }
    if (was_full && n->out_total < n->o.upload_mem_max)
        for (zp_conn *o = n->conns; o; o = o->next)
            if (o->blocked && !out_full(o)) {
                o->blocked = false;
                o->more = true;
                yield_start(n);
            }
}

static void on_write(uv_write_t *w, int status)
{
    zp_wreq *r = (zp_wreq *)w;
    zp_conn *c = r->c; /* write callbacks come before the close callback */
    if (status == 0 && r->len > 4)
        c->last_active = uv_now(c->n->loop);
    out_sub(c->n, c->state == C_CLOSING ? NULL : c, r->len);
    free(r->buf);
    free(r);
}

/* Takes ownership of buf (a whole frame); counted: already in c->out. */
static void conn_write2(zp_conn *c, uint8_t *buf, size_t len, bool counted)
{
    if (c->state == C_CLOSING || c->state == C_CONNECTING) {
        if (counted)
            out_sub(c->n, c, len);
        free(buf);
        return;
    }
    zp_wreq *r = malloc(sizeof *r);
    if (!r) {
        if (counted)
            out_sub(c->n, c, len);
        free(buf);
        conn_close(c);
        return;
    }
    r->buf = buf;
    r->c = c;
    r->len = len;
    if (!counted)
        out_add(c, len);
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        out_sub(c->n, c, len);
        free(buf);
        free(r);
        conn_close(c);
        return;
    }
    c->n->st.bytes_up += len;
    c->last_tx = uv_now(c->n->loop);
}

static void conn_write(zp_conn *c, uint8_t *buf, size_t len)
{
    conn_write2(c, buf, len, false);
}

/* An extended message: [len][20][ext id][payload]. */
static void send_ext(zp_conn *c, uint8_t ext, const uint8_t *payload, size_t plen)
{
    uint8_t *b = malloc(6 + plen);
    if (!b) {
        conn_close(c);
        return;
    }
    put32(b, (uint32_t)(2 + plen));
    b[4] = 20;
    b[5] = ext;
    memcpy(b + 6, payload, plen);
    conn_write(c, b, 6 + plen);
}

static void send_ext_handshake(zp_conn *c)
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
        conn_close(c);
        return;
    }
    send_ext(c, 0, b.p, b.len);
    free(b.p);
}

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
        conn_write2(e->c, e->buf, e->len, true);
        free(e);
    }
}

/* buf's len is already counted in c->out. */
static void send_paced(zp_conn *c, uint8_t *buf, size_t len)
{
    zn_peer_node *n = c->n;
    if (!n->o.upload_rate) {
        conn_write2(c, buf, len, true);
        return;
    }
    zp_paced *e = calloc(1, sizeof *e);
    if (!e) {
        out_sub(n, c, len);
        free(buf);
        conn_close(c);
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

static void pace_drop_conn(zn_peer_node *n, zp_conn *c)
{
    zp_paced **pp = &n->pq;
    n->pq_tail = NULL;
    while (*pp) {
        if ((*pp)->c == c) {
            zp_paced *e = *pp;
            *pp = e->next;
            out_sub(n, NULL, e->len); /* c is closing: its own count goes with it */
            free(e->buf);
            free(e);
        } else {
            n->pq_tail = *pp;
            pp = &(*pp)->next;
        }
    }
}

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
            send_ext(c, c->their_zfs, p, l);
            free(p);
        }
    }
    free(runs);
}

static zp_have *have_find(zp_conn *c, const xet_hash *x)
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

static bool have_covers(zp_conn *c, const xet_hash *x, uint32_t s, uint32_t e)
{
    zp_have *h = have_find(c, x);
    if (!h || e > XET_XORB_MAX_CHUNKS || s >= e)
        return false;
    const zn_chunk_run *r = have_run(h, s);
    return r && r->end >= e;
}

static bool have_bit(const zp_have *h, uint32_t i)
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
        uint32_t s = get32(body + 8 * k), e = get32(body + 8 * k + 4);
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

/* ---- connection teardown ------------------------------------------------------- */

static void req_unlink(zp_req *r)
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
}

/* A request given up (cancelled, timed out): its late answer is legitimate. */
static void req_forget(zp_req *r)
{
    zp_conn *c = r->c;
    c->gone_cap[c->ngone % 32] = r->cap;
    c->gone[c->ngone++ % 32] = r->id;
    if (r->kind == R_DATA && c->their_zfs) {
        uint8_t m[5];
        send_ext(c, c->their_zfs, m, zp_zfs_cancel(m, r->id));
    }
}

/* A request failed on its peer (err: -ETIMEDOUT, -ENOENT, -EBADMSG...):
 * the part (or manifest) goes on with another peer. */
static void req_failed(zp_req *r, int err)
{
    zp_fetch *f = r->f;
    uint64_t serial = r->c->serial;
    req_unlink(r);
    int kind = r->kind;
    size_t part = r->part;
    free(r);
    if (f->finishing)
        return;
    f->last_err = err;
    if (kind == R_MANIFEST) {
        f->manifest_pending = false;
        fetch_manifest_next(f);
    } else {
        f->parts[part].state = P_TODO;
        add_tried(&f->parts[part].tried, &f->parts[part].ntried, serial);
        fetch_schedule(f);
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
    node_unref(n);
}

static void conn_close(zp_conn *c)
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
    pace_drop_conn(n, c);
    for (zp_serve *s = c->serves; s; s = s->next)
        s->c = NULL;
    c->serves = NULL;
    while (c->reqs)
        req_failed(c->reqs, -ECONNRESET);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (!n->closing)
        kick_all(n); /* fetches waiting for this peer, or for any peer */
}

static void conn_ban(zp_conn *c)
{
    zn_peer_node *n = c->n;
    if (c->state == C_CLOSING)
        return;
    struct sockaddr_storage a;
    uint16_t lport = 0; /* an incoming peer's source port means nothing */
    if (listen_addr(c, &a)) {
        uint8_t ip[16];
        ip_key(&a, ip, &lport);
    }
    ban_add(n, &c->addr, lport);
    n->st.bans++;
    conn_close(c);
}

/* A peer that is too slow: disconnected, not dialled again for a while. */
static void conn_slow(zp_conn *c)
{
    zn_peer_node *n = c->n;
    if (c->state == C_CLOSING)
        return;
    struct sockaddr_storage a;
    if (listen_addr(c, &a)) {
        uint64_t now = uv_now(n->loop);
        size_t k2 = 0;
        for (size_t k = 0; k < n->nslow; k++) /* expired entries go */
            if (n->slow[k].until > now)
                n->slow[k2++] = n->slow[k];
        n->nslow = k2;
        zp_slow *v = realloc(n->slow, (n->nslow + 1) * sizeof *v);
        if (v) {
            n->slow = v;
            ip_key(&a, v[n->nslow].ip, &v[n->nslow].port);
            v[n->nslow++].until = now + n->o.slow_ban_ms;
        }
    }
    n->st.slow_drops++;
    conn_close(c);
}

static bool slow_listed(zn_peer_node *n, const struct sockaddr_storage *ss)
{
    uint8_t ip[16];
    uint16_t port;
    ip_key(ss, ip, &port);
    uint64_t now = uv_now(n->loop);
    for (size_t k = 0; k < n->nslow; k++)
        if (n->slow[k].until > now && n->slow[k].port == port && !memcmp(n->slow[k].ip, ip, 16))
            return true;
    return false;
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
            send_ext(c, c->their_ut, p, zp_ut_not_found(p, req, x));
    } else {
        send_ext(c, c->their_zfs, p, zp_zfs_refuse(p, req, code));
    }
}

static void serve_read_cb(void *arg, int err, const uint32_t *lens, const xet_hash *hashes,
                          const uint8_t *data, size_t len)
{
    zp_serve *s = arg;
    zn_peer_node *n = s->n;
    zp_conn *c = s->c;
    serve_unlink(s);
    out_sub(n, c, s->res);
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
    put32(b, (uint32_t)(2 + hdr + total));
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
    out_add(c, 6 + hdr + total);
    send_paced(c, b, 6 + hdr + total);
out:
    free(s);
    node_unref(n);
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

static zp_mcache *mcache_find(zn_peer_node *n, const xet_hash *x);

/* The size of the answer to [s,e): exact with the manifest in memory, else
 * at Xet's target chunk size (the real size replaces it once read). */
static uint64_t answer_estimate(zn_peer_node *n, const xet_hash *x, uint32_t s, uint32_t e)
{
    zp_mcache *m = mcache_find(n, x);
    uint64_t b = 15u + (uint64_t)(e - s) * XET_CHUNK_HEADER_LEN;
    if (m && e <= m->n) {
        for (uint32_t i = s; i < e; i++)
            b += m->l[i];
        return b;
    }
    return b + (uint64_t)(e - s) * (64u << 10);
}

static void serve_request(zp_conn *c, bool ut, uint32_t req, const xet_hash *x, uint32_t s,
                          uint32_t e)
{
    zn_peer_node *n = c->n;
    if (n->p.may_serve && !n->p.may_serve(n->p.ud, c->ih)) {
        refuse(c, ut, req, ZP_NOT_ALLOWED, x);
        return;
    }
    if (s >= e || e - s > ZP_MAX_REQ_CHUNKS || !n->p.read_chunks ||
        (n->p.may_serve_xorb && !n->p.may_serve_xorb(n->p.ud, c->ih, x)) ||
        !held_covers(n, x, s, e)) {
        refuse(c, ut, req, ZP_NOT_FOUND, x);
        return;
    }
    if (e - s > MAX_PART_CHUNKS) { /* answers are at most ANSWER_MAX */
        refuse(c, ut, req, ZP_BAD_REQUEST, x);
        return;
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
    sv->res = answer_estimate(n, x, s, e);
    out_add(c, sv->res);
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
        out_sub(n, cc, sv->res);
        free(sv);
        node_unref(n);
        if (cc)
            refuse(cc, ut, req, ZP_NOT_FOUND, x);
    }
}

static zp_mcache *mcache_put(zn_peer_node *n, const xet_hash *x, const xet_hash *h,
                             const uint32_t *l, uint32_t cnt);

static zp_mcache *mcache_find(zn_peer_node *n, const xet_hash *x)
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

static void serve_manifest(zp_conn *c, uint32_t req, const xet_hash *x)
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
    zp_mcache *mc = mcache_find(n, x);
    if (!mc && n->p.manifest) {
        xet_hash *h = NULL;
        uint32_t *l = NULL, cnt = 0;
        if (n->p.manifest(n->p.ud, x, &h, &l, &cnt) == 0 && cnt > 0 && cnt <= XET_XORB_MAX_CHUNKS)
            mc = mcache_put(n, x, h, l, cnt);
        free(h), free(l);
    }
    if (!mc) {
        zp_pcache *pe = (c->caps & ZP_CAP_MPART) ? pcache_get(n, x) : NULL;
        if (pe && pe->m) {
            uint8_t *q = malloc(9 + 40 * (size_t)pe->m);
            if (q) {
                size_t len = zp_zfs_mpart(q, req, pe->idx, pe->h, pe->l, pe->m);
                send_ext(c, c->their_zfs, q, len);
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
        send_ext(c, c->their_zfs, p, len);
        free(p);
    }
}

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
} zp_work;

static void work_run(uv_work_t *w)
{
    zp_work *k = (zp_work *)w;
    zp_fetch *f = k->f;
    uint32_t rel = k->first - f->start;
    if (!k->skip) {
        k->result = zp_records_verify(k->buf, k->len, f->ml + k->first, f->mh + k->first, k->n,
                                      f->data + f->off[rel], k->trailing);
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
    }
    free(tmp);
}

static void fetch_maybe_free(zp_fetch *f);

static void work_done(uv_work_t *w, int status)
{
    zp_work *k = (zp_work *)w;
    zp_fetch *f = k->f;
    zn_peer_node *n = f->n;
    f->work--;
    free(k->buf);
    int r = status ? status : k->result;
    if (f->finishing) {
        free(k);
        fetch_maybe_free(f);
        node_unref(n);
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
        if (f->ndone == f->nparts)
            fetch_finish(f, 0);
        kick_all(n); /* a request slot on that peer is free again */
    } else {
        if (r != -ENOMEM && status == 0) {
            n->st.verify_failures++;
            zp_conn *c = conn_by_serial(n, k->serial);
            if (c)
                conn_ban(c);
        }
        p->state = P_TODO;
        add_tried(&p->tried, &p->ntried, k->serial);
        f->last_err = -ENOENT;
        fetch_schedule(f);
    }
    free(k);
    node_unref(n);
}

static void start_verify(zp_conn *c, zp_req *r, const uint8_t *recs, size_t len, uint32_t first,
                         bool ut)
{
    zp_fetch *f = r->f;
    zn_peer_node *n = c->n;
    zp_part *p = &f->parts[r->part];
    zp_work *k = calloc(1, sizeof *k);
    uint8_t *copy = malloc(len ? len : 1);
    if (!k || !copy) {
        free(k), free(copy);
        req_failed(r, -ENOMEM);
        return;
    }
    memcpy(copy, recs, len);
    c->data_bytes += r->bytes;
    k->f = f, k->part = r->part, k->serial = c->serial, k->buf = copy, k->len = len;
    k->first = first;
    k->skip = p->start - first;
    k->n = p->end - first;
    k->trailing = ut;
    req_unlink(r);
    free(r);
    p->state = P_VERIFY;
    f->work++;
    n->refs++;
    if (uv_queue_work(n->loop, &k->w, work_run, work_done) != 0) {
        /* no pool: verify inline (same checks) */
        work_run(&k->w);
        work_done(&k->w, 0);
    }
}

/* ---- incoming messages ----------------------------------------------------------- */

static zp_req *req_find(zp_conn *c, uint32_t id, int kind)
{
    for (zp_req *r = c->reqs; r; r = r->next)
        if (r->id == id && r->kind == kind)
            return r;
    return NULL;
}

static void on_manifest(zp_conn *c, zp_req *r, const zp_zfs_msg *m)
{
    zn_peer_node *n = c->n;
    zp_fetch *f = r->f;
    xet_hash *h = malloc(m->n * sizeof *h);
    uint32_t *l = malloc(m->n * sizeof *l);
    if (!h || !l) {
        free(h), free(l);
        req_failed(r, -ENOMEM);
        return;
    }
    for (uint32_t k = 0; k < m->n; k++) {
        memcpy(h[k].b, m->body + 36 * (size_t)k, 32);
        l[k] = get32(m->body + 36 * (size_t)k + 32);
    }
    if (zp_manifest_verify(&f->xorb, h, l, m->n) != 0) {
        free(h), free(l);
        n->st.verify_failures++;
        conn_ban(c); /* fails r through conn_close → next peer */
        return;
    }
    req_unlink(r);
    free(r);
    manifest_accept(f, h, l, m->n);
}

/* Copy a verified manifest into the node's cache; the entry, or NULL. */
static zp_mcache *mcache_put(zn_peer_node *n, const xet_hash *x, const xet_hash *h,
                             const uint32_t *l, uint32_t cnt)
{
    zp_mcache *e = mcache_find(n, x);
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
    mcache_put(n, &f->xorb, h, l, cnt);
    f->mh = h, f->ml = l, f->mn = cnt;
    fetch_schedule(f);
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
        uint32_t i = wire ? get32(wire + 40 * (size_t)k) : idx[k];
        if (i >= XET_XORB_MAX_CHUNKS || f->ak[i])
            continue; /* the first word on a chunk stands; a lie fails the whole below */
        if (wire) {
            memcpy(f->ah[i].b, wire + 40 * (size_t)k + 4, 32);
            f->al[i] = get32(wire + 40 * (size_t)k + 36);
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
static void on_mpart(zp_conn *c, zp_req *r, const zp_zfs_msg *m)
{
    zn_peer_node *n = c->n;
    zp_fetch *f = r->f;
    req_unlink(r);
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
        fetch_finish(f, rc);
        return;
    }
    if (!parts_try(f))
        fetch_manifest_next(f);
}

static void handle_zfs(zp_conn *c, const uint8_t *p, size_t len)
{
    zn_peer_node *n = c->n;
    zp_zfs_msg m;
    if (zp_zfs_parse(p, len, &m) != 0) {
        conn_ban(c);
        return;
    }
    zp_req *r;
    switch (m.type) {
    case ZP_HAVE: {
        zp_have *h = have_find(c, &m.xorb);
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
            e->runs[e->n++] = (zn_chunk_run){get32(m.body + 8 * k), get32(m.body + 8 * k + 4)};
        e->until = uv_now(n->loop) + ZP_PENDING_TTL_MS;
        return;
    }
    case ZP_REQUEST:
        serve_request(c, false, m.req, &m.xorb, m.start, m.end);
        return;
    case ZP_MREQ:
        serve_manifest(c, m.req, &m.xorb);
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
            conn_ban(c);
            return;
        }
        start_verify(c, r, m.body, m.body_len, m.start, false);
        return;
    case ZP_MANIFEST:
        if (!(r = req_find(c, m.req, R_MANIFEST)))
            return;
        on_manifest(c, r, &m);
        return;
    case ZP_MPART:
        if (!(r = req_find(c, m.req, R_MANIFEST)))
            return;
        on_mpart(c, r, &m);
        return;
    case ZP_REFUSE:
        if ((r = req_find(c, m.req, R_DATA)) || (r = req_find(c, m.req, R_MANIFEST)))
            req_failed(r, -ENOENT);
        return;
    }
}

static void handle_ut(zp_conn *c, const uint8_t *p, size_t len)
{
    zp_ut_msg m;
    if (zp_ut_parse(p, len, &m) != 0) {
        conn_ban(c);
        return;
    }
    zp_req *r;
    switch (m.type) {
    case ZP_UT_REQUEST:
        serve_request(c, true, m.req, &m.hash, m.start, m.end);
        return;
    case ZP_UT_RESPONSE:
        if (!(r = req_find(c, m.req, R_UT)))
            return;
        if (m.chunk_offset > r->f->parts[r->part].start) {
            req_failed(r, -ENOENT); /* holds a later part only */
            return;
        }
        start_verify(c, r, m.data, m.data_len, m.chunk_offset, true);
        return;
    case ZP_UT_NOT_FOUND:
    case ZP_UT_ERROR:
        if ((r = req_find(c, m.req, R_UT)))
            req_failed(r, -ENOENT);
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
    send_ext(c, c->their_zfs, p, zp_zfs_pending(p, xorb, runs, k));
}

static void handle_ext_handshake(zp_conn *c, const uint8_t *p, size_t len)
{
    zn_peer_node *n = c->n;
    zp_ext_info ei;
    if (zp_ext_handshake_info(p, len, &ei) != 0) {
        conn_ban(c);
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
            fetch_manifest_next(f);
}

/* ---- PEX (BEP 11) ---------------------------------------------------------------- */

static bool slow_listed(zn_peer_node *n, const struct sockaddr_storage *ss);

/* The address c's peer listens on, if known. */
static bool listen_addr(const zp_conn *c, struct sockaddr_storage *out)
{
    if (c->outgoing) {
        *out = c->addr;
        return true;
    }
    if (!c->their_port)
        return false;
    *out = c->addr;
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons(c->their_port);
    else if (out->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_port = htons(c->their_port);
    else
        return false;
    return true;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    uint8_t ia[16], ib[16];
    uint16_t pa, pb;
    ip_key(a, ia, &pa);
    ip_key(b, ib, &pb);
    return pa == pb && !memcmp(ia, ib, 16);
}

static bool addr_in(const struct sockaddr_storage *v, size_t n, const struct sockaddr_storage *a)
{
    for (size_t k = 0; k < n; k++)
        if (same_addr(&v[k], a))
            return true;
    return false;
}

/* Tell c's peer about the other peers of its swarm (added/dropped against
 * what it was told).  Nothing is sent when nothing changed. */
static void pex_send(zp_conn *c)
{
    zn_peer_node *n = c->n;
    struct sockaddr_storage cur[MAX_PEX_SENT], added[ZP_MAX_PEX_ADDED], dropped[MAX_PEX_SENT];
    size_t ncur = 0, na = 0, nd = 0;
    for (zp_conn *o = n->conns; o && ncur < MAX_PEX_SENT; o = o->next) {
        struct sockaddr_storage a;
        if (o == c || o->state != C_OPEN || !o->got_ext || memcmp(o->ih, c->ih, 20) ||
            !listen_addr(o, &a) || addr_in(cur, ncur, &a))
            continue;
        cur[ncur++] = a;
    }
    for (size_t k = 0; k < ncur && na < ZP_MAX_PEX_ADDED; k++)
        if (!addr_in(c->pex_told, c->npex_told, &cur[k]))
            added[na++] = cur[k];
    for (size_t k = 0; k < c->npex_told; k++)
        if (!addr_in(cur, ncur, &c->pex_told[k]))
            dropped[nd++] = c->pex_told[k];
    if (!na && !nd)
        return;
    zb_buf b = {0};
    if (zn_pex_encode(added, NULL, na, dropped, nd, &b) != 0 || b.err) {
        free(b.p);
        return;
    }
    send_ext(c, c->their_pex, b.p, b.len);
    free(b.p);
    n->st.pex_out++;
    c->pex_sent_msgs++;
    /* told = told - dropped + added */
    size_t k2 = 0;
    for (size_t k = 0; k < c->npex_told; k++)
        if (!addr_in(dropped, nd, &c->pex_told[k]))
            c->pex_told[k2++] = c->pex_told[k];
    c->npex_told = k2;
    if (na) {
        struct sockaddr_storage *t =
            realloc(c->pex_told, (c->npex_told + na) * sizeof *t);
        if (!t)
            return;
        c->pex_told = t;
        memcpy(t + c->npex_told, added, na * sizeof *added);
        c->npex_told += na;
    }
}

static void handle_pex(zp_conn *c, const uint8_t *p, size_t len)
{
    zn_peer_node *n = c->n;
    zn_pex x;
    if (zn_pex_parse(p, len, &x) != 0) {
        conn_ban(c);
        return;
    }
    uint64_t now = uv_now(n->loop);
    unsigned quarter = n->o.pex_interval_ms / 4;
    if (c->pex_rx_msgs && now - c->pex_last_rx < quarter) {
        zn_pex_free(&x); /* too often: ignored */
        return;
    }
    c->pex_rx_msgs++;
    c->pex_last_rx = now;
    n->st.pex_in++;
    uint8_t ih[20];
    memcpy(ih, c->ih, 20);
    for (size_t k = 0; k < x.nadded && k < ZP_MAX_PEX_ADDED; k++) {
        struct sockaddr_storage *a = &x.added[k];
        uint8_t ip[16];
        uint16_t port;
        ip_key(a, ip, &port);
        if (!port || slow_listed(n, a))
            continue;
        bool known = false; /* connected already, either way */
        for (zp_conn *o = n->conns; o && !known; o = o->next) {
            struct sockaddr_storage l;
            known = !memcmp(o->ih, ih, 20) && listen_addr(o, &l) && same_addr(&l, a);
        }
        if (!known && zn_peer_add(n, ih, (struct sockaddr *)a) == 0)
            n->st.pex_dialled++;
    }
    zn_pex_free(&x);
}

/* Returns false when the connection was closed. */
static bool handle_msg(zp_conn *c, const uint8_t *p, size_t len)
{
    uint8_t id = p[0];
    static const int fixed[10] = {1, 1, 1, 1, 5, -1, 13, -1, 13, 3};
    if (id <= 9 && fixed[id] > 0 && (size_t)fixed[id] != len) {
        conn_ban(c);
        return false;
    }
    if (id != 20)
        return true; /* BT messages we do not use (choke, bitfield, …) and unknown ids */
    if (len < 2) {
        conn_ban(c);
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
        handle_pex(c, p + 2, len - 2);
    return c->state != C_CLOSING;
}

static bool swarm_ok(zn_peer_node *n, const uint8_t ih[20]);

static bool handle_handshake(zp_conn *c, const uint8_t *p)
{
    zn_peer_node *n = c->n;
    uint8_t ih[20], pid[20];
    bool ext;
    if (zp_handshake_parse(p, ih, pid, &ext) != 0) {
        conn_close(c); /* not BitTorrent (e.g. an encrypted handshake): not a lie */
        return false;
    }
    memcpy(c->pid, pid, 20);
    c->has_pid = true;
    if (c->outgoing ? memcmp(ih, c->ih, 20) != 0 : !swarm_ok(n, ih)) {
        conn_close(c);
        return false;
    }
    bool banned = c->outgoing ? banned_addr(n, &c->addr) : banned_ip(n, &c->addr);
    if (!memcmp(pid, n->id, 20) || banned || !ext) {
        conn_close(c);
        return false;
    }
    memcpy(c->ih, ih, 20);
    if (!c->outgoing) {
        uint8_t *hs = malloc(68);
        if (!hs) {
            conn_close(c);
            return false;
        }
        zp_handshake(hs, c->ih, n->id);
        conn_write(c, hs, 68);
    }
    c->state = C_OPEN;
    n->st.peers++;
    send_ext_handshake(c);
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
    uint32_t id = get32(p + 7);
    int kind;
    if (ext == ZP_EXT_ZFS_XET && t == ZP_DATA)
        kind = R_DATA;
    else if (ext == ZP_EXT_UT_XET && t == ZP_UT_RESPONSE)
        kind = R_UT;
    else if (ext == ZP_EXT_ZFS_XET && (t == ZP_MANIFEST || t == ZP_MPART))
        kind = R_MANIFEST;
    else
        return -1;
    zp_req *r = req_find(c, id, kind);
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
        uint32_t L = get32(p);
        if (L == 0) { /* keep-alive: not activity */
            off += 4;
            hok = false, hcnt = 0;
            continue;
        }
        if (avail >= 4 + (size_t)L && (msgs >= TURN_MSGS || bytes >= TURN_BYTES)) {
            c->more = true; /* the loop is shared: the rest on the next turn */
            yield_start(n);
            break;
        }
        if (out_full(c) && L >= 3 && (avail < 7 || frame_answered(p))) {
            c->blocked = true; /* its requests wait until what we owe it drains (out_sub) */
            break;
        }
        if (L > n->o.ctrl_frame_max && !hok) {
            if (avail < 11)
                break;
            int v = frame_check(c, p, L);
            if (v < 0) {
                conn_ban(c);
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

static void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *buf)
{
    zp_conn *c = h->data;
    size_t need = c->rlen + 65536;
    if (c->state == C_OPEN && c->head_ok && !c->skip && c->rlen >= 4) {
        size_t fl = 4 + (size_t)get32(c->rbuf); /* checked by frame_check */
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
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_reading(zp_conn *c)
{
    if (c->state != C_HS && c->state != C_OPEN)
        return;
    bool want = !c->more && !c->blocked;
    if (want == c->reading)
        return;
    if (want) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c);
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

static void yield_start(zn_peer_node *n)
{
    if (n->yielding || n->closing)
        return;
    n->yielding = true;
    uv_idle_start(&n->yield, on_yield);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    zp_conn *c = s->data;
    if (nread < 0 || (nread == 0 && !buf->base)) {
        if (c->state == C_OPEN && (c->rlen > 0 || c->skip) && nread == UV_EOF)
            conn_ban(c); /* ended inside a frame: a truncated frame */
        else
            conn_close(c);
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
        conn_close(c);
        return;
    }
    c->state = C_HS;
    uint8_t *hs = malloc(68);
    if (!hs || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        free(hs);
        conn_close(c);
        return;
    }
    c->reading = true;
    zp_handshake(hs, c->ih, c->n->id);
    conn_write(c, hs, 68);
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
        conn_close(c);
        return;
    }
    int alen = sizeof c->addr;
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->addr, &alen);
    if (n->nconns > n->o.max_conns || banned_ip(n, &c->addr) ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

static bool swarm_ok(zn_peer_node *n, const uint8_t ih[20])
{
    for (size_t k = 0; k < n->nswarms; k++)
        if (!memcmp(n->swarms[k], ih, 20))
            return true;
    return n->p.may_serve && n->p.may_serve(n->p.ud, ih);
}

/* ---- fetches ----------------------------------------------------------------------- */

static void kick_all(zn_peer_node *n)
{
    for (zp_fetch *f = n->fetches; f; f = f->next)
        if (!f->finishing) {
            if (f->mn)
                fetch_schedule(f);
            else if (!f->manifest_pending)
                fetch_manifest_next(f);
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

static void fetch_manifest_next(zp_fetch *f)
{
    zn_peer_node *n = f->n;
    if (f->finishing || f->mn || f->manifest_pending)
        return;
    zp_conn *best = NULL;
    bool waiting = false;
    for (zp_conn *c = n->conns; c; c = c->next) {
        if (c->state == C_CONNECTING || c->state == C_HS || (c->state == C_OPEN && !c->got_ext))
            waiting = true;
        if (!conn_usable(c) || !c->their_zfs || tried(f->mtried, f->nmtried, c->serial))
            continue;
        if (have_find(c, &f->xorb)) {
            best = c;
            break;
        }
        if (!best)
            best = c;
    }
    if (!best) {
        if (!waiting)
            fetch_finish(f, f->last_err == -ETIMEDOUT ? -ETIMEDOUT : -ENOENT);
        return;
    }
    add_tried(&f->mtried, &f->nmtried, best->serial);
    zp_req *r = req_new(best, f, R_MANIFEST, 0);
    if (!r) {
        fetch_finish(f, -ENOMEM);
        return;
    }
    f->manifest_pending = true;
    uint8_t p[37];
    send_ext(best, best->their_zfs, p, zp_zfs_mreq(p, r->id, &f->xorb));
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
        zp_have *h = have_find(c, &f->xorb);
        if (!h)
            continue;
        for (uint32_t k = 1; k < span; k++)
            if (have_bit(h, f->start + k) != have_bit(h, f->start + k - 1))
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
        if (!conn_usable(c) || tried(p->tried, p->ntried, c->serial))
            continue;
        bool zfs = c->their_zfs != 0;
        if (zfs && !have_covers(c, &f->xorb, p->start, p->end))
            continue;
        ++*holders;
        if (c->nreqs >= MAX_OUTSTANDING)
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

static void fetch_schedule(zp_fetch *f)
{
    if (f->finishing)
        return;
    if (!f->mn) {
        fetch_manifest_next(f);
        return;
    }
    if (!f->parts) {
        if (f->end > f->mn) {
            fetch_finish(f, -ERANGE);
            return;
        }
        int r = fetch_build_parts(f);
        if (r) {
            fetch_finish(f, r);
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
                fetch_finish(f, f->last_err == -ETIMEDOUT ? -ETIMEDOUT : -ENOENT);
                return;
            }
            if (!c || (holders > want && want <= f->n->nconns))
                continue;
            bool ut = !c->their_zfs;
            zp_req *r = req_new(c, f, ut ? R_UT : R_DATA, k);
            if (!r) {
                fetch_finish(f, -ENOMEM);
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
            if (ut)
                send_ext(c, c->their_ut, m, zp_ut_request(m, r->id, &f->xorb, p->start, p->end));
            else
                send_ext(c, c->their_zfs, m,
                         zp_zfs_request(m, r->id, &f->xorb, p->start, p->end));
        }
    }
}

static void fetch_maybe_free(zp_fetch *f)
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
    node_unref(n);
}

static void on_fetch_timer_closed(uv_handle_t *h)
{
    zp_fetch *f = h->data;
    f->timer_closed = true;
    fetch_maybe_free(f);
}

static void fetch_deliver(zp_fetch *f)
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
    fetch_deliver(t->data);
}

static void fetch_finish(zp_fetch *f, int err)
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
                req_forget(r);
                req_unlink(r);
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
    fetch_schedule(f);
    return 0;
}

void zn_peer_op_cancel(zn_peer_op *op)
{
    zp_fetch *f = (zp_fetch *)op;
    fetch_finish(f, -ECANCELED);
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
            pex_send(c);
            /* until something was said, look again at every tick */
            if (c->pex_sent_msgs)
                c->pex_next = now + n->o.pex_interval_ms;
        }
        if ((c->state == C_HS || c->state == C_CONNECTING) && now - c->t_open > HS_TIMEOUT_MS) {
            conn_close(c);
        } else if (c->state == C_OPEN && now - c->last_active > IDLE_TIMEOUT_MS) {
            conn_close(c); /* keep-alives alone do not hold a connection */
        } else if (c->state == C_OPEN && conn_stalled(c, now)) {
            n->st.stall_drops++;
            conn_slow(c);
        } else if (c->state == C_OPEN) {
            if (now - c->last_tx > KEEPALIVE_MS) {
                uint8_t *ka = calloc(1, 4);
                if (ka)
                    conn_write(c, ka, 4);
            }
            for (zp_req *r = c->reqs; r && c->state == C_OPEN;) {
                if (r->deadline <= now) {
                    req_forget(r);
                    req_failed(r, -ETIMEDOUT);
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
    for (zp_fetch *f = n->fetches; f; f = f->next)
        if (!f->finishing && f->deadline && now >= f->deadline)
            fetch_finish(f, -ETIMEDOUT);
}

/* ---- node ------------------------------------------------------------------------------ */

static void on_node_handle_closed(uv_handle_t *h)
{
    node_unref(h->data);
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
        fetch_finish(f, -ECANCELED);
    for (zp_fetch *f = n->fetches, *nx; f; f = nx) {
        nx = f->next;
        fetch_deliver(f);
    }
    while (n->conns)
        conn_close(n->conns);
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
    node_unref(n);
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

int zn_peer_add(zn_peer_node *n, const uint8_t info_hash[20], const struct sockaddr *sa)
{
    if (n->closing)
        return -ESHUTDOWN;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (sa->sa_family == AF_INET)
        memcpy(&ss, sa, sizeof(struct sockaddr_in));
    else if (sa->sa_family == AF_INET6)
        memcpy(&ss, sa, sizeof(struct sockaddr_in6));
    else
        return -EAFNOSUPPORT;
    if (banned_addr(n, &ss))
        return -EPERM;
    if (slow_listed(n, &ss))
        return -EAGAIN;
    if (n->nconns >= n->o.max_conns)
        return -EMFILE;
    uint8_t ip[16], ip2[16];
    uint16_t port, port2;
    ip_key(&ss, ip, &port);
    for (zp_conn *c = n->conns; c; c = c->next) {
        if (!c->outgoing)
            continue;
        ip_key(&c->addr, ip2, &port2);
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
        conn_close(c);
        return r;
    }
    return 0;
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
        r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r) {
        conn_close(c);
        return r;
    }
    c->reading = true;
    if (info_hash) {
        uint8_t *hs = malloc(68);
        if (!hs) {
            conn_close(c);
            return -ENOMEM;
        }
        zp_handshake(hs, c->ih, n->id);
        conn_write(c, hs, 68);
    }
    return 0;
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
        if (c->state == C_OPEN && have_covers(c, xorb, start, end))
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
