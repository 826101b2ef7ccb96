/* hubload.c — what the mount presents at startup: every repo model
 * persisted in the store, and each --repo resolved on the Hub.
 *
 * For `--repo [models/|datasets/|spaces/]org/name[@rev]` (rev: main):
 *   zn_hub_revision(rev) -> commit sha + lastModified,
 *   zn_hub_tree(sha)     -> the commit's files (path, size, git oid, LFS
 *                           sha256, Xet hash),
 *   zn_hub_xet_token(sha) -> alongside the tree (first 8 --repo's): the Xet
 *                           read token, kept in fs->tokseeds for the read
 *                           path's hub (zf_tokseeds_give), so that the first
 *                           read after the mount does not wait for one,
 *   zn_hub_repo_info_anon -> the repo info asked WITHOUT the token: the
 *                           visibility verdict (public only for private and
 *                           gated false; see verdict()), kept in the model as
 *                           "visibility" and deciding what peers get (p2p.c),
 * merged into the persisted model of that repo (refs[rev] = sha unless rev
 * is the sha itself; commits[sha] replaced; older commits kept, so a
 * remount still presents every snapshot it presented before), validated by
 * zf_repo_from_json, persisted as store metadata "repo/<type>/<id>" and
 * presented.  Offline, or when the Hub answer does not come, the persisted
 * model is presented as it is.
 *
 * This runs before the FUSE session is mounted (and before the process
 * daemonizes), on a private uv loop that is closed again before returning,
 * so nothing of it survives into the mount's loop (but the tokens' copies).  Store calls are made
 * directly: nothing else runs yet. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"
#include "log.h"
#include "hubload_int.h"
#include "p2p.h"
#include "refs.h"
#include "present.h"
#include "read.h"
#include "hubload.h"
#include "tokseed.h"
#include "zfs.h"

/* ---- one --repo --------------------------------------------------------- */

/* "[models/|datasets/|spaces/]org/name[@rev]" */
int parse_spec(const char *spec, job *j)
{
    const char *p = spec;
    j->type = ZF_MODEL;
    if (!strncmp(p, "models/", 7))
        p += 7;
    else if (!strncmp(p, "datasets/", 9)) {
        j->type = ZF_DATASET;
        p += 9;
    } else if (!strncmp(p, "spaces/", 7)) {
        j->type = ZF_SPACE;
        p += 7;
    }
    const char *at = strchr(p, '@');
    size_t n = at ? (size_t)(at - p) : strlen(p);
    if (n == 0 || n >= sizeof j->id)
        return -EINVAL;
    memcpy(j->id, p, n);
    j->id[n] = 0;
    snprintf(j->rev, sizeof j->rev, "%s", at ? at + 1 : "main");
    if (!zf_valid_repo_id(j->id) || !zf_valid_rev(j->rev) || strlen(at ? at + 1 : "") >= sizeof j->rev)
        return -EINVAL;
    snprintf(j->key, sizeof j->key, "repo/%s/%s", zf_type_name(j->type), j->id);
    return 0;
}

static cJSON *obj_member(cJSON *parent, const char *name)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (cJSON_IsObject(o))
        return o;
    cJSON_DeleteItemFromObjectCaseSensitive(parent, name);
    return cJSON_AddObjectToObject(parent, name);
}

/* The page where access to a gated repo is asked for. */
static char *gated_url(const job *j)
{
    const char *ep = j->hub ? zn_hub_endpoint(j->hub) : "https://huggingface.co";
    const char *id = j->revision.id[0] ? j->revision.id : j->id;
    const char *pfx = j->type == ZF_DATASET ? "datasets/" : j->type == ZF_SPACE ? "spaces/" : "";
    char *u = NULL;
    if (asprintf(&u, "%s/%s%s", ep, pfx, id) < 0)
        u = NULL;
    return u;
}

/* The persisted model (if any) with this commit and ref added. */
static char *merged_json(job *j, const zn_tree *t)
{
    const zf_repo *old = zf_fs_find_repo(j->fs, j->type, j->id);
    cJSON *root = NULL;
    if (old) {
        char *s = zf_repo_to_json(old);
        root = s ? cJSON_Parse(s) : NULL;
        free(s);
    }
    if (!root)
        root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "format");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "type");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "id");
    cJSON_AddNumberToObject(root, "format", 1);
    cJSON_AddStringToObject(root, "type", zf_type_name(j->type));
    cJSON_AddStringToObject(root, "id", j->id);
    /* renamed: presented under the name asked for, the Hub's name kept */
    cJSON_DeleteItemFromObjectCaseSensitive(root, "canonical");
    if (j->revision.id[0] && strcmp(j->revision.id, j->id) != 0)
        cJSON_AddStringToObject(root, "canonical", j->revision.id);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "gated_url");
    if (j->no_access) {
        char *url = gated_url(j);
        if (url)
            cJSON_AddStringToObject(root, "gated_url", url);
        free(url);
    }
    cJSON *refs = obj_member(root, "refs");
    cJSON *commits = obj_member(root, "commits");
    const char *sha = j->revision.sha;
    if (strcmp(j->rev, sha) != 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(refs, j->rev);
        cJSON_AddStringToObject(refs, j->rev, sha);
        /* the Hub's answer is newer than any value a client wrote (ops.c) */
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "ref_written"),
                                                j->rev);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(commits, sha);
    cJSON *c = cJSON_AddObjectToObject(commits, sha);
    int64_t date = j->revision.last_modified ? j->revision.last_modified : (int64_t)time(NULL);
    cJSON_AddNumberToObject(c, "date", (double)date);
    cJSON *files = cJSON_AddArrayToObject(c, "files");
    for (size_t i = 0; i < t->n; i++) {
        const zn_tree_entry *e = &t->e[i];
        if (e->is_dir)
            continue;
        if (!zf_valid_path(e->path)) {
            zf_log(ZF_LOG_WARN, "zestfs: %s: skipping unsafe path in the tree listing\n", j->id);
            continue;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "path", e->path);
        cJSON_AddNumberToObject(f, "size", (double)e->size);
        cJSON_AddStringToObject(f, "oid", e->oid);
        if (e->lfs_sha256[0])
            cJSON_AddStringToObject(f, "lfs_sha256", e->lfs_sha256);
        if (e->xet_hash[0])
            cJSON_AddStringToObject(f, "xet_hash", e->xet_hash);
        cJSON_AddItemToArray(files, f);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "visibility");
    cJSON *v = cJSON_AddObjectToObject(root, "visibility");
    cJSON_AddStringToObject(v, "verdict", zf_vis_name(j->vis));
    cJSON_AddNumberToObject(v, "checked", (double)time(NULL));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void finish(job *j, int err)
{
    j->err = err;
    j->done = true;
    j->on_done(j);
}

/* The anonymous repo info's answer as a verdict: public only for a 200 that
 * says "private": false and "gated": false (a gated repo answers anyone 200
 * with "gated": "auto"/"manual"); a refusal (401/403/404) is private; no
 * answer at all (network, 5xx, a body without the fields) is unknown.  Only
 * public is served. */
static enum zf_visibility verdict(int err, const zn_repo_info *in)
{
    if (err == -ENOENT || err == -EACCES || err == -EPERM)
        return ZF_VIS_PRIVATE;
    if (err || !in)
        return ZF_VIS_UNKNOWN;
    if (in->has_gated && in->gated)
        return ZF_VIS_GATED;
    if (in->has_private && in->private_)
        return ZF_VIS_PRIVATE;
    return in->has_private && in->has_gated ? ZF_VIS_PUBLIC : ZF_VIS_UNKNOWN;
}

static void tree_merge(job *j, zn_tree *t)
{
    int err;
    if (j->no_access) {
        char *url = gated_url(j);
        zf_log(ZF_LOG_WARN,
               "zestfs: %s/%s: gated on the Hub and not accessible with %s: its files are listed, "
               "reading them fails (EACCES); ask for access at %s\n",
               zf_type_plural(j->type), j->id, j->hub && zn_hub_has_token(j->hub) ? "this token" : "no token",
               url ? url : "the repo's page");
        free(url);
    }
    char *json = merged_json(j, t);
    zn_tree_free(t);
    zf_repo *r = NULL;
    err = json ? zf_repo_from_json(json, strlen(json), &r) : -ENOMEM;
    free(json);
    if (err) {
        finish(j, err);
        return;
    }
    j->json = zf_repo_to_json(r);
    if (!j->json) {
        zf_repo_free(r);
        finish(j, -ENOMEM);
        return;
    }
    j->repo = r;
    finish(j, 0);
}

static void on_info(void *ud, int err, const zn_repo_info *in)
{
    job *j = ud;
    zn_tree *t = j->tree;
    j->tree = NULL;
    if (err == -ECANCELED) {
        zn_tree_free(t);
        finish(j, err);
        return;
    }
    j->vis = verdict(err, in);
    const zf_repo *old = zf_fs_find_repo(j->fs, j->type, j->id);
    if (old && old->vis == j->vis)
        ; /* said before */
    else if (j->vis == ZF_VIS_UNKNOWN)
        zf_log(ZF_LOG_WARN, "zestfs: %s/%s: no answer to the anonymous repo info (%s): "
               "visibility unknown, not shared with peers\n", zf_type_plural(j->type), j->id,
               err ? zf_strerror(-err) : "no private/gated fields");
    else
        zf_log(ZF_LOG_INFO, "zestfs: %s/%s: %s on the Hub: %s\n", zf_type_plural(j->type), j->id,
               zf_vis_name(j->vis), j->vis == ZF_VIS_PUBLIC ? "shared with peers"
               : "not shared with peers (unless --seed-private)");
    tree_merge(j, t);
}

/* The listing is in (hashes a gated tree hid asked for): ask the Hub, without
 * the token, whether anyone may read the repo (the verdict is kept with the
 * model and decides seeding). */
static void ask_info(job *j)
{
    int err = zn_hub_repo_info_anon(j->hub, (zn_repo_type)j->type, j->id, on_info, j, NULL);
    if (err) /* the hub is closing: cancelled; else: not checked, unknown */
        on_info(j, err == -ESHUTDOWN ? -ECANCELED : err, NULL);
}

/* A gated repo: huggingface_hub treats a redacted xetHash as absent and asks
 * HEAD resolve (X-Xet-Hash) per file; a GatedRepo answer there means the
 * token has no access (files listed, reads refused).  A gated repo whose
 * tree hides nothing is probed with one file. */
#define PROBES_IN_FLIGHT 8

typedef struct probe {
    job *j;
    size_t i;
} probe;

static void probe_pump(job *j);

static void on_probe(void *ud, int err, const zn_resolve_info *in)
{
    probe *p = ud;
    job *j = p->j;
    size_t i = p->i;
    free(p);
    j->inflight--;
    if (err == -EACCES || err == -EPERM)
        j->no_access = true;
    else if (err == -ENOENT)
        ; /* gone since the listing: stays without a hash */
    else if (err && !j->perr)
        j->perr = err;
    else if (!err && in && in->xet_hash[0] && j->tree->e[i].xet_redacted) {
        memcpy(j->tree->e[i].xet_hash, in->xet_hash, sizeof j->tree->e[i].xet_hash);
        j->tree->e[i].xet_redacted = false;
    }
    probe_pump(j);
}

static void probe_pump(job *j)
{
    zn_tree *t = j->tree;
    while (!j->no_access && !j->perr && j->inflight < PROBES_IN_FLIGHT && j->next < t->n) {
        size_t i = j->next++;
        const zn_tree_entry *e = &t->e[i];
        if (e->is_dir || (t->redacted ? !e->xet_redacted : j->probed) || !zf_valid_path(e->path))
            continue;
        j->probed = true;
        probe *p = malloc(sizeof *p);
        int err = p ? 0 : -ENOMEM;
        if (p) {
            p->j = j;
            p->i = i;
            err = zn_hub_resolve(j->hub, (zn_repo_type)j->type, j->id, j->revision.sha, e->path,
                                 on_probe, p, NULL);
        }
        if (err) {
            free(p);
            j->perr = err;
            break;
        }
        j->inflight++;
    }
    if (j->inflight > 0 || (j->next < t->n && !j->no_access && !j->perr))
        return;
    if (j->perr) {
        j->tree = NULL;
        zn_tree_free(t);
        finish(j, j->perr);
        return;
    }
    ask_info(j);
}

static void on_tree(void *ud, int err, zn_tree *t)
{
    job *j = ud;
    if (err) {
        finish(j, err);
        return;
    }
    j->tree = t;
    if (t->redacted || j->revision.gated) {
        j->next = 0;
        probe_pump(j);
        return;
    }
    ask_info(j);
}

/* Startup: persist (nothing else runs yet) and present. */
static void startup_done(job *j)
{
    if (j->err)
        return;
    int perr = zc_meta_put(j->store, j->key, j->json, strlen(j->json), ZC_PUT_FSYNC);
    if (perr)
        zf_log(ZF_LOG_WARN, "zestfs: %s: persisting the repo model: %s\n", j->spec, zf_strerror(-perr));
    free(j->json);
    j->json = NULL;
    int err = zf_fs_add_repo(j->fs, j->repo);
    if (err) {
        zf_repo_free(j->repo);
        j->err = err;
    }
    j->repo = NULL;
}

void on_revision(void *ud, int err, const zn_revision *rev)
{
    job *j = ud;
    if (err) {
        finish(j, err);
        return;
    }
    j->revision = *rev;
    const zf_repo *r = j->refresh || j->lookup ? zf_fs_find_repo(j->fs, j->type, j->id) : NULL;
    if (r && zf_repo_commit(r, rev->sha)) { /* a presented commit: no tree needed */
        bool same = strcmp(j->rev, rev->sha) == 0;
        for (size_t i = 0; r && i < r->nrefs && !same; i++)
            same = strcmp(r->refs[i].name, j->rev) == 0 && strcmp(r->refs[i].sha, rev->sha) == 0;
        if (same) {
            finish(j, 0); /* unchanged: j->repo stays NULL */
            return;
        }
        /* the ref (re)set to it, as the Hub's value (a client's replaced) */
        zf_repo *nr = zf_repo_with_ref(r, j->rev, rev->sha, 0);
        char *json = nr ? zf_repo_to_json(nr) : NULL;
        if (json) {
            j->repo = nr;
            j->json = json;
            finish(j, 0);
            return;
        }
        zf_repo_free(nr); /* else the whole way */
    }
    err = zn_hub_tree(j->hub, (zn_repo_type)j->type, j->id, rev->sha, on_tree, j, NULL);
    if (err)
        finish(j, err);
}

/* ---- Xet read tokens ahead of the mount -------------------------------------- */

#define TOKENS_AHEAD 8 /* --repo's whose token is asked at startup: no more, however many */

typedef struct tok_ask {
    zf_fs *fs;
    enum zf_repo_type type;
    char id[256];
    char sha[41];
} tok_ask;

static void on_startup_token(void *ud, int err, const zn_xet_token *t)
{
    tok_ask *a = ud;
    if (!err)
        err = zf_tokseeds_add(a->fs, a->type, a->id, a->sha, t);
    /* not an error: the read path asks again (-ECANCELED: not in by the end of the listings) */
    if (err)
        zf_debug("zestfs: %s/%s: Xet read token at startup: %s\n", zf_type_plural(a->type), a->id,
                 zf_strerror(-err));
    free(a);
}

/* Startup: the commit is known; its Xet read token is asked alongside the
 * tree listing (no round trip of its own before the mount). */
static void startup_revision(void *ud, int err, const zn_revision *rev)
{
    job *j = ud;
    tok_ask *a = !err && rev ? calloc(1, sizeof *a) : NULL;
    if (a) {
        a->fs = j->fs;
        a->type = j->type;
        memcpy(a->id, j->id, sizeof a->id);
        snprintf(a->sha, sizeof a->sha, "%s", rev->sha);
        if (zn_hub_xet_token(j->hub, (zn_repo_type)j->type, j->id, rev->sha, false, on_startup_token,
                             a, NULL) != 0)
            free(a);
    }
    on_revision(ud, err, rev);
}

/* ---- persisted models ------------------------------------------------------ */

typedef struct keys {
    char **v;
    size_t n;
} keys;

static int collect(void *ud, const char *key)
{
    keys *k = ud;
    char **nv = realloc(k->v, (k->n + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    k->v = nv;
    if (!(k->v[k->n] = strdup(key)))
        return -ENOMEM;
    k->n++;
    return 0;
}

static void load_persisted(zf_fs *fs, zc_store *store)
{
    keys k = {0};
    int rc = zc_meta_list(store, "repo/", collect, &k);
    if (rc < 0)
        zf_log(ZF_LOG_WARN, "zestfs: listing stored repos: %s\n", zf_strerror(-rc));
    for (size_t i = 0; i < k.n; i++) {
        void *data;
        size_t len;
        zf_repo *r = NULL;
        rc = zc_meta_get(store, k.v[i], &data, &len);
        if (rc == 0) {
            rc = zf_repo_from_json(data, len, &r);
            free(data);
        }
        if (rc == 0 && (rc = zf_fs_add_repo(fs, r)) != 0)
            zf_repo_free(r);
        if (rc)
            zf_log(ZF_LOG_WARN, "zestfs: stored %s: %s\n", k.v[i], zf_strerror(-rc));
        free(k.v[i]);
    }
    free(k.v);
}

/* Is `rev` (a ref name or a commit) known to a presented model? */
static bool has_rev(const zf_repo *r, const char *rev)
{
    if (!r)
        return false;
    for (size_t i = 0; i < r->nrefs; i++)
        if (strcmp(r->refs[i].name, rev) == 0)
            return true;
    return zf_repo_commit(r, rev) != NULL;
}

/* A bad or expired Hub token (-EKEYREVOKED) is said once per process, and
 * then no more for every repo it fails: true when this line is a repeat. */
bool token_log_once(int err)
{
    static bool said;
    if (err != -EKEYREVOKED)
        return false;
    if (said)
        return true;
    said = true;
    return false;
}

int zf_load_repos(zf_fs *fs, const zf_opts *o, zc_store *store)
{
    fs->store = store;
    load_persisted(fs, store);
    zf_absorb_overlay_refs(fs); /* before the Hub refresh, which wins over them */
    if (o->nrepos == 0)
        return 0;
    job *jobs = calloc(o->nrepos, sizeof *jobs);
    if (!jobs)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < o->nrepos; i++) {
        jobs[i].fs = fs;
        jobs[i].store = store;
        jobs[i].spec = o->repos[i];
        jobs[i].on_done = startup_done;
        if (parse_spec(o->repos[i], &jobs[i]) != 0) {
            zf_log(ZF_LOG_WARN, "zestfs: --repo %s: not [datasets/]org/name[@rev]\n", o->repos[i]);
            free(jobs);
            return -EINVAL;
        }
        jobs[i].err = -ENETDOWN;
        jobs[i].done = true;
    }
    if (!o->offline) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        zn_http_opts ho = {.cacert = o->cacert};
        zn_http *http = zn_http_new(&loop, &ho);
        zn_hub_opts hopts = {
            .endpoint = o->endpoint,
            .token = o->token,
            /* a 429 at startup is waited out, however long the Hub asks */
            .retry = {.max_attempts = 3, .base_ms = 500, .max_delay_ms = 4000,
                      .deadline_ms = 20000, .ratelimit_wait_ms = UINT32_MAX},
        };
        zn_hub *hub = http ? zn_hub_new(http, &hopts) : NULL;
        if (hub) {
            for (size_t i = 0; i < o->nrepos; i++) {
                job *j = &jobs[i];
                j->hub = hub;
                j->done = false;
                int err = zn_hub_revision(hub, (zn_repo_type)j->type, j->id, j->rev,
                                          i < TOKENS_AHEAD ? startup_revision : on_revision, j,
                                          NULL);
                if (err)
                    finish(j, err);
            }
            for (;;) {
                bool all = true;
                for (size_t i = 0; i < o->nrepos; i++)
                    all = all && jobs[i].done;
                if (all)
                    break;
                uv_run(&loop, UV_RUN_ONCE);
            }
        } else
            zf_log(ZF_LOG_WARN, "zestfs: cannot start the HTTP client\n");
        zn_hub_free(hub);
        zn_http_free(http);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    for (size_t i = 0; i < o->nrepos && rc == 0; i++) {
        job *j = &jobs[i];
        if (j->err == 0)
            continue;
        const zf_repo *r = zf_fs_find_repo(fs, j->type, j->id);
        bool known = has_rev(r, j->rev);
        bool absent = j->err == -ENOENT || j->err == -EACCES || j->err == -EPERM;
        if (!o->offline && !token_log_once(j->err))
            zf_log(ZF_LOG_WARN, "zestfs: %s: %s%s\n", j->spec,
                    j->err == -EACCES ? "refused by the Hub (gated or private: no access with this token)"
                    : absent          ? "not found on the Hub"
                                      : zf_strerror(-j->err),
                    known ? "; presenting the stored copy" : "");
        if (!known) {
            if (o->offline || !absent)
                zf_log(ZF_LOG_WARN, "zestfs: %s: not in the store (%s)\n", j->spec,
                        o->offline                    ? "offline"
                        : j->err == -EKEYREVOKED      ? "the Hub refused the token"
                        : j->err == -EUSERS           ? "the Hub rate-limited us"
                                                      : "the Hub could not be reached");
            rc = absent ? -ENOENT : -EHOSTUNREACH;
        }
    }
    free(jobs);
    return rc;
}

/* ---- resolve repo@rev while mounted (pull) ---------------------------------- */

typedef struct rs_job {
    job j;
    zc_store *store;
    zf_resolve_cb cb;
    void *ud;
    char commit[41];
    int err;
    uv_timer_t timer;        /* delivers answers that need no network */
    uv_work_t work;
    int perr;
} rs_job;

/* The commit `rev` names in a presented model (a ref, or a commit itself). */
static bool local_commit(const zf_repo *r, const char *rev, char out[41])
{
    if (!r)
        return false;
    for (size_t i = 0; i < r->nrefs; i++)
        if (strcmp(r->refs[i].name, rev) == 0 && zf_repo_commit(r, r->refs[i].sha)) {
            memcpy(out, r->refs[i].sha, 41);
            return true;
        }
    const zf_commit *c = zf_repo_commit(r, rev);
    if (c) {
        memcpy(out, c->sha, 41);
        return true;
    }
    return false;
}

static void rs_closed(uv_handle_t *h)
{
    rs_job *r = h->data;
    const zf_repo *repo = zf_fs_find_repo(r->j.fs, r->j.type, r->j.id);
    r->cb(r->ud, r->err, r->err ? NULL : repo, r->err ? NULL : r->commit);
    free(r);
}

static void rs_deliver(rs_job *r, int err)
{
    if (err && local_commit(zf_fs_find_repo(r->j.fs, r->j.type, r->j.id), r->j.rev, r->commit)) {
        if (err != -ENETDOWN)
            zf_log(ZF_LOG_WARN, "zestfs: %s/%s@%s: %s; using the stored model\n",
                    zf_type_plural(r->j.type), r->j.id, r->j.rev, zf_strerror(-err));
        err = 0;
    }
    r->err = err;
    uv_close((uv_handle_t *)&r->timer, rs_closed);
}

static void rs_persist_work(uv_work_t *w)
{
    rs_job *r = w->data;
    r->perr = zc_meta_put(r->store, r->j.key, r->j.json, strlen(r->j.json), 0);
}

static void rs_persist_after(uv_work_t *w, int status)
{
    rs_job *r = w->data;
    if (r->perr)
        zf_log(ZF_LOG_WARN, "zestfs: %s: persisting the repo model: %s\n", r->j.id,
                zf_strerror(-r->perr));
    free(r->j.json);
    r->j.json = NULL;
    rs_deliver(r, 0);
}

static void rs_done(job *j)
{
    rs_job *r = (rs_job *)((char *)j - offsetof(rs_job, j));
    if (j->err) {
        free(j->json);
        j->json = NULL;
        rs_deliver(r, j->err);
        return;
    }
    snprintf(r->commit, sizeof r->commit, "%s", j->revision.sha);
    int err = zf_fs_add_repo(j->fs, j->repo);
    if (err) {
        zf_repo_free(j->repo);
        j->repo = NULL;
        free(j->json);
        j->json = NULL;
        rs_deliver(r, err);
        return;
    }
    j->repo = NULL;
    r->work.data = r;
    if (uv_queue_work(j->fs->loop, &r->work, rs_persist_work, rs_persist_after) != 0) {
        free(j->json);
        j->json = NULL;
        rs_deliver(r, 0);
    }
}

static void rs_timer(uv_timer_t *t)
{
    rs_deliver(t->data, -ENETDOWN);
}

int zf_resolve_repo(zf_fs *fs, zc_store *store, const char *spec, zf_resolve_cb cb, void *ud)
{
    rs_job *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    if (parse_spec(spec, &r->j) != 0) {
        free(r);
        return -EINVAL;
    }
    r->j.fs = fs;
    r->j.store = store;
    r->j.spec = r->j.id;
    r->j.on_done = rs_done;
    r->store = store;
    r->cb = cb;
    r->ud = ud;
    uv_timer_init(fs->loop, &r->timer);
    r->timer.data = r;
    zn_hub *hub = zf_read_hub(fs);
    r->j.hub = hub;
    if (!hub ||
        zn_hub_revision(hub, (zn_repo_type)r->j.type, r->j.id, r->j.rev, on_revision, &r->j,
                        NULL) != 0)
        uv_timer_start(&r->timer, rs_timer, 0, 0); /* offline: the stored model, if any */
    return 0;
}
