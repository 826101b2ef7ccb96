/* fuzz_udptracker.c — UDP tracker answers (BEP 15, net/tracker.c): a real
 * zn_tracker announces (or scrapes) to a fake tracker on loopback whose
 * datagrams are the input, so the whole receive path runs: connect answers,
 * announce answers with compact peers, scrape answers, errors, short,
 * oversized and mismatched datagrams.  Trackers are strangers.
 * Input: byte 0: bit 0 scrape (else announce; the tracker is on 127.0.0.1,
 * so peers are 6 bytes each); then datagrams, each a 2-byte
 * little-endian length, a flag byte (bit 0: put the request's transaction
 * id at bytes 4..8, so most answers match) and the bytes. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "disc.h"

static uv_loop_t loop;
static int srv = -1;
static uint16_t srv_port;
static int done;

static void setup(void)
{
    if (srv >= 0)
        return;
    if (uv_loop_init(&loop) != 0)
        abort();
    srv = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (srv < 0 || bind(srv, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(srv, (struct sockaddr *)&a, &al) != 0)
        abort();
    srv_port = ntohs(a.sin_port);
}

static void ann_cb(void *ud, int err, const zn_announce_result *r)
{
    (void)ud;
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "announce: %d, %zu peers\n", err, r->npeers);
    if (err == 0) {
        FZ_CHECK(r->npeers == 0 || r->peers);
        for (size_t i = 0; i < r->npeers; i++)
            FZ_CHECK(r->peers[i].ss_family == AF_INET || r->peers[i].ss_family == AF_INET6);
    }
    if (err == -EPERM)
        FZ_CHECK(r->failure != NULL);
    done = 1;
}

static void scr_cb(void *ud, int err, const zn_scrape_entry *e, size_t n)
{
    (void)ud;
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "scrape: %d, %zu entries\n", err, n);
    if (err == 0)
        FZ_CHECK(n == 2 && e);
    done = 1;
}

/* Run the loop until the fake tracker has a request (its transaction id
 * in *txid, its source in *from) or the operation ended; false when
 * neither happened. */
static bool await_request(uint32_t *txid, struct sockaddr_storage *from, socklen_t *fl)
{
    for (int i = 0; i < 200 && !done; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        struct pollfd pf = {.fd = srv, .events = POLLIN};
        if (poll(&pf, 1, 1) == 1) {
            uint8_t b[2048];
            *fl = sizeof *from;
            ssize_t n = recvfrom(srv, b, sizeof b, 0, (struct sockaddr *)from, fl);
            if (n >= 16) {
                memcpy(txid, b + 12, 4);
                return true;
            }
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    bool scrape = data[0] & 1;
    char url[64];
    snprintf(url, sizeof url, "udp://127.0.0.1:%u", srv_port);
    zn_tracker_opts o = {.udp_base_ms = 30, .udp_max_tries = 1};
    zn_tracker *t;
    if (zn_tracker_new(&loop, url, &o, &t) != 0)
        abort();
    done = 0;
    static const uint8_t ih[2][20] = {"fuzz-info-hash-0001", "fuzz-info-hash-0002"};
    if (scrape) {
        if (zn_tracker_scrape(t, ih, 2, scr_cb, NULL) != 0)
            abort();
    } else {
        zn_announce a = {.port = 6881, .left = 1, .numwant = 50};
        memcpy(a.info_hash, ih[0], 20);
        memcpy(a.peer_id, "-ZF0001-fuzzfuzzfuzz", 20);
        if (zn_tracker_announce(t, &a, ann_cb, NULL) != 0)
            abort();
    }
    size_t pos = 1;
    while (!done && pos + 3 <= size) {
        size_t len = data[pos] | (size_t)data[pos + 1] << 8;
        uint8_t flags = data[pos + 2];
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        uint32_t txid;
        struct sockaddr_storage from;
        socklen_t fl;
        if (!await_request(&txid, &from, &fl))
            break;
        uint8_t d[65536];
        memcpy(d, data + pos, len);
        if ((flags & 1) && len >= 8)
            memcpy(d + 4, &txid, 4);
        (void)sendto(srv, d, len, 0, (struct sockaddr *)&from, fl);
        pos += len;
        /* let the tracker take it in before the next round */
        for (int i = 0; i < 3; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    zn_tracker_free(t);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++)
        ;
    /* drop what the tracker sent last, so the next input starts clean */
    uint8_t b[2048];
    while (recv(srv, b, sizeof b, 0) > 0)
        ;
    return 0;
}
