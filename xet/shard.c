/* shard.c — placeholder, see xet.h */
#include "xet.h"
