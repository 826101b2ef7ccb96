/* ctx.h — TODO contract */
#ifndef ZESTFS_FS_READ_CTX_H
#define ZESTFS_FS_READ_CTX_H

#include "read_int.h"



#endif
