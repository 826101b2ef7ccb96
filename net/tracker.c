/* tracker.c — HTTP (BEP 3/23/7/48) and UDP (BEP 15) tracker clients.
 *
 * A zn_tracker is one announce URL.  HTTP requests go through zn_http; UDP
 * uses one uv_udp_t and one uv_timer_t per tracker.  UDP operations live on
 * a list; each is in step "connect" (when no connection id younger than 60 s
 * is known) or "action" (announce / scrape) and is resent after
 * base·2^tries until max_tries sends of a step went unanswered.  An answer
 * is matched by transaction id and source address; others are dropped.
 * Completion callbacks are called after the op left the list and the timer
 * was re-armed, and nothing touches the tracker after a callback (it may
 * free it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include "disc.h"

#define UDP_MAGIC 0x41727101980ULL
#define CONN_ID_TTL_MS 60000

enum { K_ANNOUNCE = 1, K_SCRAPE = 2 };
enum { S_CONNECT = 0, S_ACTION = 1 };

typedef struct tk_op {
    struct tk_op *next;
    zn_tracker *t;
    int kind, stage, tries;
    uint32_t txid;
    uint64_t deadline;
    zn_announce a;
    uint8_t (*ih)[20];
    size_t n;
    zn_announce_cb acb;
    zn_scrape_cb scb;
    void *ud;
    zn_req *req;
} tk_op;

struct zn_tracker {
    uv_loop_t *loop;
    bool udp;
    char *url;
    zn_http *http;
    long http_timeout_ms;
    uint32_t base_ms;
    int max_tries;
    /* udp */
    uv_udp_t sock;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    bool resolving, resolved, handles;
    int resolve_err;
    char host[256], port[8];
    struct sockaddr_storage addr;
    uint64_t conn_id, conn_at;
    bool have_conn;
    int handles_open;
    bool freed;
    tk_op *ops;
    /* intervals */
    uint64_t last_ok;
    uint32_t interval, min_interval;
    char failure[256];
    zn_tracker_stats st;
};

static uint32_t rnd32(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) != sizeof v)
        v = (uint32_t)uv_hrtime() ^ (uint32_t)(uintptr_t)&v;
    return v;
}

void zn_url_escape(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

/* ---- parsers --------------------------------------------------------------- */

static void set_failure(char *dst, size_t dlen, const uint8_t *s, size_t n)
{
    if (!dst || !dlen)
        return;
    if (n >= dlen)
        n = dlen - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    dst[n] = 0;
}

static uint32_t clamp_u32(int64_t v)
{
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

int zn_tracker_parse_announce(const uint8_t *body, size_t len, zn_announce_result *r,
                              char *failure, size_t failure_len)
{
    zb_val *root = NULL;
    size_t used = 0;
    memset(r, 0, sizeof *r);
    if (failure && failure_len)
        failure[0] = 0;
    int rc = zb_decode(body, len, ZB_LENIENT_ORDER, &root, &used);
    if (rc < 0)
        return rc == -ENOMEM ? rc : -EBADMSG;
    if (root->type != ZB_DICT) {
        zb_free(root);
        return -EBADMSG;
    }
    const uint8_t *s;
    size_t n;
    if (zb_get_str(root, "failure reason", &s, &n)) {
        set_failure(failure, failure_len, s, n);
        zb_free(root);
        return -EPERM;
    }
    int64_t v;
    if (!zb_get_int(root, "interval", &v) || v < 0) {
        zb_free(root);
        return -EBADMSG;
    }
    r->interval = clamp_u32(v);
    if (zb_get_int(root, "min interval", &v))
        r->min_interval = clamp_u32(v);
    if (zb_get_int(root, "complete", &v))
        r->complete = clamp_u32(v);
    if (zb_get_int(root, "incomplete", &v))
        r->incomplete = clamp_u32(v);
    const zb_val *p4 = zb_get(root, "peers"), *p6 = zb_get(root, "peers6");
    size_t n4 = 0, n6 = 0;
    if (p4 && p4->type == ZB_STR) {
        if (p4->len % 6)
            rc = -EBADMSG;
        n4 = p4->len / 6;
    } else if (p4 && p4->type == ZB_LIST) {
        n4 = p4->len;
    } else if (p4) {
        rc = -EBADMSG;
    }
    if (p6 && (p6->type != ZB_STR || p6->len % 18))
        rc = -EBADMSG;
    else if (p6)
        n6 = p6->len / 18;
    if (rc < 0) {
        zb_free(root);
        return rc;
    }
    r->peers = calloc(n4 + n6 + 1, sizeof *r->peers);
    if (!r->peers) {
        zb_free(root);
        return -ENOMEM;
    }
    size_t k = 0;
    if (p4 && p4->type == ZB_STR) {
        k += (size_t)zn_compact_parse(p4->s, p4->len, AF_INET, r->peers, n4);
    } else if (p4) {
        for (size_t i = 0; i < p4->len; i++) {
            const zb_val *d = &p4->items[i];
            const uint8_t *ip;
            size_t iplen;
            int64_t port;
            char buf[64];
            if (d->type != ZB_DICT || !zb_get_str(d, "ip", &ip, &iplen) ||
                !zb_get_int(d, "port", &port) || port <= 0 || port > 65535 || iplen >= sizeof buf)
                continue; /* skip what we cannot use */
            memcpy(buf, ip, iplen);
            buf[iplen] = 0;
            memset(&r->peers[k], 0, sizeof r->peers[k]);
            if (uv_ip4_addr(buf, (int)port, (struct sockaddr_in *)&r->peers[k]) == 0 ||
                uv_ip6_addr(buf, (int)port, (struct sockaddr_in6 *)&r->peers[k]) == 0)
                k++;
        }
    }
    if (p6)
        k += (size_t)zn_compact_parse(p6->s, p6->len, AF_INET6, r->peers + k, n6);
    r->npeers = k;
    zb_free(root);
    return 0;
}

int zn_tracker_parse_scrape(const uint8_t *body, size_t len, const uint8_t (*ih)[20], size_t n,
                            zn_scrape_entry *e)
{
    zb_val *root = NULL;
    size_t used = 0;
    int rc = zb_decode(body, len, ZB_LENIENT_ORDER, &root, &used);
    if (rc < 0)
        return rc == -ENOMEM ? rc : -EBADMSG;
    const zb_val *files = root->type == ZB_DICT ? zb_get(root, "files") : NULL;
    if (root->type == ZB_DICT && zb_get(root, "failure reason")) {
        zb_free(root);
        return -EPERM;
    }
    if (!files || files->type != ZB_DICT) {
        zb_free(root);
        return -EBADMSG;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&e[i], 0, sizeof e[i]);
        memcpy(e[i].info_hash, ih[i], 20);
        for (size_t j = 0; j < files->len; j++) {
            const zb_val *k = &files->items[2 * j], *v = &files->items[2 * j + 1];
            if (k->len != 20 || memcmp(k->s, ih[i], 20) || v->type != ZB_DICT)
                continue;
            int64_t x;
            if (zb_get_int(v, "complete", &x))
                e[i].complete = clamp_u32(x);
            if (zb_get_int(v, "incomplete", &x))
                e[i].incomplete = clamp_u32(x);
            if (zb_get_int(v, "downloaded", &x))
                e[i].downloaded = clamp_u32(x);
        }
    }
    zb_free(root);
    return 0;
}

/* ---- common ---------------------------------------------------------------- */

static int parse_udp_url(zn_tracker *t, const char *url)
{
    const char *h = url + 6, *end;
    size_t hl;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hl = (size_t)(end - h - 1);
        h++;
        end++;
    } else {
        end = strchr(h, ':');
        if (!end)
            return -EINVAL;
        hl = (size_t)(end - h);
    }
    if (hl == 0 || hl >= sizeof t->host)
        return -EINVAL;
    memcpy(t->host, h, hl);
    t->host[hl] = 0;
    const char *p = end + 1;
    size_t pl = strspn(p, "0123456789");
    if (pl == 0 || pl >= sizeof t->port || atoi(p) <= 0 || atoi(p) > 65535)
        return -EINVAL;
    memcpy(t->port, p, pl);
    t->port[pl] = 0;
    return 0;
}

static void on_close(uv_handle_t *h)
{
    zn_tracker *t = h->data;
    if (--t->handles_open == 0 && t->freed) {
        free(t->url);
        free(t);
    }
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
                     unsigned flags);
static void udp_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    static uint8_t rbuf[65536]; /* loop thread only; consumed before the next read */
    *b = uv_buf_init((char *)rbuf, sizeof rbuf);
}
static void udp_timer(uv_timer_t *tm);
static void udp_kick(zn_tracker *t);

static void udp_start(zn_tracker *t)
{
    struct sockaddr_storage any;
    memset(&any, 0, sizeof any);
    if (t->addr.ss_family == AF_INET6)
        uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&any);
    else
        uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&any);
    int rc = uv_udp_bind(&t->sock, (struct sockaddr *)&any, 0);
    if (rc == 0)
        rc = uv_udp_recv_start(&t->sock, udp_alloc, udp_recv);
    t->resolve_err = rc;
    t->resolved = true;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    zn_tracker *t = g->data;
    t->resolving = false;
    if (status == UV_ECANCELED || t->freed) {
        uv_freeaddrinfo(res);
        if (t->freed && --t->handles_open == 0) {
            free(t->url);
            free(t);
        }
        return;
    }
    if (status < 0 || !res) {
        t->resolve_err = -EHOSTUNREACH;
        t->resolved = true;
    } else {
        memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
        udp_start(t);
    }
    uv_freeaddrinfo(res);
    if (t->handles_open)
        t->handles_open--; /* the getaddrinfo "handle" */
    udp_kick(t);
}

int zn_tracker_new(uv_loop_t *loop, const char *url, const zn_tracker_opts *o, zn_tracker **out)
{
    zn_tracker_opts def = {0};
    if (!o)
        o = &def;
    bool udp = strncmp(url, "udp://", 6) == 0;
    if (!udp && strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return -EPROTONOSUPPORT;
    if (!udp && !o->http)
        return -EINVAL;
    zn_tracker *t = calloc(1, sizeof *t);
    if (!t || !(t->url = strdup(url))) {
        free(t);
        return -ENOMEM;
    }
    t->loop = loop;
    t->udp = udp;
    t->http = o->http;
    t->http_timeout_ms = o->http_timeout_ms ? o->http_timeout_ms : 30000;
    t->base_ms = o->udp_base_ms ? o->udp_base_ms : 15000;
    t->max_tries = o->udp_max_tries > 0 ? o->udp_max_tries : 9;
    if (udp) {
        int rc = parse_udp_url(t, url);
        if (rc < 0) {
            free(t->url);
            free(t);
            return rc;
        }
        uv_udp_init(loop, &t->sock);
        uv_timer_init(loop, &t->timer);
        t->sock.data = t->timer.data = t;
        t->handles_open = 2;
        t->handles = true;
        if (uv_ip4_addr(t->host, atoi(t->port), (struct sockaddr_in *)&t->addr) == 0 ||
            uv_ip6_addr(t->host, atoi(t->port), (struct sockaddr_in6 *)&t->addr) == 0) {
            udp_start(t);
        } else {
            struct addrinfo hints = {.ai_socktype = SOCK_DGRAM};
            t->gai.data = t;
            rc = uv_getaddrinfo(loop, &t->gai, on_resolved, t->host, t->port, &hints);
            if (rc < 0) {
                t->resolve_err = -EHOSTUNREACH;
                t->resolved = true;
            } else {
                t->resolving = true;
                t->handles_open++;
            }
        }
    }
    *out = t;
    return 0;
}

static void op_free(tk_op *op)
{
    free(op->ih);
    free(op);
}

static void op_fail(tk_op *op, int err, const char *failure)
{
    if (op->kind == K_ANNOUNCE) {
        zn_announce_result r = {0};
        r.failure = failure;
        op->acb(op->ud, err, &r);
    } else {
        op->scb(op->ud, err, NULL, 0);
    }
    op_free(op);
}

void zn_tracker_free(zn_tracker *t)
{
    if (!t)
        return;
    t->freed = true;
    tk_op *ops = t->ops;
    t->ops = NULL;
    while (ops) {
        tk_op *op = ops;
        ops = op->next;
        if (op->req) { /* complete now; http_done frees op later */
            op->t = NULL;
            if (op->kind == K_ANNOUNCE) {
                zn_announce_result r = {0};
                op->acb(op->ud, -ECANCELED, &r);
            } else {
                op->scb(op->ud, -ECANCELED, NULL, 0);
            }
            zn_req_cancel(op->req);
            continue;
        }
        op_fail(op, -ECANCELED, NULL);
    }
    if (t->handles) {
        if (t->resolving)
            uv_cancel((uv_req_t *)&t->gai);
        uv_close((uv_handle_t *)&t->sock, on_close);
        uv_close((uv_handle_t *)&t->timer, on_close);
    } else {
        free(t->url);
        free(t);
    }
}

uint64_t zn_tracker_next_announce(const zn_tracker *t)
{
    if (!t->last_ok)
        return 0;
    uint32_t s = t->min_interval ? t->min_interval : t->interval;
    return t->last_ok + (uint64_t)s * 1000;
}

const char *zn_tracker_last_failure(const zn_tracker *t)
{
    return t->failure;
}

zn_tracker_stats zn_tracker_get_stats(const zn_tracker *t)
{
    return t->st;
}

static void note_ok(zn_tracker *t, const zn_announce_result *r)
{
    t->last_ok = uv_now(t->loop);
    if (t->last_ok == 0)
        t->last_ok = 1;
    t->interval = r->interval;
    t->min_interval = r->min_interval;
}

/* ---- HTTP ------------------------------------------------------------------ */

static void http_done(void *ud, int err, const zn_resp *resp)
{
    tk_op *op = ud;
    zn_tracker *t = op->t;
    op->req = NULL;
    if (!t) { /* tracker freed: the caller was told already */
        op_free(op);
        return;
    }
    /* unlink */
    for (tk_op **pp = &t->ops; *pp; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    size_t blen = 0;
    const uint8_t *body = resp ? zn_resp_body(resp, &blen) : NULL;
    if (err == 0 && !body)
        err = -EBADMSG;
    if (err < 0) {
        op_fail(op, err, NULL);
        return;
    }
    t->st.received++;
    if (op->kind == K_ANNOUNCE) {
        zn_announce_result r;
        err = zn_tracker_parse_announce(body, blen, &r, t->failure, sizeof t->failure);
        if (err == 0) {
            note_ok(t, &r);
            op->acb(op->ud, 0, &r);
            free(r.peers);
            op_free(op);
        } else {
            op_fail(op, err, err == -EPERM ? t->failure : NULL);
        }
    } else {
        zn_scrape_entry *e = calloc(op->n, sizeof *e);
        err = e ? zn_tracker_parse_scrape(body, blen, (const uint8_t(*)[20])op->ih, op->n, e)
                : -ENOMEM;
        if (err == 0)
            op->scb(op->ud, 0, e, op->n);
        else
            op->scb(op->ud, err, NULL, 0);
        free(e);
        op_free(op);
    }
}

static int http_start(zn_tracker *t, tk_op *op)
{
    char *url;
    size_t cap = strlen(t->url) + 74 * 80 + 512;
    if (!(url = malloc(cap)))
        return -ENOMEM;
    char *q = strchr(t->url, '?');
    char esc[3 * 20 + 1], esc2[3 * 20 + 1];
    size_t o;
    if (op->kind == K_ANNOUNCE) {
        const zn_announce *a = &op->a;
        static const char *ev[] = {"", "completed", "started", "stopped"};
        zn_url_escape(a->info_hash, 20, esc);
        zn_url_escape(a->peer_id, 20, esc2);
        o = (size_t)snprintf(url, cap,
                             "%s%cinfo_hash=%s&peer_id=%s&port=%u&uploaded=%llu&downloaded=%llu"
                             "&left=%llu&compact=1",
                             t->url, q ? '&' : '?', esc, esc2, (unsigned)a->port,
                             (unsigned long long)a->uploaded, (unsigned long long)a->downloaded,
                             (unsigned long long)a->left);
        if (a->event != ZN_EV_NONE)
            o += (size_t)snprintf(url + o, cap - o, "&event=%s", ev[a->event]);
        if (a->numwant >= 0)
            o += (size_t)snprintf(url + o, cap - o, "&numwant=%d", (int)a->numwant);
        if (a->key)
            snprintf(url + o, cap - o, "&key=%08x", (unsigned)a->key);
    } else {
        /* BEP 48: the last path part must start with "announce" */
        const char *path_end = q ? q : t->url + strlen(t->url);
        const char *slash = path_end;
        while (slash > t->url && slash[-1] != '/')
            slash--;
        if (slash == t->url || strncmp(slash, "announce", 8) != 0 || slash[-2] == '/') {
            free(url);
            return -ENOSYS;
        }
        o = (size_t)(slash - t->url);
        memcpy(url, t->url, o);
        o += (size_t)snprintf(url + o, cap - o, "scrape%.*s", (int)(path_end - slash - 8),
                              slash + 8);
        char sep = q ? '&' : '?';
        if (q)
            o += (size_t)snprintf(url + o, cap - o, "%s", q);
        for (size_t i = 0; i < op->n; i++) {
            zn_url_escape(op->ih[i], 20, esc);
            o += (size_t)snprintf(url + o, cap - o, "%cinfo_hash=%s", sep, esc);
            sep = '&';
        }
    }
    zn_http_req r = {.url = url, .max_body = 1u << 20, .timeout_ms = t->http_timeout_ms,
                     .done = http_done, .ud = op};
    int rc = zn_http_request(t->http, &r, &op->req);
    free(url);
    if (rc == 0)
        t->st.sent++;
    return rc;
}

/* ---- UDP ------------------------------------------------------------------- */

static void udp_send_op(zn_tracker *t, tk_op *op)
{
    uint8_t pkt[16 + 74 * 20 + 82];
    size_t len;
    uint64_t now = uv_now(t->loop);
    op->txid = rnd32();
    if (op->stage == S_CONNECT) {
        xet_put_be64(pkt, UDP_MAGIC);
        xet_put_be32(pkt + 8, 0);
        xet_put_be32(pkt + 12, op->txid);
        len = 16;
        t->st.connects++;
    } else if (op->kind == K_ANNOUNCE) {
        const zn_announce *a = &op->a;
        xet_put_be64(pkt, t->conn_id);
        xet_put_be32(pkt + 8, 1);
        xet_put_be32(pkt + 12, op->txid);
        memcpy(pkt + 16, a->info_hash, 20);
        memcpy(pkt + 36, a->peer_id, 20);
        xet_put_be64(pkt + 56, a->downloaded);
        xet_put_be64(pkt + 64, a->left);
        xet_put_be64(pkt + 72, a->uploaded);
        xet_put_be32(pkt + 80, (uint32_t)a->event);
        xet_put_be32(pkt + 84, 0);
        xet_put_be32(pkt + 88, a->key);
        xet_put_be32(pkt + 92, (uint32_t)(a->numwant < 0 ? -1 : a->numwant));
        pkt[96] = a->port >> 8, pkt[97] = a->port & 255;
        len = 98;
    } else {
        xet_put_be64(pkt, t->conn_id);
        xet_put_be32(pkt + 8, 2);
        xet_put_be32(pkt + 12, op->txid);
        for (size_t i = 0; i < op->n; i++)
            memcpy(pkt + 16 + 20 * i, op->ih[i], 20);
        len = 16 + 20 * op->n;
    }
    uv_buf_t b = uv_buf_init((char *)pkt, (unsigned)len);
    (void)uv_udp_try_send(&t->sock, &b, 1, (const struct sockaddr *)&t->addr); /* loss = retry */
    t->st.sent++;
    if (op->tries > 0)
        t->st.retransmits++;
    uint64_t wait = (uint64_t)t->base_ms << (op->tries < 20 ? op->tries : 20);
    op->deadline = now + wait;
    op->tries++;
}

static void udp_arm(zn_tracker *t)
{
    uint64_t first = UINT64_MAX, now = uv_now(t->loop);
    for (tk_op *op = t->ops; op; op = op->next)
        if (op->deadline && op->deadline < first)
            first = op->deadline;
    if (first == UINT64_MAX)
        uv_timer_stop(&t->timer);
    else
        uv_timer_start(&t->timer, udp_timer, first > now ? first - now : 0, 0);
}

/* (Re)start op's current step: connect unless a fresh connection id exists. */
static void udp_step(zn_tracker *t, tk_op *op)
{
    uint64_t now = uv_now(t->loop);
    if (op->stage == S_CONNECT && t->have_conn && now - t->conn_at < CONN_ID_TTL_MS)
        op->stage = S_ACTION;
    op->tries = 0;
    udp_send_op(t, op);
}

static void unlink_op(zn_tracker *t, tk_op *op)
{
    for (tk_op **pp = &t->ops; *pp; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            return;
        }
}

/* After resolution: start every op, or fail the first (the rest follow via
 * the timer). */
static void udp_kick(zn_tracker *t)
{
    if (!t->resolved)
        return;
    if (t->resolve_err < 0) {
        tk_op *op = t->ops;
        if (!op)
            return;
        unlink_op(t, op);
        for (tk_op *o = t->ops; o; o = o->next)
            o->deadline = 1; /* fail soon from the timer */
        udp_arm(t);
        op_fail(op, t->resolve_err, NULL);
        return;
    }
    for (tk_op *op = t->ops; op; op = op->next)
        if (!op->deadline)
            udp_step(t, op);
    udp_arm(t);
}

static void udp_timer(uv_timer_t *tm)
{
    zn_tracker *t = tm->data;
    uint64_t now = uv_now(t->loop);
    for (tk_op *op = t->ops; op; op = op->next) {
        if (!op->deadline || op->deadline > now)
            continue;
        if (t->resolve_err < 0 || op->tries >= t->max_tries) {
            int err = t->resolve_err < 0 ? t->resolve_err : -ETIMEDOUT;
            unlink_op(t, op);
            udp_arm(t);
            op_fail(op, err, NULL);
            return; /* t may be gone */
        }
        udp_send_op(t, op);
    }
    udp_arm(t);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
                     unsigned flags)
{
    zn_tracker *t = h->data;
    (void)flags;
    if (nread <= 0 || !sa || t->freed)
        return;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    tk_op *op = NULL;
    if (len >= 8 && same_addr(&t->addr, sa)) {
        uint32_t txid = xet_be32(p + 4);
        for (op = t->ops; op; op = op->next)
            if (op->deadline && op->txid == txid)
                break;
    }
    if (!op) {
        t->st.dropped++;
        return;
    }
    t->st.received++;
    uint32_t action = xet_be32(p);
    int err = 0;
    if (action == 3) {
        set_failure(t->failure, sizeof t->failure, p + 8, len - 8);
        unlink_op(t, op);
        udp_arm(t);
        op_fail(op, -EPERM, t->failure);
        return;
    }
    if (op->stage == S_CONNECT) {
        if (action != 0 || len < 16) {
            err = -EBADMSG;
        } else {
            t->conn_id = xet_be64(p + 8);
            t->conn_at = uv_now(t->loop);
            t->have_conn = true;
            op->stage = S_ACTION;
            op->tries = 0;
            udp_send_op(t, op);
            udp_arm(t);
            return;
        }
    } else if (op->kind == K_ANNOUNCE) {
        size_t es = t->addr.ss_family == AF_INET6 ? 18 : 6;
        if (action != 1)
            err = -EBADMSG;
        else if (len < 20) {
            snprintf(t->failure, sizeof t->failure, "announce refused (%zu-byte answer)", len);
            err = -EPERM;
        } else if ((len - 20) % es)
            err = -EBADMSG;
        if (err == 0) {
            zn_announce_result r = {0};
            r.interval = xet_be32(p + 8);
            r.incomplete = xet_be32(p + 12);
            r.complete = xet_be32(p + 16);
            size_t n = (len - 20) / es;
            r.peers = calloc(n + 1, sizeof *r.peers);
            if (!r.peers) {
                err = -ENOMEM;
            } else {
                r.npeers = (size_t)zn_compact_parse(p + 20, len - 20,
                                                    es == 6 ? AF_INET : AF_INET6, r.peers, n);
                unlink_op(t, op);
                udp_arm(t);
                note_ok(t, &r);
                op->acb(op->ud, 0, &r);
                free(r.peers);
                op_free(op);
                return;
            }
        }
    } else {
        if (action != 2 || (len - 8) % 12)
            err = -EBADMSG;
        else {
            zn_scrape_entry *e = calloc(op->n, sizeof *e);
            if (!e)
                err = -ENOMEM;
            else {
                for (size_t i = 0; i < op->n; i++) {
                    memcpy(e[i].info_hash, op->ih[i], 20);
                    if (8 + 12 * (i + 1) <= len) {
                        e[i].complete = xet_be32(p + 8 + 12 * i);
                        e[i].downloaded = xet_be32(p + 12 + 12 * i);
                        e[i].incomplete = xet_be32(p + 16 + 12 * i);
                    }
                }
                unlink_op(t, op);
                udp_arm(t);
                op->scb(op->ud, 0, e, op->n);
                free(e);
                op_free(op);
                return;
            }
        }
    }
    unlink_op(t, op);
    udp_arm(t);
    op_fail(op, err, err == -EPERM ? t->failure : NULL);
}

/* ---- start ----------------------------------------------------------------- */

static int op_start(zn_tracker *t, tk_op *op)
{
    op->t = t;
    if (!t->udp) {
        int rc = http_start(t, op);
        if (rc < 0) {
            op_free(op);
            return rc;
        }
        op->next = t->ops;
        t->ops = op;
        return 0;
    }
    op->next = t->ops;
    t->ops = op;
    if (t->resolved) {
        if (t->resolve_err < 0) {
            op->deadline = 1; /* fails from the timer, not from here */
        } else {
            udp_step(t, op);
        }
        udp_arm(t);
    }
    return 0;
}

int zn_tracker_announce(zn_tracker *t, const zn_announce *a, zn_announce_cb cb, void *ud)
{
    if (!t || !a || !cb || t->freed || a->event > ZN_EV_STOPPED)
        return -EINVAL;
    if (a->event == ZN_EV_NONE && t->last_ok && uv_now(t->loop) < zn_tracker_next_announce(t))
        return -EAGAIN;
    tk_op *op = calloc(1, sizeof *op);
    if (!op)
        return -ENOMEM;
    op->kind = K_ANNOUNCE;
    op->a = *a;
    op->acb = cb;
    op->ud = ud;
    return op_start(t, op);
}

int zn_tracker_scrape(zn_tracker *t, const uint8_t (*ih)[20], size_t n, zn_scrape_cb cb, void *ud)
{
    if (!t || !ih || !cb || n == 0 || n > 74 || t->freed)
        return -EINVAL;
    tk_op *op = calloc(1, sizeof *op);
    if (!op || !(op->ih = malloc(n * 20))) {
        free(op);
        return -ENOMEM;
    }
    memcpy(op->ih, ih, n * 20);
    op->n = n;
    op->kind = K_SCRAPE;
    op->scb = cb;
    op->ud = ud;
    return op_start(t, op);
}
