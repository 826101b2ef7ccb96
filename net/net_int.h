/* net_int.h — helpers shared by http.c and hub.c (not part of the API). */
#ifndef ZESTFS_NET_INT_H
#define ZESTFS_NET_INT_H

#include "net.h"

#define ZN_DEFAULT_MAX_BODY (64u << 20)
#define ZN_ERROR_BODY_MAX (64u << 10)
#define ZN_USER_AGENT "zestfs/0.1"

/* A request that carries nothing over the network: done(ud, 0, NULL) comes
 * from the loop soon (or -ECANCELED if cancelled first).  Used to make
 * answers known at start time asynchronous. */
int zn__defer(zn_http *c, zn_done_cb done, void *ud, zn_req **out);

/* true when both absolute http(s) URLs have the same scheme, host and port. */
bool zn__same_origin(const char *a, const char *b);
/* Resolve `ref` (absolute, or relative to `base`); malloc'd, NULL if bad. */
char *zn__resolve_url(const char *base, const char *ref);

#endif
