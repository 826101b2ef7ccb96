/* fuzz_httpd.c — the HTTP access server's whole request handling
 * (fs/httpd.c over libmicrohttpd): the fuzzed bytes are what a client
 * sends on one TCP connection to a real listener on loopback, so they go
 * through MHD's request parsing, then httpd.c's Host check, method and
 * token checks, the hand-over to the loop (this thread runs it), routing
 * (/{repo}/resolve/{rev}/{path}, /xet/{id}, /metrics, /health, proxy-xet's
 * /download and /download-hash: a caller's Hub token meets zf_read_hub's
 * stand-in, offline, so 503; the --http-token reads as on resolve), on-demand
 * resolving, ranges, the streamed answer in pieces and its errors.
 * fs/httpparse.c's parsers alone are fuzz_httpreq's.
 *
 * What stands in for the rest of zestfs (nothing else is faked): the
 * presented repo is a repo JSON model (fs/repo.c); zf_read_async answers a
 * blob's bytes from a formula of the file offset, later (a loop timer) or
 * at once, and fails for files named "broken*" past their first MiB;
 * zf_resolve_repo answers on a loop timer (-ENOENT, or the presented repo
 * for the revision "v2").
 *
 * Input: byte 0 picks the listener (bit 0-1: 0 no token, 1 with the token
 * "tok" (on-demand resolving on), 2 /metrics only, 3 as 1), bit 2: reads
 * answer at once; the rest is sent on the connection, whose write side is
 * then shut.  Invariants: the server answers every request and closes
 * (no hang: at most 20 s of loop); what it sends starts with an HTTP/1.x
 * status line (or is nothing); a 200/206 body of a blob holds exactly the
 * formula's bytes of the range its headers name; without the token no
 * Host header but the listener's or fuzz.example gets past 421 to a 2xx. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "p2p.h"
#include "httpd.h"
#include "hubload.h"
#include "read.h"
#include "zfs.h"

#define C40 "0123456789abcdef0123456789abcdef01234567"
#define X64 "3d96c786f6a5ccca39cd64ff8fde9c92885e35ddc22d372aafabc92a5ff3584d"

static const char repo_json[] =
    "{\"format\": 1, \"type\": \"model\", \"id\": \"org/name\", \"refs\": {\"main\": \"" C40
    "\", \"v2\": \"" C40 "\"}, \"commits\": {\"" C40 "\": {\"date\": 1714564800, \"files\": ["
    "{\"path\": \"config.json\", \"size\": 300, \"oid\": \"" C40 "\"},"
    "{\"path\": \"empty.bin\", \"size\": 0, \"oid\": \"" C40 "\"},"
    "{\"path\": \"sub/model.safetensors\", \"size\": 4718597, \"oid\": \"" C40
    "\", \"lfs_sha256\": \"" X64 "\", \"xet_hash\": \"" X64 "\"},"
    "{\"path\": \"broken.bin\", \"size\": 3145728, \"oid\": \"" C40 "\", \"lfs_sha256\": \"" X64
    "\"}]}}}";

static zf_fs g_fs;
static uv_loop_t g_loop;
static zf_repo *g_repo;
static zf_http *g_h[3];
static unsigned g_port[3]; /* the bound ports */
static bool g_sync; /* reads answer from inside the call */

/* ---- what stands in for the read path and the Hub --------------------- */

static uint8_t byte_at(uint64_t off)
{
    return (uint8_t)((off * 2654435761u) >> 13 ^ off);
}

typedef struct later {
    uv_timer_t t;
    zf_read_cb rcb;
    zf_resolve_cb scb;
    void *ud;
    int err;
    uint64_t off;
    size_t len;
    bool found;
} later;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void deliver(zf_read_cb cb, void *ud, int err, uint64_t off, size_t len)
{
    if (err) {
        cb(ud, err, NULL, 0);
        return;
    }
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        abort();
    for (size_t i = 0; i < len; i++)
        b[i] = byte_at(off + i);
    cb(ud, 0, b, len);
    free(b);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    if (l->rcb)
        deliver(l->rcb, l->ud, l->err, l->off, l->len);
    else
        l->scb(l->ud, l->found ? 0 : -ENOENT, l->found ? g_repo : NULL, l->found ? C40 : NULL);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void schedule(later *l)
{
    uv_timer_init(&g_loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 0, 0);
}

int zf_read_async(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb, void *ud)
{
    (void)fs;
    FZ_CHECK(e && e->kind == ZV_BLOB && e->file);
    FZ_CHECK(off < e->file->size && len > 0 && off + len <= e->file->size);
    int err = !strncmp(e->file->path, "broken", 6) && off + len > (1u << 20) ? -EIO : 0;
    if (g_sync) {
        deliver(cb, ud, err, off, len);
        return 0;
    }
    later *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->rcb = cb;
    l->ud = ud;
    l->err = err;
    l->off = off;
    l->len = len;
    schedule(l);
    return 0;
}

int zf_resolve_repo(zf_fs *fs, zc_store *store, const char *spec, zf_resolve_cb cb, void *ud)
{
    (void)fs;
    (void)store;
    if (!strchr(spec, '@'))
        return -EINVAL;
    later *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->scb = cb;
    l->ud = ud;
    l->found = !strcmp(spec, "models/org/name@v2");
    schedule(l);
    return 0;
}

zf_metrics *zf_read_metrics(zf_fs *fs)
{
    (void)fs;
    static zf_metrics m;
    m.reads = 7;
    m.read_ms.count = 1;
    m.read_ms.bucket[0] = 1;
    return &m;
}

void zf_p2p_get_stats(zf_p2p *p, zf_p2p_stats *st)
{
    (void)p;
    memset(st, 0, sizeof *st);
}

bool zf_p2p_repo_served(zf_p2p *p, const char *type, const char *id)
{
    (void)p, (void)type, (void)id;
    return false;
}

const char *zf_p2p_type_name(enum zf_repo_type t)
{
    return t == ZF_MODEL ? "model" : "other";
}

int zf_p2p_add_repo(zf_p2p *p, const zf_repo *r) /* present.c's, never with a swarm here */
{
    (void)p, (void)r;
    return 0;
}

void zc_get_stats(zc_store *s, zc_stats *st)
{
    (void)s;
    memset(st, 0, sizeof *st);
}

/* offline: the proxy routes' Hub checks of callers' tokens answer 503 */
struct zn_hub *zf_read_hub(zf_fs *fs)
{
    (void)fs;
    return NULL;
}

/* ---- the server, once --------------------------------------------------- */

static void setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    FZ_CHECK(uv_loop_init(&g_loop) == 0);
    g_fs.loop = &g_loop;
    FZ_CHECK(zf_repo_from_json(repo_json, strlen(repo_json), &g_repo) == 0);
    static zf_repo *repos[1];
    repos[0] = g_repo;
    g_fs.tree.repos = repos;
    g_fs.tree.nrepos = 1;
    zf_log_level = ZF_LOG_ERR;
    for (int i = 0; i < 3; i++) {
        FZ_CHECK(zf_http_bind("127.0.0.1:0", "fuzz", i == 2, i == 1 ? "tok" : NULL, &g_h[i]) == 0);
        FZ_CHECK(zf_http_allow_host(g_h[i], "fuzz.example") == 0);
        /* a request cut short waits for its deadline (the client's half
         * close does not end it): 30 ms here, not 10 s */
        zf_http_set_request_timeout(g_h[i], 30);
        FZ_CHECK(zf_http_start(g_h[i], &g_fs, NULL) == 0);
        const char *a = strrchr(zf_http_addr(g_h[i]), ':');
        FZ_CHECK(a && (g_port[i] = (unsigned)atoi(a + 1)) > 0);
    }
}

static bool status_line(const char *p, size_t n, unsigned *code)
{
    if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return false;
    *code = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
    return p[9] >= '1' && p[9] <= '5';
}

/* a header's value in the head [p, p+n) (case-insensitive name) */
static const char *header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        if (!strncasecmp(l + 2, name, nl) && l[2 + nl] == ':') {
            const char *v = l + 3 + nl;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= cap)
                k = cap - 1;
            memcpy(out, v, k);
            out[k] = 0;
            return out;
        }
    }
    return NULL;
}

/* the first answer's invariants */
static void check_answer(const char *got, size_t n, bool host_named, bool head_req)
{
    if (n == 0)
        return; /* MHD may close on garbage without a word */
    unsigned code = 0;
    FZ_CHECK(status_line(got, n, &code));
    const char *end = NULL;
    for (size_t i = 0; i + 3 < n; i++)
        if (!memcmp(got + i, "\r\n\r\n", 4)) {
            end = got + i;
            break;
        }
    if (!end)
        return; /* cut (a read error mid-body never reaches here: headers came whole) */
    char *head = strndup(got, (size_t)(end - got) + 2);
    const char *body = end + 4;
    size_t blen = n - (size_t)(body - got);
    char v[128];
    if (code >= 200 && code < 300 && !host_named)
        FZ_CHECK(!"a request whose Host is not the listener's got a 2xx");
    if ((code == 200 || code == 206) && header(head, "ETag", v, sizeof v) &&
        header(head, "Content-Type", v, sizeof v) && !strcmp(v, "application/octet-stream")) {
        uint64_t a = 0, b = 0, size = 0;
        if (code == 206) {
            FZ_CHECK(header(head, "Content-Range", v, sizeof v));
            FZ_CHECK(sscanf(v, "bytes %" SCNu64 "-%" SCNu64 "/%" SCNu64, &a, &b, &size) == 3);
            FZ_CHECK(a <= b && b < size);
            b++;
        } else {
            FZ_CHECK(header(head, "Content-Length", v, sizeof v));
            b = strtoull(v, NULL, 10);
        }
        /* body bytes that came (maybe fewer: a keep-alive peer's next answer
         * may follow, or the body was cut): each equals the formula */
        size_t k = blen < b - a ? blen : (size_t)(b - a);
        for (size_t i = 0; i < k && !head_req; i++)
            FZ_CHECK((uint8_t)body[i] == byte_at(a + i));
    }
    free(head);
}

/* whether needle occurs in p[0..n) ignoring case (NUL bytes included) */
static bool has_ci(const uint8_t *p, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (!strncasecmp((const char *)p + i, needle, m)) {
            bool nul = false;
            for (size_t k = 0; k < m; k++)
                nul |= p[i + k] == 0;
            if (!nul)
                return true;
        }
    return false;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    setup();
    int which = data[0] & 3;
    if (which == 3)
        which = 1;
    g_sync = data[0] & 4;
    data++;
    size--;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)g_port[which]);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0);
    FZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    /* whether something like a Host of the listener is there (what may get
     * a 2xx), and whether the first request is a HEAD (no body follows) */
    bool host_named = has_ci(data, size, "127.0.0.1:") || has_ci(data, size, "fuzz.example") ||
                      has_ci(data, size, "localhost:");
    size_t lead = 0;
    while (lead < size && (data[lead] == '\r' || data[lead] == '\n'))
        lead++;
    bool head_req = size - lead >= 4 && !memcmp(data + lead, "HEAD", 4);
    size_t sent = 0, cap = 1 << 16, n = 0;
    char *got = malloc(cap);
    if (!got)
        abort();
    bool wdone = false, eof = false;
    double t0 = now_s();
    while (!eof) {
        FZ_CHECK(now_s() - t0 < 20); /* the server answers and closes */
        if (!wdone) {
            ssize_t w = sent < size ? send(fd, data + sent, size - sent, MSG_NOSIGNAL) : 0;
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                sent = size; /* the server closed: stop writing */
            if (sent == size) {
                shutdown(fd, SHUT_WR);
                wdone = true;
            }
        }
        uv_run(&g_loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) > 0) {
            for (;;) {
                if (n == cap) {
                    /* keep the head for the checks; count the rest */
                    char sink[65536];
                    ssize_t r = recv(fd, sink, sizeof sink, 0);
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                        eof = true;
                    if (r <= 0)
                        break;
                    continue;
                }
                ssize_t r = recv(fd, got + n, cap - n, 0);
                if (r > 0)
                    n += (size_t)r;
                else {
                    if (r == 0 || (errno != EAGAIN && errno != EINTR))
                        eof = true;
                    break;
                }
            }
        }
    }
    close(fd);
    /* let the loop finish what the closed connection left (reads in flight) */
    for (int i = 0; i < 20; i++)
        uv_run(&g_loop, UV_RUN_NOWAIT);
    if (getenv("ZESTFS_FUZZ_VERBOSE")) /* what came back: its first line, its size */
        fprintf(stderr, "%.*s (%zu bytes)\n", (int)strcspn(got, "\r\n") < (int)n
                ? (int)strcspn(got, "\r\n") : (int)n, got, n);
    check_answer(got, n, host_named, head_req);
    free(got);
    return 0;
}
