/* flat.h — whole copies of hot blobs for FUSE passthrough (flat.c; design
 * note there). */
#ifndef ZESTFS_FS_FLAT_H
#define ZESTFS_FS_FLAT_H

#include "zfs.h"

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

#endif
