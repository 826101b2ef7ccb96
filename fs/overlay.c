/* overlay.c — the real side of the overlay: mount-relative paths opened
 * below fs->rootfd without ever following a symlink (see ops.c's header
 * for the rules), and the real files the overlay does not show. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "adopt.h"
#include "overlay.h"
#include "zfs.h"

/* ---- resolution below the mount: never through a symlink -------------- */

/* linux/openat2.h (Linux 5.6) */
struct ovl_how {
    uint64_t flags, mode, resolve;
};
#define OVL_NO_MAGICLINKS 0x02
#define OVL_NO_SYMLINKS 0x04
#define OVL_BENEATH 0x08
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static bool g_no_openat2; /* ENOSYS once: walk per component */

/* The flags openat2 accepts (it refuses unknown bits, which a FUSE open's
 * flags may carry). */
#define OVL_FLAGS                                                                          \
    (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC |  \
     O_SYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC |    \
     O_PATH | O_TMPFILE)

/* A real file the overlay does not show: an earlier download not verified
 * yet (adopt.c), or a refs/<rev> file taken into the model (kept on disk as
 * the user left it, but the model's value is the ref). */
bool real_hidden(const zf_fs *fs, const char *path)
{
    if (fs->tree.at_folder) /* a repo-at mount shows its snapshot only */
        return true;
    if (zf_adopt_hides(fs->adopt, path))
        return true;
    if (!strstr(path, "/refs/"))
        return false;
    for (size_t i = 0; i < fs->nkept_refs; i++)
        if (strcmp(fs->kept_refs[i], path) == 0)
            return true;
    return false;
}

/* Open mount-relative `path` ("" the root) below fs->rootfd: no component
 * may be a symlink or "..", the last one included (with O_PATH|O_NOFOLLOW
 * a symlink itself is opened).  fd, or -1 with errno. */
int ovl_open(zf_fs *fs, const char *path, int flags, mode_t mode)
{
    flags = (flags & OVL_FLAGS) | O_CLOEXEC | O_NOFOLLOW;
    bool mk = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    if (!mk && real_hidden(fs, path) && (errno = ENOENT))
        return -1;
    if (!g_no_openat2) {
        struct ovl_how how = {.flags = (uint64_t)flags, .mode = mk ? (mode & 07777) : 0,
                              .resolve = OVL_BENEATH | OVL_NO_SYMLINKS | OVL_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, fs->rootfd, rel(path), &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS)
            return (int)fd;
        g_no_openat2 = true;
    }
    /* one component at a time, each O_NOFOLLOW */
    if (!path[0])
        return openat(fs->rootfd, ".", flags, mode);
    int dfd = fs->rootfd;
    const char *c = path;
    for (;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        char comp[256];
        if (n == 0 || n >= sizeof comp || (n == 1 && c[0] == '.') ||
            (n == 2 && c[0] == '.' && c[1] == '.')) {
            if (dfd != fs->rootfd)
                close(dfd);
            errno = n >= sizeof comp ? ENAMETOOLONG : EINVAL;
            return -1;
        }
        memcpy(comp, c, n);
        comp[n] = 0;
        int fd = e ? openat(dfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                   : openat(dfd, comp, flags, mode);
        int err = errno;
        if (dfd != fs->rootfd)
            close(dfd);
        if (fd < 0 || !e) {
            errno = err;
            return fd;
        }
        dfd = fd;
        c = e + 1;
    }
}

/* The directory that holds `path`'s last component, opened O_PATH below
 * the root without symlinks, and that component (*name; "." for the root).
 * fs->rootfd itself for a top-level name: release with ovl_done.  fd, or
 * -1 with errno. */
int ovl_parent(zf_fs *fs, const char *path, const char **name)
{
    const char *sl = strrchr(path, '/');
    if (!sl) {
        *name = rel(path);
        return fs->rootfd;
    }
    *name = sl + 1;
    char *dir = strndup(path, (size_t)(sl - path));
    if (!dir) {
        errno = ENOMEM;
        return -1;
    }
    int fd = ovl_open(fs, dir, O_PATH | O_DIRECTORY, 0);
    free(dir);
    return fd;
}

void ovl_done(zf_fs *fs, int fd)
{
    if (fd >= 0 && fd != fs->rootfd) {
        int e = errno;
        close(fd);
        errno = e;
    }
}

/* fstatat(path, AT_SYMLINK_NOFOLLOW) below the root: 0 or -1 with errno */
int ovl_stat(zf_fs *fs, const char *path, struct stat *st)
{
    const char *name;
    if (real_hidden(fs, path) && (errno = ENOENT))
        return -1;
    int dfd = ovl_parent(fs, path, &name);
    if (dfd < 0)
        return -1;
    int r = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW);
    ovl_done(fs, dfd);
    return r;
}

/* unlinkat(path, flags) below the root: 0 or -1 with errno */
int ovl_unlink(zf_fs *fs, const char *path, int flags)
{
    const char *name;
    int dfd = ovl_parent(fs, path, &name);
    if (dfd < 0)
        return -1;
    int r = unlinkat(dfd, name, flags);
    ovl_done(fs, dfd);
    return r;
}

/* chmod of the entry at path itself, never a link's target: an O_PATH
 * descriptor of it, then chmod through /proc/self/fd (fchmod cannot take
 * an O_PATH fd; a symlink's mode cannot be changed on Linux: EOPNOTSUPP,
 * as fchmodat(AT_SYMLINK_NOFOLLOW) says).  0 or -1 with errno. */
int ovl_chmod(zf_fs *fs, const char *path, mode_t mode)
{
    int fd = ovl_open(fs, path, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0)
        return -1;
    struct stat st;
    int r = fstat(fd, &st);
    if (r == 0 && S_ISLNK(st.st_mode)) {
        errno = EOPNOTSUPP;
        r = -1;
    } else if (r == 0) {
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        r = chmod(p, mode); /* no /proc: ENOENT, nothing changed */
    }
    int e = errno;
    close(fd);
    errno = e;
    return r;
}
