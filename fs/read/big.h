/* big.h — TODO contract */
#ifndef ZESTFS_FS_READ_BIG_H
#define ZESTFS_FS_READ_BIG_H

#include "read_int.h"

void rd_big_cell_start(rd_cell *cl);
void rd_big_label(rd_read *r);
void rd_big_map(rd_file *f);
void rd_big_free(rd_file *f);

#endif
