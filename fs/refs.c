/* refs.c — refs/<rev> written by clients: in-place writes and renames onto
 * a presented ref become the ref's value in the model (persisted on the
 * pool), and refs/<rev> files found in the real directory at startup are
 * taken in (zf_absorb_overlay_refs).  The FUSE operations (ops.c) call in
 * here; nothing here calls them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "handle.h"
#include "log.h"
#include "overlay.h"
#include "refs.h"
#include "present.h"
#include "zfs.h"

/* ---- refs written by clients --------------------------------------------
 *
 * HF clients record which commit a revision resolved to by writing
 * refs/<rev>: @huggingface/hub in place (open O_WRONLY|O_TRUNC, write),
 * huggingface_hub as a temp file renamed over it.  Both land in the model,
 * not in the overlay, so the ref never shadows the mount's own view:
 *  - an in-place write of a presented ref fills a buffer (ref_write
 *    handle); at flush/release a content of 40 hex (trailing whitespace
 *    allowed) becomes the ref's value, anything else fails the flush with
 *    EINVAL and changes nothing;
 *  - a rename of a real file holding a commit onto refs/<rev> of a
 *    presented repo (presented ref or not) sets the ref to it and removes
 *    the source (and a real refs/<rev> file left over from before); the
 *    kernel then has dst at the source's inode, so that inode number is
 *    held (zf_node.held) and the kernel told to look dst up again;
 *  - refs/<rev> files found in the real directory at startup (a cache
 *    huggingface_hub filled before the mount, or an older zestfs's
 *    overlay) are taken into the model once each, as a client's write at
 *    their mtime (zf_absorb_overlay_refs; again only when the file changed
 *    while unmounted), and hidden, never changed or removed: the user's
 *    files stay as they were.
 * The value is stamped with when the client wrote it (zf_ref.written, the
 * ref's mtime) and persisted with the model.  Reconciliation with the Hub:
 * the last writer wins, and a refresh of the ref from the Hub (--repo at
 * startup, a pull, pin or verify that resolves it) counts as a write at the
 * time of the refresh, so it replaces the client's value and clears the
 * stamp (hubload.c merged_json): the Hub is the source of truth, and a
 * client only writes what it has just read from the Hub.  Offline, or
 * until the next refresh, the client's value is the ref.  A written commit
 * the mount does not present is kept as the ref's value; its snapshot is
 * then whatever the client creates in the overlay. */

static void refq_start(zf_fs *fs);

static void refq_work(uv_work_t *w)
{
    zf_refq *q = w->data;
    q->err = q->json ? zc_meta_put(q->fs->store, q->key, q->json, strlen(q->json), 0)
                     : zc_meta_delete(q->fs->store, q->key); /* a deleted repo (cachedel.c) */
    if (q->err == -ENOENT && !q->json)
        q->err = 0;
}

static void refq_after(uv_work_t *w, int status)
{
    (void)status;
    zf_refq *q = w->data;
    zf_fs *fs = q->fs;
    if (q->err)
        zf_log(ZF_LOG_WARN, "zestfs: %s: persisting a written ref: %s\n", q->key,
               zf_strerror(-q->err));
    fs->refq = q->next;
    free(q->json);
    free(q);
    refq_start(fs);
}

/* One persist at a time, in order: the last model written is the one kept. */
static void refq_start(zf_fs *fs)
{
    zf_refq *q = fs->refq;
    if (!q || q->running)
        return;
    q->running = true;
    q->work.data = q;
    if (uv_queue_work(fs->loop, &q->work, refq_work, refq_after) != 0) {
        refq_work(&q->work);
        refq_after(&q->work, 0);
    }
}

/* json NULL: the model is deleted (cachedel.c) */
static void persist_json(zf_fs *fs, const zf_repo *r, char *json)
{
    char key[300];
    snprintf(key, sizeof key, "repo/%s/%s", zf_type_name(r->type), r->id);
    if (!fs->loop) { /* startup: nothing else runs yet */
        int err = json ? zc_meta_put(fs->store, key, json, strlen(json), ZC_PUT_FSYNC)
                       : zc_meta_delete(fs->store, key);
        if (err)
            zf_log(ZF_LOG_WARN, "zestfs: %s: persisting a written ref: %s\n", key, zf_strerror(-err));
        free(json);
        return;
    }
    zf_refq **pp = &fs->refq;
    for (; *pp; pp = &(*pp)->next)
        if (!(*pp)->running && strcmp((*pp)->key, key) == 0) { /* not started: newer JSON */
            free((*pp)->json);
            (*pp)->json = json;
            return;
        }
    zf_refq *q = calloc(1, sizeof *q);
    if (!q) {
        free(json);
        return;
    }
    q->fs = fs;
    snprintf(q->key, sizeof q->key, "%s", key);
    q->json = json;
    *pp = q;
    refq_start(fs);
}

static void persist_repo(zf_fs *fs, const zf_repo *r)
{
    if (!fs->store)
        return;
    char *json = zf_repo_to_json(r);
    if (json)
        persist_json(fs, r, json);
}

void zf_persist_repo(zf_fs *fs, const zf_repo *r)
{
    persist_repo(fs, r);
}

void zf_persist_forget(zf_fs *fs, const zf_repo *r)
{
    if (fs->store)
        persist_json(fs, r, NULL);
}

/* 40 hex (any case) and optional trailing whitespace -> lowercase sha. */
static bool parse_ref(const char *b, size_t n, char sha[41])
{
    while (n > 40 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ' || b[n - 1] == '\t'))
        n--;
    if (n != 40)
        return false;
    for (size_t i = 0; i < 40; i++) {
        char c = b[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        sha[i] = c;
    }
    sha[40] = 0;
    return true;
}

/* The presented repo whose refs/<rev> `path` names (*rev set), or NULL. */
static const zf_repo *ref_target(zf_fs *fs, const char *path, const char **rev)
{
    const char *sl = strchr(path, '/');
    if (!sl || strncmp(sl, "/refs/", 6) != 0 || !zf_valid_rev(sl + 6))
        return NULL;
    for (size_t i = 0; i < fs->tree.nrepos; i++) {
        const zf_repo *r = fs->tree.repos[i];
        if (strlen(r->folder) == (size_t)(sl - path) && strncmp(r->folder, path, (size_t)(sl - path)) == 0) {
            *rev = sl + 6;
            return r;
        }
    }
    return NULL;
}

/* Set ref `name` of the presented model of `seen`'s repo (seen may have
 * been replaced since) to sha, stamped `written`, and persist it. */
static int set_ref(zf_fs *fs, const zf_repo *seen, const char *name, const char *sha, int64_t written)
{
    zf_repo *r = NULL;
    for (size_t i = 0; i < fs->tree.nrepos && !r; i++)
        if (fs->tree.repos[i]->type == seen->type && strcmp(fs->tree.repos[i]->id, seen->id) == 0)
            r = fs->tree.repos[i];
    if (!r)
        return -ENOENT;
    for (size_t k = 0; k < r->nrefs; k++)
        if (strcmp(r->refs[k].name, name) == 0) { /* in place: handles keep pointing at it */
            memcpy(r->refs[k].sha, sha, 41);
            r->refs[k].written = written;
            persist_repo(fs, r);
            return 0;
        }
    zf_repo *nr = zf_repo_with_ref(r, name, sha, written); /* a new ref: a new model */
    if (!nr)
        return -EINVAL;
    int err = zf_fs_add_repo(fs, nr);
    if (err) {
        zf_repo_free(nr);
        return err;
    }
    persist_repo(fs, nr);
    return 0;
}

/* The commit a small real regular file holds; -EINVAL when it holds none. */
static int read_ref_file(zf_fs *fs, const char *path, char sha[41], struct stat *st)
{
    int fd = ovl_open(fs, path, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    char buf[REF_WMAX];
    ssize_t n = -1;
    if (fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_size <= REF_WMAX)
        n = pread(fd, buf, sizeof buf, 0);
    close(fd);
    return n >= 0 && parse_ref(buf, (size_t)n, sha) ? 0 : -EINVAL;
}

/* A ref_write handle's content becomes the ref's value. */
int ref_commit(zf_fs *fs, zf_handle *h)
{
    h->dirty = false;
    char sha[41];
    if (!parse_ref(h->content, h->len, sha))
        return -EINVAL;
    return set_ref(fs, h->ent.repo, h->ent.ref->name, sha, (int64_t)time(NULL));
}

/* rename(src, dst) where dst is refs/<rev> of a presented repo and src a
 * real file holding a commit: the model takes it.  1: not such a rename
 * (an ordinary one follows), else 0 or -errno.  On 0, *held is an O_PATH
 * descriptor of the removed source (or -1): see zf_node.held. */
int rename_onto_ref(zf_fs *fs, const char *src, const char *dst, unsigned flags, int *held)
{
    *held = -1;
    const char *rev;
    const zf_repo *r = ref_target(fs, dst, &rev);
    if (!r || (flags & RENAME_EXCHANGE))
        return 1;
    zv_ent e;
    bool virt = zv_resolve(&fs->tree, dst, &e);
    if (virt && e.kind != ZV_REF)
        return 1;
    struct stat st;
    bool real_dst = ovl_stat(fs, dst, &st) == 0;
    if (real_dst && !S_ISREG(st.st_mode))
        return 1;
    char sha[41];
    if (read_ref_file(fs, src, sha, &st) != 0)
        return 1;
    if ((flags & RENAME_NOREPLACE) && (virt || real_dst))
        return -EEXIST;
    int err = set_ref(fs, r, rev, sha, (int64_t)time(NULL));
    if (err)
        return err;
    *held = ovl_open(fs, src, O_PATH, 0);
    if (ovl_unlink(fs, src, 0) != 0) {
        err = -errno;
        if (*held >= 0)
            close(*held);
        *held = -1;
        return err;
    }
    if (real_dst) /* a copy left in the overlay from before: the model has it now */
        ovl_unlink(fs, dst, 0);
    return 0;
}

/* After a rename onto a ref the kernel has dst at the source's inode, whose
 * real file is gone (its number may be reused by the next file created):
 * make it look dst up again, which finds the virtual ref.  From a pool
 * thread: the notification waits for the directory's lock, which a
 * request this loop has yet to answer may hold. */
typedef struct inval_entry {
    uv_work_t work;
    zf_fs *fs;
    fuse_ino_t parent;
    char name[];
} inval_entry;

static void inval_work(uv_work_t *w)
{
    inval_entry *e = w->data;
    fuse_lowlevel_notify_inval_entry(e->fs->se, e->parent, e->name, strlen(e->name));
}

static void inval_after(uv_work_t *w, int status)
{
    (void)status;
    free(w->data);
}

void inval_entry_later(zf_fs *fs, fuse_ino_t parent, const char *name)
{
    if (!fs->se || !fs->loop)
        return;
    inval_entry *e = calloc(1, sizeof *e + strlen(name) + 1);
    if (!e)
        return;
    e->fs = fs;
    e->parent = parent;
    strcpy(e->name, name);
    e->work.data = e;
    if (uv_queue_work(fs->loop, &e->work, inval_work, inval_after) != 0)
        free(e);
}

static bool scratch_name(const char *name)
{
    size_t n = strlen(name);
    static const char *const sfx[] = {".tmp", ".lock", ".incomplete"};
    if (name[0] == '.')
        return true;
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        size_t l = strlen(sfx[i]);
        if (n >= l && strcmp(name + n - l, sfx[i]) == 0)
            return true;
    }
    return false;
}

/* Was this refs/<name> file taken into the model before, as it is now?  The
 * overlay hides it while mounted, so a file that changed since was written
 * while zestfs was not mounted (by huggingface_hub, or by hand): newer than
 * anything the model holds.  The same file again says nothing new (the
 * model may have moved on through the mount or the Hub since).  Recorded in
 * the store as "refsfile/<path>" = "<sha> <mtime s.ns> <inode>". */
static bool absorbed_before(zf_fs *fs, const char *path, const char *sha, const struct stat *st,
                            bool record)
{
    if (!fs->store)
        return false;
    char key[4400], val[128];
    if ((size_t)snprintf(key, sizeof key, "refsfile/%s", path) >= sizeof key)
        return false;
    int n = snprintf(val, sizeof val, "%s %lld.%09ld %llu", sha, (long long)st->st_mtim.tv_sec,
                     st->st_mtim.tv_nsec, (unsigned long long)st->st_ino);
    if (record)
        return zc_meta_put(fs->store, key, val, (size_t)n, 0) == 0;
    void *data = NULL;
    size_t len = 0;
    bool same = zc_meta_get(fs->store, key, &data, &len) == 0 && len == (size_t)n &&
                memcmp(data, val, len) == 0;
    free(data);
    return same;
}

/* The file stays as the user (or an HF client before the mount) left it;
 * the overlay hides it so the model's value is what the tree shows. */
static void keep_ref(zf_fs *fs, const char *path)
{
    if (real_hidden(fs, path))
        return;
    char **nv = realloc(fs->kept_refs, (fs->nkept_refs + 1) * sizeof *nv);
    if (!nv)
        return;
    fs->kept_refs = nv;
    if ((nv[fs->nkept_refs] = strdup(path)) != NULL)
        fs->nkept_refs++;
}

/* refs/<rel>/ of repo index i in the real directory, depth-bounded. */
static void absorb_dir(zf_fs *fs, size_t i, const char *rel, int depth)
{
    const zf_repo *r = fs->tree.repos[i];
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/refs%s%s", r->folder, rel[0] ? "/" : "", rel);
    int fd = ovl_open(fs, dir, O_RDONLY | O_DIRECTORY, 0);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dp) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL && n < 4096) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char **nv = realloc(names, (n + 1) * sizeof *nv);
        if (!nv || !(nv[n] = strdup(de->d_name))) {
            names = nv ? nv : names;
            break;
        }
        names = nv;
        n++;
    }
    closedir(dp);
    for (size_t k = 0; k < n; k++) {
        char sub[4400], path[4800];
        struct stat st;
        char sha[41];
        bool fits = (size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", names[k]) < sizeof sub &&
                    (size_t)snprintf(path, sizeof path, "%s/%s", dir, names[k]) < sizeof path;
        bool isdir = fits && ovl_stat(fs, path, &st) == 0 &&
                     S_ISDIR(st.st_mode);
        if (isdir && depth < 8)
            absorb_dir(fs, i, sub, depth + 1);
        else if (fits && !isdir && !scratch_name(names[k]) && zf_valid_rev(sub) &&
                   read_ref_file(fs, path, sha, &st) == 0) {
            zv_ent e;
            bool virt = zv_resolve(&fs->tree, path, &e);
            if (virt && e.kind != ZV_REF)
                ;
            else {
                if (!absorbed_before(fs, path, sha, &st, false) &&
                    set_ref(fs, fs->tree.repos[i], sub, sha, (int64_t)st.st_mtime) == 0) {
                    zf_log(ZF_LOG_INFO, "zestfs: %s: refs/%s = %.12s (a file in the cache)\n",
                           fs->tree.repos[i]->id, sub, sha);
                    absorbed_before(fs, path, sha, &st, true);
                }
                keep_ref(fs, path);
            }
        }
        free(names[k]);
    }
    free(names);
}

void zf_absorb_overlay_refs(zf_fs *fs)
{
    for (size_t i = 0; i < fs->tree.nrepos; i++)
        absorb_dir(fs, i, "", 0);
}
