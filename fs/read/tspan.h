/* tspan.h — how wide a reader's miss in a tensor file is fetched (while the
 * file is open and its header parsed: f->tmap, openpf.h).  A FUSE or HTTP
 * read [first, end) that misses at pos, when it lies within one tensor, is
 * fetched from that tensor's start to its end (so later reads of it hit),
 * but not over bytes mapped before pos (an earlier miss fetched those);
 * a read across a tensor boundary (the kernel's readahead or readaround:
 * it shows no wish for either tensor whole) or in the header is fetched
 * as asked, from pos.  Before the header is parsed: the MiB around the
 * read.  The caller's bounds (the window, other cells) are never widened. */
#ifndef ZESTFS_FS_READ_TSPAN_H
#define ZESTFS_FS_READ_TSPAN_H

#include "read_int.h"

/* Narrow [*lo, *hi) (holding pos) for a read [first, end) of f missing at pos. */
void rd_miss_span(rd_file *f, uint64_t first, uint64_t pos, uint64_t end, uint64_t *lo, uint64_t *hi);

#endif
