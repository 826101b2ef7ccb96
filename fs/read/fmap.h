/* fmap.h — TODO contract */
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
