#include "t.h"
#include "xet.h"
int main(void) { return t_done(); }
