/* cli_bench.c — `zestfs xet bench`: throughput of the Xet core, each figure
 * side by side with a baseline measured in the same run on the same bytes.
 *
 *   BLAKE3 chunk hashing   xet_chunk_hash over 64 KiB pieces of a file
 *                          vs `b3sum --num-threads 1` on that file
 *   LZ4 record decode      xet_chunk_decode of LZ4-frame records
 *                          vs LZ4_decompress_safe on the same blocks
 *   chunker                gearhash CDC over the file (no hashing)
 *   xorb decode + verify   decode every record of 64 MiB xorbs, hash each
 *                          chunk, compute the xorb hash
 *
 * Each figure is the median of --runs passes (default 5) after a warm-up,
 * one thread, data in memory (the file is in the page cache). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "xet.h"

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Model-weight-like bytes: bf16 values of a N(0, 0.02)-ish distribution
 * (sum of uniforms), deterministic. */
static void fill_weights(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i + 1 < n; i += 2) {
        double acc = 0;
        for (int k = 0; k < 4; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            acc += (double)(s >> 11) * (1.0 / 9007199254740992.0);
        }
        float f = (float)((acc - 2.0) * 0.0346); /* sd ~0.02 */
        uint32_t u;
        memcpy(&u, &f, 4);
        uint16_t bf = (uint16_t)(u >> 16);
        p[i] = (uint8_t)bf;
        p[i + 1] = (uint8_t)(bf >> 8);
    }
}

static void fill_text(uint8_t *p, size_t n)
{
    static const char *words[] = {"the ", "tensor ", "model ", "weights ", "layer ", "attention ",
                                  "of ", "and ", "0.125, ", "-1.5e-3, ", "\"name\": ", "\n"};
    uint64_t s = 12345;
    size_t i = 0;
    while (i < n) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const char *w = words[s % 12];
        size_t l = strlen(w);
        if (l > n - i)
            l = n - i;
        memcpy(p + i, w, l);
        i += l;
    }
}

/* Run `b3sum --num-threads 1 FILE` and return its wall time (s), or <0. */
static double time_b3sum(const char *path)
{
    char *argv[] = {"b3sum", "--num-threads", "1", (char *)path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    double t0 = now();
    if (posix_spawnp(&pid, "b3sum", &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now() - t0;
    posix_spawn_file_actions_destroy(&fa);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

/* The LZ4 blocks inside one record's frame (for the raw-liblz4 baseline). */
struct block {
    const uint8_t *src;
    uint32_t clen;
    uint8_t *dst;
    uint32_t cap;
    uint8_t *base;   /* start of the record's output: linked blocks use it as dictionary */
    bool stored;     /* an uncompressed block: copied */
};

static size_t frame_blocks(const uint8_t *f, size_t n, uint8_t *dst, struct block *out, size_t max)
{
    size_t pos = 4; /* magic */
    uint8_t flg = f[pos];
    pos += 2 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0) + 1;
    size_t k = 0, doff = 0;
    while (pos + 4 <= n && k < max) {
        uint32_t bs = (uint32_t)f[pos] | (uint32_t)f[pos + 1] << 8 | (uint32_t)f[pos + 2] << 16 |
                      (uint32_t)f[pos + 3] << 24;
        pos += 4;
        if (bs == 0)
            break;
        uint32_t len = bs & 0x7fffffffu;
        out[k].src = f + pos;
        out[k].clen = len;
        out[k].dst = dst + doff;
        out[k].cap = 65536;
        out[k].base = dst;
        out[k].stored = (bs & 0x80000000u) != 0;
        k++;
        doff += 65536;
        pos += len + ((flg & 0x10) ? 4 : 0);
    }
    return k;
}

struct records {
    uint8_t *buf;             /* serialized records */
    size_t len;
    size_t n;
    xet_record *rec;
    uint64_t decoded;         /* total decoded bytes */
};

/* Encode `data` (chunked by the CDC) as records with a fixed scheme. */
static int make_records(const uint8_t *data, size_t len, int scheme, struct records *r)
{
    uint64_t *bounds;
    long nb = xet_chunk_buffer(data, len, &bounds);
    if (nb < 0)
        return (int)nb;
    r->buf = malloc(len + (size_t)nb * 64 + 4096);
    r->len = 0;
    uint64_t prev = 0;
    for (long i = 0; i < nb; i++) {
        long w = xet_chunk_encode(data + prev, bounds[i] - prev, scheme, r->buf + r->len);
        if (w < 0) {
            free(bounds);
            return (int)w;
        }
        r->len += (size_t)w;
        prev = bounds[i];
    }
    free(bounds);
    long n = xet_xorb_index(r->buf, r->len, &r->rec);
    if (n < 0)
        return (int)n;
    r->n = (size_t)n;
    r->decoded = len;
    return 0;
}

/* --json: the rows are collected here and printed as one object at the end */
static cJSON *json_rows;

static void report(const char *what, double ours, const char *base_name, double base)
{
    if (json_rows) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "what", what);
        cJSON_AddNumberToObject(o, "gb_per_s", ours / 1e9);
        cJSON_AddStringToObject(o, "baseline", base_name);
        if (base > 0) {
            cJSON_AddNumberToObject(o, "baseline_gb_per_s", base / 1e9);
            cJSON_AddNumberToObject(o, "ratio", ours / base);
        } else {
            cJSON_AddNullToObject(o, "baseline_gb_per_s");
        }
        cJSON_AddItemToArray(json_rows, o);
        return;
    }
    if (base > 0)
        printf("%-34s %8.2f GB/s   %-28s %8.2f GB/s   ratio %.2f\n", what, ours / 1e9, base_name,
               base / 1e9, ours / base);
    else
        printf("%-34s %8.2f GB/s   %-28s %8s\n", what, ours / 1e9, base_name, "n/a");
}

static int bench_lz4(const char *label, const uint8_t *data, size_t len, int scheme, int runs)
{
    struct records r;
    int err = make_records(data, len, scheme, &r);
    if (err) {
        fprintf(stderr, "zestfs: bench: encode: %s\n", strerror(-err));
        return 1;
    }
    uint8_t *out = malloc(len + XET_CHUNK_MAX);
    /* baseline: the same LZ4 blocks through LZ4_decompress_safe */
    size_t nblk = 0, cap = r.n * 4;
    struct block *blk = malloc(cap * sizeof *blk);
    uint64_t off = 0;
    size_t compressed_records = 0;
    for (size_t i = 0; i < r.n; i++) {
        const xet_record *rc = &r.rec[i];
        if (rc->hdr.scheme != XET_SCHEME_NONE) {
            compressed_records++;
            nblk += frame_blocks(r.buf + rc->offset + XET_CHUNK_HEADER_LEN, rc->hdr.clen, out + off,
                                 blk + nblk, cap - nblk);
        }
        off += rc->hdr.ulen;
    }
    double tb[64], to[64];
    for (int k = 0; k <= runs; k++) {
        double t0 = now();
        for (size_t i = 0; i < nblk; i++) {
            if (blk[i].stored) {
                memcpy(blk[i].dst, blk[i].src, blk[i].clen);
                continue;
            }
            if (LZ4_decompress_safe_usingDict((const char *)blk[i].src, (char *)blk[i].dst,
                                              (int)blk[i].clen, (int)blk[i].cap,
                                              (const char *)blk[i].base,
                                              (int)(blk[i].dst - blk[i].base)) < 0)
                return fprintf(stderr, "bench: raw lz4 failed\n"), 1;
        }
        double t1 = now();
        off = 0;
        for (size_t i = 0; i < r.n; i++) {
            const xet_record *rc = &r.rec[i];
            if (rc->hdr.scheme != XET_SCHEME_NONE &&
                xet_chunk_decode(&rc->hdr, r.buf + rc->offset + XET_CHUNK_HEADER_LEN, out + off) != 0)
                return fprintf(stderr, "bench: decode failed\n"), 1;
            off += rc->hdr.ulen;
        }
        double t2 = now();
        if (k) {
            tb[k - 1] = t1 - t0;
            to[k - 1] = t2 - t1;
        }
    }
    /* bytes: decoded size of the compressed records */
    uint64_t bytes = 0;
    for (size_t i = 0; i < r.n; i++)
        if (r.rec[i].hdr.scheme != XET_SCHEME_NONE)
            bytes += r.rec[i].hdr.ulen;
    char what[96];
    snprintf(what, sizeof what, "LZ4 record decode (%s, %.2fx)", label,
             (double)r.decoded / (double)(r.len ? r.len : 1));
    report(what, (double)bytes / median(to, runs), "raw liblz4, same blocks", (double)bytes / median(tb, runs));
    (void)compressed_records;
    free(blk);
    free(out);
    free(r.buf);
    free(r.rec);
    return 0;
}

int zestfs_cmd_bench(int argc, char **argv)
{
    size_t mib = 512;
    int runs = 5;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            mib = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: zestfs xet bench [--size MiB] [--runs N] [--json]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 64 || mib < 64) {
        fprintf(stderr, "zestfs: bench: --runs 1..64, --size >= 64\n");
        return 2;
    }
    size_t len = mib << 20;

    /* the test file: model-like weights, written to disk for b3sum */
    char path[4096];
    snprintf(path, sizeof path, "%s/zestfs-bench-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "zestfs: bench: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (ftruncate(fd, (off_t)len) != 0) {
        fprintf(stderr, "zestfs: bench: %s\n", strerror(errno));
        return 1;
    }
    uint8_t *data = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (data == MAP_FAILED) {
        fprintf(stderr, "zestfs: bench: mmap: %s\n", strerror(errno));
        return 1;
    }
    fill_weights(data, len, 1);
    msync(data, len, MS_SYNC);

    if (json)
        json_rows = cJSON_CreateArray();
    else
        printf("zestfs xet bench: %zu MiB, one thread, median of %d runs\n\n", mib, runs);

    /* 1. BLAKE3 chunk hashing vs b3sum */
    double tb[64], to[64];
    int have_b3 = 1;
    for (int k = 0; k <= runs; k++) {
        double t = time_b3sum(path);
        if (t < 0)
            have_b3 = 0;
        double t0 = now();
        xet_hash h;
        for (size_t off = 0; off < len; off += 65536)
            xet_chunk_hash(data + off, len - off < 65536 ? len - off : 65536, &h);
        double t1 = now();
        if (k) {
            tb[k - 1] = t;
            to[k - 1] = t1 - t0;
        }
    }
    report("BLAKE3 chunk hash (64 KiB, keyed)", (double)len / median(to, runs),
           "b3sum --num-threads 1", have_b3 ? (double)len / median(tb, runs) : 0);

    /* 2. chunker */
    for (int k = 0; k <= runs; k++) {
        double t0 = now();
        xet_chunker c;
        xet_chunker_init(&c);
        size_t off = 0, nchunks = 0;
        while (off < len) {
            bool cut;
            off += xet_chunker_next(&c, data + off, len - off, &cut);
            nchunks += cut;
        }
        if (k)
            to[k - 1] = now() - t0;
    }
    report("chunker (gearhash CDC)", (double)len / median(to, runs), "(goal >= 1 GB/s)", 0);

    /* 3. LZ4 decode vs raw liblz4, on weights (plain LZ4) and text */
    size_t sub = len < (256u << 20) ? len : (256u << 20);
    if (bench_lz4("bf16 weights", data, sub, XET_SCHEME_LZ4, runs))
        return 1;
    uint8_t *text = malloc(sub);
    fill_text(text, sub);
    if (bench_lz4("text", text, sub, XET_SCHEME_LZ4, runs))
        return 1;
    if (bench_lz4("bf16 weights, BG4", data, sub, XET_SCHEME_BG4_LZ4, runs))
        return 1;

    /* 4. full xorb decode + verify: 64 MiB xorbs of mixed content, auto scheme */
    size_t xl = 64u << 20;
    uint8_t *mixed = malloc(xl);
    memcpy(mixed, data, xl / 2);
    memcpy(mixed + xl / 2, text, xl / 2);
    xet_xorb_writer w;
    xet_xorb_writer_init(&w, -1);
    uint64_t *bounds;
    long nb = xet_chunk_buffer(mixed, xl, &bounds);
    uint64_t prev = 0;
    long added = 0;
    for (long i = 0; i < nb; i++) {
        if (xet_xorb_writer_add(&w, mixed + prev, bounds[i] - prev, NULL) < 0)
            break;
        added++;
        prev = bounds[i];
    }
    free(bounds);
    uint64_t xorb_bytes = prev;
    xet_hash want;
    xet_xorb_writer_hash(&w, &want);
    for (int k = 0; k <= runs; k++) {
        double t0 = now();
        xet_xorb_decoded d;
        int err = xet_xorb_decode_all(w.buf, w.len, &d);
        if (err || !xet_hash_eq(&d.xorb_hash, &want)) {
            fprintf(stderr, "zestfs: bench: xorb verify failed (%d)\n", err);
            return 1;
        }
        xet_xorb_decoded_free(&d);
        if (k)
            to[k - 1] = now() - t0;
    }
    char what[96];
    snprintf(what, sizeof what, "xorb decode + verify (%ld chunks)", added);
    report(what, (double)xorb_bytes / median(to, runs), "(decode+hash+merkle)", 0);
    xet_xorb_writer_free(&w);

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "size_mib", (double)mib);
        cJSON_AddNumberToObject(o, "runs", runs);
        cJSON_AddNumberToObject(o, "threads", 1);
        cJSON_AddItemToObject(o, "results", json_rows);
        char *text_out = cJSON_PrintUnformatted(o);
        puts(text_out);
        cJSON_free(text_out);
        cJSON_Delete(o);
        json_rows = NULL;
    }
    free(mixed);
    free(text);
    munmap(data, len);
    close(fd);
    unlink(path);
    return 0;
}
