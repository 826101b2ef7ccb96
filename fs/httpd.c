/* httpd.c — HTTP access to the presented repos and Prometheus /metrics
 * (`zestfs --http [ADDR:]PORT`, `--metrics [ADDR:]PORT`).
 *
 *   GET|HEAD /{repo}/resolve/{rev}/{path}   repo: org/name, datasets/org/name,
 *                                            spaces/org/name (models/ accepted)
 *   GET|HEAD /xet/{64 hex Xet file id}       any presented file with that id
 *   GET      /metrics                        Prometheus text format 0.0.4
 *   GET      /health                         JSON: status, version, store use, repos
 *   GET|HEAD /download/{owner}/{repo}/{path}  proxy-xet's: the file at main
 *   GET|HEAD /download-hash/{hash}[?repo=]    proxy-xet's: a Xet file by hash
 *            (the caller's Hub token checked: see "proxy-xet's API" below)
 *
 * Threads.  libmicrohttpd (MHD) runs one internal polling thread per
 * listener; everything of zestfs (the repo models, the read path, the
 * store) belongs to the uv loop thread.  A request (struct hreq) crosses
 * between them through one mutex per listener:
 *   - MHD thread, access handler: the request is put on the listener's
 *     queue, uv_async_send wakes the loop, the connection is SUSPENDED.
 *   - loop: resolve the URL (presented model; else zf_resolve_repo), pick
 *     the range, start the first PIECE reads (zf_read_async, PIECE bytes
 *     each, NSLOTS slots per request), and once the first piece is in (or
 *     failed: 502/503 with a text body, or no body is needed) mark the
 *     request resolved and MHD_resume_connection.
 *   - MHD thread: queues the response; its content callback copies from
 *     ready slots; a slot emptied goes back to the loop (queue + async) to
 *     fetch the next piece; when no byte is ready the callback suspends the
 *     connection and the piece's completion resumes it.
 * So a connection holds at most NSLOTS * PIECE bytes however large the file
 * and however slow the client.  A read error after the headers aborts the
 * connection (MHD_CONTENT_READER_END_WITH_ERROR): the client sees fewer
 * bytes than Content-Length, never short data as complete.
 *
 * Locking: a connection is suspended only by the MHD thread with the mutex
 * held, and resumed only by the loop after it cleared `suspended` under the
 * mutex (resume is called with the mutex released), so a resume never
 * precedes its suspend.  A request is reference counted (MHD's side until
 * the completion callback, the response object, each queue entry and each
 * read in flight) and freed by whichever thread drops the last reference.
 *
 * Ranges: one range per request (`bytes=a-b`, `a-`, `-n`): 206 with
 * Content-Range; unsatisfiable: 416 with `Content-Range: bytes * /size`
 * (no space); several ranges, or a malformed header: the whole file, 200.
 *
 * Security: no authentication unless a token is set (`Authorization:
 * Bearer TOKEN`, compared in constant time); whoever reaches the port reads
 * every presented repo, so the default address is 127.0.0.1.  Against web
 * pages (DNS rebinding: a name of the attacker's that resolves to this
 * address) the `Host` header must name the listener: the connection's
 * local address with the port, `localhost:PORT` on loopback, or a name
 * given with --http-host; anything else is 421 before the token is looked
 * at.  Repos that are not presented are resolved on the Hub (with the
 * user's Hub token) and added only when --http-token is set, i.e. only for
 * requests that passed it.  Slow clients: every connection has HDR_MS to
 * deliver its whole request (headers and any body) from its accept or the
 * end of its previous answer, whatever it dribbles; a loop timer shuts
 * down the socket of one that does not (through a dup of its fd, so never
 * someone else's descriptor).  A client that stops reading an answer is
 * dropped after IDLE_S without progress (MHD's timeout); at most
 * PER_IP_CONNS connections per client address, MAX_CONNS in all. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <blake3.h>

#include "net.h"
#include "p2p.h"
#include "httpd_int.h"
#include "httpparse.h"
#include "log.h"
#include "httpd.h"
#include "zfs.h"

_Atomic uint64_t g_requests, g_bytes_sent, g_errors; /* httpd_int.h */

/* the loop looks at a queued request */
static void process(hreq *r)
{
    zf_http *h = r->h;
    if (r->phase == PH_RESOLVED) {
        if (r->has_ent)
            fill_slots(r);
        return;
    }
    if (r->started)
        return;
    r->started = true;
    const char *url = r->url;
    if (!strcmp(url, "/metrics")) {
        char *t = metrics_text(h);
        if (!t) {
            set_text(r, 500, NULL, "out of memory");
        } else {
            r->status = 200;
            r->body = t;
            r->ctype = "text/plain; version=0.0.4; charset=utf-8";
        }
        finish(r);
    } else if (h->metrics_only) {
        set_text(r, 404, NULL, "only /metrics here");
        finish(r);
    } else if (!strcmp(url, "/health")) {
        answer_health(r);
    } else if (!strncmp(url, "/xet/", 5)) {
        answer_xet(r, url + 5);
    } else if (!strncmp(url, "/download/", 10)) {
        answer_download(r, url + 10);
    } else if (!strncmp(url, "/download-hash/", 15)) {
        answer_download_hash(r, url + 15);
    } else
        answer_resolve(r, url);
}

static void on_async(uv_async_t *a)
{
    zf_http *h = a->data;
    /* One at a time under the mutex: once a request is off the queue
     * (queued false) the MHD thread may queue it again, which rewrites its
     * qnext, so no batch taken earlier may be walked through qnext. */
    for (;;) {
        pthread_mutex_lock(&h->mu);
        hreq *r = h->queue;
        if (r) {
            h->queue = r->qnext;
            r->qnext = NULL;
            r->queued = false;
        }
        pthread_mutex_unlock(&h->mu);
        if (!r)
            break;
        process(r);
        unref(r);
    }
}

/* ---- the MHD thread ----------------------------------------------------- */

static ssize_t content(void *cls, uint64_t pos, char *buf, size_t max)
{
    hreq *r = cls;
    zf_http *h = r->h;
    uint64_t abs = r->start + pos;
    ssize_t ret = 0;
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
        goto out;
    }
    for (int i = 0; i < NSLOTS; i++) {
        hslot *s = &r->slot[i];
        if (s->state != SL_READY || abs < s->off || abs >= s->off + s->len)
            continue;
        size_t n = (size_t)(s->off + s->len - abs);
        if (n > max)
            n = max;
        memcpy(buf, s->buf + (abs - s->off), n);
        if (abs + n == s->off + s->len) {
            s->state = SL_EMPTY;
            if (r->next_off < r->end)
                kick_locked(r);
        }
        g_bytes_sent += n;
        ret = (ssize_t)n;
        goto out;
    }
    if (r->err) {
        g_errors++;
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
        goto out;
    }
    /* not here yet: its piece is in flight (or about to be) */
    r->suspended = true;
    MHD_suspend_connection(r->con);
    kick_locked(r);
out:
    pthread_mutex_unlock(&h->mu);
    return ret;
}

static void content_free(void *cls)
{
    unref(cls);
}

static enum MHD_Result send_simple(struct MHD_Connection *con, unsigned status, const char *text,
                                   const char *hname, const char *hval)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    enum MHD_Result ret = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    g_requests++;
    return ret;
}

/* the Bearer value of the request, or NULL */
static const char *bearer_of(struct MHD_Connection *con)
{
    const char *a = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return a;
}

static bool token_ok(zf_http *h, struct MHD_Connection *con)
{
    if (!h->token)
        return true;
    const char *a = bearer_of(con);
    if (!a)
        return false;
    size_t n = strlen(a), m = strlen(h->token);
    unsigned char d = n != m;
    for (size_t i = 0; i < m; i++)
        d |= (unsigned char)(h->token[i] ^ (i < n ? a[i] : 0));
    return d == 0;
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static hconn *conn_of(struct MHD_Connection *con)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* the connection's request deadline: now + ms, or none (ms 0) */
static void set_deadline(zf_http *h, struct MHD_Connection *con, uint64_t ms)
{
    hconn *c = conn_of(con);
    if (!c)
        return;
    pthread_mutex_lock(&h->mu);
    c->deadline = ms ? mono_ms() + ms : 0;
    pthread_mutex_unlock(&h->mu);
}

/* MHD thread: a connection accepted or closed */
static void on_conn(void *cls, struct MHD_Connection *con, void **ctx,
                    enum MHD_ConnectionNotificationCode code)
{
    zf_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        hconn *c = calloc(1, sizeof *c);
        if (!c)
            return;
        c->fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        c->deadline = mono_ms() + h->hdr_ms;
        pthread_mutex_lock(&h->mu);
        c->next = h->conns;
        if (c->next)
            c->next->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->mu);
        *ctx = c;
        return;
    }
    hconn *c = *ctx;
    if (!c)
        return;
    *ctx = NULL;
    pthread_mutex_lock(&h->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&h->mu);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* loop timer: shut down the sockets of connections past their deadline
 * (MHD then sees the socket end and closes the connection itself) */
static void on_watch(uv_timer_t *t)
{
    zf_http *h = t->data;
    uint64_t now = mono_ms();
    unsigned n = 0;
    pthread_mutex_lock(&h->mu);
    for (hconn *c = h->conns; c; c = c->next)
        if (c->deadline && now > c->deadline) {
            c->deadline = 0;
            if (c->fd >= 0)
                shutdown(c->fd, SHUT_RDWR);
            n++;
        }
    h->slow_drops += n;
    pthread_mutex_unlock(&h->mu);
    if (n)
        zf_log(ZF_LOG_INFO, "zestfs: %s: dropped %u connection%s that did not send a request "
               "within %.1f s\n", h->addr, n, n == 1 ? "" : "s", h->hdr_ms / 1000.0);
}

/* host part of a Host value (brackets removed) and its port (0: none);
 * false when malformed */
static bool split_host(const char *v, char *host, size_t cap, unsigned *port)
{
    const char *end, *p;
    if (v[0] == '[') {
        end = strchr(v, ']');
        if (!end)
            return false;
        v++;
        p = end + 1;
    } else {
        end = strchr(v, ':');
        if (end && strchr(end + 1, ':'))
            return false;
        if (!end)
            end = v + strlen(v);
        p = end;
    }
    size_t n = (size_t)(end - v);
    if (n == 0 || n >= cap)
        return false;
    memcpy(host, v, n);
    host[n] = 0;
    *port = 0;
    if (*p == 0)
        return true;
    if (*p != ':' || !p[1] || strlen(p + 1) > 5)
        return false;
    unsigned long pn = 0;
    for (const char *q = p + 1; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
        pn = pn * 10 + (unsigned long)(*q - '0');
    }
    if (pn == 0 || pn > 65535)
        return false;
    *port = (unsigned)pn;
    return true;
}

/* Whether the Host header names this listener (see the design note) */
static bool host_ok(zf_http *h, struct MHD_Connection *con)
{
    const char *v = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Host");
    char host[256];
    unsigned port;
    if (!v || !split_host(v, host, sizeof host, &port))
        return false;
    for (int i = 0; i < h->nhosts; i++)
        if (!strcasecmp(host, h->hosts[i]))
            return true; /* a name the user gave: whatever port a proxy in front uses */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!ci || getsockname(ci->connect_fd, (struct sockaddr *)&ss, &sl) != 0)
        return false;
    char ab[INET6_ADDRSTRLEN] = "";
    unsigned lport;
    bool loop;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ab, sizeof ab);
        lport = ntohs(s4->sin_port);
        loop = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ab, sizeof ab);
        lport = ntohs(s6->sin6_port);
        loop = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    } else
        return false;
    if (port ? port != lport : lport != 80)
        return false;
    if (!strcasecmp(host, "localhost") && loop)
        return true;
    if (ss.ss_family == AF_INET6) { /* compare as addresses: :: forms vary */
        struct in6_addr a, b;
        return inet_pton(AF_INET6, host, &a) == 1 &&
               inet_pton(AF_INET6, ab, &b) == 1 && !memcmp(&a, &b, sizeof a);
    }
    return !strcmp(host, ab);
}

void zf_http_set_request_timeout(zf_http *h, unsigned ms)
{
    h->hdr_ms = ms ? ms : 1;
}

const char *zf_http_addr(const zf_http *h)
{
    return h->addr;
}

int zf_http_allow_host(zf_http *h, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 253)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:", name[i]))
            return -EINVAL;
    if (h->nhosts == MAX_HOSTS)
        return -E2BIG;
    if (!(h->hosts[h->nhosts] = strdup(name)))
        return -ENOMEM;
    h->nhosts++;
    return 0;
}

static enum MHD_Result respond(hreq *r)
{
    struct MHD_Response *resp;
    if (r->has_ent && r->status < 300 && !r->head && r->end > r->start) {
        resp = MHD_create_response_from_callback(r->end - r->start, 256 << 10, content, r,
                                                 content_free);
        if (resp) {
            pthread_mutex_lock(&r->h->mu);
            r->refs++;
            pthread_mutex_unlock(&r->h->mu);
        }
    } else if (r->has_ent && r->status < 300 && r->end > r->start) {
        /* HEAD: MHD sends the size as Content-Length and no body */
        resp = MHD_create_response_from_callback(r->end - r->start, 4096, content, r,
                                                 content_free);
        if (resp) {
            pthread_mutex_lock(&r->h->mu);
            r->refs++;
            pthread_mutex_unlock(&r->h->mu);
        }
    } else {
        const char *t = r->body ? r->body : "";
        resp = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    }
    if (!resp)
        return MHD_NO;
    if (r->ctype)
        MHD_add_response_header(resp, "Content-Type", r->ctype);
    for (int i = 0; i < r->nhdr; i++)
        MHD_add_response_header(resp, r->hdr[i][0], r->hdr[i][1]);
    enum MHD_Result ret = MHD_queue_response(r->con, r->status, resp);
    MHD_destroy_response(resp);
    g_requests++;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    zf_http *h = cls;
    (void)version;
    (void)upload_data;
    hreq *r = *con_cls;
    if (!r) {
        bool get = !strcmp(method, MHD_HTTP_METHOD_GET), head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
        if (!host_ok(h, con))
            return send_simple(con, 421,
                               "zestfs: the Host header does not name this server (its address "
                               "and port, or a name given with --http-host)\n",
                               "X-Error-Code", "MisdirectedRequest");
        if (!get && !head)
            return send_simple(con, 405, "method not allowed\n", "Allow", "GET, HEAD");
        /* proxy routes: a Bearer that is not --http-token is the caller's Hub
         * token; /health needs none */
        bool proxy = !h->metrics_only &&
                     (!strncmp(url, "/download/", 10) || !strncmp(url, "/download-hash/", 15));
        bool health = !h->metrics_only && !strcmp(url, "/health");
        const char *bearer = proxy ? bearer_of(con) : NULL;
        int auth = AUTH_OPEN;
        if (proxy)
            auth = bearer && *bearer ? (h->token && token_ok(h, con) ? AUTH_SERVER : AUTH_HUB)
                                     : (h->token ? -1 : AUTH_ANON);
        if (proxy ? auth < 0 : !health && !token_ok(h, con))
            return send_simple(con, 401, "unauthorized\n", "WWW-Authenticate", "Bearer");
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->auth = auth;
        const char *hint = proxy ? MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "repo")
                                 : NULL;
        if ((auth == AUTH_HUB && !(r->bearer = strdup(bearer))) || (hint && !(r->hint = strdup(hint)))) {
            hreq_free(r);
            return MHD_NO;
        }
        const char *rg = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Range");
        r->h = h;
        r->con = con;
        r->head = head;
        r->url = strdup(url);
        r->range = rg ? strdup(rg) : NULL;
        r->refs = 1; /* MHD's, dropped when the request completes */
        for (int i = 0; i < NSLOTS; i++)
            r->slot[i].r = r;
        if (!r->url || (rg && !r->range)) {
            hreq_free(r);
            return MHD_NO;
        }
        pthread_mutex_lock(&h->mu);
        r->lnext = h->live;
        if (h->live)
            h->live->lprev = r;
        h->live = r;
        pthread_mutex_unlock(&h->mu);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* a GET body: ignored (within the deadline) */
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    int phase = r->phase;
    if (phase == PH_NEW) { /* the whole request is in: no deadline while answering */
        hconn *hc = conn_of(con);
        if (hc)
            hc->deadline = 0;
    }
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        return MHD_NO;
    }
    if (phase == PH_NEW) {
        r->phase = PH_RESOLVING;
        r->suspended = true;
        MHD_suspend_connection(con);
        kick_locked(r);
    }
    pthread_mutex_unlock(&h->mu);
    if (phase != PH_RESOLVED)
        return MHD_YES;
    return respond(r);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    zf_http *h = cls;
    /* the next request on this connection has HDR_MS from now */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        set_deadline(h, con, h->hdr_ms);
    hreq *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->h->mu);
    r->closed = true;
    pthread_mutex_unlock(&r->h->mu);
    unref(r);
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s); /* paths are decoded per component (a rev may hold %2F) */
}

/* ---- the listener --------------------------------------------------------- */

int zf_http_bind(const char *spec, const char *what, bool metrics_only, const char *token,
                 zf_http **out)
{
    char host[80] = "127.0.0.1", port[16];
    const char *colon = strrchr(spec, ':');
    if (colon) {
        size_t n = (size_t)(colon - spec);
        const char *hs = spec;
        if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']')
            hs++, n -= 2;
        if (n == 0 || n >= sizeof host)
            return -EINVAL;
        memcpy(host, hs, n);
        host[n] = 0;
        spec = colon + 1;
    }
    char *e;
    unsigned long pn = strtoul(spec, &e, 10);
    if (!*spec || *e || pn > 65535)
        return -EINVAL;
    snprintf(port, sizeof port, "%lu", pn);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    hints.ai_flags |= AI_NUMERICHOST;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return -EINVAL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int err = -errno;
        close(fd);
        freeaddrinfo(ai);
        return err;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ab[64] = "?";
    unsigned bport = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ab, sizeof ab);
            bport = ntohs(s4->sin_port);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ab, sizeof ab);
            bport = ntohs(s6->sin6_port);
        }
    }
    zf_http *h = calloc(1, sizeof *h);
    if (!h || (token && !(h->token = strdup(token)))) {
        free(h);
        close(fd);
        return -ENOMEM;
    }
    h->lfd = fd;
    h->hdr_ms = HDR_MS;
    h->metrics_only = metrics_only;
    snprintf(h->addr, sizeof h->addr, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ab, bport);
    zf_log(ZF_LOG_INFO, "zestfs: %s on %s\n", what, h->addr);
    *out = h;
    return 0;
}

int zf_http_start(zf_http *h, zf_fs *fs, zc_store *store)
{
    h->fs = fs;
    h->store = store;
    pthread_mutex_init(&h->mu, NULL);
    uv_async_init(fs->loop, &h->async, on_async);
    h->async.data = h;
    h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                            on_request, h, MHD_OPTION_LISTEN_SOCKET, h->lfd,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(512u << 10),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNS,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_CONNS,
                            MHD_OPTION_NOTIFY_CONNECTION, on_conn, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_S, MHD_OPTION_END);
    h->started = true;
    if (!h->d) {
        h->stopping = true;
        uv_close((uv_handle_t *)&h->async, NULL);
        return -EIO;
    }
    uv_timer_init(fs->loop, &h->watch);
    h->watch.data = h;
    unsigned tick = h->hdr_ms < 2000 ? (h->hdr_ms + 1) / 2 : 1000;
    uv_timer_start(&h->watch, on_watch, tick, tick);
    uv_unref((uv_handle_t *)&h->watch);
    h->watching = true;
    return 0;
}

void zf_http_stop(zf_http *h)
{
    if (!h || !h->started || h->stopping)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    size_t n = 0;
    for (hreq *r = h->live; r; r = r->lnext)
        n += r->suspended && !r->closed;
    struct MHD_Connection **res = calloc(n ? n : 1, sizeof *res);
    n = 0;
    for (hreq *r = h->live; r && res; r = r->lnext)
        if (r->suspended && !r->closed) {
            r->suspended = false;
            res[n++] = r->con;
        }
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(res[i]);
    free(res);
    MHD_stop_daemon(h->d); /* joins its thread; completion callbacks have run */
    h->d = NULL;
    pthread_mutex_lock(&h->mu);
    hreq *q = h->queue;
    h->queue = NULL;
    pthread_mutex_unlock(&h->mu);
    while (q) {
        hreq *r = q;
        q = r->qnext;
        unref(r);
    }
    if (h->hubhttp) /* pending Hub checks complete now, -ECANCELED */
        zn_http_free(h->hubhttp);
    h->hubhttp = NULL;
    uv_close((uv_handle_t *)&h->async, NULL);
    if (h->watching)
        uv_close((uv_handle_t *)&h->watch, NULL);
}

void zf_http_free(zf_http *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    if (!h->started && h->lfd >= 0)
        close(h->lfd);
    if (h->started)
        pthread_mutex_destroy(&h->mu);
    if (h->token) {
        memset(h->token, 0, strlen(h->token));
        free(h->token);
    }
    for (int i = 0; i < h->nhosts; i++)
        free(h->hosts[i]);
    free(h);
}
