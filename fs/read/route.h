/* route.h — TODO contract */
#ifndef ZESTFS_FS_READ_ROUTE_H
#define ZESTFS_FS_READ_ROUTE_H

#include "read_int.h"

void rd_xet_try(rd_read *r);
void rd_read_go(rd_read *r);

#endif
