/* fill.h — background fills (zf_fill_*: pull, prefetch at open).  A fill
 * walks its byte ranges window by window (a piece never crosses an 8 MiB
 * window), as requests of kind "fill" that end once the bytes are stored.
 * All fills share BG_WINDOWS pieces in flight, handed out round-robin from
 * a zero-delay timer; their fetches give way to reads (source.h).  A piece
 * failing with a transient error is handed out again after a backoff; a
 * fill fails when one piece failed FILL_STALL times with no progress. */
#ifndef ZESTFS_FS_READ_FILL_H
#define ZESTFS_FS_READ_FILL_H

#include "read_int.h"

void rd_fill_timer_cb(uv_timer_t *t);
int rd_fill_start_file(rd_file *f, const uint64_t *ranges, size_t nranges, zf_fill_cb cb,
                           void *ud, zf_fill **out);
void rd_fill_stop(rd_ctx *c);

#endif
