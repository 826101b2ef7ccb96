/* zfs.h — internals of the mount (fs/): the filesystem state shared by the
 * FUSE operations (ops.c), the session driver (mount.c) and the blob read
 * path (read.c).  Everything here is owned by the loop thread. */
#ifndef ZESTFS_FS_ZFS_H
#define ZESTFS_FS_ZFS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <uv.h>

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
} zf_fs;

/* The low-level operations (ops.c). */
extern const struct fuse_lowlevel_ops zf_ops;
int zf_fs_init(zf_fs *fs, int rootfd);
void zf_fs_destroy(zf_fs *fs);

#endif
