/* mmap_fault.c — a helper of the fs stress tests: N threads fault one
 * mmap'd file (through the mount) at once and compare every page with the
 * original file (on local disk).
 *
 *   mmap_fault MOUNTED ORIGINAL NTHREADS SEED
 *
 * Thread t visits every 4 KiB page of the file in its own random order (a
 * Fisher-Yates permutation seeded with SEED + t) and compares the mapped
 * page with the original's; every 2048 pages it also reads a 2 MiB run
 * (thread-strided: offset = ((t + k * NTHREADS) * 2 MiB) mod size) with
 * pread(2) on its own descriptor and compares that too.  Python's mmap would
 * hold the GIL across each fault, so this is C: the faults really overlap.
 * Prints one JSON line: {"pages", "bad_pages", "runs", "bad_runs",
 * "errors", "first_bad"}; exit 0 when everything matched, 1 otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096ull
#define RUN (2ull << 20)

static const char *mounted;
static const unsigned char *mnt_map, *ref_map;
static uint64_t size, npages;
static int nthreads;
static uint64_t seed;
static atomic_uint_fast64_t pages_done, bad_pages, runs_done, bad_runs, errors;
static atomic_int_fast64_t first_bad = -1;

static uint64_t next_rand(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void note_bad(uint64_t off)
{
    int_fast64_t want = -1;
    atomic_compare_exchange_strong(&first_bad, &want, (int_fast64_t)off);
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t s = seed + (uint64_t)t * 7919;
    uint32_t *perm = malloc(npages * sizeof *perm);
    unsigned char *buf = malloc(RUN);
    int fd = open(mounted, O_RDONLY);
    if (!perm || !buf || fd < 0) {
        atomic_fetch_add(&errors, 1);
        free(perm);
        free(buf);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    for (uint64_t i = 0; i < npages; i++)
        perm[i] = (uint32_t)i;
    for (uint64_t i = npages - 1; i > 0; i--) {
        uint64_t j = next_rand(&s) % (i + 1);
        uint32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    uint64_t k = 0;
    for (uint64_t i = 0; i < npages; i++) {
        uint64_t off = perm[i] * PAGE;
        uint64_t n = size - off < PAGE ? size - off : PAGE;
        if (memcmp(mnt_map + off, ref_map + off, n) != 0) {
            atomic_fetch_add(&bad_pages, 1);
            note_bad(off);
        }
        atomic_fetch_add(&pages_done, 1);
        if (i % 2048 == 2047) {
            uint64_t roff = (((uint64_t)t + k++ * (uint64_t)nthreads) * RUN) % size;
            uint64_t want = size - roff < RUN ? size - roff : RUN, got = 0;
            while (got < want) {
                ssize_t r = pread(fd, buf + got, want - got, (off_t)(roff + got));
                if (r <= 0) {
                    fprintf(stderr, "mmap_fault: pread at %" PRIu64 ": %s\n", roff + got,
                            r < 0 ? strerror(errno) : "short read before EOF");
                    atomic_fetch_add(&errors, 1);
                    break;
                }
                got += (uint64_t)r;
            }
            if (got == want && memcmp(buf, ref_map + roff, want) != 0) {
                atomic_fetch_add(&bad_runs, 1);
                note_bad(roff);
            }
            atomic_fetch_add(&runs_done, 1);
        }
    }
    close(fd);
    free(buf);
    free(perm);
    return NULL;
}

static const unsigned char *map_file(const char *path, uint64_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "mmap_fault: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    *len = (uint64_t)st.st_size;
    void *p = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "mmap_fault: mmap %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: mmap_fault MOUNTED ORIGINAL NTHREADS SEED\n");
        return 2;
    }
    mounted = argv[1];
    nthreads = atoi(argv[3]);
    seed = strtoull(argv[4], NULL, 10);
    uint64_t rsize;
    mnt_map = map_file(argv[1], &size);
    ref_map = map_file(argv[2], &rsize);
    if (rsize != size || size == 0 || nthreads < 1 || nthreads > 1024) {
        fprintf(stderr, "mmap_fault: sizes %" PRIu64 " vs %" PRIu64 ", %d threads\n", size,
                rsize, nthreads);
        return 2;
    }
    npages = (size + PAGE - 1) / PAGE;
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    for (int t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) != 0) {
            fprintf(stderr, "mmap_fault: pthread_create failed\n");
            return 2;
        }
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    free(th);
    printf("{\"pages\": %" PRIu64 ", \"bad_pages\": %" PRIu64 ", \"runs\": %" PRIu64
           ", \"bad_runs\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"first_bad\": %" PRId64 "}\n",
           (uint64_t)pages_done, (uint64_t)bad_pages, (uint64_t)runs_done, (uint64_t)bad_runs,
           (uint64_t)errors, (int64_t)first_bad);
    return bad_pages || bad_runs || errors ? 1 : 0;
}
