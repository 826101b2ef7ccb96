/* refs.h — refs/<rev> written by clients (refs.c; the rules are there). */
#ifndef ZESTFS_FS_REFS_H
#define ZESTFS_FS_REFS_H

#include "handle.h"
#include "zfs.h"

#define REF_WMAX 256

/* A ref model being persisted on the pool (fs->refq, oldest first). */
typedef struct zf_refq {
    struct zf_refq *next;
    zf_fs *fs;
    uv_work_t work;
    char key[300];
    char *json;
    int err;
    bool running;
} zf_refq;

/* A ref_write handle's content becomes the ref's value (flush, release):
 * 0, or -EINVAL when it is not a commit (40 hex). */
int ref_commit(zf_fs *fs, zf_handle *h);
/* rename(src, dst) where dst is refs/<rev> of a presented repo and src a
 * real file holding a commit: the model takes it.  1: not such a rename,
 * else 0 or -errno; on 0, *held is an O_PATH descriptor of the removed
 * source (or -1). */
int rename_onto_ref(zf_fs *fs, const char *src, const char *dst, unsigned flags, int *held);
/* Tell the kernel to look parent/name up again, from the pool. */
void inval_entry_later(zf_fs *fs, fuse_ino_t parent, const char *name);

/* refs/<rev> files a client left in the real directory of a presented repo
 * (a rename over a ref before zestfs took those, a ref it created): each
 * holding a commit becomes that ref's value in the model, stamped with the
 * file's mtime, is persisted, and the file is removed (refs.c).  At startup,
 * before the Hub refresh. */
void zf_absorb_overlay_refs(zf_fs *fs);

/* Persist a presented model, or forget a deleted one (cachedel.c), in order
 * with the ref writes. */
void zf_persist_repo(zf_fs *fs, const zf_repo *r);
void zf_persist_forget(zf_fs *fs, const zf_repo *r);

#endif
