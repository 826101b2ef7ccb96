/* blob.h — small non-Xet files (no Xet hash; up to BLOB_MAX): fetched
 * whole once (resolve.h), checked (sha256 of LFS files, the git blob sha1
 * otherwise), stored as metadata "blob/<etag>", and served from memory (an
 * LRU of BLOB_MEM bytes, file.h) or the store. */
#ifndef ZESTFS_FS_READ_BLOB_H
#define ZESTFS_FS_READ_BLOB_H

#include "read_int.h"

void rd_blob_read(rd_read *r);

#endif
