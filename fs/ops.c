/* ops.c — FUSE low-level operations: a writable overlay of the real
 * directory under the mountpoint (reached through fs->rootfd with *at()
 * calls) and the virtual repo tree (vtree.c).
 *
 * Rules (spec/hf-cache.md §4.3):
 *  - a real entry wins over a virtual one of the same path;
 *  - creating anything inside a virtual directory first creates the real
 *    directory chain, so clients can write lock files, temp blobs, refs,
 *    symlinks and markers anywhere they expect to;
 *  - virtual entries are immutable: writes to them fail with EROFS,
 *    renames from them with EXDEV — except refs/<rev>, which clients write
 *    (see "refs written by clients" below).
 * Inode numbers: FUSE_ROOT_ID for the root, the real st_ino for real
 * entries, zv_ino(path) (high bit set) for virtual ones.  The node table
 * maps an inode back to (parent, name), so a path can be rebuilt for *at()
 * calls and for vtree lookups.
 *
 * Resolution below the mount never follows a symlink (with --allow-other
 * other users write here, and the daemon may be root): a path is opened
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) — or, where the
 * kernel lacks openat2, one O_NOFOLLOW component at a time — and every
 * *at() call works on its last component in the directory so opened, with
 * AT_SYMLINK_NOFOLLOW where the call has it; chmod goes through an O_PATH
 * descriptor of the entry itself (/proc/self/fd), never through a link.
 * A name the kernel resolved to a file that was swapped for a symlink
 * behind its back answers ELOOP, never the link's target.  Symlinks
 * themselves stay what they are (readlink, lookup, unlink, rename): the
 * kernel follows the ones users and HF clients make, as the caller. */
#include "flat.h"
#include "ops.h"
#include "zfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "cachedel.h"
#include "handle.h"
#include "tokseed.h"
#include "log.h"
#include "nodes.h"
#include "overlay.h"
#include "refs.h"

#define FS(req) ((zf_fs *)fuse_req_userdata(req))

#define WITH_PATH(fs, ino, path)                                                            \
    char *path = node_path(fs, ino);                                                        \
    if (!path) {                                                                            \
        fuse_reply_err(req, ESTALE);                                                        \
        return;                                                                             \
    }

/* ---- handles ----------------------------------------------------------- */

static void dir_free(zf_dir *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->e[i].name);
    free(d->e);
    free(d);
}

/* ---- operations -------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    /* 1 MiB requests: libfuse derives max_pages (256) from max_write */
    conn->max_write = 1u << 20;
    conn->max_readahead = conn->max_readahead > (1u << 20) ? conn->max_readahead : (1u << 20);
    zf_fs *fs = userdata;
    if (fs->max_read) { /* see splice_max_read() in mount.c */
        conn->max_read = fs->max_read;
        if (conn->max_readahead > fs->max_read)
            conn->max_readahead = fs->max_read;
    }
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    /* never ask for writeback cache: real files are written through */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* blobs never change, so page-cache hits need no GETATTR first (with
     * auto_inval_data the kernel refreshes attributes on reads once they
     * expire); real files are written through the mount, which keeps the
     * kernel's view current */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    /* stored bytes are spliced from the segment files into replies (read.c):
     * one copy fewer; libfuse falls back to a copy when its pipe cannot
     * hold a reply */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
}

/* A repo-at mount (vtree.h): names at the root are those of the commit its
 * ref names now, so the root's path "" becomes that commit's "<40 hex>"
 * (path freed; NULL: no memory). */
static char *at_root(zf_fs *fs, char *path)
{
    const zf_commit *c = path && !path[0] ? zv_at_commit(&fs->tree) : NULL;
    if (!c)
        return path;
    free(path);
    return strdup(c->sha);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    zf_fs *fs = FS(req);
    if (strlen(name) > 255) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    WITH_PATH(fs, parent, dir);
    dir = at_root(fs, dir);
    char *path = dir ? join(dir, name) : NULL;
    free(dir);
    if (!path) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (parent == FUSE_ROOT_ID && fs->hooks.lookup_miss) {
        struct stat st;
        if (path_attr(fs, path, &st, NULL, NULL) == -ENOENT &&
            fs->hooks.lookup_miss(fs, req, parent, name)) {
            free(path); /* answered later, with zf_lookup_reply */
            return;
        }
    } else if (parent != FUSE_ROOT_ID && fs->hooks.lookup_rev && !fs->tree.at_folder) {
        /* snapshots/<commit> or refs/<name> of a presented repo that it
         * does not present: resolved on the Hub (hubload.c), then answered */
        struct stat st;
        if (path_attr(fs, path, &st, NULL, NULL) == -ENOENT &&
            fs->hooks.lookup_rev(fs, req, parent, name, path)) {
            free(path);
            return;
        }
    }
    reply_entry(fs, req, parent, name, path);
    free(path);
}

void zf_lookup_reply(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char *dir = node_path(fs, parent);
    char *path = dir ? join(dir, name) : NULL;
    free(dir);
    if (!path) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    reply_entry(fs, req, parent, name, path);
    free(path);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    node_forget(FS(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        node_forget(FS(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    zf_fs *fs = FS(req);
    struct stat st;
    if (fi && H(fi)->fd >= 0) {
        if (fstat(H(fi)->fd, &st) != 0) {
            fuse_reply_err(req, errno);
            return;
        }
        fuse_reply_attr(req, &st, REAL_TIMEOUT);
        return;
    }
    WITH_PATH(fs, ino, path);
    bool real;
    int err = path_attr(fs, path, &st, &real, NULL);
    free(path);
    if (!err && !real && fi && H(fi)->ref_write) { /* what is written so far */
        st.st_size = (off_t)H(fi)->len;
        st.st_blocks = (blkcnt_t)((H(fi)->len + 511) / 512);
    }
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_attr(req, &st, real ? REAL_TIMEOUT : VIRT_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    zf_fs *fs = FS(req);
    WITH_PATH(fs, ino, path);
    struct stat st;
    bool real;
    zv_ent ent;
    int err = path_attr(fs, path, &st, &real, &ent);
    if (!err && !real && ent.kind == ZV_REF) {
        /* a ref: its size through a handle writing it (O_TRUNC, ftruncate);
         * times are accepted and not kept (the ref's mtime is its write) */
        zf_handle *h = fi ? H(fi) : NULL;
        bool size = to_set & FUSE_SET_ATTR_SIZE;
        free(path);
        if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) ||
            (size && (!h || !h->ref_write))) {
            fuse_reply_err(req, EROFS);
            return;
        }
        if (size && (attr->st_size < 0 || attr->st_size > REF_WMAX)) {
            fuse_reply_err(req, EFBIG);
            return;
        }
        if (size) {
            size_t n = (size_t)attr->st_size;
            if (n > h->len)
                memset(h->content + h->len, 0, n - h->len);
            h->len = n;
            h->dirty = true;
        }
        op_getattr(req, ino, fi);
        return;
    }
    if (err || !real) {
        free(path);
        fuse_reply_err(req, err ? -err : EROFS);
        return;
    }
    int fd = fi ? H(fi)->fd : -1;
    if (to_set & FUSE_SET_ATTR_MODE) {
        if ((fd >= 0 ? fchmod(fd, attr->st_mode) : ovl_chmod(fs, path, attr->st_mode)) != 0)
            goto fail;
    }
    if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
        uid_t u = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t g = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
        const char *nm;
        int dfd = ovl_parent(fs, path, &nm);
        int r = dfd < 0 ? -1 : fchownat(dfd, nm, u, g, AT_SYMLINK_NOFOLLOW);
        ovl_done(fs, dfd);
        if (r != 0)
            goto fail;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        int r;
        if (fd >= 0)
            r = ftruncate(fd, attr->st_size);
        else {
            int tfd = ovl_open(fs, path, O_WRONLY, 0);
            r = tfd < 0 ? -1 : ftruncate(tfd, attr->st_size);
            if (tfd >= 0) {
                int e = errno;
                close(tfd);
                errno = e;
            }
        }
        if (r != 0)
            goto fail;
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        if (to_set & FUSE_SET_ATTR_ATIME_NOW)
            ts[0].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_ATIME)
            ts[0] = attr->st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW)
            ts[1].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_MTIME)
            ts[1] = attr->st_mtim;
        const char *nm;
        int dfd = ovl_parent(fs, path, &nm);
        int r = dfd < 0 ? -1 : utimensat(dfd, nm, ts, AT_SYMLINK_NOFOLLOW);
        ovl_done(fs, dfd);
        if (r != 0)
            goto fail;
    }
    free(path);
    op_getattr(req, ino, fi);
    return;
fail:
    err = errno;
    free(path);
    fuse_reply_err(req, err);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    zf_fs *fs = FS(req);
    WITH_PATH(fs, ino, path);
    char buf[4096];
    const char *nm;
    int dfd = ovl_parent(fs, path, &nm);
    ssize_t n = dfd < 0 ? -1 : readlinkat(dfd, nm, buf, sizeof buf - 1);
    ovl_done(fs, dfd);
    if (n >= 0) {
        buf[n] = 0;
        fuse_reply_readlink(req, buf);
        free(path);
        return;
    }
    if (errno != ENOENT && errno != ENOTDIR) {
        int e = errno;
        free(path);
        fuse_reply_err(req, e);
        return;
    }
    zv_ent e;
    char *tgt = zv_resolve(&fs->tree, path, &e) ? zv_link_target(&e) : NULL;
    free(path);
    if (!tgt) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    fuse_reply_readlink(req, tgt);
    free(tgt);
}

/* Common part of mkdir/symlink/mknod: the parent made real, then `make`. */
static char *prepare_create(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    zf_fs *fs = FS(req);
    char *dir = node_path(fs, parent);
    if (!dir) {
        fuse_reply_err(req, ESTALE);
        return NULL;
    }
    int err = ensure_real_dir(fs, dir);
    char *path = err ? NULL : join(dir, name);
    free(dir);
    if (err || !path) {
        fuse_reply_err(req, err ? -err : ENOMEM);
        return NULL;
    }
    /* a virtual entry of that name already exists */
    zv_ent e;
    struct stat st;
    if (ovl_stat(fs, path, &st) != 0 && zv_resolve(&fs->tree, path, &e) && e.kind != ZV_EMPTY) {
        free(path);
        fuse_reply_err(req, EEXIST);
        return NULL;
    }
    return path;
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    zf_fs *fs = FS(req);
    char *path = prepare_create(req, parent, name);
    if (!path)
        return;
    const char *nm;
    int dfd = ovl_parent(fs, path, &nm);
    int r = dfd < 0 ? -1 : mkdirat(dfd, nm, mode);
    ovl_done(fs, dfd);
    if (r != 0)
        fuse_reply_err(req, errno);
    else
        reply_entry(fs, req, parent, name, path);
    free(path);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    zf_fs *fs = FS(req);
    char *path = prepare_create(req, parent, name);
    if (!path)
        return;
    const char *nm;
    int dfd = ovl_parent(fs, path, &nm);
    int r = dfd < 0 ? -1 : mknodat(dfd, nm, mode, rdev);
    ovl_done(fs, dfd);
    if (r != 0)
        fuse_reply_err(req, errno);
    else
        reply_entry(fs, req, parent, name, path);
    free(path);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    zf_fs *fs = FS(req);
    char *path = prepare_create(req, parent, name);
    if (!path)
        return;
    const char *nm;
    int dfd = ovl_parent(fs, path, &nm);
    int r = dfd < 0 ? -1 : symlinkat(link, dfd, nm);
    ovl_done(fs, dfd);
    if (r != 0)
        fuse_reply_err(req, errno);
    else
        reply_entry(fs, req, parent, name, path);
    free(path);
}

/* A refs/<rev> file kept hidden (keep_ref) is gone: stop hiding the path. */
static void unkeep_ref(zf_fs *fs, const char *path)
{
    for (size_t i = 0; i < fs->nkept_refs; i++)
        if (strcmp(fs->kept_refs[i], path) == 0) {
            free(fs->kept_refs[i]);
            fs->kept_refs[i] = fs->kept_refs[--fs->nkept_refs];
            return;
        }
}

/* unlink/rmdir: the real entry (hidden ones too: the user removes what the
 * mount kept), then a presented one (cachedel.c: HF's cache tools delete
 * revisions and repos this way), checked first so that a refusal leaves
 * everything as it was. */
static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
    zf_fs *fs = FS(req);
    WITH_PATH(fs, parent, dir);
    char *path = join(dir, name);
    free(dir);
    if (!path) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    zv_ent e;
    bool gone = false, virt = zv_resolve(&fs->tree, path, &e);
    if (!virt)
        virt = gone = zf_del_resolve(fs, path, &e);
    struct stat st; /* a real entry of another kind wins: only it is removed */
    if (virt && ovl_stat(fs, path, &st) == 0 && S_ISDIR(st.st_mode) != (e.kind == ZV_DIR))
        virt = false;
    int err = virt ? -zf_del_check(fs, path, &e, gone, flags & AT_REMOVEDIR) : 0;
    if (!err) {
        const char *nm;
        int dfd = ovl_parent(fs, path, &nm);
        int r = dfd < 0 ? -1 : unlinkat(dfd, nm, flags);
        ovl_done(fs, dfd);
        if (r == 0 && fs->nkept_refs)
            unkeep_ref(fs, path);
        if (r != 0 && (!virt || (errno != ENOENT && errno != ENOTDIR)))
            err = errno;
    }
    if (err || !virt)
        fuse_reply_err(req, err);
    else
        zf_del_virtual(fs, req, path, &e, gone);
    free(path);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, AT_REMOVEDIR);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    zf_fs *fs = FS(req);
    char *d1 = node_path(fs, parent), *d2 = node_path(fs, newparent);
    if (!d1 || !d2) {
        free(d1);
        free(d2);
        fuse_reply_err(req, ESTALE);
        return;
    }
    char *src = join(d1, name), *dst = join(d2, newname);
    int err = ensure_real_dir(fs, d2);
    struct stat st;
    if (!err && ovl_stat(fs, src, &st) == 0) {
        int held;
        int r = rename_onto_ref(fs, src, dst, flags, &held); /* a ref: the model takes it */
        if (r <= 0) {
            zf_node *n = r == 0 ? node_get(fs, st.st_ino) : NULL;
            char *nm = n ? strdup(newname) : NULL;
            if (nm) { /* the kernel now has that inode at dst: the ref */
                free(n->name);
                n->name = nm;
                n->parent = newparent;
            }
            if (n && held >= 0 && !n->held)
                n->held = held + 1;
            else if (held >= 0)
                close(held);
            free(d1);
            free(d2);
            free(src);
            free(dst);
            fuse_reply_err(req, -r);
            if (r == 0)
                inval_entry_later(fs, newparent, newname);
            return;
        }
    }
    if (!err && ovl_stat(fs, src, &st) != 0) {
        zv_ent e;
        err = (errno == ENOENT && zv_resolve(&fs->tree, src, &e)) ? -EXDEV : -errno;
    }
    if (!err) {
        const char *n1, *n2;
        int f1 = ovl_parent(fs, src, &n1), f2 = f1 < 0 ? -1 : ovl_parent(fs, dst, &n2);
        if (f1 < 0 || f2 < 0 || renameat2(f1, n1, f2, n2, flags) != 0)
            err = -errno;
        ovl_done(fs, f1);
        ovl_done(fs, f2);
    }
    if (!err) {
        zf_node *n = node_get(fs, st.st_ino);
        if (n) {
            char *nm = strdup(newname);
            if (nm) {
                free(n->name);
                n->name = nm;
                n->parent = newparent;
            }
        }
    }
    free(d1);
    free(d2);
    free(src);
    free(dst);
    fuse_reply_err(req, -err);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    zf_fs *fs = FS(req);
    char *src = node_path(fs, ino);
    char *path = src ? prepare_create(req, newparent, newname) : NULL;
    if (!src) {
        fuse_reply_err(req, ESTALE);
        return;
    }
    if (path) {
        const char *n1, *n2;
        int f1 = ovl_parent(fs, src, &n1), f2 = f1 < 0 ? -1 : ovl_parent(fs, path, &n2);
        int r = f1 < 0 || f2 < 0 ? -1 : linkat(f1, n1, f2, n2, 0);
        ovl_done(fs, f1);
        ovl_done(fs, f2);
        if (r != 0)
            fuse_reply_err(req, errno == ENOENT ? EXDEV : errno);
        else
            reply_entry(fs, req, newparent, newname, path);
    }
    free(src);
    free(path);
}

static zf_handle *new_handle(zf_fs *fs, int fd)
{
    zf_handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->fd = fd;
    h->next = fs->handles;
    if (h->next)
        h->next->prev = h;
    fs->handles = h;
    return h;
}

/* Unlinks and frees h, closing its fd; what the read path and flat.c hold
 * for it is theirs to free (release_handle gives it back first). */
static void free_handle(zf_fs *fs, zf_handle *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        fs->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (h->fd >= 0)
        close(h->fd);
    if (h->dir)
        dir_free(h->dir);
    free(h->content);
    free(h);
}

/* A handle closed (RELEASE, or an open the kernel refused): gives back
 * what flat.c and the read path hold for it, then frees it. */
static void release_handle(zf_fs *fs, zf_handle *h)
{
    if (h->fd < 0 && h->ent.kind == ZV_BLOB && fs->flats)
        zf_flat_release(fs->flats, &h->ent, h->pt);
    if (h->pf && fs->hooks.blob_released)
        fs->hooks.blob_released(fs, h->pf);
    free_handle(fs, h);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    zf_fs *fs = FS(req);
    WITH_PATH(fs, ino, path);
    int fd = ovl_open(fs, path, fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY), 0);
    if (fd >= 0) {
        zf_handle *h = new_handle(fs, fd);
        free(path);
        if (!h) {
            close(fd);
            fuse_reply_err(req, ENOMEM);
            return;
        }
        fi->fh = (uintptr_t)h;
        if (fuse_reply_open(req, fi) == -ENOENT)
            free_handle(fs, h);
        return;
    }
    if (errno != ENOENT && errno != ENOTDIR) {
        int e = errno;
        free(path);
        fuse_reply_err(req, e);
        return;
    }
    zv_ent e;
    bool found = zv_resolve(&fs->tree, path, &e);
    free(path);
    if (!found) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
    if (writing && e.kind != ZV_REF) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (e.kind == ZV_BLOB && e.repo->gated_url) {
        /* gated, and our token has no access: refused at once (issue 18) */
        zf_repo *gr = (zf_repo *)e.repo; /* only its log clock changes */
        uint64_t now = uv_now(fs->loop);
        if (!gr->gated_logged_ms || now - gr->gated_logged_ms >= 10000) {
            gr->gated_logged_ms = now ? now : 1;
            zf_log(ZF_LOG_WARN, "zestfs: %s/%s is gated on the Hub and this mount has no access: "
                   "ask for access at %s\n", zf_type_plural(e.repo->type), e.repo->id, e.repo->gated_url);
        }
        fuse_reply_err(req, EACCES);
        return;
    }
    zf_handle *h = new_handle(fs, -1);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    h->ent = e;
    if (e.kind == ZV_BLOB) {
        fi->keep_cache = 1; /* content-addressed: never changes */
        int backing = fs->flats ? zf_flat_open(fs->flats, &e) : 0;
        if (backing > 0) { /* the kernel reads the blob's whole copy itself */
            h->pt = true;
            fi->fh = (uintptr_t)h;
            if (zf_flat_reply_open(fs, req, fi, backing) != 0)
                release_handle(fs, h);
            return;
        }
        if (fs->hooks.blob_opened)
            h->pf = fs->hooks.blob_opened(fs, &e);
    } else if (writing) { /* a ref written in place (see "refs written by clients") */
        h->ref_write = true;
        h->content = calloc(1, REF_WMAX);
        if (!h->content) {
            release_handle(fs, h);
            fuse_reply_err(req, ENOMEM);
            return;
        }
        h->dirty = (fi->flags & O_TRUNC) != 0;
        h->len = h->dirty ? 0 : 40;
        memcpy(h->content, e.ref->sha, h->len);
        fi->direct_io = 1; /* reads and writes see the buffer, not the page cache */
        fi->keep_cache = 0;
    } else {
        h->content = zv_content(&e, &h->len);
        fi->direct_io = 0;
        fi->keep_cache = e.kind != ZV_REF; /* a ref changes when a client writes it */
    }
    fi->fh = (uintptr_t)h;
    if (fuse_reply_open(req, fi) == -ENOENT)
        release_handle(fs, h);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    zf_fs *fs = FS(req);
    char *path = prepare_create(req, parent, name);
    if (!path)
        return;
    int fd = ovl_open(fs, path, fi->flags | O_CREAT, mode);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        free(path);
        return;
    }
    struct fuse_entry_param ep;
    memset(&ep, 0, sizeof ep);
    zf_handle *h = new_handle(fs, fd);
    if (!h || fstat(fd, &ep.attr) != 0 || !node_ref(fs, ep.attr.st_ino, parent, name)) {
        if (h)
            free_handle(fs, h);
        else
            close(fd);
        free(path);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    free(path);
    ep.ino = ep.attr.st_ino;
    ep.attr_timeout = ep.entry_timeout = REAL_TIMEOUT;
    fi->fh = (uintptr_t)h;
    if (fuse_reply_create(req, &ep, fi) == -ENOENT)
        free_handle(fs, h);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    zf_fs *fs = FS(req);
    zf_handle *h = H(fi);
    if (h->fd >= 0) {
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
        bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        bv.buf[0].fd = h->fd;
        bv.buf[0].pos = off;
        fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
        return;
    }
    if (h->ent.kind == ZV_BLOB) {
        fs->blob_read_ms = uv_now(fs->loop);
        if (fs->hooks.read_blob)
            fs->hooks.read_blob(fs, req, &h->ent, size, off);
        else
            fuse_reply_err(req, EIO);
        return;
    }
    if ((size_t)off >= h->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
    fuse_reply_buf(req, h->content + off, n);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
                         struct fuse_file_info *fi)
{
    zf_handle *h = H(fi);
    if (h->ref_write) {
        size_t n = fuse_buf_size(in);
        if (off < 0 || (uint64_t)off + n > REF_WMAX) {
            fuse_reply_err(req, EFBIG);
            return;
        }
        if ((size_t)off > h->len)
            memset(h->content + h->len, 0, (size_t)off - h->len);
        struct fuse_bufvec mem = FUSE_BUFVEC_INIT(n);
        mem.buf[0].mem = h->content + off;
        ssize_t got = fuse_buf_copy(&mem, in, 0);
        if (got < 0) {
            fuse_reply_err(req, (int)-got);
            return;
        }
        if ((size_t)off + (size_t)got > h->len)
            h->len = (size_t)off + (size_t)got;
        h->dirty = true;
        fuse_reply_write(req, (size_t)got);
        return;
    }
    if (h->fd < 0) {
        fuse_reply_err(req, EBADF);
        return;
    }
    struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
    out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    out.buf[0].fd = h->fd;
    out.buf[0].pos = off;
    ssize_t n = fuse_buf_copy(&out, in, 0);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    zf_handle *h = H(fi);
    if (h->ref_write && h->dirty) { /* close(): the ref takes the value, or EINVAL */
        fuse_reply_err(req, -ref_commit(FS(req), h));
        return;
    }
    if (h->fd >= 0) {
        int d = dup(h->fd);
        if (d < 0 || close(d) != 0) {
            fuse_reply_err(req, errno);
            return;
        }
    }
    fuse_reply_err(req, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    zf_handle *h = H(fi);
    if (h->ref_write && h->dirty) { /* written after the last flush */
        int err = ref_commit(FS(req), h);
        if (err)
            zf_log(ZF_LOG_WARN, "zestfs: refs/%s: not a commit written, ref unchanged: %s\n",
                   h->ent.ref->name, zf_strerror(-err));
    }
    release_handle(FS(req), h);
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    zf_handle *h = H(fi);
    int r = h->fd < 0 ? 0 : datasync ? fdatasync(h->fd) : fsync(h->fd);
    fuse_reply_err(req, r ? errno : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
    zf_handle *h = H(fi);
    if (h->fd < 0) {
        fuse_reply_err(req, EROFS);
        return;
    }
    fuse_reply_err(req, fallocate(h->fd, mode, off, len) ? errno : 0);
}

/* ---- directories -------------------------------------------------------- */

static bool dir_has(const zf_dir *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->e[i].name, name) == 0)
            return true;
    return false;
}

static void dir_add(zf_dir *d, const char *name, uint64_t ino, mode_t type)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        zf_dirent *ne = realloc(d->e, d->cap * sizeof *ne);
        if (!ne)
            return;
        d->e = ne;
    }
    d->e[d->n].name = strdup(name);
    d->e[d->n].ino = ino;
    d->e[d->n].type = type;
    if (d->e[d->n].name)
        d->n++;
}

struct virt_list_ctx {
    zf_dir *d;
    const char *path;
};

static void virt_name(void *ud, const char *name, enum zv_kind kind)
{
    struct virt_list_ctx *c = ud;
    if (dir_has(c->d, name))
        return; /* real entry wins */
    char *p = join(c->path, name);
    if (!p)
        return;
    mode_t t = kind == ZV_DIR ? S_IFDIR : kind == ZV_LINK ? S_IFLNK : S_IFREG;
    dir_add(c->d, name, zv_ino(p), t);
    free(p);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    zf_fs *fs = FS(req);
    WITH_PATH(fs, ino, path);
    if (!(path = at_root(fs, path))) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    zf_dir *d = calloc(1, sizeof *d);
    zf_handle *h = d ? new_handle(fs, -1) : NULL;
    if (!h) {
        free(d);
        free(path);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    h->dir = d;
    dir_add(d, ".", ino, S_IFDIR);
    dir_add(d, "..", 0, S_IFDIR);
    bool any = false;
    int fd = ovl_open(fs, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0) {
        any = true;
        DIR *dp = fdopendir(fd);
        if (dp) {
            struct dirent *de;
            while ((de = readdir(dp)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char *sub = (fs->nkept_refs || fs->adopt) ? join(path, de->d_name) : NULL;
                bool hide = sub && real_hidden(fs, sub);
                free(sub);
                if (!hide) /* else the virtual entry of that name is listed */
                    dir_add(d, de->d_name, de->d_ino, (mode_t)DTTOIF(de->d_type));
            }
            closedir(dp);
        } else
            close(fd);
    }
    zv_ent e;
    if (zv_resolve(&fs->tree, path, &e) && e.kind == ZV_DIR) {
        any = true;
        struct virt_list_ctx c = {d, path};
        zv_list(&fs->tree, path, virt_name, &c);
    }
    free(path);
    if (!any) {
        free_handle(fs, h);
        fuse_reply_err(req, ENOENT);
        return;
    }
    fi->fh = (uintptr_t)h;
    fi->cache_readdir = 0;
    if (fuse_reply_open(req, fi) == -ENOENT)
        free_handle(fs, h);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    zf_dir *d = H(fi)->dir;
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    for (size_t i = (size_t)off; i < d->n; i++) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = d->e[i].ino;
        st.st_mode = d->e[i].type;
        size_t n = fuse_add_direntry(req, buf + used, size - used, d->e[i].name, &st, (off_t)(i + 1));
        if (n > size - used)
            break;
        used += n;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    free_handle(FS(req), H(fi));
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    if (fstatvfs(FS(req)->rootfd, &sv) != 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops zf_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write_buf = op_write_buf,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
};

int zf_fs_init(zf_fs *fs, int rootfd)
{
    memset(fs, 0, sizeof *fs);
    fs->rootfd = rootfd;
    fs->uid = getuid();
    fs->gid = getgid();
    fs->nbuckets = 1024;
    fs->nodes = calloc(fs->nbuckets, sizeof *fs->nodes);
    return fs->nodes ? 0 : -ENOMEM;
}

void zf_fs_release_handles(zf_fs *fs)
{
    while (fs->handles)
        release_handle(fs, fs->handles);
}

void zf_fs_destroy(zf_fs *fs)
{
    /* RELEASEs the kernel never sent: what read.c and flat.c held for these
     * handles went with them (zf_read_free, zf_flat_free) */
    while (fs->handles)
        free_handle(fs, fs->handles);
    zf_del_free(fs);
    while (fs->refq) { /* none once the loop ran empty */
        zf_refq *q = fs->refq;
        fs->refq = q->next;
        free(q->json);
        free(q);
    }
    for (size_t i = 0; i < fs->nbuckets; i++)
        for (zf_node *n = fs->nodes[i], *nx; n; n = nx) {
            nx = n->next;
            if (n->held)
                close(n->held - 1);
            free(n->name);
            free(n);
        }
    free(fs->nodes);
    for (size_t i = 0; i < fs->tree.nrepos; i++)
        zf_repo_free(fs->tree.repos[i]);
    free(fs->tree.repos);
    for (size_t i = 0; i < fs->nretired; i++)
        zf_repo_free(fs->retired[i]);
    free(fs->retired);
    for (size_t i = 0; i < fs->nkept_refs; i++)
        free(fs->kept_refs[i]);
    free(fs->kept_refs);
    zf_tokseeds_free(fs); /* startup tokens the read path never took */
}
