/* fill.h — TODO contract */
#ifndef ZESTFS_FS_READ_FILL_H
#define ZESTFS_FS_READ_FILL_H

#include "read_int.h"

bool rd_xf_fills_only(const rd_xf *xf, bool pull);
bool rd_xf_fill_only(const rd_xf *xf);
void rd_fill_kick(rd_ctx *c);
void rd_fill_piece_done(rd_read *r, int err);
void rd_fill_timer_cb(uv_timer_t *t);
int rd_fill_start_file(rd_file *f, const uint64_t *ranges, size_t nranges, zf_fill_cb cb,
                           void *ud, zf_fill **out);
void rd_fill_stop(rd_ctx *c);

#endif
