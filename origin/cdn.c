/* cdn.c — the origin's CDN: signed xorb URLs and the xorb ranges served
 * against them. */
#include "server_int.h"

/* signed xorb URLs */
static void sign_url(srv *S, const char *hash, const char *ranges, int64_t exp, char out[65])
{
    char *msg = o_strdup_printf("%s\n%s\n%lld", hash, ranges, (long long)exp);
    uint8_t mac[32];
    o_hmac_sha256(S->s->secret, 32, msg ? msg : "", msg ? strlen(msg) : 0, mac);
    free(msg);
    o_hex(mac, 32, out);
}

char *os__xorb_url(srv *S, const char *base, const char *hash, uint64_t bs, uint64_t be)
{
    unsigned ttl = S->url_ttl ? S->url_ttl : 3600;
    int64_t exp = (int64_t)time(NULL) + ttl;
    char ranges[64], sig[65];
    snprintf(ranges, sizeof ranges, "bytes=%" PRIu64 "-%" PRIu64, bs, be);
    sign_url(S, hash, ranges, exp, sig);
    return o_strdup_printf("%s/xorbs/default/%s?X-Xet-Signed-Range=bytes%%3D%" PRIu64 "-%" PRIu64
                           "&Expires=%lld&Signature=%s",
                           base, hash, bs, be, (long long)exp, sig);
}

/* CDN: signed xorb ranges */
enum MHD_Result os__h_xorb_get(ctx *x, const char *hash)
{
    xet_hash h;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &h) != 0)
        return os__send_err(x->c, 400, NULL, "invalid xorb hash");
    char *sr = os__query_arg(x->c, "X-Xet-Signed-Range");
    char *ex = os__query_arg(x->c, "Expires");
    char *sig = os__query_arg(x->c, "Signature");
    enum MHD_Result ret;
    if (!sr || !ex || !sig || strlen(sig) != 64) {
        ret = os__send_err(x->c, 403, NULL, "missing signature");
        goto out;
    }
    char want[65];
    sign_url(x->S, hash, sr, strtoll(ex, NULL, 10), want);
    if (!os__ct_eq(want, sig)) {
        ret = os__send_err(x->c, 403, NULL, "bad signature");
        goto out;
    }
    if (strtoll(ex, NULL, 10) <= (long long)time(NULL)) {
        ret = os__send_err(x->c, 403, NULL, "URL expired");
        goto out;
    }
    char *p = o_path(x->S->s, "xorbs/%s", hash);
    int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    free(p);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        ret = os__send_err(x->c, 404, NULL, "xorb not found");
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size, s = 0, e = size ? size - 1 : 0;
    const char *rh = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Range");
    int pr = os__parse_range(rh, size, &s, &e);
    if (pr < 0) {
        close(fd);
        ret = os__send_err(x->c, pr == -2 ? 416 : 400, NULL, "bad range");
        goto out;
    }
    /* the requested range must lie inside one signed range */
    bool ok = false;
    if (strncmp(sr, "bytes=", 6) == 0) {
        char *dup = strdup(sr + 6), *save = NULL;
        for (char *t = dup ? strtok_r(dup, ",", &save) : NULL; t && !ok; t = strtok_r(NULL, ",", &save)) {
            unsigned long long a, b;
            if (sscanf(t, "%llu-%llu", &a, &b) == 2 && s >= a && e <= b)
                ok = true;
        }
        free(dup);
    }
    if (!ok) {
        close(fd);
        ret = os__send_err(x->c, 403, NULL, "range outside the signed range");
        goto out;
    }
    uint64_t len = e - s + 1;
    struct MHD_Response *rs = os__fd_response(x->S, x->rq, fd, s, len, hash, x->head);
    if (!rs) {
        ret = MHD_NO;
        goto out;
    }
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    MHD_add_response_header(rs, "Accept-Ranges", "bytes");
    if (pr == 1) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, s, e, size);
        MHD_add_response_header(rs, "Content-Range", cr);
    }
    ret = os__queue(x->c, pr == 1 ? 206 : 200, rs);
out:
    free(sr);
    free(ex);
    free(sig);
    return ret;
}
