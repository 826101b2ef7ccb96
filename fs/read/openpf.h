/* openpf.h — prefetch at open.  While a .safetensors or .gguf blob is
 * open: fill its first window, parse the header from the store (tensors.c;
 * more of the file if the header is longer), then, if the file is still
 * open OPF_GRACE_MS later, fill the tensors' byte ranges in file order.
 * Cancelled at the last release.  Not for files over half the store cap.
 * rd_blob_opened/rd_blob_released are fs->blob_opened/blob_released. */
#ifndef ZESTFS_FS_READ_OPENPF_H
#define ZESTFS_FS_READ_OPENPF_H

#include "read_int.h"

void *rd_blob_opened(zf_fs *fs, const zv_ent *e);
void rd_blob_released(zf_fs *fs, void *token);
void rd_openpf_stop(rd_file *f);
void rd_openpf_free(rd_file *f);

#endif
