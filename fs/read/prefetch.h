/* prefetch.h — TODO contract */
#ifndef ZESTFS_FS_READ_PREFETCH_H
#define ZESTFS_FS_READ_PREFETCH_H

#include "read_int.h"

void rd_seq_prefetch(rd_file *f, uint64_t off, uint64_t len);

#endif
