/* tokens.h — TODO contract */
#ifndef ZESTFS_FS_READ_TOKENS_H
#define ZESTFS_FS_READ_TOKENS_H

#include "read_int.h"



#endif
