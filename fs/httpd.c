/* httpd.c — HTTP access to the presented repos and Prometheus /metrics
 * (`zestfs --http [ADDR:]PORT`, `--metrics [ADDR:]PORT`).
 *
 *   GET|HEAD /{repo}/resolve/{rev}/{path}   repo: org/name, datasets/org/name,
 *                                            spaces/org/name (models/ accepted)
 *   GET|HEAD /xet/{64 hex Xet file id}       any presented file with that id
 *   GET      /metrics                        Prometheus text format 0.0.4
 *   GET      /health                         JSON: status, version, store use, repos
 *   GET|HEAD /download/{owner}/{repo}/{path}  proxy-xet's: the file at main
 *   GET|HEAD /download-hash/{hash}[?repo=]    proxy-xet's: a Xet file by hash
 *            (the caller's Hub token checked: see "proxy-xet's API" below)
 *
 * Threads.  libmicrohttpd (MHD) runs one internal polling thread per
 * listener; everything of zestfs (the repo models, the read path, the
 * store) belongs to the uv loop thread.  A request (struct hreq) crosses
 * between them through one mutex per listener:
 *   - MHD thread, access handler: the request is put on the listener's
 *     queue, uv_async_send wakes the loop, the connection is SUSPENDED.
 *   - loop: resolve the URL (presented model; else zf_resolve_repo), pick
 *     the range, start the first PIECE reads (zf_read_async, PIECE bytes
 *     each, NSLOTS slots per request), and once the first piece is in (or
 *     failed: 502/503 with a text body, or no body is needed) mark the
 *     request resolved and MHD_resume_connection.
 *   - MHD thread: queues the response; its content callback copies from
 *     ready slots; a slot emptied goes back to the loop (queue + async) to
 *     fetch the next piece; when no byte is ready the callback suspends the
 *     connection and the piece's completion resumes it.
 * So a connection holds at most NSLOTS * PIECE bytes however large the file
 * and however slow the client.  A read error after the headers aborts the
 * connection (MHD_CONTENT_READER_END_WITH_ERROR): the client sees fewer
 * bytes than Content-Length, never short data as complete.
 *
 * Locking: a connection is suspended only by the MHD thread with the mutex
 * held, and resumed only by the loop after it cleared `suspended` under the
 * mutex (resume is called with the mutex released), so a resume never
 * precedes its suspend.  A request is reference counted (MHD's side until
 * the completion callback, the response object, each queue entry and each
 * read in flight) and freed by whichever thread drops the last reference.
 *
 * Ranges: one range per request (`bytes=a-b`, `a-`, `-n`): 206 with
 * Content-Range; unsatisfiable: 416 with `Content-Range: bytes * /size`
 * (no space); several ranges, or a malformed header: the whole file, 200.
 *
 * Security: no authentication unless a token is set (`Authorization:
 * Bearer TOKEN`, compared in constant time); whoever reaches the port reads
 * every presented repo, so the default address is 127.0.0.1.  Against web
 * pages (DNS rebinding: a name of the attacker's that resolves to this
 * address) the `Host` header must name the listener: the connection's
 * local address with the port, `localhost:PORT` on loopback, or a name
 * given with --http-host; anything else is 421 before the token is looked
 * at.  Repos that are not presented are resolved on the Hub (with the
 * user's Hub token) and added only when --http-token is set, i.e. only for
 * requests that passed it.  Slow clients: every connection has HDR_MS to
 * deliver its whole request (headers and any body) from its accept or the
 * end of its previous answer, whatever it dribbles; a loop timer shuts
 * down the socket of one that does not (through a dup of its fd, so never
 * someone else's descriptor).  A client that stops reading an answer is
 * dropped after IDLE_S without progress (MHD's timeout); at most
 * PER_IP_CONNS connections per client address, MAX_CONNS in all. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <blake3.h>

#include "net.h"
#include "p2p.h"
#include "httpparse.h"
#include "log.h"
#include "zfs.h"

#define PIECE (2u << 20)  /* bytes per zf_read_async */
#define NSLOTS 2          /* pieces per connection */
#define MAX_CONNS 512
#define PER_IP_CONNS 64   /* connections per client address */
#define HDR_MS 10000      /* a request (headers and body) must be in within this */
#define IDLE_S 60         /* an answer that makes no progress for this is dropped */
#define MAX_HOSTS 16      /* --http-host names */
#define VERDICTS 64       /* Hub verdicts on callers' tokens kept (proxy routes) */
#define VERDICT_MS 60000  /* ... for this long */

#ifndef ZESTFS_VERSION
#define ZESTFS_VERSION "unknown"
#endif

/* one accepted connection (MHD's socket context) */
typedef struct hconn {
    struct hconn *prev, *next;
    int fd;             /* dup of its socket: shutdown() drops the connection */
    uint64_t deadline;  /* ms (uv_hrtime) by which the request must be in; 0 none */
} hconn;

typedef struct hreq hreq;

enum { PH_NEW, PH_RESOLVING, PH_RESOLVED };
enum { SL_EMPTY, SL_FETCHING, SL_READY };

typedef struct hslot {
    hreq *r;
    int state;
    uint64_t off;           /* absolute file offset */
    size_t len;
    uint8_t *buf;           /* PIECE bytes, allocated on first use */
} hslot;

struct zf_http {
    zf_fs *fs;
    zc_store *store;
    bool metrics_only;
    char *token;
    int lfd;
    char addr[80];
    struct MHD_Daemon *d;
    uv_async_t async;
    pthread_mutex_t mu;
    hreq *queue;            /* requests the loop must look at */
    hreq *live;             /* every request not yet freed */
    bool stopping;
    bool started;
    char *hosts[MAX_HOSTS]; /* --http-host names */
    int nhosts;
    hconn *conns;           /* every open connection (under mu) */
    uv_timer_t watch;       /* drops connections past their deadline */
    uint64_t slow_drops;    /* under mu */
    bool watching;          /* watch initialized */
    unsigned hdr_ms;        /* a request must be in within this (HDR_MS) */
    /* proxy routes (loop thread only): the Hub checks of callers' tokens */
    zn_http *hubhttp;       /* made on first use */
    struct verdict {
        uint8_t key[32];    /* BLAKE3(token, type, repo): never the token */
        int err;
        uint64_t exp;       /* ms (mono_ms); 0 free */
    } verdicts[VERDICTS];
    unsigned vnext;
};

struct hreq {
    zf_http *h;
    struct MHD_Connection *con;
    hreq *qnext;            /* h->queue */
    hreq *lprev, *lnext;    /* h->live */
    int refs;
    bool queued, suspended, closed;
    /* set by the MHD thread before the request is queued, then read-only */
    bool head;
    char *url;
    char *range;            /* Range header or NULL */
    /* set by the loop before phase = PH_RESOLVED */
    int phase;
    bool started;           /* the loop began resolving */
    unsigned status;
    char *body;             /* text body (errors, metrics) */
    const char *ctype;
    char *hdr[6][2];        /* extra headers (malloc'd values) */
    int nhdr;
    zv_ent ent;
    bool has_ent;
    uint64_t start, end;    /* byte range sent: [start, end) */
    /* streaming */
    uint64_t next_off;      /* next piece to fetch */
    int err;                /* a piece failed */
    hslot slot[NSLOTS];
    /* proxy routes (/download, /download-hash): set by the MHD thread */
    int auth;               /* AUTH_* */
    char *bearer;           /* the caller's Hub token (AUTH_HUB); wiped when freed */
    char *hint;             /* ?repo= of /download-hash, raw */
    /* ... and by the loop */
    char *purl;             /* /download as its /{repo}/resolve/main/{path} */
    xet_hash xid;           /* /download-hash */
    size_t scan;            /* next presented repo to look at for xid */
    int denied;             /* a repo naming xid refused the token */
    enum zf_repo_type chk_type; /* the repo being checked for xid */
    char chk_id[256];
    bool hint_tried;
};

enum { AUTH_OPEN, AUTH_SERVER, AUTH_HUB, AUTH_ANON };

static _Atomic uint64_t g_requests, g_bytes_sent, g_errors;

/* ---- requests: references -------------------------------------------- */

static void hreq_free(hreq *r)
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

static void unref(hreq *r)
{
    zf_http *h = r->h;
    pthread_mutex_lock(&h->mu);
    bool f = unref_locked(r);
    pthread_mutex_unlock(&h->mu);
    if (f)
        hreq_free(r);
}

/* with h->mu held: have the loop look at r */
static void kick_locked(hreq *r)
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

static void add_hdr(hreq *r, const char *name, const char *fmt, ...)
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

static void set_text(hreq *r, unsigned status, const char *code, const char *fmt, ...)
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
static void finish(hreq *r)
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
static void fill_slots(hreq *r)
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
static void answer_blob(hreq *r, const zv_ent *e)
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

static const zf_repo *find_repo(zf_fs *fs, enum zf_repo_type t, const char *id)
{
    for (size_t i = 0; i < fs->tree.nrepos; i++)
        if (fs->tree.repos[i]->type == t && strcmp(fs->tree.repos[i]->id, id) == 0)
            return fs->tree.repos[i];
    return NULL;
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

static void answer_resolve(hreq *r, const char *url)
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
    const zf_repo *repo = find_repo(h->fs, type, id);
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

static void answer_xet(hreq *r, const char *hex)
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

/* ---- /metrics ---------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->oom ? 0 : vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (b->oom || n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static void metric(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist(sbuf *b, const char *name, const char *label, const zf_hist *hh)
{
    static const double bounds[ZF_HIST_N] = ZF_HIST_BOUNDS_MS;
    uint64_t cum = 0;
    const char *sep = label[0] ? "," : "";
    for (int i = 0; i < ZF_HIST_N; i++) {
        cum += hh->bucket[i];
        if (bounds[i] >= 1e299)
            sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, label, sep, cum);
        else
            sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, label, sep,
                      bounds[i] / 1000.0, cum);
    }
    if (bounds[ZF_HIST_N - 1] < 1e299)
        sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, label, sep, hh->count);
    const char *l = label[0] ? "{" : "", *rb = label[0] ? "}" : "";
    sb_printf(b, "%s_sum%s%s%s %.9g\n", name, l, label, rb, hh->sum_ms / 1000.0);
    sb_printf(b, "%s_count%s%s%s %" PRIu64 "\n", name, l, label, rb, hh->count);
}

static void one(sbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    metric(b, name, type, help);
    sb_printf(b, "%s %" PRIu64 "\n", name, v);
}

static char *metrics_text(zf_http *h)
{
    sbuf b = {0};
    zf_metrics *m = zf_read_metrics(h->fs);
    static const zf_metrics zero;
    if (!m)
        m = (zf_metrics *)&zero;
    metric(&b, "zestfs_read_duration_seconds", "histogram",
           "Latency of reads answered (FUSE reads and HTTP pieces).");
    hist(&b, "zestfs_read_duration_seconds", "", &m->read_ms);
    one(&b, "zestfs_reads_total", "counter", "Reads answered.", m->reads);
    one(&b, "zestfs_read_bytes_total", "counter", "Bytes answered by reads.", m->read_bytes);
    one(&b, "zestfs_read_errors_total", "counter", "Reads that failed.", m->read_errors);
    metric(&b, "zestfs_reads_by_outcome_total", "counter",
           "Reads answered from the store without waiting, or after waiting for a fetch.");
    sb_printf(&b, "zestfs_reads_by_outcome_total{outcome=\"store\"} %" PRIu64 "\n",
              m->reads_from_store);
    sb_printf(&b, "zestfs_reads_by_outcome_total{outcome=\"waited\"} %" PRIu64 "\n",
              m->reads_waited);
    metric(&b, "zestfs_fetch_duration_seconds", "histogram", "Latency of xorb range fetches by source.");
    hist(&b, "zestfs_fetch_duration_seconds", "source=\"cdn\"", &m->fetch_ms[ZF_SRC_CDN]);
    hist(&b, "zestfs_fetch_duration_seconds", "source=\"peer\"", &m->fetch_ms[ZF_SRC_PEER]);
    metric(&b, "zestfs_bytes_total", "counter",
           "Bytes by source: served from the store, fetched from peers or the CDN.");
    static const char *src[ZF_NSRC] = {"store", "peer", "cdn"};
    for (int i = 0; i < ZF_NSRC; i++)
        sb_printf(&b, "zestfs_bytes_total{source=\"%s\"} %" PRIu64 "\n", src[i], m->bytes_by_src[i]);
    one(&b, "zestfs_fetches_in_flight", "gauge", "Xorb range fetches in flight.", m->fetches_inflight);
    one(&b, "zestfs_verify_failures_total", "counter", "Network data that failed verification.",
        m->verify_failures);
    one(&b, "zestfs_peer_bans_total", "counter", "Peers banned.", m->peer_bans);
    one(&b, "zestfs_fetch_races_total", "counter", "Slow peer fetches raced against the CDN.",
        m->races);
    one(&b, "zestfs_fetch_races_cdn_won_total", "counter", "Races the CDN finished first.",
        m->races_cdn_won);
    one(&b, "zestfs_fetches_parked_total", "counter",
        "Fetches that waited for a peer's CDN fetch of the same range.", m->fetches_parked);
    one(&b, "zestfs_fetches_held_total", "counter",
        "Background (fill) CDN transfers paused while a foreground one ran.", m->fetches_held);
    one(&b, "zestfs_reconstructions_total", "counter",
        "CAS reconstructions asked by the read path (windows, their pieces, learned ahead).", m->recons);
    one(&b, "zestfs_reconstructions_learned_total", "counter",
        "Windows fetched with a reconstruction learned ahead of their miss.", m->recons_learned);
    one(&b, "zestfs_http_reads_total", "counter", "Reads answered for the HTTP access server.",
        m->http_reads);
    zf_p2p_stats ps;
    memset(&ps, 0, sizeof ps);
    if (h->fs->p2p)
        zf_p2p_get_stats(h->fs->p2p, &ps);
    one(&b, "zestfs_peers_connected", "gauge", "Peers connected (handshake done).", ps.node.peers);
    one(&b, "zestfs_peer_swarms", "gauge", "Swarms joined.", ps.swarms);
    metric(&b, "zestfs_peer_data_bytes_total", "counter", "Verified chunk bytes exchanged with peers.");
    sb_printf(&b, "zestfs_peer_data_bytes_total{direction=\"up\"} %" PRIu64 "\n", ps.node.data_up);
    sb_printf(&b, "zestfs_peer_data_bytes_total{direction=\"down\"} %" PRIu64 "\n", ps.node.data_down);
    metric(&b, "zestfs_store_lookups_total", "counter",
           "Reads by whether the store had every byte (hit) or a fetch was needed (miss).");
    sb_printf(&b, "zestfs_store_lookups_total{result=\"hit\"} %" PRIu64 "\n", m->reads_from_store);
    sb_printf(&b, "zestfs_store_lookups_total{result=\"miss\"} %" PRIu64 "\n", m->reads_waited);
    zc_stats st;
    memset(&st, 0, sizeof st);
    if (h->store)
        zc_get_stats(h->store, &st);
    one(&b, "zestfs_store_used_bytes", "gauge", "Bytes of the chunk store in use.", st.used);
    one(&b, "zestfs_store_capacity_bytes", "gauge", "Cap of the chunk store.", st.cap);
    one(&b, "zestfs_store_pinned_bytes", "gauge", "Store bytes that are never evicted.", st.pinned);
    one(&b, "zestfs_store_segments", "gauge", "Segments in the store.", st.segments);
    one(&b, "zestfs_store_evictions_total", "counter", "Segments evicted.", st.evictions);
    one(&b, "zestfs_store_evicted_bytes_total", "counter", "Bytes evicted.", st.evicted_bytes);
    one(&b, "zestfs_store_puts_total", "counter", "Chunk runs stored.", st.puts);
    one(&b, "zestfs_store_put_bytes_total", "counter", "Bytes stored.", st.put_bytes);
    one(&b, "zestfs_store_corrupt_segments_total", "counter",
        "Stored segments that failed verification.", st.corrupt);
    one(&b, "zestfs_repos_presented", "gauge", "Repos presented.", h->fs->tree.nrepos);
    metric(&b, "zestfs_repo_seeded", "gauge",
           "Per repo: 1 when its swarm is served to peers; visibility is the Hub's verdict kept "
           "with it (public, private, gated, unknown).");
    for (size_t i = 0; i < h->fs->tree.nrepos; i++) {
        const zf_repo *r = h->fs->tree.repos[i];
        const char *t = zf_p2p_type_name(r->type);
        sb_printf(&b, "zestfs_repo_seeded{type=\"%s\",repo=\"%s\",visibility=\"%s\"} %d\n", t,
                  r->id, zf_vis_name(r->vis), zf_p2p_repo_served(h->fs->p2p, t, r->id) ? 1 : 0);
    }
    one(&b, "zestfs_http_requests_total", "counter", "HTTP requests answered.", g_requests);
    one(&b, "zestfs_http_sent_bytes_total", "counter", "HTTP body bytes sent.", g_bytes_sent);
    one(&b, "zestfs_http_read_errors_total", "counter",
        "HTTP responses that failed for want of bytes.", g_errors);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

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

static void answer_download(hreq *r, const char *rest)
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
    const zf_repo *repo = find_repo(r->h->fs, r->chk_type, r->chk_id);
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

static void answer_download_hash(hreq *r, const char *hex)
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

static void answer_health(hreq *r)
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

/* the loop looks at a queued request */
static void process(hreq *r)
{
    zf_http *h = r->h;
    if (r->phase == PH_RESOLVED) {
        if (r->has_ent)
            fill_slots(r);
        return;
    }
    if (r->started)
        return;
    r->started = true;
    const char *url = r->url;
    if (!strcmp(url, "/metrics")) {
        char *t = metrics_text(h);
        if (!t) {
            set_text(r, 500, NULL, "out of memory");
        } else {
            r->status = 200;
            r->body = t;
            r->ctype = "text/plain; version=0.0.4; charset=utf-8";
        }
        finish(r);
    } else if (h->metrics_only) {
        set_text(r, 404, NULL, "only /metrics here");
        finish(r);
    } else if (!strcmp(url, "/health")) {
        answer_health(r);
    } else if (!strncmp(url, "/xet/", 5)) {
        answer_xet(r, url + 5);
    } else if (!strncmp(url, "/download/", 10)) {
        answer_download(r, url + 10);
    } else if (!strncmp(url, "/download-hash/", 15)) {
        answer_download_hash(r, url + 15);
    } else
        answer_resolve(r, url);
}

static void on_async(uv_async_t *a)
{
    zf_http *h = a->data;
    /* One at a time under the mutex: once a request is off the queue
     * (queued false) the MHD thread may queue it again, which rewrites its
     * qnext, so no batch taken earlier may be walked through qnext. */
    for (;;) {
        pthread_mutex_lock(&h->mu);
        hreq *r = h->queue;
        if (r) {
            h->queue = r->qnext;
            r->qnext = NULL;
            r->queued = false;
        }
        pthread_mutex_unlock(&h->mu);
        if (!r)
            break;
        process(r);
        unref(r);
    }
}

/* ---- the MHD thread ----------------------------------------------------- */

static ssize_t content(void *cls, uint64_t pos, char *buf, size_t max)
{
    hreq *r = cls;
    zf_http *h = r->h;
    uint64_t abs = r->start + pos;
    ssize_t ret = 0;
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
        goto out;
    }
    for (int i = 0; i < NSLOTS; i++) {
        hslot *s = &r->slot[i];
        if (s->state != SL_READY || abs < s->off || abs >= s->off + s->len)
            continue;
        size_t n = (size_t)(s->off + s->len - abs);
        if (n > max)
            n = max;
        memcpy(buf, s->buf + (abs - s->off), n);
        if (abs + n == s->off + s->len) {
            s->state = SL_EMPTY;
            if (r->next_off < r->end)
                kick_locked(r);
        }
        g_bytes_sent += n;
        ret = (ssize_t)n;
        goto out;
    }
    if (r->err) {
        g_errors++;
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
        goto out;
    }
    /* not here yet: its piece is in flight (or about to be) */
    r->suspended = true;
    MHD_suspend_connection(r->con);
    kick_locked(r);
out:
    pthread_mutex_unlock(&h->mu);
    return ret;
}

static void content_free(void *cls)
{
    unref(cls);
}

static enum MHD_Result send_simple(struct MHD_Connection *con, unsigned status, const char *text,
                                   const char *hname, const char *hval)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    enum MHD_Result ret = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    g_requests++;
    return ret;
}

/* the Bearer value of the request, or NULL */
static const char *bearer_of(struct MHD_Connection *con)
{
    const char *a = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return a;
}

static bool token_ok(zf_http *h, struct MHD_Connection *con)
{
    if (!h->token)
        return true;
    const char *a = bearer_of(con);
    if (!a)
        return false;
    size_t n = strlen(a), m = strlen(h->token);
    unsigned char d = n != m;
    for (size_t i = 0; i < m; i++)
        d |= (unsigned char)(h->token[i] ^ (i < n ? a[i] : 0));
    return d == 0;
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static hconn *conn_of(struct MHD_Connection *con)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* the connection's request deadline: now + ms, or none (ms 0) */
static void set_deadline(zf_http *h, struct MHD_Connection *con, uint64_t ms)
{
    hconn *c = conn_of(con);
    if (!c)
        return;
    pthread_mutex_lock(&h->mu);
    c->deadline = ms ? mono_ms() + ms : 0;
    pthread_mutex_unlock(&h->mu);
}

/* MHD thread: a connection accepted or closed */
static void on_conn(void *cls, struct MHD_Connection *con, void **ctx,
                    enum MHD_ConnectionNotificationCode code)
{
    zf_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        hconn *c = calloc(1, sizeof *c);
        if (!c)
            return;
        c->fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        c->deadline = mono_ms() + h->hdr_ms;
        pthread_mutex_lock(&h->mu);
        c->next = h->conns;
        if (c->next)
            c->next->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->mu);
        *ctx = c;
        return;
    }
    hconn *c = *ctx;
    if (!c)
        return;
    *ctx = NULL;
    pthread_mutex_lock(&h->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&h->mu);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* loop timer: shut down the sockets of connections past their deadline
 * (MHD then sees the socket end and closes the connection itself) */
static void on_watch(uv_timer_t *t)
{
    zf_http *h = t->data;
    uint64_t now = mono_ms();
    unsigned n = 0;
    pthread_mutex_lock(&h->mu);
    for (hconn *c = h->conns; c; c = c->next)
        if (c->deadline && now > c->deadline) {
            c->deadline = 0;
            if (c->fd >= 0)
                shutdown(c->fd, SHUT_RDWR);
            n++;
        }
    h->slow_drops += n;
    pthread_mutex_unlock(&h->mu);
    if (n)
        zf_log(ZF_LOG_INFO, "zestfs: %s: dropped %u connection%s that did not send a request "
               "within %.1f s\n", h->addr, n, n == 1 ? "" : "s", h->hdr_ms / 1000.0);
}

/* host part of a Host value (brackets removed) and its port (0: none);
 * false when malformed */
static bool split_host(const char *v, char *host, size_t cap, unsigned *port)
{
    const char *end, *p;
    if (v[0] == '[') {
        end = strchr(v, ']');
        if (!end)
            return false;
        v++;
        p = end + 1;
    } else {
        end = strchr(v, ':');
        if (end && strchr(end + 1, ':'))
            return false;
        if (!end)
            end = v + strlen(v);
        p = end;
    }
    size_t n = (size_t)(end - v);
    if (n == 0 || n >= cap)
        return false;
    memcpy(host, v, n);
    host[n] = 0;
    *port = 0;
    if (*p == 0)
        return true;
    if (*p != ':' || !p[1] || strlen(p + 1) > 5)
        return false;
    unsigned long pn = 0;
    for (const char *q = p + 1; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
        pn = pn * 10 + (unsigned long)(*q - '0');
    }
    if (pn == 0 || pn > 65535)
        return false;
    *port = (unsigned)pn;
    return true;
}

/* Whether the Host header names this listener (see the design note) */
static bool host_ok(zf_http *h, struct MHD_Connection *con)
{
    const char *v = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Host");
    char host[256];
    unsigned port;
    if (!v || !split_host(v, host, sizeof host, &port))
        return false;
    for (int i = 0; i < h->nhosts; i++)
        if (!strcasecmp(host, h->hosts[i]))
            return true; /* a name the user gave: whatever port a proxy in front uses */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!ci || getsockname(ci->connect_fd, (struct sockaddr *)&ss, &sl) != 0)
        return false;
    char ab[INET6_ADDRSTRLEN] = "";
    unsigned lport;
    bool loop;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ab, sizeof ab);
        lport = ntohs(s4->sin_port);
        loop = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ab, sizeof ab);
        lport = ntohs(s6->sin6_port);
        loop = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    } else
        return false;
    if (port ? port != lport : lport != 80)
        return false;
    if (!strcasecmp(host, "localhost") && loop)
        return true;
    if (ss.ss_family == AF_INET6) { /* compare as addresses: :: forms vary */
        struct in6_addr a, b;
        return inet_pton(AF_INET6, host, &a) == 1 &&
               inet_pton(AF_INET6, ab, &b) == 1 && !memcmp(&a, &b, sizeof a);
    }
    return !strcmp(host, ab);
}

void zf_http_set_request_timeout(zf_http *h, unsigned ms)
{
    h->hdr_ms = ms ? ms : 1;
}

const char *zf_http_addr(const zf_http *h)
{
    return h->addr;
}

int zf_http_allow_host(zf_http *h, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 253)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:", name[i]))
            return -EINVAL;
    if (h->nhosts == MAX_HOSTS)
        return -E2BIG;
    if (!(h->hosts[h->nhosts] = strdup(name)))
        return -ENOMEM;
    h->nhosts++;
    return 0;
}

static enum MHD_Result respond(hreq *r)
{
    struct MHD_Response *resp;
    if (r->has_ent && r->status < 300 && !r->head && r->end > r->start) {
        resp = MHD_create_response_from_callback(r->end - r->start, 256 << 10, content, r,
                                                 content_free);
        if (resp) {
            pthread_mutex_lock(&r->h->mu);
            r->refs++;
            pthread_mutex_unlock(&r->h->mu);
        }
    } else if (r->has_ent && r->status < 300 && r->end > r->start) {
        /* HEAD: MHD sends the size as Content-Length and no body */
        resp = MHD_create_response_from_callback(r->end - r->start, 4096, content, r,
                                                 content_free);
        if (resp) {
            pthread_mutex_lock(&r->h->mu);
            r->refs++;
            pthread_mutex_unlock(&r->h->mu);
        }
    } else {
        const char *t = r->body ? r->body : "";
        resp = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    }
    if (!resp)
        return MHD_NO;
    if (r->ctype)
        MHD_add_response_header(resp, "Content-Type", r->ctype);
    for (int i = 0; i < r->nhdr; i++)
        MHD_add_response_header(resp, r->hdr[i][0], r->hdr[i][1]);
    enum MHD_Result ret = MHD_queue_response(r->con, r->status, resp);
    MHD_destroy_response(resp);
    g_requests++;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    zf_http *h = cls;
    (void)version;
    (void)upload_data;
    hreq *r = *con_cls;
    if (!r) {
        bool get = !strcmp(method, MHD_HTTP_METHOD_GET), head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
        if (!host_ok(h, con))
            return send_simple(con, 421,
                               "zestfs: the Host header does not name this server (its address "
                               "and port, or a name given with --http-host)\n",
                               "X-Error-Code", "MisdirectedRequest");
        if (!get && !head)
            return send_simple(con, 405, "method not allowed\n", "Allow", "GET, HEAD");
        /* proxy routes: a Bearer that is not --http-token is the caller's Hub
         * token; /health needs none */
        bool proxy = !h->metrics_only &&
                     (!strncmp(url, "/download/", 10) || !strncmp(url, "/download-hash/", 15));
        bool health = !h->metrics_only && !strcmp(url, "/health");
        const char *bearer = proxy ? bearer_of(con) : NULL;
        int auth = AUTH_OPEN;
        if (proxy)
            auth = bearer && *bearer ? (h->token && token_ok(h, con) ? AUTH_SERVER : AUTH_HUB)
                                     : (h->token ? -1 : AUTH_ANON);
        if (proxy ? auth < 0 : !health && !token_ok(h, con))
            return send_simple(con, 401, "unauthorized\n", "WWW-Authenticate", "Bearer");
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->auth = auth;
        const char *hint = proxy ? MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "repo")
                                 : NULL;
        if ((auth == AUTH_HUB && !(r->bearer = strdup(bearer))) || (hint && !(r->hint = strdup(hint)))) {
            hreq_free(r);
            return MHD_NO;
        }
        const char *rg = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Range");
        r->h = h;
        r->con = con;
        r->head = head;
        r->url = strdup(url);
        r->range = rg ? strdup(rg) : NULL;
        r->refs = 1; /* MHD's, dropped when the request completes */
        for (int i = 0; i < NSLOTS; i++)
            r->slot[i].r = r;
        if (!r->url || (rg && !r->range)) {
            hreq_free(r);
            return MHD_NO;
        }
        pthread_mutex_lock(&h->mu);
        r->lnext = h->live;
        if (h->live)
            h->live->lprev = r;
        h->live = r;
        pthread_mutex_unlock(&h->mu);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* a GET body: ignored (within the deadline) */
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    int phase = r->phase;
    if (phase == PH_NEW) { /* the whole request is in: no deadline while answering */
        hconn *hc = conn_of(con);
        if (hc)
            hc->deadline = 0;
    }
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        return MHD_NO;
    }
    if (phase == PH_NEW) {
        r->phase = PH_RESOLVING;
        r->suspended = true;
        MHD_suspend_connection(con);
        kick_locked(r);
    }
    pthread_mutex_unlock(&h->mu);
    if (phase != PH_RESOLVED)
        return MHD_YES;
    return respond(r);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    zf_http *h = cls;
    /* the next request on this connection has HDR_MS from now */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        set_deadline(h, con, h->hdr_ms);
    hreq *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->h->mu);
    r->closed = true;
    pthread_mutex_unlock(&r->h->mu);
    unref(r);
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s); /* paths are decoded per component (a rev may hold %2F) */
}

/* ---- the listener --------------------------------------------------------- */

int zf_http_bind(const char *spec, const char *what, bool metrics_only, const char *token,
                 zf_http **out)
{
    char host[80] = "127.0.0.1", port[16];
    const char *colon = strrchr(spec, ':');
    if (colon) {
        size_t n = (size_t)(colon - spec);
        const char *hs = spec;
        if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']')
            hs++, n -= 2;
        if (n == 0 || n >= sizeof host)
            return -EINVAL;
        memcpy(host, hs, n);
        host[n] = 0;
        spec = colon + 1;
    }
    char *e;
    unsigned long pn = strtoul(spec, &e, 10);
    if (!*spec || *e || pn > 65535)
        return -EINVAL;
    snprintf(port, sizeof port, "%lu", pn);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    hints.ai_flags |= AI_NUMERICHOST;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return -EINVAL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int err = -errno;
        close(fd);
        freeaddrinfo(ai);
        return err;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ab[64] = "?";
    unsigned bport = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ab, sizeof ab);
            bport = ntohs(s4->sin_port);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ab, sizeof ab);
            bport = ntohs(s6->sin6_port);
        }
    }
    zf_http *h = calloc(1, sizeof *h);
    if (!h || (token && !(h->token = strdup(token)))) {
        free(h);
        close(fd);
        return -ENOMEM;
    }
    h->lfd = fd;
    h->hdr_ms = HDR_MS;
    h->metrics_only = metrics_only;
    snprintf(h->addr, sizeof h->addr, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ab, bport);
    zf_log(ZF_LOG_INFO, "zestfs: %s on %s\n", what, h->addr);
    *out = h;
    return 0;
}

int zf_http_start(zf_http *h, zf_fs *fs, zc_store *store)
{
    h->fs = fs;
    h->store = store;
    pthread_mutex_init(&h->mu, NULL);
    uv_async_init(fs->loop, &h->async, on_async);
    h->async.data = h;
    h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                            on_request, h, MHD_OPTION_LISTEN_SOCKET, h->lfd,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(512u << 10),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNS,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_CONNS,
                            MHD_OPTION_NOTIFY_CONNECTION, on_conn, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_S, MHD_OPTION_END);
    h->started = true;
    if (!h->d) {
        h->stopping = true;
        uv_close((uv_handle_t *)&h->async, NULL);
        return -EIO;
    }
    uv_timer_init(fs->loop, &h->watch);
    h->watch.data = h;
    unsigned tick = h->hdr_ms < 2000 ? (h->hdr_ms + 1) / 2 : 1000;
    uv_timer_start(&h->watch, on_watch, tick, tick);
    uv_unref((uv_handle_t *)&h->watch);
    h->watching = true;
    return 0;
}

void zf_http_stop(zf_http *h)
{
    if (!h || !h->started || h->stopping)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    size_t n = 0;
    for (hreq *r = h->live; r; r = r->lnext)
        n += r->suspended && !r->closed;
    struct MHD_Connection **res = calloc(n ? n : 1, sizeof *res);
    n = 0;
    for (hreq *r = h->live; r && res; r = r->lnext)
        if (r->suspended && !r->closed) {
            r->suspended = false;
            res[n++] = r->con;
        }
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(res[i]);
    free(res);
    MHD_stop_daemon(h->d); /* joins its thread; completion callbacks have run */
    h->d = NULL;
    pthread_mutex_lock(&h->mu);
    hreq *q = h->queue;
    h->queue = NULL;
    pthread_mutex_unlock(&h->mu);
    while (q) {
        hreq *r = q;
        q = r->qnext;
        unref(r);
    }
    if (h->hubhttp) /* pending Hub checks complete now, -ECANCELED */
        zn_http_free(h->hubhttp);
    h->hubhttp = NULL;
    uv_close((uv_handle_t *)&h->async, NULL);
    if (h->watching)
        uv_close((uv_handle_t *)&h->watch, NULL);
}

void zf_http_free(zf_http *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    if (!h->started && h->lfd >= 0)
        close(h->lfd);
    if (h->started)
        pthread_mutex_destroy(&h->mu);
    if (h->token) {
        memset(h->token, 0, strlen(h->token));
        free(h->token);
    }
    for (int i = 0; i < h->nhosts; i++)
        free(h->hosts[i]);
    free(h);
}
