/* prefetch.h — sequential readers.  Up to NSTREAMS streams per file; a
 * read continues one when it starts within SEQ_BACK behind or SEQ_FWD ahead
 * of where it stopped; any other read starts a new stream (the least
 * recently used one's slot) with nothing ahead of it.
 *
 * Other files: ahead of a stream that has read SEQ_MIN bytes in a row, the
 * windows it will need are started (one more per 8 MiB read, up to
 * MAX_AHEAD, fewer on a small store) with no read waiting on them; a fill's
 * window it will need stops giving way (cell->ahead).
 *
 * A .safetensors/.gguf file while its tensor table is known (f->tmap,
 * openpf.h) — prefetch follows the reader, tensor by tensor:
 *   - within the tensor it reads: the rest of it, once the stream has read
 *     SEQ_MIN of that tensor (bounded as above; not for the kernel's
 *     readahead running on past the tensor a reader read);
 *   - past that tensor: only once the stream has read across PF_CROSS
 *     tensor boundaries in a row (a reader going tensor after tensor, in
 *     file order; counted in the order read: a stream running into one
 *     begun before it keeps the larger count), for PF_EARLY more just the
 *     next tensor, and then 1/PF_RATIO of the bytes it has read in a row,
 *     cut at a tensor's end or a window's, in steps of at least PF_MIN.  So
 *     the lookahead grows with the run (and the same window bound as
 *     above), and a reader stopping anywhere has been sent at most
 *     1/PF_RATIO more than it read; a jump (another stream) starts from
 *     nothing.
 * Cells are started for the bytes of a window no cell holds yet (a window
 * may have several, each a span: window.h) and that are not stored. */
#ifndef ZESTFS_FS_READ_PREFETCH_H
#define ZESTFS_FS_READ_PREFETCH_H

#include "read_int.h"

void rd_seq_prefetch(rd_file *f, uint64_t off, uint64_t len);
/* f's tensor table is known now (or known to be none): what its latest
 * stream should have ahead of it (while its table is being read, nothing is
 * started ahead of a tensor file's streams but one from its first window,
 * which is prefetched as any file's). */
void rd_seq_again(rd_file *f);

#endif
