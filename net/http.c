/* http.c — libcurl multi driven by a libuv loop (see net.h for the design).
 *
 * Integration: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION)
 * and when to wake it (CURLMOPT_TIMERFUNCTION).  Each watched socket gets a
 * uv_poll_t (attached to curl's socket with curl_multi_assign); the wake-up is
 * one uv_timer_t.  Their callbacks call curl_multi_socket_action, then drain
 * curl_multi_info_read for finished transfers.
 *
 * A second uv_timer_t runs the client's schedule: requests waiting for their
 * next attempt (backoff), deferred completions and cancellations.  Completion
 * callbacks are only ever called from those two places (or from
 * zn_http_free), never from inside a curl callback, so they may start,
 * cancel or free anything. */
#include "net_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#define MAX_HEADERS 256
#define MAX_HEADER_BYTES (256u << 10)
#define MAX_REDIRECTS 5

typedef struct zn_sock {
    uv_poll_t poll;
    zn_http *c;
    curl_socket_t fd;
    struct zn_sock *next, *prev;
} zn_sock;

struct zn_resp {
    int status;
    int attempts;
    char **hdr;            /* "name\0value" blocks */
    size_t nhdr;
    size_t hdr_bytes;
    const void *body;
    size_t body_len;
};

enum { Q_IDLE, Q_ACTIVE, Q_DONE };

struct zn_req {
    zn_http *c;
    zn_req *next, *prev;   /* all live requests of the client */
    zn_req *snext;         /* schedule, sorted by wake */
    uint64_t wake;
    bool in_sched, canceled, is_defer, cdn;
    bool pausable;         /* the deadline bounds retries only, not a running attempt */
    bool paused;           /* zn_req_pause: receiving is held */
    bool curl_paused;      /* ... and libcurl was told so (HTTP/1.x only) */
    bool deferred;         /* an attempt came due while paused: started on resume */
    uint64_t pause_t0;     /* uv_now when paused */
    int state;
    CURL *easy;

    /* parameters (copied) */
    char *method;
    char *url;
    struct curl_slist *hdrs;
    uint8_t *reqbody;
    size_t reqbody_len;
    bool range_body;
    zn_range range;
    zn_data_cb on_data;
    uint8_t *buf;
    size_t buf_len;
    size_t max_body;
    bool compressed, follow;
    long timeout_ms;
    bool has_retry;
    zn_retry retry;
    uint64_t deadline;     /* uv_now ms; 0: none */
    uint64_t started;      /* uv_now ms at the start call */
    zn_done_cb done;
    void *ud;

    /* per attempt */
    int attempt;
    int redirects;
    bool body_checked, body_ok;
    int werr;              /* reason a curl callback aborted the transfer */
    size_t got;            /* 2xx body bytes taken */
    bool delivered;        /* on_data saw bytes (no retry after that) */
    uint8_t *coll;         /* internal body buffer */
    size_t coll_cap;
    uint8_t *ebuf;         /* error answer body */
    size_t elen;
    zn_resp resp;
};

struct zn_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t curl_timer;
    uv_timer_t sched_timer;
    int open_handles;
    zn_sock *socks;
    zn_req *reqs;
    zn_req *sched;
    int depth;
    bool closing, torn_down;
    uint64_t rng;
    uint64_t nconnects;
    /* options */
    char *cacert;
    char *user_agent;
    long connect_timeout_ms, low_speed_limit, low_speed_time;
    bool http2;
};

static void check_multi(zn_http *c);
static void sched_arm(zn_http *c);
static void teardown(zn_http *c);

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_ms(zn_http *c)
{
    return uv_now(c->loop);
}

static double rand01(zn_http *c)
{
    /* xorshift64*: jitter only, not security relevant */
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

int zn_http_errno(long status)
{
    if (status < 400)
        return 0;
    switch (status) {
    case 400: return -EINVAL;
    case 401: return -EACCES;
    case 403: return -EPERM;
    case 404:
    case 410: return -ENOENT;
    case 408:
    case 429: return -EAGAIN;
    case 413: return -EFBIG;
    case 416: return -ERANGE;
    case 501: return -ENOSYS;
    default: return status >= 500 ? -EAGAIN : -EIO;
    }
}

bool zn_err_retryable(int err)
{
    switch (err) {
    case -EAGAIN:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ECONNRESET:
    case -EPROTO:
        return true;
    default:
        return false;
    }
}

static int curl_errno(CURLcode cc, long oserr)
{
    switch (cc) {
    case CURLE_OK: return 0;
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        if (oserr == EHOSTUNREACH || oserr == ENETUNREACH)
            return -EHOSTUNREACH;
        if (oserr == ETIMEDOUT)
            return -ETIMEDOUT;
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
    case CURLE_PARTIAL_FILE: return -EPROTO;
    case CURLE_WEIRD_SERVER_REPLY: return -EPROTO;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: return -ECONNRESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return -EKEYREJECTED;
    case CURLE_OUT_OF_MEMORY: return -ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return -EINVAL;
    case CURLE_TOO_MANY_REDIRECTS: return -ELOOP;
    case CURLE_BAD_CONTENT_ENCODING: return -EBADMSG;
    case CURLE_RANGE_ERROR: return -ERANGE;
    case CURLE_ABORTED_BY_CALLBACK: return -ECANCELED;
    case CURLE_FILESIZE_EXCEEDED: return -EFBIG;
    default: return -EIO;
    }
}

/* ---- URLs ----------------------------------------------------------------- */

static int url_origin(const char *url, char **scheme, char **host, char **port)
{
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    int rc = -EINVAL;
    *scheme = *host = *port = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        rc = 0;
    curl_url_cleanup(u);
    return rc;
}

bool zn__same_origin(const char *a, const char *b)
{
    char *s1, *h1, *p1, *s2, *h2, *p2;
    bool same = false;
    int r1 = url_origin(a, &s1, &h1, &p1);
    int r2 = url_origin(b, &s2, &h2, &p2);
    if (r1 == 0 && r2 == 0)
        same = strcasecmp(s1, s2) == 0 && strcasecmp(h1, h2) == 0 && strcmp(p1, p2) == 0 &&
               (strcasecmp(s1, "https") == 0 || strcasecmp(s1, "http") == 0);
    curl_free(s1), curl_free(h1), curl_free(p1);
    curl_free(s2), curl_free(h2), curl_free(p2);
    return same;
}

char *zn__resolve_url(const char *base, const char *ref)
{
    CURLU *u = curl_url();
    if (!u)
        return NULL;
    char *out = NULL, *res = NULL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK) {
        res = strdup(out);
        curl_free(out);
    }
    curl_url_cleanup(u);
    return res;
}

/* ---- response --------------------------------------------------------------- */

static void resp_reset(zn_req *q)
{
    for (size_t i = 0; i < q->resp.nhdr; i++)
        free(q->resp.hdr[i]);
    free(q->resp.hdr);
    q->resp.hdr = NULL;
    q->resp.nhdr = 0;
    q->resp.hdr_bytes = 0;
    q->resp.status = 0;
    q->resp.body = NULL;
    q->resp.body_len = 0;
}

int zn_resp_status(const zn_resp *r)
{
    return r ? r->status : 0;
}

int zn_resp_attempts(const zn_resp *r)
{
    return r ? r->attempts : 0;
}

const char *zn_resp_header(const zn_resp *r, const char *name)
{
    if (!r)
        return NULL;
    for (size_t i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdr[i], name) == 0)
            return r->hdr[i] + strlen(r->hdr[i]) + 1;
    return NULL;
}

const void *zn_resp_body(const zn_resp *r, size_t *len)
{
    if (len)
        *len = r ? r->body_len : 0;
    return r ? r->body : NULL;
}

/* ---- curl callbacks ----------------------------------------------------------- */

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    zn_req *q = ud;
    size_t len = size * n;
    if (q->canceled)
        return 0;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new answer (1xx, redirect, final): keep only the last one's */
        resp_reset(q);
        return len;
    }
    size_t e = len;
    while (e > 0 && (p[e - 1] == '\r' || p[e - 1] == '\n'))
        e--;
    if (e == 0)
        return len;
    const char *colon = memchr(p, ':', e);
    if (!colon || p[0] == ' ' || p[0] == '\t')
        return len; /* obsolete folding or junk: ignore */
    if (q->resp.nhdr >= MAX_HEADERS || q->resp.hdr_bytes + e > MAX_HEADER_BYTES) {
        q->werr = -EFBIG;
        return 0;
    }
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    const char *ve = p + e;
    while (v < ve && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r' || ve[-1] == '\n'))
        ve--;
    size_t vl = (size_t)(ve - v);
    char *blk = malloc(nl + vl + 2);
    char **nh = realloc(q->resp.hdr, (q->resp.nhdr + 1) * sizeof *nh);
    if (!blk || !nh) {
        free(blk);
        if (nh)
            q->resp.hdr = nh;
        q->werr = -ENOMEM;
        return 0;
    }
    memcpy(blk, p, nl);
    blk[nl] = 0;
    memcpy(blk + nl + 1, v, vl);
    blk[nl + 1 + vl] = 0;
    q->resp.hdr = nh;
    q->resp.hdr[q->resp.nhdr++] = blk;
    q->resp.hdr_bytes += e;
    return len;
}

/* Content-Range "bytes S-E/T" (T may be a star) is the requested range? */
/* Decimal digits only (no sign, no blanks: sscanf's %llu takes both), at
 * most 19 of them; *p moves past them. */
static bool parse_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    int n = 0;
    while (*s >= '0' && *s <= '9' && n < 19) {
        x = x * 10 + (uint64_t)(*s++ - '0');
        n++;
    }
    if (n == 0 || (*s >= '0' && *s <= '9'))
        return false;
    *v = x;
    *p = s;
    return true;
}

static bool content_range_ok(zn_req *q)
{
    const char *cr = zn_resp_header(&q->resp, "Content-Range");
    uint64_t s, e;
    if (!cr || strncmp(cr, "bytes ", 6) != 0)
        return false;
    cr += 6;
    if (!parse_u64(&cr, &s) || *cr++ != '-' || !parse_u64(&cr, &e) || *cr != '/')
        return false;
    return s == q->range.start && e == q->range.end;
}

/* Decide once per attempt where the body goes, from the status. */
static int body_check(zn_req *q)
{
    if (q->body_checked)
        return 0;
    q->body_checked = true;
    long st = 0;
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &st);
    q->resp.status = (int)st;
    q->body_ok = st >= 200 && st < 300;
    if (q->body_ok && q->range_body) {
        if (st == 206 && !content_range_ok(q))
            return -EBADMSG;
        /* 200 is acceptable only as the whole resource starting at 0, and
         * then only if it is exactly the range's length (checked at the end) */
        if (st != 206 && !(st == 200 && q->range.start == 0))
            return -EPROTO;
    }
    if (q->body_ok && !q->on_data && !q->buf) {
        /* size the buffer from Content-Length when it is known and allowed */
        curl_off_t cl = -1;
        curl_easy_getinfo(q->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl > 0 && (uint64_t)cl <= q->max_body && (size_t)cl > q->coll_cap &&
            !q->compressed) {
            uint8_t *nb = realloc(q->coll, (size_t)cl);
            if (!nb)
                return -ENOMEM;
            q->coll = nb;
            q->coll_cap = (size_t)cl;
        }
    }
    return 0;
}

/* May libcurl hold this transfer?  Only an HTTP/1.x answer: HTTP/2 streams
 * are left running (libcurl 7.88, Debian 12's, can stall a whole connection
 * once streams on it are paused and resumed: curl issue 10988, fixed in
 * 8.1), and before its answer the version is not known (write_cb asks
 * again at the first bytes). */
static bool hold_ok(zn_req *q)
{
    long v = 0;
    return q->easy && curl_easy_getinfo(q->easy, CURLINFO_HTTP_VERSION, &v) == CURLE_OK &&
           (v == CURL_HTTP_VERSION_1_0 || v == CURL_HTTP_VERSION_1_1);
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    zn_req *q = ud;
    size_t len = size * n;
    if (q->canceled)
        return 0;
    if (q->paused && !q->curl_paused && hold_ok(q)) {
        q->curl_paused = true; /* curl keeps these bytes and stops reading until resumed */
        return CURL_WRITEFUNC_PAUSE;
    }
    int rc = body_check(q);
    if (rc) {
        q->werr = rc;
        return 0;
    }
    if (!q->body_ok) {
        size_t room = ZN_ERROR_BODY_MAX - q->elen;
        size_t take = len < room ? len : room;
        if (take) {
            if (!q->ebuf && !(q->ebuf = malloc(ZN_ERROR_BODY_MAX))) {
                q->werr = -ENOMEM;
                return 0;
            }
            memcpy(q->ebuf + q->elen, p, take);
            q->elen += take;
        }
        return len;
    }
    if (q->range_body) {
        uint64_t want = q->range.end - q->range.start + 1;
        if (q->got + len > want) {
            q->werr = -EPROTO; /* longer than the range */
            return 0;
        }
    }
    if (q->on_data) {
        q->delivered = true;
        rc = q->on_data(q->ud, p, len);
        if (rc < 0) {
            q->werr = rc;
            return 0;
        }
    } else if (q->buf) {
        if (len > q->buf_len - q->got) {
            q->werr = -EPROTO;
            return 0;
        }
        memcpy(q->buf + q->got, p, len);
    } else {
        if (len > q->max_body - q->got) {
            q->werr = -EFBIG;
            return 0;
        }
        if (q->got + len > q->coll_cap) {
            size_t nc = q->coll_cap ? q->coll_cap : 16384;
            while (nc < q->got + len)
                nc = nc > q->max_body / 2 ? q->max_body : nc * 2;
            uint8_t *nb = realloc(q->coll, nc);
            if (!nb) {
                q->werr = -ENOMEM;
                return 0;
            }
            q->coll = nb;
            q->coll_cap = nc;
        }
        memcpy(q->coll + q->got, p, len);
    }
    q->got += len;
    return len;
}

static void sock_close_cb(uv_handle_t *h)
{
    zn_sock *s = h->data;
    zn_http *c = s->c;
    free(s);
    if (--c->open_handles == 0 && c->torn_down)
        free(c);
}

static void sock_release(zn_http *c, zn_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_close_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    zn_sock *s = h->data;
    zn_http *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    c->depth++;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_multi(c);
    if (--c->depth == 0 && c->closing && !c->torn_down)
        teardown(c);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    zn_http *c = userp;
    zn_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_release(c, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->poll.data = s;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, poll_cb);
    return 0;
}

static void curl_timeout_cb(uv_timer_t *t)
{
    zn_http *c = t->data;
    int running;
    c->depth++;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi(c);
    if (--c->depth == 0 && c->closing && !c->torn_down)
        teardown(c);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    zn_http *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->curl_timer);
    else
        uv_timer_start(&c->curl_timer, curl_timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- request lifecycle ------------------------------------------------------- */

static void req_unlink(zn_req *q)
{
    zn_http *c = q->c;
    if (q->prev)
        q->prev->next = q->next;
    else if (c->reqs == q)
        c->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->next = q->prev = NULL;
}

static void req_free(zn_req *q)
{
    req_unlink(q);
    resp_reset(q);
    free(q->method);
    free(q->url);
    curl_slist_free_all(q->hdrs);
    free(q->reqbody);
    free(q->coll);
    free(q->ebuf);
    free(q);
}

static void sched_remove(zn_req *q)
{
    if (!q->in_sched)
        return;
    zn_req **pp = &q->c->sched;
    while (*pp && *pp != q)
        pp = &(*pp)->snext;
    if (*pp)
        *pp = q->snext;
    q->in_sched = false;
    q->snext = NULL;
}

static void sched_at(zn_req *q, uint64_t wake)
{
    sched_remove(q);
    q->wake = wake;
    zn_req **pp = &q->c->sched;
    while (*pp && (*pp)->wake <= wake)
        pp = &(*pp)->snext;
    q->snext = *pp;
    *pp = q;
    q->in_sched = true;
    sched_arm(q->c);
}

static void detach_easy(zn_req *q)
{
    if (!q->easy)
        return;
    curl_multi_remove_handle(q->c->multi, q->easy);
    curl_easy_cleanup(q->easy);
    q->easy = NULL;
    q->state = Q_IDLE;
}

/* Call the completion and free the request. */
static void finish(zn_req *q, int err)
{
    zn_http *c = q->c;
    sched_remove(q);
    detach_easy(q);
    q->state = Q_DONE;
    if (err == -EAGAIN && q->resp.status == 429)
        err = -EUSERS; /* still rate-limited when the waiting had to end */
    else if (err == -EAGAIN)
        err = -EIO; /* the server kept failing */
    if (q->cdn && err == -EPERM)
        err = -EKEYEXPIRED; /* signed URL expired or range not signed */
    zn_resp *resp = NULL;
    if (!q->is_defer && (q->resp.status || q->got)) {
        resp = &q->resp;
        resp->attempts = q->attempt;
        if (q->body_ok) {
            if (q->on_data) {
                resp->body = NULL;
                resp->body_len = 0;
            } else {
                resp->body = q->buf ? (const void *)q->buf : (const void *)q->coll;
                resp->body_len = q->got;
            }
        } else {
            resp->body = q->ebuf;
            resp->body_len = q->elen;
        }
    }
    /* out of the client's list first: the callback may free the client,
     * which must not complete this request a second time */
    req_unlink(q);
    c->depth++;
    if (q->done)
        q->done(q->ud, err, resp);
    req_free(q);
    if (--c->depth == 0 && c->closing && !c->torn_down)
        teardown(c);
}

static int attempt_start(zn_req *q)
{
    zn_http *c = q->c;
    uint64_t now = now_ms(c);
    long tmo = q->timeout_ms;
    if (q->deadline && !q->pausable) {
        if (now >= q->deadline)
            return -ETIMEDOUT;
        uint64_t left = q->deadline - now;
        if (tmo <= 0 || (uint64_t)tmo > left)
            tmo = (long)left;
    }
    q->body_checked = q->body_ok = false;
    q->curl_paused = false; /* a new transfer: write_cb holds it if need be */
    q->werr = 0;
    q->got = 0;
    q->elen = 0;
    resp_reset(q);

    CURL *e = curl_easy_init();
    if (!e)
        return -ENOMEM;
    q->easy = e;
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_URL, q->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->cacert);
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
    if (tmo > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (c->http2) {
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        /* only TLS (ALPN) can bring HTTP/2: over cleartext, waiting to share a
         * connection still opening holds a request until the first answer */
        if (!strncmp(q->url, "https://", 8))
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    if (q->compressed)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->hdrs);
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(q->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->reqbody_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->reqbody ? (char *)q->reqbody : "");
    }
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(e);
        q->easy = NULL;
        return mc == CURLM_RECURSIVE_API_CALL ? -EDEADLK : -ENOMEM;
    }
    q->state = Q_ACTIVE;
    q->attempt++;
    return 0;
}

/* The wait a 429 (or 503) asks for, in ms; 0 if it says none: Retry-After
 * (seconds) or the Hub's `RateLimit: "api";r=0;t=<seconds>`, at most an hour
 * at a time (the Hub's windows are 5 minutes; a longer ask is waited in
 * hours, asking again after each). */
#define SERVER_WAIT_MAX_S 3600ul
static double server_wait_ms(const zn_req *q)
{
    double best = 0;
    const char *ra = zn_resp_header(&q->resp, "Retry-After");
    if (ra) {
        char *end;
        unsigned long s = strtoul(ra, &end, 10);
        if (end != ra && *end == 0)
            best = (s < SERVER_WAIT_MAX_S ? s : SERVER_WAIT_MAX_S) * 1000.0;
    }
    const char *rl = q->resp.status == 429 ? zn_resp_header(&q->resp, "RateLimit") : NULL;
    for (const char *p = rl; p && (p = strstr(p, "t=")); p += 2) {
        if (p != rl && p[-1] != ';' && p[-1] != ' ' && p[-1] != ',')
            continue;
        char *end;
        unsigned long s = strtoul(p + 2, &end, 10);
        if (end != p + 2 && s > SERVER_WAIT_MAX_S)
            s = SERVER_WAIT_MAX_S;
        if (end != p + 2 && s * 1000.0 > best)
            best = s * 1000.0;
        break;
    }
    return best;
}

static bool plan_retry(zn_req *q, int err, uint64_t *wake)
{
    if (!q->has_retry || q->canceled || q->c->closing || !zn_err_retryable(err))
        return false;
    /* rate-limited with a budget for waiting: attempts do not run out */
    bool rl_wait = q->resp.status == 429 && q->retry.ratelimit_wait_ms;
    if (q->attempt >= q->retry.max_attempts && !rl_wait)
        return false;
    if (q->on_data && q->delivered)
        return false;
    double d = q->retry.base_ms;
    for (int k = 1; k < q->attempt && d < q->retry.max_delay_ms; k++)
        d *= 3;
    if (d > q->retry.max_delay_ms)
        d = q->retry.max_delay_ms;
    d *= 0.5 + 0.5 * rand01(q->c);
    if (q->resp.status == 429 || q->resp.status == 503) {
        double sw = server_wait_ms(q);
        if (sw > d)
            d = sw + 50; /* just past the window's end */
    }
    uint64_t now = now_ms(q->c);
    uint64_t w = now + (uint64_t)d;
    if (rl_wait) {
        /* wait as long as the budget allows; the attempt after it gets a
         * whole deadline of its own */
        if (w > q->started + q->retry.ratelimit_wait_ms)
            return false;
        if (q->deadline && w + q->retry.deadline_ms > q->deadline)
            q->deadline = w + q->retry.deadline_ms;
    } else if (q->deadline && w >= q->deadline)
        return false;
    *wake = w;
    return true;
}

static void easy_done(zn_req *q, CURLcode cc)
{
    zn_http *c = q->c;
    CURL *e = q->easy;
    long st = 0, oserr = 0, nconn = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &oserr);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
    c->nconnects += (uint64_t)nconn;
    if (cc == CURLE_OK && !q->werr && !q->body_checked) {
        int rc = body_check(q); /* an empty body never reached write_cb */
        if (rc)
            q->werr = rc;
    }
    char *redir = NULL;
    if (cc == CURLE_OK && q->follow && st >= 300 && st < 400 && st != 304) {
        /* only relative Location values (same origin by construction) */
        const char *loc = zn_resp_header(&q->resp, "Location");
        if (loc && loc[0] == '/' && loc[1] != '/') {
            char *r = NULL;
            curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &r);
            if (r && zn__same_origin(r, q->url))
                redir = strdup(r);
        }
    }
    q->resp.status = (int)st;
    detach_easy(q);
    if (q->canceled) {
        free(redir);
        return; /* the schedule completes it with -ECANCELED */
    }

    int err;
    if (q->werr)
        err = q->werr;
    else if (cc != CURLE_OK)
        err = curl_errno(cc, oserr);
    else if (redir) {
        if (q->redirects++ >= MAX_REDIRECTS) {
            free(redir);
            finish(q, -ELOOP);
            return;
        }
        free(q->url);
        q->url = redir;
        if (st == 303 && strcmp(q->method, "HEAD") != 0) {
            free(q->method);
            q->method = strdup("GET");
        }
        q->attempt--; /* a redirect is not a retry */
        int rc = q->method ? attempt_start(q) : -ENOMEM;
        if (rc)
            finish(q, rc);
        return;
    } else {
        err = zn_http_errno(st);
        if (!err && st >= 200 && st < 300 && q->range_body &&
            q->got != q->range.end - q->range.start + 1)
            err = -EPROTO; /* short (or, for a 200, not the range) */
    }
    free(redir);
    uint64_t wake;
    if (err && plan_retry(q, err, &wake)) {
        sched_at(q, wake);
        return;
    }
    finish(q, err);
}

static void check_multi(zn_http *c)
{
    CURLMsg *m;
    int left;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        zn_req *q = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        CURLcode cc = m->data.result;
        if (q)
            easy_done(q, cc);
    }
}

static void sched_cb(uv_timer_t *t)
{
    zn_http *c = t->data;
    c->depth++;
    uint64_t now = now_ms(c);
    while (c->sched && c->sched->wake <= now && !c->torn_down) {
        zn_req *q = c->sched;
        c->sched = q->snext;
        q->in_sched = false;
        q->snext = NULL;
        if (q->canceled) {
            finish(q, -ECANCELED);
        } else if (q->is_defer) {
            finish(q, 0);
        } else if (q->paused) {
            q->deferred = true; /* zn_req_pause(q, false) starts it */
        } else {
            int rc = attempt_start(q);
            if (rc)
                finish(q, rc);
        }
    }
    if (!c->torn_down)
        sched_arm(c);
    if (--c->depth == 0 && c->closing && !c->torn_down)
        teardown(c);
}

static void sched_arm(zn_http *c)
{
    if (!c->sched) {
        uv_timer_stop(&c->sched_timer);
        return;
    }
    uint64_t now = now_ms(c);
    uint64_t d = c->sched->wake > now ? c->sched->wake - now : 0;
    uv_timer_start(&c->sched_timer, sched_cb, d, 0);
}

/* ---- public API ---------------------------------------------------------------- */

static void handle_close_cb(uv_handle_t *h)
{
    zn_http *c = h->data;
    if (--c->open_handles == 0 && c->torn_down)
        free(c);
}

static CURLcode global_err;
static void global_init(void)
{
    global_err = curl_global_init(CURL_GLOBAL_DEFAULT);
}

zn_http *zn_http_new(uv_loop_t *loop, const zn_http_opts *o)
{
    static uv_once_t once = UV_ONCE_INIT;
    zn_http_opts d = {0};
    if (!o)
        o = &d;
    uv_once(&once, global_init);
    if (global_err != CURLE_OK)
        return NULL;
    zn_http *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cacert = o->cacert ? strdup(o->cacert) : NULL;
    c->user_agent = strdup(o->user_agent ? o->user_agent : ZN_USER_AGENT);
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    c->low_speed_limit = o->low_speed_limit > 0 ? o->low_speed_limit : 1024;
    c->low_speed_time = o->low_speed_time_s > 0 ? o->low_speed_time_s : 30;
    c->http2 = !o->no_http2;
    c->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9e3779b97f4a7c15ULL;
    c->multi = curl_multi_init();
    if (!c->user_agent || (o->cacert && !c->cacert) || !c->multi) {
        if (c->multi)
            curl_multi_cleanup(c->multi);
        free(c->cacert);
        free(c->user_agent);
        free(c);
        return NULL;
    }
    long per_host = o->max_conns_per_host > 0 ? o->max_conns_per_host : 8;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, per_host * 4 > 32 ? per_host * 4 : 32);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    uv_timer_init(loop, &c->curl_timer);
    uv_timer_init(loop, &c->sched_timer);
    c->curl_timer.data = c;
    c->sched_timer.data = c;
    c->open_handles = 2;
    return c;
}

static void teardown(zn_http *c)
{
    c->torn_down = true;
    curl_multi_cleanup(c->multi); /* may report CURL_POLL_REMOVE for sockets */
    c->multi = NULL;
    while (c->socks)
        sock_release(c, c->socks);
    free(c->cacert);
    free(c->user_agent);
    c->cacert = c->user_agent = NULL;
    uv_timer_stop(&c->curl_timer);
    uv_timer_stop(&c->sched_timer);
    uv_close((uv_handle_t *)&c->curl_timer, handle_close_cb);
    uv_close((uv_handle_t *)&c->sched_timer, handle_close_cb);
}

void zn_http_free(zn_http *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->depth++;
    while (c->reqs) {
        zn_req *q = c->reqs;
        q->canceled = true;
        finish(q, -ECANCELED);
    }
    if (--c->depth == 0 && !c->torn_down)
        teardown(c);
}

uint64_t zn_http_connections_opened(const zn_http *c)
{
    return c->nconnects;
}

static zn_req *req_alloc(zn_http *c)
{
    zn_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->c = c;
    q->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = q;
    c->reqs = q;
    return q;
}

int zn_http_request(zn_http *c, const zn_http_req *r, zn_req **out)
{
    if (!c || !r || !r->url || !r->done)
        return -EINVAL;
    if (c->closing)
        return -ESHUTDOWN;
    if (r->range_body && r->nranges != 1)
        return -EINVAL;
    for (size_t i = 0; i < r->nranges; i++)
        if (r->ranges[i].start > r->ranges[i].end)
            return -EINVAL;
    if (r->buf && r->range_body && r->buf_len < r->ranges[0].end - r->ranges[0].start + 1)
        return -EINVAL;
    zn_req *q = req_alloc(c);
    if (!q)
        return -ENOMEM;
    int err = -ENOMEM;
    q->method = strdup(r->method ? r->method : "GET");
    q->url = strdup(r->url);
    if (!q->method || !q->url)
        goto fail;
    for (const char *const *h = r->headers; h && *h; h++) {
        if (strpbrk(*h, "\r\n")) {
            err = -EINVAL;
            goto fail;
        }
        struct curl_slist *n = curl_slist_append(q->hdrs, *h);
        if (!n)
            goto fail;
        q->hdrs = n;
    }
    /* no "Expect: 100-continue" round trip for bodies */
    struct curl_slist *n = curl_slist_append(q->hdrs, "Expect:");
    if (!n)
        goto fail;
    q->hdrs = n;
    if (r->nranges) {
        size_t cap = 16 + r->nranges * 42;
        char *rh = malloc(cap);
        if (!rh)
            goto fail;
        size_t o = (size_t)snprintf(rh, cap, "Range: bytes=");
        for (size_t i = 0; i < r->nranges; i++)
            o += (size_t)snprintf(rh + o, cap - o, "%s%llu-%llu", i ? "," : "",
                                  (unsigned long long)r->ranges[i].start,
                                  (unsigned long long)r->ranges[i].end);
        n = curl_slist_append(q->hdrs, rh);
        free(rh);
        if (!n)
            goto fail;
        q->hdrs = n;
        q->range = r->ranges[0];
    }
    q->range_body = r->range_body;
    if (r->body_len) {
        q->reqbody = malloc(r->body_len);
        if (!q->reqbody)
            goto fail;
        memcpy(q->reqbody, r->body, r->body_len);
        q->reqbody_len = r->body_len;
    }
    q->on_data = r->on_data;
    q->buf = r->on_data ? NULL : r->buf;
    q->buf_len = r->buf_len;
    q->max_body = r->max_body ? r->max_body : ZN_DEFAULT_MAX_BODY;
    q->compressed = r->compressed;
    q->follow = r->follow_redirects && (strcmp(q->method, "GET") == 0 ||
                                        strcmp(q->method, "HEAD") == 0);
    q->timeout_ms = r->timeout_ms;
    q->pausable = r->pausable;
    q->done = r->done;
    q->ud = r->ud;
    uv_update_time(c->loop);
    if (r->retry) {
        q->has_retry = true;
        q->retry = *r->retry;
        if (q->retry.max_attempts <= 0)
            q->retry.max_attempts = 3;
        if (!q->retry.base_ms)
            q->retry.base_ms = 500;
        if (!q->retry.max_delay_ms)
            q->retry.max_delay_ms = 10000;
        if (!q->retry.deadline_ms)
            q->retry.deadline_ms = 30000;
        q->deadline = now_ms(c) + q->retry.deadline_ms;
    }
    q->started = now_ms(c);
    err = attempt_start(q);
    if (err)
        goto fail;
    if (out)
        *out = q;
    return 0;
fail:
    req_free(q);
    return err;
}

int zn__defer(zn_http *c, zn_done_cb done, void *ud, zn_req **out)
{
    if (c->closing)
        return -ESHUTDOWN;
    zn_req *q = req_alloc(c);
    if (!q)
        return -ENOMEM;
    q->is_defer = true;
    q->done = done;
    q->ud = ud;
    uv_update_time(c->loop);
    sched_at(q, now_ms(c));
    if (out)
        *out = q;
    return 0;
}

void zn_req_pause(zn_req *q, bool pause)
{
    if (!q || q->canceled || q->state == Q_DONE || !q->pausable || q->paused == pause)
        return;
    zn_http *c = q->c;
    uint64_t now = now_ms(c);
    q->paused = pause;
    if (pause)
        q->pause_t0 = now;
    else if (q->deadline)
        q->deadline += now - q->pause_t0; /* time held does not count */
    if (q->easy) {
        /* no answer yet (or no connection, when curl refuses): write_cb
         * holds it at its first bytes */
        if (pause && hold_ok(q) && curl_easy_pause(q->easy, CURLPAUSE_RECV) == CURLE_OK)
            q->curl_paused = true;
        else if (!pause && q->curl_paused) {
            q->curl_paused = false;
            curl_easy_pause(q->easy, CURLPAUSE_CONT);
        }
    } else if (!pause && q->deferred) {
        q->deferred = false;
        sched_at(q, now);
    }
}

void zn_req_cancel(zn_req *q)
{
    if (!q || q->canceled || q->state == Q_DONE)
        return;
    q->canceled = true;
    /* completion comes from the schedule, outside any curl callback */
    sched_at(q, 0);
}

int zn_cdn_fetch(zn_http *c, const char *url, uint64_t byte_start, uint64_t byte_end, void *buf,
                 const zn_retry *retry, zn_done_cb done, void *ud, zn_req **out)
{
    if (!buf || byte_end < byte_start || byte_end - byte_start >= SIZE_MAX)
        return -EINVAL;
    zn_range rg = {byte_start, byte_end};
    zn_http_req r = {
        .url = url,
        .ranges = &rg,
        .nranges = 1,
        .range_body = true,
        .buf = buf,
        .buf_len = (size_t)(byte_end - byte_start + 1),
        .retry = retry,
        .pausable = true,
        .done = done,
        .ud = ud,
    };
    zn_req *q;
    int rc = zn_http_request(c, &r, &q);
    if (rc)
        return rc;
    q->cdn = true;
    if (out)
        *out = q;
    return 0;
}
