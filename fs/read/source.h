/* source.h — TODO contract */
#ifndef ZESTFS_FS_READ_SOURCE_H
#define ZESTFS_FS_READ_SOURCE_H

#include "read_int.h"

void rd_xf_free(rd_xf *xf);
void rd_net_prio(rd_ctx *c);
void rd_xf_pump(rd_ctx *c);

#endif
