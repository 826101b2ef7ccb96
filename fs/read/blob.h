/* blob.h — TODO contract */
#ifndef ZESTFS_FS_READ_BLOB_H
#define ZESTFS_FS_READ_BLOB_H

#include "read_int.h"

void rd_blob_read(rd_read *r);

#endif
