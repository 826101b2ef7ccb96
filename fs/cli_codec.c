/* cli_codec.c — `zestfs xet xorb-decode|xorb-encode|shard-dump` (placeholder). */
#include <stdio.h>
#include "cli.h"
int zestfs_cmd_xorb_decode(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
int zestfs_cmd_xorb_encode(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
int zestfs_cmd_shard_dump(int argc, char **argv) { fprintf(stderr, "not yet\n"); return 1; }
