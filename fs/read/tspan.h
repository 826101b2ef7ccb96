/* tspan.h — how wide a reader's miss in a tensor file is fetched (while the
 * file is open and its header parsed: f->tmap, openpf.h).  A FUSE or HTTP
 * read [first, end) that misses at pos, when it lies within one tensor and
 * does not go on with a stream begun well before that tensor (a reader
 * that came to this tensor: a random page, a tensor picked), is fetched
 * from that tensor's start to its end (so its later reads hit), but not
 * over bytes mapped before pos (an earlier miss fetched those).  Any other
 * miss is fetched as asked, from pos: a read across a tensor boundary (the
 * whole read, not its part in one window: a read-around over a window's
 * edge is no wish for the tensor past it) or in the header, and the kernel's readahead going on past the tensor a reader
 * read (it shows no wish for the next tensor; a loader going on in file
 * order gets the next tensors from its prefetch, prefetch.h).  Before the
 * header is parsed, its whole window as for any file (the header's fill
 * gives way to reads, so under many faulting readers the table can take a
 * while; MiB-sized fetches meanwhile shared chunks with their neighbours:
 * ~15% fetched twice in fs-stress-mmap).  The caller's bounds (the window,
 * other cells) are never widened. */
#ifndef ZESTFS_FS_READ_TSPAN_H
#define ZESTFS_FS_READ_TSPAN_H

#include "read_int.h"

/* Narrow [*lo, *hi) (holding pos) for a read [first, end) of f missing at pos. */
void rd_miss_span(rd_file *f, uint64_t first, uint64_t pos, uint64_t end, uint64_t *lo, uint64_t *hi);

#endif
