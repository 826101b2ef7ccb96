/* cli_xet.c — `zestfs xet hash|chunks|...`: Xet tools for users and tests. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "xet.h"

/* Stream a file (or "-" for stdin) through a whole-file hasher. */
static int digest_file(const char *path, xet_chunk_cb cb, void *ud, xet_file_digest *d)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    xet_file_hasher *fh = xet_file_hasher_new(cb, ud);
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (!fh || !buf) {
        free(buf);
        if (fd)
            close(fd);
        return -ENOMEM;
    }
    int err = 0;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        if (n == 0)
            break;
        xet_file_hasher_update(fh, buf, (size_t)n);
    }
    xet_file_hasher_final(fh, d);
    free(buf);
    if (fd)
        close(fd);
    return err;
}

static int cmd_hash(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: zestfs xet hash FILE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        xet_file_digest d;
        int err = digest_file(argv[i], NULL, NULL, &d);
        if (err) {
            fprintf(stderr, "zestfs: %s: %s\n", argv[i], strerror(-err));
            rc = 1;
            continue;
        }
        char s[XET_HASH_STR_LEN + 1];
        xet_hash_to_string(&d.file_hash, s);
        if (argc > 2)
            printf("%s  %s\n", s, argv[i]);
        else
            printf("%s\n", s);
    }
    return rc;
}

static void print_chunk(void *ud, uint64_t index, uint64_t offset, uint32_t len, const xet_hash *h)
{
    char s[XET_HASH_STR_LEN + 1];
    xet_hash_to_string(h, s);
    printf("chunk %llu %llu %u %s\n", (unsigned long long)index, (unsigned long long)offset, len, s);
}

static int cmd_chunks(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: zestfs xet chunks FILE\n");
        return 2;
    }
    xet_file_digest d;
    int err = digest_file(argv[1], print_chunk, NULL, &d);
    if (err) {
        fprintf(stderr, "zestfs: %s: %s\n", argv[1], strerror(-err));
        return 1;
    }
    char s[XET_HASH_STR_LEN + 1];
    xet_hash_to_string(&d.xorb_hash, s);
    printf("xorb_hash %s\n", s);
    xet_hash_to_string(&d.file_hash, s);
    printf("file_hash %s\n", s);
    if (d.nchunks)
        xet_hash_to_string(&d.verification_hash, s);
    else
        strcpy(s, "-");
    printf("verification_hash_all_chunks %s\n", s);
    return 0;
}

int zestfs_cli_xet(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: zestfs xet hash|chunks|xorb-decode|xorb-encode|shard-dump|bench ...\n");
        return 2;
    }
    const char *c = argv[1];
    if (strcmp(c, "hash") == 0)
        return cmd_hash(argc - 1, argv + 1);
    if (strcmp(c, "chunks") == 0)
        return cmd_chunks(argc - 1, argv + 1);
    if (strcmp(c, "xorb-decode") == 0)
        return zestfs_cmd_xorb_decode(argc - 1, argv + 1);
    if (strcmp(c, "xorb-encode") == 0)
        return zestfs_cmd_xorb_encode(argc - 1, argv + 1);
    if (strcmp(c, "shard-dump") == 0)
        return zestfs_cmd_shard_dump(argc - 1, argv + 1);
    if (strcmp(c, "bench") == 0)
        return zestfs_cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "zestfs xet: unknown command '%s'\n", c);
    return 2;
}
