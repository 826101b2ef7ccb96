/* ondemand.c — repos and revisions on demand (a lookup of an unknown repo
 * folder at the root, or of a snapshot or ref inside a presented repo,
 * resolved on the Hub while the FUSE request waits), with negative answers
 * remembered, and the refs of presented repos checked again (--refs-ttl).
 * Each load is a hubload.c job; ops.c reaches this through zf_fs_hooks. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hubload_int.h"
#include "log.h"
#include "net.h"
#include "ops.h"
#include "present.h"
#include "read.h"
#include "ondemand.h"
#include "zfs.h"

/* ---- repos on demand ---------------------------------------------------------- */

#define NEG_ABSENT_MS 60000
#define NEG_ERROR_MS 10000
#define TTL_TICK_MS 1000
#define TTL_REPOS_AT_ONCE 4   /* repos whose refs are being checked at a time */

typedef struct od_wait {
    struct od_wait *next;
    fuse_req_t req;
    fuse_ino_t parent;
    char *name;
} od_wait;

struct od_chk;

typedef struct od_load {
    struct od_load *next;
    job j;
    od_wait *w;
    uv_work_t work;
    int perr;
    bool rev;             /* a revision of a presented repo (zf_lookup_rev) */
    struct od_chk *chk;   /* a TTL check of one ref (zf_refs_ttl_start) */
} od_load;

typedef struct od_neg {
    struct od_neg *next;
    enum zf_repo_type type;
    char *id;
    char *rev;            /* NULL: the repo itself */
    uint64_t until;
} od_neg;

/* The refs of one presented repo, checked again once `at` is ttl old; one
 * ref at a time (each moved ref's model is persisted before the next). */
typedef struct od_chk {
    struct od_chk *next;
    enum zf_repo_type type;
    char id[256];
    uint64_t at;          /* loop ms of the last check's end */
    bool busy;
    char **names;         /* the refs being checked */
    size_t nnames, next_name;
} od_chk;

typedef struct od_ctx {
    zf_fs *fs;
    zc_store *store;
    od_load *loads;
    od_neg *negs;
    od_chk *chks;
    uv_timer_t timer;
    uint64_t ttl_ms;
    bool timer_on, stopped;
} od_ctx;

static void chk_next(od_ctx *c, od_chk *k);

static void od_reply(zf_fs *fs, od_wait *w, bool found)
{
    while (w) {
        od_wait *nx = w->next;
        if (found)
            zf_lookup_reply(fs, w->req, w->parent, w->name);
        else
            fuse_reply_err(w->req, ENOENT);
        free(w->name);
        free(w);
        w = nx;
    }
}

static void od_persist_work(uv_work_t *w)
{
    od_load *l = w->data;
    l->perr = zc_meta_put(l->j.store, l->j.key, l->j.json, strlen(l->j.json), 0);
}

static void od_persist_after(uv_work_t *w, int status)
{
    od_load *l = w->data;
    if (l->perr)
        zf_log(ZF_LOG_WARN, "zestfs: %s: persisting the repo model: %s\n", l->j.id, zf_strerror(-l->perr));
    free(l->j.json);
    od_chk *k = l->chk;
    od_ctx *c = l->j.fs->ondemand;
    free(l);
    if (k)
        chk_next(c, k);
}

static void od_unlink(od_ctx *c, od_load *l)
{
    for (od_load **pp = &c->loads; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            return;
        }
}

static void od_remember(od_ctx *c, const job *j, bool absent, const char *rev)
{
    od_neg *n = calloc(1, sizeof *n);
    if (n && (n->id = strdup(j->id)) && (!rev || (n->rev = strdup(rev)))) {
        n->type = j->type;
        n->until = uv_now(j->fs->loop) + (absent ? NEG_ABSENT_MS : NEG_ERROR_MS);
        n->next = c->negs;
        c->negs = n;
    } else if (n) {
        free(n->id);
        free(n);
    }
}

static void od_done(job *j)
{
    od_load *l = (od_load *)((char *)j - offsetof(od_load, j));
    od_ctx *c = j->fs->ondemand;
    od_unlink(c, l);
    od_wait *w = l->w;
    l->w = NULL;
    od_chk *k = l->chk;
    const zf_repo *old = zf_fs_find_repo(j->fs, j->type, j->id);
    /* k && !old: a TTL check of a repo deleted meanwhile (cachedel.c) */
    if (j->err || !j->repo || (old && !l->rev && !k) || (k && !old)) {
        if (j->repo)
            zf_repo_free(j->repo);
        j->repo = NULL;
        bool absent = j->err == -ENOENT || j->err == -EACCES || j->err == -EPERM;
        if (k) { /* a TTL check: the ref stays as it is */
            if (j->err && j->err != -ECANCELED)
                zf_debug("zestfs: %s/%s: checking refs/%s: %s\n", zf_type_plural(j->type), j->id,
                         j->rev, zf_strerror(-j->err));
        } else if (j->err) {
            if (!absent && j->err != -ECANCELED && !token_log_once(j->err))
                zf_log(ZF_LOG_WARN, "zestfs: %s/%s%s%s: %s\n", zf_type_plural(j->type), j->id,
                        l->rev ? "@" : "", l->rev ? j->rev : "", zf_strerror(-j->err));
            od_remember(c, j, absent, l->rev ? j->rev : NULL);
        }
        od_reply(j->fs, w, !j->err);
        free(j->json);
        free(l);
        if (k)
            chk_next(c, k);
        return;
    }
    char was[41] = "";
    for (size_t i = 0; old && i < old->nrefs; i++)
        if (strcmp(old->refs[i].name, j->rev) == 0)
            memcpy(was, old->refs[i].sha, 41);
    int err = zf_fs_add_repo(j->fs, j->repo);
    if (err)
        zf_repo_free(j->repo);
    j->repo = NULL;
    bool moved = was[0] && strcmp(was, j->revision.sha) != 0;
    if (!err && !strcmp(j->rev, j->revision.sha))
        zf_log(ZF_LOG_INFO, "zestfs: %s/%s: snapshots/%.12s presented\n", zf_type_plural(j->type), j->id,
               j->revision.sha);
    else if (!err && (k || l->rev))
        zf_log(ZF_LOG_INFO, "zestfs: %s/%s: refs/%s = %.12s%s%.12s\n", zf_type_plural(j->type), j->id,
               j->rev, j->revision.sha, moved ? ", was " : "", moved ? was : "");
    od_reply(j->fs, w, err == 0);
    l->work.data = l;
    if (err || uv_queue_work(j->fs->loop, &l->work, od_persist_work, od_persist_after) != 0) {
        free(j->json);
        free(l);
        if (k)
            chk_next(c, k);
    }
}

/* Forget what expired; true when (type, id, rev) is remembered as absent. */
static bool od_negative(od_ctx *c, enum zf_repo_type type, const char *id, const char *rev)
{
    uint64_t now = uv_now(c->fs->loop);
    for (od_neg **pp = &c->negs; *pp;) {
        od_neg *n = *pp;
        if (n->until <= now) {
            *pp = n->next;
            free(n->id);
            free(n->rev);
            free(n);
            continue;
        }
        if (n->type == type && strcmp(n->id, id) == 0 &&
            (rev ? n->rev && strcmp(n->rev, rev) == 0 : !n->rev))
            return true;
        pp = &n->next;
    }
    return false;
}

/* Start resolving id@rev (on_done: od_done); the waiter w (may be NULL)
 * answered when it ends.  False: not started (nothing kept). */
static bool od_start(od_ctx *c, zn_hub *hub, enum zf_repo_type type, const char *id, const char *rev,
                     bool is_rev, od_chk *chk, od_wait *w)
{
    od_load *l = calloc(1, sizeof *l);
    if (!l || strlen(id) >= sizeof l->j.id || strlen(rev) >= sizeof l->j.rev) {
        free(l);
        return false;
    }
    job *j = &l->j;
    j->fs = c->fs;
    j->store = c->store;
    j->hub = hub;
    j->type = type;
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->rev, sizeof j->rev, "%s", rev);
    snprintf(j->key, sizeof j->key, "repo/%s/%s", zf_type_name(type), id);
    j->spec = j->id;
    j->on_done = od_done;
    j->refresh = chk != NULL;
    j->lookup = is_rev;
    l->rev = is_rev;
    l->chk = chk;
    l->w = w;
    l->next = c->loads;
    c->loads = l;
    if (zn_hub_revision(hub, (zn_repo_type)type, j->id, j->rev, on_revision, j, NULL) == 0)
        return true;
    od_unlink(c, l);
    free(l);
    return false;
}

/* Park the lookup on the load of (type, id, rev) in flight, or start one. */
static bool od_park(od_ctx *c, zn_hub *hub, fuse_req_t req, fuse_ino_t parent, const char *name,
                    enum zf_repo_type type, const char *id, const char *rev)
{
    if (od_negative(c, type, id, rev))
        return false; /* ENOENT, as the tree says */
    od_wait *w = calloc(1, sizeof *w);
    if (!w || !(w->name = strdup(name))) {
        free(w);
        return false;
    }
    w->req = req;
    w->parent = parent;
    for (od_load *l = c->loads; l; l = l->next)
        if (!l->chk && l->rev == (rev != NULL) && l->j.type == type && strcmp(l->j.id, id) == 0 &&
            (!rev || strcmp(l->j.rev, rev) == 0)) {
            w->next = l->w;
            l->w = w;
            return true;
        }
    if (od_start(c, hub, type, id, rev ? rev : "main", rev != NULL, NULL, w))
        return true;
    free(w->name);
    free(w);
    return false;
}

static bool od_lookup(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
    od_ctx *c = fs->ondemand;
    zn_hub *hub = zf_read_hub(fs);
    enum zf_repo_type type;
    char *id;
    if (!hub || zf_repo_parse_folder(name, &type, &id) != 0)
        return false;
    bool taken = od_park(c, hub, req, parent, name, type, id, NULL);
    free(id);
    return taken;
}

static bool is_sha(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 40;
}

static bool ends_with(const char *s, const char *sfx)
{
    size_t n = strlen(s), m = strlen(sfx);
    return n >= m && strcmp(s + n - m, sfx) == 0;
}

bool zf_lookup_rev(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name, const char *path)
{
    od_ctx *c = fs->ondemand;
    zn_hub *hub = c && !c->stopped ? zf_read_hub(fs) : NULL;
    const char *sl = strchr(path, '/');
    if (!hub || !sl)
        return false;
    const char *rev;
    if (!strncmp(sl, "/snapshots/", 11) && is_sha(sl + 11))
        rev = sl + 11;
    else if (!strncmp(sl, "/refs/", 6) && zf_valid_rev(sl + 6) && !is_sha(sl + 6) &&
             !ends_with(sl, ".tmp") && !ends_with(sl, ".lock") && !ends_with(sl, ".incomplete"))
        rev = sl + 6; /* nested (refs/refs/pr/N, refs/feature/x): once its folders exist;
                       * never a commit id: huggingface_hub looks up refs/<commit> for a
                       * revision given by commit (offline too), and no ref is named so */
    else
        return false;
    const zf_repo *r = NULL;
    for (size_t i = 0; i < fs->tree.nrepos && !r; i++)
        if (strlen(fs->tree.repos[i]->folder) == (size_t)(sl - path) &&
            !strncmp(fs->tree.repos[i]->folder, path, (size_t)(sl - path)))
            r = fs->tree.repos[i];
    if (!r || r->gated_url)
        return false;
    return od_park(c, hub, req, parent, name, r->type, r->id, rev);
}

/* ---- refs checked again (--refs-ttl) ---------------------------------------- */

static void chk_end(od_ctx *c, od_chk *k)
{
    for (size_t i = 0; i < k->nnames; i++)
        free(k->names[i]);
    free(k->names);
    k->names = NULL;
    k->nnames = k->next_name = 0;
    k->busy = false;
    k->at = uv_now(c->fs->loop);
}

/* The next ref of k asked for (one at a time), or the check ends. */
static void chk_next(od_ctx *c, od_chk *k)
{
    zn_hub *hub = c->stopped ? NULL : zf_read_hub(c->fs);
    while (hub && k->next_name < k->nnames) {
        const char *rev = k->names[k->next_name++];
        if (od_start(c, hub, k->type, k->id, rev, false, k, NULL))
            return;
    }
    chk_end(c, k);
}

static void chk_begin(od_ctx *c, od_chk *k, const zf_repo *r)
{
    k->names = r->nrefs ? calloc(r->nrefs, sizeof *k->names) : NULL;
    for (size_t i = 0; k->names && i < r->nrefs; i++)
        if ((k->names[k->nnames] = strdup(r->refs[i].name)))
            k->nnames++;
    k->next_name = 0;
    k->busy = true;
    chk_next(c, k);
}

static void on_ttl(uv_timer_t *t)
{
    od_ctx *c = t->data;
    uint64_t now = uv_now(c->fs->loop);
    if (c->stopped || !zf_read_hub(c->fs))
        return;
    int busy = 0;
    for (od_chk *k = c->chks; k; k = k->next)
        busy += k->busy;
    for (size_t i = 0; i < c->fs->tree.nrepos; i++) {
        const zf_repo *r = c->fs->tree.repos[i];
        od_chk *k = c->chks;
        while (k && !(k->type == r->type && strcmp(k->id, r->id) == 0))
            k = k->next;
        if (!k) { /* presented since the last tick: it was just resolved */
            if (strlen(r->id) >= sizeof k->id || !(k = calloc(1, sizeof *k)))
                continue;
            k->type = r->type;
            snprintf(k->id, sizeof k->id, "%s", r->id);
            k->at = now;
            k->next = c->chks;
            c->chks = k;
            continue;
        }
        if (!k->busy && now - k->at >= c->ttl_ms && !r->gated_url && busy < TTL_REPOS_AT_ONCE) {
            busy++;
            chk_begin(c, k, r);
        }
    }
}

void zf_refs_ttl_start(zf_fs *fs, unsigned ttl_s)
{
    od_ctx *c = fs->ondemand;
    if (!c || !ttl_s || c->timer_on)
        return;
    c->ttl_ms = (uint64_t)ttl_s * 1000;
    uv_timer_init(fs->loop, &c->timer);
    c->timer.data = c;
    c->timer_on = true;
    uv_timer_start(&c->timer, on_ttl, TTL_TICK_MS, TTL_TICK_MS);
}

void zf_ondemand_stop(zf_fs *fs)
{
    od_ctx *c = fs->ondemand;
    if (!c || c->stopped)
        return;
    c->stopped = true;
    if (c->timer_on)
        uv_close((uv_handle_t *)&c->timer, NULL);
}

int zf_ondemand_init(zf_fs *fs, zc_store *store)
{
    od_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fs = fs;
    c->store = store;
    fs->ondemand = c;
    fs->hooks.lookup_miss = od_lookup;
    fs->hooks.lookup_rev = zf_lookup_rev;
    return 0;
}

void zf_ondemand_free(zf_fs *fs)
{
    od_ctx *c = fs->ondemand;
    if (!c)
        return;
    while (c->negs) {
        od_neg *n = c->negs;
        c->negs = n->next;
        free(n->id);
        free(n->rev);
        free(n);
    }
    while (c->chks) {
        od_chk *k = c->chks;
        c->chks = k->next;
        for (size_t i = 0; i < k->nnames; i++)
            free(k->names[i]);
        free(k->names);
        free(k);
    }
    free(c); /* loads ended with the hub (-ECANCELED) before the loop closed */
    fs->ondemand = NULL;
    fs->hooks.lookup_miss = NULL;
    fs->hooks.lookup_rev = NULL;
}
