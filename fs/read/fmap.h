/* fmap.h — the extent map of a Xet file: sorted extents (file offset,
 * length, xorb, chunk range), one per reconstruction term seen.  No extent
 * is contained in another, so starts and ends both increase and the extent
 * covering a byte is found with one binary search.  Persisted as store
 * metadata "fmap/<xet id>" (loaded on first use, saved on the pool after a
 * change), so a remount or an offline mount knows where stored bytes are
 * without the network.  Reads waiting for the map go on through
 * rd_ctx.resume once it is ready. */
#ifndef ZESTFS_FS_READ_FMAP_H
#define ZESTFS_FS_READ_FMAP_H

#include "read_int.h"

long rd_ext_floor(const rd_file *f, uint64_t pos);
uint64_t rd_ext_uncovered(const rd_file *f, uint64_t off, uint64_t end);
int rd_ext_add(rd_file *f, const rd_ext *e);
void rd_map_ready(rd_file *f);
void rd_map_load(rd_file *f);
void rd_map_save(rd_file *f);

#endif
