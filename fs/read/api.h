/* api.h — TODO contract */
#ifndef ZESTFS_FS_READ_API_H
#define ZESTFS_FS_READ_API_H

#include "read_int.h"

void rd_read_blob(zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off);

#endif
