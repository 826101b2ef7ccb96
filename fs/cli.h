/* cli.h — command-line subcommands of the zestfs binary. Each returns an exit status. */
#ifndef ZESTFS_CLI_H
#define ZESTFS_CLI_H
int zestfs_cli_xet(int argc, char **argv);          /* cli_xet.c: dispatch */
int zestfs_cmd_xorb_decode(int argc, char **argv);  /* cli_codec.c */
int zestfs_cmd_xorb_encode(int argc, char **argv);  /* cli_codec.c */
int zestfs_cmd_shard_dump(int argc, char **argv);   /* cli_codec.c */
int zestfs_cmd_bench(int argc, char **argv);        /* cli_bench.c */
int zestfs_cmd_mount(int argc, char **argv);         /* mount.c */
int zestfs_cmd_pull(int argc, char **argv);          /* pull_cli.c */
int zestfs_cmd_seed(int argc, char **argv);          /* seed.c */
int zestfs_cmd_ctl(int argc, char **argv);           /* cli_ctl.c: status verify pin unpin */
int zestfs_cmd_version(int argc, char **argv);       /* version.c */
#endif
