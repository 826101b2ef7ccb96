/* store_read.h — answers from the store.  A read whose bytes are all
 * mapped goes to the pool: walk the extents, zc_lookup each chunk run
 * (verifying segments found at zc_open on first use), and, as the kind
 * says (rd_ops.store): only check, copy into a buffer, or reply to FUSE
 * from the worker (splicing the segment files' bytes, or a copy).  A
 * sequential FUSE reader's disk reads are hinted DISK_RA ahead.  A chunk
 * missing at byte m: the read waits for the windows of [m, end) (window.h). */
#ifndef ZESTFS_FS_READ_STORE_READ_H
#define ZESTFS_FS_READ_STORE_READ_H

#include "read_int.h"

int rd_store_read(zc_store *s, const rd_ext *ex, size_t n, uint64_t off, uint64_t len,
                  uint8_t *out, uint64_t *miss);
void rd_store_start(rd_read *r);
uint64_t rd_first_unstored(rd_file *f, uint64_t off, uint64_t end);

#endif
