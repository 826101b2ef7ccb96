/* test_dht.c — the Mainline DHT node: several of our nodes in one process
 * (routing table, lookups, announce/get_peers, tokens, persistence,
 * malformed KRPC), and a tool mode that tests/net/disc_dht.py drives
 * against python3-libtorrent DHT nodes:
 *
 *   test_dht node BOOT[,BOOT...] ANNOUNCE_IH_HEX ANNOUNCE_PORT
 *     prints "port N", bootstraps ("bootstrap good=N"), announces
 *     ("announced acks=N"), then reads commands on stdin:
 *       getpeers IH_HEX  -> "peers ip:port,... err=N"
 *       ping PORT        -> "ping err=N n=N"   (127.0.0.1:PORT)
 *       stats            -> "stats queries_in=N responses_in=N stored_peers=N"
 *       quit
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <unistd.h>

#include "../net/disc.h"
#include "t.h"

static uv_loop_t *loop;

static void run_until(int *flag, int want)
{
    uint64_t start = uv_now(loop);
    while (*flag < want && uv_now(loop) - start < 60000)
        uv_run(loop, UV_RUN_ONCE);
}

static void hex20(const char *s, uint8_t out[20])
{
    for (int i = 0; i < 20; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr_in *s = (const void *)ss;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%d", ip, ntohs(s->sin_port));
}

/* ---- callbacks -------------------------------------------------------------- */

typedef struct res {
    int calls, err;
    unsigned n;
    char peers[1024];
    int npeers;
} res;

static void done_cb(void *ud, int err, unsigned n)
{
    res *r = ud;
    r->err = err;
    r->n = n;
    r->calls++;
}

static void peers_cb(void *ud, int err, const struct sockaddr_storage *p, size_t n, bool done)
{
    res *r = ud;
    for (size_t i = 0; i < n; i++) {
        char a[64];
        fmt_addr(&p[i], a, sizeof a);
        size_t l = strlen(r->peers);
        snprintf(r->peers + l, sizeof r->peers - l, "%s%s", r->npeers ? "," : "", a);
        r->npeers++;
    }
    if (done) {
        r->err = err;
        r->calls++;
    }
}

/* ---- a swarm of our own nodes ---------------------------------------------------- */

#define NN 12
#define K_MIN 8

static zn_dht *nodes[NN];

static void make_nodes(void)
{
    char boot[32];
    for (int i = 0; i < NN; i++) {
        const char *bl[2] = {boot, NULL};
        zn_dht_opts o = {.bind_ip = "127.0.0.1", .query_timeout_ms = 1000,
                         .bootstrap = i ? bl : NULL,
                         .announce_interval_ms = i == 3 ? 400 : 0 /* re-announce test */};
        T_EQ_INT(zn_dht_new(loop, &o, &nodes[i]), 0);
        if (i == 0)
            snprintf(boot, sizeof boot, "127.0.0.1:%d", zn_dht_port(nodes[0]));
    }
    res r[NN] = {{0}};
    /* node 0 needs to learn of the others: they query it while bootstrapping */
    for (int i = 1; i < NN; i++)
        T_EQ_INT(zn_dht_bootstrap(nodes[i], done_cb, &r[i]), 0);
    for (int i = 1; i < NN; i++) {
        run_until(&r[i].calls, 1);
        T_EQ_INT(r[i].calls, 1);
        T_EQ_INT(r[i].err, 0);
        T_TRUE(r[i].n >= 1);
    }
    /* a second round so that early nodes learn of late ones */
    for (int i = 1; i < NN; i++) {
        memset(&r[i], 0, sizeof r[i]);
        T_EQ_INT(zn_dht_bootstrap(nodes[i], done_cb, &r[i]), 0);
        run_until(&r[i].calls, 1);
    }
}

static void free_nodes(void)
{
    for (int i = 0; i < NN; i++)
        zn_dht_free(nodes[i]);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_swarm(void)
{
    make_nodes();
    /* routing tables: ids distinct, closest() sorted by XOR distance */
    for (int i = 0; i < NN; i++)
        for (int j = i + 1; j < NN; j++)
            T_TRUE(memcmp(zn_dht_id(nodes[i]), zn_dht_id(nodes[j]), 20) != 0);
    zn_dht_stats st = zn_dht_get_stats(nodes[0]);
    T_TRUE(st.nodes >= K_MIN && st.nodes <= NN - 1); /* a full bucket may turn some away */
    T_TRUE(zn_dht_get_stats(nodes[5]).good_nodes >= 3);
    uint8_t target[20], ids[16][20];
    memset(target, 0x5a, 20);
    size_t n = zn_dht_closest(nodes[0], target, ids, NULL, 16);
    T_EQ_INT(n, st.nodes);
    for (size_t i = 1; i < n; i++) {
        int cmp = 0;
        for (int b = 0; b < 20 && !cmp; b++)
            cmp = (ids[i - 1][b] ^ target[b]) - (ids[i][b] ^ target[b]);
        T_TRUE(cmp < 0);
    }
    /* node 3 announces a repo swarm, node 9 finds it */
    uint8_t ih[20];
    zn_swarm_repo_id("model", "zestfs-test/dht", ih);
    res ra = {0}, rg = {0};
    T_EQ_INT(zn_dht_announce(nodes[3], ih, 45678, done_cb, &ra), 0);
    T_EQ_INT(ra.calls, 0); /* never from inside the start call */
    run_until(&ra.calls, 1);
    T_EQ_INT(ra.err, 0);
    T_TRUE(ra.n >= 3);
    size_t stored = 0;
    for (int i = 0; i < NN; i++)
        stored += zn_dht_get_stats(nodes[i]).stored_peers;
    T_EQ_INT(stored, ra.n);
    uint64_t qo = zn_dht_get_stats(nodes[9]).queries_out, t0 = uv_hrtime();
    T_EQ_INT(zn_dht_get_peers(nodes[9], ih, peers_cb, &rg), 0);
    T_EQ_INT(rg.calls, 0);
    run_until(&rg.calls, 1);
    fprintf(stderr, "get_peers lookup over %d nodes: %llu queries, %.1f ms; announce acks %u\n",
            NN, (unsigned long long)(zn_dht_get_stats(nodes[9]).queries_out - qo),
            (double)(uv_hrtime() - t0) / 1e6, ra.n);
    T_EQ_INT(rg.err, 0);
    T_EQ_STR(rg.peers, "127.0.0.1:45678");
    /* re-announced periodically (node 3: every 400 ms) until unannounced */
    uint64_t q0 = 0, q1 = 0, start = uv_now(loop);
    for (int i = 0; i < NN; i++)
        q0 += zn_dht_get_stats(nodes[i]).queries_in;
    while (q1 < q0 + ra.n && uv_now(loop) - start < 20000) {
        uv_run(loop, UV_RUN_ONCE);
        q1 = 0;
        for (int i = 0; i < NN; i++)
            q1 += zn_dht_get_stats(nodes[i]).queries_in;
    }
    T_TRUE(q1 >= q0 + ra.n); /* at least another lookup + announce round */
    zn_dht_unannounce(nodes[3], ih);
    /* implied port: the announcer's UDP port */
    uint8_t ih2[20];
    zn_swarm_repo_id("dataset", "zestfs-test/implied", ih2);
    memset(&ra, 0, sizeof ra);
    memset(&rg, 0, sizeof rg);
    T_EQ_INT(zn_dht_announce(nodes[4], ih2, 0, done_cb, &ra), 0);
    run_until(&ra.calls, 1);
    T_EQ_INT(zn_dht_get_peers(nodes[7], ih2, peers_cb, &rg), 0);
    run_until(&rg.calls, 1);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", zn_dht_port(nodes[4]));
    T_EQ_STR(rg.peers, want);
    /* unknown hash: lookup ends with no peers */
    uint8_t ih3[20];
    memset(ih3, 0xee, 20);
    memset(&rg, 0, sizeof rg);
    T_EQ_INT(zn_dht_get_peers(nodes[2], ih3, peers_cb, &rg), 0);
    run_until(&rg.calls, 1);
    T_EQ_INT(rg.err, 0);
    T_EQ_INT(rg.npeers, 0);
    /* ping */
    res rp = {0};
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", zn_dht_port(nodes[1]), &a);
    T_EQ_INT(zn_dht_ping(nodes[0], (struct sockaddr *)&a, done_cb, &rp), 0);
    run_until(&rp.calls, 1);
    T_EQ_INT(rp.err, 0);
    T_EQ_INT(rp.n, 1);
    /* free with a lookup in flight: -ECANCELED from inside the free */
    memset(&rg, 0, sizeof rg);
    T_EQ_INT(zn_dht_get_peers(nodes[11], ih3, peers_cb, &rg), 0);
    zn_dht_free(nodes[11]);
    T_EQ_INT(rg.calls, 1);
    T_EQ_INT(rg.err, -ECANCELED);
    nodes[11] = NULL;
    free_nodes();
}

/* ---- tokens ------------------------------------------------------------------ */

static size_t krpc_announce(uint8_t *out, const uint8_t id[20], const uint8_t ih[20],
                            const uint8_t *tok, size_t toklen, int port)
{
    zb_buf b = {0};
    zb_dict(&b);
    zb_cstr(&b, "a");
    zb_dict(&b);
    zb_cstr(&b, "id");
    zb_str(&b, id, 20);
    zb_cstr(&b, "info_hash");
    zb_str(&b, ih, 20);
    zb_cstr(&b, "port");
    zb_int(&b, port);
    zb_cstr(&b, "token");
    zb_str(&b, tok, toklen);
    zb_end(&b);
    zb_cstr(&b, "q");
    zb_cstr(&b, "announce_peer");
    zb_cstr(&b, "t");
    zb_cstr(&b, "aa");
    zb_cstr(&b, "y");
    zb_cstr(&b, "q");
    zb_end(&b);
    memcpy(out, b.p, b.len);
    size_t n = b.len;
    free(b.p);
    return n;
}

static void test_tokens(void)
{
    zn_dht *d;
    zn_dht_opts o = {.bind_ip = "127.0.0.1"};
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    struct sockaddr_in from, other;
    uv_ip4_addr("127.0.0.9", 9, &from); /* answers go to the discard port */
    uv_ip4_addr("127.0.0.10", 9, &other);
    uint8_t id[20], ih[20], tok[8], pkt[512];
    memset(id, 0x11, 20);
    memset(ih, 0x22, 20);
    zn_dht_token_for(d, (struct sockaddr *)&from, tok);
    struct sockaddr_storage got[4];
    /* wrong token */
    uint8_t bad[8];
    memcpy(bad, tok, 8);
    bad[0] ^= 1;
    zn_dht_input(d, pkt, krpc_announce(pkt, id, ih, bad, 8, 1000), (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 4), 0);
    T_EQ_INT(zn_dht_get_stats(d).bad_tokens, 1);
    /* a token given to another address */
    zn_dht_input(d, pkt, krpc_announce(pkt, id, ih, tok, 8, 1000), (struct sockaddr *)&other);
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 4), 0);
    T_EQ_INT(zn_dht_get_stats(d).bad_tokens, 2);
    /* right token, also after one rotation */
    zn_dht_input(d, pkt, krpc_announce(pkt, id, ih, tok, 8, 1000), (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 4), 1);
    zn_dht_rotate_secret(d);
    zn_dht_input(d, pkt, krpc_announce(pkt, id, ih, tok, 8, 1001), (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 4), 2);
    /* expired after two rotations */
    zn_dht_rotate_secret(d);
    zn_dht_input(d, pkt, krpc_announce(pkt, id, ih, tok, 8, 1002), (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 4), 2);
    T_EQ_INT(zn_dht_get_stats(d).bad_tokens, 3);
    /* short token */
    zn_dht_input(d, pkt, krpc_announce(pkt, id, ih, tok, 4, 1003), (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_get_stats(d).bad_tokens, 4);
    /* bounded store: max_peers per hash */
    zn_dht *s;
    zn_dht_opts o2 = {.bind_ip = "127.0.0.1", .max_peers = 3, .max_hashes = 2};
    T_EQ_INT(zn_dht_new(loop, &o2, &s), 0);
    zn_dht_token_for(s, (struct sockaddr *)&from, tok);
    for (int p = 1; p <= 5; p++)
        zn_dht_input(s, pkt, krpc_announce(pkt, id, ih, tok, 8, p), (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_stored_peers(s, ih, got, 4), 3);
    for (int h = 0; h < 4; h++) {
        ih[0] = (uint8_t)(0x40 + h);
        zn_dht_input(s, pkt, krpc_announce(pkt, id, ih, tok, 8, 7), (struct sockaddr *)&from);
    }
    T_EQ_INT(zn_dht_get_stats(s).stored_hashes, 2);
    zn_dht_free(s);
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- persistence ---------------------------------------------------------------- */

static void test_persist(void)
{
    char dir[] = "/tmp/zfs-dht-XXXXXX", path[64];
    T_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/dht.state", dir);
    zn_dht *a, *b, *c;
    zn_dht_opts oa = {.bind_ip = "127.0.0.1", .state_path = path};
    zn_dht_opts ob = {.bind_ip = "127.0.0.1"};
    T_EQ_INT(zn_dht_new(loop, &ob, &b), 0);
    char boot[32];
    snprintf(boot, sizeof boot, "127.0.0.1:%d", zn_dht_port(b));
    const char *bl[2] = {boot, NULL};
    oa.bootstrap = bl;
    T_EQ_INT(zn_dht_new(loop, &oa, &a), 0);
    res r = {0};
    T_EQ_INT(zn_dht_bootstrap(a, done_cb, &r), 0);
    run_until(&r.calls, 1);
    T_EQ_INT(r.n, 1);
    uint8_t id[20];
    memcpy(id, zn_dht_id(a), 20);
    zn_dht_free(a); /* saves */
    uv_run(loop, UV_RUN_NOWAIT);
    /* reload: same id, the node back in the table, and pinged (good again) */
    zn_dht_opts oc = {.bind_ip = "127.0.0.1", .state_path = path};
    T_EQ_INT(zn_dht_new(loop, &oc, &c), 0);
    T_EQ_MEM(zn_dht_id(c), id, 20);
    T_EQ_INT(zn_dht_get_stats(c).nodes, 1);
    uint8_t ids[2][20];
    T_EQ_INT(zn_dht_closest(c, id, ids, NULL, 2), 1);
    T_EQ_MEM(ids[0], zn_dht_id(b), 20);
    uint64_t start = uv_now(loop);
    while (zn_dht_get_stats(c).good_nodes == 0 && uv_now(loop) - start < 10000)
        uv_run(loop, UV_RUN_ONCE);
    T_EQ_INT(zn_dht_get_stats(c).good_nodes, 1);
    zn_dht_free(c);
    uv_run(loop, UV_RUN_NOWAIT);
    /* a garbled state file is ignored: a new random id, no nodes */
    FILE *f = fopen(path, "w");
    fputs("zestfs-dht 1\nid zz\nnode 12 x 0\nnode 0101010101010101010101010101010101010101 "
          "1.2.3.4 0\n",
          f);
    fclose(f);
    T_EQ_INT(zn_dht_new(loop, &oc, &c), 0);
    T_TRUE(memcmp(zn_dht_id(c), id, 20) != 0);
    T_EQ_INT(zn_dht_get_stats(c).nodes, 0);
    zn_dht_free(c);
    zn_dht_free(b);
    uv_run(loop, UV_RUN_DEFAULT);
    unlink(path);
    rmdir(dir);
}

/* ---- malformed KRPC ----------------------------------------------------------------- */

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

static void test_malformed(void)
{
    zn_krpc m;
    static const char id[] = "aaaaaaaaaaaaaaaaaaaa";
    (void)id;
    T_EQ_INT(zn_krpc_parse(S("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"), &m),
             0);
    T_EQ_INT(m.y, 'q');
    zb_free(m.root);
    const char *bad[] = {
        "",                                                      /* empty */
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:q", /* truncated */
        "le",                                                    /* not a dict */
        "d1:q4:ping1:t2:aa1:y1:qe",                              /* no a */
        "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe",                /* short id */
        "d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe",                  /* id not a string */
        "d1:ai1e1:q4:ping1:t2:aa1:y1:qe",                        /* a not a dict */
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:qi1e1:t2:aa1:y1:qe", /* q not a string */
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:y1:qe",     /* no t */
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t0:1:y1:qe", /* empty t */
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:ze", /* unknown y */
        "d1:rd2:id2:xxe1:t2:aa1:y1:re",                          /* r with short id */
        "d1:eli201ee1:t2:aa1:y1:ee",                             /* fine, see below */
        "d1:e3:abc1:t2:aa1:y1:ee",                               /* e not a list */
        "d1:eLe1:t2:aa1:y1:ee",                                  /* garbage */
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qextra", /* trailing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = zn_krpc_parse((const uint8_t *)bad[i], strlen(bad[i]), &m);
        if (i == 12) {
            T_EQ_INT(rc, 0);
            T_EQ_INT(m.ecode, 201);
            zb_free(m.root);
            continue;
        }
        T_EQ_INT(rc, -EBADMSG);
        T_TRUE(m.root == NULL);
    }
    uint8_t big[3000];
    memset(big, 'x', sizeof big);
    T_EQ_INT(zn_krpc_parse(big, sizeof big, &m), -EMSGSIZE);

    /* the node drops them all, answers malformed queries with 203, unknown with 204 */
    zn_dht *d;
    zn_dht_opts o = {.bind_ip = "127.0.0.1"};
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    struct sockaddr_in from;
    uv_ip4_addr("127.0.0.9", 9, &from);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        zn_dht_input(d, (const uint8_t *)bad[i], strlen(bad[i]), (struct sockaddr *)&from);
    zn_dht_input(d, big, sizeof big, (struct sockaddr *)&from);
    zn_dht_stats st = zn_dht_get_stats(d);
    /* all, the well-formed error too (no such transaction), and the oversized one */
    T_EQ_INT(st.dropped, sizeof bad / sizeof *bad + 1);
    T_EQ_INT(st.queries_in, 0);
    zn_dht_input(d, S("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:targeti1ee1:q9:find_node1:t2:aa1:y1:qe"),
                 (struct sockaddr *)&from);
    zn_dht_input(d, S("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q5:vote!1:t2:aa1:y1:qe"),
                 (struct sockaddr *)&from);
    T_EQ_INT(zn_dht_get_stats(d).queries_in, 2);
    /* random mutations of valid messages never crash */
#define R_SEED                                                                             \
    "d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes26:cccccccccccccccccccc\x7f\0\0\x01\0\x09"        \
    "5:token4:abcd6:valuesl6:\x7f\0\0\x01\0\x09"                                             \
    "ee1:t2:aa1:y1:re"
    static const char *seeds[] = {
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa9:info_hash20:bbbbbbbbbbbbbbbbbbbbe1:q9:get_peers1:t2:aa1:y1:qe",
        "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa9:info_hash20:bbbbbbbbbbbbbbbbbbbb4:porti9e5:token8:xxxxxxxxe1:q13:announce_peer1:t2:aa1:y1:qe",
        R_SEED,
    };
    srand(11);
    uint8_t buf[512];
    for (int it = 0; it < 30000; it++) {
        const char *sd = seeds[it % 3];
        size_t n = it % 3 == 2 ? sizeof R_SEED - 1 : strlen(sd);
        memcpy(buf, sd, n);
        int muts = 1 + rand() % 4;
        for (int k = 0; k < muts; k++) {
            int op = rand() % 3;
            size_t pos = (size_t)rand() % n;
            if (op == 0)
                buf[pos] = (uint8_t)rand();
            else if (op == 1 && n > 1)
                n = pos + 1;
            else
                buf[pos] = (uint8_t)"0123456789:deil"[rand() % 15];
        }
        zn_dht_input(d, buf, n, (struct sockaddr *)&from);
        if (zn_krpc_parse(buf, n, &m) == 0)
            zb_free(m.root);
    }
    T_TRUE(zn_dht_get_stats(d).dropped > 1000);
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- a lookup that never runs out of nodes ends by its deadline ----------- */

#define NLIARS 200
static uv_udp_t liars[NLIARS];
static uint8_t liar_target[20];
typedef struct liar_reply {
    int from, to;               /* liar answering, liar it names */
    struct sockaddr_in dst;
    uint8_t t[32];
    size_t tlen;
} liar_reply;
static liar_reply pend[4 * NLIARS];
static int npend, liars_asked;
static uv_timer_t liar_timer;

static void liar_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    static char buf[2048];
    b->base = buf;
    b->len = n < sizeof buf ? n : sizeof buf;
}

static void liar_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags)
{
    (void)flags;
    zn_krpc m;
    if (n <= 0 || !from || zn_krpc_parse((const uint8_t *)b->base, (size_t)n, &m) != 0)
        return;
    int i = (int)(u - liars);
    if (m.y == 'q' && npend < (int)(sizeof pend / sizeof *pend) && m.tlen <= 32) {
        liar_reply *r = &pend[npend++];
        r->from = i;
        r->to = i + 1 < NLIARS ? i + 1 : i;
        memcpy(&r->dst, from, sizeof r->dst);
        memcpy(r->t, m.t, m.tlen);
        r->tlen = m.tlen;
        liars_asked++;
    }
    zb_free(m.root);
}

/* liar k's id: the target with the last 4 bytes XOR (NLIARS - k): each named
 * node is closer than the one naming it, so the lookup always goes on */
static void liar_id(int k, uint8_t id[20])
{
    memcpy(id, liar_target, 20);
    uint32_t x = (uint32_t)(NLIARS - k);
    for (int j = 0; j < 4; j++)
        id[16 + j] ^= (uint8_t)(x >> (24 - 8 * j));
}

static void liar_send_done(uv_udp_send_t *s, int st)
{
    (void)st;
    free(s);
}

static void liar_tick(uv_timer_t *t)
{
    (void)t;
    for (int k = 0; k < npend; k++) {
        liar_reply *r = &pend[k];
        uint8_t msg[256], id[20], nid[20];
        liar_id(r->from, id);
        liar_id(r->to, nid);
        struct sockaddr_in na;
        int nl = sizeof na;
        uv_udp_getsockname(&liars[r->to], (struct sockaddr *)&na, &nl);
        size_t o = 0;
        o += (size_t)sprintf((char *)msg, "d1:rd2:id20:");
        memcpy(msg + o, id, 20), o += 20;
        o += (size_t)sprintf((char *)msg + o, "5:nodes26:");
        memcpy(msg + o, nid, 20), o += 20;
        memcpy(msg + o, &na.sin_addr, 4), o += 4;
        memcpy(msg + o, &na.sin_port, 2), o += 2;
        o += (size_t)sprintf((char *)msg + o, "e1:t%zu:", r->tlen);
        memcpy(msg + o, r->t, r->tlen), o += r->tlen;
        o += (size_t)sprintf((char *)msg + o, "1:y1:re");
        uv_udp_send_t *sr = malloc(sizeof *sr);
        uv_buf_t b = uv_buf_init((char *)msg, (unsigned)o);
        if (uv_udp_send(sr, &liars[r->from], &b, 1, (const struct sockaddr *)&r->dst,
                        liar_send_done) != 0)
            free(sr);
    }
    npend = 0;
}

static void test_endless(void)
{
    /* 200 nodes on 127.0.0.2.., each answering after up to 100 ms and naming
     * the next: about 20 s of lookup without a deadline */
    int port = 0;
    for (int i = 0; i < NLIARS; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.0.%d", 2 + i);
        struct sockaddr_in a;
        uv_ip4_addr(ip, port, &a);
        T_EQ_INT(uv_udp_init(loop, &liars[i]), 0);
        T_EQ_INT(uv_udp_bind(&liars[i], (const struct sockaddr *)&a, 0), 0);
        if (i == 0) {
            int l = sizeof a;
            uv_udp_getsockname(&liars[0], (struct sockaddr *)&a, &l);
            port = ntohs(a.sin_port);
        }
        uv_udp_recv_start(&liars[i], liar_alloc, liar_recv);
    }
    uv_timer_init(loop, &liar_timer);
    uv_timer_start(&liar_timer, liar_tick, 100, 100);
    char boot[40];
    snprintf(boot, sizeof boot, "127.0.0.2:%d", port);
    const char *bl[2] = {boot, NULL};
    zn_dht_opts o = {.bind_ip = "127.0.0.1", .bootstrap = bl, .query_timeout_ms = 300};
    zn_dht *d;
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    memcpy(liar_target, zn_dht_id(d), 20);
    res r = {0};
    uint64_t t0 = uv_now(loop);
    T_EQ_INT(zn_dht_bootstrap(d, done_cb, &r), 0);
    run_until(&r.calls, 1);
    uint64_t ms = uv_now(loop) - t0;
    printf("endless lookup: ended after %" PRIu64 " ms, %d liars asked\n", ms, liars_asked);
    T_EQ_INT(r.calls, 1);
    T_EQ_INT(r.err, 0);
    T_TRUE(liars_asked >= 10);       /* it did go down the chain */
    T_TRUE(liars_asked < NLIARS);    /* and did not reach its end */
    T_TRUE(ms < 60000);              /* ended (the count above is the point; figure: timing_bench.sh) */
    zn_dht_free(d);
    uv_close((uv_handle_t *)&liar_timer, NULL);
    for (int i = 0; i < NLIARS; i++)
        uv_close((uv_handle_t *)&liars[i], NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- tool mode ---------------------------------------------------------------------- */

static int tool(int argc, char **argv)
{
    if (argc != 5 || strcmp(argv[1], "node"))
        return 2;
    const char *bl[17] = {0};
    char *boots = strdup(argv[2]);
    int nb = 0;
    for (char *tok = strtok(boots, ","); tok && nb < 16; tok = strtok(NULL, ","))
        bl[nb++] = tok;
    zn_dht *d;
    zn_dht_opts o = {.bind_ip = "127.0.0.1", .bootstrap = bl, .query_timeout_ms = 1500};
    if (zn_dht_new(loop, &o, &d))
        return 1;
    printf("port %d\n", zn_dht_port(d));
    fflush(stdout);
    res r = {0};
    zn_dht_bootstrap(d, done_cb, &r);
    run_until(&r.calls, 1);
    printf("bootstrap good=%u\n", r.n);
    fflush(stdout);
    uint8_t ih[20];
    hex20(argv[3], ih);
    memset(&r, 0, sizeof r);
    zn_dht_announce(d, ih, (uint16_t)atoi(argv[4]), done_cb, &r);
    run_until(&r.calls, 1);
    printf("announced err=%d acks=%u\n", r.err, r.n);
    fflush(stdout);
    /* commands on stdin, while the loop keeps serving queries */
    char line[256];
    for (;;) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(0, &fds);
        struct timeval tv = {0, 20000};
        uv_run(loop, UV_RUN_NOWAIT);
        if (select(1, &fds, NULL, NULL, &tv) <= 0)
            continue;
        if (!fgets(line, sizeof line, stdin) || !strncmp(line, "quit", 4))
            break;
        if (!strncmp(line, "getpeers ", 9) && strlen(line) >= 49) {
            hex20(line + 9, ih);
            memset(&r, 0, sizeof r);
            zn_dht_get_peers(d, ih, peers_cb, &r);
            run_until(&r.calls, 1);
            printf("peers %s err=%d\n", r.peers, r.err);
        } else if (!strncmp(line, "ping ", 5)) {
            struct sockaddr_in a;
            uv_ip4_addr("127.0.0.1", atoi(line + 5), &a);
            memset(&r, 0, sizeof r);
            zn_dht_ping(d, (struct sockaddr *)&a, done_cb, &r);
            run_until(&r.calls, 1);
            printf("ping err=%d n=%u\n", r.err, r.n);
        } else if (!strncmp(line, "stats", 5)) {
            zn_dht_stats st = zn_dht_get_stats(d);
            printf("stats queries_in=%llu responses_in=%llu stored_peers=%zu good=%zu\n",
                   (unsigned long long)st.queries_in, (unsigned long long)st.responses_in,
                   st.stored_peers, st.good_nodes);
        }
        fflush(stdout);
    }
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
    free(boots);
    return 0;
}

/* ---- hostile sources (issue #19): crafted UDP datagrams on loopback ---------- */

#include <poll.h>

/* A UDP socket bound to ip:0 (any 127.0.0.0/8 address works on Linux). */
static int udp_at(const char *ip)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr(ip, 0, &a);
    T_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static uint16_t udp_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static void udp_to(int fd, zn_dht *d, const void *p, size_t n)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", zn_dht_port(d), &a);
    T_EQ_INT(sendto(fd, p, n, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)n);
}

/* Runs the loop until a datagram waits on fd (returns its length) or ms pass (0). */
static size_t udp_wait(int fd, uint8_t *buf, size_t cap, int ms)
{
    uv_update_time(loop);
    uint64_t start = uv_now(loop);
    for (;;) {
        uv_run(loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n > 0)
            return (size_t)n;
        if (uv_now(loop) - start > (uint64_t)ms)
            return 0;
        poll(NULL, 0, 2);
        uv_update_time(loop);
    }
}

/* A query {a:{id, key:val20}, q:method, t:tid, y:q}; key NULL: none. */
static size_t krpc_q(uint8_t *out, const char *method, const uint8_t id[20], const char *key,
                     const uint8_t val[20], const char *tid)
{
    zb_buf b = {0};
    zb_dict(&b);
    zb_cstr(&b, "a");
    zb_dict(&b);
    zb_cstr(&b, "id");
    zb_str(&b, id, 20);
    if (key) {
        zb_cstr(&b, key);
        zb_str(&b, val, 20);
    }
    zb_end(&b);
    zb_cstr(&b, "q");
    zb_cstr(&b, method);
    zb_cstr(&b, "t");
    zb_cstr(&b, tid);
    zb_cstr(&b, "y");
    zb_cstr(&b, "q");
    zb_end(&b);
    memcpy(out, b.p, b.len);
    size_t n = b.len;
    free(b.p);
    return n;
}

/* Drains fd for up to ms: answers every ping query of the node (as id when
 * answer) and returns the first answer (y=r) seen, copied into ans. */
static size_t pump_peer(int fd, zn_dht *d, const uint8_t id[20], bool answer, uint8_t *ans,
                        size_t cap, int ms, int *pings)
{
    uint8_t buf[2048];
    size_t got = 0, n;
    uv_update_time(loop);
    uint64_t start = uv_now(loop);
    while (uv_now(loop) - start < (uint64_t)ms) {
        if (!(n = udp_wait(fd, buf, sizeof buf, 50)))
            continue;
        zn_krpc m;
        if (zn_krpc_parse(buf, n, &m) < 0)
            continue;
        if (m.y == 'q' && m.qlen == 4 && !memcmp(m.q, "ping", 4)) {
            if (pings)
                ++*pings;
            if (answer) {
                zb_buf b = {0};
                zb_dict(&b);
                zb_cstr(&b, "r");
                zb_dict(&b);
                zb_cstr(&b, "id");
                zb_str(&b, id, 20);
                zb_end(&b);
                zb_cstr(&b, "t");
                zb_str(&b, m.t, m.tlen);
                zb_cstr(&b, "y");
                zb_cstr(&b, "r");
                zb_end(&b);
                udp_to(fd, d, b.p, b.len);
                free(b.p);
            }
        } else if (m.y == 'r' && !got && n <= cap) {
            memcpy(ans, buf, n);
            got = n;
        }
        zb_free(m.root);
        if (got && (!pings || *pings))
            break;
    }
    /* let the node take in what we sent */
    for (int i = 0; i < 20; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        poll(NULL, 0, 1);
    }
    return got;
}

/* an id sharing `bits` leading bits with base (then one differing bit, then fill) */
static void id_near(const uint8_t base[20], int bits, uint8_t fill, uint8_t out[20])
{
    memset(out, fill, 20);
    for (int i = 0; i < bits; i++)
        out[i / 8] = (uint8_t)((out[i / 8] & ~(0x80 >> i % 8)) | (base[i / 8] & (0x80 >> i % 8)));
    out[bits / 8] = (uint8_t)((out[bits / 8] & ~(0x80 >> bits % 8)) |
                              (~base[bits / 8] & (0x80 >> bits % 8)));
}

static bool nodes_have(const uint8_t *ans, size_t n, const uint8_t id[20], size_t *count)
{
    zn_krpc m;
    bool found = false;
    *count = 0;
    if (zn_krpc_parse(ans, n, &m) < 0)
        return false;
    const uint8_t *nodes;
    size_t nl;
    if (m.y == 'r' && zb_get_str(m.args, "nodes", &nodes, &nl))
        for (size_t off = 0; off + 26 <= nl; off += 26, ++*count)
            found |= !memcmp(nodes + off, id, 20);
    zb_free(m.root);
    return found;
}

/* A query naming a known node's id from another address does not move it. */
static void test_spoofed_address(void)
{
    zn_dht *d;
    zn_dht_opts o = {.bind_ip = "127.0.0.1"};
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    int fa = udp_at("127.0.0.1"), fs = udp_at("127.0.0.2");
    uint8_t ida[20], pkt[512], ans[2048];
    id_near(zn_dht_id(d), 40, 0xa5, ida);
    /* A queries, is pinged back, answers: a confirmed node at A's address */
    int pings = 0;
    udp_to(fa, d, pkt, krpc_q(pkt, "ping", ida, NULL, NULL, "a1"));
    T_TRUE(pump_peer(fa, d, ida, true, ans, sizeof ans, 10000, &pings) > 0);
    T_EQ_INT(pings, 1);
    T_EQ_INT(zn_dht_get_stats(d).good_nodes, 1);
    struct sockaddr_storage at[2];
    uint8_t ids[2][20];
    T_EQ_INT(zn_dht_closest(d, ida, ids, at, 2), 1);
    T_EQ_INT(ntohs(((struct sockaddr_in *)&at[0])->sin_port), udp_port(fa));
    /* the spoofer claims A's id with each query kind: answered, A stays put */
    const char *kinds[] = {"ping", "find_node", "get_peers"};
    for (int k = 0; k < 3; k++) {
        size_t n = krpc_q(pkt, kinds[k], ida, k == 0 ? NULL : k == 1 ? "target" : "info_hash", ida,
                          "s1");
        udp_to(fs, d, pkt, n);
        pings = 0;
        T_TRUE(pump_peer(fs, d, ida, true, ans, sizeof ans, 10000, NULL) > 0);
    }
    T_EQ_INT(zn_dht_get_stats(d).addr_kept, 3);
    T_EQ_INT(zn_dht_closest(d, ida, ids, at, 2), 1);
    T_EQ_MEM(ids[0], ida, 20);
    T_EQ_INT(ntohs(((struct sockaddr_in *)&at[0])->sin_port), udp_port(fa));
    char ip[32];
    inet_ntop(AF_INET, &((struct sockaddr_in *)&at[0])->sin_addr, ip, sizeof ip);
    T_EQ_STR(ip, "127.0.0.1");
    close(fa);
    close(fs);
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* A node that queried us but never answered our ping is not handed out;
 * one that answered is. */
static void test_unanswered_not_handed_out(void)
{
    zn_dht *d;
    zn_dht_opts o = {.bind_ip = "127.0.0.1", .query_timeout_ms = 500};
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    int fx = udp_at("127.0.0.3"), fy = udp_at("127.0.0.4"), fq = udp_at("127.0.0.5");
    uint8_t idx[20], idy[20], idq[20], pkt[512], ans[2048];
    id_near(zn_dht_id(d), 30, 0x11, idx);
    id_near(zn_dht_id(d), 31, 0x22, idy);
    id_near(zn_dht_id(d), 60, 0x33, idq);
    int px = 0, py = 0;
    udp_to(fx, d, pkt, krpc_q(pkt, "ping", idx, NULL, NULL, "x1"));
    T_TRUE(pump_peer(fx, d, idx, false, ans, sizeof ans, 10000, &px) > 0);
    udp_to(fy, d, pkt, krpc_q(pkt, "ping", idy, NULL, NULL, "y1"));
    T_TRUE(pump_peer(fy, d, idy, true, ans, sizeof ans, 10000, &py) > 0);
    T_EQ_INT(px, 1); /* both were pinged, only Y answered */
    T_EQ_INT(py, 1);
    zn_dht_stats st = zn_dht_get_stats(d);
    T_EQ_INT(st.nodes, 2);
    T_EQ_INT(st.good_nodes, 1);
    const char *kinds[] = {"find_node", "get_peers"};
    for (int k = 0; k < 2; k++) {
        size_t n = krpc_q(pkt, kinds[k], idq, k ? "info_hash" : "target", idx, "q1");
        udp_to(fq, d, pkt, n);
        size_t got = pump_peer(fq, d, idq, false, ans, sizeof ans, 10000, NULL), cnt;
        T_TRUE(got > 0);
        T_TRUE(!nodes_have(ans, got, idx, &cnt));
        T_TRUE(nodes_have(ans, got, idy, &cnt));
        T_EQ_INT(cnt, 1);
    }
    close(fx);
    close(fy);
    close(fq);
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* Answers to a source that has not proven its address are ≤ 3× the query;
 * once it has (answered our ping, or brought back our token) it gets all. */
static void test_amplification(void)
{
    zn_dht *d, *h[8];
    zn_dht_opts o = {.bind_ip = "127.0.0.1"};
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    uint8_t ih[20], idu[20], idv[20], pkt[512], ans[2048], tok[8];
    memset(ih, 0x77, 20);
    /* 100 stored peers for ih and 8 nodes that answered us */
    for (int i = 0; i < 100; i++) {
        struct sockaddr_in from;
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.1.%d", i + 1);
        uv_ip4_addr(ip, 9, &from);
        zn_dht_token_for(d, (struct sockaddr *)&from, tok);
        uint8_t idp[20];
        memset(idp, i + 1, 20);
        zn_dht_input(d, pkt, krpc_announce(pkt, idp, ih, tok, 8, 2000 + i),
                     (struct sockaddr *)&from);
    }
    struct sockaddr_storage got[128];
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 128), 100);
    res r[8] = {{0}};
    for (int i = 0; i < 8; i++) {
        zn_dht_opts ho = {.bind_ip = "127.0.0.1"};
        T_EQ_INT(zn_dht_new(loop, &ho, &h[i]), 0);
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", zn_dht_port(h[i]), &a);
        T_EQ_INT(zn_dht_ping(d, (struct sockaddr *)&a, done_cb, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        run_until(&r[i].calls, 1);
        T_EQ_INT(r[i].err, 0);
    }
    T_TRUE(zn_dht_get_stats(d).good_nodes >= 8);
    int fu = udp_at("127.0.0.6"), fv = udp_at("127.0.0.7");
    id_near(zn_dht_id(d), 100, 0x44, idu);
    id_near(zn_dht_id(d), 101, 0x55, idv);
    /* unverified: get_peers and find_node answers within 3× */
    size_t qn = krpc_q(pkt, "get_peers", idu, "info_hash", ih, "u1");
    udp_to(fu, d, pkt, qn);
    int pings = 0;
    size_t an = pump_peer(fu, d, idu, false, ans, sizeof ans, 10000, &pings);
    printf("# unverified get_peers: query %zu B, answer %zu B (%.2fx)\n", qn, an,
           (double)an / (double)qn);
    T_TRUE(an > 0 && an <= 3 * qn);
    zn_krpc m;
    const uint8_t *t;
    size_t tl;
    T_EQ_INT(zn_krpc_parse(ans, an, &m), 0);
    T_TRUE(zb_get_str(m.args, "token", &t, &tl) && tl == 8); /* so it may still announce */
    memcpy(tok, t, 8);
    zb_free(m.root);
    size_t fq = krpc_q(pkt, "find_node", idu, "target", ih, "u2");
    udp_to(fu, d, pkt, fq);
    an = pump_peer(fu, d, idu, false, ans, sizeof ans, 10000, NULL);
    T_TRUE(an > 0 && an <= 3 * fq);
    T_TRUE(zn_dht_get_stats(d).trimmed >= 1);
    /* V proves its address by answering our ping: the whole answer */
    udp_to(fv, d, pkt, krpc_q(pkt, "ping", idv, NULL, NULL, "v1"));
    pings = 0;
    T_TRUE(pump_peer(fv, d, idv, true, ans, sizeof ans, 10000, &pings) > 0);
    T_EQ_INT(pings, 1);
    qn = krpc_q(pkt, "get_peers", idv, "info_hash", ih, "v2");
    udp_to(fv, d, pkt, qn);
    an = pump_peer(fv, d, idv, false, ans, sizeof ans, 10000, NULL);
    printf("# verified get_peers: answer %zu B\n", an);
    T_TRUE(an > 3 * qn);
    T_EQ_INT(zn_krpc_parse(ans, an, &m), 0);
    const zb_val *vals = zb_get(m.args, "values");
    T_TRUE(vals && vals->type == ZB_LIST && vals->len == 100);
    zb_free(m.root);
    /* U proves its address by bringing back our token (announce_peer) */
    udp_to(fu, d, pkt, krpc_announce(pkt, idu, ih, tok, 8, 4242));
    T_TRUE(pump_peer(fu, d, idu, false, ans, sizeof ans, 10000, NULL) > 0);
    T_EQ_INT(zn_dht_stored_peers(d, ih, got, 128), 101);
    qn = krpc_q(pkt, "get_peers", idu, "info_hash", ih, "u3");
    udp_to(fu, d, pkt, qn);
    an = pump_peer(fu, d, idu, false, ans, sizeof ans, 10000, NULL);
    T_TRUE(an > 3 * qn);
    close(fu);
    close(fv);
    for (int i = 0; i < 8; i++)
        zn_dht_free(h[i]);
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* A flood from one address is cut to the bucket; others are still answered;
 * the table of sources stays bounded under many addresses. */
static void test_rate_limit(void)
{
    zn_dht *d;
    zn_dht_opts o = {.bind_ip = "127.0.0.1"}; /* defaults: burst 100, 50/s */
    T_EQ_INT(zn_dht_new(loop, &o, &d), 0);
    int ff = udp_at("127.0.0.8"), fg = udp_at("127.0.0.9");
    uint8_t idf[20], idg[20], pkt[512], buf[2048];
    id_near(zn_dht_id(d), 20, 0x66, idf);
    id_near(zn_dht_id(d), 21, 0x67, idg);
    uv_update_time(loop);
    uint64_t t0 = uv_now(loop);
    int answered = 0, sent = 0;
    for (int burst = 0; burst < 50; burst++) {
        for (int k = 0; k < 20; k++, sent++) {
            char tid[8];
            snprintf(tid, sizeof tid, "f%d", sent);
            udp_to(ff, d, pkt, krpc_q(pkt, "ping", idf, NULL, NULL, tid));
        }
        for (int i = 0; i < 5; i++)
            uv_run(loop, UV_RUN_NOWAIT);
        ssize_t n;
        while ((n = recv(ff, buf, sizeof buf, MSG_DONTWAIT)) > 0)
            answered += n > 12 && memmem(buf, (size_t)n, "1:y1:re", 7) != NULL;
    }
    size_t n;
    while ((n = udp_wait(ff, buf, sizeof buf, 300)) > 0)
        answered += n > 12 && memmem(buf, n, "1:y1:re", 7) != NULL;
    uv_update_time(loop);
    double secs = (double)(uv_now(loop) - t0) / 1000.0;
    zn_dht_stats st = zn_dht_get_stats(d);
    printf("# flood: %d pings in %.2f s, %d answered, %llu rate-limited\n", sent, secs, answered,
           (unsigned long long)st.rate_limited);
    T_TRUE(answered >= 100);                       /* the burst */
    T_TRUE(answered <= 100 + (int)(50 * secs) + 5); /* then the rate */
    T_TRUE(st.rate_limited >= (uint64_t)(sent - 100 - (int)(50 * secs) - 5));
    /* another source is answered at once */
    udp_to(fg, d, pkt, krpc_q(pkt, "ping", idg, NULL, NULL, "g1"));
    T_TRUE(pump_peer(fg, d, idg, false, buf, sizeof buf, 10000, NULL) > 0);
    /* 5,000 sources: each gets its first query answered, nothing grows */
    uint64_t before = zn_dht_get_stats(d).rate_limited;
    for (int i = 0; i < 5000; i++) {
        struct sockaddr_in from;
        char ip[32];
        snprintf(ip, sizeof ip, "127.%d.%d.%d", 10 + i / 65536, (i / 256) % 256, i % 256 + 0);
        uv_ip4_addr(ip, 9, &from);
        zn_dht_input(d, pkt, krpc_q(pkt, "ping", idg, NULL, NULL, "h1"), (struct sockaddr *)&from);
    }
    T_EQ_INT(zn_dht_get_stats(d).rate_limited, before);
    close(ff);
    close(fg);
    zn_dht_free(d);
    uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv)
{
    loop = uv_default_loop();
    if (argc > 1)
        return tool(argc, argv);
    T_RUN(test_malformed);
    T_RUN(test_tokens);
    T_RUN(test_persist);
    T_RUN(test_swarm);
    T_RUN(test_endless);
    T_RUN(test_spoofed_address);
    T_RUN(test_unanswered_not_handed_out);
    T_RUN(test_amplification);
    T_RUN(test_rate_limit);
    return t_done();
}
