/* test_peer.c — net/peer: wire byte vectors, two nodes in one process on
 * loopback (fetch, manifest exchange, HAVE updates, pipelining, cancel,
 * timeouts, upload cap, max_conns, IPv6), and a small tool for the Python
 * tests (tests/net/peer_*.py):
 *
 *   test_peer                      run the C tests
 *   test_peer serve [NCHUNKS]      serve the test xorb on 127.0.0.1; prints
 *                                  "PORT p XORB hex ZIH hex" then runs until
 *                                  stdin closes; prints "STATS …" at exit
 *   test_peer fetch PORT IHHEX S E [manifest] [ipv6]
 *                                  fetch chunks [S,E) of the test xorb from
 *                                  127.0.0.1:PORT; prints "RESULT err=… ok=…
 *                                  bans=… verify_failures=… readd=…"
 *   test_peer dump DIR [NCHUNKS]   write chunk data, lens, hashes, xorb hash
 *   test_peer connect PORT IHHEX   connect, wait for the BEP 10 handshake,
 *                                  print "STATS …" (libtorrent interop) */
#include "peer.h"
#include "t.h"

#include <unistd.h>

/* ---- the test xorb -------------------------------------------------------------- */

#define NCH_DEFAULT 200

typedef struct txorb {
    uint32_t n;
    uint32_t *lens;
    xet_hash *hashes;
    uint64_t *off;
    uint8_t *data;
    xet_hash hash;
} txorb;

static void splitmix(uint64_t seed, uint8_t *out, size_t n)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 8) {
        s += 0x9E3779B97F4A7C15ULL;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        for (size_t k = 0; k < 8 && i + k < n; k++)
            out[i + k] = (uint8_t)(z >> (8 * k));
    }
}

static void txorb_make(txorb *x, uint32_t n)
{
    x->n = n;
    x->lens = malloc(n * sizeof *x->lens);
    x->hashes = malloc(n * sizeof *x->hashes);
    x->off = malloc((n + 1) * sizeof *x->off);
    x->off[0] = 0;
    for (uint32_t k = 0; k < n; k++) {
        x->lens[k] = 8192 + (uint32_t)((k * 7919u) % 57344u); /* 8..64 KiB */
        x->off[k + 1] = x->off[k] + x->lens[k];
    }
    x->data = malloc(x->off[n]);
    splitmix(42, x->data, x->off[n]);
    /* make some chunks compressible so LZ4 would matter */
    for (uint32_t k = 0; k < n; k += 5)
        memset(x->data + x->off[k], 'a', x->lens[k] / 2);
    xet_merkle_node *leaves = malloc(n * sizeof *leaves);
    for (uint32_t k = 0; k < n; k++) {
        xet_chunk_hash(x->data + x->off[k], x->lens[k], &x->hashes[k]);
        leaves[k].hash = x->hashes[k];
        leaves[k].len = x->lens[k];
    }
    xet_merkle_root(leaves, n, &x->hash);
    free(leaves);
}

static void txorb_free(txorb *x)
{
    free(x->lens), free(x->hashes), free(x->off), free(x->data);
}

/* ---- an in-memory provider -------------------------------------------------------- */

typedef struct pending_read {
    uint32_t s, e;
    zn_peer_read_cb cb;
    void *arg;
} pending_read;

typedef struct mem {
    txorb *x;
    zn_chunk_run held[8];
    size_t nheld;
    bool manifest;
    bool may_serve;
    bool stall;
    bool parts;               /* answer MPART with the held runs' hashes */
    bool lie;                 /* ... one of them wrong */
    pending_read pend[256];
    size_t npend;
    unsigned reads;
} mem;

#define MEMI(s_, e_, nh, man, ms) \
    {.x = &X, .held = {{s_, e_}}, .nheld = nh, .manifest = man, .may_serve = ms}

static size_t mem_held(void *ud, const xet_hash *xorb, zn_chunk_run *out, size_t max)
{
    mem *m = ud;
    if (!xet_hash_eq(xorb, &m->x->hash))
        return 0;
    size_t k;
    for (k = 0; k < m->nheld && k < max; k++)
        out[k] = m->held[k];
    return k;
}

static int mem_manifest(void *ud, const xet_hash *xorb, xet_hash **h, uint32_t **l, uint32_t *n)
{
    mem *m = ud;
    if (!m->manifest || !xet_hash_eq(xorb, &m->x->hash))
        return -ENOENT;
    *h = malloc(m->x->n * sizeof **h);
    *l = malloc(m->x->n * sizeof **l);
    memcpy(*h, m->x->hashes, m->x->n * sizeof **h);
    memcpy(*l, m->x->lens, m->x->n * sizeof **l);
    *n = m->x->n;
    return 0;
}

static void mem_answer(mem *m, uint32_t s, uint32_t e, zn_peer_read_cb cb, void *arg)
{
    txorb *x = m->x;
    cb(arg, 0, x->lens + s, x->hashes + s, x->data + x->off[s], x->off[e] - x->off[s]);
}

static int mem_read(void *ud, const xet_hash *xorb, uint32_t s, uint32_t e, zn_peer_read_cb cb,
                    void *arg)
{
    mem *m = ud;
    if (!xet_hash_eq(xorb, &m->x->hash) || e > m->x->n)
        return -ENOENT;
    m->reads++;
    if (m->stall && m->npend < 256) {
        m->pend[m->npend++] = (pending_read){s, e, cb, arg};
        return 0;
    }
    mem_answer(m, s, e, cb, arg);
    return 0;
}

static void mem_release(mem *m)
{
    size_t n = m->npend;
    m->npend = 0;
    m->stall = false;
    for (size_t k = 0; k < n; k++)
        mem_answer(m, m->pend[k].s, m->pend[k].e, m->pend[k].cb, m->pend[k].arg);
}

static bool mem_may_serve(void *ud, const uint8_t ih[20])
{
    return ((mem *)ud)->may_serve;
}

static int mem_parts(void *ud, const xet_hash *xorb, uint32_t **idx, xet_hash **h,
                     uint32_t **l, uint32_t *cnt)
{
    mem *m = ud;
    if (!m->parts || !xet_hash_eq(xorb, &m->x->hash))
        return -ENOENT;
    uint32_t k = 0;
    for (size_t i = 0; i < m->nheld; i++)
        k += m->held[i].end - m->held[i].start;
    if (!k)
        return -ENOENT;
    *idx = malloc(k * sizeof **idx);
    *h = malloc(k * sizeof **h);
    *l = malloc(k * sizeof **l);
    k = 0;
    for (size_t i = 0; i < m->nheld; i++)
        for (uint32_t c = m->held[i].start; c < m->held[i].end; c++, k++) {
            (*idx)[k] = c;
            (*h)[k] = m->x->hashes[c];
            (*l)[k] = m->x->lens[c];
        }
    if (m->lie)
        (*h)[k / 2].b[0] ^= 1;
    *cnt = k;
    return 0;
}

static zn_peer_provider mem_provider(mem *m)
{
    return (zn_peer_provider){m, mem_held, mem_manifest, mem_read, mem_may_serve, NULL,
                              mem_parts};
}

/* ---- helpers ------------------------------------------------------------------------- */

static uv_loop_t loop;
static const uint8_t IH[20] = "zestfs-test-swarm-01";

typedef struct result {
    bool done;
    int err;
    uint8_t *data;
    size_t len;
    uint32_t n;
} result;

static void fetch_cb(void *ud, int err, const uint32_t *lens, const xet_hash *hashes,
                     const uint8_t *data, size_t len)
{
    result *r = ud;
    r->done = true;
    r->err = err;
    if (!err) {
        r->data = malloc(len ? len : 1);
        memcpy(r->data, data, len);
        r->len = len;
    }
}

/* Run the loop until *flag or `ms` pass (the tick is unref'd: use a timer). */
static void on_wake(uv_timer_t *t)
{
    (void)t;
}

static bool run_until(bool (*cond)(void *), void *arg, unsigned ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_wake, 10, 10);
    uint64_t end = uv_now(&loop) + ms;
    bool ok;
    while (!(ok = cond(arg)) && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

static bool cond_done(void *a)
{
    return ((result *)a)->done;
}

typedef struct pair {
    zn_peer_node *n;
    unsigned want;
} pair;

static bool cond_ext(void *a)
{
    pair *p = a;
    zn_peer_stats st;
    zn_peer_get_stats(p->n, &st);
    return st.ext_peers >= p->want;
}

typedef struct hold {
    zn_peer_node *n;
    const xet_hash *x;
    uint32_t s, e;
} hold;

static bool cond_holders(void *a)
{
    hold *h = a;
    return zn_peer_holders(h->n, h->x, h->s, h->e) > 0;
}

static bool cond_pend(void *a)
{
    mem *m = a;
    return m->npend >= 3;
}

static bool cond_pend1(void *a)
{
    return ((mem *)a)->npend >= 1;
}

static void connect_to(zn_peer_node *b, zn_peer_node *a, const char *ip)
{
    struct sockaddr_storage ss;
    if (strchr(ip, ':'))
        uv_ip6_addr(ip, zn_peer_node_port(a), (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr(ip, zn_peer_node_port(a), (struct sockaddr_in *)&ss);
    T_EQ_INT(zn_peer_add(b, IH, (struct sockaddr *)&ss), 0);
    pair p = {b, 1};
    T_TRUE(run_until(cond_ext, &p, 10000));
    pair q = {a, 1};
    T_TRUE(run_until(cond_ext, &q, 10000));
}

static void drain(zn_peer_node *a, zn_peer_node *b)
{
    if (a)
        zn_peer_node_free(a);
    if (b)
        zn_peer_node_free(b);
    for (int k = 0; k < 50; k++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static txorb X;

/* ---- codec tests ----------------------------------------------------------------------- */

static void test_vectors(void)
{
    /* §1.1: API hex → raw bytes → zest info_hash */
    xet_hash h;
    T_EQ_INT(xet_hash_from_string(
                 "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456", &h),
             0);
    uint8_t raw[32];
    xet_unhex("9078f6e5d4c3b2a15634129078563412563412efcdab9078563412efcdab9078", 32, raw);
    T_EQ_MEM(h.b, raw, 32);
    uint8_t ih[20], want[20];
    zn_peer_zest_info_hash(&h, ih);
    xet_unhex("f634bfb98e3149c9d98b7b8a24a1f5e5967c65be", 20, want);
    T_EQ_MEM(ih, want, 20);

    /* ut_xet §2.2 exact bytes */
    uint8_t m[64];
    T_EQ_INT(zp_ut_request(m, 7, &h, 3, 9), 45);
    uint8_t wreq[45] = {0x01, 0, 0, 0, 7};
    memcpy(wreq + 5, raw, 32);
    memcpy(wreq + 37, "\0\0\0\x03\0\0\0\x09", 8);
    T_EQ_MEM(m, wreq, 45);
    zp_ut_msg u;
    T_EQ_INT(zp_ut_parse(m, 45, &u), 0);
    T_EQ_INT(u.type, 1);
    T_EQ_INT(u.req, 7);
    T_EQ_INT(u.start, 3);
    T_EQ_INT(u.end, 9);
    T_EQ_INT(zp_ut_parse(m, 44, &u), -EBADMSG);
    T_EQ_INT(zp_ut_response_hdr(m, 7, 2, 5), 13);
    T_EQ_MEM(m, "\x02\0\0\0\x07\0\0\0\x02\0\0\0\x05", 13);
    memcpy(m + 13, "hello", 5);
    T_EQ_INT(zp_ut_parse(m, 18, &u), 0);
    T_EQ_INT(u.chunk_offset, 2);
    T_EQ_INT(u.data_len, 5);
    T_EQ_INT(zp_ut_parse(m, 17, &u), -EBADMSG); /* data_len disagrees */
    T_EQ_INT(zp_ut_not_found(m, 7, &h), 37);
    T_EQ_INT(m[0], 3);
    T_EQ_MEM(m + 5, raw, 32);
    T_EQ_INT(zp_ut_parse((const uint8_t *)"\x04\0\0\0\x07\0\0\0\x01oops", 13, &u), 0);
    T_EQ_INT(u.code, 1);
    T_EQ_INT(u.data_len, 4);
    T_EQ_INT(zp_ut_parse((const uint8_t *)"\x05\0\0\0\x07", 5, &u), -EBADMSG);

    /* zfs_xet exact bytes */
    T_EQ_INT(zp_zfs_request(m, 0x01020304, &h, 64, 128), 45);
    uint8_t wz[45] = {0x02, 1, 2, 3, 4};
    memcpy(wz + 5, raw, 32);
    memcpy(wz + 37, "\0\0\0\x40\0\0\0\x80", 8);
    T_EQ_MEM(m, wz, 45);
    zp_zfs_msg z;
    T_EQ_INT(zp_zfs_parse(m, 45, &z), 0);
    T_EQ_INT(z.req, 0x01020304);
    T_EQ_INT(z.start, 64);
    T_EQ_INT(z.end, 128);
    T_TRUE(xet_hash_eq(&z.xorb, &h));
    m[44] = 64; /* end == start */
    T_EQ_INT(zp_zfs_parse(m, 45, &z), -EBADMSG);

    zn_chunk_run runs[2] = {{0, 10}, {20, 30}};
    T_EQ_INT(zp_zfs_have(m, &h, runs, 2), 53);
    T_EQ_INT(m[0], 1);
    T_EQ_MEM(m + 1, raw, 32);
    T_EQ_MEM(m + 33, "\0\0\0\x02\0\0\0\0\0\0\0\x0a\0\0\0\x14\0\0\0\x1e", 20);
    T_EQ_INT(zp_zfs_parse(m, 53, &z), 0);
    T_EQ_INT(z.n, 2);
    T_EQ_INT(zp_zfs_parse(m, 52, &z), -EBADMSG);

    T_EQ_INT(zp_zfs_data_hdr(m, 9, 64), 9);
    T_EQ_MEM(m, "\x03\0\0\0\x09\0\0\0\x40", 9);
    T_EQ_INT(zp_zfs_mreq(m, 9, &h), 37);
    T_EQ_INT(m[0], 4);
    xet_hash hs[1] = {h};
    uint32_t ls[1] = {65536};
    T_EQ_INT(zp_zfs_manifest(m, 9, hs, ls, 1), 45);
    T_EQ_MEM(m, "\x05\0\0\0\x09\0\0\0\x01", 9);
    T_EQ_MEM(m + 9, raw, 32);
    T_EQ_MEM(m + 41, "\0\x01\0\0", 4);
    T_EQ_INT(zp_zfs_parse(m, 45, &z), 0);
    T_EQ_INT(zp_zfs_refuse(m, 9, ZP_NOT_ALLOWED), 9);
    T_EQ_MEM(m, "\x06\0\0\0\x09\0\0\0\x02", 9);
    T_EQ_INT(zp_zfs_cancel(m, 9), 5);
    T_EQ_MEM(m, "\x07\0\0\0\x09", 5);
    T_EQ_INT(zp_zfs_parse((const uint8_t *)"\x08\0\0\0\x09", 5, &z), -EBADMSG);
    T_EQ_INT(zp_zfs_parse((const uint8_t *)"", 0, &z), -EBADMSG);

    /* handshake */
    uint8_t hsk[68], pid[20] = "-ZF0100-abcdefghijkl", ih2[20], pid2[20];
    zp_handshake(hsk, want, pid);
    T_EQ_MEM(hsk, "\x13" "BitTorrent protocol\0\0\0\0\0\x10\0\0", 28);
    bool ext;
    T_EQ_INT(zp_handshake_parse(hsk, ih2, pid2, &ext), 0);
    T_TRUE(ext);
    T_EQ_MEM(ih2, want, 20);
    hsk[3] = 'X';
    T_EQ_INT(zp_handshake_parse(hsk, ih2, pid2, &ext), -EBADMSG);

    /* BEP 10 handshake dicts: zest's, libtorrent-like, broken */
    uint8_t ut, zf;
    uint16_t port;
    const char *zest = "d1:md6:ut_xeti1ee1:pi6881e1:v8:zest/0.3e";
    T_EQ_INT(zp_ext_handshake_parse((const uint8_t *)zest, strlen(zest), &ut, &zf, &port), 0);
    T_EQ_INT(ut, 1);
    T_EQ_INT(zf, 0);
    T_EQ_INT(port, 6881);
    const char *lt = "d12:complete_agoi-1e1:md11:lt_donthavei7e6:ut_pexi1ee4:reqqi2000e1:v18:"
                     "libtorrent/2.0.8.0e";
    T_EQ_INT(zp_ext_handshake_parse((const uint8_t *)lt, strlen(lt), &ut, &zf, &port), 0);
    T_EQ_INT(ut, 0);
    const char *bad = "d1:md6:ut_xeti01eee";
    T_EQ_INT(zp_ext_handshake_parse((const uint8_t *)bad, strlen(bad), &ut, &zf, &port),
             -EBADMSG);
    T_EQ_INT(zp_ext_handshake_parse((const uint8_t *)"le", 2, &ut, &zf, &port), -EBADMSG);
    T_EQ_INT(zp_ext_handshake_parse((const uint8_t *)"dexx", 4, &ut, &zf, &port), -EBADMSG);
}

static void test_verify_codecs(void)
{
    /* manifest: the test xorb aggregates; a changed length or hash does not */
    T_EQ_INT(zp_manifest_verify(&X.hash, X.hashes, X.lens, X.n), 0);
    X.lens[3]++;
    T_EQ_INT(zp_manifest_verify(&X.hash, X.hashes, X.lens, X.n), -EILSEQ);
    X.lens[3]--;
    X.hashes[7].b[0] ^= 1;
    T_EQ_INT(zp_manifest_verify(&X.hash, X.hashes, X.lens, X.n), -EILSEQ);
    X.hashes[7].b[0] ^= 1;
    T_EQ_INT(zp_manifest_verify(&X.hash, X.hashes, X.lens, 0), -EBADMSG);

    /* records: LZ4 and NONE, then one flipped bit */
    size_t cap = 0;
    for (uint32_t k = 0; k < 4; k++)
        cap += xet_chunk_record_bound(X.lens[k]);
    uint8_t *rec = malloc(cap), *out = malloc(X.off[4]);
    size_t len = 0;
    for (uint32_t k = 0; k < 4; k++)
        len += (size_t)xet_chunk_encode(X.data + X.off[k], X.lens[k], k & 1 ? 0 : -1, rec + len);
    T_EQ_INT(zp_records_verify(rec, len, X.lens, X.hashes, 4, out, false), 0);
    T_EQ_MEM(out, X.data, X.off[4]);
    T_EQ_INT(zp_records_verify(rec, len - 1, X.lens, X.hashes, 4, out, false), -EBADMSG);
    T_EQ_INT(zp_records_verify(rec, len, X.lens, X.hashes, 3, out, false), -EBADMSG);
    T_EQ_INT(zp_records_verify(rec, len, X.lens, X.hashes, 3, out, true), 0);
    rec[len - 10] ^= 0x10;
    T_EQ_INT(zp_records_verify(rec, len, X.lens, X.hashes, 4, out, false), -EILSEQ);
    free(rec);
    free(out);
}

/* ---- two nodes -------------------------------------------------------------------------- */

static void nodes(mem *ma, mem *mb, zn_peer_opts *oa, zn_peer_opts *ob, zn_peer_node **a,
                  zn_peer_node **b)
{
    zn_peer_provider pa = mem_provider(ma), pb = mem_provider(mb);
    zn_peer_opts da = {.bind = "127.0.0.1"}, db = {.bind = "127.0.0.1"};
    T_EQ_INT(zn_peer_node_new(&loop, oa ? oa : &da, &pa, a), 0);
    T_EQ_INT(zn_peer_node_new(&loop, ob ? ob : &db, &pb, b), 0);
    T_TRUE(zn_peer_node_port(*a) > 0);
    zn_peer_swarm_join(*a, IH);
}

static void fetch_sync(zn_peer_node *b, uint32_t s, uint32_t e, result *r)
{
    memset(r, 0, sizeof *r);
    T_EQ_INT(zn_peer_fetch(b, &X.hash, s, e, 20000, fetch_cb, r, NULL), 0);
    T_TRUE(!r->done); /* never from inside the call */
    T_TRUE(run_until(cond_done, r, 30000));
}

static void test_fetch(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, false, true);
    zn_peer_node *a, *b;
    nodes(&ma, &mb, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &h, 10000));

    result r;
    uint64_t t0 = uv_hrtime();
    fetch_sync(b, 0, X.n, &r); /* manifest from A (B has none), then all chunks */
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    fprintf(stderr, "  fetch: %u chunks, %llu bytes in %.3f s (%.0f MB/s, manifest included)\n",
            X.n, (unsigned long long)X.off[X.n], secs, X.off[X.n] / secs / 1e6);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.len, X.off[X.n]);
    if (r.data && r.len == X.off[X.n])
        T_EQ_MEM(r.data, X.data, r.len);
    free(r.data);
    fetch_sync(b, 17, 83, &r); /* manifest now cached */
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.len, X.off[83] - X.off[17]);
    if (r.data && r.len == X.off[83] - X.off[17])
        T_EQ_MEM(r.data, X.data + X.off[17], r.len);
    free(r.data);
    fetch_sync(b, X.n - 1, X.n + 1, &r);
    T_EQ_INT(r.err, -ERANGE);

    zn_peer_stats sa, sb;
    zn_peer_get_stats(a, &sa);
    zn_peer_get_stats(b, &sb);
    T_EQ_INT(sa.data_up, X.off[X.n] + X.off[83] - X.off[17]);
    T_EQ_INT(sb.data_down, sa.data_up);
    T_EQ_INT(sb.bans, 0);
    T_EQ_INT(sb.verify_failures, 0);
    T_EQ_INT(sb.fetches_ok, 2);
    T_EQ_INT(sa.peers, 1);
    T_TRUE(sa.requests_served >= 5); /* ≤ 64 chunks per request */
    fprintf(stderr, "  fetch: A served %llu requests, %llu data bytes\n",
            (unsigned long long)sa.requests_served, (unsigned long long)sa.data_up);
    drain(a, b);
}

static void test_have_updates(void)
{
    mem ma = MEMI(0, 50, 1, true, true), mb = MEMI(0, 0, 0, true, true);
    zn_peer_node *a, *b;
    nodes(&ma, &mb, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, 50);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, 50};
    T_TRUE(run_until(cond_holders, &h, 10000));
    T_EQ_INT(zn_peer_holders(b, &X.hash, 40, 60), 0);
    result r;
    fetch_sync(b, 40, 60, &r); /* A announced only [0,50) */
    T_EQ_INT(r.err, -ENOENT);
    /* A stores more: HAVE update */
    ma.held[0].end = 120;
    zn_peer_announce_have(a, &X.hash, 50, 120);
    hold h2 = {b, &X.hash, 0, 120};
    T_TRUE(run_until(cond_holders, &h2, 10000));
    fetch_sync(b, 40, 120, &r);
    T_EQ_INT(r.err, 0);
    if (r.data && r.len == X.off[120] - X.off[40])
        T_EQ_MEM(r.data, X.data + X.off[40], r.len);
    free(r.data);
    drain(a, b);
}

static void test_pipeline_cancel(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, true, true);
    zn_peer_node *a, *b;
    nodes(&ma, &mb, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &h, 10000));

    /* pipelining: with A's reads held back, several requests of one fetch
     * arrive on the one connection before any is answered */
    ma.stall = true;
    result r = {0};
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 0, X.n, 0, fetch_cb, &r, NULL), 0);
    T_TRUE(run_until(cond_pend, &ma, 10000));
    T_TRUE(ma.npend >= 3);
    fprintf(stderr, "  pipeline: %zu requests outstanding on one connection\n", ma.npend);
    mem_release(&ma);
    T_TRUE(run_until(cond_done, &r, 30000));
    T_EQ_INT(r.err, 0);
    if (r.data && r.len == X.off[X.n])
        T_EQ_MEM(r.data, X.data, r.len);
    free(r.data);

    /* cancel: completion comes later, once, with -ECANCELED */
    ma.stall = true;
    zn_peer_op *op;
    result c = {0};
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 0, 64, 0, fetch_cb, &c, &op), 0);
    T_TRUE(run_until(cond_pend1, &ma, 10000));
    zn_peer_op_cancel(op);
    T_TRUE(!c.done);
    T_TRUE(run_until(cond_done, &c, 10000));
    T_EQ_INT(c.err, -ECANCELED);
    run_until(cond_done, &(result){0}, 300); /* let A read the CANCEL */
    unsigned served_before;
    zn_peer_stats sa;
    zn_peer_get_stats(a, &sa);
    served_before = (unsigned)sa.requests_served;
    mem_release(&ma); /* A's answers to cancelled requests are dropped */
    run_until(cond_done, &(result){0}, 300);
    zn_peer_get_stats(a, &sa);
    T_EQ_INT(sa.requests_served, served_before);
    /* the connection is still good */
    fetch_sync(b, 0, 10, &r);
    T_EQ_INT(r.err, 0);
    free(r.data);
    drain(a, b);
}

static void test_timeouts(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, true, true);
    zn_peer_node *a, *b;
    zn_peer_opts ob = {.bind = "127.0.0.1", .req_timeout_ms = 300};
    nodes(&ma, &mb, NULL, &ob, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &h, 10000));
    ma.stall = true;
    result r;
    fetch_sync(b, 0, 10, &r); /* request timeout, no other peer */
    T_EQ_INT(r.err, -ETIMEDOUT);
    memset(&r, 0, sizeof r);
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 0, 10, 100, fetch_cb, &r, NULL), 0); /* deadline */
    T_TRUE(run_until(cond_done, &r, 10000));
    T_EQ_INT(r.err, -ETIMEDOUT);
    mem_release(&ma);
    zn_peer_stats sb;
    zn_peer_get_stats(b, &sb);
    T_EQ_INT(sb.bans, 0);
    drain(a, b);
}

static void test_no_manifest_private(void)
{
    /* A holds chunks but has no manifest: B cannot verify → -ENOENT */
    mem ma = MEMI(0, X.n, 1, false, true), mb = MEMI(0, 0, 0, false, true);
    zn_peer_node *a, *b;
    nodes(&ma, &mb, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    result r;
    fetch_sync(b, 0, 10, &r);
    T_EQ_INT(r.err, -ENOENT);
    drain(a, b);
    /* A may not serve this swarm (private repo): no HAVE, requests refused;
     * B (with a manifest) gets -ENOENT */
    mem mc = MEMI(0, X.n, 1, true, false), md = MEMI(0, 0, 0, true, true);
    nodes(&mc, &md, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    T_EQ_INT(zn_peer_holders(b, &X.hash, 0, 10), 0);
    fetch_sync(b, 0, 10, &r);
    T_EQ_INT(r.err, -ENOENT);
    T_EQ_INT(mc.reads, 0);
    drain(a, b);
}

/* Nobody holds the whole xorb: A has [0, k), B [k, n), neither a manifest.
 * B asks A (MREQ), A answers MPART with its chunks' hashes, B joins them
 * with its own, the whole aggregates to the xorb hash: B fetches [0, k). */
static void test_manifest_parts(void)
{
    uint32_t k = X.n / 2;
    mem ma = MEMI(0, k, 1, false, true), mb = MEMI(k, X.n, 1, false, true);
    ma.parts = mb.parts = true;
    zn_peer_node *a, *b;
    nodes(&ma, &mb, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, k);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, k};
    T_TRUE(run_until(cond_holders, &h, 10000));
    result r;
    fetch_sync(b, 0, k, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.len, X.off[k]);
    T_TRUE(r.data && memcmp(r.data, X.data, X.off[k]) == 0);
    free(r.data);
    zn_peer_stats sa, sb;
    zn_peer_get_stats(a, &sa);
    zn_peer_get_stats(b, &sb);
    T_EQ_INT(sa.mparts_out, 1);
    T_EQ_INT(sb.mparts_in, 1);
    T_EQ_INT(sb.manifests_joined, 1);
    T_EQ_INT(sb.bans, 0);
    drain(a, b);

    /* B holds nothing: A's half does not make the whole, -ENOENT, nothing read */
    mem mc = MEMI(0, k, 1, false, true), md = MEMI(0, 0, 0, false, true);
    mc.parts = md.parts = true;
    nodes(&mc, &md, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, k);
    connect_to(b, a, "127.0.0.1");
    fetch_sync(b, 0, k, &r);
    T_EQ_INT(r.err, -ENOENT);
    T_EQ_INT(mc.reads, 0);
    drain(a, b);

    /* A's parts carry one wrong hash: the whole does not aggregate, -ENOENT,
     * not one chunk asked for */
    mem me = MEMI(0, k, 1, false, true), mf = MEMI(k, X.n, 1, false, true);
    me.parts = mf.parts = true;
    me.lie = true;
    nodes(&me, &mf, NULL, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, k);
    connect_to(b, a, "127.0.0.1");
    fetch_sync(b, 0, k, &r);
    T_EQ_INT(r.err, -ENOENT);
    T_EQ_INT(me.reads, 0);
    zn_peer_get_stats(b, &sb);
    T_EQ_INT(sb.manifests_joined, 0);
    drain(a, b);
}

static void test_upload_cap_max_conns(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, true, true);
    zn_peer_node *a, *b;
    uint64_t rate = 4u << 20;
    zn_peer_opts oa = {.bind = "127.0.0.1", .upload_rate = rate, .max_conns = 1};
    nodes(&ma, &mb, &oa, NULL, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &h, 10000));
    uint64_t t0 = uv_hrtime();
    result r;
    fetch_sync(b, 0, X.n, &r);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    T_EQ_INT(r.err, 0);
    free(r.data);
    double want = (double)X.off[X.n] / (double)rate;
    fprintf(stderr, "  upload cap %llu B/s: %zu bytes in %.2f s (%.2f MB/s)\n",
            (unsigned long long)rate, (size_t)X.off[X.n], secs, X.off[X.n] / secs / 1e6);
    /* a lower bound only: pacing can make it slower, never faster */
    T_TRUE(secs >= want * 0.7);

    /* max_conns = 1: a second peer is not let in */
    mem mc = MEMI(0, 0, 0, true, true);
    zn_peer_provider pc = mem_provider(&mc);
    zn_peer_node *c;
    zn_peer_opts oc = {.bind = "127.0.0.1"};
    T_EQ_INT(zn_peer_node_new(&loop, &oc, &pc, &c), 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", zn_peer_node_port(a), &sin);
    T_EQ_INT(zn_peer_add(c, IH, (struct sockaddr *)&sin), 0);
    pair p = {c, 1};
    T_TRUE(!run_until(cond_ext, &p, 1500));
    zn_peer_stats sa;
    zn_peer_get_stats(a, &sa);
    T_EQ_INT(sa.peers, 1);
    zn_peer_node_free(c);
    drain(a, b);
}

static void test_ipv6(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, false, true);
    zn_peer_provider pa = mem_provider(&ma), pb = mem_provider(&mb);
    zn_peer_opts oa = {.bind = "::1"}, ob = {.bind = "::1"};
    zn_peer_node *a, *b;
    if (zn_peer_node_new(&loop, &oa, &pa, &a) != 0) {
        T_SKIP("no IPv6 loopback (::1)");
        return;
    }
    T_EQ_INT(zn_peer_node_new(&loop, &ob, &pb, &b), 0);
    zn_peer_swarm_join(a, IH);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "::1");
    hold h = {b, &X.hash, 0, 30};
    T_TRUE(run_until(cond_holders, &h, 10000));
    result r;
    fetch_sync(b, 0, 30, &r);
    T_EQ_INT(r.err, 0);
    if (r.data && r.len == X.off[30])
        T_EQ_MEM(r.data, X.data, r.len);
    free(r.data);
    drain(a, b);
}

static bool cond_two(void *a)
{
    pair *p = a;
    zn_peer_stats st;
    zn_peer_get_stats(p->n, &st);
    return st.ext_peers >= 2;
}

/* B holds connections to a liar (its store hands out corrupted bytes) and to
 * an honest node: parts go to both, the liar's fail verification, the liar is
 * banned, its parts are fetched again from the honest node, bytes exact. */
static void test_liar_and_honest(void)
{
    txorb Y = X; /* same hashes and lens, corrupted data */
    Y.data = malloc(X.off[X.n]);
    memcpy(Y.data, X.data, X.off[X.n]);
    for (uint32_t k = 0; k < X.n; k++)
        Y.data[X.off[k] + X.lens[k] / 2] ^= 0x20;
    mem ml = MEMI(0, X.n, 1, true, true), mh = MEMI(0, X.n, 1, true, true),
        mb = MEMI(0, 0, 0, false, true);
    ml.x = &Y;
    zn_peer_node *l, *h, *b;
    nodes(&ml, &mb, NULL, NULL, &l, &b);
    zn_peer_provider ph = mem_provider(&mh);
    zn_peer_opts oh = {.bind = "127.0.0.1"};
    T_EQ_INT(zn_peer_node_new(&loop, &oh, &ph, &h), 0);
    zn_peer_swarm_join(h, IH);
    zn_peer_announce_have(l, &X.hash, 0, X.n);
    zn_peer_announce_have(h, &X.hash, 0, X.n);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", zn_peer_node_port(l), &sin);
    T_EQ_INT(zn_peer_add(b, IH, (struct sockaddr *)&sin), 0);
    uv_ip4_addr("127.0.0.1", zn_peer_node_port(h), &sin);
    T_EQ_INT(zn_peer_add(b, IH, (struct sockaddr *)&sin), 0);
    pair p = {b, 2};
    T_TRUE(run_until(cond_two, &p, 10000));
    hold hh = {b, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &hh, 10000));
    run_until(cond_done, &(result){0}, 300); /* both HAVEs in */
    result r;
    fetch_sync(b, 0, X.n, &r);
    T_EQ_INT(r.err, 0);
    if (r.data && r.len == X.off[X.n])
        T_EQ_MEM(r.data, X.data, r.len);
    free(r.data);
    zn_peer_stats sb, sl, sh;
    zn_peer_get_stats(b, &sb);
    zn_peer_get_stats(l, &sl);
    zn_peer_get_stats(h, &sh);
    T_EQ_INT(sb.bans, 1);
    T_TRUE(sb.verify_failures >= 1);
    T_TRUE(sl.requests_served >= 1); /* the liar did get asked */
    T_EQ_INT(sb.peers, 1);
    fprintf(stderr, "  liar served %llu requests, honest %llu; B verify failures %llu\n",
            (unsigned long long)sl.requests_served, (unsigned long long)sh.requests_served,
            (unsigned long long)sb.verify_failures);
    zn_peer_node_free(h);
    drain(l, b);
    free(Y.data);
}

/* Random and mutated bytes through every parser (the fuzzing entry points). */

/* ---- PEX, PENDING, speed, per-xorb privacy ------------------------------------------ */

static zn_peer_node *node3(mem *m, unsigned pex_ms)
{
    zn_peer_provider pv = mem_provider(m);
    zn_peer_opts o = {.bind = "127.0.0.1", .pex_interval_ms = pex_ms};
    zn_peer_node *n;
    T_EQ_INT(zn_peer_node_new(&loop, &o, &pv, &n), 0);
    zn_peer_swarm_join(n, IH);
    return n;
}

static void dial(zn_peer_node *from, zn_peer_node *to)
{
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", zn_peer_node_port(to), &sin);
    T_EQ_INT(zn_peer_add(from, IH, (struct sockaddr *)&sin), 0);
}

/* B and C each know only A; A's ut_pex tells the later one about the other,
 * which dials it: B and C end up connected, and C fetches from B alone once
 * A is gone. */
static void test_pex(void)
{
    mem ma = MEMI(0, 0, 0, true, true), mb = MEMI(0, X.n, 1, true, true),
        mc = MEMI(0, 0, 0, true, true);
    zn_peer_node *a = node3(&ma, 400), *b = node3(&mb, 400), *c = node3(&mc, 400);
    zn_peer_announce_have(b, &X.hash, 0, X.n);
    dial(b, a);
    pair pb = {b, 1};
    T_TRUE(run_until(cond_ext, &pb, 10000));
    dial(c, a);
    pair pc = {c, 2}; /* A, then B found through A's ut_pex */
    T_TRUE(run_until(cond_two, &pc, 10000));
    zn_peer_stats sa, sc;
    zn_peer_get_stats(a, &sa);
    zn_peer_get_stats(c, &sc);
    T_TRUE(sa.pex_out >= 1);
    T_TRUE(sc.pex_in >= 1);
    T_EQ_INT(sc.pex_dialled, 1);
    fprintf(stderr, "  pex: A sent %llu ut_pex, C dialled %llu peer(s) it named\n",
            (unsigned long long)sa.pex_out, (unsigned long long)sc.pex_dialled);
    zn_peer_node_free(a);
    hold h = {c, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &h, 10000));
    result r;
    fetch_sync(c, 0, X.n, &r);
    T_EQ_INT(r.err, 0);
    if (r.data && r.len == X.off[X.n])
        T_EQ_MEM(r.data, X.data, r.len);
    free(r.data);
    /* no_pex: not offered, nothing sent */
    mem md = MEMI(0, 0, 0, true, true);
    zn_peer_provider pd = mem_provider(&md);
    zn_peer_opts od = {.bind = "127.0.0.1", .no_pex = true};
    zn_peer_node *d;
    T_EQ_INT(zn_peer_node_new(&loop, &od, &pd, &d), 0);
    dial(d, b);
    pair pdd = {d, 1};
    T_TRUE(run_until(cond_ext, &pdd, 10000));
    run_until(cond_done, &(result){0}, 1000);
    zn_peer_stats sd;
    zn_peer_get_stats(d, &sd);
    T_EQ_INT(sd.pex_in, 0);
    T_EQ_INT(sd.pex_out, 0);
    T_TRUE(sd.ext_peers >= 1); /* C may dial D: B told C about it */
    zn_peer_node_free(d);
    drain(b, c);
}

typedef struct pendw {
    zn_peer_node *n;
    uint32_t s, e;
    unsigned want;
} pendw;

static bool cond_pending(void *a)
{
    pendw *p = a;
    return zn_peer_pending(p->n, &X.hash, p->s, p->e) == p->want;
}

static void test_pending(void)
{
    mem ma = MEMI(0, 0, 0, true, true), mb = MEMI(0, 0, 0, true, true);
    zn_peer_node *a, *b;
    nodes(&ma, &mb, NULL, NULL, &a, &b);
    zn_peer_announce_pending(a, &X.hash, 0, 64, true); /* before B connects */
    connect_to(b, a, "127.0.0.1");
    pendw w = {b, 0, 64, 1};
    T_TRUE(run_until(cond_pending, &w, 5000));
    T_EQ_INT(zn_peer_pending(b, &X.hash, 10, 20), 1);
    T_EQ_INT(zn_peer_pending(b, &X.hash, 60, 70), 0);
    zn_peer_announce_pending(a, &X.hash, 64, 128, true);
    pendw w2 = {b, 60, 70, 1};
    T_TRUE(run_until(cond_pending, &w2, 5000));
    zn_peer_announce_pending(a, &X.hash, 0, 64, false);
    pendw w3 = {b, 10, 20, 0};
    T_TRUE(run_until(cond_pending, &w3, 5000));
    T_EQ_INT(zn_peer_pending(b, &X.hash, 64, 128), 1);
    zn_peer_announce_pending(a, &X.hash, 64, 128, false); /* n = 0: nothing pending */
    pendw w4 = {b, 64, 128, 0};
    T_TRUE(run_until(cond_pending, &w4, 5000));
    zn_peer_stats sb;
    zn_peer_get_stats(b, &sb);
    T_EQ_INT(sb.pending_in, 4);
    T_EQ_INT(sb.bans, 0);
    drain(a, b);
}

typedef struct slow_w {
    zn_peer_node *n;
} slow_w;

static bool cond_slow(void *a)
{
    zn_peer_stats st;
    zn_peer_get_stats(((slow_w *)a)->n, &st);
    return st.slow_drops > 0;
}

/* A slow peer (answers nothing while B's requests wait) is dropped after the
 * busy window, not banned; not dialled again; B's fetch goes to a fast peer. */
static void test_slow_peer(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, true, true),
        mc = MEMI(0, X.n, 1, true, true);
    zn_peer_node *a, *b;
    zn_peer_opts ob = {.bind = "127.0.0.1", .slow_window_ms = 300, .min_rate = 1u << 20};
    nodes(&ma, &mb, NULL, &ob, &a, &b);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    hold h = {b, &X.hash, 0, X.n};
    T_TRUE(run_until(cond_holders, &h, 10000));
    ma.stall = true;
    result r = {0};
    zn_peer_op *op;
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 0, X.n, 0, fetch_cb, &r, &op), 0);
    T_TRUE(run_until(cond_pend1, &ma, 10000));
    uint64_t done, total;
    zn_peer_op_progress(op, &done, &total);
    T_EQ_INT(done, 0);
    T_EQ_INT(total, X.off[X.n]);
    slow_w sw = {b};
    T_TRUE(run_until(cond_slow, &sw, 5000));
    T_TRUE(run_until(cond_done, &r, 5000));
    T_EQ_INT(r.err, -ENOENT); /* no other holder */
    zn_peer_stats sb;
    zn_peer_get_stats(b, &sb);
    T_EQ_INT(sb.bans, 0);
    T_EQ_INT(sb.slow_drops, 1);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", zn_peer_node_port(a), &sin);
    T_EQ_INT(zn_peer_add(b, IH, (struct sockaddr *)&sin), -EAGAIN);
    /* a fast peer serves the same fetch */
    zn_peer_node *c = node3(&mc, 0);
    zn_peer_announce_have(c, &X.hash, 0, X.n);
    dial(b, c);
    T_TRUE(run_until(cond_holders, &h, 10000));
    memset(&r, 0, sizeof r);
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 0, X.n, 0, fetch_cb, &r, &op), 0);
    T_TRUE(run_until(cond_done, &r, 20000));
    T_EQ_INT(r.err, 0);
    if (r.data && r.len == X.off[X.n])
        T_EQ_MEM(r.data, X.data, r.len);
    free(r.data);
    mem_release(&ma);
    zn_peer_node_free(c);
    drain(a, b);
}

static bool deny_xorb(void *ud, const uint8_t ih[20], const xet_hash *x)
{
    (void)ud, (void)ih, (void)x;
    return false;
}

/* may_serve_xorb false (a xorb of a private repo, asked on a public swarm):
 * no HAVE, no manifest, requests refused as not found. */
static void test_private_xorb(void)
{
    mem ma = MEMI(0, X.n, 1, true, true), mb = MEMI(0, 0, 0, false, true);
    zn_peer_provider pa = mem_provider(&ma), pb = mem_provider(&mb);
    pa.may_serve_xorb = deny_xorb;
    zn_peer_opts o = {.bind = "127.0.0.1"};
    zn_peer_node *a, *b;
    T_EQ_INT(zn_peer_node_new(&loop, &o, &pa, &a), 0);
    T_EQ_INT(zn_peer_node_new(&loop, &o, &pb, &b), 0);
    zn_peer_swarm_join(a, IH);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    connect_to(b, a, "127.0.0.1");
    run_until(cond_done, &(result){0}, 500);
    T_EQ_INT(zn_peer_holders(b, &X.hash, 0, 10), 0);
    result r;
    fetch_sync(b, 0, 10, &r); /* asks A for the manifest: refused */
    T_EQ_INT(r.err, -ENOENT);
    T_EQ_INT(ma.reads, 0);
    zn_peer_stats sa;
    zn_peer_get_stats(a, &sa);
    T_TRUE(sa.requests_refused >= 1);
    T_EQ_INT(sa.data_up, 0);
    drain(a, b);
}

static void test_parsers_random(void)
{
    uint8_t buf[512];
    uint64_t seed = 1;
    unsigned ok = 0;
    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(seed % sizeof buf);
        splitmix(seed++, buf, len);
        if (len && it % 3 == 0)
            buf[0] = (uint8_t)(1 + it % 8); /* plausible type bytes */
        zp_zfs_msg z;
        zp_ut_msg u;
        uint8_t a, c2, ih[20], pid[20];
        uint16_t port;
        bool ext;
        ok += zp_zfs_parse(buf, len, &z) == 0;
        ok += zp_ut_parse(buf, len, &u) == 0;
        ok += zp_ext_handshake_parse(buf, len, &a, &c2, &port) == 0;
        if (len >= 68)
            ok += zp_handshake_parse(buf, ih, pid, &ext) == 0;
        uint8_t out[4 * 1024];
        uint32_t lens[2] = {1024, 1024};
        ok += zp_records_verify(buf, len, lens, X.hashes, 2, out, it & 1) == 0;
    }
    T_TRUE(ok < 20000 * 4); /* mostly rejected, and nothing crashed */
}

/* ---- tool modes for the Python tests ------------------------------------------------------ */

static int stdin_closed;
static void on_stdin(uv_poll_t *p, int status, int events)
{
    char buf[256];
    ssize_t k = read(0, buf, sizeof buf);
    if (k <= 0) {
        stdin_closed = 1;
        uv_poll_stop(p);
    }
}

static bool cond_stdin(void *a)
{
    return stdin_closed;
}

static void print_stats(zn_peer_node *n)
{
    zn_peer_stats s;
    zn_peer_get_stats(n, &s);
    printf("STATS peers=%u ext_peers=%u conns=%u bans=%llu verify_failures=%llu served=%llu "
           "refused=%llu data_up=%llu bytes_up=%llu bytes_down=%llu\n",
           s.peers, s.ext_peers, s.conns, (unsigned long long)s.bans,
           (unsigned long long)s.verify_failures, (unsigned long long)s.requests_served,
           (unsigned long long)s.requests_refused, (unsigned long long)s.data_up,
           (unsigned long long)s.bytes_up, (unsigned long long)s.bytes_down);
    fflush(stdout);
}

/* ---- hostile peers (issue 19) -------------------------------------------------------- */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* A raw peer: a non-blocking TCP socket from src to the node (or one end of
 * a socketpair the node adopted). */
static int raw_tcp(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t o = 0; o < n;) {
        ssize_t w = write(fd, b + o, n - o);
        if (w > 0)
            o += (size_t)w;
        else
            uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static void raw_ext(int fd, uint8_t ext, const uint8_t *p, size_t n)
{
    uint8_t h[6] = {(uint8_t)((n + 2) >> 24), (uint8_t)((n + 2) >> 16), (uint8_t)((n + 2) >> 8),
                    (uint8_t)(n + 2), 20, ext};
    raw_send(fd, h, 6);
    raw_send(fd, p, n);
}

/* Our handshake with a fresh peer id, then the extension handshake. */
static void raw_hello(int fd)
{
    uint8_t hs[68], pid[20] = "-RAW001-";
    uv_random(NULL, NULL, pid + 8, 12, 0, NULL);
    zp_handshake(hs, IH, pid);
    raw_send(fd, hs, 68);
    static const char eh[] = "d1:md7:zfs_xeti3eee";
    raw_ext(fd, 0, (const uint8_t *)eh, sizeof eh - 1);
}

typedef struct rawrd {
    int fd;
    size_t want, got;
    bool eof;
    uint8_t buf[1 << 16];
} rawrd;

static bool cond_raw(void *a)
{
    rawrd *r = a;
    while (r->got < sizeof r->buf) {
        ssize_t k = read(r->fd, r->buf + r->got, sizeof r->buf - r->got);
        if (k > 0)
            r->got += (size_t)k;
        else {
            if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                r->eof = true;
            break;
        }
    }
    return r->eof || (r->want && r->got >= r->want);
}

/* A peer banned for a malformed message stays banned by address: new peer
 * ids from its IP get no handshake; another address does. */
static void test_bans_hold(void)
{
    mem ma = MEMI(0, X.n, 1, true, true);
    zn_peer_provider pa = mem_provider(&ma);
    zn_peer_opts oa = {.bind = "127.0.0.1"};
    zn_peer_node *a;
    T_EQ_INT(zn_peer_node_new(&loop, &oa, &pa, &a), 0);
    zn_peer_swarm_join(a, IH);
    int port = zn_peer_node_port(a);
    int fd = raw_tcp("127.0.0.2", port);
    T_TRUE(fd >= 0);
    raw_hello(fd);
    uint8_t bad[41] = {0x99};
    raw_ext(fd, ZP_EXT_ZFS_XET, bad, sizeof bad);
    rawrd *r = calloc(1, sizeof *r);
    r->fd = fd;
    T_TRUE(run_until(cond_raw, r, 5000) && r->eof);
    close(fd);
    zn_peer_stats st;
    zn_peer_get_stats(a, &st);
    T_EQ_INT(st.bans, 1);
    for (int k = 0; k < 5; k++) { /* new peer ids, same address */
        fd = raw_tcp("127.0.0.2", port);
        raw_hello(fd);
        memset(r, 0, sizeof *r);
        r->fd = fd, r->want = 68;
        run_until(cond_raw, r, 5000);
        T_TRUE(r->eof && r->got < 68);
        close(fd);
    }
    fd = raw_tcp("127.0.0.3", port); /* another address */
    raw_hello(fd);
    memset(r, 0, sizeof *r);
    r->fd = fd, r->want = 68;
    T_TRUE(run_until(cond_raw, r, 5000) && r->got >= 68);
    close(fd);
    free(r);
    drain(a, NULL);
}

typedef struct served {
    zn_peer_node *n;
    uint64_t want;
} served;

static bool cond_served(void *a)
{
    served *s = a;
    zn_peer_stats st;
    zn_peer_get_stats(s->n, &st);
    return st.requests_served + st.requests_refused >= s->want;
}

static bool cond_stall(void *a)
{
    zn_peer_stats st;
    zn_peer_get_stats(a, &st);
    return st.stall_drops > 0 && st.conns == 0;
}

/* A peer that sends many requests and reads nothing: the node answers about
 * two answers' worth, handles nothing more from it, and drops it once it
 * has read nothing for write_stall_ms; a request above 64 chunks is refused. */
static void test_upload_bounded(void)
{
    mem ma = MEMI(0, X.n, 1, true, true);
    zn_peer_provider pa = mem_provider(&ma);
    zn_peer_opts oa = {.no_listen = true, .write_stall_ms = 1500};
    zn_peer_node *a;
    T_EQ_INT(zn_peer_node_new(&loop, &oa, &pa, &a), 0);
    zn_peer_swarm_join(a, IH);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    int sv[2];
    T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    T_EQ_INT(zn_peer_adopt(a, sv[0], NULL), 0);
    raw_hello(sv[1]);
    uint8_t m[45];
    raw_ext(sv[1], ZP_EXT_ZFS_XET, m, zp_zfs_request(m, 1, &X.hash, 0, 100)); /* > 64 chunks */
    for (uint32_t k = 0; k < 60; k++) {
        uint32_t s = (k * 64) % (X.n - 64);
        raw_ext(sv[1], ZP_EXT_ZFS_XET, m, zp_zfs_request(m, 2 + k, &X.hash, s, s + 64));
    }
    served sw = {a, 3};
    T_TRUE(run_until(cond_served, &sw, 5000));
    run_until(cond_done, &(result){0}, 500);
    zn_peer_stats st;
    zn_peer_get_stats(a, &st);
    fprintf(stderr, "  never-reading peer: %llu answered (%llu B), %llu refused of 61\n",
            (unsigned long long)st.requests_served, (unsigned long long)st.data_up,
            (unsigned long long)st.requests_refused);
    T_EQ_INT(st.requests_refused, 1); /* the 100-chunk one */
    /* queued: at most two answers' worth (~17 MiB) plus the one that crossed it */
    T_TRUE(st.requests_served >= 1 && st.requests_served < 60);
    T_TRUE(st.data_up <= 26u << 20);
    T_TRUE(run_until(cond_stall, a, 10000));
    zn_peer_get_stats(a, &st);
    T_EQ_INT(st.stall_drops, 1);
    T_EQ_INT(st.bans, 0);
    close(sv[1]);
    drain(a, NULL);
}

/* HAVE runs kept as ranges: overlapping and repeated runs merge; coverage
 * answers by range. */
static void test_have_ranges(void)
{
    mem mb = MEMI(0, 0, 0, true, true);
    zn_peer_provider pb = mem_provider(&mb);
    zn_peer_opts ob = {.no_listen = true};
    zn_peer_node *b;
    T_EQ_INT(zn_peer_node_new(&loop, &ob, &pb, &b), 0);
    zn_peer_swarm_join(b, IH);
    int sv[2];
    T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    T_EQ_INT(zn_peer_adopt(b, sv[0], NULL), 0);
    raw_hello(sv[1]);
    zn_chunk_run runs[4096];
    for (uint32_t k = 0; k < 4096; k++)
        runs[k] = (zn_chunk_run){0, 8192};
    uint8_t *p = malloc(37 + 8 * 4096);
    for (int i = 0; i < 8; i++) /* maximal HAVEs: cheap, whatever they name */
        raw_ext(sv[1], ZP_EXT_ZFS_XET, p, zp_zfs_have(p, &X.hash, runs, 4096));
    xet_hash y = X.hash;
    y.b[0] ^= 1;
    zn_chunk_run r2[3] = {{10, 20}, {30, 40}, {15, 31}};
    raw_ext(sv[1], ZP_EXT_ZFS_XET, p, zp_zfs_have(p, &y, r2, 3));
    zn_chunk_run r3[1] = {{40, 50}};
    raw_ext(sv[1], ZP_EXT_ZFS_XET, p, zp_zfs_have(p, &y, r3, 1));
    hold h = {b, &y, 10, 50};
    T_TRUE(run_until(cond_holders, &h, 5000));
    T_EQ_INT(zn_peer_holders(b, &X.hash, 0, 8192), 1);
    T_EQ_INT(zn_peer_holders(b, &y, 10, 50), 1);
    T_EQ_INT(zn_peer_holders(b, &y, 9, 11), 0);
    T_EQ_INT(zn_peer_holders(b, &y, 49, 51), 0);
    free(p);
    close(sv[1]);
    drain(b, NULL);
}

/* ---- zest (ut_xet only) peers, issue 21 ------------------------------------------------ */

/* Read exactly n bytes from a non-blocking fd, running the loop meanwhile. */
static bool raw_read(int fd, uint8_t *out, size_t n, unsigned ms)
{
    uint64_t end = uv_now(&loop) + ms;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, out + got, n - got);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || uv_now(&loop) > end)
            return false;
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&loop);
    }
    return true;
}

/* The next ut_xet message (after [len][20][ext]); malloc'd, *len its size;
 * NULL on EOF / timeout.  Other frames are skipped. */
static uint8_t *raw_ut_msg(int fd, size_t *len, uint8_t *ext)
{
    for (;;) {
        uint8_t h[4];
        if (!raw_read(fd, h, 4, 10000))
            return NULL;
        uint32_t L = xet_be32(h);
        if (!L)
            continue;
        uint8_t *b = malloc(L);
        if (!raw_read(fd, b, L, 10000)) {
            free(b);
            return NULL;
        }
        if (L >= 3 && b[0] == 20 && b[1] != 0) {
            *ext = b[1];
            *len = L - 2;
            memmove(b, b + 2, L - 2);
            return b;
        }
        free(b);
    }
}

/* Every chunk of X as records (scheme none), one bit flipped in chunk `flip`
 * (-1: none). */
static uint8_t *x_records(size_t *len, int flip)
{
    size_t n = X.off[X.n] + (size_t)X.n * XET_CHUNK_HEADER_LEN, o = 0;
    uint8_t *r = malloc(n);
    for (uint32_t k = 0; k < X.n; k++) {
        xet_chunk_header h = {0, XET_SCHEME_NONE, X.lens[k], X.lens[k]};
        xet_chunk_header_write(&h, r + o);
        memcpy(r + o + XET_CHUNK_HEADER_LEN, X.data + X.off[k], X.lens[k]);
        if ((int)k == flip)
            r[o + XET_CHUNK_HEADER_LEN + 7] ^= 0x10;
        o += XET_CHUNK_HEADER_LEN + X.lens[k];
    }
    *len = n;
    return r;
}

/* A zest-like peer on the far end of a socketpair B "dialled": handshake,
 * extension handshake with ut_xet only. */
static int zest_peer(zn_peer_node *b)
{
    int sv[2];
    T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    T_EQ_INT(zn_peer_adopt(b, sv[0], IH), 0);
    uint8_t hs[68], pid[20] = "-ZE0200-";
    T_TRUE(raw_read(sv[1], hs, 68, 5000));
    uv_random(NULL, NULL, pid + 8, 12, 0, NULL);
    zp_handshake(hs, IH, pid);
    raw_send(sv[1], hs, 68);
    static const char eh[] = "d1:md6:ut_xeti1ee1:v8:zest/0.3e";
    raw_ext(sv[1], 0, (const uint8_t *)eh, sizeof eh - 1);
    pair p = {b, 1};
    T_TRUE(run_until(cond_ext, &p, 5000));
    return sv[1];
}

/* Answer the next CHUNK_REQUEST as zest does: the whole entry, offset 0. */
static void zest_answer(int fd, int flip, uint32_t *rs, uint32_t *re)
{
    size_t ml;
    uint8_t ext = 0, *m = raw_ut_msg(fd, &ml, &ext);
    T_TRUE(m && ml == 45 && m[0] == ZP_UT_REQUEST && ext == ZP_EXT_UT_XET);
    if (!m)
        return;
    T_TRUE(!memcmp(m + 5, X.hash.b, 32));
    *rs = xet_be32(m + 37), *re = xet_be32(m + 41);
    size_t rl;
    uint8_t *recs = x_records(&rl, flip), hdr[13];
    zp_ut_response_hdr(hdr, xet_be32(m + 1), 0, (uint32_t)rl);
    uint8_t *msg = malloc(13 + rl);
    memcpy(msg, hdr, 13);
    memcpy(msg + 13, recs, rl);
    raw_ext(fd, 1, msg, 13 + rl); /* zest answers on id 1 */
    free(msg), free(recs), free(m);
}

static void test_zest_fetch(void)
{
    mem mb = MEMI(0, 0, 0, false, true); /* no manifest, holds nothing */
    zn_peer_provider pb = mem_provider(&mb);
    zn_peer_opts ob = {.no_listen = true};
    zn_peer_node *b;
    T_EQ_INT(zn_peer_node_new(&loop, &ob, &pb, &b), 0);
    int fd = zest_peer(b);
    T_EQ_INT(zn_peer_holders(b, &X.hash, 10, 20), 1); /* a candidate, announcing nothing */
    /* no manifest: the whole xorb, verified by its Merkle tree */
    result r = {0};
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 10, 20, 0, fetch_cb, &r, NULL), 0);
    uint32_t rs = 0, re = 0;
    zest_answer(fd, -1, &rs, &re);
    T_TRUE(run_until(cond_done, &r, 10000));
    T_EQ_INT(r.err, 0);
    T_TRUE(rs == 10 && re == 20);
    T_TRUE(r.len == X.off[20] - X.off[10] && !memcmp(r.data, X.data + X.off[10], r.len));
    free(r.data);
    /* right after, another range of it comes from the whole xorb kept in
     * memory: nothing is asked */
    memset(&r, 0, sizeof r);
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 150, 170, 0, fetch_cb, &r, NULL), 0);
    T_TRUE(run_until(cond_done, &r, 10000));
    T_EQ_INT(r.err, 0);
    T_TRUE(r.len == X.off[170] - X.off[150] && !memcmp(r.data, X.data + X.off[150], r.len));
    free(r.data);
    uint8_t extra_b[1];
    T_TRUE(read(fd, extra_b, 1) < 0 && errno == EAGAIN);
    /* once that is dropped (2 s), the manifest kept: many parts, one request
     * to the zest peer, its whole answer verified against the manifest fills
     * them all */
    result never = {0};
    run_until(cond_done, &never, 2200);
    memset(&r, 0, sizeof r);
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 1, X.n, 0, fetch_cb, &r, NULL), 0);
    zest_answer(fd, -1, &rs, &re);
    T_TRUE(run_until(cond_done, &r, 10000));
    T_EQ_INT(r.err, 0);
    T_TRUE(r.len == X.off[X.n] - X.off[1] && !memcmp(r.data, X.data + X.off[1], r.len));
    free(r.data);
    T_TRUE(read(fd, extra_b, 1) < 0 && errno == EAGAIN); /* nothing more was asked */
    /* NOT_FOUND: the fetch fails over (nobody else: -ENOENT), no ban, and
     * the peer is no holder of that xorb any more */
    xet_hash other = X.hash;
    other.b[0] ^= 1;
    memset(&r, 0, sizeof r);
    T_EQ_INT(zn_peer_fetch(b, &other, 0, 4, 0, fetch_cb, &r, NULL), 0);
    size_t ml;
    uint8_t ext, *m = raw_ut_msg(fd, &ml, &ext);
    T_TRUE(m && ml == 45 && m[0] == ZP_UT_REQUEST);
    uint8_t nf[37];
    zp_ut_not_found(nf, m ? xet_be32(m + 1) : 0, &other);
    raw_ext(fd, 1, nf, sizeof nf);
    free(m);
    T_TRUE(run_until(cond_done, &r, 10000));
    T_EQ_INT(r.err, -ENOENT);
    T_EQ_INT(zn_peer_holders(b, &other, 0, 4), 0);
    T_EQ_INT(zn_peer_holders(b, &X.hash, 0, 4), 1);
    zn_peer_stats st;
    zn_peer_get_stats(b, &st);
    T_EQ_INT(st.bans, 0);
    close(fd);
    drain(b, NULL);

    /* a lying zest peer (one bit of a chunk flipped, no manifest at hand):
     * banned, the fetch fails (the caller goes to the CDN) */
    T_EQ_INT(zn_peer_node_new(&loop, &ob, &pb, &b), 0);
    fd = zest_peer(b);
    memset(&r, 0, sizeof r);
    T_EQ_INT(zn_peer_fetch(b, &X.hash, 0, 8, 0, fetch_cb, &r, NULL), 0);
    zest_answer(fd, 3, &rs, &re);
    T_TRUE(run_until(cond_done, &r, 10000));
    T_EQ_INT(r.err, -ENOENT);
    zn_peer_get_stats(b, &st);
    T_EQ_INT(st.bans, 1);
    T_EQ_INT(st.verify_failures, 1);
    close(fd);
    drain(b, NULL);
}

/* A zest client asks for a whole xorb (more than 64 chunks): one answer,
 * exactly the records of [0, n), on the id it advertised. */
static void test_zest_serve_whole(void)
{
    mem ma = MEMI(0, X.n, 1, true, true);
    zn_peer_provider pa = mem_provider(&ma);
    zn_peer_opts oa = {.no_listen = true};
    zn_peer_node *a;
    T_EQ_INT(zn_peer_node_new(&loop, &oa, &pa, &a), 0);
    zn_peer_swarm_join(a, IH);
    int sv[2];
    T_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    T_EQ_INT(zn_peer_adopt(a, sv[0], NULL), 0);
    uint8_t hs[68], pid[20] = "-ZE0200-abcdefghijkl";
    zp_handshake(hs, IH, pid);
    raw_send(sv[1], hs, 68);
    T_TRUE(raw_read(sv[1], hs, 68, 5000));
    uint8_t fh[6]; /* the extension handshake comes first */
    T_TRUE(raw_read(sv[1], fh, 6, 5000) && fh[4] == 20 && fh[5] == 0);
    uint8_t *skip = malloc(xet_be32(fh));
    T_TRUE(raw_read(sv[1], skip, xet_be32(fh) - 2, 5000));
    free(skip);
    static const char eh[] = "d1:md6:ut_xeti7ee1:v8:zest/0.3e";
    raw_ext(sv[1], 0, (const uint8_t *)eh, sizeof eh - 1);
    uint8_t q[45];
    raw_ext(sv[1], ZP_EXT_UT_XET, q, zp_ut_request(q, 9, &X.hash, 0, X.n));
    size_t ml;
    uint8_t ext = 0, *m = raw_ut_msg(sv[1], &ml, &ext);
    size_t rl;
    uint8_t *recs = x_records(&rl, -1);
    T_TRUE(m && ext == 7 && m[0] == ZP_UT_RESPONSE && xet_be32(m + 1) == 9 &&
           xet_be32(m + 5) == 0 && ml == 13 + rl && !memcmp(m + 13, recs, rl));
    free(m), free(recs);
    /* from chunk 0, held whole: the whole xorb, as zest answers (it caches
     * that as the xorb's entry); from elsewhere: exactly the range */
    raw_ext(sv[1], ZP_EXT_UT_XET, q, zp_ut_request(q, 11, &X.hash, 0, 10));
    m = raw_ut_msg(sv[1], &ml, &ext);
    recs = x_records(&rl, -1);
    T_TRUE(m && m[0] == ZP_UT_RESPONSE && xet_be32(m + 1) == 11 && xet_be32(m + 5) == 0 &&
           ml == 13 + rl && !memcmp(m + 13, recs, rl));
    free(m);
    raw_ext(sv[1], ZP_EXT_UT_XET, q, zp_ut_request(q, 12, &X.hash, 5, 10));
    m = raw_ut_msg(sv[1], &ml, &ext);
    size_t r5 = X.off[5] + 5 * XET_CHUNK_HEADER_LEN, r10 = X.off[10] + 10 * XET_CHUNK_HEADER_LEN;
    T_TRUE(m && m[0] == ZP_UT_RESPONSE && xet_be32(m + 5) == 5 && ml == 13 + (r10 - r5) &&
           !memcmp(m + 13, recs + r5, r10 - r5));
    free(m), free(recs);
    /* more than a xorb holds: NOT_FOUND */
    raw_ext(sv[1], ZP_EXT_UT_XET, q, zp_ut_request(q, 10, &X.hash, 0, X.n + 1));
    m = raw_ut_msg(sv[1], &ml, &ext);
    T_TRUE(m && m[0] == ZP_UT_NOT_FOUND && xet_be32(m + 1) == 10);
    free(m);
    close(sv[1]);
    drain(a, NULL);
}

static int tool_serve(int argc, char **argv)
{
    mem ma = MEMI(0, X.n, 1, true, true);
    zn_peer_provider pa = mem_provider(&ma);
    zn_peer_opts oa = {.bind = "127.0.0.1"};
    zn_peer_node *a;
    if (zn_peer_node_new(&loop, &oa, &pa, &a) != 0)
        return 2;
    uint8_t zih[20];
    zn_peer_zest_info_hash(&X.hash, zih);
    zn_peer_swarm_join(a, IH);
    zn_peer_announce_have(a, &X.hash, 0, X.n);
    char hx[65], zx[41], ihx[41];
    xet_hex(X.hash.b, 32, hx);
    xet_hex(zih, 20, zx);
    xet_hex(IH, 20, ihx);
    printf("PORT %d XORB %s ZIH %s IH %s\n", zn_peer_node_port(a), hx, zx, ihx);
    fflush(stdout);
    uv_poll_t p;
    uv_poll_init(&loop, &p, 0);
    uv_poll_start(&p, UV_READABLE | UV_DISCONNECT, on_stdin);
    run_until(cond_stdin, NULL, 600000);
    uv_close((uv_handle_t *)&p, NULL);
    print_stats(a);
    drain(a, NULL);
    return 0;
}

static bool cond_ext_or_gone(void *a)
{
    zn_peer_stats s;
    zn_peer_get_stats(a, &s);
    return s.ext_peers > 0 || s.conns == 0;
}

static int tool_fetch(int argc, char **argv, bool connect_only)
{
    int port = atoi(argv[2]);
    uint8_t ih[20];
    if (xet_unhex(argv[3], 20, ih) != 0)
        return 2;
    bool manifest = false;
    for (int k = 4; k < argc; k++)
        manifest |= !strcmp(argv[k], "manifest");
    mem mb = MEMI(0, 0, 0, manifest, true);
    zn_peer_provider pb = mem_provider(&mb);
    zn_peer_opts ob = {.bind = "127.0.0.1", .req_timeout_ms = 5000};
    zn_peer_node *b;
    if (zn_peer_node_new(&loop, &ob, &pb, &b) != 0)
        return 2;
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", port, &sin);
    if (zn_peer_add(b, ih, (struct sockaddr *)&sin) != 0)
        return 2;
    run_until(cond_ext_or_gone, b, 15000);
    if (connect_only) {
        run_until(cond_stdin, NULL, 1000); /* let the peer talk a little */
        print_stats(b);
        drain(NULL, b);
        return 0;
    }
    uint32_t s = (uint32_t)atoi(argv[4]), e = (uint32_t)atoi(argv[5]);
    /* a zfs_xet peer announces what it holds right after its handshake; a
     * zest peer announces nothing (then this just waits a little) */
    hold h = {b, &X.hash, s, e};
    run_until(cond_holders, &h, 1500);
    result r = {0};
    int rc = zn_peer_fetch(b, &X.hash, s, e, 20000, fetch_cb, &r, NULL);
    if (rc == 0)
        run_until(cond_done, &r, 30000);
    else
        r.err = rc;
    bool ok = !r.err && e <= X.n && r.len == X.off[e] - X.off[s] &&
              !memcmp(r.data, X.data + X.off[s], r.len);
    zn_peer_stats st;
    zn_peer_get_stats(b, &st);
    int readd = zn_peer_add(b, ih, (struct sockaddr *)&sin);
    printf("RESULT err=%d ok=%d bans=%llu verify_failures=%llu readd=%d ext_peers=%u\n", r.err,
           ok, (unsigned long long)st.bans, (unsigned long long)st.verify_failures, readd,
           st.ext_peers);
    fflush(stdout);
    free(r.data);
    drain(NULL, b);
    return 0;
}

static int tool_dump(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/chunks.bin", dir);
    FILE *f = fopen(path, "wb");
    fwrite(X.data, 1, X.off[X.n], f);
    fclose(f);
    snprintf(path, sizeof path, "%s/hashes.bin", dir);
    f = fopen(path, "wb");
    fwrite(X.hashes, 32, X.n, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/lens.txt", dir);
    f = fopen(path, "w");
    for (uint32_t k = 0; k < X.n; k++)
        fprintf(f, "%u\n", X.lens[k]);
    fclose(f);
    snprintf(path, sizeof path, "%s/xorb.bin", dir);
    f = fopen(path, "wb");
    fwrite(X.hash.b, 1, 32, f);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    uv_loop_init(&loop);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *nch = getenv("ZP_NCHUNKS");
    txorb_make(&X, nch ? (uint32_t)atoi(nch) : NCH_DEFAULT);
    int rc;
    if (argc > 1 && !strcmp(argv[1], "serve"))
        rc = tool_serve(argc, argv);
    else if (argc > 5 && !strcmp(argv[1], "fetch"))
        rc = tool_fetch(argc, argv, false);
    else if (argc > 3 && !strcmp(argv[1], "connect"))
        rc = tool_fetch(argc, argv, true);
    else if (argc > 2 && !strcmp(argv[1], "dump"))
        rc = tool_dump(argv[2]);
    else {
        T_RUN(test_vectors);
        T_RUN(test_verify_codecs);
        T_RUN(test_fetch);
        T_RUN(test_have_updates);
        T_RUN(test_pipeline_cancel);
        T_RUN(test_timeouts);
        T_RUN(test_no_manifest_private);
        T_RUN(test_manifest_parts);
        T_RUN(test_upload_cap_max_conns);
        T_RUN(test_ipv6);
        T_RUN(test_liar_and_honest);
        T_RUN(test_pex);
        T_RUN(test_pending);
        T_RUN(test_slow_peer);
        T_RUN(test_private_xorb);
        T_RUN(test_parsers_random);
        T_RUN(test_bans_hold);
        T_RUN(test_upload_bounded);
        T_RUN(test_have_ranges);
        T_RUN(test_zest_fetch);
        T_RUN(test_zest_serve_whole);
        rc = t_done();
    }
    txorb_free(&X);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}
