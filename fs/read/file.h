/* file.h — TODO contract */
#ifndef ZESTFS_FS_READ_FILE_H
#define ZESTFS_FS_READ_FILE_H

#include "read_int.h"

uint32_t rd_hash_key(const char *s);
rd_file *rd_file_get(rd_ctx *c, const zv_ent *e);
void rd_lru_unlink(rd_ctx *c, rd_file *f);
void rd_lru_touch(rd_ctx *c, rd_file *f);

#endif
