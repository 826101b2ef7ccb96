/* hub.c — Hub API (revision, tree, resolve, xet-read-token) and the Xet CAS
 * reconstruction client (spec/xet.md §5.1–§5.3, §5.6; traps 11, 14, 15, 23).
 *
 * An operation (zn_op) is a small state machine on the loop thread: it has
 * at most one HTTP request in flight (op->req), or waits in a token entry's
 * queue.  Xet tokens are cached per (type, repo, rev); concurrent operations
 * that need the same token share one fetch. */
#include "net_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#define MAX_TREE_ENTRIES 10000000u
#define MAX_TREE_PAGES 100000u
#define MAX_TOKENS 256
#define MAX_TOKEN_LEN 64000
#define MAX_AUTH_RETRIES 2
/* A page of a very large recursive listing can take long or answer 504:
 * each page gets this long and at least TREE_ATTEMPTS tries with backoff. */
#define TREE_TIMEOUT_MS 120000
#define TREE_ATTEMPTS 6
#define TREE_DEADLINE_MS 600000u
/* Listing a repo (revision, tree) is background work (startup, repos on
 * demand, pull): a 429 is waited out for up to this long. */
#define LISTING_RATELIMIT_WAIT_MS 3600000u

enum op_kind { OP_REVISION, OP_TREE, OP_RESOLVE, OP_TOKEN, OP_RECON, OP_INFO };

typedef struct tok {
    struct tok *next;
    zn_repo_type type;
    char *repo, *rev;
    char *access, *cas_url;
    int64_t exp;
    uint64_t gen;          /* bumped at every successful fetch */
    bool valid;
    zn_req *fetch;
    struct zn_op *waiters; /* FIFO through wnext */
    struct zn_op **wtail;
    uint64_t last_use;
    int refs;              /* operations holding it in op->t */
} tok;

struct zn_op {
    zn_hub *h;
    struct zn_op *next, *prev;
    enum op_kind kind;
    bool canceled, ended;
    zn_req *req;
    tok *waiting;
    struct zn_op *wnext;

    zn_repo_type type;
    char *repo, *rev, *path;
    zn_range range;
    bool has_range;
    bool refresh;
    zn_retry retry;        /* tree pages: more patient than the hub's */

    /* tree */
    zn_tree *tree;
    size_t tree_cap;
    char *page_url;
    /* recon */
    tok *t;
    uint64_t gen;
    int version;
    int auth_retries;
    bool v2_missing;

    union {
        zn_revision_cb rev;
        zn_tree_cb tree;
        zn_resolve_cb resolve;
        zn_token_cb token;
        zn_recon_cb recon;
        zn_repo_info_cb info;
    } cb;
    void *ud;
};

struct zn_hub {
    zn_http *http;
    char *endpoint;
    char *auth;            /* "Authorization: Bearer <hub token>" or NULL */
    zn_retry retry;
    int margin_s;
    long timeout_ms;
    zn_op *ops;
    tok *toks;
    size_t ntoks;
    uint64_t tick;
    int pending;           /* live ops + token fetches */
    bool closing;
    char *v1_only_cas;     /* CAS that answered 501 (or only v1 worked) */
};

/* ---- helpers ------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

static bool is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static void lower_copy(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    dst[n] = 0;
}

/* Hub repo ids: "name" or "namespace/name", [A-Za-z0-9._-], no "..". */
static bool valid_repo_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 200 || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") ||
        strstr(s, "--"))
        return false;
    int slashes = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '/')
            slashes++;
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-'))
            return false;
    }
    return slashes <= 1;
}

/* A repo-relative path: no empty, "." or ".." segment, no control bytes. */
static bool valid_repo_path(const char *p)
{
    if (!p || !*p || strlen(p) > 4096)
        return false;
    const char *seg = p;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == 0) {
            size_t n = (size_t)(c - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*c == 0)
                return true;
            seg = c + 1;
        } else if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
}

/* Percent-encode all but RFC 3986 unreserved characters (and '/' if asked). */
static char *pct(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = 0;
    return o;
}

static const char *type_plural(zn_repo_type t)
{
    return t == ZN_DATASET ? "datasets" : t == ZN_SPACE ? "spaces" : "models";
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* {endpoint}/api/{type}s/{repo}/{what}/{rev} */
static char *api_url(zn_hub *h, zn_op *op, const char *what, const char *suffix)
{
    char *rev = pct(op->rev, false);
    if (!rev)
        return NULL;
    char *u = xasprintf("%s/api/%s/%s/%s/%s%s", h->endpoint, type_plural(op->type), op->repo,
                        what, rev, suffix ? suffix : "");
    free(rev);
    return u;
}

/* Map a Hub answer's X-Error-Code onto errno (whatever the status). */
static int hub_err(int err, const zn_resp *resp)
{
    const char *code = zn_resp_header(resp, "X-Error-Code");
    if (code) {
        if (!strcmp(code, "RepoNotFound") || !strcmp(code, "RevisionNotFound") ||
            !strcmp(code, "EntryNotFound"))
            return -ENOENT;
        if (!strcmp(code, "GatedRepo"))
            return -EACCES;
    }
    /* the token itself is bad or expired (huggingface_hub tells it apart
     * the same way): not "not found" */
    const char *msg = zn_resp_header(resp, "X-Error-Message");
    if (zn_resp_status(resp) == 401 && msg && strstr(msg, "Invalid credentials in Authorization header"))
        return -EKEYREVOKED;
    return err;
}

static cJSON *parse_body(const zn_resp *resp)
{
    size_t len;
    const char *b = zn_resp_body(resp, &len);
    if (!b || !len)
        return NULL;
    return cJSON_ParseWithLength(b, len);
}

/* ---- operations ---------------------------------------------------------- */

static void hub_maybe_free(zn_hub *h);

static zn_op *op_new(zn_hub *h, enum op_kind kind, zn_repo_type type, const char *repo,
                     const char *rev, void *ud)
{
    zn_op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->h = h;
    op->kind = kind;
    op->type = type;
    op->ud = ud;
    op->repo = strdup(repo);
    op->rev = strdup(rev);
    if (!op->repo || !op->rev) {
        free(op->repo);
        free(op->rev);
        free(op);
        return NULL;
    }
    op->next = h->ops;
    if (h->ops)
        h->ops->prev = op;
    h->ops = op;
    h->pending++;
    return op;
}

/* Unlink and free (the callback has been called, or must never be). */
static void op_end(zn_op *op)
{
    zn_hub *h = op->h;
    if (op->prev)
        op->prev->next = op->next;
    else
        h->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    free(op->repo);
    free(op->rev);
    free(op->path);
    free(op->page_url);
    if (op->tree)
        zn_tree_free(op->tree);
    if (op->t)
        op->t->refs--;
    free(op);
    h->pending--;
    hub_maybe_free(h);
}

static void op_fail(zn_op *op, int err)
{
    op->ended = true;
    switch (op->kind) {
    case OP_REVISION: op->cb.rev(op->ud, err, NULL); break;
    case OP_TREE: op->cb.tree(op->ud, err, NULL); break;
    case OP_RESOLVE: op->cb.resolve(op->ud, err, NULL); break;
    case OP_TOKEN: op->cb.token(op->ud, err, NULL); break;
    case OP_RECON: op->cb.recon(op->ud, err, NULL); break;
    case OP_INFO: op->cb.info(op->ud, err, NULL); break;
    }
    op_end(op);
}

/* Start an HTTP request for op.  The Hub token goes only to the endpoint's
 * origin; `auth` overrides it (the CAS token) when non-NULL. */
static int op_http(zn_op *op, const char *method, const char *url, const char *auth,
                   bool hub_auth, const zn_range *range, bool follow, zn_done_cb done)
{
    zn_hub *h = op->h;
    const char *hdrs[4];
    int n = 0;
    if (auth)
        hdrs[n++] = auth;
    else if (hub_auth && h->auth && zn__same_origin(url, h->endpoint))
        hdrs[n++] = h->auth;
    if (strcmp(method, "HEAD") == 0)
        hdrs[n++] = "Accept-Encoding: identity";
    else
        hdrs[n++] = "Accept: application/json";
    hdrs[n] = NULL;
    zn_http_req r = {
        .method = method,
        .url = url,
        .headers = hdrs,
        .ranges = range,
        .nranges = range ? 1 : 0,
        .compressed = strcmp(method, "HEAD") != 0,
        .follow_redirects = follow,
        .timeout_ms = op->kind == OP_TREE && h->timeout_ms < TREE_TIMEOUT_MS ? TREE_TIMEOUT_MS
                                                                             : h->timeout_ms,
        .retry = op->kind == OP_TREE || op->kind == OP_REVISION ? &op->retry : &h->retry,
        .done = done,
        .ud = op,
    };
    return zn_http_request(h->http, &r, &op->req);
}

/* ---- token cache --------------------------------------------------------------- */

static void tok_free(tok *t)
{
    free(t->repo);
    free(t->rev);
    wipe_free(t->access);
    free(t->cas_url);
    free(t);
}

static tok *tok_get(zn_hub *h, zn_repo_type type, const char *repo, const char *rev)
{
    for (tok *t = h->toks; t; t = t->next)
        if (t->type == type && !strcmp(t->repo, repo) && !strcmp(t->rev, rev)) {
            t->last_use = ++h->tick;
            return t;
        }
    if (h->ntoks >= MAX_TOKENS) {
        /* drop the least recently used idle entry */
        tok **victim = NULL;
        for (tok **pp = &h->toks; *pp; pp = &(*pp)->next)
            if (!(*pp)->fetch && !(*pp)->waiters && (*pp)->refs == 0 &&
                (!victim || (*pp)->last_use < (*victim)->last_use))
                victim = pp;
        if (victim) {
            tok *v = *victim;
            *victim = v->next;
            tok_free(v);
            h->ntoks--;
        }
    }
    tok *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->type = type;
    t->repo = strdup(repo);
    t->rev = strdup(rev);
    if (!t->repo || !t->rev) {
        tok_free(t);
        return NULL;
    }
    t->wtail = &t->waiters;
    t->last_use = ++h->tick;
    t->next = h->toks;
    h->toks = t;
    h->ntoks++;
    return t;
}

static bool tok_fresh(zn_hub *h, const tok *t)
{
    return t->valid && t->exp - h->margin_s > wall_now();
}

/* A token as the Hub sends it: what tok_fetch_done and zn_hub_xet_token_seed
 * accept. */
static bool tok_acceptable(const char *access, const char *cas_url, double exp)
{
    return access && access[0] && strlen(access) <= MAX_TOKEN_LEN && !strpbrk(access, "\r\n") &&
           exp >= 0 && exp <= 1e13 && cas_url &&
           (!strncmp(cas_url, "https://", 8) || !strncmp(cas_url, "http://", 7)) &&
           !strpbrk(cas_url, "\r\n ");
}

/* t holds this token now (copies; cas_url without trailing '/'). */
static int tok_set(tok *t, const char *access, const char *cas_url, int64_t exp)
{
    char *na = strdup(access);
    char *nu = strdup(cas_url);
    if (!na || !nu) {
        wipe_free(na);
        free(nu);
        return -ENOMEM;
    }
    size_t l = strlen(nu);
    while (l > 0 && nu[l - 1] == '/')
        nu[--l] = 0;
    wipe_free(t->access);
    free(t->cas_url);
    t->access = na;
    t->cas_url = nu;
    t->exp = exp;
    t->valid = true;
    t->gen++;
    return 0;
}

static void op_token_ready(zn_op *op, int err);
static void recon_done(void *ud, int err, const zn_resp *resp);

static void tok_fetch_done(void *ud, int err, const zn_resp *resp)
{
    tok *t = ud;
    t->fetch = NULL;
    if (!err) {
        cJSON *j = parse_body(resp);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accessToken");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "exp");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "casUrl");
        if (!cJSON_IsString(a) || !cJSON_IsNumber(e) || !cJSON_IsString(u) ||
            !tok_acceptable(a->valuestring, u->valuestring, e->valuedouble))
            err = -EBADMSG;
        else
            err = tok_set(t, a->valuestring, u->valuestring, (int64_t)e->valuedouble);
        cJSON_Delete(j);
    } else {
        err = hub_err(err, resp);
        if (err != -ECANCELED)
            t->valid = false;
    }
    /* detach every waiter first: a callback may cancel one still queued */
    zn_op *w = t->waiters;
    t->waiters = NULL;
    t->wtail = &t->waiters;
    for (zn_op *x = w; x; x = x->wnext)
        x->waiting = NULL;
    while (w) {
        zn_op *nx = w->wnext;
        w->wnext = NULL;
        op_token_ready(w, err);
        w = nx;
    }
}

/* Token fetches are tracked by the hub through this wrapper. */
typedef struct fetch_ctx {
    zn_hub *h;
    tok *t;
} fetch_ctx;

static void tok_fetch_cb(void *ud, int err, const zn_resp *resp)
{
    fetch_ctx *fc = ud;
    zn_hub *h = fc->h;
    tok *t = fc->t;
    free(fc);
    h->pending++; /* keep h alive while waiters run */
    tok_fetch_done(t, err, resp);
    h->pending -= 2;
    hub_maybe_free(h);
}

/* Make op->t hold a fresh token: returns 1 if it does now, 0 if op now
 * waits (op_token_ready will be called), or a negative errno. */
static int tok_need(zn_op *op, bool force)
{
    zn_hub *h = op->h;
    tok *t = tok_get(h, op->type, op->repo, op->rev);
    if (!t)
        return -ENOMEM;
    if (op->t != t) {
        if (op->t)
            op->t->refs--;
        op->t = t;
        t->refs++;
    }
    if (!force && tok_fresh(h, t) && !t->fetch)
        return 1;
    op->waiting = t;
    op->wnext = NULL;
    *t->wtail = op;
    t->wtail = &op->wnext;
    if (t->fetch)
        return 0;
    int rc = -ENOMEM;
    char *rev = pct(op->rev, false);
    char *url = rev ? xasprintf("%s/api/%s/%s/xet-read-token/%s", h->endpoint,
                                type_plural(op->type), op->repo, rev)
                    : NULL;
    fetch_ctx *fc = malloc(sizeof *fc);
    if (url && fc) {
        fc->h = h;
        fc->t = t;
        const char *hdrs[3] = {NULL, "Accept: application/json", NULL};
        const char **hp = hdrs + 1;
        if (h->auth) {
            hdrs[0] = h->auth;
            hp = hdrs;
        }
        zn_http_req r = {
            .url = url,
            .headers = hp,
            .compressed = true,
            .max_body = 1u << 20,
            .follow_redirects = true, /* a renamed repo: relative 307 */
            .timeout_ms = h->timeout_ms,
            .retry = &h->retry,
            .done = tok_fetch_cb,
            .ud = fc,
        };
        rc = zn_http_request(h->http, &r, &t->fetch);
    }
    free(rev);
    free(url);
    if (rc) {
        free(fc);
        /* undo the enqueue */
        zn_op **pp = &t->waiters;
        while (*pp && *pp != op)
            pp = &(*pp)->wnext;
        if (*pp)
            *pp = op->wnext;
        t->wtail = &t->waiters;
        while (*t->wtail)
            t->wtail = &(*t->wtail)->wnext;
        op->waiting = NULL;
        return rc;
    }
    h->pending++;
    return 0;
}

static void tok_unwait(zn_op *op)
{
    tok *t = op->waiting;
    if (!t)
        return;
    zn_op **pp = &t->waiters;
    while (*pp && *pp != op)
        pp = &(*pp)->wnext;
    if (*pp)
        *pp = op->wnext;
    t->wtail = &t->waiters;
    while (*t->wtail)
        t->wtail = &(*t->wtail)->wnext;
    op->waiting = NULL;
    op->wnext = NULL;
}

/* ---- hub ------------------------------------------------------------------- */

zn_hub *zn_hub_new(zn_http *http, const zn_hub_opts *o)
{
    zn_hub_opts d = {0};
    if (!o)
        o = &d;
    const char *ep = o->endpoint;
    if (!ep || !*ep)
        ep = getenv("HF_ENDPOINT");
    if (!ep || !*ep)
        ep = "https://huggingface.co";
    if ((strncmp(ep, "https://", 8) && strncmp(ep, "http://", 7)) || strpbrk(ep, " \r\n"))
        return NULL;
    if (o->token && (strpbrk(o->token, "\r\n") || !*o->token))
        return NULL;
    zn_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->http = http;
    h->endpoint = strdup(ep);
    if (h->endpoint) {
        size_t l = strlen(h->endpoint);
        while (l > 0 && h->endpoint[l - 1] == '/')
            h->endpoint[--l] = 0;
    }
    if (o->token)
        h->auth = xasprintf("Authorization: Bearer %s", o->token);
    if (!h->endpoint || (o->token && !h->auth)) {
        free(h->endpoint);
        free(h->auth);
        free(h);
        return NULL;
    }
    h->retry = o->retry;
    h->margin_s = o->token_margin_s > 0 ? o->token_margin_s : 30;
    h->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    return h;
}

const char *zn_hub_endpoint(const zn_hub *h)
{
    return h->endpoint;
}

bool zn_hub_has_token(const zn_hub *h)
{
    return h && h->auth;
}

static void hub_maybe_free(zn_hub *h)
{
    if (!h->closing || h->pending > 0)
        return;
    while (h->toks) {
        tok *t = h->toks;
        h->toks = t->next;
        tok_free(t);
    }
    wipe_free(h->auth); /* the token leaves no copy behind in freed memory */
    free(h->endpoint);
    free(h->v1_only_cas);
    free(h);
}

void zn_hub_free(zn_hub *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->pending++;
    for (zn_op *op = h->ops, *nx; op; op = nx) {
        nx = op->next;
        zn_op_cancel(op);
    }
    for (tok *t = h->toks; t; t = t->next)
        if (t->fetch)
            zn_req_cancel(t->fetch);
    h->pending--;
    hub_maybe_free(h);
}

static void op_cancel_done(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    op->req = NULL;
    op_fail(op, -ECANCELED);
}

void zn_op_cancel(zn_op *op)
{
    if (!op || op->canceled || op->ended)
        return;
    op->canceled = true;
    if (op->req) {
        zn_req_cancel(op->req); /* its completion ends op */
        return;
    }
    if (op->waiting) {
        tok_unwait(op);
        if (zn__defer(op->h->http, op_cancel_done, op, &op->req) != 0)
            op_fail(op, -ECANCELED);
    }
}

/* Common head of every request completion: clears op->req, ends a
 * cancelled op.  Returns true when the op is over. */
static bool op_landed(zn_op *op)
{
    op->req = NULL;
    if (op->canceled) {
        op_fail(op, -ECANCELED);
        return true;
    }
    return false;
}

static int check_args(zn_hub *h, zn_repo_type type, const char *repo, const char *rev, void *cb)
{
    if (!h || !cb || !rev || !*rev || strlen(rev) > 256 || !valid_repo_id(repo) ||
        (type != ZN_MODEL && type != ZN_DATASET && type != ZN_SPACE))
        return -EINVAL;
    if (h->closing)
        return -ESHUTDOWN;
    return 0;
}

/* ---- revision ------------------------------------------------------------- */

static int64_t parse_iso8601(const char *s)
{
    struct tm tm = {0};
    int y, mo, d, hh, mm, ss;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &hh, &mm, &ss) != 6)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return (int64_t)timegm(&tm);
}

static void revision_done(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    if (op_landed(op))
        return;
    if (err) {
        op_fail(op, hub_err(err, resp));
        return;
    }
    cJSON *j = parse_body(resp);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    if (!cJSON_IsString(sha) || !is_hex(sha->valuestring, 40)) {
        cJSON_Delete(j);
        op_fail(op, -EBADMSG);
        return;
    }
    zn_revision rv;
    memset(&rv, 0, sizeof rv);
    lower_copy(rv.sha, sha->valuestring, 40);
    const cJSON *lm = cJSON_GetObjectItemCaseSensitive(j, "lastModified");
    if (cJSON_IsString(lm))
        rv.last_modified = parse_iso8601(lm->valuestring);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(id) && valid_repo_id(id->valuestring) && strlen(id->valuestring) < sizeof rv.id)
        strcpy(rv.id, id->valuestring);
    const cJSON *gated = cJSON_GetObjectItemCaseSensitive(j, "gated");
    rv.gated = cJSON_IsTrue(gated) || (cJSON_IsString(gated) && gated->valuestring[0]);
    cJSON_Delete(j);
    op->ended = true;
    op->cb.rev(op->ud, 0, &rv);
    op_end(op);
}

int zn_hub_revision(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                    zn_revision_cb cb, void *ud, zn_op **out)
{
    int rc = check_args(h, type, repo, rev, (void *)cb);
    if (rc)
        return rc;
    zn_op *op = op_new(h, OP_REVISION, type, repo, rev, ud);
    if (!op)
        return -ENOMEM;
    op->cb.rev = cb;
    op->retry = h->retry;
    if (op->retry.ratelimit_wait_ms < LISTING_RATELIMIT_WAIT_MS)
        op->retry.ratelimit_wait_ms = LISTING_RATELIMIT_WAIT_MS;
    char *url = api_url(h, op, "revision", NULL);
    rc = url ? op_http(op, "GET", url, NULL, true, NULL, true, revision_done) : -ENOMEM;
    free(url);
    if (rc) {
        op_end(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

/* ---- tree ------------------------------------------------------------------ */

void zn_tree_free(zn_tree *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].path);
    free(t->e);
    free(t);
}

/* The URL of the rel="next" link of a Link header value, malloc'd. */
static char *link_next(const char *v)
{
    const char *p = v;
    while (p && (p = strchr(p, '<'))) {
        const char *e = strchr(p, '>');
        if (!e)
            return NULL;
        const char *params = e + 1;
        const char *nl = strchr(params, '<');
        size_t plen = nl ? (size_t)(nl - params) : strlen(params);
        char *pm = strndup(params, plen);
        if (!pm)
            return NULL;
        bool next = strstr(pm, "rel=\"next\"") || strstr(pm, "rel=next");
        free(pm);
        if (next)
            return strndup(p + 1, (size_t)(e - p - 1));
        p = e + 1;
    }
    return NULL;
}

static int tree_add_page(zn_op *op, const cJSON *arr)
{
    if (!cJSON_IsArray(arr))
        return -EBADMSG;
    zn_tree *t = op->tree;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(it, "path");
        if (!cJSON_IsString(ty) || !cJSON_IsString(pa) || !pa->valuestring[0])
            return -EBADMSG;
        bool dir = !strcmp(ty->valuestring, "directory");
        if (!dir && strcmp(ty->valuestring, "file"))
            continue; /* e.g. submodules */
        if (t->n >= MAX_TREE_ENTRIES)
            return -EFBIG;
        if (t->n == op->tree_cap) {
            size_t nc = op->tree_cap ? op->tree_cap * 2 : 256;
            zn_tree_entry *ne = realloc(t->e, nc * sizeof *ne);
            if (!ne)
                return -ENOMEM;
            t->e = ne;
            op->tree_cap = nc;
        }
        zn_tree_entry *e = &t->e[t->n];
        memset(e, 0, sizeof *e);
        e->is_dir = dir;
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(it, "size");
        if (sz) {
            if (!cJSON_IsNumber(sz) || sz->valuedouble < 0 || sz->valuedouble > 9007199254740991.0)
                return -EBADMSG;
            e->size = (uint64_t)sz->valuedouble;
        }
        const cJSON *oid = cJSON_GetObjectItemCaseSensitive(it, "oid");
        if (cJSON_IsString(oid)) {
            if (!is_hex(oid->valuestring, 40))
                return -EBADMSG;
            lower_copy(e->oid, oid->valuestring, 40);
        }
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(it, "lfs");
        if (cJSON_IsObject(lfs)) {
            const cJSON *lo = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
            if (!cJSON_IsString(lo) || !is_hex(lo->valuestring, 64))
                return -EBADMSG;
            lower_copy(e->lfs_sha256, lo->valuestring, 64);
        }
        const cJSON *xh = cJSON_GetObjectItemCaseSensitive(it, "xetHash");
        if (cJSON_IsString(xh)) {
            /* a gated repo redacts it (64 '*'): as huggingface_hub does, a
             * value that is not hex is no hash; HEAD resolve tells it */
            if (is_hex(xh->valuestring, 64)) {
                lower_copy(e->xet_hash, xh->valuestring, 64);
            } else {
                e->xet_redacted = true;
                t->redacted++;
            }
        }
        if (!(e->path = strdup(pa->valuestring)))
            return -ENOMEM;
        t->n++;
    }
    return 0;
}

static void tree_done(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    if (op_landed(op))
        return;
    if (err) {
        op_fail(op, hub_err(err, resp));
        return;
    }
    cJSON *j = parse_body(resp);
    int rc = j ? tree_add_page(op, j) : -EBADMSG;
    cJSON_Delete(j);
    if (rc) {
        op_fail(op, rc);
        return;
    }
    op->tree->pages++;
    const char *link = zn_resp_header(resp, "Link");
    char *next = link ? link_next(link) : NULL;
    if (!next) {
        zn_tree *t = op->tree;
        op->tree = NULL;
        op->ended = true;
        op->cb.tree(op->ud, 0, t);
        op_end(op);
        return;
    }
    char *url = zn__resolve_url(op->page_url, next);
    free(next);
    if (!url || op->tree->pages >= MAX_TREE_PAGES || !strcmp(url, op->page_url)) {
        free(url);
        op_fail(op, url ? -ELOOP : -EBADMSG);
        return;
    }
    free(op->page_url);
    op->page_url = url;
    /* the Hub token follows only links on the endpoint's origin */
    rc = op_http(op, "GET", url, NULL, true, NULL, true, tree_done);
    if (rc)
        op_fail(op, rc);
}

int zn_hub_tree(zn_hub *h, zn_repo_type type, const char *repo, const char *rev, zn_tree_cb cb,
                void *ud, zn_op **out)
{
    int rc = check_args(h, type, repo, rev, (void *)cb);
    if (rc)
        return rc;
    zn_op *op = op_new(h, OP_TREE, type, repo, rev, ud);
    if (!op)
        return -ENOMEM;
    op->cb.tree = cb;
    op->retry = h->retry;
    if (op->retry.max_attempts < TREE_ATTEMPTS)
        op->retry.max_attempts = TREE_ATTEMPTS;
    if (op->retry.deadline_ms < TREE_DEADLINE_MS)
        op->retry.deadline_ms = TREE_DEADLINE_MS;
    if (op->retry.ratelimit_wait_ms < LISTING_RATELIMIT_WAIT_MS)
        op->retry.ratelimit_wait_ms = LISTING_RATELIMIT_WAIT_MS;
    op->tree = calloc(1, sizeof *op->tree);
    op->page_url = api_url(h, op, "tree", "?recursive=true&expand=false");
    rc = op->tree && op->page_url
             ? op_http(op, "GET", op->page_url, NULL, true, NULL, true, tree_done)
             : -ENOMEM;
    if (rc) {
        op_end(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

/* ---- resolve ------------------------------------------------------------------ */

static void copy_hdr(char *dst, size_t cap, const char *v)
{
    dst[0] = 0;
    if (v && strlen(v) < cap)
        strcpy(dst, v);
}

static void resolve_done(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    if (op_landed(op))
        return;
    if (!resp) {
        op_fail(op, err);
        return;
    }
    zn_resolve_info in;
    memset(&in, 0, sizeof in);
    in.status = zn_resp_status(resp);
    const char *c = zn_resp_header(resp, "X-Repo-Commit");
    if (c && is_hex(c, 40))
        lower_copy(in.commit, c, 40);
    const char *et = zn_resp_header(resp, "X-Linked-Etag");
    if (!et)
        et = zn_resp_header(resp, "ETag");
    if (et) {
        if (!strncmp(et, "W/", 2))
            et += 2;
        size_t l = strlen(et);
        if (l >= 2 && et[0] == '"' && et[l - 1] == '"') {
            et++;
            l -= 2;
        }
        if (l < sizeof in.etag) {
            memcpy(in.etag, et, l);
            in.etag[l] = 0;
        }
    }
    const char *sz = zn_resp_header(resp, "X-Linked-Size");
    if (!sz && (in.status < 300 || in.status >= 400))
        sz = zn_resp_header(resp, "Content-Length");
    if (sz && *sz) {
        char *end;
        unsigned long long v = strtoull(sz, &end, 10);
        if (*end == 0 && sz[0] != '-') {
            in.size = v;
            in.has_size = true;
        }
    }
    const char *xh = zn_resp_header(resp, "X-Xet-Hash");
    if (xh && is_hex(xh, 64))
        lower_copy(in.xet_hash, xh, 64);
    copy_hdr(in.error_code, sizeof in.error_code, zn_resp_header(resp, "X-Error-Code"));
    err = hub_err(err, resp);
    op->ended = true;
    op->cb.resolve(op->ud, err, &in);
    op_end(op);
}

int zn_hub_resolve(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                   const char *path, zn_resolve_cb cb, void *ud, zn_op **out)
{
    int rc = check_args(h, type, repo, rev, (void *)cb);
    if (rc)
        return rc;
    if (!valid_repo_path(path))
        return -EINVAL;
    zn_op *op = op_new(h, OP_RESOLVE, type, repo, rev, ud);
    if (!op)
        return -ENOMEM;
    op->cb.resolve = cb;
    char *erev = pct(rev, false), *epath = pct(path, true), *url = NULL;
    if (erev && epath)
        url = xasprintf("%s/%s%s/resolve/%s/%s", h->endpoint,
                        type == ZN_DATASET ? "datasets/" : type == ZN_SPACE ? "spaces/" : "",
                        repo, erev, epath);
    /* relative redirects only (renames, resolve-cache): never the CDN one */
    rc = url ? op_http(op, "HEAD", url, NULL, true, NULL, true, resolve_done) : -ENOMEM;
    free(erev);
    free(epath);
    free(url);
    if (rc) {
        op_end(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

/* ---- xet token --------------------------------------------------------------- */

static void token_deliver(zn_op *op, int err)
{
    if (err) {
        op_fail(op, err);
        return;
    }
    zn_xet_token xt = {op->t->access, op->t->cas_url, op->t->exp};
    op->ended = true;
    op->cb.token(op->ud, 0, &xt);
    op_end(op);
}

static void token_deferred(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    if (op_landed(op))
        return;
    token_deliver(op, op->t->valid ? 0 : -EIO);
}

int zn_hub_xet_token(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                     bool refresh, zn_token_cb cb, void *ud, zn_op **out)
{
    int rc = check_args(h, type, repo, rev, (void *)cb);
    if (rc)
        return rc;
    zn_op *op = op_new(h, OP_TOKEN, type, repo, rev, ud);
    if (!op)
        return -ENOMEM;
    op->cb.token = cb;
    rc = tok_need(op, refresh);
    if (rc == 1)
        rc = zn__defer(h->http, token_deferred, op, &op->req);
    if (rc < 0) {
        op_end(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

int zn_hub_xet_token_seed(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                          const zn_xet_token *xt)
{
    int rc = check_args(h, type, repo, rev, (void *)xt);
    if (rc)
        return rc;
    if (!tok_acceptable(xt->access_token, xt->cas_url, (double)xt->exp))
        return -EINVAL;
    if (xt->exp - h->margin_s <= wall_now())
        return -ESTALE; /* it would be fetched again at its first use anyway */
    tok *t = tok_get(h, type, repo, rev);
    if (!t)
        return -ENOMEM;
    if (t->fetch || tok_fresh(h, t))
        return -EEXIST; /* one is being fetched, or a fresh one is there */
    return tok_set(t, xt->access_token, xt->cas_url, xt->exp);
}

/* ---- reconstruction ------------------------------------------------------------ */

void zn_recon_free(xet_recon *r)
{
    if (!r)
        return;
    xet_recon_free(r);
    free(r);
}

/* GET {casUrl}/v{2|1}/reconstructions/{id} with the Xet token only. */
static int recon_request(zn_op *op)
{
    zn_hub *h = op->h;
    tok *t = op->t;
    op->gen = t->gen;
    if (op->version == 2 && h->v1_only_cas && !strcmp(h->v1_only_cas, t->cas_url))
        op->version = 1;
    char *url = xasprintf("%s/v%d/reconstructions/%s", t->cas_url, op->version, op->path);
    char *auth = xasprintf("Authorization: Bearer %s", t->access);
    int rc = url && auth ? op_http(op, "GET", url, auth, false,
                                   op->has_range ? &op->range : NULL, false, recon_done)
                         : -ENOMEM;
    free(url);
    wipe_free(auth);
    return rc;
}

static void recon_send(zn_op *op)
{
    int rc = recon_request(op);
    if (rc)
        op_fail(op, rc);
}

static void recon_done(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    zn_hub *h = op->h;
    if (op_landed(op))
        return;
    int st = zn_resp_status(resp);
    if (err && st == 401 && op->auth_retries < MAX_AUTH_RETRIES) {
        /* token rejected: refresh it (once for all who used this one) */
        op->auth_retries++;
        int rc = tok_need(op, op->t->gen == op->gen);
        if (rc == 1)
            recon_send(op);
        else if (rc < 0)
            op_fail(op, rc);
        return;
    }
    if (err && (st == 404 || st == 501) && op->version == 2) {
        op->version = 1;
        op->v2_missing = st == 404;
        if (st == 501 && !h->v1_only_cas)
            h->v1_only_cas = strdup(op->t->cas_url);
        recon_send(op);
        return;
    }
    if (err) {
        op_fail(op, err);
        return;
    }
    if (op->version == 1 && op->v2_missing && !h->v1_only_cas)
        h->v1_only_cas = strdup(op->t->cas_url);
    size_t len;
    const char *body = zn_resp_body(resp, &len);
    xet_recon *r = calloc(1, sizeof *r);
    if (!r) {
        op_fail(op, -ENOMEM);
        return;
    }
    int rc = body ? xet_recon_parse(body, len, op->has_range ? op->range.start : 0, r)
                  : -EBADMSG;
    if (rc) {
        free(r);
        op_fail(op, rc < 0 ? rc : -EBADMSG);
        return;
    }
    op->ended = true;
    op->cb.recon(op->ud, 0, r);
    op_end(op);
}

static void op_token_ready(zn_op *op, int err)
{
    if (op->canceled) {
        /* cancelled while waiting without a deferral (hub closing) */
        op_fail(op, -ECANCELED);
        return;
    }
    if (op->kind == OP_TOKEN) {
        token_deliver(op, err);
        return;
    }
    if (err) {
        op_fail(op, err);
        return;
    }
    recon_send(op);
}

int zn_cas_reconstruction(zn_hub *h, zn_repo_type type, const char *repo, const char *rev,
                          const char *file_id, const zn_range *range, zn_recon_cb cb, void *ud,
                          zn_op **out)
{
    int rc = check_args(h, type, repo, rev, (void *)cb);
    if (rc)
        return rc;
    if (!is_hex(file_id, 64) || (range && range->start > range->end))
        return -EINVAL;
    zn_op *op = op_new(h, OP_RECON, type, repo, rev, ud);
    if (!op)
        return -ENOMEM;
    op->cb.recon = cb;
    op->version = 2;
    if (range) {
        op->range = *range;
        op->has_range = true;
    }
    op->path = malloc(65);
    if (!op->path) {
        op_end(op);
        return -ENOMEM;
    }
    lower_copy(op->path, file_id, 64);
    rc = tok_need(op, false);
    if (rc == 1) /* cached token: the CAS request itself makes the answer async */
        rc = recon_request(op);
    if (rc < 0) {
        op_end(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

/* ---- repo info, anonymous -------------------------------------------------- */

static void info_done(void *ud, int err, const zn_resp *resp)
{
    zn_op *op = ud;
    if (op_landed(op))
        return;
    if (err) {
        op_fail(op, hub_err(err, resp));
        return;
    }
    cJSON *j = parse_body(resp);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        op_fail(op, -EBADMSG);
        return;
    }
    zn_repo_info in = {0};
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(j, "private");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "gated");
    if (cJSON_IsBool(pv)) {
        in.has_private = true;
        in.private_ = cJSON_IsTrue(pv);
    }
    if (cJSON_IsFalse(g)) {
        in.has_gated = true;
    } else if (cJSON_IsTrue(g) || cJSON_IsString(g)) {
        in.has_gated = in.gated = true;
        snprintf(in.gated_mode, sizeof in.gated_mode, "%s",
                 cJSON_IsString(g) ? g->valuestring : "true");
    }
    cJSON_Delete(j);
    op->ended = true;
    op->cb.info(op->ud, 0, &in);
    op_end(op);
}

int zn_hub_repo_info_anon(zn_hub *h, zn_repo_type type, const char *repo, zn_repo_info_cb cb,
                          void *ud, zn_op **out)
{
    int rc = check_args(h, type, repo, "-", (void *)cb);
    if (rc)
        return rc;
    zn_op *op = op_new(h, OP_INFO, type, repo, "-", ud);
    if (!op)
        return -ENOMEM;
    op->cb.info = cb;
    char *url = xasprintf("%s/api/%s/%s", h->endpoint, type_plural(type), repo);
    /* hub_auth false: never the Hub token, so the answer is what anyone gets */
    rc = url ? op_http(op, "GET", url, NULL, false, NULL, true, info_done) : -ENOMEM;
    free(url);
    if (rc) {
        op_end(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}
