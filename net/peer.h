/* peer.h — the peer wire of zestfs (issue #5 parts 1–3; spec/p2p.md).
 *
 * A zn_peer_node listens on TCP (IPv4 or IPv6), connects to peers added by
 * discovery, speaks BitTorrent (BEP 3 handshake) + the extension protocol
 * (BEP 10) and, inside it, two extensions:
 *
 *   zfs_xet  zestfs's own (below; net/PEER-PROTOCOL.md): chunk-range
 *            availability (HAVE), chunk-range requests answered with Xet
 *            chunk records, and xorb chunk-hash manifests.
 *   ut_xet   zest v0.3 (spec/p2p.md §2.2), to serve zest peers from the store
 *            and fetch from them.
 *
 * Design
 * ------
 * Threading and callbacks follow net.h: a node belongs to one uv_loop_t and is
 *   touched only on that loop's thread.  zn_peer_fetch either fails at once
 *   (negative errno, no callback) or calls its callback exactly once, later,
 *   on the loop thread — never from inside zn_peer_fetch or
 *   zn_peer_op_cancel.  Provider callbacks are called on the loop thread.
 * Trust.  No peer byte reaches a fetch callback (or could be stored and
 *   re-served by the owner) before it is verified:
 *   1. a xorb's manifest (every chunk's hash and decoded length) comes from
 *      the provider (trusted, the owner built it from CDN data) or from a
 *      peer, and a peer's is accepted only if xet_merkle_root over it equals
 *      the xorb hash;
 *   2. each chunk record received is parsed with caps (decoded ≤ 128 KiB,
 *      payload ≤ 256 KiB = 2×), decoded, and its decoded length and keyed
 *      BLAKE3 chunk hash compared with the manifest.  Decoding and hashing
 *      run on the libuv thread pool (uv_queue_work).
 *   A peer that sends anything wrong — a chunk or manifest that fails (1)/(2),
 *   a frame above the caps, a malformed or unknown zfs_xet message, bad
 *   bencode in its extension handshake, a bad BT handshake — is disconnected
 *   and banned: no connection from its IP address is accepted (whatever peer
 *   id it uses next) and its listen address is not dialled, for ban_ms (1 h);
 *   at most 1024 bans are kept.  The fetch then goes on with other peers
 *   that hold the range; when none is left it fails (see zn_peer_fetch) and
 *   the caller uses the CDN.
 * Frames.  BT frames (len u32 BE | id | payload) above ctrl_frame_max
 *   (64 KiB) are checked at their header: only an answer to one of our
 *   requests may be that large, and no larger than what it asked for (DATA:
 *   the records of the part, LZ4's worst case allowed; MANIFEST / MPART: 8192
 *   entries; ut_xet CHUNK_RESPONSE: data_frame_max, 64 MiB + 1 KiB, as zest
 *   sends whole entries); anything else is a ban.  An answer to a request
 *   we gave up is discarded as it arrives.  Unknown BT message ids are
 *   skipped; keep-alives are sent after 90 s of silence; a connection with
 *   no message but keep-alives either way for 300 s, or without a handshake
 *   after 10 s, is closed.
 * Bounds per peer (issue 19).  Bytes queued for writing to a peer (answers
 *   being read from the store included) are capped at two answers' worth
 *   (~17 MiB) and to all peers at upload_mem_max (64 MiB): past either,
 *   nothing more that peer sent is handled (its requests wait in TCP) until
 *   the queue drains; a peer that reads nothing of it for write_stall_ms
 *   (20 s) is dropped.  Requests of more than 64 chunks are refused (REFUSE
 *   4 / NOT_FOUND), except ut_xet requests of up to a whole xorb (zest takes
 *   one answer per request): one at a time per peer, sized exactly from the
 *   manifest, within data_frame_max and counted whole against
 *   upload_mem_max (else NOT_FOUND).  At most 32 messages or 256 KiB of one peer are handled
 *   per loop turn (the rest on the next); HAVE runs are kept as ranges, so
 *   every message costs time in its size, not in the chunks it names; MREQ
 *   is answered from memory (manifest cache, a 2 s parts cache).  DATA bytes
 *   count as delivery as they arrive, so a transfer that crawls is dropped
 *   by the min_rate check (below) whatever else the peer sends.
 * Pipelining.  A fetch is split into requests of at most 64 chunks, spread
 *   over the peers that hold them (rarest-first over peers with the fewest
 *   outstanding requests), all outstanding at once; each carries a request
 *   id, has its own timeout (req_timeout_ms) and is cancelled on the wire
 *   (zfs_xet CANCEL) when the fetch is cancelled.  A request that fails on a
 *   peer (refused, timeout, bad data) is retried on another peer that holds
 *   it.
 * Upload.  Answers with chunk data are paced by a node-wide token schedule
 *   (upload_rate B/s; 0 = unlimited); at most max_conns connections exist;
 *   a request is answered only when provider->may_serve(info_hash) is true
 *   for the connection's swarm and provider->held covers the range.
 *   Records are sent with scheme NONE (the provider gives decoded chunks).
 * Swarms.  A connection belongs to one 20-byte info_hash.  Incoming
 *   handshakes are accepted for joined swarms and for any info_hash
 *   may_serve accepts (zest's per-xorb swarms: zn_peer_zest_info_hash).
 * zest peers (ut_xet, no zfs_xet) announce nothing: each is a candidate
 *   holder of every xorb (zn_peer_holders counts it) until it answers
 *   NOT_FOUND / ERROR for that xorb.  With no manifest from a zfs_xet peer,
 *   the fetch asks one for the xorb; an answer at chunk offset 0 is decoded
 *   whole on the pool (≤ 8192 records, ≤ 128 MiB decoded) and its chunk
 *   Merkle tree rebuilt: the xorb hash as root makes it the manifest (kept)
 *   and serves the fetch; another root or a bad record is a ban.
 *
 * zfs_xet messages (BEP 10 payload after the extended id; integers BE)
 * -------------------------------------------------------------------
 *   01 HAVE      xorb[32] | n u32 | (start u32, end u32) × n        37+8n B
 *                 chunk runs [start,end) the sender holds verified; adds to
 *                 what it announced before.  n ≤ 4096, start < end ≤ 8192.
 *   02 REQUEST   req u32 | xorb[32] | start u32 | end u32          45 B
 *                 1 ≤ end−start ≤ 1024.
 *   03 DATA      req u32 | start u32 | records…                    9+N B
 *                 serialized Xet chunk records for exactly [start,end).
 *   04 MREQ      req u32 | xorb[32]                                37 B
 *   05 MANIFEST  req u32 | n u32 | (hash[32], len u32) × n         9+36n B
 *                 every chunk of the xorb; 1 ≤ n ≤ 8192, 1 ≤ len ≤ 128 KiB.
 *   06 REFUSE    req u32 | code u32                                9 B
 *                 code 1 not found, 2 not allowed (swarm not served),
 *                 3 busy, 4 bad request.
 *   07 CANCEL    req u32                                            5 B
 *   08 PENDING   xorb[32] | n u32 | (start u32, end u32) × n        37+8n B
 *                 runs the sender is fetching from elsewhere (the CDN) right
 *                 now; n = 0: none any more.  Replaces what it said before
 *                 for that xorb.  Sent only to peers whose extension
 *                 handshake has "zfs_caps" with bit 1 (ZP_CAP_PENDING), so
 *                 older zestfs peers never see it.  n ≤ 4096.
 *   09 MPART     req u32 | m u32 | (index u32, hash[32], len u32) × m   9+40m B
 *                 the answer to MREQ from a peer without the whole manifest:
 *                 the chunk hashes and lengths of the xorb it knows (from
 *                 chunks it verified), indexes increasing, < 8192; 1 ≤ m.
 *                 The requester joins the parts it gets (and its own) and
 *                 accepts the result only when chunks [0, n) are all known and
 *                 aggregate to the xorb hash.  Sent only to peers whose
 *                 "zfs_caps" has bit 2 (ZP_CAP_MPART).
 * Any other type byte, or a length other than the above, is malformed.
 * Request ids are chosen by the requester, unique per connection.
 *
 * Extension handshake sent: d 1:m d 6:ut_pex i3e 6:ut_xet i1e 7:zfs_xet i2e e
 *   1:p i<port>e 4:reqq i250e 1:v 10:zestfs/0.1 8:zfs_caps i3e e (ut_xet = 1
 *   as zest expects; ut_pex left out with no_pex).
 * PEX (BEP 11).  To each peer that offered ut_pex: the listen addresses of
 *   the other peers of the same swarm (dialled: the address; incoming: the
 *   source IP with the port of its extension handshake), as added/dropped
 *   against what that peer was told before, at most 50 added per message;
 *   the first message right after the handshakes, then at most one per
 *   pex_interval_ms (60 s).  Received: up to 50 added addresses are dialled
 *   (within max_conns; banned and slow-dropped addresses are skipped); a
 *   ut_pex that does not parse bans the peer; messages closer together than
 *   a quarter of the interval are ignored.
 * Speed.  Each connection's rate is the chunk data it delivered per second of
 *   having our requests outstanding.  Parts go to the holder expected to
 *   finish first (its queued bytes / its rate; an unmeasured peer is assumed
 *   as fast as the best measured one: tried when that one is busy, never
 *   preferred over it).  A peer that, after slow_window_ms of busy time,
 *   delivers less than min_rate, or times out twice, is disconnected (not
 *   banned: it sent nothing wrong) and not dialled again for slow_ban_ms;
 *   its requests go to other holders.
 * Peer id: "-ZF0100-" + 12 random bytes.
 */
#ifndef ZESTFS_PEER_H
#define ZESTFS_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "xet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- wire constants --------------------------------------------------------- */
#define ZP_HANDSHAKE_LEN 68
#define ZP_PEER_ID_PREFIX "-ZF0100-"
#define ZP_EXT_UT_XET 1        /* our local extended ids */
#define ZP_EXT_ZFS_XET 2
#define ZP_EXT_UT_PEX 3
#define ZP_CAP_PENDING 1u      /* "zfs_caps" bit: understands PENDING */
#define ZP_CAP_MPART 2u        /* "zfs_caps" bit: understands MPART */
#define ZP_MAX_PEX_ADDED 50u   /* peers per ut_pex message, both ways */
#define ZP_CTRL_FRAME_MAX (64u << 10)
#define ZP_DATA_FRAME_MAX ((64u << 20) + 1024u)
#define ZP_MAX_REQ_CHUNKS 1024u
#define ZP_MAX_HAVE_RUNS 4096u

enum zp_zfs_type {
    ZP_HAVE = 1, ZP_REQUEST = 2, ZP_DATA = 3, ZP_MREQ = 4, ZP_MANIFEST = 5, ZP_REFUSE = 6,
    ZP_CANCEL = 7, ZP_PENDING = 8, ZP_MPART = 9,
};
enum zp_refuse_code { ZP_NOT_FOUND = 1, ZP_NOT_ALLOWED = 2, ZP_BUSY = 3, ZP_BAD_REQUEST = 4 };
enum zp_utxet_type {
    ZP_UT_REQUEST = 1, ZP_UT_RESPONSE = 2, ZP_UT_NOT_FOUND = 3, ZP_UT_ERROR = 4,
};

/* ---- pure codecs (no I/O; fuzz entry points) -------------------------------- */

typedef struct zn_chunk_run {
    uint32_t start, end; /* [start, end) */
} zn_chunk_run;

/* One parsed zfs_xet message.  Pointers point into the parsed buffer. */
typedef struct zp_zfs_msg {
    uint8_t type;
    uint32_t req;
    xet_hash xorb;             /* HAVE, REQUEST, MREQ */
    uint32_t start, end;       /* REQUEST; DATA: start only */
    uint32_t code;             /* REFUSE */
    uint32_t n;                /* HAVE runs, MANIFEST entries */
    const uint8_t *body;       /* HAVE: runs (8n B); DATA: records; MANIFEST: entries (36n B) */
    size_t body_len;
} zp_zfs_msg;
/* Parse one zfs_xet payload (after the extended id).  0 or -EBADMSG. */
int zp_zfs_parse(const uint8_t *p, size_t len, zp_zfs_msg *m);

typedef struct zp_ut_msg {
    uint8_t type;
    uint32_t req;
    xet_hash hash;             /* REQUEST xorb; NOT_FOUND echo */
    uint32_t start, end;       /* REQUEST */
    uint32_t chunk_offset;     /* RESPONSE */
    uint32_t code;             /* ERROR */
    const uint8_t *data;       /* RESPONSE data; ERROR message */
    size_t data_len;
} zp_ut_msg;
/* Parse one ut_xet payload (zest v0.3, §2.2).  0 or -EBADMSG. */
int zp_ut_parse(const uint8_t *p, size_t len, zp_ut_msg *m);

/* Encoders write into out (size given by the *_LEN / computed size) and
 * return the bytes written. */
size_t zp_zfs_have(uint8_t *out, const xet_hash *xorb, const zn_chunk_run *runs, uint32_t n);
size_t zp_zfs_request(uint8_t out[45], uint32_t req, const xet_hash *xorb, uint32_t start,
                      uint32_t end);
size_t zp_zfs_data_hdr(uint8_t out[9], uint32_t req, uint32_t start);
size_t zp_zfs_mreq(uint8_t out[37], uint32_t req, const xet_hash *xorb);
size_t zp_zfs_manifest(uint8_t *out /* 9+36n */, uint32_t req, const xet_hash *hashes,
                       const uint32_t *lens, uint32_t n);
size_t zp_zfs_refuse(uint8_t out[9], uint32_t req, uint32_t code);
size_t zp_zfs_cancel(uint8_t out[5], uint32_t req);
size_t zp_ut_request(uint8_t out[45], uint32_t req, const xet_hash *xorb, uint32_t start,
                     uint32_t end);
size_t zp_ut_response_hdr(uint8_t out[13], uint32_t req, uint32_t chunk_offset,
                          uint32_t data_len);
size_t zp_ut_not_found(uint8_t out[37], uint32_t req, const xet_hash *hash);

/* The BT handshake: 0x13 "BitTorrent protocol" reserved[8] (BEP 10 bit set)
 * info_hash[20] peer_id[20].  Parse: -EBADMSG for a wrong protocol string;
 * *ext = whether the peer set the BEP 10 bit. */
void zp_handshake(uint8_t out[68], const uint8_t ih[20], const uint8_t peer_id[20]);
int zp_handshake_parse(const uint8_t p[68], uint8_t ih[20], uint8_t peer_id[20], bool *ext);

/* Parse a BEP 10 handshake dict: the peer's ids for ut_xet and zfs_xet
 * (0 = not offered) and its listen port (0 if absent).  -EBADMSG for bad
 * bencode (trailing bytes included), a non-dict, or ids outside 0..255. */
int zp_ext_handshake_parse(const uint8_t *p, size_t len, uint8_t *ut_xet, uint8_t *zfs_xet,
                           uint16_t *port);
/* The same, with ut_pex's id (BEP 11) and our "zfs_caps" bits (ZP_CAP_*;
 * 0 when absent or not a non-negative integer below 2^32). */
typedef struct zp_ext_info {
    uint8_t ut_xet, zfs_xet, ut_pex;
    uint16_t port;
    uint32_t caps;
} zp_ext_info;
int zp_ext_handshake_info(const uint8_t *p, size_t len, zp_ext_info *out);
/* PENDING: like HAVE, but n may be 0 (= nothing pending any more). */
size_t zp_zfs_pending(uint8_t *out, const xet_hash *xorb, const zn_chunk_run *runs, uint32_t n);
/* MPART: m known chunks (idx increasing). */
size_t zp_zfs_mpart(uint8_t *out /* 9+40m */, uint32_t req, const uint32_t *idx,
                    const xet_hash *hashes, const uint32_t *lens, uint32_t m);

/* Verify a manifest (n entries of hash+len) against the xorb hash: 0 or
 * -EBADMSG (bad sizes, count) / -EILSEQ (does not aggregate to xorb). */
int zp_manifest_verify(const xet_hash *xorb, const xet_hash *hashes, const uint32_t *lens,
                       uint32_t n);

/* Decode and verify records: `recs` holds records for chunks
 * [first, first+n) whose expected lens/hashes are given; out receives the
 * decoded bytes (sum of lens).  Extra bytes after the n-th record: -EBADMSG.
 * 0, -EBADMSG / -EFBIG / -EPROTONOSUPPORT (records), -EILSEQ (mismatch). */
int zp_records_verify(const uint8_t *recs, size_t len, const uint32_t *lens,
                      const xet_hash *hashes, uint32_t n, uint8_t *out, bool allow_trailing);

/* zest's swarm id: SHA1("zest-xet-v1:" || raw xorb hash bytes) (§1.1). */
void zn_peer_zest_info_hash(const xet_hash *xorb, uint8_t out[20]);

/* ---- node ------------------------------------------------------------------- */

typedef struct zn_peer_node zn_peer_node;
typedef struct zn_peer_op zn_peer_op;

typedef void (*zn_peer_read_cb)(void *arg, int err, const uint32_t *lens, const xet_hash *hashes,
                                const uint8_t *data, size_t len);

/* What the node serves, implemented by the owner over its store.  All called
 * on the loop thread. */
typedef struct zn_peer_provider {
    void *ud;
    /* chunk runs of xorb held and verified locally (≤ max written; returns count) */
    size_t (*held)(void *ud, const xet_hash *xorb, zn_chunk_run *out, size_t max);
    /* the xorb's manifest if known: 0 with malloc'd *hashes, *lens (the node
     * frees them), or -ENOENT */
    int (*manifest)(void *ud, const xet_hash *xorb, xet_hash **hashes, uint32_t **lens,
                    uint32_t *n);
    /* decoded chunks [start,end) → cb exactly once (may be from inside the
     * call or later); returns 0, or an errno (then no cb) */
    int (*read_chunks)(void *ud, const xet_hash *xorb, uint32_t start, uint32_t end,
                       zn_peer_read_cb cb, void *arg);
    /* whether the swarm of this info-hash may be served */
    bool (*may_serve)(void *ud, const uint8_t info_hash[20]);
    /* optional: whether this xorb may be served (or announced) on that swarm
     * (a xorb of a private repo is never served through a public swarm);
     * NULL: every held xorb */
    bool (*may_serve_xorb)(void *ud, const uint8_t info_hash[20], const xet_hash *xorb);
    /* optional: the chunk hashes and lengths of xorb known from chunks
     * verified locally when the whole manifest is not: 0 with malloc'd
     * *idx (increasing), *hashes, *lens and *m >= 1, or -ENOENT */
    int (*parts)(void *ud, const xet_hash *xorb, uint32_t **idx, xet_hash **hashes,
                 uint32_t **lens, uint32_t *m);
} zn_peer_provider;

typedef struct zn_peer_opts {
    uint16_t listen_port;      /* 0 = ephemeral */
    const char *bind;          /* address to listen on; NULL: "0.0.0.0"; "::" for IPv6 */
    unsigned max_conns;        /* 0: 64 */
    uint64_t upload_rate;      /* B/s of chunk data sent, 0 = unlimited */
    unsigned req_timeout_ms;   /* per request; 0: 15000 */
    uint32_t ctrl_frame_max;   /* 0: ZP_CTRL_FRAME_MAX */
    uint32_t data_frame_max;   /* 0: ZP_DATA_FRAME_MAX */
    bool no_listen;            /* outgoing connections only */
    bool no_pex;               /* neither send nor use ut_pex (BEP 11) */
    unsigned pex_interval_ms;  /* between our ut_pex messages on a connection; 0: 60000 */
    uint64_t min_rate;         /* B/s: a peer slower than this while busy is dropped; 0: 256 KiB/s */
    unsigned slow_window_ms;   /* busy time before the rate is judged; 0: 4000 */
    unsigned slow_ban_ms;      /* a dropped slow peer is not dialled again for; 0: 600000 */
    unsigned ban_ms;           /* how long a ban holds; 0: 1 h */
    uint64_t upload_mem_max;   /* bytes queued for writing to all peers; 0: 64 MiB */
    unsigned write_stall_ms;   /* a peer reading nothing we queued for this long goes; 0: 20000 */
} zn_peer_opts;

typedef struct zn_peer_stats {
    uint64_t bytes_up, bytes_down;   /* all bytes on the wire */
    uint64_t data_up, data_down;     /* verified chunk bytes served / received */
    unsigned peers;                  /* connections with a completed handshake */
    unsigned ext_peers;              /* of which sent a valid BEP 10 handshake */
    unsigned conns;                  /* connections in any state */
    uint64_t bans;                   /* peers banned */
    uint64_t verify_failures;        /* bad chunks / manifests */
    uint64_t requests_served, requests_refused;
    uint64_t fetches_ok, fetches_failed;
    uint64_t pex_in, pex_out;        /* ut_pex messages received / sent */
    uint64_t pex_dialled;            /* peers dialled because a ut_pex named them */
    uint64_t slow_drops;             /* peers disconnected for being too slow */
    uint64_t mparts_in, mparts_out;  /* MPART answers received / sent */
    uint64_t manifests_joined;       /* manifests put together from parts and verified */
    uint64_t pending_in;             /* PENDING messages received */
    uint64_t stall_drops;            /* peers dropped for reading nothing we sent */
} zn_peer_stats;

int zn_peer_node_new(uv_loop_t *loop, const zn_peer_opts *o, const zn_peer_provider *p,
                     zn_peer_node **out);
int zn_peer_node_port(zn_peer_node *n);
const uint8_t *zn_peer_node_id(zn_peer_node *n); /* our 20-byte peer id */
/* Closes everything; pending fetches complete with -ECANCELED (from inside
 * this call — the one exception).  The memory is released once the loop has
 * run the close callbacks and any pool work in flight: keep running it. */
void zn_peer_node_free(zn_peer_node *n);

int zn_peer_swarm_join(zn_peer_node *n, const uint8_t info_hash[20]);
/* Dial sa for this swarm (joined implicitly).  -EPERM if banned,
 * -EMFILE at max_conns, -EALREADY if connected or dialling there. */
int zn_peer_add(zn_peer_node *n, const uint8_t info_hash[20], const struct sockaddr *sa);
/* zn_peer_add for one of zest's per-xorb swarms: also -EALREADY when a
 * connection to sa exists whose peer speaks only ut_xet (zest answers for
 * any xorb on any connection), so a zest node is not dialled once per xorb. */
int zn_peer_add_xorb(zn_peer_node *n, const uint8_t info_hash[20], const struct sockaddr *sa);
/* Take over a connected stream socket (tests, fuzzing: one end of a
 * socketpair): as an incoming peer (info_hash NULL), or as if we had dialled
 * it for info_hash (we send our handshake first).  The node closes fd.
 * 0, or negative errno (fd not taken). */
int zn_peer_adopt(zn_peer_node *n, int fd, const uint8_t info_hash[20]);
/* Tell connected zfs_xet peers (and remember for new ones) that we now hold
 * [start,end) of xorb; the runs sent are provider->held's. */
void zn_peer_announce_have(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end);
/* How many connected peers announced holding all of [start,end) of xorb. */
unsigned zn_peer_holders(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end);
/* Tell peers that understand it (ZP_CAP_PENDING) that we are fetching
 * [start,end) of xorb from elsewhere now (on) or no longer (off: every run
 * of that xorb).  Peers forget a pending run after ZP_PENDING_TTL_MS or
 * when our HAVE covers it. */
#define ZP_PENDING_TTL_MS 30000u
void zn_peer_announce_pending(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end,
                              bool on);
/* How many connected peers said they are fetching all of [start,end)
 * (start >= end: any run of the xorb). */
unsigned zn_peer_pending(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end);

/* Fetch decoded chunks [start,end) of xorb from peers, verified as above.
 * cb gets (lens, hashes, data, len) of exactly those chunks, or:
 *   -ENOENT     no usable manifest, or no (remaining, unbanned) peer holds
 *               the range — including when the peers that had it lied;
 *   -ETIMEDOUT  deadline_ms passed (0: none), or the last peer that could
 *               serve a part timed out;
 *   -ECANCELED  zn_peer_op_cancel or zn_peer_node_free;
 *   -ERANGE     end is past the xorb's chunk count (per its manifest);
 *   -EINVAL     (at once) start >= end.
 * *op (optional) is valid until cb is entered. */
typedef void (*zn_peer_fetch_cb)(void *ud, int err, const uint32_t *lens, const xet_hash *hashes,
                                 const uint8_t *data, size_t len);
int zn_peer_fetch(zn_peer_node *n, const xet_hash *xorb, uint32_t start, uint32_t end,
                  unsigned deadline_ms, zn_peer_fetch_cb cb, void *ud, zn_peer_op **op);
void zn_peer_op_cancel(zn_peer_op *op);
/* Bytes of the fetch verified so far and its total (0 until the manifest is
 * known); for racing a slow fetch against another source. */
void zn_peer_op_progress(const zn_peer_op *op, uint64_t *done, uint64_t *total);

void zn_peer_get_stats(zn_peer_node *n, zn_peer_stats *st);

#ifdef __cplusplus
}
#endif
#endif
