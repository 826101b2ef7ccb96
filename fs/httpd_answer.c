/* httpd_answer.c — the access server's requests on the loop side: their
 * references, and building their answers (headers, text answers, a blob's
 * range streamed a PIECE at a time through the read path, /resolve and
 * /xet URLs).  Threads and locking: see httpd.c's header. */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd_int.h"
#include "httpparse.h"
#include "log.h"
#include "hubload.h"
#include "present.h"
#include "read.h"
#include "zfs.h"

/* ---- requests: references -------------------------------------------- */

void hreq_free(hreq *r)
{
    if (r->bearer) {
        memset(r->bearer, 0, strlen(r->bearer));
        free(r->bearer);
    }
    free(r->hint);
    free(r->purl);
    free(r->url);
    free(r->range);
    free(r->body);
    for (int i = 0; i < r->nhdr; i++)
        free(r->hdr[i][1]);
    for (int i = 0; i < NSLOTS; i++)
        free(r->slot[i].buf);
    free(r);
}

/* with h->mu held; true when the caller must free r (after unlocking) */
static bool unref_locked(hreq *r)
{
    if (--r->refs > 0)
        return false;
    zf_http *h = r->h;
    if (r->lprev)
        r->lprev->lnext = r->lnext;
    else
        h->live = r->lnext;
    if (r->lnext)
        r->lnext->lprev = r->lprev;
    return true;
}

void unref(hreq *r)
{
    zf_http *h = r->h;
    pthread_mutex_lock(&h->mu);
    bool f = unref_locked(r);
    pthread_mutex_unlock(&h->mu);
    if (f)
        hreq_free(r);
}

/* with h->mu held: have the loop look at r */
void kick_locked(hreq *r)
{
    zf_http *h = r->h;
    if (h->stopping || r->queued)
        return;
    r->queued = true;
    r->refs++;
    r->qnext = h->queue;
    h->queue = r;
    uv_async_send(&h->async);
}

/* with h->mu held: whether the caller must resume r's connection */
static bool take_resume_locked(hreq *r)
{
    if (!r->suspended || r->closed || r->h->stopping)
        return false;
    r->suspended = false;
    return true;
}

/* ---- the loop side: building answers ---------------------------------- */

void add_hdr(hreq *r, const char *name, const char *fmt, ...)
{
    if (r->nhdr == (int)(sizeof r->hdr / sizeof r->hdr[0]))
        return;
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    r->hdr[r->nhdr][0] = (char *)name;
    r->hdr[r->nhdr][1] = strdup(v);
    if (r->hdr[r->nhdr][1])
        r->nhdr++;
}

static void clear_hdrs(hreq *r)
{
    for (int i = 0; i < r->nhdr; i++)
        free(r->hdr[i][1]);
    r->nhdr = 0;
}

void set_text(hreq *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    free(r->body);
    size_t n = strlen(msg);
    r->body = malloc(n + 2);
    if (r->body) {
        memcpy(r->body, msg, n);
        memcpy(r->body + n, "\n", 2);
    }
    r->ctype = "text/plain; charset=utf-8";
    if (code)
        add_hdr(r, "X-Error-Code", "%s", code);
}

/* mark r resolved (loop thread) and resume its connection */
void finish(hreq *r)
{
    zf_http *h = r->h;
    pthread_mutex_lock(&h->mu);
    r->phase = PH_RESOLVED;
    bool res = take_resume_locked(r);
    pthread_mutex_unlock(&h->mu);
    if (res)
        MHD_resume_connection(r->con);
}

static unsigned read_status(int err)
{
    return err == -ENETDOWN || err == -ESHUTDOWN || err == -ECANCELED || err == -EAGAIN ? 503
                                                                                        : 502;
}

static void piece_cb(void *ud, int err, const uint8_t *data, size_t len)
{
    hslot *s = ud;
    hreq *r = s->r;
    zf_http *h = r->h;
    bool first = false;
    pthread_mutex_lock(&h->mu);
    if (!err && len != s->len)
        err = -EIO;
    if (!err && !r->closed) {
        if (!s->buf)
            s->buf = malloc(PIECE);
        if (!s->buf)
            err = -ENOMEM;
        else
            memcpy(s->buf, data, len);
    }
    if (err) {
        if (!r->err)
            r->err = err;
        s->state = SL_EMPTY;
    } else
        s->state = SL_READY;
    first = r->phase == PH_RESOLVING;
    bool res = !first && take_resume_locked(r);
    pthread_mutex_unlock(&h->mu);
    if (first) {
        /* the headers wait for the first piece: a failure is still a status */
        if (err) {
            r->has_ent = false;
            clear_hdrs(r);
            set_text(r, read_status(err), NULL, "zestfs: cannot read %s: %s",
                     r->ent.file->path, strerror(-err));
            g_errors++;
        }
        finish(r);
    } else if (res)
        MHD_resume_connection(r->con);
    unref(r);
}

/* start reads for the empty slots (loop thread) */
void fill_slots(hreq *r)
{
    zf_http *h = r->h;
    hslot *go[NSLOTS];
    int n = 0;
    pthread_mutex_lock(&h->mu);
    if (!r->closed && !r->err && !h->stopping)
        for (int i = 0; i < NSLOTS && r->next_off < r->end; i++) {
            hslot *s = &r->slot[i];
            if (s->state != SL_EMPTY)
                continue;
            s->state = SL_FETCHING;
            s->off = r->next_off;
            s->len = (size_t)(r->end - s->off < PIECE ? r->end - s->off : PIECE);
            r->next_off += s->len;
            r->refs++;
            go[n++] = s;
        }
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < n; i++) {
        int err = zf_read_async(h->fs, &r->ent, go[i]->off, go[i]->len, piece_cb, go[i]);
        if (err)
            piece_cb(go[i], err, NULL, 0);
    }
}

/* "bytes=..." against size: 0 whole file, 1 a range [*a, *b), -1 unsatisfiable */
/* the blob is known: status, headers, range; then the first piece */
void answer_blob(hreq *r, const zv_ent *e)
{
    r->ent = *e;
    r->ent.kind = ZV_BLOB;
    r->ent.size = e->file->size;
    r->has_ent = true;
    uint64_t size = e->file->size, a = 0, b = size;
    int rg = zf_http_parse_range(r->range, size, &a, &b);
    add_hdr(r, "Accept-Ranges", "bytes");
    add_hdr(r, "ETag", "\"%s\"", e->file->etag);
    add_hdr(r, "X-Repo-Commit", "%s", e->commit->sha);
    if (rg < 0) {
        r->has_ent = false;
        set_text(r, 416, "RangeNotSatisfiable", "range not satisfiable (size %" PRIu64 ")", size);
        add_hdr(r, "Content-Range", "bytes */%" PRIu64, size);
        finish(r);
        return;
    }
    r->status = rg ? 206 : 200;
    if (rg)
        add_hdr(r, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, b - 1, size);
    r->ctype = "application/octet-stream";
    r->start = r->next_off = a;
    r->end = b;
    if (r->head || a == b) {
        finish(r);
        return;
    }
    fill_slots(r); /* finish() when the first piece is in */
}

static const zf_commit *find_rev(const zf_repo *repo, const char *rev)
{
    for (size_t i = 0; i < repo->nrefs; i++)
        if (strcmp(repo->refs[i].name, rev) == 0)
            return zf_repo_commit(repo, repo->refs[i].sha);
    return strlen(rev) == 40 ? zf_repo_commit(repo, rev) : NULL;
}

typedef struct resolve_ud {
    hreq *r;
    bool presented;         /* the repo is: a failure is the revision's */
    char path[4096];
} resolve_ud;

static void answer_path(hreq *r, const zf_repo *repo, const zf_commit *c, const char *path)
{
    const zf_file *f = zf_commit_file(c, path);
    if (f && repo->gated_url) { /* gated, no access (issue 18): as the Hub says it */
        set_text(r, 403, "GatedRepo", "Access to %s is restricted and you are not in the authorized list. "
                 "Visit %s to ask for access.", repo->id, repo->gated_url);
        finish(r);
        return;
    }
    if (!f) {
        set_text(r, 404, "EntryNotFound", "%s: no such file at %s", path, c->sha);
        add_hdr(r, "X-Repo-Commit", "%s", c->sha);
        finish(r);
        return;
    }
    zv_ent e = {.kind = ZV_BLOB, .repo = repo, .commit = c, .file = f, .size = f->size,
                .mtime = c->date};
    answer_blob(r, &e);
}

static void resolved_cb(void *ud, int err, const zf_repo *repo, const char *commit)
{
    resolve_ud *u = ud;
    hreq *r = u->r;
    const zf_commit *c = err ? NULL : zf_repo_commit(repo, commit);
    if (err == -ENOENT || (!err && !c))
        set_text(r, 404, u->presented ? "RevisionNotFound" : "RepoNotFound",
                 u->presented ? "revision not found" : "repository not found");
    else if (err)
        set_text(r, err == -ENETDOWN ? 503 : 502, NULL, "cannot resolve the repository: %s",
                 strerror(-err));
    if (err || !c)
        finish(r);
    else
        answer_path(r, repo, c, u->path);
    free(u);
    unref(r);
}

void answer_resolve(hreq *r, const char *url)
{
    zf_http *h = r->h;
    enum zf_repo_type type;
    char id[256], rev[256];
    resolve_ud *u = malloc(sizeof *u);
    if (!u || zf_http_parse_resolve(url, &type, id, rev, u->path, sizeof u->path) != 0) {
        free(u);
        set_text(r, 404, "EntryNotFound", "not found: expected /{repo}/resolve/{rev}/{path}");
        finish(r);
        return;
    }
    const zf_repo *repo = zf_fs_find_repo(h->fs, type, id);
    const zf_commit *c = repo ? find_rev(repo, rev) : NULL;
    if (c) {
        answer_path(r, repo, c, u->path);
        free(u);
        return;
    }
    if (!h->token) {
        /* resolving goes to the Hub with the user's token and adds the
         * repo: only for requests that showed --http-token */
        free(u);
        set_text(r, 404, repo ? "RevisionNotFound" : "RepoNotFound",
                 repo ? "revision not presented (resolving a new one needs --http-token)"
                      : "repository not presented (adding one on demand needs --http-token)");
        finish(r);
        return;
    }
    char spec[600];
    snprintf(spec, sizeof spec, "%s/%s@%s", zf_type_plural(type), id, rev);
    u->r = r;
    u->presented = repo != NULL;
    pthread_mutex_lock(&h->mu);
    r->refs++; /* r is live: the queue entry being processed holds it */
    pthread_mutex_unlock(&h->mu);
    int err = zf_resolve_repo(h->fs, h->store, spec, resolved_cb, u);
    if (err) {
        free(u);
        unref(r);
        set_text(r, err == -EINVAL ? 404 : 502, err == -EINVAL ? "RepoNotFound" : NULL,
                 "cannot resolve %s: %s", spec, strerror(-err));
        finish(r);
    }
}

void answer_xet(hreq *r, const char *hex)
{
    zf_fs *fs = r->h->fs;
    xet_hash id;
    if (strlen(hex) != 64 || xet_hash_from_string(hex, &id) != 0) {
        set_text(r, 404, "EntryNotFound", "not a Xet file id");
        finish(r);
        return;
    }
    for (size_t i = 0; i < fs->tree.nrepos; i++) {
        const zf_repo *repo = fs->tree.repos[i];
        for (size_t k = 0; k < repo->ncommits; k++) {
            const zf_commit *c = &repo->commits[k];
            for (size_t j = 0; j < c->nfiles; j++) {
                const zf_file *f = &c->files[j];
                if (f->has_xet && memcmp(f->xet.b, id.b, sizeof id.b) == 0) {
                    zv_ent e = {.kind = ZV_BLOB, .repo = repo, .commit = c, .file = f,
                                .size = f->size, .mtime = c->date};
                    answer_blob(r, &e);
                    return;
                }
            }
        }
    }
    set_text(r, 404, "EntryNotFound", "no presented file has Xet id %s", hex);
    finish(r);
}
