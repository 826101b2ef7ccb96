#include "cache.h"
int zcache_version(void) { return 0; }
