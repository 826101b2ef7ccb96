/* zfs.h — internals of the mount (fs/): the filesystem state shared by the
 * FUSE operations (ops.c), the session driver (mount.c) and the blob read
 * path (read.c).  Everything here is owned by the loop thread. */
#ifndef ZESTFS_FS_ZFS_H
#define ZESTFS_FS_ZFS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "ctlwire.h"
#include "options.h"
#include "vtree.h"

struct zf_node;
struct zf_fs;
struct rd_ctx;   /* the read path's state (read/) */
struct od_ctx;   /* repos and revisions on demand (hubload.c) */

/* The one seam from the FUSE operations (ops.c) up into the modules that
 * serve them: each module fills its members when it starts and clears them
 * when it goes, and ops.c reaches those modules through here only.  A NULL
 * member: that service is absent. */
typedef struct zf_fs_hooks {
    /* blob reads (read/, zf_read_init); NULL: blob reads fail with EIO */
    void (*read_blob)(struct zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off);
    /* open/release of a virtual blob (read/: prefetch at open); NULL: none */
    void *(*blob_opened)(struct zf_fs *fs, const zv_ent *e);
    void (*blob_released)(struct zf_fs *fs, void *token);
    /* a repo about to be read (read/: its Xet read tokens fetched now) */
    void (*warm_repo)(struct zf_fs *fs, const zf_repo *r);
    /* a lookup that found nothing (hubload.c, zf_ondemand_init), at the
     * root, or inside a presented repo (path relative to the root): true
     * when it took the request (answered later with zf_lookup_reply) */
    bool (*lookup_miss)(struct zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
    bool (*lookup_rev)(struct zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
                       const char *path);
} zf_fs_hooks;

typedef struct zf_fs {
    int rootfd;                 /* O_PATH handle on the mountpoint from before the mount */
    zv_tree tree;               /* presented repos */
    struct fuse_session *se;
    uv_loop_t *loop;
    uid_t uid;                  /* owner of the virtual entries */
    gid_t gid;
    /* inode table: open hashing on ino */
    struct zf_node **nodes;
    size_t nbuckets, nnodes;
    zf_fs_hooks hooks;          /* the modules above the FUSE operations */
    struct rd_ctx *read_ctx;    /* read/ (zf_read_init); NULL: none */
    struct od_ctx *ondemand;    /* hubload.c (zf_ondemand_init); NULL: none */
    /* models replaced while mounted: open handles and reads may still point
     * into them, so they live until zf_fs_destroy */
    zf_repo **retired;
    size_t nretired;
    const char *mountpoint;     /* as given; NULL when not mounted (pull, seed) */
    struct zf_p2p *p2p;         /* the peer swarm (p2p.h); NULL: CDN only */
    unsigned max_read;          /* largest read request (0: the kernel's, 1 MiB) */
    struct zf_flats *flats;     /* whole copies for passthrough (flat.c); NULL: none */
    uint64_t cur_unique;        /* the FUSE request being dispatched (flat.c) */
    /* open file handles (ops.c): the kernel drops RELEASEs still queued
     * when the mount goes away, so zf_fs_destroy frees what is left */
    struct zf_handle *handles;
    zc_store *store;            /* where ref writes are persisted (set by zf_load_repos) */
    struct zf_refq *refq;       /* ref models being persisted (ops.c), oldest first */
    char **kept_refs;           /* real refs/<rev> files taken into the model at startup:
                                 * kept as they are, hidden from the overlay (ops.c) */
    size_t nkept_refs;
    struct zf_adopt *adopt;     /* earlier downloads being adopted (adopt.h); NULL: none */
} zf_fs;
/* adopt.c: the real blobs/<etag> at path is not verified yet (hidden) */
bool zf_adopt_hides(const struct zf_adopt *a, const char *path);

/* Mount options (mount.c parses them; hubload.c and read.c use them). */
typedef struct zf_opts {
    const char *endpoint;       /* no trailing '/' */
    const char *token;          /* Hub token; NULL: anonymous */
    const char *cacert;         /* PEM bundle; NULL: the system's */
    const char *store_dir;
    uint64_t store_size;
    bool offline;               /* never touch the network */
    size_t nrepos;
    const char **repos;         /* "[models/|datasets/|spaces/]org/name[@rev]" */
} zf_opts;

/* The low-level operations (ops.c). */
extern const struct fuse_lowlevel_ops zf_ops;
int zf_fs_init(zf_fs *fs, int rootfd);
void zf_fs_destroy(zf_fs *fs);

/* Answer a lookup as op_lookup would (after the tree changed). */
void zf_lookup_reply(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);

/* refs/<rev> files a client left in the real directory of a presented repo
 * (a rename over a ref before zestfs took those, a ref it created): each
 * holding a commit becomes that ref's value in the model, stamped with the
 * file's mtime, is persisted, and the file is removed (ops.c).  At startup,
 * before the Hub refresh. */
void zf_absorb_overlay_refs(zf_fs *fs);

/* Present a repo model (present.c; takes it; replaces one of the same type and id). */
int zf_fs_add_repo(zf_fs *fs, zf_repo *r);
/* The presented repo of that type and id (present.c); NULL: none. */
const zf_repo *zf_fs_find_repo(const zf_fs *fs, enum zf_repo_type type, const char *id);

/* Blob reads (read.c), on fs->loop: sets fs->read_blob.  Network clients
 * are created on the loop unless o->offline.  zf_read_stop cancels what
 * is in flight (pending reads fail with EIO) and closes the clients: call
 * it when the session ends, then keep running the loop until it is empty;
 * zf_read_free after that. */
int zf_read_init(zf_fs *fs, const zf_opts *o, zc_store *store);
struct zn_hub *zf_read_hub(zf_fs *fs); /* NULL offline or once stopped */

/* Counters of the read path (read.c), owned by the loop thread: read them
 * there (zf_read_metrics), e.g. for `zestfs status` or /metrics.
 * Histograms count observations <= each bound of ZF_HIST_BOUNDS_MS, as
 * Prometheus buckets do (cumulative when exported). */
/* Non-Xet files up to this size are fetched whole into memory; larger ones
 * are kept in the store as windows of synthetic xorbs, like Xet content
 * (read.c), so labels (pin) and eviction treat them as Xet files. */
#define ZF_BLOB_MAX (64ull << 20)
#define ZF_IN_XORBS(f) ((f)->has_xet || (f)->size > ZF_BLOB_MAX)

#define ZF_HIST_N 16
#define ZF_HIST_BOUNDS_MS {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 1e300}
typedef struct zf_hist {
    uint64_t bucket[ZF_HIST_N];  /* non-cumulative: observations in (bound[i-1], bound[i]] */
    uint64_t count;
    double sum_ms;
} zf_hist;
void zf_hist_add(zf_hist *h, double ms);
enum zf_source { ZF_SRC_STORE, ZF_SRC_PEER, ZF_SRC_CDN, ZF_NSRC };
#define ZF_SLOW_N 8
typedef struct zf_slow_read {
    double ms;
    uint64_t off, len;
    char path[160];              /* repo-relative path of the file read */
} zf_slow_read;
typedef struct zf_metrics {
    uint64_t reads, read_bytes, read_errors; /* reads answered (FUSE and HTTP access) */
    uint64_t http_reads;                      /* of which through the HTTP access server */
    zf_hist read_ms;                          /* their latency */
    uint64_t reads_from_store;                /* answered without waiting for a fetch */
    uint64_t reads_waited;                    /* had to wait for a fetch */
    uint64_t reads_early;                     /* ... answered from the fetched run before it was stored */
    uint64_t bytes_by_src[ZF_NSRC];           /* bytes served (store) / fetched (peer, cdn) */
    zf_hist fetch_ms[ZF_NSRC];                /* xorb range fetch latency by source */
    uint64_t fetches_inflight;
    uint64_t verify_failures;                 /* network data that failed checks */
    uint64_t peer_bans;
    uint64_t races;                           /* slow peer fetches raced against the CDN */
    uint64_t races_cdn_won;                   /* of which the CDN finished first */
    uint64_t fetches_parked;                  /* waited for a peer's CDN fetch of the range */
    uint64_t fetches_held;                    /* fill transfers paused for a foreground one */
    zf_slow_read slow[ZF_SLOW_N];             /* slowest recent reads, slowest first */
} zf_metrics;
zf_metrics *zf_read_metrics(zf_fs *fs);       /* NULL before zf_read_init */

/* A read for zestfs itself (HTTP access, verification), on fs->loop: the
 * bytes [off, off + min(len, size - off)) of a blob, through the store and
 * the network like a FUSE read (which it counts as: its fetches go first).
 * cb runs on the loop with 0 and the bytes (valid during the call only) or
 * a negative errno; maybe from inside the call when the bytes are in
 * memory already (small non-Xet files).  -EINVAL for len 0 or off past
 * the end. */
typedef void (*zf_read_cb)(void *ud, int err, const uint8_t *data, size_t len);
int zf_read_async(zf_fs *fs, const zv_ent *blob, uint64_t off, size_t len, zf_read_cb cb,
                  void *ud);

/* zf_read_async, but only from the store: -ENOENT when a byte is not
 * stored (nothing is fetched; a small non-Xet file may still be). */
int zf_read_stored(zf_fs *fs, const zv_ent *blob, uint64_t off, size_t len, zf_read_cb cb,
                   void *ud);
/* Label (on) or unlabel every xorb the Xet file's map names (zc_label_pin:
 * labelled xorbs are never evicted), loading the map first.  cb on the
 * loop, maybe from inside the call: 0, or -ENODATA when the map does not
 * cover the whole file yet (what it names is labelled anyway). */
int zf_read_label_file(zf_fs *fs, const zv_ent *blob, bool on,
                       void (*cb)(void *ud, int err, uint64_t nxorbs), void *ud);

/* The xorbs a Xet blob's file map names (as far as it is known: loaded
 * from the store, extended by reads), in file order without repeats; cb on
 * the loop, maybe from inside the call.  Also forgets which of its windows
 * were found whole (the caller is about to drop stored data). */
int zf_read_file_xorbs(zf_fs *fs, const zv_ent *blob,
                       void (*cb)(void *ud, int err, const xet_hash *v, size_t n), void *ud);
/* Drop the in-memory copy of a whole-file (non-Xet) blob, if any. */
void zf_read_forget_blob(zf_fs *fs, const char *etag);

/* Background fills (read.c), on fs->loop: make byte ranges of a blob stored
 * (ranges: n [start, end) pairs filled in that order; NULL = the whole
 * file), a window (8 MiB) at a time, sharing a few windows in flight with
 * every other fill; reads waiting on a FUSE request go first.  cb runs on
 * the loop: with final=false after each piece (done/total bytes), then
 * once with final=true and 0 or a negative errno (-ECANCELED after
 * zf_fill_cancel or zf_read_stop).  Never from inside zf_fill_start or
 * zf_fill_cancel.  The zf_fill is gone once the final callback returns. */
typedef struct zf_fill zf_fill;
typedef void (*zf_fill_cb)(void *ud, zf_fill *fl, uint64_t done, uint64_t total, bool final,
                           int err);
int zf_fill_start(zf_fs *fs, const zv_ent *blob, const uint64_t *ranges, size_t n, zf_fill_cb cb,
                  void *ud, zf_fill **out);
void zf_fill_cancel(zf_fill *fl);
/* The fill is a pull: runs only it waits for are stored around the page
 * cache (ZC_PUT_NOCACHE).  Call right after zf_fill_start. */
void zf_fill_nocache(zf_fill *fl);
void zf_read_stop(zf_fs *fs);
/* A repo about to be read (presented at start, looked up): fetch the Xet
 * read tokens of its refs' commits now, so a first read does not wait for
 * one.  No-op offline or when the cached ones are fresh. */
void zf_read_warm_repo(zf_fs *fs, const zf_repo *r);
void zf_read_free(zf_fs *fs);

/* zf_read_stored over the whole blob, copying nothing: cb gets 0 when every
 * byte is stored (segments found at startup are verified on the way),
 * -ENOENT when one is not.  Xet files and large non-Xet files only. */
int zf_read_check(zf_fs *fs, const zv_ent *blob, zf_read_cb cb, void *ud);

/* Pulls (pull.c), on fs->loop: resolve spec, then fill every file of the
 * commit that matches one of the include globs (all when none), a few
 * files at a time.  cb: progress (final=false), then once final=true with
 * st->err 0 or the first error (-ENOSPC: the selection exceeds the store
 * cap; -ECANCELED).  Never from inside zf_pull_start. */
typedef struct zf_pull_stat {
    uint64_t done, total;       /* bytes */
    unsigned files_done, files, files_failed;
    char commit[41];
    int err;
} zf_pull_stat;
typedef struct zf_pull zf_pull;
typedef void (*zf_pull_cb)(void *ud, const zf_pull_stat *st, bool final);
int zf_pull_start(zf_fs *fs, zc_store *store, const char *spec, const char *const *include,
                  size_t ninclude, zf_pull_cb cb, void *ud, zf_pull **out);
void zf_pull_cancel(zf_pull *p);

/* module headers (each includes this one) */
#include "admin.h"
#include "ctl.h"
#include "evict.h"
#include "httpd.h"
#include "ondemand.h"
#include "hubload.h"
#include "flat.h"

#endif
