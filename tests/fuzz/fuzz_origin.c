/* fuzz_origin.c — zestfs-origin's whole request handling (origin/server.c):
 * libmicrohttpd's parser, the pre-body authorization and body caps, the
 * router and every handler, over a real server with no listening socket.
 * Each input is what one client sends on one connection (one request or
 * several pipelined, bodies included); it goes in through a socketpair
 * whose one end is handed to the server (o_server_add, as
 * MHD_add_connection, with a TCP client address), the client side is then shut for writing once all
 * was sent (or the server stopped taking it) and the answer read to the end.
 * The store is made once: org/tiny (public: config.json, README.md, a Xet
 * model.safetensors) and org/private (a Xet secret.bin), a fixed secret
 * (32 × 0x5a) so that the seeds' CAS tokens and signed URLs are valid, Hub
 * token "hf_fuzz".  The client's address is 192.0.2.7 (not loopback: the
 * knobs that make the server sleep stay out of reach).
 * Invariants: every answer starts with an HTTP/1.x status line; no 500
 * (an internal error on a request is a bug, whatever the request); the
 * server answers within 20 s. */
#define _GNU_SOURCE 1
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "origin.h"

static char dir[64];
static o_store store;
static o_server *srv;
static o_serve_opts opts;
static const char *tokens[] = {"hf_fuzz"};

static void put(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

/* the same bytes as tests/fuzz/make_origin_seeds.py */
static void fill(uint8_t *b, size_t n, unsigned seed)
{
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b[i] = (uint8_t)(x >> 24);
    }
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    o_server_stop(srv);
    srv = NULL;
    o_store_close(&store);
    if (dir[0])
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void ingest(const char *repo, const char *src, bool priv)
{
    o_ingest_opts io = {.type = "model", .repo = repo, .branch = "main", .message = "fuzz",
                        .private_ = priv, .xet_threshold = 10000000, .scheme = 0, .quiet = true};
    char id[41];
    if (o_ingest(&store, &io, src, id) != 0)
        abort();
}

static void setup(void)
{
    if (srv)
        return;
    snprintf(dir, sizeof dir, "/tmp/zestfs-fuzz-origin-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    char p[256], data[128], src[128], psrc[128];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(psrc, sizeof psrc, "%s/psrc", dir);
    if (mkdir(data, 0755) || mkdir(src, 0755) || mkdir(psrc, 0755))
        abort();
    uint8_t secret[32];
    memset(secret, 0x5a, sizeof secret);
    snprintf(p, sizeof p, "%s/secret", data);
    put(p, secret, sizeof secret);
    static const char cfg[] = "{\"model_type\": \"fuzz\", \"hidden\": 8}\n";
    static const char readme[] = "# fuzz\n";
    snprintf(p, sizeof p, "%s/config.json", src);
    put(p, cfg, sizeof cfg - 1);
    snprintf(p, sizeof p, "%s/README.md", src);
    put(p, readme, sizeof readme - 1);
    static uint8_t blob[300000];
    fill(blob, sizeof blob, 1);
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    put(p, blob, sizeof blob);
    fill(blob, 50000, 2);
    snprintf(p, sizeof p, "%s/secret.bin", psrc);
    put(p, blob, 50000);
    if (o_store_open(&store, data, true) != 0)
        abort();
    ingest("org/tiny", src, false);
    ingest("org/private", psrc, true);
    opts = (o_serve_opts){.listen = "127.0.0.1:0", .tokens = tokens, .ntokens = 1, .quiet = true};
    if (o_server_start(&store, &opts, true, &srv) != 0)
        abort();
    atexit(teardown);
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000),
                               .sin_addr.s_addr = htonl(0xc0000207)}; /* 192.0.2.7 */
    if (o_server_add(srv, sv[0], (struct sockaddr *)&peer, sizeof peer) != 0) {
        close(sv[1]);
        return 0; /* the server closed sv[0] */
    }
    int c = sv[1];
    fcntl(c, F_SETFL, O_NONBLOCK);
    size_t off = 0, got = 0;
    char head[16];
    bool wr_open = true;
    uint64_t start = now_ms();
    static uint8_t rbuf[1 << 16];
    for (;;) {
        if (wr_open && off == size) {
            shutdown(c, SHUT_WR);
            wr_open = false;
        }
        struct pollfd pf = {.fd = c, .events = POLLIN | (wr_open ? POLLOUT : 0)};
        int pr = poll(&pf, 1, 1000);
        FZ_CHECK(now_ms() - start < 20000); /* the server answers in bounded time */
        if (pr <= 0)
            continue;
        if (wr_open && (pf.revents & POLLOUT)) {
            ssize_t n = send(c, data + off, size - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                wr_open = false; /* the server closed early (refused before the body) */
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(c, rbuf, sizeof rbuf, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break;
            if (n > 0) {
                for (ssize_t i = 0; i < n && got + (size_t)i < sizeof head; i++)
                    head[got + (size_t)i] = (char)rbuf[i];
                got += (size_t)n;
            }
        }
    }
    close(c);
    if (got >= 12) {
        FZ_CHECK(!memcmp(head, "HTTP/1.1 ", 9) || !memcmp(head, "HTTP/1.0 ", 9));
        FZ_CHECK(memcmp(head + 9, "500", 3) != 0);
    }
    return 0;
}
