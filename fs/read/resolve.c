/* resolve.c — the contract is in resolve.h. */
#include "read_int.h"
#include "resolve.h"


static char *pct_path(const char *s)
{
    static const char hexd[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/')
            *o++ = (char)ch;
        else {
            *o++ = '%';
            *o++ = hexd[ch >> 4];
            *o++ = hexd[ch & 15];
        }
    }
    *o = 0;
    return out;
}

/* A GET of a non-Xet file's bytes at {endpoint}/{repo}/resolve/{commit}/{path}
 * (one range of it, or all), into buf.  A redirect to another origin (LFS
 * content on a CDN) is followed once, without credentials.  done gets err 0
 * only for a 200 (or, for a range, 206) answer of exactly the bytes asked. */

typedef struct rs_get {
    rd_ctx *c;
    zn_range rg;
    bool ranged;
    bool second;               /* following a cross-origin redirect */
    uint8_t *buf;
    uint64_t len;
    const zn_retry *retry;
    rs_done_cb done;
    void *ud;
} rs_get;

static int rs_send(rs_get *g, const char *url, bool auth);



static void rs_answer(void *ud, int err, const zn_resp *resp)
{
    rs_get *g = ud;
    if (!err && g->c->stopping)
        err = -ECANCELED;
    if (!err) {
        int st = zn_resp_status(resp);
        const char *loc = zn_resp_header(resp, "Location");
        if (st >= 300 && st < 400 && loc && !g->second) {
            g->second = true; /* the content lives elsewhere: no credentials there */
            if (strncmp(loc, "https://", 8) && strncmp(loc, "http://", 7))
                err = -EBADMSG;
            else if ((err = rs_send(g, loc, false)) == 0)
                return;
        } else if (st != 200 && !(g->ranged && st == 206)) {
            err = -EBADMSG;
        } else if (!g->ranged) { /* (a range's length is checked by the client) */
            size_t n;
            zn_resp_body(resp, &n);
            if (n != g->len)
                err = -EPROTO;
        }
    }
    rs_done_cb done = g->done;
    void *dud = g->ud;
    uint8_t *buf = g->buf;
    uint64_t len = g->len;
    free(g);
    done(dud, err, buf, len);
}

static int rs_send(rs_get *g, const char *url, bool auth)
{
    const char *hdrs[2] = {auth ? g->c->auth : NULL, NULL};
    zn_http_req q = {
        .url = url,
        .headers = hdrs,
        .ranges = g->ranged ? &g->rg : NULL,
        .nranges = g->ranged,
        .range_body = g->ranged,
        .buf = g->buf,
        .buf_len = g->len,
        .follow_redirects = true,
        .retry = g->retry,
        .done = rs_answer,
        .ud = g,
    };
    return zn_http_request(g->c->http, &q, NULL);
}

/* Bytes [off, off + len) of f (all of it: off 0, len f->size, ranged false).
 * 0: done comes later (buf handed back there); else nothing was started. */
int rd_rs_start(rd_file *f, bool ranged, uint64_t off, uint64_t len, uint8_t *buf,
                    const zn_retry *retry, rs_done_cb done, void *ud)
{
    rd_ctx *c = f->c;
    static const char *prefix[] = {"", "datasets/", "spaces/"};
    rs_get *g = calloc(1, sizeof *g);
    char *epath = pct_path(f->path), *url = NULL;
    int rc = -ENOMEM;
    if (g && epath) {
        size_t n = strlen(c->endpoint) + strlen(f->repo) + strlen(epath) + 80;
        if ((url = malloc(n))) {
            snprintf(url, n, "%s/%s%s/resolve/%s/%s", c->endpoint, prefix[f->type], f->repo,
                     f->rev, epath);
            *g = (rs_get){c, {off, off + len - 1}, ranged, false, buf, len, retry, done, ud};
            rc = rs_send(g, url, true);
        }
    }
    free(epath);
    free(url);
    if (rc)
        free(g);
    return rc;
}
