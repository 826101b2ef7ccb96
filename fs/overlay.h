/* overlay.h — the real side of the overlay (overlay.c): every path is
 * mount-relative ("" the root) and resolved below fs->rootfd without
 * following a symlink, the last component included. */
#ifndef ZESTFS_FS_OVERLAY_H
#define ZESTFS_FS_OVERLAY_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

struct zf_fs;

/* Path for *at() calls relative to rootfd. */
static inline const char *rel(const char *path)
{
    return path[0] ? path : ".";
}

/* A real file the overlay does not show: an earlier download not verified
 * yet (adopt.c), or a refs/<rev> file taken into the model. */
bool real_hidden(const struct zf_fs *fs, const char *path);
/* open(path) below the root: fd, or -1 with errno */
int ovl_open(struct zf_fs *fs, const char *path, int flags, mode_t mode);
/* The directory holding path's last component (O_PATH) and that component
 * (*name): release with ovl_done.  fd, or -1 with errno. */
int ovl_parent(struct zf_fs *fs, const char *path, const char **name);
void ovl_done(struct zf_fs *fs, int fd);
/* fstatat / unlinkat / chmod of the entry itself: 0 or -1 with errno */
int ovl_stat(struct zf_fs *fs, const char *path, struct stat *st);
int ovl_unlink(struct zf_fs *fs, const char *path, int flags);
int ovl_chmod(struct zf_fs *fs, const char *path, mode_t mode);

#endif
