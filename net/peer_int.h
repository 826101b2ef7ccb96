/* peer_int.h — what the files of the peer node share (not part of the API):
 * its limits, its records (node, connection, request, serve, fetch) and the
 * zp__ functions one file calls in another.  peer.h is the contract. */
#ifndef ZESTFS_PEER_INT_H
#define ZESTFS_PEER_INT_H

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
#define UT_NF_MAX 16u                    /* xorbs a ut_xet-only peer said it lacks */
#define UTX_DECODED_MAX (2ull * XET_XORB_MAX_BYTES) /* a whole xorb from a ut_xet peer, decoded */
#define UTX_MIN_MS 30000u                /* a ut_xet request's time, at least (whole entries) */
#define UTX_MAX 2u                       /* whole-xorb requests (and their checks) at once, node-wide */
#define WHOLE_TTL_MS 2000u               /* the last whole xorb from zest kept for the next fetches */
#define UT_OUTSTANDING 1u                /* requests outstanding on a ut_xet-only peer (zest) */

enum { C_CONNECTING, C_HS, C_OPEN, C_CLOSING };
enum { R_DATA, R_MANIFEST, R_UT, R_UTX /* ut_xet, no manifest: the whole xorb */ };
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
    bool ut, cancelled, big;
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
    /* ut_xet-only peers (zest): xorbs it answered NOT_FOUND / ERROR for (a
     * ring), so it is not asked again; a big answer (> 64 chunks) being made */
    xet_hash ut_nf[UT_NF_MAX];
    unsigned nut_nf;
    bool big_serve;
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
    unsigned ut_work;  /* of which verify a zest answer (its tail may fill more parts) */
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
    uint64_t ut_kick;    /* when fetches waiting for a zest peer were last looked at */
    unsigned utx;        /* whole-xorb requests outstanding or being checked */
    xet_hash wx;         /* the last whole xorb a zest peer sent, verified: */
    uint8_t *wdata;      /* its chunks decoded (≤ 64 MiB; NULL: none) */
    uint64_t wlen;
    uint64_t wuntil;     /* kept until (uv_now), for fetches of its other ranges */
    zn_peer_stats st;
    unsigned refs;
    bool closing;
};

/* net/peer.c */
void zp__add_tried(uint64_t **t, size_t *nt, uint64_t s);
bool zp__banned_addr(zn_peer_node *n, const struct sockaddr_storage *ss);
bool zp__banned_ip(zn_peer_node *n, const struct sockaddr_storage *ss);
void zp__conn_ban(zp_conn *c);
zp_conn *zp__conn_by_serial(zn_peer_node *n, uint64_t serial);
void zp__conn_close(zp_conn *c);
void zp__conn_write(zp_conn *c, uint8_t *buf, size_t len);
void zp__conn_write2(zp_conn *c, uint8_t *buf, size_t len, bool counted);
void zp__ip_key(const struct sockaddr_storage *ss, uint8_t ip[16], uint16_t *port);
void zp__node_unref(zn_peer_node *n);
void zp__out_add(zp_conn *c, uint64_t b);
bool zp__out_full(const zp_conn *c);
void zp__out_sub(zn_peer_node *n, zp_conn *c, uint64_t b);
void zp__req_failed(zp_req *r, int err);
void zp__req_forget(zp_req *r);
void zp__req_unlink(zp_req *r);
void zp__send_ext(zp_conn *c, uint8_t ext, const uint8_t *payload, size_t plen);
void zp__send_ext_handshake(zp_conn *c);
bool zp__slow_listed(zn_peer_node *n, const struct sockaddr_storage *ss);
bool zp__swarm_ok(zn_peer_node *n, const uint8_t ih[20]);
bool zp__tried(const uint64_t *t, size_t nt, uint64_t s);

/* net/peer_msg.c */
bool zp__ut_only(const zp_conn *c);
bool zp__ut_lacks(const zp_conn *c, const xet_hash *x);
void zp__ut_nf_add(zp_conn *c, const xet_hash *x);
bool zp__have_bit(const zp_have *h, uint32_t i);
bool zp__have_covers(zp_conn *c, const xet_hash *x, uint32_t s, uint32_t e);
zp_have *zp__have_find(zp_conn *c, const xet_hash *x);
void zp__on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *buf);
void zp__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
void zp__yield_start(zn_peer_node *n);

/* net/peer_serve.c */
zp_mcache *zp__mcache_find(zn_peer_node *n, const xet_hash *x);
void zp__pace_drop_conn(zn_peer_node *n, zp_conn *c);
void zp__serve_manifest(zp_conn *c, uint32_t req, const xet_hash *x);
void zp__serve_request(zp_conn *c, bool ut, uint32_t req, const xet_hash *x, uint32_t s,
                       uint32_t e);

/* net/peer_verify.c */
void zp__start_whole(zp_conn *c, zp_req *r, const uint8_t *recs, size_t len);
void zp__start_verify(zp_conn *c, zp_req *r, const uint8_t *recs, size_t len, uint32_t first,
                      bool ut);

/* net/peer_fetch.c */
void zp__fetch_deliver(zp_fetch *f);
void zp__fetch_finish(zp_fetch *f, int err);
void zp__fetch_manifest_next(zp_fetch *f);
void zp__fetch_maybe_free(zp_fetch *f);
void zp__fetch_schedule(zp_fetch *f);
void zp__kick_all(zn_peer_node *n);
zp_mcache *zp__mcache_put(zn_peer_node *n, const xet_hash *x, const xet_hash *h,
                          const uint32_t *l, uint32_t cnt);
void zp__on_manifest(zp_conn *c, zp_req *r, const zp_zfs_msg *m);
void zp__on_mpart(zp_conn *c, zp_req *r, const zp_zfs_msg *m);
void zp__fetch_whole_done(zp_fetch *f, xet_hash *h, uint32_t *l, uint32_t cnt,
                          const uint8_t *data);
void zp__whole_drop(zn_peer_node *n);

/* net/pex.c */
void zp__handle_pex(zp_conn *c, const uint8_t *p, size_t len);
bool zp__listen_addr(const zp_conn *c, struct sockaddr_storage *out);
void zp__pex_send(zp_conn *c);

#endif
