/* cli_codec.c — `zestfs xet xorb-decode|xorb-encode|shard-dump`: the xorb
 * and shard codecs of xet/ on files, for users and tests.
 *
 *   xorb-decode XORB OUT    decoded bytes to OUT; one line per chunk
 *                           `chunk <index> <offset> <length> <scheme> <hash>`
 *                           then `xorb_hash <hash>`
 *   xorb-encode [--scheme none|lz4|bg4|auto] FILE OUT
 *                           FILE's chunks as one xorb (at most 64 MiB /
 *                           8192 chunks); prints `xorb_hash` and `file_hash`
 *   shard-dump SHARD        readable listing of a shard's files and xorbs */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "xet.h"

/* Read a whole file into a malloc'd buffer. */
static int read_all(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    size_t cap = st.st_size > 0 ? (size_t)st.st_size : 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) { /* the file grew, or is not a regular file */
            uint8_t *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            free(buf);
            close(fd);
            return err;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = n;
    return 0;
}

/* Write a whole buffer to a new file. */
static int write_all(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            close(fd);
            return err;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0)
        return -errno;
    return 0;
}

static int fail(const char *path, int err)
{
    fprintf(stderr, "zestfs: %s: %s\n", path, strerror(-err));
    return 1;
}

static const char *hstr(const xet_hash *h, char s[XET_HASH_STR_LEN + 1])
{
    xet_hash_to_string(h, s);
    return s;
}

int zestfs_cmd_xorb_decode(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: zestfs xet xorb-decode XORB OUT\n");
        return 2;
    }
    uint8_t *buf;
    size_t len;
    int err = read_all(argv[1], &buf, &len);
    if (err)
        return fail(argv[1], err);
    xet_record *recs = NULL;
    xet_xorb_decoded d;
    long n = xet_xorb_index(buf, len, &recs);
    if (n < 0) {
        free(buf);
        return fail(argv[1], (int)n);
    }
    err = xet_xorb_decode_all(buf, len, &d);
    free(buf);
    if (err) {
        free(recs);
        return fail(argv[1], err);
    }
    err = write_all(argv[2], d.data, d.len);
    if (err) {
        free(recs);
        xet_xorb_decoded_free(&d);
        return fail(argv[2], err);
    }
    char s[XET_HASH_STR_LEN + 1];
    uint64_t off = 0;
    for (size_t i = 0; i < d.nchunks; i++) {
        printf("chunk %zu %llu %u %u %s\n", i, (unsigned long long)off, d.chunk_len[i],
               recs[i].hdr.scheme, hstr(&d.chunk_hash[i], s));
        off += d.chunk_len[i];
    }
    printf("xorb_hash %s\n", hstr(&d.xorb_hash, s));
    free(recs);
    xet_xorb_decoded_free(&d);
    return 0;
}

int zestfs_cmd_xorb_encode(int argc, char **argv)
{
    int scheme = -1;
    int i = 1;
    if (i < argc && strncmp(argv[i], "--scheme", 8) == 0) {
        const char *v = NULL;
        if (argv[i][8] == '=')
            v = argv[i] + 9;
        else if (argv[i][8] == 0 && i + 1 < argc)
            v = argv[++i];
        if (!v)
            v = "";
        if (strcmp(v, "none") == 0)
            scheme = XET_SCHEME_NONE;
        else if (strcmp(v, "lz4") == 0)
            scheme = XET_SCHEME_LZ4;
        else if (strcmp(v, "bg4") == 0)
            scheme = XET_SCHEME_BG4_LZ4;
        else if (strcmp(v, "auto") == 0)
            scheme = -1;
        else {
            fprintf(stderr, "zestfs xet xorb-encode: unknown scheme '%s'\n", v);
            return 2;
        }
        i++;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: zestfs xet xorb-encode [--scheme none|lz4|bg4|auto] FILE OUT\n");
        return 2;
    }
    const char *in = argv[i], *outp = argv[i + 1];
    uint8_t *data;
    size_t len;
    int err = read_all(in, &data, &len);
    if (err)
        return fail(in, err);
    uint64_t *bounds = NULL;
    long n = xet_chunk_buffer(data, len, &bounds);
    if (n < 0) {
        free(data);
        return fail(in, (int)n);
    }
    xet_xorb_writer w;
    xet_xorb_writer_init(&w, scheme);
    uint64_t start = 0;
    for (long k = 0; k < n && !err; k++) {
        long r = xet_xorb_writer_add(&w, data + start, (size_t)(bounds[k] - start), NULL);
        if (r == -E2BIG) {
            fprintf(stderr, "zestfs: %s: too large for one xorb (64 MiB, 8192 chunks)\n", in);
            err = 1;
        } else if (r < 0) {
            err = fail(in, (int)r);
        }
        start = bounds[k];
    }
    free(bounds);
    free(data);
    if (!err) {
        int werr = write_all(outp, w.buf, w.len);
        if (werr)
            err = fail(outp, werr);
    }
    if (!err) {
        xet_hash xh, fh;
        char s[XET_HASH_STR_LEN + 1];
        xet_xorb_writer_hash(&w, &xh);
        /* all of the file's chunks are this xorb's chunks, in order */
        xet_file_hash_from_root(&xh, w.nchunks, NULL, &fh);
        printf("xorb_hash %s\n", hstr(&xh, s));
        printf("file_hash %s\n", hstr(&fh, s));
    }
    xet_xorb_writer_free(&w);
    return err ? 1 : 0;
}

int zestfs_cmd_shard_dump(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: zestfs xet shard-dump SHARD\n");
        return 2;
    }
    uint8_t *buf;
    size_t len;
    int err = read_all(argv[1], &buf, &len);
    if (err)
        return fail(argv[1], err);
    xet_shard sh;
    err = xet_shard_parse(buf, len, &sh);
    free(buf);
    if (err)
        return fail(argv[1], err);

    char s[XET_HASH_STR_LEN + 1], hex[65];
    printf("shard %zu bytes, %zu files, %zu xorbs", len, sh.nfiles, sh.nxorbs);
    if (sh.has_footer)
        printf(", created %llu, key_expiry %llu", (unsigned long long)sh.created,
               (unsigned long long)sh.key_expiry);
    printf("\n");
    if (sh.has_footer) {
        bool zero = true;
        for (int k = 0; k < 32; k++)
            zero &= sh.hmac_key[k] == 0;
        if (!zero) {
            xet_hex(sh.hmac_key, 32, hex);
            printf("hmac_key %s\n", hex);
        }
    }
    for (size_t i = 0; i < sh.nfiles; i++) {
        const xet_shard_file *f = &sh.files[i];
        uint64_t size = 0;
        for (size_t k = 0; k < f->nterms; k++)
            size += f->terms[k].unpacked_bytes;
        printf("file %s size %llu flags 0x%08x terms %zu\n", hstr(&f->file_hash, s),
               (unsigned long long)size, f->flags, f->nterms);
        if (f->has_sha256) {
            xet_hex(f->sha256, 32, hex);
            printf("  sha256 %s\n", hex);
        }
        for (size_t k = 0; k < f->nterms; k++) {
            const xet_term *t = &f->terms[k];
            printf("  term %zu xorb %s chunks [%u,%u) bytes %u", k, hstr(&t->xorb, s),
                   t->chunk_start, t->chunk_end, t->unpacked_bytes);
            if (f->verification)
                printf(" verification %s", hstr(&f->verification[k], s));
            printf("\n");
        }
    }
    for (size_t i = 0; i < sh.nxorbs; i++) {
        const xet_shard_xorb *x = &sh.xorbs[i];
        printf("xorb %s chunks %zu bytes %u on_disk %u flags 0x%08x\n", hstr(&x->hash, s),
               x->nchunks, x->bytes_in_xorb, x->bytes_on_disk, x->flags);
        for (size_t k = 0; k < x->nchunks; k++) {
            const xet_shard_chunk *c = &x->chunks[k];
            printf("  chunk %zu %s offset %u len %u", k, hstr(&c->hash, s), c->offset, c->len);
            if (c->flags)
                printf(" flags 0x%08x", c->flags);
            printf("\n");
        }
    }
    xet_shard_free(&sh);
    return 0;
}
