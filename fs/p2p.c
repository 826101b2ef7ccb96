/* p2p.c — the peer swarm inside zestfs (p2p.h; issue #5 parts 3, 5, 6).
 *
 * Design
 * ------
 * One zn_peer_node per process, on the mount's (or seed's) loop.  It serves
 * the store through a provider:
 *   held         zc_runs (the index; memory only),
 *   read_chunks  zc_lookup + zc_chunk_hashes + zc_read on the libuv pool
 *                (segments found at zc_open are verified on first use),
 *   manifest     store metadata "manifest/<xorb>" (read on the loop: a
 *                manifest is at most 8192 × 36 bytes, read once per MREQ),
 *   may_serve    the swarm of a repository we present and that is public.
 * Privacy.  By stored fact, never by whether a token was used: each repo
 * model carries the verdict of the Hub's repo info asked without a token
 * (zf_repo.vis, fs/hubload.c), persisted with it in the store, so a mount
 * with or without a token and `zestfs seed` on the same store agree.  Only
 * a repo whose verdict is public, or one named by `--seed-private REPO`, has
 * its swarm joined, announced (trackers, DHT) and served; private, gated and
 * unknown (never checked) repos are not.  A verdict that changes when the
 * repo is resolved again (zf_p2p_add_repo with the new model) joins the
 * swarm or stops serving it at once.  A request is refused unless the swarm
 * it arrives on is served and its repo's file maps name the xorb (below).
 * Swarm identity: one swarm per repository, zn_swarm_repo_id (net/disc.h);
 * and zest's one per xorb for every xorb a served repo names (below, "zest's
 * per-xorb swarms": accepted, announced and looked up like zest does).
 * Manifests.  After a zc_put (pool), if the store holds [0, n) of the xorb
 * and the (hash, len) list of those chunks, read from the segment headers,
 * aggregates (xet_merkle_root, via zp_manifest_verify) to the xorb hash, the
 * list is the xorb's manifest: persisted as "manifest/<xorb>" ("ZFMANI01",
 * n u32 LE, then n × {hash[32], len u32 LE}) and served.  That check also
 * proves CDN data whole against the xorb hash (counted: manifests_built).
 * Trackers (--tracker URL, net/disc.h): each served swarm is announced to
 * each tracker from the 1 s timer (started, then again after the tracker's
 * interval, clamped to 30 s .. 30 min) and the peers returned are dialled.
 * Static peers (--peer HOST:PORT) are resolved once at start and dialled
 * for every joined swarm; a timer re-dials every 5 s (zn_peer_add answers
 * -EALREADY while connected), so a peer that starts later is found; changes
 * of the peer count are logged ("zestfs: peers: N connected, B banned").
 * Startup announce: per joined repo, a pool job reads the file maps
 * ("fmap/<xet id>") of its Xet files and collects their xorbs (bounded:
 * 65536), builds missing manifests, and the loop announces each xorb held.
 * Which xorbs a swarm serves.  Each swarm keeps the set of xorbs its repo's
 * file maps name: filled by that startup job, by the read path whenever a
 * reconstruction of one of the repo's files is learned (zf_p2p_repo_xorb)
 * and when a run is stored for it (zf_p2p_stored).  A peer of the swarm is
 * told of (HAVE), and served, only those (provider may_serve_xorb): a
 * private repo's xorb that a public repo shares only by content is not
 * served through the public swarm unless the public repo names it.
 * DHT (BEP 5, net/disc.h; on unless --no-dht).  One zn_dht on UDP (the peer
 * port's number unless --dht-port), state in <store>/dht.state, bootstrap
 * nodes --dht-bootstrap (default: the well-known Mainline routers; the
 * environment's ZESTFS_DHT_BOOTSTRAP, comma-separated, replaces that default;
 * "none": only the saved state).  Once bootstrapped (retried every 30 s while
 * the table is empty), every served swarm is announced (the node repeats it
 * every 15 min) with our peer TCP port, and looked up with get_peers: at
 * once, then every 5 min (every 30 s while no peer is connected;
 * ZESTFS_DHT_LOOKUP_MS sets both); the peers found are dialled.
 * PEX: the peer node's ut_pex (net/peer.h), off with --no-pex.
 * Pending: a CDN fetch of a range is announced to the swarm's peers as
 * PENDING (zf_p2p_cdn_fetching), so a peer about to fetch the same range
 * waits for ours (fs/read.c) — one CDN copy per swarm. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "disc.h"
#include "log.h"
#include "options.h"
#include "p2p.h"

#define MAN_MAGIC "ZFMANI01"
#define MPART_MAGIC "ZFMPRT01" /* known chunk hashes of a xorb: u32 m, (u32 idx, hash, u32 len) x m */
#define FMAP_MAGIC "ZFMAP001"
#define FMAP_REC 56
#define MAX_ANNOUNCE_XORBS 65536
#define REDIAL_MS 5000
#define MAX_RUNS 4096
#define ZX_WANTQ 256            /* per-xorb lookups waiting for the 1 s tick */
#define ZX_PER_TICK 16          /* per-xorb ids announced or looked up per tick */
#define ZX_DHT_MAX 4096         /* per-xorb ids kept announced on the DHT */
#define ZX_REANNOUNCE_MS 1800000u
#define ZX_RELOOK_MS 300000u

/* A set of xorb hashes (open addressing; the all-zero hash marks a free slot). */
typedef struct xset {
    xet_hash *v;
    size_t n, cap;
} xset;

struct zx_ent;
static bool hash_zero(const xet_hash *h)
{
    static const xet_hash z;
    return !memcmp(h, &z, sizeof z);
}

static size_t xset_slot(const xset *s, const xet_hash *h)
{
    uint64_t k;
    memcpy(&k, h->b, 8);
    size_t i = (size_t)(k & (s->cap - 1));
    while (!hash_zero(&s->v[i]) && !xet_hash_eq(&s->v[i], h))
        i = (i + 1) & (s->cap - 1);
    return i;
}

static bool xset_has(const xset *s, const xet_hash *h)
{
    return s->cap && !hash_zero(h) && xet_hash_eq(&s->v[xset_slot(s, h)], h);
}

static int xset_add(xset *s, const xet_hash *h)
{
    if (hash_zero(h))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        xset ns = {calloc(s->cap ? s->cap * 2 : 64, sizeof(xet_hash)), 0, s->cap ? s->cap * 2 : 64};
        if (!ns.v)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (!hash_zero(&s->v[i]))
                ns.v[xset_slot(&ns, &s->v[i])] = s->v[i], ns.n++;
        free(s->v);
        *s = ns;
    }
    size_t i = xset_slot(s, h);
    if (hash_zero(&s->v[i])) {
        s->v[i] = *h;
        s->n++;
    }
    return 0;
}

typedef struct p2p_swarm {
    uint8_t ih[20];
    char type[8];
    char *id;
    bool served;
    xset xorbs;                 /* the xorbs this repo's file maps name */
    bool dht_announced;
    bool dht_lookup;            /* a get_peers in flight */
    uint64_t dht_next;          /* uv_now of the next get_peers */
    uint64_t *next_ann;         /* per tracker: uv_now when to announce again */
    uint8_t *ann_state;         /* per tracker: 0 never, 1 in flight, 2 announced */
} p2p_swarm;

struct zf_p2p {
    uv_loop_t *loop;
    zc_store *store;
    zn_peer_node *node;
    zf_p2p_opts o;
    p2p_swarm *sw;
    size_t nsw, csw;
    struct sockaddr_storage *peers;
    size_t npeers;
    uv_timer_t redial;
    bool stopped;
    int works;                  /* pool jobs in flight */
    _Atomic uint64_t manifests_built, manifest_failures;
    pthread_mutex_t mpart_mu;   /* "mpart/<xorb>" read-modify-write (pool) */
    uint64_t reads;
    unsigned logged_peers, ticks;
    zn_http *http;              /* for http(s) trackers */
    zn_tracker **tr;
    size_t ntr;
    uint64_t logged_bans;
    zn_dht *dht;
    bool dht_ready, dht_booting;
    uint64_t dht_boot_next, dht_lookup_ms;
    uint64_t dht_lookups, dht_found, dht_announces;
    char *dht_state;
    /* zest's per-xorb swarms (below) */
    struct zx_ent *zx;
    size_t nzx, czx;
    uint32_t *zxi;              /* open addressing on the swarm id: entry index + 1 */
    size_t zxicap;
    size_t zx_cursor;
    uint32_t zx_wantq[ZX_WANTQ];
    size_t zx_wq_head, zx_wq_n;
    size_t zx_dht_ann;          /* per-xorb ids announced on the DHT */
    uint64_t zx_lookups, zx_announces;
};

const char *zf_p2p_type_name(enum zf_repo_type t)
{
    return t == ZF_DATASET ? "dataset" : t == ZF_SPACE ? "space" : "model";
}

const char zf_p2p_usage[] =
    "      --listen [ADDR:]PORT  peer swarm listener (default 0.0.0.0, port 0 = any;\n"
    "                          the port is printed)\n"
    "      --no-p2p            no peer swarm: read from the CDN only, serve nothing\n"
    "      --peer HOST:PORT    a peer to use and serve (repeatable)\n"
    "      --upload-rate BYTES upload cap per second, suffixes K/M/G (default none)\n"
    "      --max-peers N       connections at most (default 64)\n"
    "      --seed-private REPO serve REPO's swarm although the Hub does not say it is\n"
    "                          public (private, gated or unchecked; repeatable)\n"
    "      --tracker URL       announce the repos' swarms to a BitTorrent tracker\n"
    "                          (http://, https:// or udp://; repeatable)\n"
    "      --no-dht            do not use the Mainline DHT to find peers\n"
    "      --dht-bootstrap HOST:PORT  DHT node to start from (repeatable; default the\n"
    "                          public routers; 'none': only the saved routing table)\n"
    "      --dht-port PORT     UDP port of the DHT node (default: the peer port)\n"
    "      --no-pex            do not exchange peer lists with peers (ut_pex)\n";

int zf_p2p_opt(zf_p2p_opts *o, const char *name, const char *arg)
{
    if (!strcmp(name, "no-p2p")) {
        o->disabled = true;
        return 1;
    }
    if (!strcmp(name, "listen")) {
        o->listen = arg;
        return 1;
    }
    if (!strcmp(name, "no-dht") || !strcmp(name, "no-pex")) {
        *(name[3] == 'd' ? &o->no_dht : &o->no_pex) = true;
        return 1;
    }
    if (!strcmp(name, "dht-bootstrap")) {
        if (o->ndht_boot == ZF_P2P_MAX_LIST || (strcmp(arg, "none") && !strrchr(arg, ':'))) {
            fprintf(stderr, "zestfs: --dht-bootstrap %s: %s\n", arg,
                    o->ndht_boot == ZF_P2P_MAX_LIST ? "too many" : "not HOST:PORT or none");
            return -EINVAL;
        }
        o->dht_boot[o->ndht_boot++] = arg;
        return 1;
    }
    if (!strcmp(name, "dht-port")) {
        char *end;
        long v = strtol(arg, &end, 10);
        if (end == arg || *end || v < 0 || v > 65535) {
            fprintf(stderr, "zestfs: --dht-port %s: not a port\n", arg);
            return -EINVAL;
        }
        o->dht_port = (int)v;
        o->dht_port_set = true;
        return 1;
    }
    if (!strcmp(name, "tracker")) {
        if (o->ntrackers == ZF_P2P_MAX_LIST ||
            (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8) && strncmp(arg, "udp://", 6))) {
            fprintf(stderr, "zestfs: --tracker %s: %s\n", arg,
                    o->ntrackers == ZF_P2P_MAX_LIST ? "too many" : "not an http(s):// or udp:// URL");
            return -EINVAL;
        }
        o->trackers[o->ntrackers++] = arg;
        return 1;
    }
    if (!strcmp(name, "peer") || !strcmp(name, "seed-private")) {
        bool peer = name[0] == 'p';
        size_t *n = peer ? &o->npeers : &o->nseed_private;
        if (*n == ZF_P2P_MAX_LIST || (peer && !strrchr(arg, ':'))) {
            fprintf(stderr, "zestfs: --%s %s: %s\n", name, arg,
                    *n == ZF_P2P_MAX_LIST ? "too many" : "not HOST:PORT");
            return -EINVAL;
        }
        (peer ? o->peers : o->seed_private)[(*n)++] = arg;
        return 1;
    }
    if (!strcmp(name, "upload-rate") || !strcmp(name, "max-peers")) {
        uint64_t v;
        if (zf_parse_size(arg, &v) != 0 || (name[0] == 'm' && (v == 0 || v > 65535))) {
            fprintf(stderr, "zestfs: --%s %s: not a %s\n", name, arg,
                    name[0] == 'm' ? "count (1..65535)" : "rate");
            return -EINVAL;
        }
        if (name[0] == 'm')
            o->max_peers = (unsigned)v;
        else
            o->upload_rate = v;
        return 1;
    }
    return 0;
}

/* "[ADDR:]PORT", "[v6]:PORT" → addr (no brackets), port. */
static int split_hostport(const char *s, bool port_only_ok, char *host, size_t hl, uint16_t *port)
{
    const char *colon = strrchr(s, ':'), *ps = s;
    host[0] = 0;
    if (colon) {
        const char *h = s;
        size_t n = (size_t)(colon - s);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            h++;
            n -= 2;
        }
        if (n == 0 || n >= hl)
            return -EINVAL;
        memcpy(host, h, n);
        host[n] = 0;
        ps = colon + 1;
    } else if (!port_only_ok) {
        return -EINVAL;
    }
    char *end;
    long v = strtol(ps, &end, 10);
    if (end == ps || *end || v < 0 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int zf_p2p_reserve(zf_p2p_opts *o)
{
    o->reserve_fd = -1;
    if (o->disabled)
        return 0;
    char host[64];
    uint16_t port = 0;
    if (o->listen && split_hostport(o->listen, true, host, sizeof host, &port) != 0) {
        fprintf(stderr, "zestfs: --listen %s: not [ADDR:]PORT\n", o->listen);
        return -EINVAL;
    }
    if (!o->listen || !host[0])
        snprintf(host, sizeof host, "0.0.0.0");
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        sl = sizeof *a6;
    } else {
        fprintf(stderr, "zestfs: --listen %s: not a numeric address\n", o->listen);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -errno;
    /* not listening: the node's socket (libuv sets SO_REUSEADDR too) binds
     * the same address while this one holds the port */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        int e = -errno;
        fprintf(stderr, "zestfs: --listen %s: %s\n", o->listen ? o->listen : "0", strerror(-e));
        close(fd);
        return e;
    }
    o->reserve_fd = fd;
    o->port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    snprintf(o->bind, sizeof o->bind, "%s", host);
    zf_log(ZF_LOG_INFO, "zestfs: peers on %s%s%s:%u\n", ss.ss_family == AF_INET6 ? "[" : "", host,
            ss.ss_family == AF_INET6 ? "]" : "", o->port);
    return 0;
}

/* ---- provider ------------------------------------------------------------------ */

static size_t pv_held(void *ud, const xet_hash *xorb, zn_chunk_run *out, size_t max)
{
    zf_p2p *p = ud;
    zc_range r[256];
    long n = zc_runs(p->store, xorb, r, 256);
    if (n < 0)
        return 0;
    size_t k = 0;
    for (long i = 0; i < n && i < 256 && k < max; i++)
        out[k++] = (zn_chunk_run){r[i].start, r[i].end};
    return k;
}

static void man_key(const xet_hash *xorb, char out[80])
{
    char xs[65];
    xet_hash_to_string(xorb, xs);
    snprintf(out, 80, "manifest/%s", xs);
}

static int man_parse(const uint8_t *d, size_t len, xet_hash **hashes, uint32_t **lens,
                     uint32_t *n)
{
    if (len < 12 || memcmp(d, MAN_MAGIC, 8))
        return -EBADMSG;
    uint32_t k = (uint32_t)d[8] | (uint32_t)d[9] << 8 | (uint32_t)d[10] << 16 |
                 (uint32_t)d[11] << 24;
    if (k == 0 || k > XET_XORB_MAX_CHUNKS || len != 12 + (size_t)k * 36)
        return -EBADMSG;
    *hashes = malloc(k * sizeof **hashes);
    *lens = malloc(k * sizeof **lens);
    if (!*hashes || !*lens) {
        free(*hashes);
        free(*lens);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < k; i++) {
        const uint8_t *q = d + 12 + (size_t)i * 36;
        memcpy((*hashes)[i].b, q, 32);
        (*lens)[i] = (uint32_t)q[32] | (uint32_t)q[33] << 8 | (uint32_t)q[34] << 16 |
                     (uint32_t)q[35] << 24;
    }
    *n = k;
    return 0;
}

static void mpart_key(const xet_hash *xorb, char out[80])
{
    char xs[65];
    xet_hash_to_string(xorb, xs);
    snprintf(out, 80, "mpart/%s", xs);
}

/* "mpart/<xorb>" → entry count, or -EBADMSG; entries at d + 12, 40 B each. */
static long mpart_check(const uint8_t *d, size_t len)
{
    if (len < 12 || memcmp(d, MPART_MAGIC, 8))
        return -EBADMSG;
    uint32_t m = xet_le32(d + 8);
    if (m == 0 || m > XET_XORB_MAX_CHUNKS || len != 12 + (size_t)m * 40)
        return -EBADMSG;
    for (uint32_t k = 1; k < m; k++)
        if (xet_le32(d + 12 + 40 * (size_t)k) <= xet_le32(d + 12 + 40 * (size_t)(k - 1)))
            return -EBADMSG;
    return m;
}

/* provider: the chunk hashes we know of a xorb without its whole manifest */
static int pv_parts(void *ud, const xet_hash *xorb, uint32_t **idx, xet_hash **hashes,
                    uint32_t **lens, uint32_t *m)
{
    zf_p2p *p = ud;
    char key[80];
    mpart_key(xorb, key);
    void *d;
    size_t len;
    if (zc_meta_get(p->store, key, &d, &len) != 0)
        return -ENOENT;
    long k = mpart_check(d, len);
    if (k <= 0) {
        free(d);
        return -ENOENT;
    }
    *idx = malloc((size_t)k * sizeof **idx);
    *hashes = malloc((size_t)k * sizeof **hashes);
    *lens = malloc((size_t)k * sizeof **lens);
    if (!*idx || !*hashes || !*lens) {
        free(*idx), free(*hashes), free(*lens);
        *idx = NULL, *hashes = NULL, *lens = NULL;
        free(d);
        return -ENOENT;
    }
    for (long i = 0; i < k; i++) {
        const uint8_t *q = (const uint8_t *)d + 12 + 40 * (size_t)i;
        (*idx)[i] = xet_le32(q);
        memcpy((*hashes)[i].b, q + 4, 32);
        (*lens)[i] = xet_le32(q + 36);
    }
    *m = (uint32_t)k;
    free(d);
    return 0;
}

/* Pool: the lengths and hashes of stored chunks [cs, ce) from their
 * segments' headers into lens/hashes (ce - cs entries).  0, or negative
 * errno (-ENOENT, -EBADMSG: evicted or corrupt meanwhile). */
static int run_hashes(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce, uint32_t *lens,
                      xet_hash *hashes)
{
    int rc = 0;
    for (uint32_t k = cs; !rc && k < ce;) {
        zc_ref ref;
        rc = zc_lookup(p->store, xorb, k, &ref);
        if (rc == -EAGAIN)
            rc = zc_verify_segment(&ref);
        if (!rc) {
            uint32_t e = ref.seg_end < ce ? ref.seg_end : ce;
            rc = zc_chunk_hashes(&ref, k, e, lens + (k - cs), hashes + (k - cs));
            k = e;
        }
        if (ref.seg)
            zc_unpin(&ref);
    }
    return rc;
}

/* Pool: add the hashes of stored chunks [cs, ce) to "mpart/<xorb>". */
static void mpart_add(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce)
{
    if (cs >= ce || ce > XET_XORB_MAX_CHUNKS)
        return;
    uint32_t n = ce - cs;
    uint32_t *lens = malloc(n * sizeof *lens);
    xet_hash *hashes = malloc(n * sizeof *hashes);
    int rc = lens && hashes ? run_hashes(p, xorb, cs, ce, lens, hashes) : -ENOMEM;
    char key[80];
    mpart_key(xorb, key);
    pthread_mutex_lock(&p->mpart_mu);
    void *old = NULL;
    size_t oldlen = 0;
    long om = 0;
    if (!rc && zc_meta_get(p->store, key, &old, &oldlen) == 0) {
        om = mpart_check(old, oldlen);
        if (om < 0)
            om = 0;
    }
    /* merge the old entries (sorted) with [cs, ce) */
    uint8_t *d = rc ? NULL : malloc(12 + ((size_t)om + n) * 40);
    if (d) {
        uint32_t m = 0;
        long i = 0;
        uint32_t k = cs;
        while (i < om || k < ce) {
            const uint8_t *q = i < om ? (const uint8_t *)old + 12 + 40 * (size_t)i : NULL;
            uint32_t qi = q ? xet_le32(q) : UINT32_MAX;
            uint8_t *w = d + 12 + 40 * (size_t)m++;
            if (k < ce && k <= qi) {
                xet_put_le32(w, k);
                memcpy(w + 4, hashes[k - cs].b, 32);
                xet_put_le32(w + 36, lens[k - cs]);
                if (k == qi)
                    i++;
                k++;
            } else {
                memcpy(w, q, 40);
                i++;
            }
        }
        memcpy(d, MPART_MAGIC, 8);
        xet_put_le32(d + 8, m);
        zc_meta_put(p->store, key, d, 12 + (size_t)m * 40, 0);
        free(d);
    }
    pthread_mutex_unlock(&p->mpart_mu);
    free(old);
    free(lens);
    free(hashes);
}

static int pv_manifest(void *ud, const xet_hash *xorb, xet_hash **hashes, uint32_t **lens,
                       uint32_t *n)
{
    zf_p2p *p = ud;
    char key[80];
    man_key(xorb, key);
    void *d;
    size_t len;
    int rc = zc_meta_get(p->store, key, &d, &len);
    if (rc)
        return -ENOENT;
    rc = man_parse(d, len, hashes, lens, n);
    free(d);
    if (!rc && zp_manifest_verify(xorb, *hashes, *lens, *n) != 0) { /* never serve a bad one */
        free(*hashes);
        free(*lens);
        rc = -ENOENT;
    }
    return rc ? -ENOENT : 0;
}

typedef struct rc_job {
    uv_work_t work;
    zf_p2p *p;
    xet_hash xorb;
    uint32_t start, end;
    zn_peer_read_cb cb;
    void *arg;
    uint32_t *lens;
    xet_hash *hashes;
    uint8_t *data;
    size_t len;
    int err;
} rc_job;

static void rc_work(uv_work_t *w)
{
    rc_job *j = w->data;
    uint32_t n = j->end - j->start;
    j->lens = malloc(n * sizeof *j->lens);
    j->hashes = malloc(n * sizeof *j->hashes);
    if (!j->lens || !j->hashes) {
        j->err = -ENOMEM;
        return;
    }
    size_t cap = 0;
    for (uint32_t k = j->start; k < j->end && !j->err;) {
        zc_ref ref;
        int rc = zc_lookup(j->p->store, &j->xorb, k, &ref);
        if (rc == -EAGAIN)
            rc = zc_verify_segment(&ref);
        if (rc) {
            if (ref.seg)
                zc_unpin(&ref);
            j->err = rc == -EBADMSG ? -ENOENT : rc;
            break;
        }
        uint32_t m = ref.seg_end < j->end ? ref.seg_end : j->end;
        uint32_t i0 = k - j->start;
        rc = zc_chunk_hashes(&ref, k, m, j->lens + i0, j->hashes + i0);
        uint64_t bytes = 0;
        for (uint32_t i = i0; !rc && i < m - j->start; i++)
            bytes += j->lens[i];
        if (!rc && j->len + bytes > cap) {
            size_t nc = (j->len + bytes) * 2;
            uint8_t *nd = realloc(j->data, nc);
            if (!nd)
                rc = -ENOMEM;
            else {
                j->data = nd;
                cap = nc;
            }
        }
        if (!rc) {
            ssize_t got = zc_read_nocache(&ref, k, 0, j->data + j->len, bytes);
            rc = got < 0 ? (int)got : (uint64_t)got != bytes ? -EIO : 0;
        }
        zc_unpin(&ref);
        if (rc) {
            j->err = rc;
            break;
        }
        j->len += bytes;
        k = m;
    }
}

static void rc_after(uv_work_t *w, int status)
{
    rc_job *j = w->data;
    zf_p2p *p = j->p;
    p->works--;
    if (p->node && !p->stopped) { /* the node is gone once stopped: its cb with it */
        int err = status ? -ECANCELED : j->err;
        p->reads++;
        j->cb(j->arg, err, err ? NULL : j->lens, err ? NULL : j->hashes, err ? NULL : j->data,
              err ? 0 : j->len);
    }
    free(j->lens);
    free(j->hashes);
    free(j->data);
    free(j);
}

static int pv_read_chunks(void *ud, const xet_hash *xorb, uint32_t start, uint32_t end,
                          zn_peer_read_cb cb, void *arg)
{
    zf_p2p *p = ud;
    if (start >= end || end - start > XET_XORB_MAX_CHUNKS)
        return -EINVAL;
    rc_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->p = p;
    j->xorb = *xorb;
    j->start = start;
    j->end = end;
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    int rc = uv_queue_work(p->loop, &j->work, rc_work, rc_after);
    if (rc) {
        free(j);
        return rc;
    }
    p->works++;
    return 0;
}

static struct zx_ent *zx_find(const zf_p2p *p, const uint8_t ih[20]);
static bool zx_is(const struct zx_ent *e, const xet_hash *xorb);

static bool pv_may_serve(void *ud, const uint8_t ih[20])
{
    zf_p2p *p = ud;
    for (size_t i = 0; i < p->nsw; i++)
        if (!memcmp(p->sw[i].ih, ih, 20))
            return p->sw[i].served;
    return zx_find(p, ih) != NULL; /* zest's swarm of a xorb a served repo names */
}

static bool pv_may_serve_xorb(void *ud, const uint8_t ih[20], const xet_hash *xorb)
{
    zf_p2p *p = ud;
    for (size_t i = 0; i < p->nsw; i++)
        if (!memcmp(p->sw[i].ih, ih, 20))
            return p->sw[i].served && xset_has(&p->sw[i].xorbs, xorb);
    return zx_is(zx_find(p, ih), xorb); /* that xorb only */
}

/* ---- zest's per-xorb swarms -------------------------------------------------------
 * zest names one swarm per xorb, SHA1("zest-xet-v1:" || xorb) (net/peer.h
 * zn_peer_zest_info_hash).  Every xorb a served swarm names has an entry
 * here, found by that id: a connection on it is accepted (may_serve) and
 * serves that xorb only (may_serve_xorb).  The table is rebuilt from the
 * served swarms when one stops being served.  Discovery (zx_tick): the ids
 * of xorbs the store holds are announced on the DHT (the first ZX_DHT_MAX)
 * and to every tracker (again every 30 min); the ids of xorbs a read learns
 * of (zf_p2p_repo_xorb) and the store lacks, or finds no peer for
 * (zf_p2p_holders), are looked up on the DHT and announced to the trackers
 * (left > 0), at most every 5 min per xorb; the peers found
 * are dialled on that id (zn_peer_add_xorb: one connection per zest node).
 * At most ZX_PER_TICK ids are handled per second. */
typedef struct zx_ent {
    uint8_t ih[20];
    xet_hash xorb;
    bool want, need, queued, dht_ann, looking;
    uint8_t tr_state;           /* 0 never announced, 1 in flight, 2 announced */
    uint64_t next_ann, next_look;
} zx_ent;

static size_t zx_slot(const zf_p2p *p, const uint8_t ih[20])
{
    uint64_t k;
    memcpy(&k, ih, 8);
    size_t i = (size_t)(k & (p->zxicap - 1));
    while (p->zxi[i] && memcmp(p->zx[p->zxi[i] - 1].ih, ih, 20))
        i = (i + 1) & (p->zxicap - 1);
    return i;
}

static zx_ent *zx_find(const zf_p2p *p, const uint8_t ih[20])
{
    if (!p->zxicap)
        return NULL;
    size_t i = zx_slot(p, ih);
    return p->zxi[i] ? &p->zx[p->zxi[i] - 1] : NULL;
}

static zx_ent *zx_add(zf_p2p *p, const xet_hash *xorb)
{
    uint8_t ih[20];
    zn_peer_zest_info_hash(xorb, ih);
    zx_ent *e = zx_find(p, ih);
    if (e)
        return e;
    if (p->nzx >= (size_t)MAX_ANNOUNCE_XORBS * 4)
        return NULL;
    if ((p->nzx + 1) * 2 > p->zxicap) {
        size_t nc = p->zxicap ? p->zxicap * 2 : 256;
        uint32_t *ni = calloc(nc, sizeof *ni), *oi = p->zxi;
        if (!ni)
            return NULL;
        p->zxi = ni;
        p->zxicap = nc;
        for (size_t k = 0; k < p->nzx; k++)
            p->zxi[zx_slot(p, p->zx[k].ih)] = (uint32_t)k + 1;
        free(oi);
    }
    if (p->nzx == p->czx) {
        size_t nc = p->czx ? p->czx * 2 : 64;
        zx_ent *nv = realloc(p->zx, nc * sizeof *nv);
        if (!nv)
            return NULL;
        p->zx = nv;
        p->czx = nc;
    }
    e = &p->zx[p->nzx];
    memset(e, 0, sizeof *e);
    memcpy(e->ih, ih, 20);
    e->xorb = *xorb;
    p->zxi[zx_slot(p, ih)] = (uint32_t)++p->nzx;
    return e;
}

static void zx_rebuild(zf_p2p *p)
{
    for (size_t k = 0; k < p->nzx; k++)
        if (p->zx[k].dht_ann && p->dht)
            zn_dht_unannounce(p->dht, p->zx[k].ih);
    p->nzx = 0;
    p->zx_dht_ann = 0;
    p->zx_wq_n = 0;
    if (p->zxi)
        memset(p->zxi, 0, p->zxicap * sizeof *p->zxi);
    for (size_t i = 0; i < p->nsw; i++)
        for (size_t j = 0; p->sw[i].served && j < p->sw[i].xorbs.cap; j++)
            if (!hash_zero(&p->sw[i].xorbs.v[j]))
                zx_add(p, &p->sw[i].xorbs.v[j]);
}

static bool zx_is(const zx_ent *e, const xet_hash *xorb)
{
    return e && xet_hash_eq(&e->xorb, xorb);
}

/* xset_add for a swarm, with zest's id of the xorb when the swarm is served */
static void swarm_xorb_add(zf_p2p *p, p2p_swarm *s, const xet_hash *xorb)
{
    if (xset_add(&s->xorbs, xorb) == 0 && s->served)
        zx_add(p, xorb);
}

/* ---- manifests (pool) ---------------------------------------------------------- */

int zf_p2p_after_put(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce)
{
    zc_range r[1];
    char mk[80];
    man_key(xorb, mk);
    void *have;
    size_t havelen;
    if (zc_meta_get(p->store, mk, &have, &havelen) == 0) {
        free(have);
        return 1; /* the whole manifest is known */
    }
    mpart_add(p, xorb, cs, ce); /* what we know of it, for peers putting it together */
    if (zc_missing(p->store, xorb, 0, ce, r, 1) != 0)
        return 0; /* [0, ce) not all stored: the run does not start at chunk 0 */
    long nr = zc_runs(p->store, xorb, r, 1);
    if (nr < 1 || r[0].start != 0)
        return 0;
    uint32_t n = r[0].end;
    const char *key = mk;
    uint32_t *lens = malloc(n * sizeof *lens);
    xet_hash *hashes = malloc(n * sizeof *hashes);
    int rc = lens && hashes ? run_hashes(p, xorb, 0, n, lens, hashes) : -ENOMEM;
    if (rc == -ENOENT || rc == -EBADMSG)
        rc = 1; /* evicted or corrupt meanwhile: not complete now */
    if (!rc) {
        rc = zp_manifest_verify(xorb, hashes, lens, n);
        if (rc == -EILSEQ) {
            rc = 0; /* [0, n) is not the whole xorb (or not it): nothing to say yet */
        } else if (rc == 0) {
            size_t len = 12 + (size_t)n * 36;
            uint8_t *d = malloc(len);
            if (!d) {
                rc = -ENOMEM;
            } else {
                memcpy(d, MAN_MAGIC, 8);
                for (int b = 0; b < 4; b++)
                    d[8 + b] = (uint8_t)(n >> (8 * b));
                for (uint32_t i = 0; i < n; i++) {
                    uint8_t *q = d + 12 + (size_t)i * 36;
                    memcpy(q, hashes[i].b, 32);
                    for (int b = 0; b < 4; b++)
                        q[32 + b] = (uint8_t)(lens[i] >> (8 * b));
                }
                rc = zc_meta_put(p->store, key, d, len, 0);
                free(d);
                if (!rc) {
                    atomic_fetch_add(&p->manifests_built, 1);
                    char pk[80];
                    mpart_key(xorb, pk);
                    zc_meta_delete(p->store, pk); /* the parts are in it now */
                    rc = 1;
                }
            }
        } else {
            atomic_fetch_add(&p->manifest_failures, 1);
        }
    } else if (rc == 1) {
        rc = 0;
    }
    free(lens);
    free(hashes);
    return rc;
}

/* ---- swarms, peers, announces ---------------------------------------------------- */

static bool repo_opted_in(const zf_p2p *p, const char *type, const char *id)
{
    for (size_t i = 0; i < p->o.nseed_private; i++) {
        const char *s = p->o.seed_private[i];
        char full[300];
        if (!strcmp(s, id))
            return !strcmp(type, "model");
        snprintf(full, sizeof full, "%ss/%s", type, id);
        if (!strcmp(s, full))
            return true;
        snprintf(full, sizeof full, "%s/%s", type, id);
        if (!strcmp(s, full))
            return true;
    }
    return false;
}

static p2p_swarm *swarm_find(zf_p2p *p, const char *type, const char *id)
{
    for (size_t i = 0; i < p->nsw; i++)
        if (!strcmp(p->sw[i].type, type) && !strcmp(p->sw[i].id, id))
            return &p->sw[i];
    return NULL;
}

static void dial_all(zf_p2p *p)
{
    for (size_t s = 0; s < p->nsw; s++)
        if (p->sw[s].served)
            for (size_t i = 0; i < p->npeers; i++)
                zn_peer_add(p->node, p->sw[s].ih, (const struct sockaddr *)&p->peers[i]);
}

/* ---- trackers: every served swarm announced to every tracker, again after
 * the tracker's interval (30 s .. 30 min; 30 s after a failure); the peers
 * it returns are dialled. */
typedef struct p2p_ann {
    zf_p2p *p;
    size_t sw, tr;
} p2p_ann;

static void tracker_cb(void *ud, int err, const zn_announce_result *r)
{
    p2p_ann *a = ud;
    zf_p2p *p = a->p;
    if (!p->stopped && a->sw < p->nsw) {
        p2p_swarm *s = &p->sw[a->sw];
        uint64_t now = uv_now(p->loop), iv = 30;
        s->ann_state[a->tr] = err ? 0 : 2;
        if (!err) {
            for (size_t i = 0; i < r->npeers; i++)
                zn_peer_add(p->node, s->ih, (const struct sockaddr *)&r->peers[i]);
            iv = r->interval < 30 ? 30 : r->interval > 1800 ? 1800 : r->interval;
        } else if (err != -ECANCELED) {
            zf_log(ZF_LOG_WARN, "zestfs: tracker %s: %s\n", p->o.trackers[a->tr],
                    err == -EPERM && r && r->failure ? r->failure : strerror(-err));
        }
        s->next_ann[a->tr] = now + iv * 1000;
    }
    free(a);
}

static void trackers_tick(zf_p2p *p)
{
    uint64_t now = uv_now(p->loop);
    for (size_t i = 0; i < p->nsw; i++) {
        p2p_swarm *s = &p->sw[i];
        for (size_t t = 0; s->served && t < p->ntr; t++) {
            if (!p->tr[t] || s->ann_state[t] == 1 || now < s->next_ann[t])
                continue;
            p2p_ann *a = malloc(sizeof *a);
            if (!a)
                return;
            *a = (p2p_ann){p, i, t};
            zn_announce an = {.port = (uint16_t)zn_peer_node_port(p->node),
                              .event = s->ann_state[t] == 2 ? ZN_EV_NONE : ZN_EV_STARTED,
                              .numwant = 50, .key = (uint32_t)(uintptr_t)p ^ (uint32_t)i};
            memcpy(an.info_hash, s->ih, 20);
            memcpy(an.peer_id, zn_peer_node_id(p->node), 20);
            bool first = s->ann_state[t] == 0;
            s->ann_state[t] = 1;
            if (zn_tracker_announce(p->tr[t], &an, tracker_cb, a) != 0) {
                free(a);
                s->ann_state[t] = first ? 0 : 2;
                s->next_ann[t] = now + 30000;
            }
        }
    }
}

static void dht_tick(zf_p2p *p);
static void zx_tick(zf_p2p *p);

/* Every second: log changes of the peer count (tests wait for it); every
 * REDIAL_MS: dial the static peers again. */
static void redial_cb(uv_timer_t *t)
{
    zf_p2p *p = t->data;
    if (p->stopped)
        return;
    zn_peer_stats st;
    zn_peer_get_stats(p->node, &st);
    if (st.ext_peers != p->logged_peers || st.bans != p->logged_bans) {
        zf_log(ZF_LOG_INFO, "zestfs: peers: %u connected, %" PRIu64 " banned\n", st.ext_peers,
                st.bans);
        p->logged_peers = st.ext_peers;
        p->logged_bans = st.bans;
    }
    if (++p->ticks % (REDIAL_MS / 1000) == 0)
        dial_all(p);
    trackers_tick(p);
    dht_tick(p);
    zx_tick(p);
}

typedef struct ann_job {
    uv_work_t work;
    zf_p2p *p;
    size_t sw;                  /* the swarm (index) */
    char **ids;                 /* Xet file ids */
    size_t nids;
    xet_hash *xorbs;
    size_t nx, cx;
} ann_job;

static int xorb_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(xet_hash));
}

static void ann_work(uv_work_t *w)
{
    ann_job *j = w->data;
    for (size_t i = 0; i < j->nids && j->nx < MAX_ANNOUNCE_XORBS; i++) {
        char key[80];
        snprintf(key, sizeof key, "fmap/%s", j->ids[i]);
        void *d;
        size_t len;
        if (zc_meta_get(j->p->store, key, &d, &len) != 0)
            continue;
        const uint8_t *q = d;
        if (len >= 16 && !memcmp(q, FMAP_MAGIC, 8) && (len - 16) % FMAP_REC == 0) {
            for (size_t off = 16; off < len && j->nx < MAX_ANNOUNCE_XORBS; off += FMAP_REC) {
                if (j->nx == j->cx) {
                    size_t nc = j->cx ? j->cx * 2 : 64;
                    xet_hash *nv = realloc(j->xorbs, nc * sizeof *nv);
                    if (!nv)
                        break;
                    j->xorbs = nv;
                    j->cx = nc;
                }
                memcpy(j->xorbs[j->nx++].b, q + off + 16, 32);
            }
        }
        free(d);
    }
    if (j->nx)
        qsort(j->xorbs, j->nx, sizeof *j->xorbs, xorb_cmp);
    size_t k = 0;
    for (size_t i = 0; i < j->nx; i++)
        if (!k || memcmp(&j->xorbs[k - 1], &j->xorbs[i], sizeof(xet_hash)))
            j->xorbs[k++] = j->xorbs[i];
    j->nx = k;
    for (size_t i = 0; i < j->nx; i++) /* stores from before manifests existed */
        zf_p2p_after_put(j->p, &j->xorbs[i], 0, 1);
}

static void ann_after(uv_work_t *w, int status)
{
    ann_job *j = w->data;
    zf_p2p *p = j->p;
    p->works--;
    if (!p->stopped && !p->sw[j->sw].served)
        status = -ECANCELED; /* no longer served (its verdict changed meanwhile) */
    for (size_t i = 0; !status && !p->stopped && i < j->nx; i++)
        swarm_xorb_add(p, &p->sw[j->sw], &j->xorbs[i]);
    for (size_t i = 0; !status && !p->stopped && i < j->nx; i++) {
        zc_range r[1];
        if (zc_runs(p->store, &j->xorbs[i], r, 1) > 0)
            zn_peer_announce_have(p->node, &j->xorbs[i], r[0].start, r[0].end);
    }
    for (size_t i = 0; i < j->nids; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->xorbs);
    free(j);
}

int zf_p2p_add_repo(zf_p2p *p, const zf_repo *r)
{
    const char *type = zf_p2p_type_name(r->type);
    p2p_swarm *s = swarm_find(p, type, r->id);
    if (!s) {
        if (p->nsw == p->csw) {
            size_t nc = p->csw ? p->csw * 2 : 8;
            p2p_swarm *nv = realloc(p->sw, nc * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            p->sw = nv;
            p->csw = nc;
        }
        s = &p->sw[p->nsw];
        memset(s, 0, sizeof *s);
        s->id = strdup(r->id);
        s->next_ann = calloc(p->ntr + 1, sizeof *s->next_ann);
        s->ann_state = calloc(p->ntr + 1, 1);
        if (!s->id || !s->next_ann || !s->ann_state) {
            free(s->id);
            free(s->next_ann);
            free(s->ann_state);
            return -ENOMEM;
        }
        p->nsw++;
        snprintf(s->type, sizeof s->type, "%s", type);
        zn_swarm_repo_id(type, r->canonical ? r->canonical : r->id, s->ih); /* renamed: one swarm */
    }
    /* the gate: the stored verdict (or --seed-private), again at every call,
     * since a repo resolved again brings the Hub's verdict of now */
    bool serve = r->vis == ZF_VIS_PUBLIC || repo_opted_in(p, type, r->id);
    if (!serve) {
        if (s->served) {
            zf_log(ZF_LOG_INFO, "zestfs: %ss/%s is %s now: no longer shared with peers\n", type,
                   r->id, zf_vis_name(r->vis));
            free(s->xorbs.v); /* nothing of it is announced or served from now on */
            s->xorbs = (xset){0};
            s->served = false;
            zx_rebuild(p); /* its xorbs' zest swarms too, unless another repo names them */
        }
        s->served = false;
        return 0;
    }
    if (!s->served) {
        int rc = zn_peer_swarm_join(p->node, s->ih);
        if (rc)
            return rc;
        s->served = true;
        for (size_t i = 0; i < p->npeers; i++)
            zn_peer_add(p->node, s->ih, (const struct sockaddr *)&p->peers[i]);
        s->dht_next = 0; /* looked up (and announced) at the next tick */
    }
    ann_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->p = p;
    j->sw = (size_t)(s - p->sw);
    size_t cap = 0;
    for (size_t c = 0; c < r->ncommits; c++)
        for (size_t f = 0; f < r->commits[c].nfiles; f++) {
            const zf_file *fl = &r->commits[c].files[f];
            if (!fl->has_xet)
                continue;
            if (j->nids == cap) {
                cap = cap ? cap * 2 : 16;
                char **nv = realloc(j->ids, cap * sizeof *nv);
                if (!nv)
                    goto oom;
                j->ids = nv;
            }
            char xs[65];
            xet_hash_to_string(&fl->xet, xs);
            if (!(j->ids[j->nids] = strdup(xs)))
                goto oom;
            j->nids++;
        }
    j->work.data = j;
    if (uv_queue_work(p->loop, &j->work, ann_work, ann_after) != 0)
        goto oom;
    p->works++;
    return 0;
oom:
    for (size_t i = 0; i < j->nids; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j);
    return -ENOMEM;
}

/* ---- zest's per-xorb swarms: discovery ------------------------------------------- */

typedef struct zx_op {
    zf_p2p *p;
    uint8_t ih[20];
    size_t tr;
    bool dht;
} zx_op;

static void zx_dial(zf_p2p *p, const uint8_t ih[20], const struct sockaddr_storage *peers,
                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        zn_peer_add_xorb(p->node, ih, (const struct sockaddr *)&peers[i]);
}

static void zx_tracker_cb(void *ud, int err, const zn_announce_result *r)
{
    zx_op *o = ud;
    zf_p2p *p = o->p;
    if (!p->stopped) {
        zx_ent *e = zx_find(p, o->ih);
        if (e)
            e->tr_state = 2;
        if (!err && r)
            zx_dial(p, o->ih, r->peers, r->npeers);
    }
    free(o);
}

static void zx_dht_cb(void *ud, int err, const struct sockaddr_storage *peers, size_t n, bool done)
{
    zx_op *o = ud;
    zf_p2p *p = o->p;
    if (!p->stopped && p->node && !err) {
        p->dht_found += n;
        zx_dial(p, o->ih, peers, n);
    }
    if (done) {
        zx_ent *e = p->stopped ? NULL : zx_find(p, o->ih);
        if (e)
            e->looking = false;
        free(o);
    }
}

static void zx_tracker(zf_p2p *p, zx_ent *e, bool held, uint16_t port)
{
    bool first = e->tr_state == 0;
    for (size_t t = 0; t < p->ntr; t++) {
        zx_op *o = p->tr[t] ? calloc(1, sizeof *o) : NULL;
        if (!o)
            continue;
        *o = (zx_op){.p = p, .tr = t};
        memcpy(o->ih, e->ih, 20);
        zn_announce an = {.port = port, .event = first ? ZN_EV_STARTED : ZN_EV_NONE,
                          .left = held ? 0 : 1, .numwant = 50, .key = (uint32_t)(uintptr_t)p};
        memcpy(an.info_hash, e->ih, 20);
        memcpy(an.peer_id, zn_peer_node_id(p->node), 20);
        if (zn_tracker_announce(p->tr[t], &an, zx_tracker_cb, o) == 0) {
            e->tr_state = 1;
            p->zx_announces++;
        } else {
            free(o);
        }
    }
}

/* One entry's turn: announce what is held; look up (DHT get_peers, tracker
 * announce with left > 0) what a read learned of and the store lacks, or a
 * read found no peer for (e->need). */
static void zx_visit(zf_p2p *p, zx_ent *e, uint64_t now)
{
    zc_range r[1];
    bool held = zc_runs(p->store, &e->xorb, r, 1) > 0;
    uint16_t port = (uint16_t)zn_peer_node_port(p->node);
    if (held && p->dht_ready && !e->dht_ann && p->zx_dht_ann < ZX_DHT_MAX &&
        zn_dht_announce(p->dht, e->ih, port, NULL, NULL) == 0) {
        e->dht_ann = true;
        p->zx_dht_ann++;
        p->dht_announces++;
    }
    bool look = (e->need || (e->want && !held)) && now >= e->next_look;
    if (look && p->dht && !p->dht_ready && !p->ntr)
        look = false; /* the DHT's turn comes once it is up */
    if (look) {
        e->next_look = now + ZX_RELOOK_MS;
        e->need = false;
        if (p->dht_ready && !e->looking) {
            zx_op *o = calloc(1, sizeof *o);
            if (o) {
                *o = (zx_op){.p = p, .dht = true};
                memcpy(o->ih, e->ih, 20);
                if (zn_dht_get_peers(p->dht, e->ih, zx_dht_cb, o) == 0) {
                    e->looking = true;
                    p->dht_lookups++;
                    p->zx_lookups++;
                } else {
                    free(o);
                }
            }
        }
        if (p->ntr && e->tr_state != 1)
            zx_tracker(p, e, false, port);
    }
    if (held && p->ntr && e->tr_state != 1 && now >= e->next_ann) {
        e->next_ann = now + ZX_REANNOUNCE_MS;
        zx_tracker(p, e, true, port);
    }
}

/* A read found no peer holding a range of xorb: look zest's swarm of it up
 * (at the next tick, at most once per ZX_RELOOK_MS). */
static void zx_need(zf_p2p *p, const xet_hash *xorb)
{
    if (!p->nzx || (!p->dht && !p->ntr) || p->zx_wq_n >= ZX_WANTQ)
        return;
    uint8_t ih[20];
    zn_peer_zest_info_hash(xorb, ih);
    zx_ent *e = zx_find(p, ih);
    if (!e || e->queued || e->need || uv_now(p->loop) < e->next_look)
        return;
    e->need = e->queued = true;
    p->zx_wantq[(p->zx_wq_head + p->zx_wq_n++) % ZX_WANTQ] = (uint32_t)(e - p->zx);
}

static void zx_tick(zf_p2p *p)
{
    if (!p->nzx || (!p->dht && !p->ntr))
        return;
    uint64_t now = uv_now(p->loop);
    unsigned done = 0;
    while (p->zx_wq_n && done < ZX_PER_TICK) { /* what reads wait for first */
        uint32_t k = p->zx_wantq[p->zx_wq_head];
        p->zx_wq_head = (p->zx_wq_head + 1) % ZX_WANTQ;
        p->zx_wq_n--;
        if (k < p->nzx) {
            p->zx[k].queued = false;
            zx_visit(p, &p->zx[k], now);
        }
        done++;
    }
    for (; done < ZX_PER_TICK && p->nzx; done++) {
        if (p->zx_cursor >= p->nzx)
            p->zx_cursor = 0;
        zx_visit(p, &p->zx[p->zx_cursor++], now);
    }
}

/* ---- the DHT ------------------------------------------------------------------------ */

static const char *const DHT_ROUTERS[] = {"router.bittorrent.com:6881",
                                          "dht.transmissionbt.com:6881",
                                          "router.utorrent.com:6881", "dht.libtorrent.org:25401",
                                          NULL};

typedef struct dht_look {
    zf_p2p *p;
    size_t sw;
} dht_look;

static void dht_peers_cb(void *ud, int err, const struct sockaddr_storage *peers, size_t n,
                         bool done)
{
    dht_look *l = ud;
    zf_p2p *p = l->p;
    if (!p->stopped && p->node && !err) {
        p2p_swarm *s = &p->sw[l->sw];
        for (size_t i = 0; i < n; i++) {
            p->dht_found++;
            zn_peer_add(p->node, s->ih, (const struct sockaddr *)&peers[i]);
        }
    }
    if (done) {
        if (!p->stopped)
            p->sw[l->sw].dht_lookup = false;
        free(l);
    }
}

static void dht_boot_cb(void *ud, int err, unsigned n)
{
    zf_p2p *p = ud;
    if (err == -ECANCELED || p->stopped)
        return;
    p->dht_booting = false;
    if (!p->dht)
        return;
    zn_dht_stats ds = zn_dht_get_stats(p->dht);
    p->dht_ready = !err && ds.nodes > 0;
    if (p->dht_ready)
        zf_log(ZF_LOG_INFO, "zestfs: DHT: %zu nodes\n", ds.nodes);
    else
        p->dht_boot_next = uv_now(p->loop) + 30000;
    (void)n;
}

static void dht_tick(zf_p2p *p)
{
    if (!p->dht)
        return;
    uint64_t now = uv_now(p->loop);
    if (p->dht_ready && zn_dht_get_stats(p->dht).nodes == 0) {
        p->dht_ready = false; /* the table emptied: start over */
        p->dht_boot_next = now;
    }
    if (!p->dht_ready) {
        if (!p->dht_booting && now >= p->dht_boot_next) {
            p->dht_booting = zn_dht_bootstrap(p->dht, dht_boot_cb, p) == 0;
            if (!p->dht_booting)
                p->dht_boot_next = now + 30000;
        }
        return;
    }
    zn_peer_stats st;
    zn_peer_get_stats(p->node, &st);
    uint64_t iv = p->dht_lookup_ms ? p->dht_lookup_ms : st.ext_peers ? 300000 : 30000;
    for (size_t i = 0; i < p->nsw; i++) {
        p2p_swarm *s = &p->sw[i];
        if (!s->served)
            continue;
        if (!s->dht_announced &&
            zn_dht_announce(p->dht, s->ih, (uint16_t)zn_peer_node_port(p->node), NULL, NULL) == 0) {
            s->dht_announced = true;
            p->dht_announces++;
        }
        if (s->dht_lookup || now < s->dht_next)
            continue;
        dht_look *l = malloc(sizeof *l);
        if (!l)
            return;
        *l = (dht_look){p, i};
        s->dht_next = now + iv;
        if (zn_dht_get_peers(p->dht, s->ih, dht_peers_cb, l) == 0) {
            s->dht_lookup = true;
            p->dht_lookups++;
        } else {
            free(l);
        }
    }
}

static void dht_start(zf_p2p *p)
{
    const char *boot[ZF_P2P_MAX_LIST + 1];
    size_t nb = 0;
    char *envcopy = NULL;
    if (p->o.ndht_boot) {
        for (size_t i = 0; i < p->o.ndht_boot; i++)
            if (strcmp(p->o.dht_boot[i], "none"))
                boot[nb++] = p->o.dht_boot[i];
    } else if (getenv("ZESTFS_DHT_BOOTSTRAP")) {
        envcopy = strdup(getenv("ZESTFS_DHT_BOOTSTRAP"));
        for (char *sp = NULL, *t = envcopy ? strtok_r(envcopy, ", ", &sp) : NULL;
             t && nb < ZF_P2P_MAX_LIST; t = strtok_r(NULL, ", ", &sp))
            if (strcmp(t, "none"))
                boot[nb++] = t;
    } else {
        for (size_t i = 0; DHT_ROUTERS[i]; i++)
            boot[nb++] = DHT_ROUTERS[i];
    }
    boot[nb] = NULL;
    if (p->o.state_dir) {
        size_t l = strlen(p->o.state_dir) + 16;
        if ((p->dht_state = malloc(l)))
            snprintf(p->dht_state, l, "%s/dht.state", p->o.state_dir);
    }
    const char *bind = p->o.bind[0] && !strchr(p->o.bind, ':') ? p->o.bind : NULL;
    zn_dht_opts d = {.bind_ip = bind,
                     .port = p->o.dht_port_set ? (uint16_t)p->o.dht_port : p->o.port,
                     .state_path = p->dht_state,
                     .bootstrap = boot};
    int rc = zn_dht_new(p->loop, &d, &p->dht);
    if (rc && !p->o.dht_port_set && d.port) { /* that UDP port is taken: any */
        d.port = 0;
        rc = zn_dht_new(p->loop, &d, &p->dht);
    }
    free(envcopy); /* zn_dht_new resolved or copied the names */
    if (rc) {
        zf_log(ZF_LOG_WARN, "zestfs: DHT off: %s\n", strerror(-rc));
        p->dht = NULL;
        return;
    }
    p->dht_lookup_ms = (unsigned)zf_env_ms("ZESTFS_DHT_LOOKUP_MS", 0);
    zf_log(ZF_LOG_INFO, "zestfs: DHT on UDP port %d (%zu bootstrap nodes)\n", zn_dht_port(p->dht),
           nb);
}

static int resolve_peers(zf_p2p *p)
{
    p->peers = calloc(p->o.npeers ? p->o.npeers : 1, sizeof *p->peers);
    if (!p->peers)
        return -ENOMEM;
    for (size_t i = 0; i < p->o.npeers; i++) {
        char host[256], ps[8];
        uint16_t port;
        if (split_hostport(p->o.peers[i], false, host, sizeof host, &port) != 0 || !port) {
            fprintf(stderr, "zestfs: --peer %s: not HOST:PORT\n", p->o.peers[i]);
            continue;
        }
        snprintf(ps, sizeof ps, "%u", port);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        int e = getaddrinfo(host, ps, &hints, &ai);
        if (e || !ai) {
            fprintf(stderr, "zestfs: --peer %s: %s\n", p->o.peers[i], gai_strerror(e));
            continue;
        }
        memcpy(&p->peers[p->npeers++], ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    return 0;
}

int zf_p2p_start(uv_loop_t *loop, zc_store *store, const zf_p2p_opts *o, zf_p2p **out)
{
    *out = NULL;
    if (o->disabled)
        return 0;
    zf_p2p *p = calloc(1, sizeof *p);
    if (p)
        pthread_mutex_init(&p->mpart_mu, NULL);
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->store = store;
    p->o = *o;
    int rc = resolve_peers(p);
    if (rc) {
        free(p);
        return rc;
    }
    zn_peer_opts po = {
        .listen_port = o->port,
        .bind = o->bind[0] ? o->bind : NULL,
        .max_conns = o->max_peers,
        .upload_rate = o->upload_rate,
        .no_pex = o->no_pex,
        .pex_interval_ms = (unsigned)zf_env_ms("ZESTFS_PEX_INTERVAL_MS", 0),
    };
    zn_peer_provider pv = {.ud = p, .held = pv_held, .manifest = pv_manifest, .parts = pv_parts,
                           .read_chunks = pv_read_chunks, .may_serve = pv_may_serve,
                           .may_serve_xorb = pv_may_serve_xorb};
    rc = zn_peer_node_new(loop, &po, &pv, &p->node);
    if (o->reserve_fd >= 0)
        close(o->reserve_fd);
    if (rc) {
        zf_log(ZF_LOG_ERR, "zestfs: peer node: %s\n", strerror(-rc));
        free(p->peers);
        free(p);
        return rc;
    }
    p->tr = calloc(o->ntrackers + 1, sizeof *p->tr);
    if (!p->tr) {
        zn_peer_node_free(p->node);
        free(p->peers);
        free(p);
        return -ENOMEM;
    }
    p->ntr = o->ntrackers;
    for (size_t i = 0; i < o->ntrackers; i++) {
        if (!strncmp(o->trackers[i], "http", 4) && !p->http) {
            zn_http_opts ho = {.max_conns_per_host = 2};
            p->http = zn_http_new(loop, &ho);
        }
        zn_tracker_opts to = {.http = p->http};
        int e = zn_tracker_new(loop, o->trackers[i], &to, &p->tr[i]);
        if (e) {
            fprintf(stderr, "zestfs: --tracker %s: %s\n", o->trackers[i], strerror(-e));
            p->tr[i] = NULL;
        }
    }
    if (!o->no_dht)
        dht_start(p);
    uv_timer_init(loop, &p->redial);
    p->redial.data = p;
    uv_timer_start(&p->redial, redial_cb, 1000, 1000);
    *out = p;
    return 0;
}

int zf_p2p_port(zf_p2p *p)
{
    return p && p->node ? zn_peer_node_port(p->node) : -1;
}

void zf_p2p_stop(zf_p2p *p)
{
    if (!p || p->stopped)
        return;
    p->stopped = true;
    uv_close((uv_handle_t *)&p->redial, NULL);
    if (p->dht) { /* saves the routing table; lookups complete with -ECANCELED now */
        zn_dht *d = p->dht;
        p->dht = NULL;
        zn_dht_free(d);
    }
    for (size_t i = 0; i < p->ntr; i++) /* pending announces complete with -ECANCELED now */
        if (p->tr[i])
            zn_tracker_free(p->tr[i]);
    zn_http_free(p->http);
    p->http = NULL;
    zn_peer_node_free(p->node); /* pending fetches complete with -ECANCELED now */
    p->node = NULL;
}

void zf_p2p_free(zf_p2p *p)
{
    if (!p)
        return;
    free(p->dht_state);
    for (size_t i = 0; i < p->nsw; i++) {
        free(p->sw[i].xorbs.v);
        free(p->sw[i].id);
        free(p->sw[i].next_ann);
        free(p->sw[i].ann_state);
    }
    free(p->sw);
    free(p->zx);
    free(p->zxi);
    free(p->tr);
    free(p->peers);
    pthread_mutex_destroy(&p->mpart_mu);
    free(p);
}

/* ---- read path ------------------------------------------------------------------- */

static void zx_need(zf_p2p *p, const xet_hash *xorb);

unsigned zf_p2p_holders(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce)
{
    if (!p || !p->node || p->stopped)
        return 0;
    unsigned h = zn_peer_holders(p->node, xorb, cs, ce);
    if (!h)
        zx_need(p, xorb); /* zest's swarm of it is looked up */
    return h;
}

int zf_p2p_fetch(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce, uint64_t bytes,
                 zn_peer_fetch_cb cb, void *ud, zn_peer_op **op)
{
    if (!p || !p->node || p->stopped)
        return -ENOENT;
    uint64_t ms = bytes / 4000; /* 4 MB/s: slower peers are raced against the CDN first */
    if (ms < 2000)
        ms = 2000;
    if (ms > 600000)
        ms = 600000;
    return zn_peer_fetch(p->node, xorb, cs, ce, (unsigned)ms, cb, ud, op);
}

void zf_p2p_stored(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb, uint32_t cs,
                   uint32_t ce)
{
    if (!p || !p->node || p->stopped)
        return;
    if (type && id) {
        p2p_swarm *s = swarm_find(p, type, id);
        if (!s || !s->served) /* no verdict known here: not served */
            return;
        swarm_xorb_add(p, s, xorb);
    }
    zn_peer_announce_have(p->node, xorb, cs, ce);
}

void zf_p2p_repo_xorb(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb)
{
    if (!p || p->stopped || !type || !id)
        return;
    p2p_swarm *s = swarm_find(p, type, id);
    if (s && s->served && !xset_has(&s->xorbs, xorb)) {
        swarm_xorb_add(p, s, xorb);
        zn_peer_announce_have(p->node, xorb, 0, 1); /* HAVE goes out if we hold any of it */
    }
    /* a read needs it: zest's swarm of it is looked up (zx_tick) */
    zx_ent *e = s && s->served ? zx_add(p, xorb) : NULL;
    if (e && !e->want && !e->queued && p->zx_wq_n < ZX_WANTQ) {
        e->want = e->queued = true;
        p->zx_wantq[(p->zx_wq_head + p->zx_wq_n++) % ZX_WANTQ] = (uint32_t)(e - p->zx);
    }
}

bool zf_p2p_repo_served(zf_p2p *p, const char *type, const char *id)
{
    p2p_swarm *s = p && type && id ? swarm_find(p, type, id) : NULL;
    return s && s->served;
}

unsigned zf_p2p_pending(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce)
{
    return p && p->node && !p->stopped ? zn_peer_pending(p->node, xorb, cs, ce) : 0;
}

void zf_p2p_cdn_fetching(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb,
                         uint32_t cs, uint32_t ce, bool on)
{
    if (!p || !p->node || p->stopped)
        return;
    if (type && id) {
        p2p_swarm *s = swarm_find(p, type, id);
        if (!s || !s->served)
            return;
        if (on)
            swarm_xorb_add(p, s, xorb);
    }
    zn_peer_announce_pending(p->node, xorb, cs, ce, on);
}

void zf_p2p_get_stats(zf_p2p *p, zf_p2p_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!p)
        return;
    if (p->node)
        zn_peer_get_stats(p->node, &st->node);
    st->manifests_built = atomic_load(&p->manifests_built);
    st->manifest_failures = atomic_load(&p->manifest_failures);
    st->chunks_served_reads = p->reads;
    st->swarms = (unsigned)p->nsw;
    st->dht = p->dht != NULL;
    if (p->dht) {
        zn_dht_stats ds = zn_dht_get_stats(p->dht);
        st->dht_st.nodes = ds.nodes;
        st->dht_st.good_nodes = ds.good_nodes;
    }
    st->dht_st.lookups = p->dht_lookups;
    st->dht_st.peers_found = p->dht_found;
    st->dht_st.announces = p->dht_announces;
}
