/* faults.c — the origin's fault injection and its knobs: bodies served
 * through a pread callback that applies latency, bandwidth, failures,
 * truncation, bit flips and stalls; /_origin/knobs and /_origin/stats. */
#include "server_int.h"

/* ---- body readers (faults, bandwidth, bridge) ----------------------------- */

typedef struct fd_reader {
    srv *S;
    int fd;
    uint64_t off, len;      /* file window */
    uint64_t trunc_at;      /* UINT64_MAX = none */
    uint64_t flip_at;       /* UINT64_MAX = none */
    uint64_t stall_at;      /* UINT64_MAX = none: there, send nothing for stall_ms, then close */
    uint64_t start_ns, sent;
    char xorb[65];
    char client[64];
} fd_reader;

void os__throttle(srv *S, uint64_t start_ns, uint64_t sent, size_t n)
{
    uint64_t cb = S->conn_bps, tb = S->total_bps;
    if (cb) {
        uint64_t due = start_ns + (sent + n) * 1000000000ull / cb;
        uint64_t now = os__now_ns();
        if (due > now)
            os__sleep_ns(due - now);
    }
    if (tb) {
        pthread_mutex_lock(&S->bwmu);
        uint64_t now = os__now_ns();
        if (S->bw_next_ns < now)
            S->bw_next_ns = now;
        uint64_t at = S->bw_next_ns;
        S->bw_next_ns += (uint64_t)n * 1000000000ull / tb;
        pthread_mutex_unlock(&S->bwmu);
        if (at > now)
            os__sleep_ns(at - now);
    }
}

static ssize_t fd_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    fd_reader *r = cls;
    if (pos >= r->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos >= r->trunc_at)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= r->stall_at) { /* a stalled CDN connection: silent, then gone */
        os__sleep_ns((uint64_t)r->S->stall_ms * 1000000ull);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (r->stall_at != UINT64_MAX && r->stall_at - pos < max)
        max = (size_t)(r->stall_at - pos);
    uint64_t want = r->len - pos;
    if (r->trunc_at != UINT64_MAX && want > r->trunc_at - pos)
        want = r->trunc_at - pos;
    if (want > max)
        want = max;
    if (want > 256 * 1024)
        want = 256 * 1024;
    os__throttle(r->S, r->start_ns, r->sent, (size_t)want);
    ssize_t n = pread(r->fd, buf, (size_t)want, (off_t)(r->off + pos));
    if (n <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (r->flip_at >= pos && r->flip_at < pos + (uint64_t)n)
        buf[r->flip_at - pos] ^= 0x10;
    r->sent += (uint64_t)n;
    os__account(r->S, r->client, r->xorb, (uint64_t)n);
    return n;
}

static void fd_free_cb(void *cls)
{
    fd_reader *r = cls;
    close(r->fd);
    free(r);
}

static bool body_knobs(srv *S)
{
    return S->conn_bps || S->total_bps || S->truncate_every || S->flip_every || S->stall_every;
}

/* A response with bytes [off, off+len) of fd (fd is owned by the response).
 * is_xorb: the flip knob applies; counting is tagged with xorb. */
struct MHD_Response *os__fd_response(srv *S, req *rq, int fd, uint64_t off, uint64_t len,
                                     const char *xorb, bool head)
{
    bool knobs = body_knobs(S) && !head;
    if (!knobs) {
        struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, off);
        if (!r) {
            close(fd);
            return NULL;
        }
        if (!head) {
            rq->planned = len;
            if (xorb)
                snprintf(rq->xorb, sizeof rq->xorb, "%s", xorb);
        }
        return r;
    }
    fd_reader *fr = calloc(1, sizeof *fr);
    if (!fr) {
        close(fd);
        return NULL;
    }
    fr->S = S;
    fr->fd = fd;
    fr->off = off;
    fr->len = len;
    fr->trunc_at = UINT64_MAX;
    fr->flip_at = UINT64_MAX;
    fr->stall_at = UINT64_MAX;
    fr->start_ns = os__now_ns();
    snprintf(fr->client, sizeof fr->client, "%s", rq->client);
    if (xorb)
        snprintf(fr->xorb, sizeof fr->xorb, "%s", xorb);
    uint64_t nb = ++S->nbody;
    if (S->truncate_every && nb % S->truncate_every == 0 && len > 1) {
        fr->trunc_at = len / 2;
        pthread_mutex_lock(&S->stmu);
        S->faults++;
        pthread_mutex_unlock(&S->stmu);
    }
    if (xorb && S->stall_every && len > 1) {
        pthread_mutex_lock(&S->stmu);
        if (++S->nstall % S->stall_every == 0) {
            fr->stall_at = len / 2;
            S->faults++;
        }
        pthread_mutex_unlock(&S->stmu);
    }
    if (xorb && S->flip_every) {
        uint64_t nx = ++S->nxorbreq;
        if (nx % S->flip_every == 0 && len > 0) {
            fr->flip_at = len / 2;
            pthread_mutex_lock(&S->stmu);
            S->faults++;
            pthread_mutex_unlock(&S->stmu);
        }
    }
    struct MHD_Response *r = MHD_create_response_from_callback(len, 256 * 1024, fd_read_cb, fr, fd_free_cb);
    if (!r)
        fd_free_cb(fr);
    return r;
}

/* ---- control ---------------------------------------------------------------- */

static cJSON *knobs_json(srv *S)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "latency_ms", S->latency_ms);
    cJSON_AddNumberToObject(j, "conn_bps", (double)S->conn_bps);
    cJSON_AddNumberToObject(j, "total_bps", (double)S->total_bps);
    cJSON_AddNumberToObject(j, "fail_every", S->fail_every);
    cJSON_AddNumberToObject(j, "truncate_every", S->truncate_every);
    cJSON_AddNumberToObject(j, "flip_every", S->flip_every);
    cJSON_AddNumberToObject(j, "refuse_xorbs", S->refuse_xorbs);
    cJSON_AddNumberToObject(j, "stall_every", S->stall_every);
    cJSON_AddNumberToObject(j, "stall_ms", S->stall_ms);
    cJSON_AddNumberToObject(j, "token_ttl", S->token_ttl);
    cJSON_AddNumberToObject(j, "url_ttl", S->url_ttl);
    o_hr_knobs_json(S->hr, j);
    return j;
}

static cJSON *stats_json(srv *S)
{
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&S->stmu);
    cJSON_AddNumberToObject(j, "requests", (double)S->requests);
    cJSON_AddNumberToObject(j, "bytes_total", (double)S->bytes_total);
    cJSON_AddNumberToObject(j, "xorb_bytes_total", (double)S->xorb_bytes_total);
    cJSON_AddNumberToObject(j, "faults", (double)S->faults);
    cJSON_AddNumberToObject(j, "xet_tokens", (double)S->tokens);
    cJSON *px = cJSON_AddObjectToObject(j, "per_xorb");
    for (size_t i = 0; i < S->nper_xorb; i++)
        cJSON_AddNumberToObject(px, S->per_xorb[i].key, (double)S->per_xorb[i].bytes);
    cJSON *pc = cJSON_AddObjectToObject(j, "per_client");
    for (size_t i = 0; i < S->nper_client; i++)
        cJSON_AddNumberToObject(pc, S->per_client[i].key, (double)S->per_client[i].bytes);
    pthread_mutex_unlock(&S->stmu);
    return j;
}

enum MHD_Result os__h_control(ctx *x)
{
    srv *S = x->S;
    const segs *g = &x->sg;
    if (g->n == 2 && !strcmp(g->v[1], "stats") && (x->get || x->head))
        return os__send_json(x->c, 200, stats_json(S), NULL);
    if (g->n == 2 && !strcmp(g->v[1], "knobs") && (x->get || x->head))
        return os__send_json(x->c, 200, knobs_json(S), NULL);
    if (!os__is_loopback(x->c))
        return os__send_err(x->c, 403, NULL, "control endpoint: loopback only");
    if (g->n == 3 && !strcmp(g->v[1], "stats") && !strcmp(g->v[2], "reset") && x->post) {
        pthread_mutex_lock(&S->stmu);
        S->bytes_total = S->xorb_bytes_total = S->requests = S->faults = S->tokens = 0;
        S->nper_xorb = S->nper_client = 0;
        pthread_mutex_unlock(&S->stmu);
        return os__send_json(x->c, 200, stats_json(S), NULL);
    }
    if (g->n == 2 && !strcmp(g->v[1], "knobs") && x->post) {
        cJSON *j = cJSON_ParseWithLength(os__body_of(x), x->rq->len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return os__send_err(x->c, 400, NULL, "JSON object expected");
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, j)
        {
            if (o_hr_knob(S->hr, it))
                continue;
            if (!cJSON_IsNumber(it) || it->valuedouble < 0)
                continue;
            double v = it->valuedouble;
            if (!strcmp(it->string, "latency_ms"))
                S->latency_ms = (unsigned)v;
            else if (!strcmp(it->string, "conn_bps"))
                S->conn_bps = (uint64_t)v;
            else if (!strcmp(it->string, "total_bps"))
                S->total_bps = (uint64_t)v;
            else if (!strcmp(it->string, "fail_every"))
                S->fail_every = (unsigned)v;
            else if (!strcmp(it->string, "truncate_every"))
                S->truncate_every = (unsigned)v;
            else if (!strcmp(it->string, "flip_every"))
                S->flip_every = (unsigned)v;
            else if (!strcmp(it->string, "refuse_xorbs"))
                S->refuse_xorbs = (unsigned)v;
            else if (!strcmp(it->string, "stall_every"))
                S->stall_every = (unsigned)v;
            else if (!strcmp(it->string, "stall_ms"))
                S->stall_ms = (unsigned)v;
            else if (!strcmp(it->string, "token_ttl"))
                S->token_ttl = (unsigned)v;
            else if (!strcmp(it->string, "url_ttl"))
                S->url_ttl = (unsigned)v;
        }
        cJSON_Delete(j);
        S->nreq = 0;
        S->nbody = 0;
        S->nxorbreq = 0;
        return os__send_json(x->c, 200, knobs_json(S), NULL);
    }
    return os__send_err(x->c, 404, NULL, "no such control route");
}
