/* cli_bench.c — `zestfs xet bench` (placeholder). */
#include <stdio.h>
#include "cli.h"
int zestfs_cmd_bench(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
