/* net_http_int.c — net/http.c compiled with fuzz entry points (fuzz_net.h). */
#include "http.c"

#include <stddef.h>

#include "fuzz_net.h"

static zn_req *req_of(const zn_resp *r)
{
    return (zn_req *)(void *)((char *)r - offsetof(zn_req, resp));
}

zn_resp *zfz_resp_new(int status, const char *hdrs, size_t hlen, const void *body, size_t blen,
                      int *werr)
{
    zn_req *q = calloc(1, sizeof *q);
    if (!q)
        abort();
    const char *p = hdrs, *end = hdrs + hlen;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        /* curl hands a copy it owns; give the callback exactly l bytes */
        char *line = malloc(l);
        if (!line)
            abort();
        memcpy(line, p, l);
        size_t took = header_cb(line, 1, l, q);
        free(line);
        if (took != l)
            break;
        p += l;
    }
    *werr = q->werr;
    q->resp.status = status;
    q->resp.body = body;
    q->resp.body_len = blen;
    return &q->resp;
}

void zfz_resp_free(zn_resp *r)
{
    zn_req *q = req_of(r);
    resp_reset(q);
    free(q);
}

bool zfz_content_range_ok(zn_resp *r, uint64_t start, uint64_t end)
{
    zn_req *q = req_of(r);
    q->range.start = start;
    q->range.end = end;
    return content_range_ok(q);
}

int64_t zfz_retry_delay(zn_resp *r, int attempt)
{
    static uv_loop_t loop;
    static bool loop_ok;
    if (!loop_ok) {
        if (uv_loop_init(&loop) != 0)
            abort();
        loop_ok = true;
    }
    zn_http c;
    memset(&c, 0, sizeof c);
    c.loop = &loop;
    c.rng = 0x9e3779b97f4a7c15ULL;
    zn_req *q = req_of(r);
    q->c = &c;
    q->has_retry = true;
    q->retry = (zn_retry){.max_attempts = 5, .base_ms = 500, .max_delay_ms = 10000,
                          .deadline_ms = 30000};
    q->attempt = attempt;
    q->deadline = 0;
    uint64_t wake = 0, now = uv_now(&loop);
    bool again = plan_retry(q, -EAGAIN, &wake);
    q->c = NULL;
    return again ? (int64_t)(wake - now) : -1;
}
