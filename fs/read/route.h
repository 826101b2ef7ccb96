/* route.h — where a request goes.  A small non-Xet file: blob.h.  A large
 * one: big.h (its map is its windows).  A Xet file: its map first (fmap.h),
 * then, with every byte mapped, a run in memory (xfetch.h), the store
 * (store_read.h) or, for a fill, nothing when its extents are stored;
 * otherwise the windows (window.h).  Labels and listings get the xorbs of
 * the map.  rd_xet_try is also rd_ctx.resume: a read whose map or windows
 * are ready comes back here. */
#ifndef ZESTFS_FS_READ_ROUTE_H
#define ZESTFS_FS_READ_ROUTE_H

#include "read_int.h"

void rd_xet_try(rd_read *r);
void rd_read_go(rd_read *r);

#endif
