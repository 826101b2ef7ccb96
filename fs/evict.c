/* evict.c — `zestfs evict REPO[@REV]`: drop the stored data of a repo.
 *
 * The rule.  The xorbs named by the file maps of the target (every commit
 * the repo model holds, or only REV's) are dropped from the store, except
 * xorbs that the file maps of anything else presented also name (other
 * repos, other commits of the same repo when a revision was given): those
 * are shared and stay.  A pinned repo is refused with EBUSY (unpin first);
 * xorbs pinned through another repo stay too (zc_drop_xorb says EBUSY).
 * Segments a reader holds are unlinked at once and freed after it; the
 * next read of an evicted range fetches it again.  Metadata (refs, trees,
 * file maps) stays, so the repo is still presented, offline too, and its
 * reads fail with EIO offline until fetched again.  Files without a Xet
 * hash (small git files, stored whole as "blob/<etag>") follow the same
 * rule by etag; a copy the read path holds in memory may still answer.
 *
 * zf_evict_some is the same rule without the pin check, for a repo or a
 * commit that may have left the tree already, or for one blob (etag):
 * HF's cache tools deleting through the tree (cachedel.c).
 *
 * Everything runs on the loop: file maps are listed through
 * zf_read_file_xorbs (which loads them from the store on the pool), then
 * the set difference is dropped with zc_drop_xorb (cheap: unlinks run
 * outside the store lock). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "flat.h"
#include "read.h"
#include "evict.h"
#include "zfs.h"

typedef struct ev_op {
    zf_fs *fs;
    zc_store *store;
    zf_evict_cb cb;
    void *ud;
    int pending;
    int err;
    /* sorted after the walk: target xorbs and xorbs to keep */
    xet_hash *tv, *kv;
    size_t tn, tcap, kn, kcap;
    /* other files (no Xet hash) of the target, stored whole as metadata
     * "blob/<etag>": their etags, and those of everything else */
    char **tb, **kb;
    size_t tbn, tbcap, kbn, kbcap;
    uv_work_t work;
    zf_evict_stat st;
} ev_op;

typedef struct ev_file {
    ev_op *ev;
    bool keep;
} ev_file;

static int push(xet_hash **v, size_t *n, size_t *cap, const xet_hash *h, size_t k)
{
    if (*n + k > *cap) {
        size_t nc = *cap ? *cap : 64;
        while (nc < *n + k)
            nc *= 2;
        xet_hash *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    memcpy(*v + *n, h, k * sizeof *h);
    *n += k;
    return 0;
}

static int push_str(char ***v, size_t *n, size_t *cap, const char *str)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    if (!((*v)[*n] = strdup(str)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

static int scmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int hcmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(xet_hash));
}

/* pool: delete the target's whole-file blobs nothing else names */
static void blobs_work(uv_work_t *w)
{
    ev_op *ev = w->data;
    if (ev->tbn) /* qsort(NULL, 0, ...) is undefined */
        qsort(ev->tb, ev->tbn, sizeof *ev->tb, scmp);
    if (ev->kbn)
        qsort(ev->kb, ev->kbn, sizeof *ev->kb, scmp);
    for (size_t i = 0; i < ev->tbn; i++) {
        if (i && !strcmp(ev->tb[i], ev->tb[i - 1]))
            continue;
        if (ev->kbn && bsearch(&ev->tb[i], ev->kb, ev->kbn, sizeof *ev->kb, scmp)) {
            ev->st.shared++;
            continue;
        }
        char key[300];
        void *d = NULL;
        size_t len = 0;
        snprintf(key, sizeof key, "blob/%s", ev->tb[i]);
        if (zc_meta_get(ev->store, key, &d, &len) == 0 && zc_meta_delete(ev->store, key) == 0) {
            ev->st.blobs++;
            ev->st.bytes += len;
        }
        free(d);
    }
}

static void xorbs_drop(ev_op *ev);

static void blobs_after(uv_work_t *w, int status)
{
    (void)status;
    ev_op *ev = w->data;
    for (size_t i = 0; i < ev->tbn; i++)
        if (!ev->kbn || !bsearch(&ev->tb[i], ev->kb, ev->kbn, sizeof *ev->kb, scmp))
            zf_read_forget_blob(ev->fs, ev->tb[i]);
    xorbs_drop(ev);
}

static void finish(ev_op *ev)
{
    ev->work.data = ev;
    if (ev->err || !ev->tbn || uv_queue_work(ev->fs->loop, &ev->work, blobs_work, blobs_after) != 0)
        xorbs_drop(ev);
}

static void xorbs_drop(ev_op *ev)
{
    if (ev->tn)
        qsort(ev->tv, ev->tn, sizeof *ev->tv, hcmp);
    if (ev->kn)
        qsort(ev->kv, ev->kn, sizeof *ev->kv, hcmp);
    for (size_t i = 0; !ev->err && i < ev->tn; i++) {
        if (i && !hcmp(&ev->tv[i], &ev->tv[i - 1]))
            continue;
        if (ev->kn && bsearch(&ev->tv[i], ev->kv, ev->kn, sizeof *ev->kv, hcmp)) {
            ev->st.shared++;
            continue;
        }
        uint64_t freed = 0;
        int rc = zc_drop_xorb(ev->store, &ev->tv[i], &freed);
        if (rc == -EBUSY) {
            ev->st.pinned++;
            continue;
        }
        if (rc) {
            ev->err = rc;
            break;
        }
        if (freed) {
            ev->st.xorbs++;
            ev->st.bytes += freed;
        }
    }
    ev->st.err = ev->err;
    ev->cb(ev->ud, &ev->st);
    free_strs(ev->tb, ev->tbn);
    free_strs(ev->kb, ev->kbn);
    free(ev->tv);
    free(ev->kv);
    free(ev);
}

static void drop_ref(ev_op *ev)
{
    if (--ev->pending == 0)
        finish(ev);
}

static void file_cb(void *ud, int err, const xet_hash *v, size_t n)
{
    ev_file *ef = ud;
    ev_op *ev = ef->ev;
    if (err && !ev->err)
        ev->err = err;
    if (!err && n) {
        int rc = ef->keep ? push(&ev->kv, &ev->kn, &ev->kcap, v, n) : push(&ev->tv, &ev->tn, &ev->tcap, v, n);
        if (rc && !ev->err)
            ev->err = rc;
    }
    free(ef);
    drop_ref(ev);
}

static void walk_file(ev_op *ev, const zf_repo *r, const zf_commit *c, const zf_file *f, bool keep)
{
    if (f->size == 0)
        return;
    if (!keep)
        ev->st.files++;
    if (!ZF_IN_XORBS(f)) {
        int rc = keep ? push_str(&ev->kb, &ev->kbn, &ev->kbcap, f->etag)
                      : push_str(&ev->tb, &ev->tbn, &ev->tbcap, f->etag);
        if (rc)
            ev->err = rc;
        return;
    }
    if (!keep) /* its whole copy (flat.c) goes too: it only makes reads faster */
        zf_flat_drop_etag(ev->fs->flats, f->etag, &ev->st.bytes);
    ev_file *ef = malloc(sizeof *ef);
    if (!ef) {
        ev->err = -ENOMEM;
        return;
    }
    *ef = (ev_file){ev, keep};
    zv_ent e = {.kind = ZV_BLOB, .repo = r, .commit = c, .file = f, .size = f->size,
                .mtime = c->date};
    ev->pending++;
    if (zf_read_file_xorbs(ev->fs, &e, file_cb, ef) != 0) {
        ev->pending--;
        free(ef);
    }
}

/* Is any commit of r pinned? */
static bool repo_pinned(zc_store *store, const zf_repo *r)
{
    /* pins are "<model|dataset|space>/<id>@<commit>" */
    char **pins = NULL, want[400];
    size_t n = 0;
    bool hit = false;
    const char *plural = zf_type_plural(r->type);
    snprintf(want, sizeof want, "%.*s/%s@", (int)strlen(plural) - 1, plural, r->id);
    zf_pins_list(store, &pins, &n);
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(pins[i], want, strlen(want)))
            hit = true;
        free(pins[i]);
    }
    free(pins);
    return hit;
}

/* Is file f of commit c of r a target (repo, only: NULL all its commits,
 * etag: NULL all files)? */
static bool is_target(const zf_repo *r, const zf_commit *c, const zf_file *f, const zf_repo *repo,
                      const zf_commit *only, const char *etag)
{
    return r == repo && (!only || c == only) && (!etag || strcmp(f->etag, etag) == 0);
}

int zf_evict_some(zf_fs *fs, zc_store *store, const zf_repo *repo, const zf_commit *only,
                  const char *etag, zf_evict_cb cb, void *ud)
{
    if (!fs || !store || !repo || !cb)
        return -EINVAL;
    ev_op *ev = calloc(1, sizeof *ev);
    if (!ev)
        return -ENOMEM;
    ev->fs = fs;
    ev->store = store;
    ev->cb = cb;
    ev->ud = ud;
    ev->pending = 1; /* held while starting */
    /* the targets, from `repo` itself: it may have left the tree already */
    for (size_t k = 0; k < repo->ncommits && !ev->err; k++)
        for (size_t i = 0; i < repo->commits[k].nfiles && !ev->err; i++) {
            const zf_commit *c = &repo->commits[k];
            if (is_target(repo, c, &c->files[i], repo, only, etag))
                walk_file(ev, repo, c, &c->files[i], false);
        }
    /* everything else presented keeps what it names */
    for (size_t n = 0; n < fs->tree.nrepos && !ev->err; n++) {
        const zf_repo *r = fs->tree.repos[n];
        for (size_t k = 0; k < r->ncommits && !ev->err; k++)
            for (size_t i = 0; i < r->commits[k].nfiles && !ev->err; i++) {
                const zf_commit *c = &r->commits[k];
                if (!is_target(r, c, &c->files[i], repo, only, etag))
                    walk_file(ev, r, c, &c->files[i], true);
            }
    }
    drop_ref(ev);
    return 0;
}

int zf_evict(zf_fs *fs, zc_store *store, const zf_repo *repo, const char *commit, zf_evict_cb cb,
             void *ud)
{
    if (!fs || !store || !repo || !cb)
        return -EINVAL;
    if (repo_pinned(store, repo))
        return -EBUSY;
    const zf_commit *only = commit ? zf_repo_commit(repo, commit) : NULL;
    if (commit && !only)
        return -ENOENT;
    return zf_evict_some(fs, store, repo, only, NULL, cb, ud);
}
