/* store_read.h — TODO contract */
#ifndef ZESTFS_FS_READ_STORE_READ_H
#define ZESTFS_FS_READ_STORE_READ_H

#include "read_int.h"

int rd_store_read(zc_store *s, const rd_ext *ex, size_t n, uint64_t off, uint64_t len,
                  uint8_t *out, uint64_t *miss);
void rd_store_start(rd_read *r);
uint64_t rd_first_unstored(rd_file *f, uint64_t off, uint64_t end);

#endif
