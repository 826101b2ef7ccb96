/* fill.h — TODO contract */
#ifndef ZESTFS_FS_READ_FILL_H
#define ZESTFS_FS_READ_FILL_H

#include "read_int.h"

void rd_fill_kick(rd_ctx *c);
void rd_fill_timer_cb(uv_timer_t *t);
int rd_fill_start_file(rd_file *f, const uint64_t *ranges, size_t nranges, zf_fill_cb cb,
                           void *ud, zf_fill **out);
void rd_fill_stop(rd_ctx *c);

#endif
