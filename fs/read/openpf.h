/* openpf.h — prefetch at open.  While a .safetensors or .gguf blob is
 * open: fill its first window, parse the header from the store (tensors.c;
 * more of the file if the header is longer) and keep the tensor table as
 * f->tmap until the last release; the tensors themselves are fetched as the
 * reader shows it wants them (prefetch.h, window.c's tensor-sized misses).
 * rd_blob_opened/rd_blob_released are fs->blob_opened/blob_released. */
#ifndef ZESTFS_FS_READ_OPENPF_H
#define ZESTFS_FS_READ_OPENPF_H

#include "read_int.h"

void *rd_blob_opened(zf_fs *fs, const zv_ent *e);
void rd_blob_released(zf_fs *fs, void *token);
void rd_openpf_stop(rd_file *f);
void rd_openpf_free(rd_file *f);

#endif
