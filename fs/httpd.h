/* httpd.h — HTTP access and Prometheus /metrics: the access server's API
 * (httpd.c). */
#ifndef ZESTFS_FS_HTTPD_H
#define ZESTFS_FS_HTTPD_H

#include "zfs.h"

/* HTTP access and Prometheus /metrics (httpd.c; routes and threading
 * there).  zf_http_bind parses "[ADDR:]PORT" (ADDR default 127.0.0.1;
 * "[v6]:PORT"; port 0: any), binds and listens, and prints "zestfs: WHAT
 * on ADDR:PORT" to stderr — call it before daemon(): no thread starts.
 * metrics_only: serve /metrics only.  token (copied): require
 * "Authorization: Bearer TOKEN"; NULL: none.  zf_http_start serves on
 * fs->loop (libmicrohttpd's thread hands every request to the loop);
 * zf_http_stop (on the loop, before zf_read_stop) closes it and every
 * connection; zf_http_free after the loop ran empty. */
typedef struct zf_http zf_http;
int zf_http_bind(const char *spec, const char *what, bool metrics_only, const char *token,
                 zf_http **out);
int zf_http_start(zf_http *h, zf_fs *fs, zc_store *store);
void zf_http_stop(zf_http *h);
void zf_http_free(zf_http *h);
/* Also accept `Host: NAME` (any port) besides the listener's address and
 * port (--http-host; before zf_http_start).  0, -EINVAL, -E2BIG (16). */
int zf_http_allow_host(zf_http *h, const char *name);
const char *zf_http_addr(const zf_http *h); /* "ADDR:PORT" bound */
/* The time a client has to send a whole request, from its connect or the
 * end of its previous answer (default 10 s; before zf_http_start). */
void zf_http_set_request_timeout(zf_http *h, unsigned ms);

#endif
