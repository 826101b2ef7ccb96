/* p2p.h — the peer swarm inside zestfs (fs/p2p.c): a zn_peer_node (net/peer.h)
 * served from the store, joined to one swarm per presented repository, used by
 * the read path before the CDN, and by `zestfs seed` (fs/seed.c).
 *
 * Threads: everything runs on the loop the node was started on, except
 * zf_p2p_after_put, which the read path calls on the libuv pool right after a
 * zc_put.  Lifetime: zf_p2p_start, then zf_p2p_stop when the session ends
 * (pending peer fetches complete with -ECANCELED), keep running the loop
 * until it is empty, then zf_p2p_free. */
#ifndef ZESTFS_FS_P2P_H
#define ZESTFS_FS_P2P_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "peer.h"
#include "repo.h"

#define ZF_P2P_MAX_LIST 64

typedef struct zf_p2p_opts {
    bool disabled;                         /* --no-p2p */
    const char *listen;                    /* --listen [ADDR:]PORT; NULL: 0.0.0.0:0 */
    const char *peers[ZF_P2P_MAX_LIST];    /* --peer HOST:PORT */
    size_t npeers;
    uint64_t upload_rate;                  /* --upload-rate B/s, 0 = unlimited */
    unsigned max_peers;                    /* --max-peers, 0: 64 */
    const char *seed_private[ZF_P2P_MAX_LIST]; /* --seed-private [type/]org/name */
    size_t nseed_private;
    const char *trackers[ZF_P2P_MAX_LIST]; /* --tracker URL (http(s):// or udp://) */
    size_t ntrackers;
    bool no_dht;                           /* --no-dht */
    const char *dht_boot[ZF_P2P_MAX_LIST]; /* --dht-bootstrap HOST:PORT ("none": no node) */
    size_t ndht_boot;
    int dht_port;                          /* --dht-port (UDP), when dht_port_set */
    bool dht_port_set;                     /* else: the peer port's number */
    bool no_pex;                           /* --no-pex */
    const char *state_dir;                 /* where dht.state lives (the store) */
    /* set by zf_p2p_reserve */
    int reserve_fd;
    uint16_t port;
    char bind[64];
} zf_p2p_opts;

/* Peer options shared by the mount and `zestfs seed`: for an option name
 * ("listen", "no-p2p", "peer", "upload-rate", "max-peers", "seed-private",
 * "tracker", "no-dht", "dht-bootstrap", "dht-port", "no-pex")
 * and its argument, record it.  1 handled, 0 not a peer option, -EINVAL bad
 * value (a message is printed). */
int zf_p2p_opt(zf_p2p_opts *o, const char *name, const char *arg);
extern const char zf_p2p_usage[];
/* Their getopt_long entries, all with val = `val` (for the option tables of
 * the mount and of `zestfs seed`); `n` receives the count. */
#define ZF_P2P_LONGOPTS(val)                                                                  \
    {"listen", required_argument, NULL, val}, {"no-p2p", no_argument, NULL, val},               \
        {"peer", required_argument, NULL, val}, {"upload-rate", required_argument, NULL, val},  \
        {"max-peers", required_argument, NULL, val},                                           \
        {"seed-private", required_argument, NULL, val},                                        \
        {"tracker", required_argument, NULL, val}, {"no-dht", no_argument, NULL, val},          \
        {"dht-bootstrap", required_argument, NULL, val},                                       \
        {"dht-port", required_argument, NULL, val}, {"no-pex", no_argument, NULL, val}

/* Before daemon(): bind the listen address (port 0: an ephemeral one), so
 * the port is known and printed ("zestfs: peers on ADDR:PORT") while stderr
 * is still ours; the node takes the port over in zf_p2p_start.  0 or errno. */
int zf_p2p_reserve(zf_p2p_opts *o);

typedef struct zf_p2p zf_p2p;
int zf_p2p_start(uv_loop_t *loop, zc_store *store, const zf_p2p_opts *o, zf_p2p **out);
/* Join a repository's swarm (when it may be served: its stored verdict
 * r->vis is public, or it is opted in with --seed-private), dial the static
 * peers for it and announce, off the loop, what the store holds of the xorbs
 * its file maps name.  Called again with the model of a repo resolved anew:
 * a verdict no longer public stops serving the swarm, one now public joins. */
int zf_p2p_add_repo(zf_p2p *p, const zf_repo *r);
/* Whether the swarm of repo (type "model"/"dataset"/"space", id) is served. */
bool zf_p2p_repo_served(zf_p2p *p, const char *type, const char *id);
void zf_p2p_stop(zf_p2p *p);
void zf_p2p_free(zf_p2p *p);
int zf_p2p_port(zf_p2p *p);

/* The read path. */
/* How many connected peers announced holding all of [cs, ce) of xorb. */
unsigned zf_p2p_holders(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce);
/* How many connected peers said they are fetching all of [cs, ce) now
 * (cs >= ce: any part of the xorb). */
unsigned zf_p2p_pending(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce);
/* We start (on) or end (off) a CDN fetch of [cs, ce): tell the peers of the
 * repo's swarm (when served), so they wait for us instead of fetching it too. */
void zf_p2p_cdn_fetching(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb,
                         uint32_t cs, uint32_t ce, bool on);
/* A file map of repo (type, id) names xorb (a reconstruction was learned):
 * the xorb may be served on that repo's swarm (and zest's swarm of the xorb)
 * from now on, and zest's swarm of it is looked up (DHT, trackers) while
 * the store lacks it. */
void zf_p2p_repo_xorb(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb);
/* zn_peer_fetch with a deadline of max(2 s, bytes / 4 MB/s). */
int zf_p2p_fetch(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce, uint64_t bytes,
                 zn_peer_fetch_cb cb, void *ud, zn_peer_op **op);
/* After a run was stored (loop): tell peers (when the repo's swarm is
 * served).  type: "model", "dataset", "space"; id: org/name. */
void zf_p2p_stored(zf_p2p *p, const char *type, const char *id, const xet_hash *xorb, uint32_t cs,
                   uint32_t ce);
/* Pool, after zc_put of [cs, ce): when the store now holds [0, n) of the
 * xorb and its (hash, len) list aggregates to the xorb hash, persist it as
 * metadata "manifest/<xorb>".  1 built (or already there), 0 not complete,
 * negative errno (-EILSEQ: the chunks do not aggregate to the xorb). */
int zf_p2p_after_put(zf_p2p *p, const xet_hash *xorb, uint32_t cs, uint32_t ce);

typedef struct zf_p2p_stats {
    zn_peer_stats node;
    uint64_t manifests_built;   /* xorbs verified whole against their hash */
    uint64_t manifest_failures; /* a complete run that did not aggregate */
    uint64_t chunks_served_reads; /* read_chunks calls answered */
    unsigned swarms;
    bool dht;                   /* a DHT node runs */
    struct {
        uint64_t nodes, good_nodes, lookups, peers_found, announces;
    } dht_st;                   /* routing table; get_peers lookups, peers they gave, announces */
} zf_p2p_stats;
void zf_p2p_get_stats(zf_p2p *p, zf_p2p_stats *st);

/* "model" / "dataset" / "space" */
const char *zf_p2p_type_name(enum zf_repo_type t);

#endif
