/* fuzz_peernode.c — a real peer node (net/peer.c) driven over a socketpair by
 * a stranger's bytes: BT handshake, BEP 10 handshake, HAVE / REQUEST / DATA /
 * MREQ / MANIFEST / MPART / CANCEL / PENDING, ut_xet, ut_pex, keep-alives,
 * oversized and truncated frames, and the disconnect at the end of the input.
 *
 * The node holds two xorbs (X: held, its manifest known; Y: held too, so it
 * serves both) and may fetch: input byte 0 picks the mode —
 *   bit 0  the node dialled (it sends its handshake first) rather than accepted,
 *   bit 1  it fetches Y [0, NCH) (manifest from the peer: MREQ, MANIFEST/MPART),
 *   bit 2  it fetches X [2, 10) (manifest known: REQUEST, DATA),
 *   bit 3  upload pacing on (answers go through the pacing queue);
 * byte 1 sets the write size ((b + 1) * 61 bytes a loop turn), the rest is the
 * stream.  Invariants: a fetch that succeeds returns exactly the true bytes
 * (nothing unverified gets through), its callback runs once, and the node
 * lets go of everything (LeakSanitizer).
 *
 * Seeds from real exchanges: ZESTFS_PEERNODE_SEEDS=DIR replay_peernode
 * records a zestfs node fetching X and Y from another over a relay and writes
 * what each side sent as seeds (tests/fuzz/corpus/peernode/ holds them). */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"

#define NCH 16u

typedef struct txorb {
    xet_hash hash;
    xet_hash h[NCH];
    uint32_t l[NCH];
    uint64_t off[NCH + 1];
    uint8_t *data;
} txorb;

static txorb X, Y;
static uv_loop_t loop;
static bool inited;
static const uint8_t IH[20] = "zestfs-fuzz-swarm-01";

static void make(txorb *t, uint32_t seed)
{
    t->off[0] = 0;
    for (uint32_t k = 0; k < NCH; k++) {
        t->l[k] = 300 + (seed * 131 + k * 977) % 3000;
        t->off[k + 1] = t->off[k] + t->l[k];
    }
    t->data = malloc(t->off[NCH]);
    uint32_t s = seed * 2654435761u + 1;
    for (uint64_t i = 0; i < t->off[NCH]; i++) {
        s = s * 1103515245u + 12345u;
        t->data[i] = (uint8_t)(s >> 16);
    }
    xet_merkle_node leaves[NCH];
    for (uint32_t k = 0; k < NCH; k++) {
        xet_chunk_hash(t->data + t->off[k], t->l[k], &t->h[k]);
        leaves[k].hash = t->h[k];
        leaves[k].len = t->l[k];
    }
    xet_merkle_root(leaves, NCH, &t->hash);
}

static const txorb *which(const xet_hash *x)
{
    return xet_hash_eq(x, &X.hash) ? &X : xet_hash_eq(x, &Y.hash) ? &Y : NULL;
}

/* ---- provider: holds X and Y; knows X's manifest (and Y's with `full`) ---- */

static size_t pv_held(void *ud, const xet_hash *x, zn_chunk_run *out, size_t max)
{
    (void)ud;
    if (!which(x) || !max)
        return 0;
    out[0] = (zn_chunk_run){0, NCH};
    return 1;
}

static int pv_manifest(void *ud, const xet_hash *x, xet_hash **h, uint32_t **l, uint32_t *n)
{
    bool full = ud != NULL;
    const txorb *t = which(x);
    if (!t || (t == &Y && !full))
        return -ENOENT;
    *h = malloc(sizeof t->h);
    *l = malloc(sizeof t->l);
    memcpy(*h, t->h, sizeof t->h);
    memcpy(*l, t->l, sizeof t->l);
    *n = NCH;
    return 0;
}

static int pv_parts(void *ud, const xet_hash *x, uint32_t **idx, xet_hash **h, uint32_t **l,
                    uint32_t *m)
{
    (void)ud;
    const txorb *t = which(x);
    if (t != &Y) /* some of Y's hashes, as a node would know from chunks it verified */
        return -ENOENT;
    *idx = malloc(4 * sizeof **idx);
    *h = malloc(4 * sizeof **h);
    *l = malloc(4 * sizeof **l);
    for (uint32_t k = 0; k < 4; k++) {
        (*idx)[k] = 2 * k + 1;
        (*h)[k] = t->h[2 * k + 1];
        (*l)[k] = t->l[2 * k + 1];
    }
    *m = 4;
    return 0;
}

static int pv_read(void *ud, const xet_hash *x, uint32_t s, uint32_t e, zn_peer_read_cb cb,
                   void *arg)
{
    (void)ud;
    const txorb *t = which(x);
    if (!t || s >= e || e > NCH)
        return -ENOENT;
    cb(arg, 0, t->l + s, t->h + s, t->data + t->off[s], t->off[e] - t->off[s]);
    return 0;
}

static bool pv_may_serve(void *ud, const uint8_t ih[20])
{
    (void)ud;
    return !memcmp(ih, IH, 20);
}

static zn_peer_provider provider(bool full)
{
    zn_peer_provider p = {.ud = full ? (void *)1 : NULL, .held = pv_held,
                          .manifest = pv_manifest, .parts = pv_parts, .read_chunks = pv_read,
                          .may_serve = pv_may_serve};
    return p;
}

/* ---- fetches ---- */

typedef struct res {
    const txorb *t;
    uint32_t s, e;
    int calls, err;
} res;

static void fetch_cb(void *ud, int err, const uint32_t *lens, const xet_hash *hashes,
                     const uint8_t *data, size_t len)
{
    res *r = ud;
    r->calls++;
    r->err = err;
    if (err)
        return;
    /* nothing unverified gets through */
    FZ_CHECK(len == r->t->off[r->e] - r->t->off[r->s]);
    FZ_CHECK(!memcmp(data, r->t->data + r->t->off[r->s], len));
    FZ_CHECK(!memcmp(lens, r->t->l + r->s, (r->e - r->s) * sizeof *lens));
    FZ_CHECK(!memcmp(hashes, r->t->h + r->s, (r->e - r->s) * sizeof *hashes));
}

int fz_peernode_seeds(const char *dir);

static void init(void)
{
    if (inited)
        return;
    inited = true;
    make(&X, 1);
    make(&Y, 2);
    uv_loop_init(&loop);
    signal(SIGPIPE, SIG_IGN); /* as zestfs does: a closed peer is an error, not a signal */
    const char *dir = getenv("ZESTFS_PEERNODE_SEEDS");
    if (dir) /* write the seeds instead */
        exit(fz_peernode_seeds(dir));
}

static void drain_fd(int fd)
{
    uint8_t b[65536];
    while (read(fd, b, sizeof b) > 0)
        ;
}

static zn_peer_node *node_new(bool full, bool paced)
{
    zn_peer_opts o = {.no_listen = true, .no_pex = false, .req_timeout_ms = 1000,
                      .upload_rate = paced ? (64u << 20) : 0};
    zn_peer_provider p = provider(full);
    zn_peer_node *n = NULL;
    FZ_CHECK(zn_peer_node_new(&loop, &o, &p, &n) == 0);
    zn_peer_swarm_join(n, IH);
    zn_peer_announce_have(n, &X.hash, 0, NCH);
    zn_peer_announce_have(n, &Y.hash, 0, NCH);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    init();
    uint8_t mode = data[0];
    size_t step = ((size_t)data[1] + 1) * 61;
    data += 2, size -= 2;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 0;
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    zn_peer_node *n = node_new(false, mode & 8);
    if (zn_peer_adopt(n, sv[0], (mode & 1) ? IH : NULL) != 0)
        close(sv[0]);
    res ry = {&Y, 0, NCH, 0, 0}, rx = {&X, 2, 10, 0, 0};
    if (mode & 2)
        FZ_CHECK(zn_peer_fetch(n, &Y.hash, 0, NCH, 0, fetch_cb, &ry, NULL) == 0);
    bool xstarted = false; /* X's fetch once the peer announced something */
    size_t off = 0;
    unsigned spins = 0;
    while (off < size && spins < 100000) {
        if ((mode & 4) && !xstarted && zn_peer_holders(n, &X.hash, 2, 10) > 0) {
            FZ_CHECK(zn_peer_fetch(n, &X.hash, 2, 10, 0, fetch_cb, &rx, NULL) == 0);
            xstarted = true;
        }
        size_t k = size - off < step ? size - off : step;
        ssize_t w = write(sv[1], data + off, k);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break; /* the node closed it */
        uv_run(&loop, UV_RUN_NOWAIT);
        drain_fd(sv[1]);
        spins++;
    }
    shutdown(sv[1], SHUT_WR); /* the disconnect */
    for (unsigned i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        drain_fd(sv[1]);
        zn_peer_stats st;
        zn_peer_get_stats(n, &st);
        if (st.conns == 0 && (!(mode & 2) || ry.calls) && (!xstarted || rx.calls))
            break;
    }
    zn_peer_node_free(n);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(sv[1]);
    FZ_CHECK(ry.calls == ((mode & 2) ? 1 : 0));
    FZ_CHECK(rx.calls == (xstarted ? 1 : 0));
    return 0;
}

/* ---- seeds from a real exchange (not part of the fuzzing) ---- */

typedef struct relay {
    int a, b;        /* our ends towards the server / the client node */
    uv_poll_t pa, pb;
    uint8_t *rec[2]; /* [0] client → server, [1] server → client */
    size_t len[2];
} relay;

static void pump(int from, int to, uint8_t **rec, size_t *len)
{
    uint8_t b[65536];
    ssize_t k;
    while ((k = read(from, b, sizeof b)) > 0) {
        *rec = realloc(*rec, *len + (size_t)k);
        memcpy(*rec + *len, b, (size_t)k);
        *len += (size_t)k;
        for (ssize_t o = 0; o < k;) {
            ssize_t w = write(to, b + o, (size_t)(k - o));
            if (w > 0)
                o += w;
        }
    }
}

static void on_pa(uv_poll_t *p, int st, int ev)
{
    relay *r = p->data;
    pump(r->a, r->b, &r->rec[1], &r->len[1]);
}

static void on_pb(uv_poll_t *p, int st, int ev)
{
    relay *r = p->data;
    pump(r->b, r->a, &r->rec[0], &r->len[0]);
}

static void put_seed(const char *dir, const char *name, uint8_t mode, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    uint8_t hdr[2] = {mode, 255};
    fwrite(hdr, 1, 2, f);
    fwrite(p, 1, n, f);
    fclose(f);
}

int fz_peernode_seeds(const char *dir)
{
    int s1[2], s2[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s1) || socketpair(AF_UNIX, SOCK_STREAM, 0, s2))
        return 1;
    relay r = {.a = s1[1], .b = s2[1]};
    fcntl(r.a, F_SETFL, O_NONBLOCK);
    fcntl(r.b, F_SETFL, O_NONBLOCK);
    zn_peer_node *srv = node_new(true, false), *cli = node_new(false, false);
    zn_peer_adopt(srv, s1[0], NULL);
    zn_peer_adopt(cli, s2[0], IH);
    uv_poll_init(&loop, &r.pa, r.a);
    uv_poll_init(&loop, &r.pb, r.b);
    r.pa.data = r.pb.data = &r;
    uv_poll_start(&r.pa, UV_READABLE, on_pa);
    uv_poll_start(&r.pb, UV_READABLE, on_pb);
    res ry = {&Y, 0, NCH, 0, 0}, rx = {&X, 2, 10, 0, 0};
    zn_peer_fetch(cli, &Y.hash, 0, NCH, 5000, fetch_cb, &ry, NULL);
    bool xs = false;
    for (int i = 0; i < 100000 && !(ry.calls && rx.calls); i++) {
        if (!xs && zn_peer_holders(cli, &X.hash, 2, 10) > 0) {
            zn_peer_fetch(cli, &X.hash, 2, 10, 5000, fetch_cb, &rx, NULL);
            xs = true;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    fprintf(stderr, "seeds: fetch Y err %d, X err %d; client sent %zu B, server %zu B\n",
            ry.err, rx.err, r.len[0], r.len[1]);
    /* incoming: what the client node sent the server; dialled: the server's side */
    put_seed(dir, "real-incoming", 0, r.rec[0], r.len[0]);
    put_seed(dir, "real-dialled-fetch", 1 | 2 | 4, r.rec[1], r.len[1]);
    put_seed(dir, "real-incoming-paced", 8, r.rec[0], r.len[0]);
    uv_close((uv_handle_t *)&r.pa, NULL);
    uv_close((uv_handle_t *)&r.pb, NULL);
    zn_peer_node_free(srv);
    zn_peer_node_free(cli);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(r.a);
    close(r.b);
    free(r.rec[0]);
    free(r.rec[1]);
    return ry.err || rx.err;
}
