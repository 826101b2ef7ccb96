/* server.c — `zestfs-origin serve`: Hub API + CAS + CDN over libmicrohttpd.
 *
 * One MHD daemon, a thread per connection (blocking handlers are fine: the
 * latency and bandwidth knobs simply sleep).  Paths are routed on the RAW
 * request path (the unescape callback is a no-op) and each segment is
 * percent-decoded on its own, so `refs%2Fpr%2F1` stays one segment.
 *
 * Routes (t = models | datasets | spaces; the model prefix is empty in
 * resolve URLs):
 *   GET  /api/t/ns/name[/revision/REV]          repo info with siblings
 *   GET  /api/t/ns/name/tree/REV[/PATH]         tree (recursive, expand, cursor)
 *   POST /api/t/ns/name/paths-info/REV          paths info (JSON or form body)
 *   GET  /api/t/ns/name/refs                    branches
 *   GET  /api/t/ns/name/xet-read-token/REV      {accessToken, exp, casUrl}
 *   GET  /api/t/ns/name/xet-write-token/REV
 *   HEAD|GET /[datasets/|spaces/]ns/name/resolve/REV/PATH
 *   HEAD|GET /_bridge/t/ns/name/COMMIT/PATH     whole-file bytes of Xet files
 *   GET  /v1|v2/reconstructions/FILEHASH        CAS (Bearer accessToken)
 *   HEAD /v1/files/FILEHASH, HEAD|POST /v1/xorbs/PREFIX/HASH,
 *   POST /v1/shards, /v2/shards, GET /v1/chunks/PREFIX/HASH
 *   GET  /xorbs/default/HASH?X-Xet-Signed-Range=…&Expires=…&Signature=…
 *   GET  /_origin/stats, /_origin/knobs; POST /_origin/knobs,
 *        /_origin/stats/reset (POST: loopback clients only)
 *
 * Request bodies (issue #19): the first call of the access handler (headers
 * only) routes the request, checks its authorization (CAS write token, Hub
 * token, loopback) and its Content-Length against the route's cap; a
 * refusal (401/403/404, 413) is queued then, so MHD never reads the body.
 * Only POST routes that take a body have a cap above 0; a chunked body that
 * runs past its cap closes the connection.
 *
 * Bytes of xorbs and regular files are served with
 * MHD_create_response_from_fd_at_offset64 (sendfile on plain HTTP) unless a
 * fault knob that touches bodies is on; then a pread-based callback
 * applies the knob.  Nothing is ever read whole into memory to serve a range.
 */
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

static srv *g_srv;

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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void bump(counter **arr, size_t *n, size_t *cap, const char *key, uint64_t v)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*arr)[i].key, key)) {
            (*arr)[i].bytes += v;
            return;
        }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        counter *na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return;
        *arr = na;
        *cap = nc;
    }
    snprintf((*arr)[*n].key, sizeof(*arr)[*n].key, "%s", key);
    (*arr)[*n].bytes = v;
    (*n)++;
}

static void account(srv *S, const char *client, const char *xorb, uint64_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&S->stmu);
    S->bytes_total += n;
    if (client && client[0])
        bump(&S->per_client, &S->nper_client, &S->cap_client, client, n);
    if (xorb && xorb[0]) {
        S->xorb_bytes_total += n;
        bump(&S->per_xorb, &S->nper_xorb, &S->cap_xorb, xorb, n);
    }
    pthread_mutex_unlock(&S->stmu);
}

/* ---- small helpers -------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* percent-decode (and '+' -> ' ' when form) into a new string; NULL on a
 * malformed escape or an embedded NUL */
static char *pct_decode(const char *s, size_t n, bool form)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 2 < n ? hexval(s[i + 1]) : -1, b = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(o);
                return NULL;
            }
            o[k++] = (char)(a * 16 + b);
            i += 2;
        } else if (form && s[i] == '+') {
            o[k++] = ' ';
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    return o;
}

static void pct_encode(const char *s, bool keep_slash, char *out, size_t cap)
{
    size_t k = 0;
    for (; *s && k + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            out[k++] = (char)c;
        } else {
            snprintf(out + k, 4, "%%%02X", c);
            k += 3;
        }
    }
    out[k] = 0;
}

typedef struct segs {
    char **v;
    size_t n;
} segs;

static void segs_free(segs *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i]);
    free(g->v);
    g->v = NULL;
    g->n = 0;
}

static int split_path(const char *url, segs *g)
{
    g->v = NULL;
    g->n = 0;
    const char *q = strchr(url, '?');
    size_t len = q ? (size_t)(q - url) : strlen(url);
    size_t cap = 8;
    g->v = calloc(cap, sizeof *g->v);
    if (!g->v)
        return -ENOMEM;
    size_t i = 0;
    while (i < len) {
        while (i < len && url[i] == '/')
            i++;
        if (i >= len)
            break;
        size_t j = i;
        while (j < len && url[j] != '/')
            j++;
        if (g->n == cap) {
            cap *= 2;
            char **nv = realloc(g->v, cap * sizeof *nv);
            if (!nv) {
                segs_free(g);
                return -ENOMEM;
            }
            g->v = nv;
        }
        g->v[g->n] = pct_decode(url + i, j - i, false);
        if (!g->v[g->n]) {
            segs_free(g);
            return -EINVAL;
        }
        g->n++;
        i = j;
    }
    return 0;
}

/* join segs[from..] with '/' */
static char *join_segs(const segs *g, size_t from)
{
    size_t len = 1;
    for (size_t i = from; i < g->n; i++)
        len += strlen(g->v[i]) + 1;
    char *o = malloc(len);
    if (!o)
        return NULL;
    o[0] = 0;
    for (size_t i = from; i < g->n; i++) {
        if (i > from)
            strcat(o, "/");
        strcat(o, g->v[i]);
    }
    return o;
}

static char *query_arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!v)
        return NULL;
    return pct_decode(v, strlen(v), true);
}

static bool query_true(struct MHD_Connection *c, const char *key)
{
    char *v = query_arg(c, key);
    bool t = v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
    free(v);
    return t;
}

static bool is_loopback(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static void client_str(struct MHD_Connection *c, char *out, size_t cap)
{
    out[0] = 0;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* base URL: --public-url, else scheme://Host */
static char *base_url(srv *S, struct MHD_Connection *c)
{
    if (S->o->public_url)
        return strdup(S->o->public_url);
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!host || !host[0] || strpbrk(host, " \r\n/\"<>"))
        host = "localhost";
    return o_strdup_printf("%s://%s", S->tls ? "https" : "http", host);
}

static void iso_date(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

/* ---- responses ------------------------------------------------------------ */

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j,
                                 struct MHD_Response **keep)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", JSON_CT);
    if (keep) {
        *keep = r;
        return MHD_YES;
    }
    return queue(c, status, r);
}

static struct MHD_Response *err_response(const char *code, const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *r =
        s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", JSON_CT);
    if (code)
        MHD_add_response_header(r, "X-Error-Code", code);
    MHD_add_response_header(r, "X-Error-Message", msg);
    return r;
}

static enum MHD_Result send_err(struct MHD_Connection *c, unsigned status, const char *code,
                                const char *msg)
{
    struct MHD_Response *r = err_response(code, msg);
    if (!r)
        return MHD_NO;
    return queue(c, status, r);
}

/* ---- auth ---------------------------------------------------------------- */

/* Result of looking at the Authorization header for Hub calls. */
enum hub_auth { AUTH_NONE, AUTH_VALID, AUTH_INVALID };

static const char *bearer(struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a)
        return NULL;
    if (strncasecmp(a, "Bearer ", 7) != 0)
        return "";
    a += 7;
    while (*a == ' ')
        a++;
    return a;
}

static bool ct_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned d = (unsigned)(la ^ lb);
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static enum hub_auth hub_auth(srv *S, struct MHD_Connection *c)
{
    const char *t = bearer(c);
    if (!t)
        return AUTH_NONE;
    for (size_t i = 0; i < S->o->ntokens; i++)
        if (ct_eq(t, S->o->tokens[i]))
            return AUTH_VALID;
    /* without configured tokens any bearer is accepted as anonymous */
    return S->o->ntokens ? AUTH_INVALID : AUTH_NONE;
}

/* Look up a repo visible to this request.  On failure an error response has
 * been queued (ret set) and false returned. */
static bool visible_repo(srv *S, struct MHD_Connection *c, const char *type, const char *id,
                         o_repo *r, enum MHD_Result *ret)
{
    enum hub_auth a = hub_auth(S, c);
    if (a == AUTH_INVALID) {
        *ret = send_err(c, 401, NULL, "Invalid credentials in Authorization header");
        return false;
    }
    if (a != AUTH_VALID && S->o->auth_required) {
        *ret = send_err(c, 401, NULL, "Authentication required");
        return false;
    }
    int e = o_repo_load(S->s, type, id, r);
    if (e || (r->private_ && a != AUTH_VALID)) {
        /* like the Hub: anonymous callers get 401, authenticated ones 404 */
        *ret = send_err(c, a == AUTH_VALID ? 404 : 401, "RepoNotFound", "Repository not found");
        return false;
    }
    return true;
}

/* CAS access tokens: "zo1_" hex(payload) "_" hex(hmac(secret, payload)),
 * payload = "scope|type|id|commit|exp". */
static char *make_cas_token(srv *S, const char *scope, const o_repo *r, const char *commit,
                            int64_t exp)
{
    char *payload = o_strdup_printf("%s|%s|%s|%s|%lld", scope, r->type, r->id, commit, (long long)exp);
    if (!payload)
        return NULL;
    size_t pl = strlen(payload);
    uint8_t mac[32];
    o_hmac_sha256(S->s->secret, 32, payload, pl, mac);
    char *tok = malloc(4 + 2 * pl + 1 + 64 + 1);
    if (tok) {
        memcpy(tok, "zo1_", 4);
        o_hex((const uint8_t *)payload, pl, tok + 4);
        tok[4 + 2 * pl] = '_';
        o_hex(mac, 32, tok + 4 + 2 * pl + 1);
    }
    free(payload);
    return tok;
}

/* 0 ok; -EACCES bad/expired; -EPERM wrong scope */
static int check_cas_token(srv *S, struct MHD_Connection *c, bool write)
{
    const char *t = bearer(c);
    if (!t || strncmp(t, "zo1_", 4) != 0)
        return -EACCES;
    const char *us = strchr(t + 4, '_');
    if (!us)
        return -EACCES;
    size_t hl = (size_t)(us - (t + 4));
    if (hl % 2 || hl > 2048 || strlen(us + 1) != 64)
        return -EACCES;
    char payload[1025];
    if (xet_unhex(t + 4, hl / 2, (uint8_t *)payload) != 0)
        return -EACCES;
    payload[hl / 2] = 0;
    uint8_t mac[32];
    char mh[65];
    o_hmac_sha256(S->s->secret, 32, payload, hl / 2, mac);
    o_hex(mac, 32, mh);
    if (!ct_eq(mh, us + 1))
        return -EACCES;
    const char *last = strrchr(payload, '|');
    if (!last)
        return -EACCES;
    long long exp = strtoll(last + 1, NULL, 10);
    if (exp <= (long long)time(NULL))
        return -EACCES;
    if (write && strncmp(payload, "write|", 6) != 0)
        return -EPERM;
    return 0;
}

static enum MHD_Result cas_denied(struct MHD_Connection *c, int e)
{
    if (e == -EPERM)
        return send_err(c, 403, NULL, "token scope does not allow this operation");
    return send_err(c, 401, NULL, "missing, invalid or expired Xet access token");
}

/* signed xorb URLs */
static void sign_url(srv *S, const char *hash, const char *ranges, int64_t exp, char out[65])
{
    char *msg = o_strdup_printf("%s\n%s\n%lld", hash, ranges, (long long)exp);
    uint8_t mac[32];
    o_hmac_sha256(S->s->secret, 32, msg ? msg : "", msg ? strlen(msg) : 0, mac);
    free(msg);
    o_hex(mac, 32, out);
}

static char *xorb_url(srv *S, const char *base, const char *hash, uint64_t bs, uint64_t be)
{
    unsigned ttl = S->url_ttl ? S->url_ttl : 3600;
    int64_t exp = (int64_t)time(NULL) + ttl;
    char ranges[64], sig[65];
    snprintf(ranges, sizeof ranges, "bytes=%" PRIu64 "-%" PRIu64, bs, be);
    sign_url(S, hash, ranges, exp, sig);
    return o_strdup_printf("%s/xorbs/default/%s?X-Xet-Signed-Range=bytes%%3D%" PRIu64 "-%" PRIu64
                           "&Expires=%lld&Signature=%s",
                           base, hash, bs, be, (long long)exp, sig);
}

/* ---- Range header ---------------------------------------------------------- */

/* 1 = range set, 0 = no header, -1 = malformed / multi, -2 = unsatisfiable */
static int parse_range(const char *h, uint64_t size, uint64_t *s, uint64_t *e)
{
    if (!h)
        return 0;
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return -1;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        uint64_t n = strtoull(p + 1, &end, 10);
        if (*end || end == p + 1)
            return -1;
        if (n == 0 || size == 0)
            return -2;
        if (n > size)
            n = size;
        *s = size - n;
        *e = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t a = strtoull(p, &end, 10);
    if (*end != '-')
        return -1;
    p = end + 1;
    uint64_t b;
    if (*p == 0) {
        b = UINT64_MAX;
    } else {
        if (*p < '0' || *p > '9')
            return -1;
        b = strtoull(p, &end, 10);
        if (*end)
            return -1;
        if (b < a)
            return -1;
    }
    if (a >= size)
        return -2;
    if (b >= size)
        b = size - 1;
    *s = a;
    *e = b;
    return 1;
}

/* ---- body readers (faults, bandwidth, bridge) ----------------------------- */

typedef struct fd_reader {
    srv *S;
    int fd;
    uint64_t off, len;      /* file window */
    uint64_t trunc_at;      /* UINT64_MAX = none */
    uint64_t flip_at;       /* UINT64_MAX = none */
    uint64_t stall_at;      /* UINT64_MAX = none: there, send nothing for stall_ms, then close */
    uint64_t start_ns, sent;
    char xorb[65];
    char client[64];
} fd_reader;

static void throttle(srv *S, uint64_t start_ns, uint64_t sent, size_t n)
{
    uint64_t cb = S->conn_bps, tb = S->total_bps;
    if (cb) {
        uint64_t due = start_ns + (sent + n) * 1000000000ull / cb;
        uint64_t now = now_ns();
        if (due > now)
            sleep_ns(due - now);
    }
    if (tb) {
        pthread_mutex_lock(&S->bwmu);
        uint64_t now = now_ns();
        if (S->bw_next_ns < now)
            S->bw_next_ns = now;
        uint64_t at = S->bw_next_ns;
        S->bw_next_ns += (uint64_t)n * 1000000000ull / tb;
        pthread_mutex_unlock(&S->bwmu);
        if (at > now)
            sleep_ns(at - now);
    }
}

static ssize_t fd_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    fd_reader *r = cls;
    if (pos >= r->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos >= r->trunc_at)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= r->stall_at) { /* a stalled CDN connection: silent, then gone */
        sleep_ns((uint64_t)r->S->stall_ms * 1000000ull);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (r->stall_at != UINT64_MAX && r->stall_at - pos < max)
        max = (size_t)(r->stall_at - pos);
    uint64_t want = r->len - pos;
    if (r->trunc_at != UINT64_MAX && want > r->trunc_at - pos)
        want = r->trunc_at - pos;
    if (want > max)
        want = max;
    if (want > 256 * 1024)
        want = 256 * 1024;
    throttle(r->S, r->start_ns, r->sent, (size_t)want);
    ssize_t n = pread(r->fd, buf, (size_t)want, (off_t)(r->off + pos));
    if (n <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (r->flip_at >= pos && r->flip_at < pos + (uint64_t)n)
        buf[r->flip_at - pos] ^= 0x10;
    r->sent += (uint64_t)n;
    account(r->S, r->client, r->xorb, (uint64_t)n);
    return n;
}

static void fd_free_cb(void *cls)
{
    fd_reader *r = cls;
    close(r->fd);
    free(r);
}

static bool body_knobs(srv *S)
{
    return S->conn_bps || S->total_bps || S->truncate_every || S->flip_every || S->stall_every;
}

/* A response with bytes [off, off+len) of fd (fd is owned by the response).
 * is_xorb: the flip knob applies; counting is tagged with xorb. */
static struct MHD_Response *fd_response(srv *S, req *rq, int fd, uint64_t off, uint64_t len,
                                        const char *xorb, bool head)
{
    bool knobs = body_knobs(S) && !head;
    if (!knobs) {
        struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, off);
        if (!r) {
            close(fd);
            return NULL;
        }
        if (!head) {
            rq->planned = len;
            if (xorb)
                snprintf(rq->xorb, sizeof rq->xorb, "%s", xorb);
        }
        return r;
    }
    fd_reader *fr = calloc(1, sizeof *fr);
    if (!fr) {
        close(fd);
        return NULL;
    }
    fr->S = S;
    fr->fd = fd;
    fr->off = off;
    fr->len = len;
    fr->trunc_at = UINT64_MAX;
    fr->flip_at = UINT64_MAX;
    fr->stall_at = UINT64_MAX;
    fr->start_ns = now_ns();
    snprintf(fr->client, sizeof fr->client, "%s", rq->client);
    if (xorb)
        snprintf(fr->xorb, sizeof fr->xorb, "%s", xorb);
    uint64_t nb = ++S->nbody;
    if (S->truncate_every && nb % S->truncate_every == 0 && len > 1) {
        fr->trunc_at = len / 2;
        pthread_mutex_lock(&S->stmu);
        S->faults++;
        pthread_mutex_unlock(&S->stmu);
    }
    if (xorb && S->stall_every && len > 1) {
        pthread_mutex_lock(&S->stmu);
        if (++S->nstall % S->stall_every == 0) {
            fr->stall_at = len / 2;
            S->faults++;
        }
        pthread_mutex_unlock(&S->stmu);
    }
    if (xorb && S->flip_every) {
        uint64_t nx = ++S->nxorbreq;
        if (nx % S->flip_every == 0 && len > 0) {
            fr->flip_at = len / 2;
            pthread_mutex_lock(&S->stmu);
            S->faults++;
            pthread_mutex_unlock(&S->stmu);
        }
    }
    struct MHD_Response *r = MHD_create_response_from_callback(len, 256 * 1024, fd_read_cb, fr, fd_free_cb);
    if (!r)
        fd_free_cb(fr);
    return r;
}

/* Bridge: decode a Xet file's chunks on the fly (verifying each chunk hash
 * against the xorb index) for plain-HTTP downloads. */
typedef struct bridge {
    srv *S;
    o_file f;
    uint64_t base;         /* file offset of the requested range start */
    uint64_t len;
    size_t term;           /* current term */
    uint32_t chunk;        /* current chunk (absolute index in xorb) */
    uint64_t chunk_off;    /* file offset of the current chunk */
    int fd;                /* fd of the current term's xorb */
    xet_hash fd_xorb;
    o_xorb_idx idx;
    uint8_t *rec, *dec;    /* record buffer, decoded chunk */
    uint32_t dec_len;
    bool have;             /* dec holds chunk `chunk` */
    uint64_t start_ns, sent;
    char client[64];
} bridge;

static void bridge_free(void *cls)
{
    bridge *b = cls;
    if (b->fd >= 0)
        close(b->fd);
    o_xorb_idx_free(&b->idx);
    o_file_free(&b->f);
    free(b->rec);
    free(b->dec);
    free(b);
}

static int bridge_open_term(bridge *b)
{
    const o_term *t = &b->f.terms[b->term];
    if (b->fd >= 0 && xet_hash_eq(&b->fd_xorb, &t->xorb))
        return 0;
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    o_xorb_idx_free(&b->idx);
    int e = o_xorb_idx_load(b->S->s, &t->xorb, &b->idx);
    if (e)
        return e;
    if (t->end > b->idx.n || t->start >= t->end)
        return -EBADMSG;
    char hs[65];
    xet_hash_to_string(&t->xorb, hs);
    char *p = o_path(b->S->s, "xorbs/%s", hs);
    b->fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    free(p);
    if (b->fd < 0)
        return -EIO;
    b->fd_xorb = t->xorb;
    return 0;
}

static int bridge_decode(bridge *b)
{
    int e = bridge_open_term(b);
    if (e)
        return e;
    uint32_t i = b->chunk;
    uint64_t ro = i ? b->idx.rec_end[i - 1] : 0;
    uint64_t rl = b->idx.rec_end[i] - ro;
    if (rl < XET_CHUNK_HEADER_LEN || rl > XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN)
        return -EBADMSG;
    if (pread(b->fd, b->rec, rl, (off_t)ro) != (ssize_t)rl)
        return -EIO;
    xet_chunk_header h;
    e = xet_chunk_header_parse(b->rec, rl, &h);
    if (e)
        return e;
    if (h.clen + XET_CHUNK_HEADER_LEN != rl || h.ulen != b->idx.ulen[i])
        return -EBADMSG;
    e = xet_chunk_decode(&h, b->rec + XET_CHUNK_HEADER_LEN, b->dec);
    if (e)
        return e;
    xet_hash ch;
    xet_chunk_hash(b->dec, h.ulen, &ch);
    if (!xet_hash_eq(&ch, &b->idx.hash[i]))
        return -EILSEQ;
    b->dec_len = h.ulen;
    b->have = true;
    return 0;
}

/* advance to the chunk containing file offset `pos` (pos only grows) */
static int bridge_seek(bridge *b, uint64_t fpos)
{
    for (;;) {
        if (b->term >= b->f.nterms)
            return -ERANGE;
        int e = bridge_open_term(b);
        if (e)
            return e;
        uint32_t len = b->idx.ulen[b->chunk];
        if (fpos < b->chunk_off + len)
            return 0;
        b->chunk_off += len;
        b->have = false;
        b->chunk++;
        if (b->chunk >= b->f.terms[b->term].end) {
            b->term++;
            if (b->term < b->f.nterms)
                b->chunk = b->f.terms[b->term].start;
        }
    }
}

static ssize_t bridge_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    bridge *b = cls;
    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    uint64_t fpos = b->base + pos;
    if (bridge_seek(b, fpos) != 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (!b->have && bridge_decode(b) != 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    uint64_t in = fpos - b->chunk_off;
    uint64_t n = b->dec_len - in;
    if (n > max)
        n = max;
    if (n > b->len - pos)
        n = b->len - pos;
    throttle(b->S, b->start_ns, b->sent, (size_t)n);
    memcpy(buf, b->dec + in, (size_t)n);
    b->sent += n;
    account(b->S, b->client, NULL, n);
    return (ssize_t)n;
}

/* ---- JSON builders -------------------------------------------------------- */

static cJSON *entry_json(const o_entry *e, bool expand, const o_store *s, const o_repo *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "file");
    cJSON_AddStringToObject(j, "oid", e->oid);
    cJSON_AddNumberToObject(j, "size", (double)e->size);
    cJSON_AddStringToObject(j, "path", e->path);
    if (e->xet) {
        cJSON *l = cJSON_AddObjectToObject(j, "lfs");
        cJSON_AddStringToObject(l, "oid", e->sha256);
        cJSON_AddNumberToObject(l, "size", (double)e->size);
        cJSON_AddNumberToObject(l, "pointerSize", e->pointer_size);
        cJSON_AddStringToObject(j, "xetHash", e->xet_hash);
    }
    if (expand) {
        cJSON *lc = cJSON_AddObjectToObject(j, "lastCommit");
        cJSON_AddStringToObject(lc, "id", e->last_commit);
        o_commit c;
        char date[40] = "1970-01-01T00:00:00.000Z";
        const char *title = "";
        bool loaded = o_commit_load(s, r, e->last_commit, &c) == 0;
        if (loaded) {
            iso_date(c.date, date, sizeof date);
            title = c.message;
        }
        cJSON_AddStringToObject(lc, "title", title);
        cJSON_AddStringToObject(lc, "date", date);
        if (loaded)
            o_commit_free(&c);
        cJSON *sec = cJSON_AddObjectToObject(j, "securityFileStatus");
        cJSON_AddStringToObject(sec, "status", "safe");
    }
    return j;
}

static cJSON *dir_json(const char *path, const char *commit)
{
    uint8_t d[32];
    char *k = o_strdup_printf("tree %s %s", commit, path);
    o_sha256(k ? k : "", k ? strlen(k) : 0, d);
    free(k);
    char oid[41];
    o_hex(d, 20, oid);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "directory");
    cJSON_AddStringToObject(j, "oid", oid);
    cJSON_AddNumberToObject(j, "size", 0);
    cJSON_AddStringToObject(j, "path", path);
    return j;
}

static const char *type_plural(const char *t)
{
    return !strcmp(t, "model") ? "models" : !strcmp(t, "dataset") ? "datasets" : "spaces";
}

static cJSON *repo_info_json(const o_repo *r, const o_commit *c, bool blobs)
{
    cJSON *j = cJSON_CreateObject();
    char date[40];
    iso_date(c->date, date, sizeof date);
    cJSON_AddStringToObject(j, "_id", c->id);
    cJSON_AddStringToObject(j, "id", r->id);
    if (!strcmp(r->type, "model"))
        cJSON_AddStringToObject(j, "modelId", r->id);
    char author[256];
    snprintf(author, sizeof author, "%s", r->id);
    char *sl = strchr(author, '/');
    if (sl)
        *sl = 0;
    cJSON_AddStringToObject(j, "author", author);
    cJSON_AddStringToObject(j, "sha", c->id);
    cJSON_AddStringToObject(j, "lastModified", date);
    cJSON_AddStringToObject(j, "createdAt", date);
    cJSON_AddBoolToObject(j, "private", r->private_);
    cJSON_AddBoolToObject(j, "disabled", false);
    if (r->gated[0]) /* the Hub: false, or the mode ("auto", "manual") */
        cJSON_AddStringToObject(j, "gated", r->gated);
    else
        cJSON_AddBoolToObject(j, "gated", false);
    cJSON_AddNumberToObject(j, "downloads", 0);
    cJSON_AddNumberToObject(j, "likes", 0);
    cJSON_AddArrayToObject(j, "tags");
    cJSON *sib = cJSON_AddArrayToObject(j, "siblings");
    uint64_t used = 0;
    for (size_t i = 0; i < c->n; i++) {
        const o_entry *e = &c->e[i];
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "rfilename", e->path);
        if (blobs) {
            cJSON_AddNumberToObject(f, "size", (double)e->size);
            cJSON_AddStringToObject(f, "blobId", e->oid);
            if (e->xet) {
                cJSON *l = cJSON_AddObjectToObject(f, "lfs");
                cJSON_AddNumberToObject(l, "size", (double)e->size);
                cJSON_AddStringToObject(l, "sha256", e->sha256);
                cJSON_AddNumberToObject(l, "pointerSize", e->pointer_size);
            }
        }
        cJSON_AddItemToArray(sib, f);
        used += e->size;
    }
    cJSON_AddNumberToObject(j, "usedStorage", (double)used);
    return j;
}

/* ---- Hub API handlers -------------------------------------------------------- */

typedef struct ctx {
    srv *S;
    struct MHD_Connection *c;
    req *rq;
    const char *method;
    bool head, get, post;
    segs sg;
} ctx;

/* The request body; "" (never NULL) when none came. */
static const char *body_of(const ctx *x)
{
    return x->rq->body ? (const char *)x->rq->body : "";
}

static enum MHD_Result rev_error(struct MHD_Connection *c, int e)
{
    if (e == -ENOENT)
        return send_err(c, 404, "RevisionNotFound", "Invalid rev id");
    return send_err(c, 500, NULL, strerror(-e));
}

static enum MHD_Result h_repo_info(ctx *x, const o_repo *r, const char *rev)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    cJSON *j = repo_info_json(r, &c, query_true(x->c, "blobs"));
    o_commit_free(&c);
    o_hr_repo_info(x->S->hr, r->type, r->id, j);
    return send_json(x->c, 200, j, NULL);
}

static enum MHD_Result h_refs(ctx *x, const o_repo *r)
{
    char **names;
    size_t n;
    o_refs_list(x->S->s, r, &names, &n);
    cJSON *j = cJSON_CreateObject();
    cJSON *br = cJSON_AddArrayToObject(j, "branches");
    for (size_t i = 0; i < n; i++) {
        char id[41];
        if (o_ref_read(x->S->s, r, names[i], id) == 0) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "name", names[i]);
            char *ref = o_strdup_printf("refs/heads/%s", names[i]);
            cJSON_AddStringToObject(b, "ref", ref ? ref : "");
            free(ref);
            cJSON_AddStringToObject(b, "targetCommit", id);
            cJSON_AddItemToArray(br, b);
        }
        free(names[i]);
    }
    free(names);
    cJSON_AddArrayToObject(j, "tags");
    cJSON_AddArrayToObject(j, "converts");
    return send_json(x->c, 200, j, NULL);
}

static bool under(const char *path, const char *dir)
{
    size_t l = strlen(dir);
    return l == 0 || (!strncmp(path, dir, l) && path[l] == '/');
}

static enum MHD_Result h_tree(ctx *x, const o_repo *r, const char *rev, const char *dir)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    bool recursive = query_true(x->c, "recursive");
    bool expand = query_true(x->c, "expand");
    char *cur = query_arg(x->c, "cursor");
    char *lim = query_arg(x->c, "limit");
    size_t start = cur ? strtoul(cur, NULL, 10) : 0;
    size_t limit = lim ? strtoul(lim, NULL, 10) : (expand ? 50 : 1000);
    if (limit == 0 || limit > 10000)
        limit = 1000;
    free(cur);
    free(lim);
    /* is dir a file? a directory? */
    if (dir[0] && o_commit_find(&c, dir)) {
        /* the Hub answers the listing of a file path with that entry */
    }
    bool found = dir[0] == 0;
    for (size_t i = 0; i < c.n && !found; i++)
        if (under(c.e[i].path, dir))
            found = true;
    if (!found) {
        o_commit_free(&c);
        struct MHD_Response *rs = err_response("EntryNotFound", "Entry not found");
        return queue(x->c, 404, rs);
    }
    /* build the full listing (dirs first appear before their content) */
    cJSON *all = cJSON_CreateArray();
    size_t dl = strlen(dir);
    char **seen = NULL;
    size_t nseen = 0, capseen = 0;
    for (size_t i = 0; i < c.n; i++) {
        const o_entry *en = &c.e[i];
        if (!under(en->path, dir))
            continue;
        const char *rest = en->path + (dl ? dl + 1 : 0);
        /* directories between dir and the file */
        const char *p = rest;
        const char *sl;
        while ((sl = strchr(p, '/'))) {
            size_t plen = (size_t)(sl - en->path);
            char *dp = strndup(en->path, plen);
            bool dup = false;
            for (size_t k = 0; k < nseen && dp; k++)
                if (!strcmp(seen[k], dp))
                    dup = true;
            if (dp && !dup) {
                if (nseen == capseen) {
                    capseen = capseen ? capseen * 2 : 16;
                    char **ns = realloc(seen, capseen * sizeof *ns);
                    if (ns)
                        seen = ns;
                }
                if (nseen < capseen) {
                    seen[nseen++] = dp;
                    cJSON_AddItemToArray(all, dir_json(dp, c.id));
                    dp = NULL;
                }
            }
            free(dp);
            if (!recursive)
                break;
            p = sl + 1;
        }
        if (recursive || !strchr(rest, '/'))
            cJSON_AddItemToArray(all, entry_json(en, expand, x->S->s, r));
    }
    for (size_t k = 0; k < nseen; k++)
        free(seen[k]);
    free(seen);
    o_hr_redact(x->S->hr, x->c, r->type, r->id, all);
    /* page */
    size_t total = (size_t)cJSON_GetArraySize(all);
    cJSON *page = cJSON_CreateArray();
    for (size_t i = start; i < total && i < start + limit; i++)
        cJSON_AddItemReferenceToArray(page, cJSON_GetArrayItem(all, (int)i));
    char *s = cJSON_PrintUnformatted(page);
    cJSON_Delete(page);
    cJSON_Delete(all);
    struct MHD_Response *rs = s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!rs) {
        free(s);
        o_commit_free(&c);
        return MHD_NO;
    }
    MHD_add_response_header(rs, "Content-Type", JSON_CT);
    if (start + limit < total) {
        char *base = base_url(x->S, x->c);
        char erev[512], edir[2048];
        pct_encode(rev, false, erev, sizeof erev);
        pct_encode(dir, true, edir, sizeof edir);
        char *link = o_strdup_printf("<%s/api/%s/%s/tree/%s%s%s?recursive=%s&expand=%s&limit=%zu&cursor=%zu>; rel=\"next\"",
                                     base ? base : "", type_plural(r->type), r->id, erev,
                                     dir[0] ? "/" : "", edir, recursive ? "true" : "false",
                                     expand ? "true" : "false", limit, start + limit);
        if (link)
            MHD_add_response_header(rs, "Link", link);
        free(link);
        free(base);
    }
    o_commit_free(&c);
    return queue(x->c, 200, rs);
}

static enum MHD_Result h_paths_info(ctx *x, const o_repo *r, const char *rev)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    /* collect paths: JSON {"paths":[...],"expand":b} or form paths=..&expand=.. */
    char **paths = NULL;
    size_t np = 0;
    bool expand = false;
    const char *ct = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Content-Type");
    if (ct && strstr(ct, "json")) {
        cJSON *j = cJSON_ParseWithLength(body_of(x), x->rq->len);
        cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "paths");
        int n = cJSON_GetArraySize(ps);
        paths = calloc(n > 0 ? (size_t)n : 1, sizeof *paths);
        const cJSON *p;
        cJSON_ArrayForEach(p, ps) if (cJSON_IsString(p) && paths) paths[np++] = strdup(p->valuestring);
        expand = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "expand"));
        cJSON_Delete(j);
    } else if (x->rq->len) {
        char *body = strndup(body_of(x), x->rq->len);
        size_t cap = 0;
        char *save = NULL;
        for (char *kv = body ? strtok_r(body, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq)
                continue;
            *eq = 0;
            char *k = pct_decode(kv, strlen(kv), true), *v = pct_decode(eq + 1, strlen(eq + 1), true);
            if (k && v && !strcmp(k, "paths")) {
                if (np == cap) {
                    cap = cap ? cap * 2 : 16;
                    char **nn = realloc(paths, cap * sizeof *nn);
                    if (nn)
                        paths = nn;
                }
                if (np < cap) {
                    paths[np++] = v;
                    v = NULL;
                }
            } else if (k && v && !strcmp(k, "expand")) {
                expand = !strcasecmp(v, "true") || !strcmp(v, "1");
            }
            free(k);
            free(v);
        }
        free(body);
    }
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < np; i++) {
        if (!paths[i])
            continue;
        const o_entry *en = o_commit_find(&c, paths[i]);
        if (en) {
            cJSON_AddItemToArray(arr, entry_json(en, expand, x->S->s, r));
        } else {
            for (size_t k = 0; k < c.n; k++)
                if (under(c.e[k].path, paths[i])) {
                    cJSON_AddItemToArray(arr, dir_json(paths[i], c.id));
                    break;
                }
        }
        free(paths[i]);
    }
    free(paths);
    o_commit_free(&c);
    o_hr_redact(x->S->hr, x->c, r->type, r->id, arr);
    return send_json(x->c, 200, arr, NULL);
}

static enum MHD_Result h_token(ctx *x, const o_repo *r, const char *rev, bool write)
{
    /* with tokens configured, writes need one; without, the server is open */
    if (write && x->S->o->ntokens && hub_auth(x->S, x->c) != AUTH_VALID)
        return send_err(x->c, 401, NULL, "write access requires a valid token");
    pthread_mutex_lock(&x->S->stmu);
    x->S->tokens++; /* Xet tokens issued (stats: "xet_tokens") */
    pthread_mutex_unlock(&x->S->stmu);
    o_commit c;
    char commit[41] = "";
    if (o_resolve_rev(x->S->s, r, rev, &c) == 0) {
        memcpy(commit, c.id, 41);
        o_commit_free(&c);
    } else if (!write) {
        return rev_error(x->c, -ENOENT);
    }
    unsigned ttl = x->S->token_ttl ? x->S->token_ttl : 3600;
    int64_t exp = (int64_t)time(NULL) + ttl;
    char *tok = make_cas_token(x->S, write ? "write" : "read", r, commit[0] ? commit : rev, exp);
    char *base = base_url(x->S, x->c);
    if (!tok || !base) {
        free(tok);
        free(base);
        return MHD_NO;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "accessToken", tok);
    cJSON_AddNumberToObject(j, "exp", (double)exp);
    cJSON_AddStringToObject(j, "casUrl", base);
    struct MHD_Response *rs = NULL;
    send_json(x->c, 200, j, &rs);
    if (!rs) {
        free(tok);
        free(base);
        return MHD_NO;
    }
    char es[32];
    snprintf(es, sizeof es, "%lld", (long long)exp);
    MHD_add_response_header(rs, "X-Xet-Access-Token", tok);
    MHD_add_response_header(rs, "X-Xet-Cas-Url", base);
    MHD_add_response_header(rs, "X-Xet-Token-Expiration", es);
    free(tok);
    free(base);
    return queue(x->c, 200, rs);
}

/* resolve + bridge: headers shared by both */
static void meta_headers(ctx *x, struct MHD_Response *rs, const o_repo *r, const o_commit *c,
                         const o_entry *en)
{
    MHD_add_response_header(rs, "X-Repo-Commit", c->id);
    MHD_add_response_header(rs, "Accept-Ranges", "bytes");
    char et[80];
    if (en->xet) {
        snprintf(et, sizeof et, "\"%s\"", en->sha256);
        MHD_add_response_header(rs, "ETag", et);
        MHD_add_response_header(rs, "X-Linked-Etag", et);
        char sz[32];
        snprintf(sz, sizeof sz, "%" PRIu64, en->size);
        MHD_add_response_header(rs, "X-Linked-Size", sz);
        MHD_add_response_header(rs, "X-Xet-Hash", en->xet_hash);
        char *base = base_url(x->S, x->c);
        char *link = o_strdup_printf(
            "<%s/api/%s/%s/xet-read-token/%s>; rel=\"xet-auth\", <%s/v1/reconstructions/%s>; rel=\"xet-reconstruction-info\"",
            base, type_plural(r->type), r->id, c->id, base, en->xet_hash);
        if (link)
            MHD_add_response_header(rs, "Link", link);
        char *rr = o_strdup_printf("/api/%s/%s/xet-read-token/%s", type_plural(r->type), r->id, c->id);
        if (rr)
            MHD_add_response_header(rs, "X-Xet-Refresh-Route", rr);
        free(rr);
        free(link);
        free(base);
    } else {
        snprintf(et, sizeof et, "\"%s\"", en->oid);
        MHD_add_response_header(rs, "ETag", et);
    }
}

static enum MHD_Result serve_entry_bytes(ctx *x, const o_repo *r, const o_commit *c, const o_entry *en)
{
    uint64_t s = 0, e = en->size ? en->size - 1 : 0;
    const char *rh = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Range");
    int pr = parse_range(rh, en->size, &s, &e);
    if (pr == -2 || (pr == -1 && rh)) {
        struct MHD_Response *rs = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, en->size);
        MHD_add_response_header(rs, "Content-Range", cr);
        meta_headers(x, rs, r, c, en);
        return queue(x->c, 416, rs);
    }
    uint64_t len = en->size ? e - s + 1 : 0;
    struct MHD_Response *rs = NULL;
    if (!en->xet) {
        char *p = o_path(x->S->s, "blobs/%s", en->oid);
        int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        free(p);
        if (fd < 0)
            return send_err(x->c, 500, NULL, "blob missing");
        rs = fd_response(x->S, x->rq, fd, s, len, NULL, x->head);
    } else {
        xet_hash fh;
        if (xet_hash_from_string(en->xet_hash, &fh) != 0)
            return send_err(x->c, 500, NULL, "bad xet hash");
        bridge *b = calloc(1, sizeof *b);
        if (!b)
            return MHD_NO;
        b->S = x->S;
        b->fd = -1;
        b->rec = malloc(XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN);
        b->dec = malloc(XET_CHUNK_MAX);
        snprintf(b->client, sizeof b->client, "%s", x->rq->client);
        if (!b->rec || !b->dec || o_file_load(x->S->s, &fh, &b->f) != 0) {
            bridge_free(b);
            return send_err(x->c, 500, NULL, "file reconstruction missing");
        }
        b->base = s;
        b->len = len;
        b->start_ns = now_ns();
        if (b->f.nterms)
            b->chunk = b->f.terms[0].start;
        rs = MHD_create_response_from_callback(len, 256 * 1024, bridge_cb, b, bridge_free);
        if (!rs)
            bridge_free(b);
    }
    if (!rs)
        return MHD_NO;
    meta_headers(x, rs, r, c, en);
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    if (pr == 1) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, s, e, en->size);
        MHD_add_response_header(rs, "Content-Range", cr);
        return queue(x->c, 206, rs);
    }
    return queue(x->c, 200, rs);
}

static enum MHD_Result h_resolve(ctx *x, const o_repo *r, const char *rev, const char *path, bool bridge_req)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    const o_entry *en = o_commit_find(&c, path);
    if (!en) {
        struct MHD_Response *rs = err_response("EntryNotFound", "Entry not found");
        if (rs)
            MHD_add_response_header(rs, "X-Repo-Commit", c.id);
        o_commit_free(&c);
        return rs ? queue(x->c, 404, rs) : MHD_NO;
    }
    enum MHD_Result ret;
    const char *accept = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Accept");
    if (en->xet && !bridge_req && accept && strstr(accept, "application/vnd.xet-fileinfo+json")) {
        /* @huggingface/hub: metadata as JSON, same headers */
        char *base = base_url(x->S, x->c);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "hash", en->xet_hash);
        cJSON_AddNumberToObject(j, "size", (double)en->size);
        cJSON_AddStringToObject(j, "etag", en->sha256);
        char *ru = o_strdup_printf("%s/api/%s/%s/xet-read-token/%s", base, type_plural(r->type), r->id, c.id);
        char *cu = o_strdup_printf("%s/v1/reconstructions/%s", base, en->xet_hash);
        cJSON_AddStringToObject(j, "refreshUrl", ru ? ru : "");
        cJSON_AddStringToObject(j, "reconstructionUrl", cu ? cu : "");
        free(ru);
        free(cu);
        free(base);
        struct MHD_Response *rs = NULL;
        send_json(x->c, 200, j, &rs);
        if (!rs) {
            o_commit_free(&c);
            return MHD_NO;
        }
        MHD_del_response_header(rs, "Content-Type", JSON_CT);
        MHD_add_response_header(rs, "Content-Type", "application/vnd.xet-fileinfo+json");
        meta_headers(x, rs, r, &c, en);
        ret = queue(x->c, 200, rs);
    } else if (en->xet && !bridge_req) {
        char *base = base_url(x->S, x->c);
        char ep[2048];
        pct_encode(en->path, true, ep, sizeof ep);
        char *loc = o_strdup_printf("%s/_bridge/%s/%s/%s/%s", base, r->type, r->id, c.id, ep);
        free(base);
        struct MHD_Response *rs = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!rs || !loc) {
            free(loc);
            o_commit_free(&c);
            return MHD_NO;
        }
        MHD_add_response_header(rs, "Location", loc);
        free(loc);
        meta_headers(x, rs, r, &c, en);
        ret = queue(x->c, 302, rs);
    } else {
        ret = serve_entry_bytes(x, r, &c, en);
    }
    o_commit_free(&c);
    return ret;
}

/* ---- CAS --------------------------------------------------------------------- */

typedef struct kept {
    const o_term *t;
    uint32_t start, end, unpacked;
} kept;

typedef struct span {
    size_t xi;            /* index into xorb list */
    uint32_t start, end;
    uint64_t bs, be;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->xi != y->xi)
        return x->xi < y->xi ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

static enum MHD_Result h_reconstruction(ctx *x, const char *hash, int version)
{
    int e = check_cas_token(x->S, x->c, false);
    if (e)
        return cas_denied(x->c, e);
    xet_hash fh;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &fh) != 0)
        return send_err(x->c, 400, NULL, "invalid file hash");
    o_file f;
    if (o_file_load(x->S->s, &fh, &f) != 0)
        return send_err(x->c, 404, NULL, "file not found");
    uint64_t S0 = 0, E0 = f.size ? f.size - 1 : 0;
    const char *rh = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Range");
    if (rh) {
        int pr = parse_range(rh, f.size ? f.size : 1, &S0, &E0);
        if (pr == -1) {
            o_file_free(&f);
            return send_err(x->c, 400, NULL, "invalid Range");
        }
        if (pr == -2 || (f.size == 0 && S0 > 0) || (f.size > 0 && S0 >= f.size)) {
            o_file_free(&f);
            return send_err(x->c, 416, NULL, "range start past end of file");
        }
    }
    /* trim terms at chunk granularity */
    kept *k = calloc(f.nterms ? f.nterms : 1, sizeof *k);
    o_xorb_idx *idx = calloc(f.nterms ? f.nterms : 1, sizeof *idx);
    xet_hash *xl = calloc(f.nterms ? f.nterms : 1, sizeof *xl);
    size_t *txi = calloc(f.nterms ? f.nterms : 1, sizeof *txi);
    size_t nk = 0, nx = 0;
    uint64_t first_off = 0;
    bool have_first = false;
    e = (k && idx && xl && txi) ? 0 : -ENOMEM;
    uint64_t off = 0;
    for (size_t i = 0; i < f.nterms && !e && f.size; i++) {
        const o_term *t = &f.terms[i];
        size_t xi;
        for (xi = 0; xi < nx; xi++)
            if (xet_hash_eq(&xl[xi], &t->xorb))
                break;
        if (xi == nx) {
            e = o_xorb_idx_load(x->S->s, &t->xorb, &idx[nx]);
            if (e)
                break;
            xl[nx++] = t->xorb;
        }
        const o_xorb_idx *ix = &idx[xi];
        if (t->end > ix->n || t->start >= t->end) {
            e = -EBADMSG;
            break;
        }
        uint32_t ks = UINT32_MAX, ke = 0, un = 0;
        uint64_t co = off;
        for (uint32_t ch = t->start; ch < t->end; ch++) {
            uint64_t cend = co + ix->ulen[ch];
            if (cend > S0 && co <= E0) {
                if (ks == UINT32_MAX) {
                    ks = ch;
                    if (!have_first) {
                        first_off = co;
                        have_first = true;
                    }
                }
                ke = ch + 1;
                un += ix->ulen[ch];
            }
            co = cend;
        }
        off = co;
        if (ks != UINT32_MAX) {
            k[nk].t = t;
            k[nk].start = ks;
            k[nk].end = ke;
            k[nk].unpacked = un;
            txi[nk] = xi;
            nk++;
        }
    }
    if (e) {
        for (size_t i = 0; i < nx; i++)
            o_xorb_idx_free(&idx[i]);
        free(k);
        free(idx);
        free(xl);
        free(txi);
        o_file_free(&f);
        return send_err(x->c, 500, NULL, "reconstruction data unavailable");
    }
    /* fetch spans: per xorb, merge overlapping or adjacent chunk ranges */
    span *sp = calloc(nk ? nk : 1, sizeof *sp);
    size_t ns = 0;
    for (size_t i = 0; i < nk && sp; i++)
        sp[ns++] = (span){.xi = txi[i], .start = k[i].start, .end = k[i].end};
    if (sp)
        qsort(sp, ns, sizeof *sp, cmp_span);
    size_t nm = 0;
    for (size_t i = 0; i < ns; i++) {
        if (nm && sp[nm - 1].xi == sp[i].xi && sp[i].start <= sp[nm - 1].end) {
            if (sp[i].end > sp[nm - 1].end)
                sp[nm - 1].end = sp[i].end;
        } else {
            sp[nm++] = sp[i];
        }
    }
    for (size_t i = 0; i < nm; i++) {
        const o_xorb_idx *ix = &idx[sp[i].xi];
        sp[i].bs = sp[i].start ? ix->rec_end[sp[i].start - 1] : 0;
        sp[i].be = (uint64_t)ix->rec_end[sp[i].end - 1] - 1;
    }
    char *base = base_url(x->S, x->c);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "offset_into_first_range", (double)(have_first ? S0 - first_off : 0));
    cJSON *terms = cJSON_AddArrayToObject(j, "terms");
    for (size_t i = 0; i < nk; i++) {
        char hs[65];
        xet_hash_to_string(&k[i].t->xorb, hs);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "hash", hs);
        cJSON_AddNumberToObject(t, "unpacked_length", k[i].unpacked);
        cJSON *rg = cJSON_AddObjectToObject(t, "range");
        cJSON_AddNumberToObject(rg, "start", k[i].start);
        cJSON_AddNumberToObject(rg, "end", k[i].end);
        cJSON_AddItemToArray(terms, t);
    }
    cJSON *map = cJSON_AddObjectToObject(j, version == 2 ? "xorbs" : "fetch_info");
    /* xorbs in order of first appearance in the terms */
    for (size_t i = 0; i < nk; i++) {
        char hs[65];
        xet_hash_to_string(&k[i].t->xorb, hs);
        if (cJSON_GetObjectItemCaseSensitive(map, hs))
            continue;
        cJSON *arr = cJSON_AddArrayToObject(map, hs);
        for (size_t m = 0; m < nm; m++) {
            if (sp[m].xi != txi[i])
                continue;
            char *url = xorb_url(x->S, base ? base : "", hs, sp[m].bs, sp[m].be);
            cJSON *d = cJSON_CreateObject();
            if (version == 2) {
                cJSON_AddStringToObject(d, "url", url ? url : "");
                cJSON *rgs = cJSON_AddArrayToObject(d, "ranges");
                cJSON *one = cJSON_CreateObject();
                cJSON *ch = cJSON_AddObjectToObject(one, "chunks");
                cJSON_AddNumberToObject(ch, "start", sp[m].start);
                cJSON_AddNumberToObject(ch, "end", sp[m].end);
                cJSON *by = cJSON_AddObjectToObject(one, "bytes");
                cJSON_AddNumberToObject(by, "start", (double)sp[m].bs);
                cJSON_AddNumberToObject(by, "end", (double)sp[m].be);
                cJSON_AddItemToArray(rgs, one);
            } else {
                cJSON *rg = cJSON_AddObjectToObject(d, "range");
                cJSON_AddNumberToObject(rg, "start", sp[m].start);
                cJSON_AddNumberToObject(rg, "end", sp[m].end);
                cJSON_AddStringToObject(d, "url", url ? url : "");
                cJSON *ur = cJSON_AddObjectToObject(d, "url_range");
                cJSON_AddNumberToObject(ur, "start", (double)sp[m].bs);
                cJSON_AddNumberToObject(ur, "end", (double)sp[m].be);
            }
            free(url);
            cJSON_AddItemToArray(arr, d);
        }
    }
    free(base);
    free(sp);
    for (size_t i = 0; i < nx; i++)
        o_xorb_idx_free(&idx[i]);
    free(k);
    free(idx);
    free(xl);
    free(txi);
    o_file_free(&f);
    return send_json(x->c, 200, j, NULL);
}

/* CDN: signed xorb ranges */
static enum MHD_Result h_xorb_get(ctx *x, const char *hash)
{
    xet_hash h;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &h) != 0)
        return send_err(x->c, 400, NULL, "invalid xorb hash");
    char *sr = query_arg(x->c, "X-Xet-Signed-Range");
    char *ex = query_arg(x->c, "Expires");
    char *sig = query_arg(x->c, "Signature");
    enum MHD_Result ret;
    if (!sr || !ex || !sig || strlen(sig) != 64) {
        ret = send_err(x->c, 403, NULL, "missing signature");
        goto out;
    }
    char want[65];
    sign_url(x->S, hash, sr, strtoll(ex, NULL, 10), want);
    if (!ct_eq(want, sig)) {
        ret = send_err(x->c, 403, NULL, "bad signature");
        goto out;
    }
    if (strtoll(ex, NULL, 10) <= (long long)time(NULL)) {
        ret = send_err(x->c, 403, NULL, "URL expired");
        goto out;
    }
    char *p = o_path(x->S->s, "xorbs/%s", hash);
    int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    free(p);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        ret = send_err(x->c, 404, NULL, "xorb not found");
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size, s = 0, e = size ? size - 1 : 0;
    const char *rh = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Range");
    int pr = parse_range(rh, size, &s, &e);
    if (pr < 0) {
        close(fd);
        ret = send_err(x->c, pr == -2 ? 416 : 400, NULL, "bad range");
        goto out;
    }
    /* the requested range must lie inside one signed range */
    bool ok = false;
    if (strncmp(sr, "bytes=", 6) == 0) {
        char *dup = strdup(sr + 6), *save = NULL;
        for (char *t = dup ? strtok_r(dup, ",", &save) : NULL; t && !ok; t = strtok_r(NULL, ",", &save)) {
            unsigned long long a, b;
            if (sscanf(t, "%llu-%llu", &a, &b) == 2 && s >= a && e <= b)
                ok = true;
        }
        free(dup);
    }
    if (!ok) {
        close(fd);
        ret = send_err(x->c, 403, NULL, "range outside the signed range");
        goto out;
    }
    uint64_t len = e - s + 1;
    struct MHD_Response *rs = fd_response(x->S, x->rq, fd, s, len, hash, x->head);
    if (!rs) {
        ret = MHD_NO;
        goto out;
    }
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    MHD_add_response_header(rs, "Accept-Ranges", "bytes");
    if (pr == 1) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, s, e, size);
        MHD_add_response_header(rs, "Content-Range", cr);
    }
    ret = queue(x->c, pr == 1 ? 206 : 200, rs);
out:
    free(sr);
    free(ex);
    free(sig);
    return ret;
}

/* validate and store an uploaded xorb */
static enum MHD_Result h_xorb_post(ctx *x, const char *hash)
{
    int e = check_cas_token(x->S, x->c, true);
    if (e)
        return cas_denied(x->c, e);
    xet_hash h;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &h) != 0)
        return send_err(x->c, 400, NULL, "invalid xorb hash");
    if (o_xorb_exists(x->S->s, &h, NULL)) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "was_inserted", false);
        return send_json(x->c, 200, j, NULL);
    }
    xet_record *recs = NULL;
    long n = xet_xorb_index(x->rq->body, x->rq->len, &recs);
    if (n <= 0 || (size_t)n > XET_XORB_MAX_CHUNKS) {
        free(recs);
        return send_err(x->c, 400, NULL, "malformed xorb");
    }
    o_xorb_idx idx = {.n = (uint32_t)n};
    idx.rec_end = malloc((size_t)n * sizeof *idx.rec_end);
    idx.ulen = malloc((size_t)n * sizeof *idx.ulen);
    idx.hash = malloc((size_t)n * sizeof *idx.hash);
    xet_merkle_node *leaves = malloc((size_t)n * sizeof *leaves);
    uint8_t *dec = malloc(XET_CHUNK_MAX);
    e = (idx.rec_end && idx.ulen && idx.hash && leaves && dec) ? 0 : -ENOMEM;
    uint64_t end = 0;
    for (long i = 0; i < n && !e; i++) {
        const xet_record *r = &recs[i];
        e = xet_chunk_decode(&r->hdr, x->rq->body + r->offset + XET_CHUNK_HEADER_LEN, dec);
        if (e)
            break;
        xet_chunk_hash(dec, r->hdr.ulen, &idx.hash[i]);
        idx.ulen[i] = r->hdr.ulen;
        end = r->offset + XET_CHUNK_HEADER_LEN + r->hdr.clen;
        idx.rec_end[i] = (uint32_t)end;
        leaves[i].hash = idx.hash[i];
        leaves[i].len = r->hdr.ulen;
    }
    free(dec);
    free(recs);
    enum MHD_Result ret;
    if (e == -ENOMEM) {
        ret = MHD_NO;
    } else if (e || end > XET_XORB_MAX_BYTES) {
        ret = send_err(x->c, 400, NULL, "xorb does not decode");
    } else {
        xet_hash root;
        xet_merkle_root(leaves, (size_t)n, &root);
        if (!xet_hash_eq(&root, &h)) {
            ret = send_err(x->c, 400, NULL, "xorb hash mismatch");
        } else {
            /* footer (if any) dropped: stored as records only */
            e = o_xorb_store(x->S->s, &h, x->rq->body, (size_t)end, &idx);
            if (!e)
                e = o_cindex_add_xorb(&x->S->ci, &h, &idx);
            if (e) {
                ret = send_err(x->c, 500, NULL, strerror(-e));
            } else {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddBoolToObject(j, "was_inserted", true);
                ret = send_json(x->c, 200, j, NULL);
            }
        }
    }
    free(leaves);
    o_xorb_idx_free(&idx);
    return ret;
}

static enum MHD_Result h_shard_post(ctx *x, int version)
{
    int e = check_cas_token(x->S, x->c, true);
    if (e)
        return cas_denied(x->c, e);
    char err[256] = "";
    pthread_mutex_lock(&x->S->upmu);
    int r = o_shard_accept(x->S->s, &x->S->ci, x->rq->body, x->rq->len, err, sizeof err);
    pthread_mutex_unlock(&x->S->upmu);
    if (version == 2) {
        char *s;
        if (r < 0)
            s = o_strdup_printf("{\"type\":\"validating\",\"verified\":0,\"total\":1}\n"
                                "{\"type\":\"error\",\"message\":\"%s\"}\n",
                                err[0] ? err : "invalid shard");
        else
            s = o_strdup_printf("{\"type\":\"validating\",\"verified\":1,\"total\":1}\n"
                                "{\"type\":\"committing\",\"stage\":\"uploading\"}\n"
                                "{\"type\":\"result\",\"result\":%d}\n",
                                r);
        if (!s)
            return MHD_NO;
        struct MHD_Response *rs = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(rs, "Content-Type", "application/x-ndjson");
        return queue(x->c, 200, rs);
    }
    if (r < 0)
        return send_err(x->c, 400, NULL, err[0] ? err : "invalid shard");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "result", r);
    return send_json(x->c, 200, j, NULL);
}

/* A global-dedup answer: one xorb block, no files, plain chunk hashes, and
 * (unlike upload shards) the lookup tables and footer offsets that
 * xet-core's shard reader relies on: xorb lookup {u64 key, u32 record
 * index}, chunk lookup {u64 key, u32 xorb record index, u32 chunk index},
 * keys = first 8 raw hash bytes as LE u64, sorted. */
typedef struct lk {
    uint64_t key;
    uint32_t a, b;
} lk;

static int cmp_lk(const void *x, const void *y)
{
    const lk *p = x, *q = y;
    return p->key < q->key ? -1 : p->key > q->key;
}

static void w64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int dedup_shard(const xet_shard_xorb *sx, uint8_t **out, size_t *outlen)
{
    xet_shard sh;
    memset(&sh, 0, sizeof sh);
    sh.nxorbs = 1;
    sh.xorbs = (xet_shard_xorb *)sx;
    uint8_t *body = NULL;
    size_t blen = 0;
    int e = xet_shard_write(&sh, false, &body, &blen);
    if (e)
        return e;
    size_t nck = sx->nchunks;
    lk *t = calloc(nck ? nck : 1, sizeof *t);
    size_t total = blen + 12 + 16 * nck + XET_SHARD_FOOTER_LEN;
    uint8_t *b = realloc(body, total);
    if (!t || !b) {
        free(t);
        free(b ? b : body);
        return -ENOMEM;
    }
    w64(b + 40, XET_SHARD_FOOTER_LEN); /* header: footer present */
    size_t xorb_info = blen - 48 - (1 + nck) * 48; /* after the file bookend */
    uint8_t *p = b + blen;
    size_t cas_lookup = blen;
    uint64_t k;
    memcpy(&k, sx->hash.b, 8);
    w64(p, k);
    memset(p + 8, 0, 4); /* xorb header is record 0 of its section */
    p += 12;
    size_t chunk_lookup = (size_t)(p - b);
    for (size_t i = 0; i < nck; i++) {
        memcpy(&t[i].key, sx->chunks[i].hash.b, 8);
        t[i].a = 0;
        t[i].b = (uint32_t)i;
    }
    qsort(t, nck, sizeof *t, cmp_lk);
    for (size_t i = 0; i < nck; i++) {
        w64(p, t[i].key);
        for (int j = 0; j < 4; j++) {
            p[8 + j] = (uint8_t)(t[i].a >> (8 * j));
            p[12 + j] = (uint8_t)(t[i].b >> (8 * j));
        }
        p += 16;
    }
    free(t);
    uint8_t *ft = p;
    memset(ft, 0, XET_SHARD_FOOTER_LEN);
    uint64_t now = (uint64_t)time(NULL);
    w64(ft + 0, 1);
    w64(ft + 8, XET_SHARD_HEADER_LEN);
    w64(ft + 16, xorb_info);
    w64(ft + 24, cas_lookup); /* file lookup: empty, at the xorb lookup */
    w64(ft + 32, 0);
    w64(ft + 40, cas_lookup);
    w64(ft + 48, 1);
    w64(ft + 56, chunk_lookup);
    w64(ft + 64, nck);
    w64(ft + 104, now);
    w64(ft + 112, now + 7 * 86400);
    w64(ft + 168, sx->bytes_on_disk);
    w64(ft + 176, sx->bytes_in_xorb);
    w64(ft + 184, sx->bytes_in_xorb);
    w64(ft + 192, (uint64_t)(ft - b));
    *out = b;
    *outlen = total;
    return 0;
}

static enum MHD_Result h_chunk_query(ctx *x, const char *hash)
{
    int e = check_cas_token(x->S, x->c, false);
    if (e)
        return cas_denied(x->c, e);
    xet_hash ch, xh;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &ch) != 0)
        return send_err(x->c, 400, NULL, "invalid chunk hash");
    uint32_t index;
    if (o_cindex_find(&x->S->ci, &ch, &index, &xh) < 0)
        return send_err(x->c, 404, NULL, "chunk not found");
    o_xorb_idx idx;
    if (o_xorb_idx_load(x->S->s, &xh, &idx) != 0)
        return send_err(x->c, 404, NULL, "chunk not found");
    uint64_t size = 0;
    o_xorb_exists(x->S->s, &xh, &size);
    xet_shard_xorb sx;
    memset(&sx, 0, sizeof sx);
    sx.hash = xh;
    sx.nchunks = idx.n;
    sx.bytes_on_disk = (uint32_t)size;
    sx.chunks = calloc(idx.n, sizeof *sx.chunks);
    uint32_t uoff = 0;
    for (uint32_t i = 0; sx.chunks && i < idx.n; i++) {
        sx.chunks[i].hash = idx.hash[i];
        sx.chunks[i].offset = uoff;
        sx.chunks[i].len = idx.ulen[i];
        uoff += idx.ulen[i];
    }
    sx.bytes_in_xorb = uoff;
    o_xorb_idx_free(&idx);
    uint8_t *out = NULL;
    size_t outlen = 0;
    e = sx.chunks ? dedup_shard(&sx, &out, &outlen) : -ENOMEM;
    free(sx.chunks);
    if (e)
        return send_err(x->c, 500, NULL, "shard write failed");
    struct MHD_Response *rs = MHD_create_response_from_buffer(outlen, out, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    return queue(x->c, 200, rs);
}

static ssize_t never_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static enum MHD_Result head_len(struct MHD_Connection *c, uint64_t len)
{
    struct MHD_Response *rs = MHD_create_response_from_callback(len, 4096, never_cb, NULL, NULL);
    return rs ? queue(c, 200, rs) : MHD_NO;
}

/* ---- control ---------------------------------------------------------------- */

static cJSON *knobs_json(srv *S)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "latency_ms", S->latency_ms);
    cJSON_AddNumberToObject(j, "conn_bps", (double)S->conn_bps);
    cJSON_AddNumberToObject(j, "total_bps", (double)S->total_bps);
    cJSON_AddNumberToObject(j, "fail_every", S->fail_every);
    cJSON_AddNumberToObject(j, "truncate_every", S->truncate_every);
    cJSON_AddNumberToObject(j, "flip_every", S->flip_every);
    cJSON_AddNumberToObject(j, "refuse_xorbs", S->refuse_xorbs);
    cJSON_AddNumberToObject(j, "stall_every", S->stall_every);
    cJSON_AddNumberToObject(j, "stall_ms", S->stall_ms);
    cJSON_AddNumberToObject(j, "token_ttl", S->token_ttl);
    cJSON_AddNumberToObject(j, "url_ttl", S->url_ttl);
    o_hr_knobs_json(S->hr, j);
    return j;
}

static cJSON *stats_json(srv *S)
{
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&S->stmu);
    cJSON_AddNumberToObject(j, "requests", (double)S->requests);
    cJSON_AddNumberToObject(j, "bytes_total", (double)S->bytes_total);
    cJSON_AddNumberToObject(j, "xorb_bytes_total", (double)S->xorb_bytes_total);
    cJSON_AddNumberToObject(j, "faults", (double)S->faults);
    cJSON_AddNumberToObject(j, "xet_tokens", (double)S->tokens);
    cJSON *px = cJSON_AddObjectToObject(j, "per_xorb");
    for (size_t i = 0; i < S->nper_xorb; i++)
        cJSON_AddNumberToObject(px, S->per_xorb[i].key, (double)S->per_xorb[i].bytes);
    cJSON *pc = cJSON_AddObjectToObject(j, "per_client");
    for (size_t i = 0; i < S->nper_client; i++)
        cJSON_AddNumberToObject(pc, S->per_client[i].key, (double)S->per_client[i].bytes);
    pthread_mutex_unlock(&S->stmu);
    return j;
}

static enum MHD_Result h_control(ctx *x)
{
    srv *S = x->S;
    const segs *g = &x->sg;
    if (g->n == 2 && !strcmp(g->v[1], "stats") && (x->get || x->head))
        return send_json(x->c, 200, stats_json(S), NULL);
    if (g->n == 2 && !strcmp(g->v[1], "knobs") && (x->get || x->head))
        return send_json(x->c, 200, knobs_json(S), NULL);
    if (!is_loopback(x->c))
        return send_err(x->c, 403, NULL, "control endpoint: loopback only");
    if (g->n == 3 && !strcmp(g->v[1], "stats") && !strcmp(g->v[2], "reset") && x->post) {
        pthread_mutex_lock(&S->stmu);
        S->bytes_total = S->xorb_bytes_total = S->requests = S->faults = S->tokens = 0;
        S->nper_xorb = S->nper_client = 0;
        pthread_mutex_unlock(&S->stmu);
        return send_json(x->c, 200, stats_json(S), NULL);
    }
    if (g->n == 2 && !strcmp(g->v[1], "knobs") && x->post) {
        cJSON *j = cJSON_ParseWithLength(body_of(x), x->rq->len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return send_err(x->c, 400, NULL, "JSON object expected");
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, j)
        {
            if (o_hr_knob(S->hr, it))
                continue;
            if (!cJSON_IsNumber(it) || it->valuedouble < 0)
                continue;
            double v = it->valuedouble;
            if (!strcmp(it->string, "latency_ms"))
                S->latency_ms = (unsigned)v;
            else if (!strcmp(it->string, "conn_bps"))
                S->conn_bps = (uint64_t)v;
            else if (!strcmp(it->string, "total_bps"))
                S->total_bps = (uint64_t)v;
            else if (!strcmp(it->string, "fail_every"))
                S->fail_every = (unsigned)v;
            else if (!strcmp(it->string, "truncate_every"))
                S->truncate_every = (unsigned)v;
            else if (!strcmp(it->string, "flip_every"))
                S->flip_every = (unsigned)v;
            else if (!strcmp(it->string, "refuse_xorbs"))
                S->refuse_xorbs = (unsigned)v;
            else if (!strcmp(it->string, "stall_every"))
                S->stall_every = (unsigned)v;
            else if (!strcmp(it->string, "stall_ms"))
                S->stall_ms = (unsigned)v;
            else if (!strcmp(it->string, "token_ttl"))
                S->token_ttl = (unsigned)v;
            else if (!strcmp(it->string, "url_ttl"))
                S->url_ttl = (unsigned)v;
        }
        cJSON_Delete(j);
        S->nreq = 0;
        S->nbody = 0;
        S->nxorbreq = 0;
        return send_json(x->c, 200, knobs_json(S), NULL);
    }
    return send_err(x->c, 404, NULL, "no such control route");
}

static bool may_write(srv *S, struct MHD_Connection *c)
{
    return S->o->ntokens == 0 || hub_auth(S, c) == AUTH_VALID;
}

static enum MHD_Result h_create_repo(ctx *x)
{
    srv *S = x->S;
    if (hub_auth(S, x->c) == AUTH_INVALID || !may_write(S, x->c))
        return send_err(x->c, 401, NULL, "creating a repo requires a valid token");
    cJSON *j = cJSON_ParseWithLength(body_of(x), x->rq->len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(j, "organization");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *priv = cJSON_GetObjectItemCaseSensitive(j, "private");
    char id[260] = "";
    if (cJSON_IsString(name) && cJSON_IsString(org))
        snprintf(id, sizeof id, "%s/%s", org->valuestring, name->valuestring);
    else if (cJSON_IsString(name))
        snprintf(id, sizeof id, "%s", name->valuestring);
    char t[16]; /* copied: j is freed before the answer is made */
    snprintf(t, sizeof t, "%s", cJSON_IsString(type) ? type->valuestring : "model");
    char err[256] = "";
    pthread_mutex_lock(&S->upmu);
    int e = id[0] ? o_hub_create_repo(S->s, t, id, cJSON_IsTrue(priv), err, sizeof err) : -EINVAL;
    pthread_mutex_unlock(&S->upmu);
    cJSON_Delete(j);
    if (e && e != -EEXIST)
        return send_err(x->c, 400, NULL, err[0] ? err : "invalid repo");
    char *base = base_url(S, x->c);
    cJSON *o = cJSON_CreateObject();
    if (e == -EEXIST)
        cJSON_AddStringToObject(o, "error", err); /* the Hub's 409 also carries the url */
    char *url = o_strdup_printf("%s/%s%s", base ? base : "",
                                !strcmp(t, "dataset") ? "datasets/" : !strcmp(t, "space") ? "spaces/" : "", id);
    cJSON_AddStringToObject(o, "url", url ? url : "");
    cJSON_AddStringToObject(o, "name", id);
    free(url);
    free(base);
    if (e == -EEXIST) {
        struct MHD_Response *rs = NULL;
        send_json(x->c, 409, o, &rs);
        if (!rs)
            return MHD_NO;
        MHD_add_response_header(rs, "X-Error-Message", err);
        return queue(x->c, 409, rs);
    }
    return send_json(x->c, 200, o, NULL);
}

static enum MHD_Result h_commit(ctx *x, const o_repo *r, const char *rev)
{
    srv *S = x->S;
    if (!may_write(S, x->c))
        return send_err(x->c, 401, NULL, "committing requires a valid token");
    char id[41] = "", err[512] = "";
    pthread_mutex_lock(&S->upmu);
    int e = o_hub_commit(S->s, r, rev, body_of(x), x->rq->len, id, err, sizeof err);
    pthread_mutex_unlock(&S->upmu);
    if (e == -EAGAIN)
        return send_err(x->c, 412, NULL, err);
    if (e)
        return send_err(x->c, e == -ENOENT ? 404 : 400, e == -ENOENT ? "EntryNotFound" : NULL, err);
    char *base = base_url(S, x->c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "commitOid", id);
    char *url = o_strdup_printf("%s/%s%s/commit/%s", base ? base : "",
                                !strcmp(r->type, "dataset") ? "datasets/" : !strcmp(r->type, "space") ? "spaces/" : "",
                                r->id, id);
    cJSON_AddStringToObject(o, "commitUrl", url ? url : "");
    cJSON_AddNullToObject(o, "pullRequestUrl");
    cJSON_AddStringToObject(o, "hookOutput", "");
    free(url);
    free(base);
    return send_json(x->c, 200, o, NULL);
}

/* ---- dispatcher -------------------------------------------------------------- */

static const char *type_from_plural(const char *p)
{
    if (!strcmp(p, "models"))
        return "model";
    if (!strcmp(p, "datasets"))
        return "dataset";
    if (!strcmp(p, "spaces"))
        return "space";
    return NULL;
}

/* A gated repo refuses this caller (hubreal.c): the answer is queued. */
static bool gate_denies(ctx *x, const o_repo *r, enum MHD_Result *ret)
{
    char *base = base_url(x->S, x->c);
    bool d = o_hr_gate_denies(x->S->hr, x->c, r->type, r->id, base, ret);
    free(base);
    return d;
}

static enum MHD_Result route(ctx *x)
{
    srv *S = x->S;
    segs *g = &x->sg;
    struct MHD_Connection *c = x->c;
    enum MHD_Result ret;

    if (g->n >= 1 && !strcmp(g->v[0], "_origin"))
        return h_control(x);

    pthread_mutex_lock(&S->stmu);
    S->requests++;
    pthread_mutex_unlock(&S->stmu);
    if (S->latency_ms)
        sleep_ns((uint64_t)S->latency_ms * 1000000ull);
    if (S->fail_every) {
        uint64_t n = ++S->nreq;
        if (n % S->fail_every == 0) {
            pthread_mutex_lock(&S->stmu);
            S->faults++;
            pthread_mutex_unlock(&S->stmu);
            return send_err(c, 503, NULL, "injected failure (fail_every)");
        }
    }

    if (o_hr_pre(S->hr, c, g->v, g->n, &ret))
        return ret;
    /* Hub write API */
    if (g->n == 3 && !strcmp(g->v[0], "api") && !strcmp(g->v[1], "repos") && !strcmp(g->v[2], "create") &&
        x->post)
        return h_create_repo(x);
    /* Hub API */
    if (g->n >= 4 && !strcmp(g->v[0], "api") && type_from_plural(g->v[1])) {
        const char *type = type_from_plural(g->v[1]);
        char id[260];
        snprintf(id, sizeof id, "%s/%s", g->v[2], g->v[3]);
        o_repo r;
        if (!visible_repo(S, c, type, id, &r, &ret))
            return ret;
        if (g->n == 4 && (x->get || x->head))
            return h_repo_info(x, &r, "main");
        if (g->n == 4) /* another method on the repo itself (there is no g->v[4]) */
            return send_err(c, 404, NULL, "not found");
        const char *op = g->v[4];
        if (!strcmp(op, "revision") && g->n == 6 && (x->get || x->head))
            return h_repo_info(x, &r, g->v[5]);
        if (!strcmp(op, "refs") && g->n == 5 && (x->get || x->head))
            return h_refs(x, &r);
        if (!strcmp(op, "tree") && g->n >= 6 && (x->get || x->head)) {
            char *dir = join_segs(g, 6);
            ret = dir ? h_tree(x, &r, g->v[5], dir) : MHD_NO;
            free(dir);
            return ret;
        }
        if (!strcmp(op, "paths-info") && g->n == 6 && x->post)
            return h_paths_info(x, &r, g->v[5]);
        if (!strcmp(op, "preupload") && g->n == 6 && x->post) {
            cJSON *j = o_hub_preupload(S->s, &r, g->v[5], body_of(x), x->rq->len);
            return j ? send_json(c, 200, j, NULL) : send_err(c, 400, NULL, "invalid preupload body");
        }
        if (!strcmp(op, "commit") && g->n == 6 && x->post)
            return h_commit(x, &r, g->v[5]);
        if (!strcmp(op, "xet-read-token") && g->n == 6 && (x->get || x->head))
            return gate_denies(x, &r, &ret) ? ret : h_token(x, &r, g->v[5], false);
        if (!strcmp(op, "xet-write-token") && g->n == 6 && (x->get || x->head))
            return h_token(x, &r, g->v[5], true);
        return send_err(c, 404, NULL, "not found");
    }
    /* bridge */
    if (g->n >= 6 && !strcmp(g->v[0], "_bridge") && (x->get || x->head)) {
        char id[260];
        snprintf(id, sizeof id, "%s/%s", g->v[2], g->v[3]);
        o_repo r;
        if (!visible_repo(S, c, g->v[1], id, &r, &ret) || gate_denies(x, &r, &ret))
            return ret;
        char *path = join_segs(g, 5);
        ret = path ? h_resolve(x, &r, g->v[4], path, true) : MHD_NO;
        free(path);
        return ret;
    }
    /* CAS */
    if (g->n == 3 && !strcmp(g->v[1], "reconstructions") && x->get &&
        (!strcmp(g->v[0], "v1") || !strcmp(g->v[0], "v2")))
        return h_reconstruction(x, g->v[2], g->v[0][1] - '0');
    if (g->n == 3 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "files") && (x->head || x->get)) {
        int e = check_cas_token(S, c, false);
        if (e)
            return cas_denied(c, e);
        xet_hash h;
        o_file f;
        if (xet_hash_from_string(g->v[2], &h) != 0 || o_file_load(S->s, &h, &f) != 0)
            return send_err(c, 404, NULL, "file not found");
        uint64_t sz = f.size;
        o_file_free(&f);
        return head_len(c, sz);
    }
    if (g->n == 4 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "xorbs")) {
        if (x->post)
            return h_xorb_post(x, g->v[3]);
        if (x->head) {
            int e = check_cas_token(S, c, false);
            if (e)
                return cas_denied(c, e);
            xet_hash h;
            uint64_t sz;
            if (xet_hash_from_string(g->v[3], &h) != 0 || !o_xorb_exists(S->s, &h, &sz))
                return send_err(c, 404, NULL, "xorb not found");
            return head_len(c, sz);
        }
    }
    if (g->n == 2 && !strcmp(g->v[1], "shards") && x->post &&
        (!strcmp(g->v[0], "v1") || !strcmp(g->v[0], "v2")))
        return h_shard_post(x, g->v[0][1] - '0');
    if (g->n == 4 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "chunks") && x->get)
        return h_chunk_query(x, g->v[3]);
    /* CDN */
    if (g->n == 3 && !strcmp(g->v[0], "xorbs") && (x->get || x->head)) {
        if (S->refuse_xorbs) {
            pthread_mutex_lock(&S->stmu);
            S->faults++;
            pthread_mutex_unlock(&S->stmu);
            return send_err(c, 503, NULL, "injected failure (refuse_xorbs)");
        }
        return h_xorb_get(x, g->v[2]);
    }
    /* resolve */
    {
        size_t o = 0;
        const char *type = "model";
        if (g->n >= 1 && (!strcmp(g->v[0], "datasets") || !strcmp(g->v[0], "spaces"))) {
            type = type_from_plural(g->v[0]);
            o = 1;
        }
        if (g->n >= o + 5 && !strcmp(g->v[o + 2], "resolve") && (x->get || x->head)) {
            char id[260];
            snprintf(id, sizeof id, "%s/%s", g->v[o], g->v[o + 1]);
            o_repo r;
            if (!visible_repo(S, c, type, id, &r, &ret) || gate_denies(x, &r, &ret))
                return ret;
            char *path = join_segs(g, o + 4);
            ret = path ? h_resolve(x, &r, g->v[o + 3], path, false) : MHD_NO;
            free(path);
            return ret;
        }
    }
    return send_err(c, 404, NULL, "not found");
}

/* Before the body (issue #19): which routes take a body, how much, and
 * whether this request may send it.  Called with the headers only; returns
 * true to go on reading, false with an answer queued in *ret (401/403/404 as
 * the route would give after the body, 413 past the cap), so an
 * unauthorized or oversized upload costs no memory and no read. */
static bool pre_body(ctx *x, enum MHD_Result *ret)
{
    srv *S = x->S;
    segs *g = &x->sg;
    struct MHD_Connection *c = x->c;
    size_t max = 0;
    int need = 0; /* 1 CAS write token, 2 Hub repo access, 3 Hub write, 4 loopback */
    const char *type = NULL;
    /* the real Hub's answers (a renamed repo's 307, 429, a revoked token)
     * come before its own auth, as they do after the body (route()) */
    if (x->post && o_hr_pre(S->hr, c, g->v, g->n, ret))
        return false;
    if (x->post) {
        if (g->n == 4 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "xorbs"))
            max = CAP_XORB, need = 1;
        else if (g->n == 2 && !strcmp(g->v[1], "shards") &&
                 (!strcmp(g->v[0], "v1") || !strcmp(g->v[0], "v2")))
            max = CAP_SHARD, need = 1;
        else if (g->n == 3 && !strcmp(g->v[0], "api") && !strcmp(g->v[1], "repos") &&
                 !strcmp(g->v[2], "create"))
            max = CAP_SMALL, need = 3;
        else if (g->n == 6 && !strcmp(g->v[0], "api") && (type = type_from_plural(g->v[1])) &&
                 (!strcmp(g->v[4], "paths-info") || !strcmp(g->v[4], "preupload")))
            max = CAP_JSON, need = 2;
        else if (g->n == 6 && !strcmp(g->v[0], "api") && (type = type_from_plural(g->v[1])) &&
                 !strcmp(g->v[4], "commit"))
            max = CAP_COMMIT, need = 2;
        else if (g->n >= 2 && !strcmp(g->v[0], "_origin"))
            max = CAP_SMALL, need = 4;
    }
    x->rq->max = max;
    if (need == 1) {
        int e = check_cas_token(S, c, true);
        if (e) {
            *ret = cas_denied(c, e);
            return false;
        }
    } else if (need == 2) {
        char id[260];
        snprintf(id, sizeof id, "%s/%s", g->v[2], g->v[3]);
        o_repo r;
        if (!visible_repo(S, c, type, id, &r, ret))
            return false;
        if (!strcmp(g->v[4], "commit") && !may_write(S, c)) {
            *ret = send_err(c, 401, NULL, "committing requires a valid token");
            return false;
        }
    } else if (need == 3) {
        if (hub_auth(S, c) == AUTH_INVALID || !may_write(S, c)) {
            *ret = send_err(c, 401, NULL, "creating a repo requires a valid token");
            return false;
        }
    } else if (need == 4 && !is_loopback(c)) {
        *ret = send_err(c, 403, NULL, "control endpoint: loopback only");
        return false;
    }
    /* hf_xet >= 1.8 first asks for a xorb upload grant; this origin offers
     * none, and a 404 (what route() answers) sends the client to the xorb
     * upload API — a 413 for its body would fail the upload */
    if (x->post && g->n >= 2 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "xorb-grants")) {
        *ret = send_err(c, 404, NULL, "xorb upload grants are not offered: use /v1/xorbs");
        return false;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end == cl || *end || errno || n > max) {
            *ret = send_err(c, 413, NULL, max ? "request body larger than this route takes"
                                              : "this route takes no request body");
            return false;
        }
        if (n) { /* one allocation of the announced size */
            x->rq->body = malloc((size_t)n);
            if (!x->rq->body) {
                *ret = MHD_NO;
                return false;
            }
            x->rq->cap = (size_t)n;
        }
    }
    return true;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    srv *S = cls;
    req *rq = *con_cls;
    ctx x = {.S = S, .c = c, .rq = rq, .method = method};
    x.head = !strcmp(method, "HEAD");
    x.get = !strcmp(method, "GET");
    x.post = !strcmp(method, "POST") || !strcmp(method, "PUT");
    if (!rq) { /* headers only: authorize and size the body before reading it */
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        client_str(c, rq->client, sizeof rq->client);
        *con_cls = rq;
        x.rq = rq;
        if (split_path(url, &x.sg) != 0) {
            rq->answered = true;
            return send_err(c, 400, NULL, "bad path");
        }
        enum MHD_Result ret = MHD_YES;
        if (!pre_body(&x, &ret))
            rq->answered = true;
        segs_free(&x.sg);
        return ret;
    }
    if (rq->answered) { /* answered before the body; MHD discards the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (n > rq->max - rq->len)
            return MHD_NO; /* a chunked body past its cap: close */
        if (rq->len + n > rq->cap) {
            size_t nc = rq->cap ? rq->cap : 65536;
            while (nc < rq->len + n)
                nc *= 2;
            if (nc > rq->max)
                nc = rq->max;
            uint8_t *nb = realloc(rq->body, nc);
            if (!nb)
                return MHD_NO;
            rq->body = nb;
            rq->cap = nc;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (split_path(url, &x.sg) != 0)
        return send_err(c, 400, NULL, "bad path");
    enum MHD_Result r = route(&x);
    segs_free(&x.sg);
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *S = cls;
    req *rq = *con_cls;
    if (!rq)
        return;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->planned)
        account(S, rq->client, rq->xorb, rq->planned);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static size_t unescape_noop(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static volatile sig_atomic_t g_stop;
static void on_sig(int sig)
{
    g_stop = 1;
}

static int parse_listen(const char *l, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(l, ':');
    if (!colon)
        return -EINVAL;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 0 || port > 65535)
        return -EINVAL;
    char host[128];
    size_t hl = (size_t)(colon - l);
    if (hl >= sizeof host)
        return -EINVAL;
    memcpy(host, l, hl);
    host[hl] = 0;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (host[n - 1] != ']')
            return -EINVAL;
        host[n - 1] = 0;
        memmove(host, host + 1, n - 1);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        *sl = sizeof *a;
        return AF_INET6;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (host[0] == 0 || !strcmp(host, "*"))
        a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -EINVAL;
    *sl = sizeof *a;
    return AF_INET;
}

int o_server_start(o_store *st, const o_serve_opts *o, bool no_listen, o_server **out)
{
    srv *S = calloc(1, sizeof *S);
    if (!S)
        return -ENOMEM;
    g_srv = S;
    S->s = st;
    S->o = o;
    S->latency_ms = o->latency_ms;
    S->conn_bps = o->conn_bps;
    S->total_bps = o->total_bps;
    S->fail_every = o->fail_every;
    S->truncate_every = o->truncate_every;
    S->flip_every = o->flip_every;
    S->stall_ms = 60000;
    S->token_ttl = o->token_ttl;
    S->url_ttl = o->url_ttl;
    pthread_mutex_init(&S->stmu, NULL);
    pthread_mutex_init(&S->bwmu, NULL);
    pthread_mutex_init(&S->upmu, NULL);
    S->hr = o_hr_new();
    if (!S->hr) {
        o_server_stop(S);
        return -ENOMEM;
    }
    for (size_t i = 0; i + 1 < o->nhr_flags; i += 2)
        if (o_hr_flag(S->hr, o->hr_flags[i], o->hr_flags[i + 1]) != 0) {
            fprintf(stderr, "zestfs-origin: bad %s %s\n", o->hr_flags[i], o->hr_flags[i + 1]);
            o_server_stop(S);
            return -EINVAL;
        }
    int e = o_cindex_init(&S->ci);
    if (!e)
        e = o_cindex_load(&S->ci, st);
    if (e) {
        o_hr_free(S->hr);
        free(S);
        return e;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    int fam = parse_listen(o->listen ? o->listen : "127.0.0.1:8080", &ss, &sl);
    if (fam < 0) {
        fprintf(stderr, "zestfs-origin: bad --listen address\n");
        o_cindex_free(&S->ci);
        o_hr_free(S->hr);
        free(S);
        return -EINVAL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    if (fam == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (no_listen) /* fuzzing: quiet (MHD logs every malformed request) */
        flags = (flags & ~(unsigned)MHD_USE_ERROR_LOG) | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (o->tls_cert || o->tls_key) {
        size_t n;
        if (!o->tls_cert || !o->tls_key ||
            o_read_file(o->tls_cert, (uint8_t **)&S->cert, &n, 1 << 20) != 0 ||
            o_read_file(o->tls_key, (uint8_t **)&S->key, &n, 1 << 20) != 0) {
            fprintf(stderr, "zestfs-origin: cannot read --tls-cert/--tls-key\n");
            free(S->cert);
            free(S->key);
            o_cindex_free(&S->ci);
            o_hr_free(S->hr);
        free(S);
            return -EINVAL;
        }
        flags |= MHD_USE_TLS;
        S->tls = true;
    }
    signal(SIGPIPE, SIG_IGN);
    if (S->tls)
        S->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, S, MHD_OPTION_SOCK_ADDR, &ss,
                                MHD_OPTION_NOTIFY_COMPLETED, completed_cb, S,
                                MHD_OPTION_UNESCAPE_CALLBACK, unescape_noop, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                                MHD_OPTION_HTTPS_MEM_KEY, S->key, MHD_OPTION_HTTPS_MEM_CERT, S->cert,
                                MHD_OPTION_END);
    else
        S->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, S, MHD_OPTION_SOCK_ADDR, &ss,
                                MHD_OPTION_NOTIFY_COMPLETED, completed_cb, S,
                                MHD_OPTION_UNESCAPE_CALLBACK, unescape_noop, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!S->d) {
        fprintf(stderr, "zestfs-origin: cannot start the HTTP server on %s\n", o->listen);
        free(S->cert);
        free(S->key);
        o_cindex_free(&S->ci);
        o_hr_free(S->hr);
        free(S);
        return -EADDRINUSE;
    }
    *out = S;
    return 0;
}

unsigned o_server_port(o_server *S)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : 0;
}

int o_server_add(o_server *S, int fd, const struct sockaddr *addr, socklen_t len)
{
    return MHD_add_connection(S->d, fd, addr, len) == MHD_YES ? 0 : -EIO;
}

void o_server_stop(o_server *S)
{
    if (!S)
        return;
    MHD_stop_daemon(S->d);
    free(S->cert);
    free(S->key);
    o_cindex_free(&S->ci);
    free(S->per_xorb);
    free(S->per_client);
    o_hr_free(S->hr);
    pthread_mutex_destroy(&S->stmu);
    pthread_mutex_destroy(&S->bwmu);
    pthread_mutex_destroy(&S->upmu);
    if (g_srv == S)
        g_srv = NULL;
    free(S);
}

int o_serve(o_store *st, const o_serve_opts *o)
{
    srv *S;
    int e = o_server_start(st, o, false, &S);
    if (e)
        return e;
    unsigned port = o_server_port(S);
    if (!o->quiet)
        fprintf(stderr, "zestfs-origin: serving %s on %s://%s (port %u)\n", st->dir,
                S->tls ? "https" : "http", o->listen, port);
    if (o->port_file) {
        char *tmp = o_strdup_printf("%s.tmp", o->port_file);
        FILE *pf = tmp ? fopen(tmp, "w") : NULL;
        if (pf) {
            fprintf(pf, "%u\n", port);
            fclose(pf);
            rename(tmp, o->port_file);
        }
        free(tmp);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!g_stop)
        pause();
    o_server_stop(S);
    return 0;
}
