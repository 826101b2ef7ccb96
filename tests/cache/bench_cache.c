/* bench_cache.c — throughput of the chunk store.
 *
 *   bench_cache DIR [MiB=1024] [chunks_per_segment=1024] [threads=4]
 *
 * Stores MiB of 64 KiB chunks as segments (hashes given by the caller, then
 * computed by the store, then with fsync), then measures lookup+unpin rate,
 * warm sequential reads, verification after reopen (page cache dropped with
 * POSIX_FADV_DONTNEED) and warm random 4 KiB reads from `threads` threads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"

#define CHUNK 65536u

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static xet_hash xorb_of(uint64_t x)
{
    xet_hash h;
    xet_chunk_hash(&x, sizeof x, &h);
    return h;
}

static int drop_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)f;
    if (flag == FTW_F) {
        int fd = open(p, O_RDONLY);
        if (fd >= 0) {
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

struct rnd_arg {
    zc_store *s;
    uint64_t nseg, per, ops, seed;
    double lat_sum;
};

static void *rnd_reader(void *p)
{
    struct rnd_arg *a = p;
    uint8_t buf[4096];
    uint64_t st = a->seed;
    for (uint64_t i = 0; i < a->ops; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t seg = (st >> 20) % a->nseg;
        uint32_t c = (uint32_t)((st >> 40) % a->per);
        xet_hash h = xorb_of(seg);
        zc_ref ref;
        double t0 = now();
        if (zc_lookup(a->s, &h, c, &ref) == 0) {
            if (zc_read(&ref, c, (st >> 8) % (CHUNK - 4096), buf, sizeof buf) != 4096)
                abort();
            zc_unpin(&ref);
        }
        a->lat_sum += now() - t0;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [MiB] [chunks_per_segment] [threads]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024;
    uint32_t per = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1024;
    int nth = argc > 4 ? atoi(argv[4]) : 4;
    uint64_t seg_bytes = (uint64_t)per * CHUNK;
    uint64_t nseg = (mib << 20) / seg_bytes;
    if (nseg == 0)
        nseg = 1;
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);

    uint8_t *data = malloc(seg_bytes);
    uint32_t *lens = malloc(per * sizeof *lens);
    xet_hash *hashes = malloc(per * sizeof *hashes);
    uint64_t st = 1;
    for (uint64_t i = 0; i < seg_bytes; i += 8) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        memcpy(data + i, &st, 8);
    }
    double t0 = now();
    for (uint32_t i = 0; i < per; i++) {
        lens[i] = CHUNK;
        xet_chunk_hash(data + (uint64_t)i * CHUNK, CHUNK, &hashes[i]);
    }
    double thash = now() - t0;
    printf("chunk hashing (BLAKE3, 1 thread): %.0f MB/s\n", seg_bytes / thash / 1e6);

    zc_store *s;
    int rc = zc_open(dir, 1ull << 40, &s);
    if (rc) {
        fprintf(stderr, "zc_open: %s\n", strerror(-rc));
        return 1;
    }
    const char *names[3] = {"put, hashes given", "put, hashes computed", "put, fsync"};
    for (int mode = 0; mode < 3; mode++) {
        uint64_t n = mode == 2 ? (nseg + 3) / 4 : nseg;
        t0 = now();
        for (uint64_t i = 0; i < n; i++) {
            xet_hash h = xorb_of(i + (uint64_t)mode * 1000000);
            rc = zc_put(s, &h, 0, per, lens, mode == 1 ? NULL : hashes, data, seg_bytes,
                        mode == 2 ? ZC_PUT_FSYNC : 0, NULL);
            if (rc) {
                fprintf(stderr, "zc_put: %s\n", strerror(-rc));
                return 1;
            }
        }
        double t = now() - t0;
        printf("%-22s %6.0f MB/s  (%llu x %llu MiB segments)\n", names[mode],
               n * seg_bytes / t / 1e6, (unsigned long long)n,
               (unsigned long long)(seg_bytes >> 20));
    }

    /* lookup + unpin */
    uint64_t nl = 0;
    t0 = now();
    for (int rep = 0; rep < 4; rep++)
        for (uint64_t i = 0; i < nseg; i++) {
            xet_hash h = xorb_of(i);
            for (uint32_t c = 0; c < per; c += 7) {
                zc_ref ref;
                if (zc_lookup(s, &h, c, &ref) == 0)
                    zc_unpin(&ref);
                nl++;
            }
        }
    double t = now() - t0;
    printf("lookup+unpin           %6.2f M/s (%.0f ns each)\n", nl / t / 1e6, t / nl * 1e9);

    /* warm sequential reads, 1 MiB at a time */
    uint8_t *buf = malloc(1 << 20);
    t0 = now();
    uint64_t total = 0;
    for (uint64_t i = 0; i < nseg; i++) {
        xet_hash h = xorb_of(i);
        zc_ref ref;
        if (zc_lookup(s, &h, 0, &ref))
            return 1;
        for (uint64_t o = 0; o < seg_bytes; o += 1 << 20) {
            ssize_t r = zc_read(&ref, 0, o, buf, 1 << 20);
            if (r <= 0)
                return 1;
            total += (uint64_t)r;
        }
        zc_unpin(&ref);
    }
    t = now() - t0;
    printf("read warm, 1 MiB       %6.0f MB/s\n", total / t / 1e6);
    zc_close(s);

    /* verification after reopen, page cache dropped */
    nftw(dir, drop_cb, 16, FTW_PHYS);
    t0 = now();
    if (zc_open(dir, 1ull << 40, &s))
        return 1;
    double topen = now() - t0;
    zc_stats sts;
    zc_get_stats(s, &sts);
    printf("reopen                 %6.1f ms (%llu segments)\n", topen * 1e3,
           (unsigned long long)sts.segments);
    t0 = now();
    for (uint64_t i = 0; i < nseg; i++) {
        xet_hash h = xorb_of(i);
        zc_ref ref;
        rc = zc_lookup(s, &h, 0, &ref);
        if (rc != -EAGAIN || zc_verify_segment(&ref))
            return 1;
        zc_unpin(&ref);
    }
    t = now() - t0;
    printf("verify, cold           %6.0f MB/s\n", nseg * seg_bytes / t / 1e6);

    /* random 4 KiB reads, warm, several threads */
    pthread_t th[64];
    struct rnd_arg a[64];
    if (nth > 64)
        nth = 64;
    t0 = now();
    for (int i = 0; i < nth; i++) {
        a[i] = (struct rnd_arg){s, nseg, per, 200000, (uint64_t)i + 7, 0};
        pthread_create(&th[i], NULL, rnd_reader, &a[i]);
    }
    double lat = 0;
    for (int i = 0; i < nth; i++) {
        pthread_join(th[i], NULL);
        lat += a[i].lat_sum;
    }
    t = now() - t0;
    printf("random 4 KiB, %d thr    %6.2f M/s (%.1f us mean, lookup+pread+unpin)\n", nth,
           nth * 200000.0 / t / 1e6, lat / (nth * 200000.0) * 1e6);
    zc_close(s);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(buf);
    free(data);
    free(lens);
    free(hashes);
    return 0;
}
