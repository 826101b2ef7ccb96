/* httpparse.c — see httpparse.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpparse.h"

int zf_http_parse_range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    if (!v)
        return 0;
    while (*v == ' ')
        v++;
    if (strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ','))
        return 0;
    v += 6;
    while (*v == ' ')
        v++;
    char *e;
    if (*v == '-') {
        if (v[1] < '0' || v[1] > '9')
            return 0;
        errno = 0;
        unsigned long long n = strtoull(v + 1, &e, 10);
        while (*e == ' ')
            e++;
        if (*e || errno)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *a = n >= size ? 0 : size - n;
        *b = size;
        return 1;
    }
    if (*v < '0' || *v > '9')
        return 0;
    errno = 0;
    unsigned long long x = strtoull(v, &e, 10);
    if (errno || *e != '-')
        return 0;
    v = e + 1;
    unsigned long long y = UINT64_MAX;
    if (*v >= '0' && *v <= '9') {
        y = strtoull(v, &e, 10);
        if (errno)
            return 0;
        v = e;
    }
    while (*v == ' ')
        v++;
    if (*v || y < x)
        return 0;
    if (x >= size)
        return -1;
    *a = x;
    *b = y >= size ? size : y + 1;
    return 1;
}

/* percent-decode s[0..n) into out (cap bytes); -1 if bad or too long */
int zf_http_pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int h1 = xet_hexval(s[i + 1]), h2 = h1 < 0 ? -1 : xet_hexval(s[i + 2]);
            if (h1 < 0 || h2 < 0)
                return -1;
            ch = h1 * 16 + h2;
            i += 2;
        }
        if (ch == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

int zf_http_parse_resolve(const char *url, enum zf_repo_type *type, char id[256], char rev[256],
                          char *path, size_t pathcap)
{
    if (!url || url[0] != '/')
        return -EINVAL;
    const char *p = url + 1;
    *type = ZF_MODEL;
    if (!strncmp(p, "datasets/", 9))
        *type = ZF_DATASET, p += 9;
    else if (!strncmp(p, "spaces/", 7))
        *type = ZF_SPACE, p += 7;
    else if (!strncmp(p, "models/", 7))
        p += 7;
    /* org/name/resolve/... or name/resolve/... */
    const char *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    const char *rest = NULL, *idend = NULL;
    if (s2 && !strncmp(s2 + 1, "resolve/", 8))
        idend = s2, rest = s2 + 9;
    else if (s1 && !strncmp(s1 + 1, "resolve/", 8))
        idend = s1, rest = s1 + 9;
    const char *slash = rest ? strchr(rest, '/') : NULL;
    if (!idend || !slash || !slash[1] || zf_http_pct_decode(p, (size_t)(idend - p), id, 256) ||
        zf_http_pct_decode(rest, (size_t)(slash - rest), rev, 256) ||
        zf_http_pct_decode(slash + 1, strlen(slash + 1), path, pathcap) || !zf_valid_repo_id(id) ||
        !zf_valid_rev(rev) || !zf_valid_path(path))
        return -EINVAL;
    return 0;
}
