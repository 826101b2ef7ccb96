/* cache.h — content-addressed chunk-range store (issue #4). Not yet written. */
#ifndef ZESTFS_CACHE_H
#define ZESTFS_CACHE_H
int zcache_version(void);
#endif
