/* main.c — the zestfs binary: `zestfs [options] MOUNTPOINT` and the
 * `zestfs xet ...` tool commands. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: zestfs [options] MOUNTPOINT      mount (see zestfs MOUNTPOINT --help)\n"
            "       zestfs pull [options] REPO[@REV] fill the store with a repo (see --help)\n"
            "       zestfs seed [--store DIR] [--listen ..] [--peer ..]  serve a store to peers\n"
            "       zestfs status [MOUNTPOINT]         what a running mount is doing\n"
            "       zestfs verify REPO[@REV]           re-hash a repo's stored bytes\n"
            "       zestfs pin REPO[@REV] | unpin REPO keep a repo stored (never evicted)\n"
            "       zestfs evict REPO[@REV]            drop a repo's stored data (not shared, not pinned)\n"
            "       zestfs version [--json]            version, libraries, features (also --version)\n"
            "       zestfs xet hash FILE...            print each file's Xet file id\n"
            "       zestfs xet chunks FILE             chunk boundaries and hashes\n"
            "       zestfs xet xorb-decode XORB OUT    decode a xorb, print chunk hashes\n"
            "       zestfs xet xorb-encode FILE OUT    chunk FILE and write it as one xorb\n"
            "       zestfs xet shard-dump SHARD        print a shard's files and xorbs\n"
            "       zestfs xet bench [--size MiB] [--json]  hashing / LZ4 / chunker throughput\n");
}

int main(int argc, char **argv)
{
    /* Fetch bodies and decoded runs are 1-64 MiB buffers, allocated on one
     * thread and freed on another; with an arena per thread (loop + pool)
     * glibc keeps freed ones in each, and peak RSS behind a slow link came
     * near 254 MiB for 128 MiB of fetch budget.  Two arenas: about 30 MiB
     * less, at no CPU cost (a fixed mmap threshold halves RSS but every
     * buffer's first touch faults: 50% more CPU on a cold read here). */
    mallopt(M_ARENA_MAX, 2);
    if (argc >= 2 && strcmp(argv[1], "pull") == 0)
        return zestfs_cmd_pull(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "seed") == 0)
        return zestfs_cmd_seed(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "status") || !strcmp(argv[1], "verify") ||
                      !strcmp(argv[1], "pin") || !strcmp(argv[1], "unpin") ||
                      !strcmp(argv[1], "evict")))
        return zestfs_cmd_ctl(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version") ||
                      !strcmp(argv[1], "-V")))
        return zestfs_cmd_version(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "xet") == 0)
        return zestfs_cli_xet(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2) {
        /* the mount's options: config files first, the command line wins */
        int cargc;
        char **cargv, err[512];
        int rc = zf_config_argv(argc, argv, &cargc, &cargv, err, sizeof err);
        if (rc) {
            fprintf(stderr, "zestfs: %s\n", err);
            return 2;
        }
        rc = zestfs_cmd_mount(cargc, cargv);
        zf_config_free(cargv);
        return rc;
    }
    usage(stderr);
    return 2;
}
