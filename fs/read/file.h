/* file.h — the files the read path knows, one rd_file per content
 * (keyed "x<xet id>" or "b<etag>": shared by every repo, revision and path
 * with that content), in a hash table that lives until zf_read_free; and
 * the LRU of small non-Xet files held in memory (BLOB_MEM bytes). */
#ifndef ZESTFS_FS_READ_FILE_H
#define ZESTFS_FS_READ_FILE_H

#include "read_int.h"

uint32_t rd_hash_key(const char *s);
rd_file *rd_file_get(rd_ctx *c, const zv_ent *e);
void rd_lru_unlink(rd_ctx *c, rd_file *f);
void rd_lru_touch(rd_ctx *c, rd_file *f);

#endif
