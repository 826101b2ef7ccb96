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
#include "vtree.h"

struct zf_node;

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
    /* blob reads (read.c); NULL: blob reads fail with EIO */
    void (*read_blob)(struct zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off);
    void *read_ctx;
    /* a lookup at the root that found nothing (hubload.c): true when it
     * took the request (answered later with zf_lookup_reply) */
    bool (*lookup_miss)(struct zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
    void *ondemand;
    /* models replaced while mounted: open handles and reads may still point
     * into them, so they live until zf_fs_destroy */
    zf_repo **retired;
    size_t nretired;
    /* open/release of a virtual blob (read.c: prefetch at open); NULL: none */
    const char *mountpoint;     /* as given; NULL when not mounted (pull, seed) */
    void *(*blob_opened)(struct zf_fs *fs, const zv_ent *e);
    void (*blob_released)(struct zf_fs *fs, void *token);
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

/* Present a repo model (takes it; replaces one of the same type and id). */
int zf_fs_add_repo(zf_fs *fs, zf_repo *r);

/* Startup (hubload.c), before the FUSE session exists and outside any
 * loop: every repo persisted in the store ("repo/<type>/<id>") is loaded,
 * then each --repo is resolved on the Hub (revision + tree listing, on a
 * private loop), merged into its persisted model, persisted again and
 * presented.  Offline, or when the Hub cannot be reached, the persisted
 * model is presented instead.  0, or a negative errno for a repo that
 * cannot be presented at all (a message is printed). */
int zf_load_repos(zf_fs *fs, const zf_opts *o, zc_store *store);

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
    uint64_t recons;                          /* CAS reconstructions asked (windows, pieces, ahead) */
    uint64_t recons_learned;                  /* windows that used one learned ahead */
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

/* Whole copies of hot blobs, opened with FUSE passthrough (flat.c; design
 * note there).  zf_flat_init before the loop runs; zf_flat_dispatch from
 * the session driver for every request before libfuse sees it;
 * zf_flat_open at each blob open: > 0 the backing id to answer with
 * (zf_flat_reply_open), 0 the FUSE path; zf_flat_release at its release. */
typedef struct zf_flats zf_flats;
typedef struct zf_flat_stats {
    bool on;                    /* passthrough negotiated and usable */
    uint64_t flats, bytes;      /* on disk now */
    uint64_t opens;             /* opens answered with passthrough */
    uint64_t builds, build_bytes, checks, failures;
    bool busy;                  /* a build or check in flight */
} zf_flat_stats;
int zf_flat_init(zf_fs *fs, zc_store *store, const char *store_dir, uint64_t cap, bool want,
                 zf_flats **out);
bool zf_flat_dispatch(zf_fs *fs, struct fuse_session *se, const struct fuse_buf *buf);
int zf_flat_open(zf_flats *F, const zv_ent *blob);
void zf_flat_release(zf_flats *F, const zv_ent *blob, bool passthrough);
int zf_flat_reply_open(zf_fs *fs, fuse_req_t req, struct fuse_file_info *fi, int backing);
void zf_flat_drop_etag(zf_flats *F, const char *etag, uint64_t *freed);
/* Drop flats not in use until the store's cap is at least need (a pull). */
void zf_flat_yield(zf_flats *F, uint64_t need);
const zf_flat_stats *zf_flat_stats_get(zf_flats *F);
void zf_flat_stop(zf_flats *F);
void zf_flat_free(zf_flats *F);

/* Resolve "[models/|datasets/|spaces/]org/name[@rev]" while the loop runs
 * (hubload.c): online, the Hub's revision and tree are merged into the
 * presented model (which replaces the old one; see `retired`) and
 * persisted; offline or when the Hub fails, the stored model answers if it
 * knows rev.  cb gets the presented repo and the commit (40 hex), or an
 * errno (-ENOENT unknown, -ENETDOWN offline and not stored); never from
 * inside the call.  -EINVAL for a bad spec. */
typedef void (*zf_resolve_cb)(void *ud, int err, const zf_repo *repo, const char *commit);
int zf_resolve_repo(zf_fs *fs, zc_store *store, const char *spec, zf_resolve_cb cb, void *ud);

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

/* Verify (admin.c): re-hash the stored bytes of every file of a commit
 * against its Xet id (or sha256 / git sha1), reading the store only.
 * file_cb per file with "ok", "mismatch", "missing" or "error" (+errno);
 * done_cb once at the end.  Never from inside zf_verify_start. */
typedef struct zf_verify_stat {
    unsigned files, ok, bad, missing;
    uint64_t bytes;            /* verified */
    int err;
} zf_verify_stat;
typedef struct zf_verify zf_verify;
typedef void (*zf_verify_file_cb)(void *ud, const char *path, const char *result, int err);
typedef void (*zf_verify_done_cb)(void *ud, const zf_verify_stat *st);
int zf_verify_start(zf_fs *fs, const zf_repo *repo, const char *commit, zf_verify_file_cb file_cb,
                    zf_verify_done_cb done_cb, void *ud, zf_verify **out);
void zf_verify_cancel(zf_verify *v);

/* Pins (admin.c): store metadata "pins" lists "<type>/<id>@<commit>"; a
 * pinned commit's xorbs are labelled in the store (never evicted).
 * zf_pin(on) records the pin (one per repo: a new commit replaces the old)
 * and labels; (off) removes it, unlabels, relabels the other pins.  cb on
 * the loop, possibly from inside the call.  zf_pins_apply relabels every
 * pin at startup (after zf_read_init). */
typedef struct zf_pinop zf_pinop;
typedef void (*zf_pin_cb)(void *ud, int err, const char *key, uint64_t xorbs);
int zf_pin(zf_fs *fs, zc_store *store, const zf_repo *repo, const char *commit, bool on,
           zf_pin_cb cb, void *ud);
int zf_pins_apply(zf_fs *fs, zc_store *store);
int zf_pins_list(zc_store *store, char ***out, size_t *n); /* malloc'd strings + array */

/* Evict (evict.c): drop the stored data of a repo (every commit it holds,
 * or only `commit`), keeping xorbs that other presented repos' file maps
 * also name, and pinned ones.  -EBUSY when the repo is pinned.  cb on the
 * loop, maybe from inside the call, once. */
typedef struct zf_evict_stat {
    unsigned files;            /* files of the target */
    uint64_t xorbs, blobs;     /* xorbs and whole-file blobs dropped */
    uint64_t bytes;            /* bytes freed */
    uint64_t shared, pinned;   /* kept: named by others, or pinned */
    int err;
} zf_evict_stat;
typedef void (*zf_evict_cb)(void *ud, const zf_evict_stat *st);
int zf_evict(zf_fs *fs, zc_store *store, const zf_repo *repo, const char *commit, zf_evict_cb cb,
             void *ud);

/* The control socket (ctl.c): see the protocol there. */
typedef struct zf_ctl zf_ctl;
int zf_ctl_start(zf_fs *fs, zc_store *store, const char *path, zf_ctl **out);
void zf_ctl_stop(zf_ctl *ctl);   /* closes it (pulls in flight are cancelled) */
void zf_ctl_free(zf_ctl *ctl);   /* after the loop ran empty */
struct cJSON;
void zf_ctl_stat_from_json(const struct cJSON *o, zf_pull_stat *st);
int zf_ctl_write_all(int fd, const void *p, size_t n);

/* Where a mount registers its control socket (cli_ctl.c): a file in the
 * user's run directory named after the mountpoint's real path.  Compute it
 * before mounting (realpath would ask the mount itself). */
int zf_registry_path(const char *mountpoint, char *out, size_t len, bool mkdirs);

/* Option helpers shared by the commands (mount.c). */
char *zf_default_store(void);                 /* $XDG_CACHE_HOME/zestfs or ~/.cache/zestfs */
uint64_t zf_default_cap(const char *store);   /* half the store's file system, ≥ 1 GiB */
int zf_parse_size(const char *s, uint64_t *out); /* "10G", "512M", bytes */
char *zf_endpoint(const char *opt);           /* opt, $HF_ENDPOINT or huggingface.co; NULL: bad */
char *zf_find_token(const char *opt);         /* opt, $HF_TOKEN or the HF token file */

/* Repos on demand (hubload.c), on fs->loop, after zf_read_init: a lookup
 * of an unknown "models--org--name" (datasets--, spaces--) at the root
 * resolves org/name@main on the Hub (through zf_read_hub), presents and
 * persists it, then answers; absent upstream it is ENOENT, remembered for a
 * minute (other failures for 10 s).  Nothing when offline. */
int zf_ondemand_init(zf_fs *fs, zc_store *store);
void zf_ondemand_free(zf_fs *fs);
/* Revisions on demand (issue 18): a lookup inside a presented repo of
 * `<folder>/snapshots/<40 hex>` or `<folder>/refs/<name>` that found nothing
 * (`path`, relative to the root) resolves that commit, branch, tag or
 * refs/pr/N on the Hub, presents it, then answers (zf_lookup_reply); absent
 * upstream: ENOENT, remembered as for repos.  False: not taken (answer now).
 * zf_refs_ttl_start: every presented repo's refs are asked for again once
 * their last check is `ttl_s` seconds old (0: never); a moved ref brings its
 * commit's tree, the new snapshot is presented, the old ones stay.
 * zf_ondemand_stop (on the loop, at unmount) ends that timer. */
bool zf_lookup_rev(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name, const char *path);
void zf_refs_ttl_start(zf_fs *fs, unsigned ttl_s);
void zf_ondemand_stop(zf_fs *fs);

/* HTTP access and Prometheus /metrics (httpd.c; routes and threading
 * there).  zf_http_bind parses "[ADDR:]PORT" (ADDR default 127.0.0.1;
 * "[v6]:PORT"; port 0: any), binds and listens, and prints "zestfs: WHAT
 * on ADDR:PORT" to stderr — call it before daemon(): no thread starts.
 * metrics_only: serve /metrics only.  token (copied): require
 * "Authorization: Bearer TOKEN"; NULL: none.  zf_http_start serves on
 * fs->loop (libmicrohttpd's thread hands every request to the loop);
 * zf_http_stop (on the loop, before zf_read_stop) closes it and every
 * connection; zf_http_free after the loop ran empty. */
typedef struct zf_http zf_http;
int zf_http_bind(const char *spec, const char *what, bool metrics_only, const char *token,
                 zf_http **out);
int zf_http_start(zf_http *h, zf_fs *fs, zc_store *store);
void zf_http_stop(zf_http *h);
void zf_http_free(zf_http *h);
/* Also accept `Host: NAME` (any port) besides the listener's address and
 * port (--http-host; before zf_http_start).  0, -EINVAL, -E2BIG (16). */
int zf_http_allow_host(zf_http *h, const char *name);
const char *zf_http_addr(const zf_http *h); /* "ADDR:PORT" bound */
/* The time a client has to send a whole request, from its connect or the
 * end of its previous answer (default 10 s; before zf_http_start). */
void zf_http_set_request_timeout(zf_http *h, unsigned ms);

#endif
