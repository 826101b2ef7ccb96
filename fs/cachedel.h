/* cachedel.h — HF's cache tools on the mount (cachedel.c; design note
 * there): unlink and rmdir of presented entries.  zf_del_resolve: a blob of
 * a deleted revision still visible.  zf_del_check before anything real is
 * removed (0, or -EPERM pinned, -ENOTEMPTY, -EISDIR, -ENOTDIR);
 * zf_del_virtual then changes the model and answers req (maybe later).
 * gone: e came from zf_del_resolve. */
#ifndef ZESTFS_FS_CACHEDEL_H
#define ZESTFS_FS_CACHEDEL_H

#include "zfs.h"

bool zf_del_resolve(const zf_fs *fs, const char *path, zv_ent *out);
int zf_del_check(zf_fs *fs, const char *path, const zv_ent *e, bool gone, bool dir);
void zf_del_virtual(zf_fs *fs, fuse_req_t req, const char *path, const zv_ent *e, bool gone);
void zf_del_free(zf_fs *fs);

#endif
