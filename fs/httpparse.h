/* httpparse.h — the parsers of the HTTP access server (httpd.c) kept apart
 * so they can be fuzzed without a server: the Range header and the
 * /{repo}/resolve/{rev}/{path} URL.  Their input comes from whoever can
 * connect. */
#ifndef ZESTFS_FS_HTTPPARSE_H
#define ZESTFS_FS_HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

/* "bytes=A-B", "bytes=A-", "bytes=-N" against a body of `size` bytes:
 * 1 with [*a, *b) (a < b <= size), -1 when unsatisfiable (416), 0 when
 * absent, malformed or a multi-range (the whole body is sent). */
int zf_http_parse_range(const char *v, uint64_t size, uint64_t *a, uint64_t *b);

/* Percent-decode s[0..n) into out (cap bytes, NUL-terminated): 0, or -1
 * for a bad escape, a NUL byte or no room. */
int zf_http_pct_decode(const char *s, size_t n, char *out, size_t cap);

/* "/[models/|datasets/|spaces/]{org/name|name}/resolve/{rev}/{path}" ->
 * the repo type, id, revision and path, decoded and validated (repo.h:
 * zf_valid_repo_id, zf_valid_rev, zf_valid_path).  0 or -EINVAL. */
int zf_http_parse_resolve(const char *url, enum zf_repo_type *type, char id[256], char rev[256],
                          char *path, size_t pathcap);

#endif
