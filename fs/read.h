/* read.h — the read path's API (fs/read/: api.c, ctx.c, fill.c, tokens.c);
 * its files and their contracts are in the headers of fs/read/. */
#ifndef ZESTFS_FS_READ_H
#define ZESTFS_FS_READ_H

#include "zfs.h"

/* Blob reads (read/), on fs->loop: sets fs->hooks.read_blob.  Network clients
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

#endif
