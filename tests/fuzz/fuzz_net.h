/* fuzz_net.h — entry points into the static parsing code of net/http.c and
 * net/hub.c for the fuzz harnesses.  net_http_int.c and net_hub_int.c each
 * compile one of those files into themselves (#include "http.c") and add
 * these wrappers, so the code under test is exactly the shipped code and
 * neither file needs a test hook.  Link them instead of net's library. */
#ifndef ZESTFS_FUZZ_NET_H
#define ZESTFS_FUZZ_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

/* http.c: an answer as libcurl would hand it over.  `hdrs` is split at '\n'
 * into lines, each given to the header callback as curl does (CRLF kept);
 * *werr gets the callback's abort reason (0 if none).  Free with
 * zfz_resp_free. */
zn_resp *zfz_resp_new(int status, const char *hdrs, size_t hlen, const void *body, size_t blen,
                      int *werr);
void zfz_resp_free(zn_resp *r);
/* content_range_ok for a request of range [start, end]. */
bool zfz_content_range_ok(zn_resp *r, uint64_t start, uint64_t end);
/* plan_retry after an -EAGAIN attempt: the delay chosen (ms), or -1 for no
 * retry.  Honours Retry-After on 429/503. */
int64_t zfz_retry_delay(zn_resp *r, int attempt);

/* hub.c: the completion handlers of each Hub call, run on `resp` with a
 * stand-in hub and operation; return the error the caller would get. */
int zfz_hub_revision(const zn_resp *resp, zn_revision *out);
/* The tree page in resp's body; *tree (on 0) and *next (the resolved
 * rel="next" URL of the Link header, NULL if none) are the caller's. */
int zfz_hub_tree(const zn_resp *resp, zn_tree **tree, char **next);
int zfz_hub_resolve(const zn_resp *resp, int err, zn_resolve_info *out);
/* A /xet-read-token answer: on 0, *access and *cas_url are malloc'd. */
int zfz_hub_token(const zn_resp *resp, char **access, char **cas_url, int64_t *exp);
bool zfz_hub_valid_repo_id(const char *s);
bool zfz_hub_valid_repo_path(const char *s);

#endif
