/* fuzz_hub.c — Hub API answers (net/hub.c): revision JSON, a tree page
 * (JSON + Link header), resolve headers, the Xet read-token JSON, and the
 * repo id / path validation applied before any of them is requested.
 * Input: byte 0 picks the parser (and for resolve the status); then a
 * header block, ended by the first empty line; the rest is the body. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "fuzz_net.h"
#include "net_int.h"

static bool lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void check_names(const uint8_t *p, size_t n)
{
    char *s = fz_strndup(p, n);
    if (zfz_hub_valid_repo_path(s)) {
        FZ_CHECK(s[0] && s[0] != '/' && strlen(s) <= 4096);
        for (const char *c = s; *c; c++)
            FZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
        char *d = strdup(s), *save = NULL;
        if (!d)
            abort();
        for (char *t = strtok_r(d, "/", &save); t; t = strtok_r(NULL, "/", &save))
            FZ_CHECK(strcmp(t, "..") != 0 && strcmp(t, ".") != 0);
        free(d);
        FZ_CHECK(!strstr(s, "//") && s[strlen(s) - 1] != '/');
    }
    if (zfz_hub_valid_repo_id(s)) {
        FZ_CHECK(strlen(s) <= 200 && !strstr(s, "..") && s[0] != '/');
        const char *sl = strchr(s, '/');
        FZ_CHECK(!sl || !strchr(sl + 1, '/'));
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned kind = data[0] % 5;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (kind == 4) {
        check_names(p, n);
        return 0;
    }
    /* headers up to the first empty line */
    size_t hlen = n, boff = n;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n') {
            hlen = i + 1, boff = i + 2;
            break;
        }
        if (i + 3 < n && !memcmp(p + i, "\r\n\r\n", 4)) {
            hlen = i + 2, boff = i + 4;
            break;
        }
    }
    char *hdrs = (char *)fz_dup(p, hlen);
    char *body = (char *)fz_dup(p + boff, n - boff);
    static const int st[] = {200, 302, 404, 401};
    int status = kind == 2 ? st[(data[0] >> 3) % 4] : 200;
    int werr = 0;
    zn_resp *r = zfz_resp_new(status, hdrs, hlen, body, n - boff, &werr);
    switch (kind) {
    case 0: {
        zn_revision rv;
        int rc = zfz_hub_revision(r, &rv);
        FZ_CHECK(rc == 0 || rc == -EBADMSG);
        if (rc == 0)
            FZ_CHECK(lower_hex(rv.sha, 40));
        break;
    }
    case 1: {
        zn_tree *t = NULL;
        char *next = NULL;
        int rc = zfz_hub_tree(r, &t, &next);
        FZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM || rc == -EFBIG);
        if (rc == 0) {
            FZ_CHECK(t && t->pages == 1);
            for (size_t i = 0; i < t->n; i++) {
                FZ_CHECK(t->e[i].path && t->e[i].path[0]);
                FZ_CHECK(!t->e[i].oid[0] || lower_hex(t->e[i].oid, 40));
                FZ_CHECK(!t->e[i].lfs_sha256[0] || lower_hex(t->e[i].lfs_sha256, 64));
                FZ_CHECK(!t->e[i].xet_hash[0] || lower_hex(t->e[i].xet_hash, 64));
            }
        }
        zn_tree_free(t);
        free(next);
        break;
    }
    case 2: {
        zn_resolve_info in;
        int err = zn_http_errno(status);
        int rc = zfz_hub_resolve(r, err, &in);
        FZ_CHECK(in.status == status);
        FZ_CHECK(rc == err || rc == -ENOENT || rc == -EACCES);
        FZ_CHECK(!in.commit[0] || lower_hex(in.commit, 40));
        FZ_CHECK(!in.xet_hash[0] || lower_hex(in.xet_hash, 64));
        FZ_CHECK(strlen(in.etag) < sizeof in.etag);
        FZ_CHECK(strlen(in.error_code) < sizeof in.error_code);
        break;
    }
    case 3: {
        char *acc = NULL, *cas = NULL;
        int64_t exp = 0;
        int rc = zfz_hub_token(r, &acc, &cas, &exp);
        if (rc == 0) {
            /* the token goes into a header line: no CR/LF ever */
            FZ_CHECK(acc && acc[0] && !strpbrk(acc, "\r\n"));
            /* (trailing '/' are cut: "https://" alone becomes "https:", which
             * no request can use: harmless, not checked here) */
            FZ_CHECK(cas && !strpbrk(cas, "\r\n ") && !strncmp(cas, "http", 4));
            FZ_CHECK(exp >= 0);
        }
        free(acc);
        free(cas);
        break;
    }
    }
    zfz_resp_free(r);
    free(hdrs);
    free(body);
    return 0;
}
