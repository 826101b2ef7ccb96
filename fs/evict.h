/* evict.h — dropping a repo's stored data (evict.c). */
#ifndef ZESTFS_FS_EVICT_H
#define ZESTFS_FS_EVICT_H

#include "zfs.h"

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

#endif
