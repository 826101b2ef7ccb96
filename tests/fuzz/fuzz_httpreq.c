/* fuzz_httpreq.c — what the HTTP access server (fs/httpd.c, --http) parses
 * from its clients (fs/httpparse.c): the Range header and the
 * /{repo}/resolve/{rev}/{path} URL, percent-decoding included.  Anyone who
 * can connect sends these.  Input: byte 0 even: 8 bytes LE body size, then
 * a Range value; odd: a URL. */
#include "fuzz.h"

#include <string.h>

#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0) {
        if (size < 9)
            return 0;
        uint64_t bsize = 0;
        for (int i = 8; i >= 1; i--)
            bsize = bsize << 8 | data[i];
        if (data[0] & 2)
            bsize &= 0xffffff; /* small bodies too */
        char *v = fz_strndup(data + 9, size - 9);
        uint64_t a = 7, b = 7;
        int rc = zf_http_parse_range(v, bsize, &a, &b);
        FZ_CHECK(rc == -1 || rc == 0 || rc == 1);
        if (rc == 1)
            FZ_CHECK(a < b && b <= bsize);
        free(v);
    } else {
        char *url = fz_strndup(data + 1, size - 1);
        enum zf_repo_type t;
        char id[256], rev[256], path[4097];
        if (zf_http_parse_resolve(url, &t, id, rev, path, sizeof path) == 0) {
            FZ_CHECK(zf_valid_repo_id(id) && zf_valid_rev(rev) && zf_valid_path(path));
            FZ_CHECK(path[0] != '/' && !strstr(path, "/../") && strncmp(path, "../", 3) &&
                     strcmp(path, ".."));
        }
        free(url);
    }
    return 0;
}
