/* cachedel.c — HF's own cache tools on the mount: what unlink and rmdir of
 * presented (virtual) entries do (issue 22 item 5).
 *
 * huggingface_hub's DeleteCacheStrategy.execute() (what `hf cache rm`,
 * `hf cache prune` and `huggingface-cli delete-cache` run) removes, in this
 * order: snapshot files (delete_files), whole repo folders (shutil.rmtree:
 * unlink every entry, rmdir every folder, depth first), snapshot folders
 * (rmtree), refs files, blobs.  Each of those calls means here:
 *
 *  - rmdir <F>/snapshots/<commit>: the revision is deleted.  The commit
 *    leaves the repo model (persisted: a remount does not present it), its
 *    stored data is dropped as `zestfs evict` drops it (evict.c: what any
 *    other presented file names stays, labelled xorbs stay), and the
 *    request is answered once that is done.  Its blobs that no other
 *    commit names stay visible (blobs/<etag>, as in a real cache) until
 *    unlinked or the mount ends, so the tool's next step finds them.
 *  - rmdir <F> (the repo folder): the repo is deleted: it leaves the tree,
 *    its model leaves the store ("repo/<type>/<id>"), its data is dropped
 *    as above.
 *  - unlink <F>/refs/<name>: the ref leaves the model (persisted).
 *  - unlink <F>/blobs/<etag>: the blob's stored data is dropped (as above);
 *    while a presented commit names it the blob stays presented (a lazy
 *    file: reading it fetches it again), else it is gone.
 *  - unlink of a snapshot symlink, trees/<c>.json, a .no_exist marker, and
 *    rmdir of the structural folders (refs/, blobs/, snapshots/, trees/,
 *    snapshots/<c>/<dir>, .no_exist/...): accepted, nothing changes (they
 *    are views of the model; the folder that holds them decides).  rmdir
 *    of refs/ (or refs/<dir>) still naming refs: ENOTEMPTY.
 *  - a pinned revision (`zestfs pin`): every entry that belongs to it
 *    (its snapshot, refs naming it, blobs it names, the repo folder)
 *    refuses with EPERM, before anything real is touched: Python raises
 *    PermissionError, which the HF tools report as "permission denied"
 *    and go on.  `zestfs unpin` first.
 * Real entries of the overlay are removed as before (the real part first;
 * a real folder that is not empty stops the removal with ENOTEMPTY).
 *
 * "Until it is asked for again": a deleted repo comes back the way an
 * unknown one comes (hubload.c, on demand): a lookup of its folder name at
 * the root (hf_hub_download, snapshot_download and `ls` do one) resolves it
 * on the Hub; a deleted revision, by a lookup of snapshots/<commit> or of a
 * ref naming it, or the ref TTL check.  Offline, a deleted repo or revision
 * stays deleted (like a real cache's).  A repo named with --repo comes
 * back at the next mount. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cachedel.h"
#include "evict.h"
#include "log.h"
#include "present.h"
#include "refs.h"
#include "zfs.h"

typedef struct zf_gone {
    char *folder;
    const zf_repo *repo;       /* retired model: lives until zf_fs_destroy */
    const zf_commit *commit;
    const zf_file *file;
} zf_gone;

typedef struct zf_dels {
    zf_gone *v;
    size_t n, cap;
} zf_dels;

static const char *TYPE1[] = {"model", "dataset", "space"};

/* Is commit `sha` of r pinned (NULL: any commit)? */
static bool pinned(zf_fs *fs, const zf_repo *r, const char *sha)
{
    if (!fs->store)
        return false;
    char **pins = NULL, want[400];
    size_t n = 0;
    bool hit = false;
    int w = snprintf(want, sizeof want, "%s/%s@", TYPE1[r->type], r->id);
    zf_pins_list(fs->store, &pins, &n);
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(pins[i], want, (size_t)w) && (!sha || !strcmp(pins[i] + w, sha)))
            hit = true;
        free(pins[i]);
    }
    free(pins);
    return hit;
}

/* Does a pinned commit of r name blob `etag`? */
static bool blob_pinned(zf_fs *fs, const zf_repo *r, const char *etag)
{
    for (size_t i = 0; i < r->ncommits; i++)
        for (size_t k = 0; k < r->commits[i].nfiles; k++)
            if (!strcmp(r->commits[i].files[k].etag, etag) && pinned(fs, r, r->commits[i].sha))
                return true;
    return false;
}

bool zf_del_resolve(const zf_fs *fs, const char *path, zv_ent *out)
{
    const zf_dels *d = fs->dels;
    if (!d)
        return false;
    for (size_t i = 0; i < d->n; i++) {
        const zf_gone *g = &d->v[i];
        size_t fl = strlen(g->folder);
        if (!strncmp(path, g->folder, fl) && !strncmp(path + fl, "/blobs/", 7) &&
            !strcmp(path + fl + 7, g->file->etag)) {
            memset(out, 0, sizeof *out);
            out->kind = ZV_BLOB;
            out->repo = g->repo;
            out->commit = g->commit;
            out->file = g->file;
            out->size = g->file->size;
            out->mtime = g->commit->date;
            return true;
        }
    }
    return false;
}

/* Forget lingering blobs of folder (etag NULL: all of them). */
static bool gone_drop(zf_fs *fs, const char *folder, const char *etag)
{
    zf_dels *d = fs->dels;
    bool hit = false;
    for (size_t i = 0; d && i < d->n;) {
        if (!strcmp(d->v[i].folder, folder) && (!etag || !strcmp(d->v[i].file->etag, etag))) {
            free(d->v[i].folder);
            d->v[i] = d->v[--d->n];
            hit = true;
        } else
            i++;
    }
    return hit;
}

static void gone_add(zf_fs *fs, const zf_repo *r, const zf_commit *c, const zf_file *f)
{
    zf_dels *d = fs->dels;
    if (!d && !(d = fs->dels = calloc(1, sizeof *d)))
        return;
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->v[i].folder, r->folder) && !strcmp(d->v[i].file->etag, f->etag))
            return;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 16;
        zf_gone *nv = realloc(d->v, nc * sizeof *nv);
        if (!nv)
            return;
        d->v = nv;
        d->cap = nc;
    }
    char *folder = strdup(r->folder);
    if (folder)
        d->v[d->n++] = (zf_gone){folder, r, c, f};
}

void zf_del_free(zf_fs *fs)
{
    zf_dels *d = fs->dels;
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].folder);
    free(d->v);
    free(d);
    fs->dels = NULL;
}

/* Is path the repo's folder or below it (the cache layout)? */
static bool in_folder(const char *path, const zf_repo *r)
{
    size_t n = strlen(r->folder);
    return !strncmp(path, r->folder, n) && (path[n] == 0 || path[n] == '/');
}

/* The commit a path inside a repo folder belongs to (snapshots/<c>/...,
 * .no_exist/<c>/..., trees/<c>.json), or NULL. */
static const zf_commit *path_commit(const char *path, const zv_ent *e)
{
    if (e->commit || !e->repo || !in_folder(path, e->repo))
        return e->commit;
    const char *rest = path + strlen(e->repo->folder);
    static const char *const dirs[] = {"/snapshots/", "/.no_exist/", "/trees/"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(dirs[i]);
        if (!strncmp(rest, dirs[i], l) && strlen(rest + l) >= 40) {
            char sha[41];
            memcpy(sha, rest + l, 40);
            sha[40] = 0;
            return zf_repo_commit(e->repo, sha);
        }
    }
    return NULL;
}

/* What a virtual path is, for removal. */
enum what { W_NOOP, W_REPO, W_COMMIT, W_REF, W_BLOB, W_GONE_BLOB, W_REFSDIR, W_OTHER };

static enum what classify(const char *path, const zv_ent *e, bool gone)
{
    if (!path[0])
        return W_OTHER;
    if (!e->repo || !strncmp(path, ".locks/", 7) || !strcmp(path, ".locks"))
        return W_NOOP;
    if (!in_folder(path, e->repo)) /* another layout: read-only as before */
        return W_OTHER;
    if (gone)
        return W_GONE_BLOB;
    const char *rest = path + strlen(e->repo->folder);
    if (!*rest)
        return W_REPO;
    if (e->kind == ZV_REF)
        return W_REF;
    if (e->kind == ZV_BLOB)
        return W_BLOB;
    if (e->kind == ZV_DIR && !strncmp(rest, "/snapshots/", 11) && strlen(rest + 11) == 40 &&
        path_commit(path, e))
        return W_COMMIT;
    if (e->kind == ZV_DIR && (!strcmp(rest, "/refs") || !strncmp(rest, "/refs/", 6)))
        return W_REFSDIR;
    return W_NOOP;
}

static void count_name(void *ud, const char *name, enum zv_kind kind)
{
    (void)name;
    (void)kind;
    (*(int *)ud)++;
}

int zf_del_check(zf_fs *fs, const char *path, const zv_ent *e, bool gone, bool dir)
{
    if (dir && e->kind != ZV_DIR)
        return -ENOTDIR;
    if (!dir && e->kind == ZV_DIR)
        return -EISDIR;
    switch (classify(path, e, gone)) {
    case W_OTHER:
        return -EROFS;
    case W_REPO:
        return pinned(fs, e->repo, NULL) ? -EPERM : 0;
    case W_REF:
        return pinned(fs, e->repo, e->ref->sha) ? -EPERM : 0;
    case W_BLOB:
        return blob_pinned(fs, e->repo, e->file->etag) ? -EPERM : 0;
    case W_REFSDIR: {
        int n = 0;
        zv_list(&fs->tree, path, count_name, &n);
        return n ? -ENOTEMPTY : 0;
    }
    case W_GONE_BLOB:
        return 0;
    case W_COMMIT:
    case W_NOOP: {
        /* anything inside a pinned snapshot (its links, folders, tree) */
        const zf_commit *c = path_commit(path, e);
        return c && pinned(fs, e->repo, c->sha) ? -EPERM : 0;
    }
    }
    return 0;
}

/* ---- what changes ------------------------------------------------------- */

typedef struct del_op {
    zf_fs *fs;
    fuse_req_t req;
    char what[400];
} del_op;

static void evicted(void *ud, const zf_evict_stat *st)
{
    del_op *op = ud;
    if (st->err)
        zf_log(ZF_LOG_WARN, "zestfs: %s: dropping its stored data: %s\n", op->what,
               zf_strerror(-st->err));
    else
        zf_log(ZF_LOG_INFO,
               "zestfs: %s deleted through the tree: %llu bytes freed (%llu xorbs, %llu blobs); "
               "kept %llu shared, %llu pinned\n",
               op->what, (unsigned long long)st->bytes, (unsigned long long)st->xorbs,
               (unsigned long long)st->blobs, (unsigned long long)st->shared,
               (unsigned long long)st->pinned);
    fuse_reply_err(op->req, 0); /* the tree changed whatever the store said */
    free(op);
}

/* Drop the data of (repo, only, etag) and answer req when done. */
static void evict_then_reply(zf_fs *fs, fuse_req_t req, const zf_repo *r, const zf_commit *only,
                             const char *etag, const char *what)
{
    del_op *op = fs->store ? calloc(1, sizeof *op) : NULL;
    if (!op) {
        fuse_reply_err(req, 0);
        return;
    }
    op->fs = fs;
    op->req = req;
    snprintf(op->what, sizeof op->what, "%s", what);
    if (zf_evict_some(fs, fs->store, r, only, etag, evicted, op) != 0) {
        fuse_reply_err(req, 0);
        free(op);
    }
}

/* Take r out of the tree (kept alive among the retired models). */
static int tree_remove(zf_fs *fs, const zf_repo *r)
{
    zf_repo **nv = realloc(fs->retired, (fs->nretired + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    fs->retired = nv;
    for (size_t i = 0; i < fs->tree.nrepos; i++)
        if (fs->tree.repos[i] == r) {
            fs->retired[fs->nretired++] = fs->tree.repos[i];
            memmove(&fs->tree.repos[i], &fs->tree.repos[i + 1],
                    (fs->tree.nrepos - i - 1) * sizeof *fs->tree.repos);
            fs->tree.nrepos--;
            return 0;
        }
    return -ENOENT;
}

void zf_del_virtual(zf_fs *fs, fuse_req_t req, const char *path, const zv_ent *e, bool gone)
{
    const zf_repo *r = e->repo;
    char what[400];
    switch (classify(path, e, gone)) {
    case W_OTHER:
        fuse_reply_err(req, EROFS);
        return;
    case W_NOOP:
    case W_REFSDIR:
        fuse_reply_err(req, 0);
        return;
    case W_GONE_BLOB:
        gone_drop(fs, r->folder, e->file->etag);
        fuse_reply_err(req, 0);
        return;
    case W_REF: {
        zf_repo *nr = zf_repo_without(r, e->ref->name, NULL);
        int err = nr ? zf_fs_add_repo(fs, nr) : -ENOMEM;
        if (err) {
            zf_repo_free(nr);
            fuse_reply_err(req, -err);
            return;
        }
        zf_persist_repo(fs, nr);
        fuse_reply_err(req, 0);
        return;
    }
    case W_BLOB:
        snprintf(what, sizeof what, "%s/%s: blobs/%.12s", zf_type_plural(r->type), r->id,
                 e->file->etag);
        evict_then_reply(fs, req, r, NULL, e->file->etag, what);
        return;
    case W_COMMIT: {
        const zf_commit *c = path_commit(path, e);
        zf_repo *nr = zf_repo_without(r, NULL, c->sha);
        int err = nr ? zf_fs_add_repo(fs, nr) : -ENOMEM;
        if (err) {
            zf_repo_free(nr);
            fuse_reply_err(req, -err);
            return;
        }
        /* its blobs no other commit names stay until unlinked */
        for (size_t i = 0; i < c->nfiles; i++)
            if (!zf_repo_blob(nr, c->files[i].etag, NULL))
                gone_add(fs, r, c, &c->files[i]);
        zf_persist_repo(fs, nr);
        snprintf(what, sizeof what, "%s/%s@%.12s", zf_type_plural(r->type), r->id, c->sha);
        evict_then_reply(fs, req, r, c, NULL, what);
        return;
    }
    case W_REPO: {
        int err = tree_remove(fs, r);
        if (err) {
            fuse_reply_err(req, -err);
            return;
        }
        gone_drop(fs, r->folder, NULL);
        zf_persist_forget(fs, r);
        snprintf(what, sizeof what, "%s/%s", zf_type_plural(r->type), r->id);
        evict_then_reply(fs, req, r, NULL, NULL, what);
        return;
    }
    }
    fuse_reply_err(req, 0);
}
