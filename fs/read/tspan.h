/* tspan.h — how wide a reader's miss in a tensor file is fetched (while the
 * file is open and its header parsed: f->tmap, openpf.h).  A FUSE or HTTP
 * read that misses at pos is fetched from the start of the tensor holding
 * pos (not below bytes mapped before pos: those were fetched for an earlier
 * miss) to that tensor's end when the read began in that tensor, else only
 * to the read's end (the kernel's readahead across a tensor boundary shows
 * no wish for the next tensor).  Before the header is parsed: the MiB
 * around the read.  The caller's bounds (the window, other cells) are never
 * widened. */
#ifndef ZESTFS_FS_READ_TSPAN_H
#define ZESTFS_FS_READ_TSPAN_H

#include "read_int.h"

/* Narrow [*lo, *hi) (holding pos) for a read [first, end) of f missing at pos. */
void rd_miss_span(rd_file *f, uint64_t first, uint64_t pos, uint64_t end, uint64_t *lo, uint64_t *hi);

#endif
