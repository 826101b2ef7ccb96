/* window.h — TODO contract */
#ifndef ZESTFS_FS_READ_WINDOW_H
#define ZESTFS_FS_READ_WINDOW_H

#include "read_int.h"

void rd_cell_done(rd_cell *cl, int err);
bool rd_retryable(int err);
void rd_cell_attempt_failed(rd_cell *cl, int err);
void rd_cell_start(rd_cell *cl);
rd_cell *rd_cell_find(rd_file *f, uint64_t k);
rd_cell *rd_cell_new(rd_file *f, uint64_t k);
void rd_fetch_cells(rd_read *r, uint64_t from);

#endif
