/* fuzz_disc.c — peer discovery answers (net/tracker.c, net/dht.c,
 * net/pex.c): HTTP tracker announce and scrape bodies, compact peer lists,
 * DHT KRPC datagrams (parsed, and handed to a live DHT node on loopback as
 * if received), ut_pex payloads.  Trackers, DHT nodes and peers are
 * strangers.  Input: byte 0 picks the parser, the rest is the payload. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "bencode.h"
#include "disc.h"

static uv_loop_t loop;
static zn_dht *dht;

static void dht_setup(void)
{
    if (dht)
        return;
    static const uint8_t id[20] = "zestfs-fuzz-dht-node";
    zn_dht_opts o = {.bind_ip = "127.0.0.1", .node_id = id};
    if (uv_loop_init(&loop) != 0 || zn_dht_new(&loop, &o, &dht) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t sel = data[0];
    uint8_t *p = fz_dup(data + 1, size - 1);
    size_t n = size - 1;
    switch (sel % 6) {
    case 0: {
        zn_announce_result r;
        char failure[256];
        memset(&r, 0, sizeof r);
        int rc = zn_tracker_parse_announce(p, n, &r, failure, sizeof failure);
        if (rc == 0)
            FZ_CHECK(r.npeers == 0 || r.peers);
        if (rc == -EPERM)
            FZ_CHECK(memchr(failure, 0, sizeof failure) != NULL);
        free(r.peers);
        break;
    }
    case 1: {
        uint8_t ih[3][20];
        memset(ih, 0, sizeof ih);
        for (int i = 0; i < 3; i++)
            ih[i][0] = (uint8_t)('a' + i);
        zn_scrape_entry e[3];
        (void)zn_tracker_parse_scrape(p, n, (const uint8_t(*)[20])ih, 1 + sel / 6 % 3, e);
        break;
    }
    case 2: {
        zn_krpc m;
        memset(&m, 0, sizeof m);
        if (zn_krpc_parse(p, n, &m) == 0) {
            FZ_CHECK(m.y == 'q' || m.y == 'r' || m.y == 'e');
            FZ_CHECK(m.tlen >= 1 && m.tlen <= 32);
            zb_free(m.root);
        }
        break;
    }
    case 3: {
        zn_pex x;
        memset(&x, 0, sizeof x);
        if (zn_pex_parse(p, n, &x) == 0) {
            FZ_CHECK(x.nadded == 0 || x.added);
            zn_pex_free(&x);
        }
        break;
    }
    case 4: {
        struct sockaddr_storage out[8];
        int c = zn_compact_parse(p, n, sel & 0x40 ? AF_INET6 : AF_INET, out, 8);
        FZ_CHECK(c == -EBADMSG || (c >= 0 && c <= 8));
        break;
    }
    case 5: {
        dht_setup();
        struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(9)};
        from.sin_addr.s_addr = htonl(0x7f000001u);
        zn_dht_input(dht, p, n, (const struct sockaddr *)&from);
        uv_run(&loop, UV_RUN_NOWAIT);
        break;
    }
    }
    free(p);
    return 0;
}
