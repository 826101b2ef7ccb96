/* attr.h — attributes of the FUSE operations' entries (attr.c). */
#ifndef ZESTFS_FS_ATTR_H
#define ZESTFS_FS_ATTR_H

#include <stdbool.h>
#include <sys/stat.h>

#include "zfs.h"

#define REAL_TIMEOUT 1.0
#define VIRT_TIMEOUT 60.0

/* The stat of a virtual entry at path. */
void virt_attr(zf_fs *fs, const zv_ent *e, const char *path, struct stat *st);
/* The stat of path, real (wins) or virtual: 0 or -errno; *is_real and
 * *ent (the virtual entry) when not NULL. */
int path_attr(zf_fs *fs, const char *path, struct stat *st, bool *is_real, zv_ent *ent);
/* Answer a lookup of parent/name (at path) with its entry, or the errno. */
void reply_entry(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
                 const char *path);
/* Create the real directory chain for `dir` (a directory that exists
 * really or virtually): 0 or -errno. */
int ensure_real_dir(zf_fs *fs, const char *dir);

#endif
