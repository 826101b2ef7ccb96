/* server_int.h — what the files of `zestfs-origin serve` share (not part of
 * origin.h): the server state, a request, its routing context, and the os__
 * functions one file calls in another. */
#ifndef ZESTFS_ORIGIN_SERVER_INT_H
#define ZESTFS_ORIGIN_SERVER_INT_H

#include "origin.h"
#include "hubapi.h"
#include "hubreal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#define JSON_CT "application/json; charset=utf-8"
/* Request body caps per route (issue #19): a body past its route's cap is
 * answered 413 from its Content-Length before a byte of it is read (or the
 * connection is closed when a chunked body runs past it). */
#define CAP_XORB (XET_XORB_MAX_BYTES + (1u << 20))   /* records + footer (8192 chunks) */
#define CAP_SHARD (XET_XORB_MAX_BYTES + (16u << 20)) /* xet-core targets 64 MiB shards */
#define CAP_COMMIT (64u << 20)                       /* NDJSON, small files inline */
#define CAP_JSON (8u << 20)                          /* paths-info, preupload */
#define CAP_SMALL (64u << 10)                        /* repo create, knobs, stats reset */

/* ---- server state ------------------------------------------------------- */

typedef struct counter {
    char key[72];
    uint64_t bytes;
} counter;

typedef struct o_server {
    o_store *s;
    const o_serve_opts *o;
    o_cindex ci;
    struct MHD_Daemon *d;
    bool tls;
    /* knobs */
    _Atomic unsigned latency_ms, fail_every, truncate_every, flip_every, token_ttl, url_ttl;
    _Atomic unsigned refuse_xorbs; /* knob: every xorb GET answers 503 (peer tests) */
    _Atomic unsigned stall_every, stall_ms; /* knob: every Nth xorb body stops mid-way */
    uint64_t nstall;
    _Atomic uint64_t conn_bps, total_bps;
    _Atomic uint64_t nreq, nbody, nxorbreq;
    /* total bandwidth: a shared schedule (next free time, ns) */
    pthread_mutex_t bwmu;
    uint64_t bw_next_ns;
    /* stats */
    pthread_mutex_t stmu;
    uint64_t bytes_total, xorb_bytes_total, requests, faults, tokens;
    counter *per_xorb, *per_client;
    size_t nper_xorb, nper_client, cap_xorb, cap_client;
    pthread_mutex_t upmu; /* serialises shard acceptance */
    o_hr *hr;             /* the real Hub's answers (hubreal.c) */
    char *cert, *key;     /* TLS, PEM */
} srv;

typedef struct req {
    uint8_t *body;
    size_t len, cap;
    size_t max;    /* this route's body cap */
    bool answered; /* refused before its body was read */
    /* accounting of a fd (sendfile) body */
    uint64_t planned;
    bool is_xorb;
    char xorb[65];
    char client[64];
} req;
typedef struct segs {
    char **v;
    size_t n;
} segs;
typedef struct ctx {
    srv *S;
    struct MHD_Connection *c;
    req *rq;
    const char *method;
    bool head, get, post;
    segs sg;
} ctx;

/* Result of looking at the Authorization header for Hub calls. */
enum hub_auth { AUTH_NONE, AUTH_VALID, AUTH_INVALID };

/* origin/server.c */
void os__account(srv *S, const char *client, const char *xorb, uint64_t n);
enum MHD_Result os__cas_denied(struct MHD_Connection *c, int e);
int os__check_cas_token(srv *S, struct MHD_Connection *c, bool write);
bool os__ct_eq(const char *a, const char *b);
enum hub_auth os__hub_auth(srv *S, struct MHD_Connection *c);
char *os__make_cas_token(srv *S, const char *scope, const o_repo *r, const char *commit,
                         int64_t exp);
uint64_t os__now_ns(void);
int os__parse_range(const char *h, uint64_t size, uint64_t *s, uint64_t *e);
void os__sleep_ns(uint64_t ns);

/* origin/httputil.c */
char *os__base_url(srv *S, struct MHD_Connection *c);
void os__client_str(struct MHD_Connection *c, char *out, size_t cap);
struct MHD_Response *os__err_response(const char *code, const char *msg);
bool os__is_loopback(struct MHD_Connection *c);
void os__iso_date(int64_t t, char *out, size_t cap);
char *os__join_segs(const segs *g, size_t from);
char *os__pct_decode(const char *s, size_t n, bool form);
void os__pct_encode(const char *s, bool keep_slash, char *out, size_t cap);
char *os__query_arg(struct MHD_Connection *c, const char *key);
bool os__query_true(struct MHD_Connection *c, const char *key);
enum MHD_Result os__queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r);
void os__segs_free(segs *g);
enum MHD_Result os__send_err(struct MHD_Connection *c, unsigned status, const char *code,
                             const char *msg);
enum MHD_Result os__send_json(struct MHD_Connection *c, unsigned status, cJSON *j,
                              struct MHD_Response **keep);
int os__split_path(const char *url, segs *g);

/* origin/faults.c */
struct MHD_Response *os__fd_response(srv *S, req *rq, int fd, uint64_t off, uint64_t len,
                                     const char *xorb, bool head);
enum MHD_Result os__h_control(ctx *x);
void os__throttle(srv *S, uint64_t start_ns, uint64_t sent, size_t n);

/* origin/hub_routes.c */
const char *os__body_of(const ctx *x);
enum MHD_Result os__h_commit(ctx *x, const o_repo *r, const char *rev);
enum MHD_Result os__h_create_repo(ctx *x);
enum MHD_Result os__h_paths_info(ctx *x, const o_repo *r, const char *rev);
enum MHD_Result os__h_refs(ctx *x, const o_repo *r);
enum MHD_Result os__h_repo_info(ctx *x, const o_repo *r, const char *rev);
enum MHD_Result os__h_resolve(ctx *x, const o_repo *r, const char *rev, const char *path, bool bridge_req);
enum MHD_Result os__h_token(ctx *x, const o_repo *r, const char *rev, bool write);
enum MHD_Result os__h_tree(ctx *x, const o_repo *r, const char *rev, const char *dir);
bool os__may_write(srv *S, struct MHD_Connection *c);

/* origin/cas.c */
enum MHD_Result os__h_chunk_query(ctx *x, const char *hash);
enum MHD_Result os__h_reconstruction(ctx *x, const char *hash, int version);
enum MHD_Result os__h_shard_post(ctx *x, int version);
enum MHD_Result os__h_xorb_post(ctx *x, const char *hash);
enum MHD_Result os__head_len(struct MHD_Connection *c, uint64_t len);

/* origin/cdn.c */
enum MHD_Result os__h_xorb_get(ctx *x, const char *hash);
char *os__xorb_url(srv *S, const char *base, const char *hash, uint64_t bs, uint64_t be);

#endif
