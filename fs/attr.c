/* attr.c — attributes of the FUSE operations' entries: a virtual entry's
 * stat, a path's (the real entry wins over a virtual one), a lookup's
 * reply, and the real directory chain made under a virtual directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attr.h"
#include "cachedel.h"
#include "nodes.h"
#include "overlay.h"
#include "zfs.h"

/* ---- attributes -------------------------------------------------------- */

void virt_attr(zf_fs *fs, const zv_ent *e, const char *path, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = path[0] ? zv_ino(path) : FUSE_ROOT_ID;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_nlink = 1;
    st->st_blksize = 1 << 20;
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = e->mtime;
    switch (e->kind) {
    case ZV_DIR:
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        break;
    case ZV_LINK:
        st->st_mode = S_IFLNK | 0777;
        break;
    case ZV_REF: /* clients write refs (see "refs written by clients") */
        st->st_mode = S_IFREG | 0644;
        break;
    default:
        st->st_mode = S_IFREG | 0444;
        break;
    }
    st->st_size = (off_t)e->size;
    st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
}

/* Attributes of a path: real first, then virtual.  0 or -errno. */
int path_attr(zf_fs *fs, const char *path, struct stat *st, bool *is_real, zv_ent *ent)
{
    if (ovl_stat(fs, path, st) == 0) {
        if (!path[0])
            st->st_ino = FUSE_ROOT_ID;
        if (is_real)
            *is_real = true;
        /* a real directory that also exists virtually is a merged dir */
        return 0;
    }
    if (errno != ENOENT && errno != ENOTDIR)
        return -errno;
    zv_ent e;
    if (!zv_resolve(&fs->tree, path, &e) && !zf_del_resolve(fs, path, &e))
        return -ENOENT;
    virt_attr(fs, &e, path, st);
    if (is_real)
        *is_real = false;
    if (ent)
        *ent = e;
    return 0;
}

void reply_entry(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
                 const char *path)
{
    struct fuse_entry_param ep;
    memset(&ep, 0, sizeof ep);
    bool real;
    int err = path_attr(fs, path, &ep.attr, &real, NULL);
    if (err) {
        fuse_reply_err(req, -err);
        return;
    }
    /* repo-at: a name at the root keeps the commit it was found in */
    bool at = parent == FUSE_ROOT_ID && fs->tree.at_folder;
    if (!node_ref(fs, ep.attr.st_ino, parent, at ? path : name)) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ep.ino = ep.attr.st_ino;
    ep.attr_timeout = ep.entry_timeout = real ? REAL_TIMEOUT : VIRT_TIMEOUT;
    if (at) /* the name may stand for another commit's entry once the ref moves */
        ep.entry_timeout = REAL_TIMEOUT;
    fuse_reply_entry(req, &ep);
    zv_ent e; /* a repo folder looked up: its files are about to be read */
    if (parent == FUSE_ROOT_ID && zv_resolve(&fs->tree, path, &e) && e.kind == ZV_DIR && e.repo)
        if (fs->hooks.warm_repo)
            fs->hooks.warm_repo(fs, e.repo);
}

/* Create the real directory chain for `dir` (a directory that exists
 * really or virtually). */
int ensure_real_dir(zf_fs *fs, const char *dir)
{
    if (!dir[0])
        return 0;
    int fd = ovl_open(fs, dir, O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno != ENOENT)
        return -errno; /* ENOTDIR, ELOOP: a file or a symlink is in the way */
    zv_ent e;
    if (!zv_resolve(&fs->tree, dir, &e) || e.kind != ZV_DIR)
        return -ENOENT;
    char *tmp = strdup(dir);
    if (!tmp)
        return -ENOMEM;
    /* one component at a time, each made (or found) and then opened
     * O_NOFOLLOW in its parent: a symlink swapped in is never gone through */
    int dfd = fs->rootfd, err = 0;
    for (char *c = tmp, *e2; c && !err; c = e2) {
        e2 = strchr(c, '/');
        if (e2)
            *e2++ = 0;
        if (mkdirat(dfd, c, 0755) != 0 && errno != EEXIST)
            err = -errno;
        int nfd = err ? -1 : openat(dfd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (!err && nfd < 0)
            err = -errno;
        if (dfd != fs->rootfd)
            close(dfd);
        dfd = nfd;
    }
    if (dfd >= 0 && dfd != fs->rootfd)
        close(dfd);
    free(tmp);
    return err;
}
