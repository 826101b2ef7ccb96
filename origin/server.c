/* server.c — `zestfs-origin serve`: Hub API + CAS + CDN over libmicrohttpd.
 *
 * One MHD daemon, a thread per connection (blocking handlers are fine: the
 * latency and bandwidth knobs simply sleep).  Paths are routed on the RAW
 * request path (the unescape callback is a no-op) and each segment is
 * percent-decoded on its own, so `refs%2Fpr%2F1` stays one segment.
 *
 * Routes (t = models | datasets | spaces; the model prefix is empty in
 * resolve URLs):
 *   GET  /api/t/ns/name[/revision/REV]          repo info with siblings
 *   GET  /api/t/ns/name/tree/REV[/PATH]         tree (recursive, expand, cursor)
 *   POST /api/t/ns/name/paths-info/REV          paths info (JSON or form body)
 *   GET  /api/t/ns/name/refs                    branches
 *   GET  /api/t/ns/name/xet-read-token/REV      {accessToken, exp, casUrl}
 *   GET  /api/t/ns/name/xet-write-token/REV
 *   HEAD|GET /[datasets/|spaces/]ns/name/resolve/REV/PATH
 *   HEAD|GET /_bridge/t/ns/name/COMMIT/PATH     whole-file bytes of Xet files
 *   GET  /v1|v2/reconstructions/FILEHASH        CAS (Bearer accessToken)
 *   HEAD /v1/files/FILEHASH, HEAD|POST /v1/xorbs/PREFIX/HASH,
 *   POST /v1/shards, /v2/shards, GET /v1/chunks/PREFIX/HASH
 *   GET  /xorbs/default/HASH?X-Xet-Signed-Range=…&Expires=…&Signature=…
 *   GET  /_origin/stats, /_origin/knobs; POST /_origin/knobs,
 *        /_origin/stats/reset (POST: loopback clients only)
 *
 * Request bodies (issue #19): the first call of the access handler (headers
 * only) routes the request, checks its authorization (CAS write token, Hub
 * token, loopback) and its Content-Length against the route's cap; a
 * refusal (401/403/404, 413) is queued then, so MHD never reads the body.
 * Only POST routes that take a body have a cap above 0; a chunked body that
 * runs past its cap closes the connection.
 *
 * Bytes of xorbs and regular files are served with
 * MHD_create_response_from_fd_at_offset64 (sendfile on plain HTTP) unless a
 * fault knob that touches bodies is on; then a pread-based callback
 * applies the knob.  Nothing is ever read whole into memory to serve a range.
 *
 * Files: this one holds the state, auth, Range parsing, routing and the
 * daemon; hub_routes.c the Hub API, cas.c the CAS, cdn.c the signed xorb
 * URLs and their ranges, faults.c the fault knobs and fd bodies, httputil.c
 * request helpers; server_int.h what they share.
 */
#include "server_int.h"

static srv *g_srv;

uint64_t os__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void os__sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void bump(counter **arr, size_t *n, size_t *cap, const char *key, uint64_t v)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*arr)[i].key, key)) {
            (*arr)[i].bytes += v;
            return;
        }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        counter *na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return;
        *arr = na;
        *cap = nc;
    }
    snprintf((*arr)[*n].key, sizeof(*arr)[*n].key, "%s", key);
    (*arr)[*n].bytes = v;
    (*n)++;
}

void os__account(srv *S, const char *client, const char *xorb, uint64_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&S->stmu);
    S->bytes_total += n;
    if (client && client[0])
        bump(&S->per_client, &S->nper_client, &S->cap_client, client, n);
    if (xorb && xorb[0]) {
        S->xorb_bytes_total += n;
        bump(&S->per_xorb, &S->nper_xorb, &S->cap_xorb, xorb, n);
    }
    pthread_mutex_unlock(&S->stmu);
}

/* ---- auth ---------------------------------------------------------------- */

static const char *bearer(struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a)
        return NULL;
    if (strncasecmp(a, "Bearer ", 7) != 0)
        return "";
    a += 7;
    while (*a == ' ')
        a++;
    return a;
}

bool os__ct_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned d = (unsigned)(la ^ lb);
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

enum hub_auth os__hub_auth(srv *S, struct MHD_Connection *c)
{
    const char *t = bearer(c);
    if (!t)
        return AUTH_NONE;
    for (size_t i = 0; i < S->o->ntokens; i++)
        if (os__ct_eq(t, S->o->tokens[i]))
            return AUTH_VALID;
    /* without configured tokens any bearer is accepted as anonymous */
    return S->o->ntokens ? AUTH_INVALID : AUTH_NONE;
}

/* Look up a repo visible to this request.  On failure an error response has
 * been queued (ret set) and false returned. */
static bool visible_repo(srv *S, struct MHD_Connection *c, const char *type, const char *id,
                         o_repo *r, enum MHD_Result *ret)
{
    enum hub_auth a = os__hub_auth(S, c);
    if (a == AUTH_INVALID) {
        *ret = os__send_err(c, 401, NULL, "Invalid credentials in Authorization header");
        return false;
    }
    if (a != AUTH_VALID && S->o->auth_required) {
        *ret = os__send_err(c, 401, NULL, "Authentication required");
        return false;
    }
    int e = o_repo_load(S->s, type, id, r);
    if (e || (r->private_ && a != AUTH_VALID)) {
        /* like the Hub: anonymous callers get 401, authenticated ones 404 */
        *ret = os__send_err(c, a == AUTH_VALID ? 404 : 401, "RepoNotFound", "Repository not found");
        return false;
    }
    return true;
}

/* CAS access tokens: "zo1_" hex(payload) "_" hex(hmac(secret, payload)),
 * payload = "scope|type|id|commit|exp". */
char *os__make_cas_token(srv *S, const char *scope, const o_repo *r, const char *commit,
                         int64_t exp)
{
    char *payload = o_strdup_printf("%s|%s|%s|%s|%lld", scope, r->type, r->id, commit, (long long)exp);
    if (!payload)
        return NULL;
    size_t pl = strlen(payload);
    uint8_t mac[32];
    o_hmac_sha256(S->s->secret, 32, payload, pl, mac);
    char *tok = malloc(4 + 2 * pl + 1 + 64 + 1);
    if (tok) {
        memcpy(tok, "zo1_", 4);
        o_hex((const uint8_t *)payload, pl, tok + 4);
        tok[4 + 2 * pl] = '_';
        o_hex(mac, 32, tok + 4 + 2 * pl + 1);
    }
    free(payload);
    return tok;
}

/* 0 ok; -EACCES bad/expired; -EPERM wrong scope */
int os__check_cas_token(srv *S, struct MHD_Connection *c, bool write)
{
    const char *t = bearer(c);
    if (!t || strncmp(t, "zo1_", 4) != 0)
        return -EACCES;
    const char *us = strchr(t + 4, '_');
    if (!us)
        return -EACCES;
    size_t hl = (size_t)(us - (t + 4));
    if (hl % 2 || hl > 2048 || strlen(us + 1) != 64)
        return -EACCES;
    char payload[1025];
    if (xet_unhex(t + 4, hl / 2, (uint8_t *)payload) != 0)
        return -EACCES;
    payload[hl / 2] = 0;
    uint8_t mac[32];
    char mh[65];
    o_hmac_sha256(S->s->secret, 32, payload, hl / 2, mac);
    o_hex(mac, 32, mh);
    if (!os__ct_eq(mh, us + 1))
        return -EACCES;
    const char *last = strrchr(payload, '|');
    if (!last)
        return -EACCES;
    long long exp = strtoll(last + 1, NULL, 10);
    if (exp <= (long long)time(NULL))
        return -EACCES;
    if (write && strncmp(payload, "write|", 6) != 0)
        return -EPERM;
    return 0;
}

enum MHD_Result os__cas_denied(struct MHD_Connection *c, int e)
{
    if (e == -EPERM)
        return os__send_err(c, 403, NULL, "token scope does not allow this operation");
    return os__send_err(c, 401, NULL, "missing, invalid or expired Xet access token");
}

/* ---- Range header ---------------------------------------------------------- */

/* 1 = range set, 0 = no header, -1 = malformed / multi, -2 = unsatisfiable */
int os__parse_range(const char *h, uint64_t size, uint64_t *s, uint64_t *e)
{
    if (!h)
        return 0;
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return -1;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        uint64_t n = strtoull(p + 1, &end, 10);
        if (*end || end == p + 1)
            return -1;
        if (n == 0 || size == 0)
            return -2;
        if (n > size)
            n = size;
        *s = size - n;
        *e = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t a = strtoull(p, &end, 10);
    if (*end != '-')
        return -1;
    p = end + 1;
    uint64_t b;
    if (*p == 0) {
        b = UINT64_MAX;
    } else {
        if (*p < '0' || *p > '9')
            return -1;
        b = strtoull(p, &end, 10);
        if (*end)
            return -1;
        if (b < a)
            return -1;
    }
    if (a >= size)
        return -2;
    if (b >= size)
        b = size - 1;
    *s = a;
    *e = b;
    return 1;
}

/* ---- dispatcher -------------------------------------------------------------- */

/* A gated repo refuses this caller (hubreal.c): the answer is queued. */
static bool gate_denies(ctx *x, const o_repo *r, enum MHD_Result *ret)
{
    char *base = os__base_url(x->S, x->c);
    bool d = o_hr_gate_denies(x->S->hr, x->c, r->type, r->id, base, ret);
    free(base);
    return d;
}

static enum MHD_Result route(ctx *x)
{
    srv *S = x->S;
    segs *g = &x->sg;
    struct MHD_Connection *c = x->c;
    enum MHD_Result ret;

    if (g->n >= 1 && !strcmp(g->v[0], "_origin"))
        return os__h_control(x);

    pthread_mutex_lock(&S->stmu);
    S->requests++;
    pthread_mutex_unlock(&S->stmu);
    if (S->latency_ms)
        os__sleep_ns((uint64_t)S->latency_ms * 1000000ull);
    if (S->fail_every) {
        uint64_t n = ++S->nreq;
        if (n % S->fail_every == 0) {
            pthread_mutex_lock(&S->stmu);
            S->faults++;
            pthread_mutex_unlock(&S->stmu);
            return os__send_err(c, 503, NULL, "injected failure (fail_every)");
        }
    }

    if (o_hr_pre(S->hr, c, g->v, g->n, &ret))
        return ret;
    /* Hub write API */
    if (g->n == 3 && !strcmp(g->v[0], "api") && !strcmp(g->v[1], "repos") && !strcmp(g->v[2], "create") &&
        x->post)
        return os__h_create_repo(x);
    /* Hub API */
    if (g->n >= 4 && !strcmp(g->v[0], "api") && o_type_from_plural(g->v[1])) {
        const char *type = o_type_from_plural(g->v[1]);
        char id[260];
        snprintf(id, sizeof id, "%s/%s", g->v[2], g->v[3]);
        o_repo r;
        if (!visible_repo(S, c, type, id, &r, &ret))
            return ret;
        if (g->n == 4 && (x->get || x->head))
            return os__h_repo_info(x, &r, "main");
        if (g->n == 4) /* another method on the repo itself (there is no g->v[4]) */
            return os__send_err(c, 404, NULL, "not found");
        const char *op = g->v[4];
        if (!strcmp(op, "revision") && g->n == 6 && (x->get || x->head))
            return os__h_repo_info(x, &r, g->v[5]);
        if (!strcmp(op, "refs") && g->n == 5 && (x->get || x->head))
            return os__h_refs(x, &r);
        if (!strcmp(op, "tree") && g->n >= 6 && (x->get || x->head)) {
            char *dir = os__join_segs(g, 6);
            ret = dir ? os__h_tree(x, &r, g->v[5], dir) : MHD_NO;
            free(dir);
            return ret;
        }
        if (!strcmp(op, "paths-info") && g->n == 6 && x->post)
            return os__h_paths_info(x, &r, g->v[5]);
        if (!strcmp(op, "preupload") && g->n == 6 && x->post) {
            cJSON *j = o_hub_preupload(S->s, &r, g->v[5], os__body_of(x), x->rq->len);
            return j ? os__send_json(c, 200, j, NULL) : os__send_err(c, 400, NULL, "invalid preupload body");
        }
        if (!strcmp(op, "commit") && g->n == 6 && x->post)
            return os__h_commit(x, &r, g->v[5]);
        if (!strcmp(op, "xet-read-token") && g->n == 6 && (x->get || x->head))
            return gate_denies(x, &r, &ret) ? ret : os__h_token(x, &r, g->v[5], false);
        if (!strcmp(op, "xet-write-token") && g->n == 6 && (x->get || x->head))
            return os__h_token(x, &r, g->v[5], true);
        return os__send_err(c, 404, NULL, "not found");
    }
    /* bridge */
    if (g->n >= 6 && !strcmp(g->v[0], "_bridge") && (x->get || x->head)) {
        char id[260];
        snprintf(id, sizeof id, "%s/%s", g->v[2], g->v[3]);
        o_repo r;
        if (!visible_repo(S, c, g->v[1], id, &r, &ret) || gate_denies(x, &r, &ret))
            return ret;
        char *path = os__join_segs(g, 5);
        ret = path ? os__h_resolve(x, &r, g->v[4], path, true) : MHD_NO;
        free(path);
        return ret;
    }
    /* CAS */
    if (g->n == 3 && !strcmp(g->v[1], "reconstructions") && x->get &&
        (!strcmp(g->v[0], "v1") || !strcmp(g->v[0], "v2")))
        return os__h_reconstruction(x, g->v[2], g->v[0][1] - '0');
    if (g->n == 3 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "files") && (x->head || x->get)) {
        int e = os__check_cas_token(S, c, false);
        if (e)
            return os__cas_denied(c, e);
        xet_hash h;
        o_file f;
        if (xet_hash_from_string(g->v[2], &h) != 0 || o_file_load(S->s, &h, &f) != 0)
            return os__send_err(c, 404, NULL, "file not found");
        uint64_t sz = f.size;
        o_file_free(&f);
        return os__head_len(c, sz);
    }
    if (g->n == 4 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "xorbs")) {
        if (x->post)
            return os__h_xorb_post(x, g->v[3]);
        if (x->head) {
            int e = os__check_cas_token(S, c, false);
            if (e)
                return os__cas_denied(c, e);
            xet_hash h;
            uint64_t sz;
            if (xet_hash_from_string(g->v[3], &h) != 0 || !o_xorb_exists(S->s, &h, &sz))
                return os__send_err(c, 404, NULL, "xorb not found");
            return os__head_len(c, sz);
        }
    }
    if (g->n == 2 && !strcmp(g->v[1], "shards") && x->post &&
        (!strcmp(g->v[0], "v1") || !strcmp(g->v[0], "v2")))
        return os__h_shard_post(x, g->v[0][1] - '0');
    if (g->n == 4 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "chunks") && x->get)
        return os__h_chunk_query(x, g->v[3]);
    /* CDN */
    if (g->n == 3 && !strcmp(g->v[0], "xorbs") && (x->get || x->head)) {
        if (S->refuse_xorbs) {
            pthread_mutex_lock(&S->stmu);
            S->faults++;
            pthread_mutex_unlock(&S->stmu);
            return os__send_err(c, 503, NULL, "injected failure (refuse_xorbs)");
        }
        return os__h_xorb_get(x, g->v[2]);
    }
    /* resolve */
    {
        size_t o = 0;
        const char *type = "model";
        if (g->n >= 1 && (!strcmp(g->v[0], "datasets") || !strcmp(g->v[0], "spaces"))) {
            type = o_type_from_plural(g->v[0]);
            o = 1;
        }
        if (g->n >= o + 5 && !strcmp(g->v[o + 2], "resolve") && (x->get || x->head)) {
            char id[260];
            snprintf(id, sizeof id, "%s/%s", g->v[o], g->v[o + 1]);
            o_repo r;
            if (!visible_repo(S, c, type, id, &r, &ret) || gate_denies(x, &r, &ret))
                return ret;
            char *path = os__join_segs(g, o + 4);
            ret = path ? os__h_resolve(x, &r, g->v[o + 3], path, false) : MHD_NO;
            free(path);
            return ret;
        }
    }
    return os__send_err(c, 404, NULL, "not found");
}

/* Before the body (issue #19): which routes take a body, how much, and
 * whether this request may send it.  Called with the headers only; returns
 * true to go on reading, false with an answer queued in *ret (401/403/404 as
 * the route would give after the body, 413 past the cap), so an
 * unauthorized or oversized upload costs no memory and no read. */
static bool pre_body(ctx *x, enum MHD_Result *ret)
{
    srv *S = x->S;
    segs *g = &x->sg;
    struct MHD_Connection *c = x->c;
    size_t max = 0;
    int need = 0; /* 1 CAS write token, 2 Hub repo access, 3 Hub write, 4 loopback */
    const char *type = NULL;
    /* the real Hub's answers (a renamed repo's 307, 429, a revoked token)
     * come before its own auth, as they do after the body (route()) */
    if (x->post && o_hr_pre(S->hr, c, g->v, g->n, ret))
        return false;
    if (x->post) {
        if (g->n == 4 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "xorbs"))
            max = CAP_XORB, need = 1;
        else if (g->n == 2 && !strcmp(g->v[1], "shards") &&
                 (!strcmp(g->v[0], "v1") || !strcmp(g->v[0], "v2")))
            max = CAP_SHARD, need = 1;
        else if (g->n == 3 && !strcmp(g->v[0], "api") && !strcmp(g->v[1], "repos") &&
                 !strcmp(g->v[2], "create"))
            max = CAP_SMALL, need = 3;
        else if (g->n == 6 && !strcmp(g->v[0], "api") && (type = o_type_from_plural(g->v[1])) &&
                 (!strcmp(g->v[4], "paths-info") || !strcmp(g->v[4], "preupload")))
            max = CAP_JSON, need = 2;
        else if (g->n == 6 && !strcmp(g->v[0], "api") && (type = o_type_from_plural(g->v[1])) &&
                 !strcmp(g->v[4], "commit"))
            max = CAP_COMMIT, need = 2;
        else if (g->n >= 2 && !strcmp(g->v[0], "_origin"))
            max = CAP_SMALL, need = 4;
    }
    x->rq->max = max;
    if (need == 1) {
        int e = os__check_cas_token(S, c, true);
        if (e) {
            *ret = os__cas_denied(c, e);
            return false;
        }
    } else if (need == 2) {
        char id[260];
        snprintf(id, sizeof id, "%s/%s", g->v[2], g->v[3]);
        o_repo r;
        if (!visible_repo(S, c, type, id, &r, ret))
            return false;
        if (!strcmp(g->v[4], "commit") && !os__may_write(S, c)) {
            *ret = os__send_err(c, 401, NULL, "committing requires a valid token");
            return false;
        }
    } else if (need == 3) {
        if (os__hub_auth(S, c) == AUTH_INVALID || !os__may_write(S, c)) {
            *ret = os__send_err(c, 401, NULL, "creating a repo requires a valid token");
            return false;
        }
    } else if (need == 4 && !os__is_loopback(c)) {
        *ret = os__send_err(c, 403, NULL, "control endpoint: loopback only");
        return false;
    }
    /* hf_xet >= 1.8 first asks for a xorb upload grant; this origin offers
     * none, and a 404 (what route() answers) sends the client to the xorb
     * upload API — a 413 for its body would fail the upload */
    if (x->post && g->n >= 2 && !strcmp(g->v[0], "v1") && !strcmp(g->v[1], "xorb-grants")) {
        *ret = os__send_err(c, 404, NULL, "xorb upload grants are not offered: use /v1/xorbs");
        return false;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end == cl || *end || errno || n > max) {
            *ret = os__send_err(c, 413, NULL, max ? "request body larger than this route takes"
                                              : "this route takes no request body");
            return false;
        }
        if (n) { /* one allocation of the announced size */
            x->rq->body = malloc((size_t)n);
            if (!x->rq->body) {
                *ret = MHD_NO;
                return false;
            }
            x->rq->cap = (size_t)n;
        }
    }
    return true;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    srv *S = cls;
    req *rq = *con_cls;
    ctx x = {.S = S, .c = c, .rq = rq, .method = method};
    x.head = !strcmp(method, "HEAD");
    x.get = !strcmp(method, "GET");
    x.post = !strcmp(method, "POST") || !strcmp(method, "PUT");
    if (!rq) { /* headers only: authorize and size the body before reading it */
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        os__client_str(c, rq->client, sizeof rq->client);
        *con_cls = rq;
        x.rq = rq;
        if (os__split_path(url, &x.sg) != 0) {
            rq->answered = true;
            return os__send_err(c, 400, NULL, "bad path");
        }
        enum MHD_Result ret = MHD_YES;
        if (!pre_body(&x, &ret))
            rq->answered = true;
        os__segs_free(&x.sg);
        return ret;
    }
    if (rq->answered) { /* answered before the body; MHD discards the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (n > rq->max - rq->len)
            return MHD_NO; /* a chunked body past its cap: close */
        if (rq->len + n > rq->cap) {
            size_t nc = rq->cap ? rq->cap : 65536;
            while (nc < rq->len + n)
                nc *= 2;
            if (nc > rq->max)
                nc = rq->max;
            uint8_t *nb = realloc(rq->body, nc);
            if (!nb)
                return MHD_NO;
            rq->body = nb;
            rq->cap = nc;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (os__split_path(url, &x.sg) != 0)
        return os__send_err(c, 400, NULL, "bad path");
    enum MHD_Result r = route(&x);
    os__segs_free(&x.sg);
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *S = cls;
    req *rq = *con_cls;
    if (!rq)
        return;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->planned)
        os__account(S, rq->client, rq->xorb, rq->planned);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static size_t unescape_noop(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static volatile sig_atomic_t g_stop;
static void on_sig(int sig)
{
    g_stop = 1;
}

static int parse_listen(const char *l, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(l, ':');
    if (!colon)
        return -EINVAL;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 0 || port > 65535)
        return -EINVAL;
    char host[128];
    size_t hl = (size_t)(colon - l);
    if (hl >= sizeof host)
        return -EINVAL;
    memcpy(host, l, hl);
    host[hl] = 0;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (host[n - 1] != ']')
            return -EINVAL;
        host[n - 1] = 0;
        memmove(host, host + 1, n - 1);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        *sl = sizeof *a;
        return AF_INET6;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (host[0] == 0 || !strcmp(host, "*"))
        a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -EINVAL;
    *sl = sizeof *a;
    return AF_INET;
}

int o_server_start(o_store *st, const o_serve_opts *o, bool no_listen, o_server **out)
{
    srv *S = calloc(1, sizeof *S);
    if (!S)
        return -ENOMEM;
    g_srv = S;
    S->s = st;
    S->o = o;
    S->latency_ms = o->latency_ms;
    S->conn_bps = o->conn_bps;
    S->total_bps = o->total_bps;
    S->fail_every = o->fail_every;
    S->truncate_every = o->truncate_every;
    S->flip_every = o->flip_every;
    S->stall_ms = 60000;
    S->token_ttl = o->token_ttl;
    S->url_ttl = o->url_ttl;
    pthread_mutex_init(&S->stmu, NULL);
    pthread_mutex_init(&S->bwmu, NULL);
    pthread_mutex_init(&S->upmu, NULL);
    S->hr = o_hr_new();
    if (!S->hr) {
        o_server_stop(S);
        return -ENOMEM;
    }
    for (size_t i = 0; i + 1 < o->nhr_flags; i += 2)
        if (o_hr_flag(S->hr, o->hr_flags[i], o->hr_flags[i + 1]) != 0) {
            fprintf(stderr, "zestfs-origin: bad %s %s\n", o->hr_flags[i], o->hr_flags[i + 1]);
            o_server_stop(S);
            return -EINVAL;
        }
    int e = o_cindex_init(&S->ci);
    if (!e)
        e = o_cindex_load(&S->ci, st);
    if (e) {
        o_hr_free(S->hr);
        free(S);
        return e;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    int fam = parse_listen(o->listen ? o->listen : "127.0.0.1:8080", &ss, &sl);
    if (fam < 0) {
        fprintf(stderr, "zestfs-origin: bad --listen address\n");
        o_cindex_free(&S->ci);
        o_hr_free(S->hr);
        free(S);
        return -EINVAL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    if (fam == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (no_listen) /* fuzzing: quiet (MHD logs every malformed request) */
        flags = (flags & ~(unsigned)MHD_USE_ERROR_LOG) | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (o->tls_cert || o->tls_key) {
        size_t n;
        if (!o->tls_cert || !o->tls_key ||
            o_read_file(o->tls_cert, (uint8_t **)&S->cert, &n, 1 << 20) != 0 ||
            o_read_file(o->tls_key, (uint8_t **)&S->key, &n, 1 << 20) != 0) {
            fprintf(stderr, "zestfs-origin: cannot read --tls-cert/--tls-key\n");
            free(S->cert);
            free(S->key);
            o_cindex_free(&S->ci);
            o_hr_free(S->hr);
        free(S);
            return -EINVAL;
        }
        flags |= MHD_USE_TLS;
        S->tls = true;
    }
    signal(SIGPIPE, SIG_IGN);
    if (S->tls)
        S->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, S, MHD_OPTION_SOCK_ADDR, &ss,
                                MHD_OPTION_NOTIFY_COMPLETED, completed_cb, S,
                                MHD_OPTION_UNESCAPE_CALLBACK, unescape_noop, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                                MHD_OPTION_HTTPS_MEM_KEY, S->key, MHD_OPTION_HTTPS_MEM_CERT, S->cert,
                                MHD_OPTION_END);
    else
        S->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, S, MHD_OPTION_SOCK_ADDR, &ss,
                                MHD_OPTION_NOTIFY_COMPLETED, completed_cb, S,
                                MHD_OPTION_UNESCAPE_CALLBACK, unescape_noop, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!S->d) {
        fprintf(stderr, "zestfs-origin: cannot start the HTTP server on %s\n", o->listen);
        free(S->cert);
        free(S->key);
        o_cindex_free(&S->ci);
        o_hr_free(S->hr);
        free(S);
        return -EADDRINUSE;
    }
    *out = S;
    return 0;
}

unsigned o_server_port(o_server *S)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : 0;
}

int o_server_add(o_server *S, int fd, const struct sockaddr *addr, socklen_t len)
{
    return MHD_add_connection(S->d, fd, addr, len) == MHD_YES ? 0 : -EIO;
}

void o_server_stop(o_server *S)
{
    if (!S)
        return;
    MHD_stop_daemon(S->d);
    free(S->cert);
    free(S->key);
    o_cindex_free(&S->ci);
    free(S->per_xorb);
    free(S->per_client);
    o_hr_free(S->hr);
    pthread_mutex_destroy(&S->stmu);
    pthread_mutex_destroy(&S->bwmu);
    pthread_mutex_destroy(&S->upmu);
    if (g_srv == S)
        g_srv = NULL;
    free(S);
}

int o_serve(o_store *st, const o_serve_opts *o)
{
    srv *S;
    int e = o_server_start(st, o, false, &S);
    if (e)
        return e;
    unsigned port = o_server_port(S);
    if (!o->quiet)
        fprintf(stderr, "zestfs-origin: serving %s on %s://%s (port %u)\n", st->dir,
                S->tls ? "https" : "http", o->listen, port);
    if (o->port_file) {
        char *tmp = o_strdup_printf("%s.tmp", o->port_file);
        FILE *pf = tmp ? fopen(tmp, "w") : NULL;
        if (pf) {
            fprintf(pf, "%u\n", port);
            fclose(pf);
            rename(tmp, o->port_file);
        }
        free(tmp);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!g_stop)
        pause();
    o_server_stop(S);
    return 0;
}
