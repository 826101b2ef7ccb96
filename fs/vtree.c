/* vtree.c — resolving mount-relative paths to the virtual entries of the
 * presented repos.  Layout per repo folder F (spec/hf-cache.md §4.5):
 *
 *   F/refs/<rev>                      ZV_REF (nested dirs for '/' in rev)
 *   F/snapshots/<c>/<dirs>/<file>     ZV_DIR / ZV_LINK
 *   F/blobs/<etag>                    ZV_BLOB
 *   F/.no_exist/<c>/<p>               ZV_EMPTY for p not in c (lookup only)
 *   F/trees/<c>.json                  ZV_TREEJSON
 *   .locks/F/                         ZV_DIR (empty)
 *
 * A repo-at tree (vtree.h) has another layout: "" the root, "<c>" and
 * "<c>/<dirs>" ZV_DIR, "<c>/<dirs>/<file>" ZV_BLOB.
 */
#include "vtree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t repo_mtime(const zf_repo *r)
{
    int64_t m = 0;
    for (size_t i = 0; i < r->ncommits; i++)
        if (r->commits[i].date > m)
            m = r->commits[i].date;
    return m;
}

static const zf_repo *find_repo(const zv_tree *t, const char *folder, size_t n)
{
    for (size_t i = 0; i < t->nrepos; i++)
        if (strlen(t->repos[i]->folder) == n && strncmp(t->repos[i]->folder, folder, n) == 0)
            return t->repos[i];
    return NULL;
}

static bool dir(zv_ent *out, const zf_repo *r, int64_t mtime)
{
    memset(out, 0, sizeof *out);
    out->kind = ZV_DIR;
    out->repo = r;
    out->mtime = mtime;
    return true;
}

/* Is `prefix` ("a/b") a proper directory prefix of some ref name? */
static bool ref_dir(const zf_repo *r, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < r->nrefs; i++)
        if (strncmp(r->refs[i].name, prefix, n) == 0 && r->refs[i].name[n] == '/')
            return true;
    return false;
}

/* File f of commit c of repo r. */
static bool blob(zv_ent *out, const zf_repo *r, const zf_commit *c, const zf_file *f)
{
    memset(out, 0, sizeof *out);
    out->kind = ZV_BLOB;
    out->repo = r;
    out->commit = c;
    out->file = f;
    out->size = f->size;
    out->mtime = c->date;
    return true;
}

/* ---- repo-at trees ------------------------------------------------------ */

static const zf_repo *at_repo(const zv_tree *t)
{
    const zv_tree *src = t->base ? t->base : t;
    return find_repo(src, t->at_folder, strlen(t->at_folder));
}

const zf_commit *zv_at_commit(const zv_tree *t)
{
    const zf_repo *r = t->at_folder ? at_repo(t) : NULL;
    if (!r)
        return NULL;
    for (size_t i = 0; i < r->nrefs; i++)
        if (strcmp(r->refs[i].name, t->at_rev) == 0)
            return zf_repo_commit(r, r->refs[i].sha);
    return zf_repo_commit(r, t->at_rev);
}

/* "<40 hex>[/path]": the commit (presented) and the rest (NULL: none) */
static const zf_commit *at_split(const zf_repo *r, const char *path, const char **rest)
{
    size_t cl = strcspn(path, "/");
    if (cl != 40)
        return NULL;
    char sha[41];
    memcpy(sha, path, 40);
    sha[40] = 0;
    *rest = path[40] == '/' ? path + 41 : NULL;
    return zf_repo_commit(r, sha);
}

static bool at_resolve(const zv_tree *t, const char *path, zv_ent *out)
{
    const zf_repo *r = at_repo(t);
    if (!path[0]) {
        const zf_commit *c = zv_at_commit(t);
        dir(out, r, c ? c->date : 0);
        out->commit = c;
        return true;
    }
    const char *fp;
    const zf_commit *c = r ? at_split(r, path, &fp) : NULL;
    if (!c)
        return false;
    if (!fp) {
        dir(out, r, c->date);
        out->commit = c;
        return true;
    }
    if (!zf_valid_path(fp))
        return false;
    const zf_file *f = zf_commit_file(c, fp);
    if (!f) {
        if (!zf_commit_is_dir(c, fp))
            return false;
        dir(out, r, c->date);
        out->commit = c;
        return true;
    }
    return blob(out, r, c, f);
}

static void list_components(const char *const *names, size_t count, size_t stride,
                            const char *prefix, enum zv_kind leaf, zv_name_cb cb, void *ud);

static void at_list(const zv_tree *t, const char *path, zv_name_cb cb, void *ud)
{
    const zf_repo *r = at_repo(t);
    const char *sub = NULL;
    const zf_commit *c = !r ? NULL : path[0] ? at_split(r, path, &sub) : zv_at_commit(t);
    if (!c || !c->nfiles)
        return;
    char *prefix = malloc((sub ? strlen(sub) : 0) + 2);
    if (!prefix)
        return;
    if (sub && sub[0])
        sprintf(prefix, "%s/", sub);
    else
        prefix[0] = 0;
    list_components((const char *const *)&c->files[0].path, c->nfiles, sizeof(zf_file), prefix,
                    ZV_BLOB, cb, ud);
    free(prefix);
}

/* ---- the HF cache layout ------------------------------------------------ */

bool zv_resolve(const zv_tree *t, const char *path, zv_ent *out)
{
    memset(out, 0, sizeof *out);
    if (t->at_folder)
        return at_resolve(t, path, out);
    if (!path[0])
        return dir(out, NULL, 0);
    const char *slash = strchr(path, '/');
    size_t n0 = slash ? (size_t)(slash - path) : strlen(path);
    if (n0 == 6 && strncmp(path, ".locks", 6) == 0) {
        if (!slash)
            return dir(out, NULL, 0);
        const char *rest = slash + 1;
        if (strchr(rest, '/'))
            return false;
        const zf_repo *r = find_repo(t, rest, strlen(rest));
        return r ? dir(out, r, repo_mtime(r)) : false;
    }
    const zf_repo *r = find_repo(t, path, n0);
    if (!r)
        return false;
    int64_t mt = repo_mtime(r);
    if (!slash)
        return dir(out, r, mt);
    const char *p = slash + 1;
    const char *s2 = strchr(p, '/');
    size_t n1 = s2 ? (size_t)(s2 - p) : strlen(p);
    const char *rest = s2 ? s2 + 1 : NULL;

    if (n1 == 4 && strncmp(p, "refs", 4) == 0) {
        if (!rest)
            return dir(out, r, mt);
        for (size_t i = 0; i < r->nrefs; i++)
            if (strcmp(r->refs[i].name, rest) == 0) {
                out->kind = ZV_REF;
                out->repo = r;
                out->ref = &r->refs[i];
                out->commit = zf_repo_commit(r, r->refs[i].sha);
                out->size = 40;
                /* a value a client wrote: when it wrote it (ops.c) */
                out->mtime = r->refs[i].written ? r->refs[i].written : mt;
                return true;
            }
        return ref_dir(r, rest) ? dir(out, r, mt) : false;
    }
    if (n1 == 5 && strncmp(p, "blobs", 5) == 0) {
        if (!rest)
            return dir(out, r, mt);
        const zf_commit *c;
        const zf_file *f = zf_repo_blob(r, rest, &c);
        if (!f)
            return false;
        return blob(out, r, c, f);
    }
    if (n1 == 5 && strncmp(p, "trees", 5) == 0) {
        if (!rest)
            return dir(out, r, mt);
        size_t rl = strlen(rest);
        if (rl != 45 || strcmp(rest + 40, ".json") != 0)
            return false;
        char sha[41];
        memcpy(sha, rest, 40);
        sha[40] = 0;
        const zf_commit *c = zf_repo_commit(r, sha);
        if (!c)
            return false;
        out->kind = ZV_TREEJSON;
        out->repo = r;
        out->commit = c;
        size_t len;
        char *js = zv_content(out, &len);
        free(js);
        out->size = len;
        out->mtime = c->date;
        return true;
    }
    bool snap = n1 == 9 && strncmp(p, "snapshots", 9) == 0;
    bool noex = n1 == 9 && strncmp(p, ".no_exist", 9) == 0;
    if (!snap && !noex)
        return false;
    if (!rest)
        return dir(out, r, mt);
    const char *s3 = strchr(rest, '/');
    size_t cl = s3 ? (size_t)(s3 - rest) : strlen(rest);
    if (cl != 40)
        return false;
    char sha[41];
    memcpy(sha, rest, 40);
    sha[40] = 0;
    const zf_commit *c = zf_repo_commit(r, sha);
    if (!c)
        return false;
    if (!s3)
        return dir(out, r, c->date);
    const char *fp = s3 + 1;
    if (!zf_valid_path(fp))
        return false;
    const zf_file *f = zf_commit_file(c, fp);
    if (snap) {
        if (f) {
            out->kind = ZV_LINK;
            out->repo = r;
            out->commit = c;
            out->file = f;
            out->mtime = c->date;
            char *tgt = zv_link_target(out);
            out->size = tgt ? strlen(tgt) : 0;
            free(tgt);
            return true;
        }
        return zf_commit_is_dir(c, fp) ? dir(out, r, c->date) : false;
    }
    /* .no_exist: positive for paths absent from the commit */
    if (f)
        return false;
    if (zf_commit_is_dir(c, fp))
        return dir(out, r, c->date);
    out->kind = ZV_EMPTY;
    out->repo = r;
    out->commit = c;
    out->mtime = c->date;
    return true;
}

/* ---- listing ------------------------------------------------------------ */

struct seen {
    char **names;
    size_t n, cap;
};

static bool seen_add(struct seen *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->names[i]) == len && strncmp(s->names[i], name, len) == 0)
            return false;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->names = realloc(s->names, s->cap * sizeof *s->names);
    }
    s->names[s->n++] = strndup(name, len);
    return true;
}

static void seen_free(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
}

/* Emit the distinct next components of `names` under `prefix` (with a
 * trailing '/', or "" for the top). */
static void list_components(const char *const *names, size_t count, size_t stride,
                            const char *prefix, enum zv_kind leaf, zv_name_cb cb, void *ud)
{
    size_t pl = strlen(prefix);
    struct seen s = {0};
    for (size_t i = 0; i < count; i++) {
        const char *nm = *(const char *const *)((const char *)names + i * stride);
        if (strncmp(nm, prefix, pl) != 0)
            continue;
        const char *c = nm + pl;
        const char *sl = strchr(c, '/');
        size_t cl = sl ? (size_t)(sl - c) : strlen(c);
        if (cl && seen_add(&s, c, cl)) {
            char *x = strndup(c, cl);
            cb(ud, x, sl ? ZV_DIR : leaf);
            free(x);
        }
    }
    seen_free(&s);
}

void zv_list(const zv_tree *t, const char *path, zv_name_cb cb, void *ud)
{
    zv_ent e;
    if (!zv_resolve(t, path, &e) || e.kind != ZV_DIR)
        return;
    if (t->at_folder) {
        at_list(t, path, cb, ud);
        return;
    }
    if (!path[0]) {
        for (size_t i = 0; i < t->nrepos; i++)
            cb(ud, t->repos[i]->folder, ZV_DIR);
        if (t->nrepos)
            cb(ud, ".locks", ZV_DIR);
        return;
    }
    if (strcmp(path, ".locks") == 0) {
        for (size_t i = 0; i < t->nrepos; i++)
            cb(ud, t->repos[i]->folder, ZV_DIR);
        return;
    }
    if (strncmp(path, ".locks/", 7) == 0)
        return;
    const zf_repo *r = e.repo;
    const char *p = path + strlen(r->folder);
    if (!*p) {
        cb(ud, "refs", ZV_DIR);
        cb(ud, "blobs", ZV_DIR);
        cb(ud, "snapshots", ZV_DIR);
        cb(ud, "trees", ZV_DIR);
        return;
    }
    p++;
    if (strncmp(p, "refs", 4) == 0 && (p[4] == 0 || p[4] == '/')) {
        char *prefix = p[4] ? malloc(strlen(p + 5) + 2) : strdup("");
        if (p[4])
            sprintf(prefix, "%s/", p + 5);
        list_components((const char *const *)&r->refs[0].name, r->nrefs, sizeof(zf_ref), prefix,
                        ZV_REF, cb, ud);
        free(prefix);
        return;
    }
    if (strcmp(p, "blobs") == 0) {
        struct seen s = {0};
        for (size_t i = 0; i < r->ncommits; i++)
            for (size_t k = 0; k < r->commits[i].nfiles; k++) {
                const char *et = r->commits[i].files[k].etag;
                if (seen_add(&s, et, strlen(et)))
                    cb(ud, et, ZV_BLOB);
            }
        seen_free(&s);
        return;
    }
    if (strcmp(p, "trees") == 0) {
        for (size_t i = 0; i < r->ncommits; i++) {
            char nm[48];
            snprintf(nm, sizeof nm, "%s.json", r->commits[i].sha);
            cb(ud, nm, ZV_TREEJSON);
        }
        return;
    }
    if (strcmp(p, "snapshots") == 0) {
        for (size_t i = 0; i < r->ncommits; i++)
            cb(ud, r->commits[i].sha, ZV_DIR);
        return;
    }
    if (strncmp(p, "snapshots/", 10) == 0 && e.commit == NULL) {
        const char *cs = p + 10;
        char sha[41];
        snprintf(sha, sizeof sha, "%.40s", cs);
        const zf_commit *c = zf_repo_commit(r, sha);
        if (!c)
            return;
        const char *sub = cs[40] == '/' ? cs + 41 : "";
        char *prefix = malloc(strlen(sub) + 2);
        if (sub[0])
            sprintf(prefix, "%s/", sub);
        else
            prefix[0] = 0;
        list_components((const char *const *)&c->files[0].path, c->nfiles, sizeof(zf_file), prefix,
                        ZV_LINK, cb, ud);
        free(prefix);
    }
    /* .no_exist is never enumerated */
}

char *zv_link_target(const zv_ent *e)
{
    if (e->kind != ZV_LINK)
        return NULL;
    /* snapshots/<c>/<path>: one "../" per component of path, plus two */
    size_t depth = 2;
    for (const char *s = e->file->path; *s; s++)
        depth += *s == '/';
    char *out = malloc(depth * 3 + 6 + strlen(e->file->etag) + 1), *o = out;
    for (size_t i = 0; i < depth; i++)
        o += sprintf(o, "../");
    sprintf(o, "blobs/%s", e->file->etag);
    return out;
}

char *zv_content(const zv_ent *e, size_t *len)
{
    char *s = NULL;
    if (e->kind == ZV_REF)
        s = strndup(e->ref->sha, 40);
    else if (e->kind == ZV_TREEJSON)
        s = zf_commit_tree_json(e->commit);
    else if (e->kind == ZV_EMPTY)
        s = strdup("");
    *len = s ? strlen(s) : 0;
    return s;
}

uint64_t zv_ino(const char *path)
{
    /* FNV-1a 64, high bit forced so virtual inodes never meet real ones
     * (ext4/xfs inode numbers are far below 2^63) */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h | (1ULL << 63);
}
