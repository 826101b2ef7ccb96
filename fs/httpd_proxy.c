/* httpd_proxy.c — proxy-xet's routes of the access server: /health,
 * /download and /download-hash, each read only after the caller's Hub
 * token was checked (below).  Answers are built with httpd_answer.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blake3.h>

#include "httpd_int.h"
#include "httpparse.h"
#include "log.h"
#include "net.h"
#include "hubload.h"
#include "present.h"
#include "read.h"
#include "zfs.h"

/* ---- proxy-xet's API: /health, /download, /download-hash ---------------
 *
 * /download/{owner}/{repo}/{path} is /{owner}/{repo}/resolve/main/{path};
 * /download-hash/{xet file hash}[?repo=owner/name] is any Xet file the
 * caller may read.  Who may read what (r->auth, decided by the MHD thread):
 *   AUTH_SERVER  the Bearer is the --http-token: everything, as on resolve;
 *   AUTH_HUB     any other Bearer is the caller's Hub token: a repo is read
 *                only after the Hub answered its repo info (revision main)
 *                to that token (and, for a gated repo, a Xet read token);
 *   AUTH_ANON    no Bearer (only without --http-token): the same check
 *                made anonymously, so public repos only.
 * Verdicts are kept VERDICT_MS, keyed by BLAKE3(token, type, repo); the
 * token itself lives only as long as its request.  Bytes already stored
 * are served only after that check: a token that cannot read a repo never
 * gets its bytes.  A hash named by no presented repo is looked up in the
 * repo given with ?repo= (checked the same way, then added on demand and
 * searched at main); without it: 404 saying so.  Adding a repo on demand
 * (here and on /download) needs --http-token to be set, as on resolve:
 * without it an open port could make the mount hold any number of repos. */

typedef void (*check_cb)(hreq *r, int err);

typedef struct hcheck {
    hreq *r;
    zn_hub *hub;
    check_cb cb;
    zn_repo_type type;
    char id[256];
    uint8_t key[32];
} hcheck;

static uint64_t loop_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void verdict_key(const hreq *r, enum zf_repo_type type, const char *id, uint8_t key[32])
{
    blake3_hasher b;
    blake3_hasher_init(&b);
    const char *t = r->auth == AUTH_HUB && r->bearer ? r->bearer : "";
    uint8_t sep[2] = {0, (uint8_t)type};
    blake3_hasher_update(&b, t, strlen(t));
    blake3_hasher_update(&b, sep, sizeof sep);
    blake3_hasher_update(&b, id, strlen(id));
    blake3_hasher_finalize(&b, key, 32);
}

/* answers a refusal of the Hub (err of check_access) */
static void deny(hreq *r, int err, const char *repo)
{
    if (err == -EACCES || err == -EKEYREVOKED) {
        set_text(r, 401, "Unauthorized", "the Hub does not accept this token for %s", repo);
        add_hdr(r, "WWW-Authenticate", "Bearer");
    } else if (err == -EPERM) {
        set_text(r, 403, "GatedRepo", "this token may not read %s", repo);
    } else if (err == -ENOENT) {
        set_text(r, 404, "RepoNotFound", "repository %s not found, or this token cannot read it",
                 repo);
    } else {
        set_text(r, err == -ENETDOWN ? 503 : 502, NULL, "cannot ask the Hub about %s: %s", repo,
                 strerror(-err));
        return;
    }
    add_hdr(r, "X-Error-Message", "%s", r->body ? r->body : "refused");
    if (r->nhdr && r->hdr[r->nhdr - 1][1]) /* no newline in a header */
        r->hdr[r->nhdr - 1][1][strcspn(r->hdr[r->nhdr - 1][1], "\n")] = 0;
}

static void check_done(hcheck *c, int err)
{
    hreq *r = c->r;
    zf_http *h = r->h;
    if (err == 0 || err == -ENOENT || err == -EACCES || err == -EPERM || err == -EKEYREVOKED) {
        struct verdict *v = &h->verdicts[h->vnext++ % VERDICTS];
        memcpy(v->key, c->key, sizeof v->key);
        v->err = err;
        v->exp = loop_ms() + VERDICT_MS;
    }
    zn_hub_free(c->hub);
    check_cb cb = c->cb;
    free(c);
    if (h->stopping) {
        set_text(r, 503, NULL, "stopping");
        finish(r);
    } else
        cb(r, err);
    unref(r);
}

static void check_tok(void *ud, int err, const zn_xet_token *tok)
{
    (void)tok;
    /* the Hub accepted the token for the repo info: a refusal here is the
     * gate's (GatedRepo maps to -EACCES like a 401) */
    check_done(ud, err == -EACCES || err == -EKEYREVOKED ? -EPERM : err);
}

static void check_rev(void *ud, int err, const zn_revision *rev)
{
    hcheck *c = ud;
    if (!err && rev->gated) { /* gated: the Hub lists repo info to all; ask for a read token */
        err = zn_hub_xet_token(c->hub, c->type, c->id, "main", false, check_tok, c, NULL);
        if (!err)
            return;
    }
    check_done(c, err);
}

/* whether r's caller may read type/id: cb(r, 0 or a negative errno), maybe at once */
static void check_access(hreq *r, enum zf_repo_type type, const char *id, check_cb cb)
{
    zf_http *h = r->h;
    if (r->auth == AUTH_SERVER || r->auth == AUTH_OPEN) {
        cb(r, 0);
        return;
    }
    hcheck *c = calloc(1, sizeof *c);
    if (!c) {
        cb(r, -ENOMEM);
        return;
    }
    verdict_key(r, type, id, c->key);
    uint64_t now = loop_ms();
    for (int i = 0; i < VERDICTS; i++) {
        struct verdict *v = &h->verdicts[i];
        if (v->exp > now && !memcmp(v->key, c->key, sizeof c->key)) {
            free(c);
            cb(r, v->err);
            return;
        }
    }
    zn_hub *hub = zf_read_hub(h->fs);
    if (!hub) {
        free(c);
        cb(r, -ENETDOWN);
        return;
    }
    if (!h->hubhttp) {
        zn_http_opts ho = {0};
        h->hubhttp = zn_http_new(h->fs->loop, &ho);
    }
    zn_hub_opts o = {.endpoint = zn_hub_endpoint(hub),
                     .token = r->auth == AUTH_HUB ? r->bearer : NULL,
                     .timeout_ms = 15000};
    c->hub = h->hubhttp ? zn_hub_new(h->hubhttp, &o) : NULL;
    if (!c->hub) {
        free(c);
        cb(r, h->hubhttp ? -EACCES : -ENOMEM); /* a token zn_hub refuses (CR/LF, empty) */
        return;
    }
    c->r = r;
    c->cb = cb;
    c->type = (zn_repo_type)type;
    snprintf(c->id, sizeof c->id, "%s", id);
    pthread_mutex_lock(&h->mu);
    r->refs++;
    pthread_mutex_unlock(&h->mu);
    int err = zn_hub_revision(c->hub, c->type, c->id, "main", check_rev, c, NULL);
    if (err)
        check_done(c, err);
}

/* /download/{owner}/{repo}/{path} */
static void download_checked(hreq *r, int err)
{
    enum zf_repo_type type;
    char id[256], rev[256], path[8];
    if (err) {
        if (zf_http_parse_resolve(r->purl, &type, id, rev, path, 0) != 0)
            snprintf(id, sizeof id, "the repository");
        deny(r, err, id);
        finish(r);
        return;
    }
    /* adding a repo on demand (the mount's memory) stays --http-token's
     * opt-in, as on resolve; with it, any caller the Hub vouched for may */
    answer_resolve(r, r->purl);
}

void answer_download(hreq *r, const char *rest)
{
    const char *s1 = strchr(rest, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    enum zf_repo_type type;
    char id[256], rev[256], path[4096];
    size_t n = strlen(rest) + 32;
    if (s2 && (r->purl = malloc(n)))
        snprintf(r->purl, n, "/%.*s/resolve/main/%s", (int)(s2 - rest), rest, s2 + 1);
    if (!s2 || !r->purl || zf_http_parse_resolve(r->purl, &type, id, rev, path, sizeof path) != 0) {
        set_text(r, 404, "EntryNotFound", "not found: expected /download/{owner}/{repo}/{path}");
        finish(r);
        return;
    }
    check_access(r, type, id, download_checked);
}

/* /download-hash/{hash}: the presented repos naming it, in order, until
 * one the caller may read; then the ?repo= hint */
static const zf_file *repo_xet_file(const zf_repo *repo, const xet_hash *id, const zf_commit **cp)
{
    for (size_t k = 0; k < repo->ncommits; k++) {
        const zf_commit *c = &repo->commits[k];
        for (size_t j = 0; j < c->nfiles; j++)
            if (c->files[j].has_xet && !memcmp(c->files[j].xet.b, id->b, sizeof id->b)) {
                *cp = c;
                return &c->files[j];
            }
    }
    return NULL;
}

static bool serve_from(hreq *r, const zf_repo *repo)
{
    const zf_commit *c;
    const zf_file *f = repo ? repo_xet_file(repo, &r->xid, &c) : NULL;
    if (!f)
        return false;
    if (repo->gated_url) { /* the mount itself has no access */
        set_text(r, 403, "GatedRepo", "Access to %s is restricted", repo->id);
        finish(r);
        return true;
    }
    zv_ent e = {.kind = ZV_BLOB, .repo = repo, .commit = c, .file = f, .size = f->size,
                .mtime = c->date};
    answer_blob(r, &e);
    return true;
}

static void hash_next(hreq *r);

static void hash_checked(hreq *r, int err)
{
    /* by name: repos added meanwhile may have moved the one checked */
    const zf_repo *repo = zf_fs_find_repo(r->h->fs, r->chk_type, r->chk_id);
    if (!err && serve_from(r, repo))
        return;
    if (err && (!r->denied || err == -EACCES || err == -EKEYREVOKED))
        r->denied = err;
    hash_next(r);
}

typedef struct hint_ud {
    hreq *r;
    char id[256];
} hint_ud;

static void hint_resolved(void *ud, int err, const zf_repo *repo, const char *commit)
{
    hint_ud *u = ud;
    hreq *r = u->r;
    (void)commit;
    if (err)
        set_text(r, err == -ENOENT ? 404 : err == -ENETDOWN ? 503 : 502,
                 err == -ENOENT ? "RepoNotFound" : NULL, "cannot resolve %s: %s", u->id,
                 strerror(-err));
    if (err || !serve_from(r, repo)) {
        if (!err)
            set_text(r, 404, "EntryNotFound", "%s does not name this Xet file", u->id);
        finish(r);
    }
    free(u);
    unref(r);
}

/* "?repo=[models/|datasets/|spaces/]owner/name": its type and id */
static enum zf_repo_type hint_repo(const char *hint, char id[256])
{
    enum zf_repo_type type = ZF_MODEL;
    if (!strncmp(hint, "datasets/", 9))
        type = ZF_DATASET, hint += 9;
    else if (!strncmp(hint, "spaces/", 7))
        type = ZF_SPACE, hint += 7;
    else if (!strncmp(hint, "models/", 7))
        hint += 7;
    snprintf(id, 256, "%s", hint);
    return type;
}

static void hint_checked(hreq *r, int err)
{
    zf_http *h = r->h;
    char id[256], spec[300];
    enum zf_repo_type type = hint_repo(r->hint, id);
    if (err) {
        deny(r, err, id);
        finish(r);
        return;
    }
    if (!h->token) {
        set_text(r, 404, "RepoNotFound",
                 "%s is not presented (adding one on demand needs --http-token)", id);
        add_hdr(r, "X-Error-Message", "repository not presented; adding one needs --http-token");
        finish(r);
        return;
    }
    hint_ud *u = malloc(sizeof *u);
    if (!u) {
        set_text(r, 500, NULL, "out of memory");
        finish(r);
        return;
    }
    u->r = r;
    snprintf(u->id, sizeof u->id, "%s", id);
    snprintf(spec, sizeof spec, "%s/%s@main", zf_type_plural(type), id);
    pthread_mutex_lock(&h->mu);
    r->refs++;
    pthread_mutex_unlock(&h->mu);
    int e = zf_resolve_repo(h->fs, h->store, spec, hint_resolved, u);
    if (e) {
        free(u);
        unref(r);
        set_text(r, e == -EINVAL ? 404 : 502, e == -EINVAL ? "RepoNotFound" : NULL,
                 "cannot resolve %s: %s", spec, strerror(-e));
        finish(r);
    }
}

static void hash_next(hreq *r)
{
    zf_fs *fs = r->h->fs;
    while (r->scan < fs->tree.nrepos) {
        const zf_repo *repo = fs->tree.repos[r->scan++];
        const zf_commit *c;
        if (repo_xet_file(repo, &r->xid, &c)) {
            r->chk_type = repo->type;
            snprintf(r->chk_id, sizeof r->chk_id, "%s", repo->id);
            check_access(r, repo->type, repo->id, hash_checked);
            return;
        }
    }
    if (r->hint && !r->hint_tried) {
        r->hint_tried = true;
        char id[256];
        enum zf_repo_type type = hint_repo(r->hint, id);
        if (zf_valid_repo_id(id)) {
            check_access(r, type, id, hint_checked);
            return;
        }
    }
    if (r->denied == -EACCES || r->denied == -EKEYREVOKED) {
        deny(r, r->denied, "this file");
    } else { /* refused or absent alike: whether a hash exists is not told */
        set_text(r, 404, "EntryNotFound",
                 r->hint ? "no repository this token can read names this Xet file"
                         : "no presented repository this token can read names this Xet file "
                           "(name one with ?repo=owner/name)");
        add_hdr(r, "X-Error-Message", "%s", r->hint ? "Xet file not found"
                : "Xet file not found; add ?repo=owner/name");
    }
    finish(r);
}

void answer_download_hash(hreq *r, const char *hex)
{
    if (strlen(hex) != 64 || xet_hash_from_string(hex, &r->xid) != 0) {
        set_text(r, 404, "EntryNotFound", "not a Xet file hash");
        finish(r);
        return;
    }
    if (r->hint) { /* decoded in place: "owner%2Fname" is "owner/name" */
        char d[300];
        if (zf_http_pct_decode(r->hint, strlen(r->hint), d, sizeof d) != 0) {
            set_text(r, 404, "RepoNotFound", "bad ?repo=");
            finish(r);
            return;
        }
        strcpy(r->hint, d); /* decoding never makes it longer */
    }
    hash_next(r);
}

/* /health: JSON, no token needed (the Host check still applies) */
static void json_str(sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            sb_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            sb_printf(b, "\\u%04x", (unsigned char)*s);
        else
            sb_printf(b, "%c", *s);
    sb_printf(b, "\"");
}

void answer_health(hreq *r)
{
    zf_http *h = r->h;
    zc_stats st;
    memset(&st, 0, sizeof st);
    if (h->store)
        zc_get_stats(h->store, &st);
    sbuf b = {0};
    sb_printf(&b, "{\"status\": \"ok\", \"version\": ");
    json_str(&b, ZESTFS_VERSION);
    sb_printf(&b, ", \"store\": {\"used\": %" PRIu64 ", \"cap\": %" PRIu64 "}, \"repos\": [",
              (uint64_t)st.used, (uint64_t)st.cap);
    for (size_t i = 0; i < h->fs->tree.nrepos; i++) {
        const zf_repo *repo = h->fs->tree.repos[i];
        char name[300];
        snprintf(name, sizeof name, "%s/%s", zf_type_plural(repo->type), repo->id);
        if (i)
            sb_printf(&b, ", ");
        json_str(&b, name);
    }
    sb_printf(&b, "]}\n");
    if (b.oom) {
        free(b.p);
        set_text(r, 500, NULL, "out of memory");
    } else {
        r->status = 200;
        free(r->body);
        r->body = b.p;
        r->ctype = "application/json";
    }
    finish(r);
}
