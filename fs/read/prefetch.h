/* prefetch.h — sequential readers.  Up to NSTREAMS streams per file; a
 * read continues one when it starts within SEQ_BACK behind or SEQ_FWD ahead
 * of where it stopped.  Ahead of a stream that has read SEQ_MIN bytes in a
 * row, the windows it will need are started (one more per 8 MiB read, up
 * to MAX_AHEAD, fewer on a small store) with no read waiting on them; a
 * fill's window it will need stops giving way (cell->ahead). */
#ifndef ZESTFS_FS_READ_PREFETCH_H
#define ZESTFS_FS_READ_PREFETCH_H

#include "read_int.h"

void rd_seq_prefetch(rd_file *f, uint64_t off, uint64_t len);

#endif
