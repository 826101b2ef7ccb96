/* test_tracker.c — swarm ids, tracker parsers, PEX codec (no arguments), and
 * a command-line client that tests/net/disc_tracker.py drives against
 * opentracker and scripted fake trackers:
 *
 *   test_tracker ids TYPE REPO_ID | zestxorb HEX64
 *   test_tracker announce URL IH_HEX PORT EVENT LEFT [BASE_MS MAX_TRIES [AGAIN_EVENT]]
 *   test_tracker scrape URL IH_HEX... [BASE_MS MAX_TRIES]  (hex args until a non-hex)
 *
 * announce prints "err=N interval=N min=N complete=N incomplete=N
 * peers=ip:port,... failure=TEXT" for each announce (AGAIN_EVENT: a second
 * one from the same client right after) and "stats sent=… retransmits=…
 * dropped=… connects=…".
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "../net/disc.h"
#include "t.h"

static void hex20(const char *s, uint8_t out[20])
{
    for (int i = 0; i < 20; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void tohex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
        snprintf(out, n, "%s:%d", ip, port);
    } else {
        const struct sockaddr_in6 *s = (const void *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, port);
    }
}

/* ---- unit tests --------------------------------------------------------------- */

static void test_swarm_ids(void)
{
    uint8_t id[20];
    char hex[41];
    zn_swarm_repo_id("model", "openai-community/gpt2", id);
    tohex(id, 20, hex);
    T_EQ_STR(hex, "cefcf82a7f9c2b2a7ecc74ed5fac0cf3d75f1d7f");
    zn_swarm_repo_id("dataset", "HuggingFaceFW/fineweb", id);
    tohex(id, 20, hex);
    T_EQ_STR(hex, "5e8c3634ed460a416dbadc45fda27b586e3b6a60");
    /* p2p.md §1.1 */
    xet_hash x;
    T_EQ_INT(xet_hash_from_string(
                 "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456", &x),
             0);
    char raw[65];
    xet_hex(x.b, 32, raw);
    T_EQ_STR(raw, "9078f6e5d4c3b2a15634129078563412563412efcdab9078563412efcdab9078");
    zn_swarm_xorb_id_zest(&x, id);
    tohex(id, 20, hex);
    T_EQ_STR(hex, "f634bfb98e3149c9d98b7b8a24a1f5e5967c65be");
}

static void test_url_escape(void)
{
    uint8_t b[6] = {0x00, 'A', '~', ' ', 0xff, '.'};
    char out[19];
    zn_url_escape(b, 6, out);
    T_EQ_STR(out, "%00A~%20%FF.");
}

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

static void test_parse_announce(void)
{
    zn_announce_result r;
    char fail[128];
    char a[64];
    T_EQ_INT(zn_tracker_parse_announce(
                 S("d8:completei2e10:incompletei1e8:intervali1800e12:min intervali900e"
                   "5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50"
                   "6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                   "\x01\x1a\xe2" "e"),
                 &r, fail, sizeof fail),
             0);
    T_EQ_INT(r.interval, 1800);
    T_EQ_INT(r.min_interval, 900);
    T_EQ_INT(r.complete, 2);
    T_EQ_INT(r.incomplete, 1);
    T_EQ_INT(r.npeers, 3);
    if (r.npeers == 3) {
        fmt_addr(&r.peers[0], a, sizeof a);
        T_EQ_STR(a, "127.0.0.1:6881");
        fmt_addr(&r.peers[1], a, sizeof a);
        T_EQ_STR(a, "10.0.0.2:80");
        fmt_addr(&r.peers[2], a, sizeof a);
        T_EQ_STR(a, "[::1]:6882");
    }
    free(r.peers);
    /* non-compact list of dicts */
    T_EQ_INT(zn_tracker_parse_announce(
                 S("d8:intervali60e5:peersld2:ip9:127.0.0.27:peer id20:aaaaaaaaaaaaaaaaaaaa"
                   "4:porti7000eed2:ip3:::14:porti7001eed2:ip5:bogus4:porti1eeee"),
                 &r, fail, sizeof fail),
             0);
    T_EQ_INT(r.npeers, 2);
    if (r.npeers == 2) {
        fmt_addr(&r.peers[0], a, sizeof a);
        T_EQ_STR(a, "127.0.0.2:7000");
        fmt_addr(&r.peers[1], a, sizeof a);
        T_EQ_STR(a, "[::1]:7001");
    }
    free(r.peers);
    /* failure, garbage, truncated lists, missing interval */
    T_EQ_INT(zn_tracker_parse_announce(S("d14:failure reason10:not to-daye"), &r, fail,
                                       sizeof fail),
             -EPERM);
    T_EQ_STR(fail, "not to-day");
    T_EQ_INT(zn_tracker_parse_announce(S("d8:intervali1"), &r, fail, sizeof fail), -EBADMSG);
    T_EQ_INT(zn_tracker_parse_announce(S("<html>"), &r, fail, sizeof fail), -EBADMSG);
    T_EQ_INT(zn_tracker_parse_announce(S("li1ee"), &r, fail, sizeof fail), -EBADMSG);
    T_EQ_INT(zn_tracker_parse_announce(S("d8:intervali60e5:peers7:\1\2\3\4\5\6\7e"), &r, fail,
                                       sizeof fail),
             -EBADMSG);
    T_EQ_INT(zn_tracker_parse_announce(S("d8:intervali60e6:peers66:123456e"), &r, fail,
                                       sizeof fail),
             -EBADMSG);
    T_EQ_INT(zn_tracker_parse_announce(S("d5:peers0:e"), &r, fail, sizeof fail), -EBADMSG);
}

static void test_parse_scrape(void)
{
    uint8_t ih[2][20];
    memset(ih[0], 'a', 20);
    memset(ih[1], 'b', 20);
    zn_scrape_entry e[2];
    T_EQ_INT(zn_tracker_parse_scrape(
                 S("d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei5e10:downloadedi7e"
                   "10:incompletei3eeee"),
                 (const uint8_t(*)[20])ih, 2, e),
             0);
    T_EQ_INT(e[0].complete, 5);
    T_EQ_INT(e[0].incomplete, 3);
    T_EQ_INT(e[0].downloaded, 7);
    T_EQ_INT(e[1].complete, 0);
    T_EQ_INT(zn_tracker_parse_scrape(S("d5:filesi1ee"), (const uint8_t(*)[20])ih, 2, e),
             -EBADMSG);
    T_EQ_INT(zn_tracker_parse_scrape(S("d14:failure reason1:xe"), (const uint8_t(*)[20])ih, 2,
                                     e),
             -EPERM);
}

static void test_pex(void)
{
    struct sockaddr_storage add[3], drop[1];
    uint8_t flags[3] = {0x01, 0x10, 0x02};
    memset(add, 0, sizeof add);
    memset(drop, 0, sizeof drop);
    uv_ip4_addr("10.1.2.3", 6881, (struct sockaddr_in *)&add[0]);
    uv_ip6_addr("fe80::1", 51413, (struct sockaddr_in6 *)&add[1]);
    uv_ip4_addr("192.168.0.9", 1, (struct sockaddr_in *)&add[2]);
    uv_ip4_addr("8.8.4.4", 443, (struct sockaddr_in *)&drop[0]);
    zb_buf b = {0};
    T_EQ_INT(zn_pex_encode(add, flags, 3, drop, 1, &b), 0);
    static const char want[] = "d5:added12:\x0a\x01\x02\x03\x1a\xe1\xc0\xa8\x00\x09\x00\x01"
                               "7:added.f2:\x01\x02"
                               "6:added618:\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\xc8\xd5"
                               "8:added6.f1:\x10"
                               "7:dropped6:\x08\x08\x04\x04\x01\xbb"
                               "8:dropped60:e";
    T_EQ_INT(b.len, sizeof want - 1);
    T_EQ_MEM(b.p, want, sizeof want - 1);
    zn_pex p;
    T_EQ_INT(zn_pex_parse(b.p, b.len, &p), 0);
    T_EQ_INT(p.nadded, 3);
    T_EQ_INT(p.ndropped, 1);
    char a[64];
    if (p.nadded == 3) {
        fmt_addr(&p.added[0], a, sizeof a);
        T_EQ_STR(a, "10.1.2.3:6881");
        fmt_addr(&p.added[1], a, sizeof a);
        T_EQ_STR(a, "192.168.0.9:1");
        fmt_addr(&p.added[2], a, sizeof a);
        T_EQ_STR(a, "[fe80::1]:51413");
        T_EQ_INT(p.added_flags[0], 1);
        T_EQ_INT(p.added_flags[1], 2);
        T_EQ_INT(p.added_flags[2], 0x10);
    }
    if (p.ndropped == 1) {
        fmt_addr(&p.dropped[0], a, sizeof a);
        T_EQ_STR(a, "8.8.4.4:443");
    }
    zn_pex_free(&p);
    free(b.p);
    /* malformed */
    T_EQ_INT(zn_pex_parse(S("d5:added5:12345e"), &p), -EBADMSG);
    T_EQ_INT(zn_pex_parse(S("d5:added6:1234567:added.f2:xxe"), &p), -EBADMSG);
    T_EQ_INT(zn_pex_parse(S("d5:addedi1ee"), &p), -EBADMSG);
    T_EQ_INT(zn_pex_parse(S("l5:addede"), &p), -EBADMSG);
    T_EQ_INT(zn_pex_parse(S("d5:added6:123456"), &p), -EBADMSG);
    T_EQ_INT(zn_pex_parse(S("de"), &p), 0);
    T_EQ_INT(p.nadded + p.ndropped, 0);
    zn_pex_free(&p);
    /* random bytes never crash */
    uint8_t buf[64];
    srand(7);
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(rand() % 64);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)"d5:added6:7:dropped.f:ei0123456789e"[rand() % 35];
        if (zn_pex_parse(buf, n, &p) == 0)
            zn_pex_free(&p);
        zn_announce_result r;
        if (zn_tracker_parse_announce(buf, n, &r, NULL, 0) == 0)
            free(r.peers);
    }
}

/* ---- CLI --------------------------------------------------------------------------- */

static uv_loop_t *loop;
static int pending;

static void print_announce(void *ud, int err, const zn_announce_result *r)
{
    (void)ud;
    printf("err=%d interval=%u min=%u complete=%u incomplete=%u peers=", err, r->interval,
           r->min_interval, r->complete, r->incomplete);
    for (size_t i = 0; i < r->npeers; i++) {
        char a[64];
        fmt_addr(&r->peers[i], a, sizeof a);
        printf("%s%s", i ? "," : "", a);
    }
    printf(" failure=%s\n", r->failure ? r->failure : "");
    fflush(stdout);
    pending--;
}

static void print_scrape(void *ud, int err, const zn_scrape_entry *e, size_t n)
{
    (void)ud;
    printf("err=%d", err);
    for (size_t i = 0; i < n; i++) {
        char h[41];
        tohex(e[i].info_hash, 20, h);
        printf(" %s:%u:%u:%u", h, e[i].complete, e[i].incomplete, e[i].downloaded);
    }
    printf("\n");
    fflush(stdout);
    pending--;
}

static int cli(int argc, char **argv)
{
    if (!strcmp(argv[1], "ids") && argc == 4) {
        uint8_t id[20];
        char hex[41];
        zn_swarm_repo_id(argv[2], argv[3], id);
        tohex(id, 20, hex);
        printf("%s\n", hex);
        return 0;
    }
    if (!strcmp(argv[1], "zestxorb") && argc == 3) {
        xet_hash x;
        uint8_t id[20];
        char hex[41];
        if (xet_hash_from_string(argv[2], &x))
            return 2;
        zn_swarm_xorb_id_zest(&x, id);
        tohex(id, 20, hex);
        printf("%s\n", hex);
        return 0;
    }
    loop = uv_default_loop();
    zn_http *http = zn_http_new(loop, NULL);
    zn_tracker_opts o = {.http = http};
    zn_tracker *t = NULL;
    int rc;
    if (!strcmp(argv[1], "announce") && argc >= 7) {
        if (argc >= 9) {
            o.udp_base_ms = (uint32_t)atoi(argv[7]);
            o.udp_max_tries = atoi(argv[8]);
        }
        rc = zn_tracker_new(loop, argv[2], &o, &t);
        if (rc) {
            printf("new=%d\n", rc);
            return 1;
        }
        zn_announce a = {0};
        hex20(argv[3], a.info_hash);
        memcpy(a.peer_id, "-ZF0001-", 8);
        for (int i = 8; i < 20; i++)
            a.peer_id[i] = (uint8_t)(argv[4][i % strlen(argv[4])] ^ i);
        a.port = (uint16_t)atoi(argv[4]);
        a.event = (zn_tracker_event)atoi(argv[5]);
        a.left = strtoull(argv[6], NULL, 10);
        a.numwant = 50;
        a.key = 0x1234abcd;
        pending = 1;
        rc = zn_tracker_announce(t, &a, print_announce, NULL);
        if (rc) {
            printf("start=%d\n", rc);
            pending = 0;
        }
        while (pending > 0 && uv_run(loop, UV_RUN_ONCE))
            ;
        if (argc >= 10) {
            a.event = (zn_tracker_event)atoi(argv[9]);
            pending = 1;
            rc = zn_tracker_announce(t, &a, print_announce, NULL);
            if (rc) {
                printf("again=%d\n", rc);
                pending = 0;
            }
            while (pending > 0 && uv_run(loop, UV_RUN_ONCE))
                ;
        }
    } else if (!strcmp(argv[1], "scrape") && argc >= 4) {
        uint8_t ih[74][20];
        int n = 0, i = 3;
        for (; i < argc && strlen(argv[i]) == 40 && n < 74; i++)
            hex20(argv[i], ih[n++]);
        if (i + 1 < argc) {
            o.udp_base_ms = (uint32_t)atoi(argv[i]);
            o.udp_max_tries = atoi(argv[i + 1]);
        }
        rc = zn_tracker_new(loop, argv[2], &o, &t);
        if (rc) {
            printf("new=%d\n", rc);
            return 1;
        }
        pending = 1;
        rc = zn_tracker_scrape(t, (const uint8_t(*)[20])ih, (size_t)n, print_scrape, NULL);
        if (rc) {
            printf("start=%d\n", rc);
            pending = 0;
        }
        while (pending > 0 && uv_run(loop, UV_RUN_ONCE))
            ;
    } else {
        fprintf(stderr, "usage: see the top of test_tracker.c\n");
        return 2;
    }
    zn_tracker_stats st = zn_tracker_get_stats(t);
    printf("stats sent=%llu retransmits=%llu dropped=%llu connects=%llu\n",
           (unsigned long long)st.sent, (unsigned long long)st.retransmits,
           (unsigned long long)st.dropped, (unsigned long long)st.connects);
    zn_tracker_free(t);
    zn_http_free(http);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return cli(argc, argv);
    T_RUN(test_swarm_ids);
    T_RUN(test_url_escape);
    T_RUN(test_parse_announce);
    T_RUN(test_parse_scrape);
    T_RUN(test_pex);
    return t_done();
}
