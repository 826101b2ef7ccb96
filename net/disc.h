/* disc.h — peer discovery: swarm identity, HTTP and UDP tracker clients,
 * the Mainline DHT, PEX messages (issue #5 part 4; spec/p2p.md §1.7, §3.4,
 * §3.5, §6).
 *
 * Design
 * ------
 * Swarm identity.  One swarm per repository:
 *     info_hash = SHA1("zestfs-repo-v1:" || type || "/" || repo_id)
 *   with type "model", "dataset" or "space" and repo_id "org/name" as the
 *   Hub spells it (case kept).  A node announces once per repository it
 *   holds data of, so the announce cost grows with repos, not with xorbs
 *   (a 140 GB model is ~2,200 xorbs: per-xorb swarms would need ~2,200 DHT
 *   lookups per half hour).  Every revision of a repo lands in the same
 *   swarm, so revisions that share xorbs meet; which xorb chunk ranges a
 *   peer holds is exchanged inside the connection (zfs_xet "have" messages,
 *   net/peer.h).  A per-file swarm would split revisions whenever a file
 *   changes and multiply announces by the file count; a per-revision swarm
 *   would separate revisions that share most xorbs.  Cost: a xorb shared by
 *   two repos is found only through the swarms of repos containing it.
 *   zest's per-xorb id (§1.1) is kept for talking to zest peers:
 *   zn_swarm_xorb_id_zest.
 * Threading and callbacks.  As in net.h: every object belongs to one
 *   uv_loop_t and is touched only from its thread; a start function either
 *   fails at once (negative errno, no callback) or returns 0 and calls its
 *   completion exactly once later, never from inside the start call.  Freeing
 *   an object completes what is pending with -ECANCELED from inside the free
 *   (as zn_http_free does); memory goes after the loop ran the close
 *   callbacks.
 * Peers are struct sockaddr_storage (AF_INET or AF_INET6), ready for
 *   zn_peer_add.
 * Trackers.  zn_tracker talks to one announce URL: http(s):// through zn_http
 *   (BEP 3, compact BEP 23, peers6 BEP 7, also the dict-list form), udp://
 *   over its own uv_udp_t (BEP 15: connection id reused for 60 s,
 *   retransmission after base·2^n, n = 0..max_tries−1, base 15 s by default,
 *   transaction ids checked: answers with another id or from another address
 *   are dropped and counted).  A regular announce (event none) earlier than
 *   the tracker's `min interval` (else `interval`) after the last successful
 *   one is refused with -EAGAIN; started/completed/stopped always go.
 *   Errors: the tracker's `failure reason` or UDP error action: -EPERM (the
 *   text in zn_announce_result.failure / zn_tracker_last_failure); a UDP
 *   announce answer of 8–19 bytes (opentracker's refusal of a hash not on its
 *   whitelist): -EPERM; bad bencode, compact lists not a multiple of 6/18,
 *   short or mis-sized packets: -EBADMSG; no answer: -ETIMEDOUT; HTTP errors
 *   as net.h; an URL of another scheme: -EPROTONOSUPPORT; scrape of an HTTP
 *   URL whose last path part does not start with "announce": -ENOSYS.
 * DHT (BEP 5, IPv4).  One uv_udp_t.  Routing table: 160 buckets by length of
 *   the prefix shared with our id, K = 8 nodes each; a node is good once it
 *   answered and while heard from within 15 min, bad after 3 unanswered
 *   queries in a row; a full bucket takes a newcomer only in place of a bad
 *   node, and pings its most stale questionable node so that the next
 *   newcomer may replace it.  Lookups are iterative, α = 3 in flight, over
 *   the closest candidates by XOR distance, and end when the K closest
 *   candidates that did not fail have all answered; announce = get_peers
 *   lookup, then announce_peer to the K closest that gave a token.  Server:
 *   ping, find_node, get_peers (token + values and/or nodes), announce_peer
 *   (token checked; implied_port honoured); unknown methods get error 204,
 *   malformed queries 203.  Tokens: first 8 bytes of SHA1(secret ‖ IPv4),
 *   the secret rotates every token_rotate_ms (5 min), the current and the
 *   previous secret are accepted (valid 5–10 min).  Peer store: at most
 *   max_hashes info-hashes × max_peers each, entries dropped 30 min after
 *   their announce (oldest hash evicted when full).  Announces we made are
 *   repeated every announce_interval_ms until zn_dht_unannounce.  State
 *   (our id and the good nodes) is saved to state_path by zn_dht_save and
 *   zn_dht_free and read back by zn_dht_new (then those nodes are pinged).
 *   Malformed datagrams are dropped (counted in stats.dropped).
 *   Hostile sources (issue #19): a node's address is set only by an answer
 *   to our own query sent there; a query naming a known id from another
 *   address changes nothing.  A querier new to the table enters it
 *   unverified and is pinged; only nodes that answered us are handed out in
 *   `nodes`.  A source that has not answered one of our queries (nor
 *   brought back our token) gets an answer at most 3× its query's size
 *   (values, then nodes left out; the token always stays).  Queries are
 *   rate-limited per source IPv4 (token bucket rate_burst, refilled at
 *   rate_per_s; a bounded table of 1024 sources); excess is dropped
 *   unanswered (stats.rate_limited).
 */
#ifndef ZESTFS_DISC_H
#define ZESTFS_DISC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "bencode.h"
#include "net.h"
#include "xet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- swarm identity ------------------------------------------------------ */

/* SHA1("zestfs-repo-v1:" || type || "/" || repo_id) */
void zn_swarm_repo_id(const char *type, const char *repo_id, uint8_t out[20]);
/* zest v0.3: SHA1("zest-xet-v1:" || the 32 raw bytes of the xorb hash) */
void zn_swarm_xorb_id_zest(const xet_hash *xorb, uint8_t out[20]);

/* ---- compact peers (BEP 23 / BEP 7 / BEP 5) ------------------------------- */

/* Parse len bytes of 6-byte (AF_INET) or 18-byte (AF_INET6) entries into
 * out (at most max): the number written, or -EBADMSG when len is not a
 * multiple of the entry size. */
int zn_compact_parse(const uint8_t *p, size_t len, int family, struct sockaddr_storage *out,
                     size_t max);
/* Write sa as 6 or 18 bytes; returns the size, -EAFNOSUPPORT otherwise. */
int zn_compact_put(const struct sockaddr *sa, uint8_t out[18]);

/* ---- trackers ------------------------------------------------------------ */

typedef enum zn_tracker_event {
    ZN_EV_NONE = 0, ZN_EV_COMPLETED = 1, ZN_EV_STARTED = 2, ZN_EV_STOPPED = 3
} zn_tracker_event;

typedef struct zn_announce {
    uint8_t info_hash[20];
    uint8_t peer_id[20];
    uint16_t port;
    uint64_t uploaded, downloaded, left;
    zn_tracker_event event;
    int32_t numwant;               /* < 0: tracker default */
    uint32_t key;
} zn_announce;

typedef struct zn_announce_result {
    uint32_t interval, min_interval;   /* seconds; min_interval 0 if absent */
    uint32_t complete, incomplete;     /* seeders, leechers */
    size_t npeers;
    struct sockaddr_storage *peers;    /* IPv4 then IPv6 */
    const char *failure;               /* set with -EPERM */
} zn_announce_result;

typedef struct zn_scrape_entry {
    uint8_t info_hash[20];
    uint32_t complete, incomplete, downloaded;
} zn_scrape_entry;

typedef void (*zn_announce_cb)(void *ud, int err, const zn_announce_result *r);
/* e[i] is for the i-th requested hash (zeros when the tracker left it out) */
typedef void (*zn_scrape_cb)(void *ud, int err, const zn_scrape_entry *e, size_t n);

typedef struct zn_tracker_opts {
    zn_http *http;                 /* required for http(s):// URLs */
    uint32_t udp_base_ms;          /* first UDP retransmission; 0: 15000 */
    int udp_max_tries;             /* sends per step before -ETIMEDOUT; 0: 9 */
    long http_timeout_ms;          /* 0: 30000 */
} zn_tracker_opts;

typedef struct zn_tracker zn_tracker;
typedef struct zn_tracker_stats {
    uint64_t sent, received, dropped, retransmits, connects;
} zn_tracker_stats;

int zn_tracker_new(uv_loop_t *loop, const char *url, const zn_tracker_opts *o,
                   zn_tracker **out);
void zn_tracker_free(zn_tracker *t);
int zn_tracker_announce(zn_tracker *t, const zn_announce *a, zn_announce_cb cb, void *ud);
/* 1..74 hashes */
int zn_tracker_scrape(zn_tracker *t, const uint8_t (*ih)[20], size_t n, zn_scrape_cb cb,
                      void *ud);
/* ms (uv_now) from which a regular announce is allowed; 0 before any */
uint64_t zn_tracker_next_announce(const zn_tracker *t);
const char *zn_tracker_last_failure(const zn_tracker *t);
zn_tracker_stats zn_tracker_get_stats(const zn_tracker *t);

/* Parsers (tests, fuzzing).  An HTTP announce body: 0 or an errno as
 * above; free r->peers with free().  A scrape body: fills e[i] for ih[i]. */
int zn_tracker_parse_announce(const uint8_t *body, size_t len, zn_announce_result *r,
                              char *failure, size_t failure_len);
int zn_tracker_parse_scrape(const uint8_t *body, size_t len, const uint8_t (*ih)[20], size_t n,
                            zn_scrape_entry *e);
/* info_hash etc. %-escaped: unreserved bytes kept, others %XX; out ≥ 3n+1 */
void zn_url_escape(const uint8_t *p, size_t n, char *out);

/* ---- Mainline DHT -------------------------------------------------------- */

typedef struct zn_dht zn_dht;

typedef struct zn_dht_opts {
    const char *bind_ip;               /* NULL: "0.0.0.0" */
    uint16_t port;                     /* 0: ephemeral */
    const uint8_t *node_id;            /* 20 bytes; NULL: state file, else random */
    const char *state_path;            /* NULL: not persisted */
    const char *const *bootstrap;      /* NULL-terminated "host:port" (numeric or names) */
    uint32_t query_timeout_ms;         /* 0: 2000 */
    uint32_t token_rotate_ms;          /* 0: 300000 */
    uint32_t announce_interval_ms;     /* 0: 900000 */
    size_t max_hashes;                 /* 0: 2000 */
    size_t max_peers;                  /* per hash; 0: 500 */
    uint32_t rate_per_s;               /* queries answered per source IPv4; 0: 50 */
    uint32_t rate_burst;               /* bucket size; 0: 100 */
} zn_dht_opts;

typedef struct zn_dht_stats {
    uint64_t queries_in, queries_out, responses_in, errors_in, timeouts, dropped;
    uint64_t bad_tokens;
    uint64_t rate_limited; /* queries dropped by the per-source rate limit */
    uint64_t trimmed;      /* answers cut to AMP × the query (unverified source) */
    uint64_t addr_kept;    /* queries naming a known id from another address */
    size_t nodes, good_nodes, stored_hashes, stored_peers;
} zn_dht_stats;

/* Peers as they arrive (done false; n ≥ 1), then exactly once done true
 * with err (0 when the lookup ran; n = 0). */
typedef void (*zn_dht_peers_cb)(void *ud, int err, const struct sockaddr_storage *peers, size_t n,
                                bool done);
/* err 0 and the number of nodes that acknowledged (announce) or that the
 * routing table holds (bootstrap, ping: 1 when it answered). */
typedef void (*zn_dht_done_cb)(void *ud, int err, unsigned n);

int zn_dht_new(uv_loop_t *loop, const zn_dht_opts *o, zn_dht **out);
/* Saves the state (when state_path), cancels lookups (-ECANCELED). */
void zn_dht_free(zn_dht *d);
int zn_dht_port(const zn_dht *d);
const uint8_t *zn_dht_id(const zn_dht *d);
zn_dht_stats zn_dht_get_stats(const zn_dht *d);
/* find_node lookup toward our own id from the table and bootstrap nodes. */
int zn_dht_bootstrap(zn_dht *d, zn_dht_done_cb cb, void *ud);
/* Ping one address; cb(…, 1) when it answered (it then enters the table). */
int zn_dht_ping(zn_dht *d, const struct sockaddr *sa, zn_dht_done_cb cb, void *ud);
int zn_dht_get_peers(zn_dht *d, const uint8_t ih[20], zn_dht_peers_cb cb, void *ud);
/* Lookup + announce_peer now and every announce_interval_ms after (port 0:
 * implied_port).  cb for this first round only (cb may be NULL). */
int zn_dht_announce(zn_dht *d, const uint8_t ih[20], uint16_t port, zn_dht_done_cb cb, void *ud);
void zn_dht_unannounce(zn_dht *d, const uint8_t ih[20]);
int zn_dht_save(zn_dht *d);
/* Start a new token secret now (tests: two rotations expire old tokens). */
void zn_dht_rotate_secret(zn_dht *d);
/* The token we would give to sa (tests). */
void zn_dht_token_for(const zn_dht *d, const struct sockaddr *sa, uint8_t out[8]);
/* Nodes of the routing table (up to max), closest to target first. */
size_t zn_dht_closest(const zn_dht *d, const uint8_t target[20], uint8_t (*ids)[20],
                      struct sockaddr_storage *addrs, size_t max);
/* Peers stored for ih (from announce_peer received), up to max. */
size_t zn_dht_stored_peers(const zn_dht *d, const uint8_t ih[20], struct sockaddr_storage *out,
                           size_t max);
/* Hand one datagram to the node as if received from `from` (fuzzing). */
void zn_dht_input(zn_dht *d, const uint8_t *buf, size_t len, const struct sockaddr *from);

/* KRPC message parse (fuzz entry point).  On 0, m->root is the decoded
 * tree (free with zb_free) and the other fields point into it / buf. */
typedef struct zn_krpc {
    zb_val *root;
    char y;                        /* 'q', 'r' or 'e' */
    const uint8_t *t; size_t tlen; /* transaction id, 1..32 bytes */
    const uint8_t *q; size_t qlen; /* method (queries) */
    const zb_val *args;            /* a (queries) or r (responses): a dict */
    const uint8_t *id;             /* 20-byte sender id (q and r) */
    int64_t ecode;                 /* errors */
} zn_krpc;
/* -EBADMSG unless buf is one bencoded dict with t, y and what y needs
 * (q: q string and a dict with a 20-byte id; r: r dict with a 20-byte id;
 * e: e list [int, str]); datagrams over 2048 bytes are -EMSGSIZE. */
int zn_krpc_parse(const uint8_t *buf, size_t len, zn_krpc *m);

/* ---- PEX (BEP 11, ut_pex) ------------------------------------------------- */

typedef struct zn_pex {
    struct sockaddr_storage *added;    /* IPv4 then IPv6 */
    uint8_t *added_flags;              /* one per added (0 when absent) */
    size_t nadded;
    struct sockaddr_storage *dropped;
    size_t ndropped;
} zn_pex;

/* Encode the ut_pex dict (added, added.f, added6, added6.f, dropped,
 * dropped6; empty strings for empty lists).  flags may be NULL. */
int zn_pex_encode(const struct sockaddr_storage *added, const uint8_t *flags, size_t nadded,
                  const struct sockaddr_storage *dropped, size_t ndropped, zb_buf *out);
/* Parse a ut_pex payload; -EBADMSG on bad bencode, a non-dict, lists not a
 * multiple of 6/18, or added.f of the wrong length.  Free with zn_pex_free. */
int zn_pex_parse(const uint8_t *buf, size_t len, zn_pex *out);
void zn_pex_free(zn_pex *p);

#ifdef __cplusplus
}
#endif
#endif
