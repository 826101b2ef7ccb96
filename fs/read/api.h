/* api.h — the requests the rest of fs/ makes (zfs.h: zf_read_async,
 * zf_read_stored, zf_read_check, zf_read_label_file, zf_read_file_xorbs)
 * and the FUSE read (fs->hooks.read_blob = rd_read_blob): each a kind of request
 * with its ops (req.h). */
#ifndef ZESTFS_FS_READ_API_H
#define ZESTFS_FS_READ_API_H

#include "read_int.h"

void rd_read_blob(zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off);

#endif
