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

/* zf_evict without the pin check (cachedel.c): the files of `repo` (which may
 * have left the tree: a deleted repo or a retired model) in commit `only`
 * (NULL: every commit) named `etag` (NULL: any); what anything presented
 * names stays, and labelled (pinned) xorbs stay. */
int zf_evict_some(zf_fs *fs, zc_store *store, const zf_repo *repo, const zf_commit *only,
                  const char *etag, zf_evict_cb cb, void *ud);

#endif
