/* present.h — the repo models the mount presents (present.c). */
#ifndef ZESTFS_FS_PRESENT_H
#define ZESTFS_FS_PRESENT_H

#include "zfs.h"

/* Present a repo model (present.c; takes it; replaces one of the same type and id). */
int zf_fs_add_repo(zf_fs *fs, zf_repo *r);
/* The presented repo of that type and id (present.c); NULL: none. */
const zf_repo *zf_fs_find_repo(const zf_fs *fs, enum zf_repo_type type, const char *id);

#endif
