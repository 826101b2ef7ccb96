#include "net.h"
int znet_version(void) { return 0; }
