/* openpf.h — TODO contract */
#ifndef ZESTFS_FS_READ_OPENPF_H
#define ZESTFS_FS_READ_OPENPF_H

#include "read_int.h"

void *rd_blob_opened(zf_fs *fs, const zv_ent *e);
void rd_blob_released(zf_fs *fs, void *token);
void rd_openpf_stop(rd_file *f);
void rd_openpf_free(rd_file *f);

#endif
