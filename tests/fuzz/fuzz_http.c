/* fuzz_http.c — HTTP answer headers as net/http.c takes them from libcurl:
 * header lines (a new status line restarts them), lookups, Content-Range
 * against the requested range, Retry-After in the retry planner.
 * Input: byte 0 picks the status, bytes 1–8 the requested range (two LE
 * u32), the rest is the header block. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "fuzz_net.h"
#include "net_int.h"

static const int STATUS[] = {200, 206, 302, 404, 429, 503, 500, 401};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static const char *NAMES[] = {"Content-Range", "Content-Length", "Location", "Link",
                              "X-Error-Code", "ETag", "X-Linked-Size", "Retry-After",
                              "X-Repo-Commit", "X-Xet-Hash"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    int status = STATUS[data[0] % (sizeof STATUS / sizeof STATUS[0])];
    uint64_t s = le32(data + 1), e = le32(data + 5);
    char *hdrs = (char *)fz_dup(data + 9, size - 9);
    /* libcurl refuses header lines with a NUL byte ("Nul byte in header"):
     * none reaches net/http.c */
    for (size_t i = 0; i < size - 9; i++)
        if (!hdrs[i])
            hdrs[i] = 'x';
    int werr = 0;
    zn_resp *r = zfz_resp_new(status, hdrs, size - 9, NULL, 0, &werr);
    FZ_CHECK(werr == 0 || werr == -EFBIG || werr == -ENOMEM);
    FZ_CHECK(zn_resp_status(r) == status);
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        const char *v = zn_resp_header(r, NAMES[i]);
        if (v) {
            size_t l = strlen(v);
            FZ_CHECK(l == 0 || (v[0] != ' ' && v[0] != '\t' && v[l - 1] != ' ' &&
                                v[l - 1] != '\t' && v[l - 1] != '\r' && v[l - 1] != '\n'));
        }
    }
    const char *cr = zn_resp_header(r, "Content-Range");
    if (zfz_content_range_ok(r, s, e))
        FZ_CHECK(cr && strncmp(cr, "bytes ", 6) == 0);
    if (s <= e)
        (void)zfz_content_range_ok(r, 0, e - s);
    int64_t d = zfz_retry_delay(r, 1 + (data[0] >> 4) % 4);
    FZ_CHECK(d >= 0 && d <= 3600 * 1000 + 50); /* a server's ask: an hour at most (+50 ms past it) */
    const char *loc = zn_resp_header(r, "Location");
    if (loc) {
        char *u = zn__resolve_url("https://hub.example/api/models/a/b", loc);
        if (u)
            (void)zn__same_origin(u, "https://hub.example/");
        free(u);
    }
    zfz_resp_free(r);
    free(hdrs);
    return 0;
}
