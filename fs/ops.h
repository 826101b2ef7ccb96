/* ops.h — the FUSE low-level operations (ops.c). */
#ifndef ZESTFS_FS_OPS_H
#define ZESTFS_FS_OPS_H

#include "zfs.h"

/* The low-level operations (ops.c). */
extern const struct fuse_lowlevel_ops zf_ops;
int zf_fs_init(zf_fs *fs, int rootfd);
void zf_fs_destroy(zf_fs *fs);
/* A session ended while the process goes on (an attached repo-at mount,
 * view.c): the kernel sends no more RELEASE, so what the read path and
 * flat.c hold for the handles still open is given back, and they are freed. */
void zf_fs_release_handles(zf_fs *fs);

/* Answer a lookup as op_lookup would (after the tree changed). */
void zf_lookup_reply(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);

#endif
