/* test_cache.c — the chunk store (cache/cache.h): byte-exact put/lookup/read
 * across segments and xorbs, reopen, kill -9 at random instants, the size
 * cap under 3x load with pins and labels, corrupt segments, ENOSPC on a tiny
 * tmpfs, bounded fds with thousands of segments, concurrent readers, and
 * metadata blobs. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "t.h"

/* ---- deterministic content: chunk c of xorb seed x ------------------------ */

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t g_maxlen = 20000; /* chunk lengths are 1..g_maxlen */

static uint32_t chunk_len(uint64_t x, uint32_t c)
{
    return 1 + (uint32_t)(mix(x * 1000003 + c) % g_maxlen);
}

static void chunk_fill(uint64_t x, uint32_t c, uint8_t *out, uint32_t len)
{
    uint64_t st = mix(x ^ ((uint64_t)c << 32) ^ 0x5555);
    for (uint32_t i = 0; i < len; i += 8) {
        st = mix(st);
        uint32_t k = len - i < 8 ? len - i : 8;
        memcpy(out + i, &st, k);
    }
}

static xet_hash xorb_of(uint64_t x)
{
    xet_hash h;
    xet_chunk_hash(&x, sizeof x, &h);
    return h;
}

struct run {
    uint32_t *lens;
    xet_hash *hashes;
    uint8_t *data;
    size_t len;
};

static void run_make(uint64_t x, uint32_t start, uint32_t end, struct run *r)
{
    uint32_t n = end - start;
    r->lens = malloc(n * sizeof *r->lens);
    r->hashes = malloc(n * sizeof *r->hashes);
    r->len = 0;
    for (uint32_t i = 0; i < n; i++)
        r->len += r->lens[i] = chunk_len(x, start + i);
    r->data = malloc(r->len ? r->len : 1);
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        chunk_fill(x, start + i, r->data + o, r->lens[i]);
        xet_chunk_hash(r->data + o, r->lens[i], &r->hashes[i]);
        o += r->lens[i];
    }
}

static void run_free(struct run *r)
{
    free(r->lens);
    free(r->hashes);
    free(r->data);
}

static int put_run(zc_store *s, uint64_t x, uint32_t start, uint32_t end, bool give_hashes,
                   unsigned flags, zc_ref *pin)
{
    struct run r;
    run_make(x, start, end, &r);
    xet_hash h = xorb_of(x);
    int rc = zc_put(s, &h, start, end, r.lens, give_hashes ? r.hashes : NULL, r.data, r.len,
                    flags, pin);
    run_free(&r);
    return rc;
}

/* Look chunk c of xorb x up and read it back whole: 1 if present and
 * byte-exact, 0 if absent, -1 (and a failed check) if wrong. */
static int check_chunk(zc_store *s, uint64_t x, uint32_t c)
{
    xet_hash h = xorb_of(x);
    zc_ref ref;
    int rc = zc_lookup(s, &h, c, &ref);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0 && rc != -EAGAIN) {
        T_EQ_INT(rc, 0);
        return -1;
    }
    uint32_t len = chunk_len(x, c);
    uint8_t *want = malloc(len), *got = malloc(len + 16);
    chunk_fill(x, c, want, len);
    ssize_t n = zc_read(&ref, c, 0, got, len + 16);
    int res = 1;
    if (n == -EBADMSG) {
        res = 0; /* failed verification: now missing */
    } else {
        T_EQ_INT(ref.ready, 1);
        T_EQ_INT(ref.len, len);
        T_TRUE(n >= (ssize_t)len);
        if (n >= (ssize_t)len) {
            T_EQ_MEM(got, want, len);
            if (memcmp(got, want, len))
                res = -1;
        } else
            res = -1;
    }
    zc_unpin(&ref);
    free(want);
    free(got);
    return res;
}

/* ---- temp dirs ------------------------------------------------------------ */

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/zc-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    if (!d) {
        perror("mkdtemp");
        exit(2);
    }
    return strdup(d);
}

static char *path_in(const char *dir, const char *rel)
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, rel);
    return buf[k];
}

static long count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Path of the one segment file of xorb x whose name contains ".start-end." */
static bool seg_file(const char *dir, uint64_t x, uint32_t start, uint32_t end, char *out,
                     size_t outlen)
{
    xet_hash h = xorb_of(x);
    char hs[XET_HASH_STR_LEN + 1], sub[3800], pre[128];
    xet_hash_to_string(&h, hs);
    snprintf(sub, sizeof sub, "%s/xorbs/%.2s", dir, hs);
    snprintf(pre, sizeof pre, "%s.%u-%u.", hs, start, end);
    DIR *d = opendir(sub);
    if (!d)
        return false;
    struct dirent *e;
    bool found = false;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, pre, strlen(pre))) {
            snprintf(out, outlen, "%s/%s", sub, e->d_name);
            found = true;
        }
    closedir(d);
    return found;
}

static uint64_t du_bytes(const char *dir); /* allocated bytes under dir */

static uint64_t g_du;
static int du_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p, (void)ftw;
    if (flag == FTW_F)
        g_du += (uint64_t)sb->st_blocks * 512;
    return 0;
}
static uint64_t du_bytes(const char *dir)
{
    g_du = 0;
    nftw(dir, du_cb, 16, FTW_PHYS);
    return g_du;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_basic(void)
{
    char *dir = tmpdir();
    zc_store *s;
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    xet_hash h1 = xorb_of(1), h2 = xorb_of(2), h9 = xorb_of(9);

    T_EQ_INT(put_run(s, 1, 0, 10, true, 0, NULL), 0);
    T_EQ_INT(put_run(s, 1, 10, 20, false, 0, NULL), 0);
    T_EQ_INT(put_run(s, 1, 15, 25, true, ZC_PUT_VERIFY, NULL), 0); /* partial overlap */
    T_EQ_INT(put_run(s, 1, 40, 41, true, ZC_PUT_FSYNC, NULL), 0);
    T_EQ_INT(put_run(s, 2, 3, 7, true, 0, NULL), 0);
    for (uint32_t c = 0; c < 25; c++)
        T_EQ_INT(check_chunk(s, 1, c), 1);
    T_EQ_INT(check_chunk(s, 1, 25), 0);
    T_EQ_INT(check_chunk(s, 1, 40), 1);
    T_EQ_INT(check_chunk(s, 2, 2), 0);
    for (uint32_t c = 3; c < 7; c++)
        T_EQ_INT(check_chunk(s, 2, c), 1);
    T_EQ_INT(check_chunk(s, 9, 0), 0);

    /* a read across chunk boundaries, with skip, and clamped at the end */
    struct run r;
    run_make(1, 10, 20, &r);
    zc_ref ref;
    T_EQ_INT(zc_lookup(s, &h1, 12, &ref), 0);
    T_EQ_INT(ref.seg_start, 10);
    T_EQ_INT(ref.seg_end, 20); /* [10,20) has the longest run after 12 */
    size_t o12 = r.lens[0] + r.lens[1];
    T_EQ_INT(ref.run_bytes, r.len - o12);
    uint8_t *buf = malloc(r.len + 100);
    ssize_t n = zc_read(&ref, 12, 7, buf, r.len);
    T_EQ_INT(n, r.len - o12 - 7);
    T_EQ_MEM(buf, r.data + o12 + 7, (size_t)n);
    T_EQ_INT(zc_read(&ref, 12, r.len, buf, 10), 0);
    T_EQ_INT(zc_read(&ref, 9, 0, buf, 10), -ERANGE);
    uint64_t off;
    uint32_t len;
    T_EQ_INT(zc_chunk_span(&ref, 19, &off, &len), 0);
    T_EQ_INT(len, r.lens[9]);
    T_EQ_INT(pread(ref.fd, buf, len, (off_t)off), len);
    T_EQ_MEM(buf, r.data + r.len - r.lens[9], len);
    zc_unpin(&ref);
    T_TRUE(ref.seg == NULL);
    T_EQ_INT(zc_lookup(s, &h1, 23, &ref), 0);
    T_EQ_INT(ref.seg_start, 15);
    zc_unpin(&ref);
    T_EQ_INT(zc_lookup(s, &h9, 0, &ref), -ENOENT);
    T_TRUE(ref.seg == NULL);
    zc_unpin(&ref); /* harmless */

    /* missing ranges */
    zc_range m[8];
    T_EQ_INT(zc_missing(s, &h1, 0, 50, m, 8), 2);
    T_EQ_INT(m[0].start, 25);
    T_EQ_INT(m[0].end, 40);
    T_EQ_INT(m[1].start, 41);
    T_EQ_INT(m[1].end, 50);
    T_EQ_INT(zc_missing(s, &h1, 5, 22, m, 8), 0);
    T_EQ_INT(zc_missing(s, &h2, 0, 10, m, 1), 2); /* count beyond max */
    T_EQ_INT(m[0].start, 0);
    T_EQ_INT(m[0].end, 3);
    T_EQ_INT(zc_missing(s, &h9, 4, 9, m, 8), 1);
    T_EQ_INT(m[0].start, 4);
    T_EQ_INT(m[0].end, 9);

    /* a run already stored is not written again; a covering run replaces */
    zc_stats st;
    zc_get_stats(s, &st);
    T_EQ_INT(st.segments, 5);
    T_EQ_INT(st.xorbs, 2);
    T_EQ_INT(put_run(s, 1, 2, 8, true, 0, NULL), 0);
    zc_get_stats(s, &st);
    T_EQ_INT(st.segments, 5);
    T_EQ_INT(put_run(s, 1, 0, 30, true, 0, &ref), 0);
    T_EQ_INT(ref.ready, 1);
    T_EQ_INT(ref.seg_start, 0);
    T_EQ_INT(ref.seg_end, 30);
    zc_unpin(&ref);
    zc_get_stats(s, &st);
    T_EQ_INT(st.segments, 3); /* [0,30) [40,41) of 1, [3,7) of 2 */
    char p[4096];
    T_TRUE(!seg_file(dir, 1, 10, 20, p, sizeof p));
    T_TRUE(seg_file(dir, 1, 0, 30, p, sizeof p));
    for (uint32_t c = 0; c < 30; c++)
        T_EQ_INT(check_chunk(s, 1, c), 1);
    /* put with pin of an existing covering run returns that one */
    T_EQ_INT(put_run(s, 1, 4, 6, true, 0, &ref), 0);
    T_EQ_INT(ref.ready, 1);
    T_EQ_INT(ref.seg_start, 0);
    T_EQ_INT(ref.chunk, 4);
    zc_unpin(&ref);

    /* bad arguments and bad data */
    uint32_t zero = 0, big = XET_CHUNK_MAX + 1;
    uint8_t d[8] = {0};
    T_EQ_INT(zc_put(s, &h9, 0, 1, &zero, NULL, d, 0, 0, NULL), -EINVAL);
    T_EQ_INT(zc_put(s, &h9, 0, 1, &big, NULL, d, big, 0, NULL), -EINVAL);
    uint32_t eight = 8;
    T_EQ_INT(zc_put(s, &h9, 0, 1, &eight, NULL, d, 7, 0, NULL), -EINVAL);
    T_EQ_INT(zc_put(s, &h9, 1, 1, &eight, NULL, d, 8, 0, NULL), -EINVAL);
    T_EQ_INT(zc_put(s, &h9, 0, 1, &eight, &h1, d, 8, ZC_PUT_VERIFY, NULL), -EBADMSG);
    T_EQ_INT(zc_put(s, &h9, 0, 1, &eight, &h1, d, 8, 0x80, NULL), -EINVAL);
    T_EQ_INT(check_chunk(s, 9, 0), 0);
    T_EQ_INT(count_files(path_in(dir, "tmp")), 0);

    /* a second open of the same store */
    zc_store *s2;
    T_EQ_INT(zc_open(dir, 1 << 20, &s2), -EBUSY);
    T_EQ_INT(zc_lookup(s, &h2, 3, &ref), 0);
    T_EQ_INT(zc_close(s), -EBUSY); /* a ref is outstanding */
    zc_unpin(&ref);
    T_EQ_INT(zc_close(s), 0);
    run_free(&r);
    free(buf);
    rm_rf(dir);
    free(dir);
}

static void test_reopen(void)
{
    char *dir = tmpdir();
    zc_store *s;
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    for (uint64_t x = 100; x < 110; x++)
        for (uint32_t a = 0; a < 60; a += 20)
            T_EQ_INT(put_run(s, x, a, a + 10 + (uint32_t)(x % 7), x & 1, 0, NULL), 0);
    zc_stats before;
    zc_get_stats(s, &before);
    T_EQ_INT(zc_close(s), 0);

    /* a stray temp file and a too-short segment left by some crash */
    int fd = open(path_in(dir, "tmp/999.tmp"), O_CREAT | O_WRONLY, 0644);
    T_TRUE(fd >= 0);
    T_EQ_INT(write(fd, "junk", 4), 4);
    close(fd);
    char p[4096];
    T_TRUE(seg_file(dir, 100, 0, 12, p, sizeof p));
    char shortname[4200];
    snprintf(shortname, sizeof shortname, "%s", p);
    char *dot = strrchr(shortname, '.');
    snprintf(dot, 16, ".77777");
    char *tail = strstr(shortname, ".0-12.");
    memcpy(tail, ".0-13.", 6);
    fd = open(shortname, O_CREAT | O_WRONLY, 0644);
    T_TRUE(fd >= 0);
    close(fd);

    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    T_EQ_INT(count_files(path_in(dir, "tmp")), 0);
    T_EQ_INT(access(shortname, F_OK), -1);
    zc_stats st;
    zc_get_stats(s, &st);
    T_EQ_INT(st.segments, before.segments);
    T_EQ_INT(st.used, before.used);
    T_EQ_INT(st.open_fds, 0);
    xet_hash h = xorb_of(101);
    zc_ref ref;
    T_EQ_INT(zc_lookup(s, &h, 21, &ref), -EAGAIN); /* found, not yet verified */
    T_EQ_INT(ref.ready, 0);
    T_EQ_INT(zc_verify_segment(&ref), 0);
    T_EQ_INT(ref.ready, 1);
    T_EQ_INT(ref.len, chunk_len(101, 21));
    zc_unpin(&ref);
    T_EQ_INT(zc_lookup(s, &h, 22, &ref), 0); /* verified once per open */
    zc_unpin(&ref);
    for (uint64_t x = 100; x < 110; x++)
        for (uint32_t c = 0; c < 60; c++) {
            int want = (c % 20) < 10 + x % 7;
            T_EQ_INT(check_chunk(s, x, c), want);
        }
    /* the new generation numbers do not collide with the old ones */
    T_EQ_INT(put_run(s, 100, 50, 70, true, 0, NULL), 0);
    for (uint32_t c = 40; c < 70; c++)
        T_EQ_INT(check_chunk(s, 100, c), 1);
    T_EQ_INT(zc_close(s), 0);
    rm_rf(dir);
    free(dir);
}

/* kill -9 at random instants of a put loop, then recover and check. */
#define K_XORBS 6
#define K_CHUNKS 96
#define K_CAP (3u << 20) /* well below the ~17 MB data set: puts keep evicting */
static void kill_child(const char *dir, unsigned seed)
{
    zc_store *s;
    if (zc_open(dir, K_CAP, &s))
        _exit(3);
    uint64_t st = seed;
    for (unsigned it = 0;; it++) {
        st = mix(st);
        uint64_t x = 1000 + st % K_XORBS;
        uint32_t a = (uint32_t)((st >> 8) % K_CHUNKS);
        uint32_t n = 1 + (uint32_t)((st >> 20) % 24);
        uint32_t b = a + n > K_CHUNKS ? K_CHUNKS : a + n;
        unsigned flags = (st >> 40) % 4 == 0 ? ZC_PUT_FSYNC : 0;
        if (put_run(s, x, a, b, (st >> 45) & 1, flags, NULL))
            _exit(4);
        char key[32], val[64];
        snprintf(key, sizeof key, "k%u", (unsigned)(st % 3));
        int vl = snprintf(val, sizeof val, "value %u of %s %s", it, key,
                          (st >> 50) & 1 ? "long long long long" : "");
        if (zc_meta_put(s, key, val, (size_t)vl, 0))
            _exit(5);
    }
}

static void test_kill9(void)
{
    char *dir = tmpdir();
    g_maxlen = 60000; /* larger runs: kills land inside writes */
    uint64_t rnd = mix((uint64_t)time(NULL));
    long total_found = 0, found_sum = 0;
    int cycles = 60, bad = 0, mid_write = 0;
    for (int cyc = 0; cyc < cycles; cyc++) {
        pid_t pid = fork();
        if (pid == 0)
            kill_child(dir, (unsigned)cyc * 7919u + 1);
        rnd = mix(rnd);
        struct timespec ts = {0, (long)(1000000 + rnd % 40000000)}; /* 1..41 ms */
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        T_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        if (count_files(path_in(dir, "tmp")) > 0)
            mid_write++; /* killed between creating a temp file and its rename */
        zc_store *s;
        T_EQ_INT(zc_open(dir, K_CAP, &s), 0);
        if (!s)
            break;
        T_EQ_INT(count_files(path_in(dir, "tmp")), 0);
        long found = 0;
        for (uint64_t x = 1000; x < 1000 + K_XORBS; x++)
            for (uint32_t c = 0; c < K_CHUNKS; c++) {
                int r = check_chunk(s, x, c);
                if (r < 0)
                    bad++;
                else
                    found += r;
            }
        for (int k = 0; k < 3; k++) {
            char key[8];
            snprintf(key, sizeof key, "k%d", k);
            void *v;
            size_t vl;
            int rc = zc_meta_get(s, key, &v, &vl);
            T_TRUE(rc == 0 || rc == -ENOENT);
            if (rc == 0) {
                char *txt = v;
                char want[16];
                snprintf(want, sizeof want, " of %s ", key);
                T_TRUE(!strncmp(txt, "value ", 6) && strstr(txt, want));
                T_EQ_INT(strlen(txt), vl);
                free(v);
            }
        }
        zc_stats st;
        zc_get_stats(s, &st);
        T_EQ_INT(st.corrupt, 0); /* kill -9 alone never leaves a bad file */
        T_TRUE(st.used <= K_CAP);
        T_EQ_INT(zc_close(s), 0);
        total_found = found;
        found_sum += found;
    }
    fprintf(stderr, "  kill9: %d cycles (%d killed mid-write), %ld chunks checked, "
            "%ld present at the end, %d bad\n", cycles, mid_write, found_sum, total_found,
            bad);
    T_EQ_INT(bad, 0);
    T_TRUE(total_found > 0);
    T_TRUE(mid_write > 0);
    g_maxlen = 20000;
    rm_rf(dir);
    free(dir);
}

static void test_cap(void)
{
    char *dir = tmpdir();
    const uint64_t cap = 4u << 20;
    zc_store *s;
    T_EQ_INT(zc_open(dir, cap, &s), 0);
    /* one segment pinned by a reader, one xorb labelled */
    zc_ref pin;
    T_EQ_INT(put_run(s, 7, 0, 16, true, 0, &pin), 0);
    T_EQ_INT(zc_label_pin(s, &(xet_hash){0}, true), 0); /* an unrelated label is harmless */
    xet_hash h8 = xorb_of(8);
    T_EQ_INT(zc_label_pin(s, &h8, true), 0);
    T_EQ_INT(put_run(s, 8, 0, 16, true, 0, NULL), 0);
    zc_stats st;
    zc_get_stats(s, &st);
    uint64_t pinned = st.pinned;
    T_TRUE(pinned > 300000);
    uint64_t written = 0, max_used = 0, max_du = 0;
    for (uint64_t x = 200; written < 3 * cap; x++) {
        struct run r;
        run_make(x, 0, 20, &r);
        xet_hash h = xorb_of(x);
        T_EQ_INT(zc_put(s, &h, 0, 20, r.lens, r.hashes, r.data, r.len, 0, NULL), 0);
        written += r.len;
        run_free(&r);
        zc_get_stats(s, &st);
        if (st.used > max_used)
            max_used = st.used;
        uint64_t du = du_bytes(path_in(dir, "xorbs"));
        if (du > max_du)
            max_du = du;
        T_TRUE(st.used <= cap);
        T_EQ_INT(st.pinned, pinned);
    }
    fprintf(stderr, "  cap: %llu bytes written, cap %llu, max used %llu, max du %llu, "
            "evictions %llu\n", (unsigned long long)written, (unsigned long long)cap,
            (unsigned long long)max_used, (unsigned long long)max_du,
            (unsigned long long)st.evictions);
    T_TRUE(max_du <= cap + 64 * 1024); /* directory blocks */
    T_TRUE(st.evictions > 10);
    /* the pinned and labelled data survived, byte-exact */
    struct run r7;
    run_make(7, 0, 16, &r7);
    uint8_t *buf = malloc(r7.len);
    T_EQ_INT(zc_read(&pin, 0, 0, buf, r7.len), r7.len);
    T_EQ_MEM(buf, r7.data, r7.len);
    free(buf);
    run_free(&r7);
    for (uint32_t c = 0; c < 16; c++) {
        T_EQ_INT(check_chunk(s, 7, c), 1);
        T_EQ_INT(check_chunk(s, 8, c), 1);
    }
    /* early data is gone, recent data is there */
    T_EQ_INT(check_chunk(s, 200, 0), 0);
    /* pins and labels released: back under cap, the old ones go first */
    zc_unpin(&pin);
    T_EQ_INT(zc_label_pin(s, &h8, false), 0);
    zc_get_stats(s, &st);
    T_TRUE(st.used <= cap);
    T_EQ_INT(st.pinned, 0);
    T_EQ_INT(check_chunk(s, 7, 0), 1); /* unpinned last: most recent */
    /* a smaller cap evicts at once; reopening with it also holds */
    zc_set_cap(s, cap / 2);
    zc_get_stats(s, &st);
    T_TRUE(st.used <= cap / 2);
    T_EQ_INT(zc_close(s), 0);
    T_EQ_INT(zc_open(dir, cap / 4, &s), 0);
    zc_get_stats(s, &st);
    T_TRUE(st.used <= cap / 4);
    T_TRUE(du_bytes(path_in(dir, "xorbs")) <= cap / 4 + 64 * 1024);
    T_EQ_INT(zc_close(s), 0);
    rm_rf(dir);
    free(dir);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    T_TRUE(fd >= 0);
    uint8_t b;
    T_EQ_INT(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    T_EQ_INT(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_corrupt(void)
{
    char *dir = tmpdir();
    zc_store *s;
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    for (uint64_t x = 300; x < 306; x++)
        T_EQ_INT(put_run(s, x, 0, 8, true, 0, NULL), 0);
    T_EQ_INT(zc_close(s), 0);
    char p[6][4096];
    for (int i = 0; i < 6; i++)
        T_TRUE(seg_file(dir, 300 + i, 0, 8, p[i], sizeof p[i]));
    struct stat sb;
    stat(p[0], &sb);
    flip_byte(p[0], sb.st_size - 5);            /* a byte of data */
    T_EQ_INT(truncate(p[1], sb.st_size / 2), 0); /* truncated (still > header) */
    flip_byte(p[2], 20);                         /* the header's xorb hash */
    flip_byte(p[3], 72 + 36 * 3 + 10);           /* a stored chunk hash */
    /* 4: the header of another xorb's segment under this name */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.x", p[4]);
    T_EQ_INT(rename(p[5], tmp), 0);
    T_EQ_INT(rename(tmp, p[4]), 0); /* 5 is gone, 4 holds 5's bytes */

    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    zc_stats st;
    zc_get_stats(s, &st);
    T_EQ_INT(st.segments, 5);
    for (int i = 0; i < 5; i++) {
        xet_hash h = xorb_of(300 + (uint64_t)i);
        zc_ref ref;
        T_EQ_INT(zc_lookup(s, &h, 2, &ref), -EAGAIN);
        if (i == 3) { /* the read path verifies too */
            uint8_t b[16];
            T_EQ_INT(zc_read(&ref, 2, 0, b, sizeof b), -EBADMSG);
        } else {
            T_EQ_INT(zc_verify_segment(&ref), -EBADMSG);
        }
        T_EQ_INT(zc_verify_segment(&ref), -EBADMSG); /* stays bad */
        T_EQ_INT(access(p[i], F_OK), -1);             /* deleted at once */
        zc_unpin(&ref);
        T_EQ_INT(zc_lookup(s, &h, 2, &ref), -ENOENT);
        zc_range m[2];
        T_EQ_INT(zc_missing(s, &h, 0, 8, m, 2), 1);
        T_EQ_INT(m[0].start, 0);
        T_EQ_INT(m[0].end, 8);
        /* refetch */
        T_EQ_INT(put_run(s, 300 + (uint64_t)i, 0, 8, false, 0, NULL), 0);
        for (uint32_t c = 0; c < 8; c++)
            T_EQ_INT(check_chunk(s, 300 + (uint64_t)i, c), 1);
    }
    zc_get_stats(s, &st);
    T_EQ_INT(st.corrupt, 5);
    T_EQ_INT(zc_close(s), 0);

    /* damage found by a reader that already has it open: a header is
     * checked when the segment is first used after open */
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    T_TRUE(seg_file(dir, 300, 0, 8, p[0], sizeof p[0]));
    flip_byte(p[0], 0); /* magic */
    T_EQ_INT(check_chunk(s, 300, 1), 0);
    T_EQ_INT(access(p[0], F_OK), -1);
    T_EQ_INT(zc_close(s), 0);
    rm_rf(dir);
    free(dir);
}

static void test_enospc(void)
{
    char *dir = tmpdir();
    char mnt[4200];
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    mkdir(mnt, 0755);
    if (mount("zc-test", mnt, "tmpfs", 0, "size=4m") < 0) {
        T_SKIP("cannot mount tmpfs (%s): ENOSPC not tested", strerror(errno));
        rm_rf(dir);
        free(dir);
        return;
    }
    zc_store *s;
    T_EQ_INT(zc_open(mnt, 1ull << 30, &s), 0); /* the cap is no help here */
    uint64_t written = 0;
    uint64_t x;
    for (x = 400; written < (20u << 20); x++) {
        int rc = put_run(s, x, 0, 40, x & 1, 0, NULL); /* ~800 KB each */
        T_EQ_INT(rc, 0);
        if (rc)
            break;
        written += 40 * 10000;
        /* metadata also makes room for itself */
        char val[100000];
        memset(val, 'v', sizeof val);
        T_EQ_INT(zc_meta_put(s, x & 1 ? "odd" : "even", val, sizeof val, 0), 0);
    }
    zc_stats st;
    zc_get_stats(s, &st);
    fprintf(stderr, "  enospc: %llu puts on a 4 MiB tmpfs, %llu ENOSPC retries, "
            "%llu evictions\n", (unsigned long long)st.puts,
            (unsigned long long)st.enospc_retries, (unsigned long long)st.evictions);
    T_TRUE(st.enospc_retries > 0);
    for (uint32_t c = 0; c < 40; c++)
        T_EQ_INT(check_chunk(s, x - 1, c), 1);
    /* with everything pinned nothing can be evicted: -ENOSPC, no EIO */
    zc_ref refs[64];
    int nref = 0;
    for (uint64_t y = 400; y < x && nref < 64; y++) {
        xet_hash h = xorb_of(y);
        if (zc_lookup(s, &h, 0, &refs[nref]) == 0)
            nref++;
    }
    int rc = 0;
    for (uint64_t y = 900; y < 920 && rc == 0; y++)
        rc = put_run(s, y, 0, 40, true, 0, NULL);
    T_EQ_INT(rc, -ENOSPC);
    T_EQ_INT(count_files(path_in(mnt, "tmp")), 0);
    for (int i = 0; i < nref; i++)
        zc_unpin(&refs[i]);
    T_EQ_INT(put_run(s, 950, 0, 40, true, 0, NULL), 0);
    T_EQ_INT(check_chunk(s, 950, 39), 1);
    T_EQ_INT(zc_close(s), 0);
    umount2(mnt, MNT_DETACH);
    rm_rf(dir);
    free(dir);
}

static int count_fds(void)
{
    return (int)count_files("/proc/self/fd");
}

static void test_fds(void)
{
    char *dir = tmpdir();
    zc_store *s;
    int fds0 = count_fds() + 2; /* the store keeps its directory and LOCK open */
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    zc_set_fd_limit(s, 16);
    g_maxlen = 300;
    for (uint64_t x = 0; x < 3000; x++)
        T_EQ_INT(put_run(s, 5000 + x, 0, 1, true, 0, NULL), 0);
    T_TRUE(count_fds() <= fds0 + 16);
    T_EQ_INT(zc_close(s), 0);
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    zc_set_fd_limit(s, 16);
    int bad = 0;
    for (uint64_t x = 0; x < 3000; x++)
        bad += check_chunk(s, 5000 + x, 0) != 1;
    T_EQ_INT(bad, 0);
    zc_stats st;
    zc_get_stats(s, &st);
    T_TRUE(st.open_fds <= 16);
    T_TRUE(count_fds() <= fds0 + 16);
    /* pinned segments keep their files open beyond the limit */
    zc_ref refs[40];
    for (int i = 0; i < 40; i++) {
        xet_hash h = xorb_of(5000 + (uint64_t)i);
        T_EQ_INT(zc_lookup(s, &h, 0, &refs[i]), 0);
    }
    zc_get_stats(s, &st);
    T_TRUE(st.open_fds >= 40);
    for (int i = 0; i < 40; i++)
        zc_unpin(&refs[i]);
    zc_get_stats(s, &st);
    T_TRUE(st.open_fds <= 16);
    T_EQ_INT(zc_close(s), 0);
    T_EQ_INT(count_fds(), fds0 - 2);
    g_maxlen = 20000;
    rm_rf(dir);
    free(dir);
}

/* Readers on threads while a writer fills a small store (evictions). */
struct reader_arg {
    zc_store *s;
    atomic_int *stop;
    long hits, bad, iters; /* iters: stop after that many when > 0 */
    unsigned seed;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    uint64_t st = a->seed;
    uint8_t *want = malloc(XET_CHUNK_MAX), *got = malloc(XET_CHUNK_MAX);
    for (long it = 0; a->iters ? it < a->iters : !atomic_load(a->stop); it++) {
        st = mix(st);
        uint64_t x = 600 + st % 64;
        uint32_t c = (uint32_t)((st >> 16) % 32);
        xet_hash h = xorb_of(x);
        zc_ref ref;
        int rc = zc_lookup(a->s, &h, c, &ref);
        if (rc == -ENOENT)
            continue;
        uint32_t len = chunk_len(x, c);
        ssize_t n = zc_read(&ref, c, 0, got, len);
        chunk_fill(x, c, want, len);
        if (n != (ssize_t)len || memcmp(got, want, len))
            a->bad++;
        else
            a->hits++;
        zc_unpin(&ref);
    }
    free(want);
    free(got);
    return NULL;
}

static void test_threads(void)
{
    char *dir = tmpdir();
    zc_store *s;
    T_EQ_INT(zc_open(dir, 2u << 20, &s), 0);
    zc_set_fd_limit(s, 8);
    atomic_int stop = 0;
    struct reader_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct reader_arg){s, &stop, 0, 0, 0, (unsigned)i + 1};
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    uint64_t st = 42;
    for (int i = 0; i < 600; i++) {
        st = mix(st);
        uint64_t x = 600 + st % 64;
        uint32_t a = (uint32_t)((st >> 16) % 32), b = a + 1 + (uint32_t)((st >> 24) % 8);
        if (b > 32)
            b = 32;
        T_EQ_INT(put_run(s, x, a, b, true, 0, NULL), 0);
    }
    atomic_store(&stop, 1);
    long hits = 0, bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        hits += args[i].hits;
        bad += args[i].bad;
    }
    zc_stats sts;
    zc_get_stats(s, &sts);
    fprintf(stderr, "  threads: %ld reads ok, %ld bad, %llu evictions\n", hits, bad,
            (unsigned long long)sts.evictions);
    T_EQ_INT(bad, 0);
    T_TRUE(hits > 0);
    T_TRUE(sts.used <= 2u << 20);
    T_EQ_INT(sts.pinned, 0);
    T_EQ_INT(zc_close(s), 0);

    /* after a reopen every segment is unverified: readers race to verify */
    T_EQ_INT(zc_open(dir, 2u << 20, &s), 0);
    hits = bad = 0;
    for (int i = 0; i < 4; i++) {
        args[i] = (struct reader_arg){s, &stop, 0, 0, 3000, 7};
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        hits += args[i].hits;
        bad += args[i].bad;
    }
    zc_get_stats(s, &sts);
    T_EQ_INT(bad, 0);
    T_TRUE(hits > 0);
    T_EQ_INT(sts.corrupt, 0);
    T_EQ_INT(zc_close(s), 0);
    rm_rf(dir);
    free(dir);
}

struct list_acc {
    int n;
    char seen[8][64];
};
static int list_cb(void *ud, const char *key)
{
    struct list_acc *a = ud;
    if (a->n < 8)
        snprintf(a->seen[a->n], 64, "%s", key);
    a->n++;
    return 0;
}

static void test_meta(void)
{
    char *dir = tmpdir();
    zc_store *s;
    T_EQ_INT(zc_open(dir, 1 << 20, &s), 0);
    void *v;
    size_t vl;
    T_EQ_INT(zc_meta_get(s, "repo/a/refs/main", &v, &vl), -ENOENT);
    T_TRUE(v == NULL);
    const char *j1 = "{\"sha\":\"0123\"}";
    T_EQ_INT(zc_meta_put(s, "repo/a/refs/main", j1, strlen(j1), 0), 0);
    T_EQ_INT(zc_meta_get(s, "repo/a/refs/main", &v, &vl), 0);
    T_EQ_INT(vl, strlen(j1));
    T_EQ_STR((char *)v, j1);
    free(v);
    /* replace with something longer, then shorter */
    size_t big = 3u << 20;
    char *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (char)('a' + i % 26);
    T_EQ_INT(zc_meta_put(s, "repo/a/refs/main", b, big, ZC_PUT_FSYNC), 0);
    T_EQ_INT(zc_meta_get(s, "repo/a/refs/main", &v, &vl), 0);
    T_EQ_INT(vl, big);
    T_EQ_MEM(v, b, big);
    free(v);
    T_EQ_INT(zc_meta_put(s, "repo/a/refs/main", "x", 1, 0), 0);
    T_EQ_INT(zc_meta_get(s, "repo/a/refs/main", &v, &vl), 0);
    T_EQ_INT(vl, 1);
    T_EQ_STR((char *)v, "x");
    free(v);
    T_EQ_INT(zc_meta_put(s, "repo/b/tree", "", 0, 0), 0); /* empty value */
    T_EQ_INT(zc_meta_get(s, "repo/b/tree", &v, &vl), 0);
    T_EQ_INT(vl, 0);
    free(v);
    T_EQ_INT(zc_meta_put(s, "other", "1", 1, 0), 0);
    /* the metadata blobs are not evicted by chunk data */
    for (uint64_t x = 0; x < 10; x++)
        T_EQ_INT(put_run(s, 700 + x, 0, 20, true, 0, NULL), 0);
    struct list_acc acc = {0};
    T_EQ_INT(zc_meta_list(s, "repo/", list_cb, &acc), 0);
    T_EQ_INT(acc.n, 2);
    T_TRUE((!strcmp(acc.seen[0], "repo/a/refs/main") && !strcmp(acc.seen[1], "repo/b/tree")) ||
           (!strcmp(acc.seen[1], "repo/a/refs/main") && !strcmp(acc.seen[0], "repo/b/tree")));
    acc.n = 0;
    T_EQ_INT(zc_meta_list(s, NULL, list_cb, &acc), 0);
    T_EQ_INT(acc.n, 3);
    /* survives reopen */
    T_EQ_INT(zc_close(s), 0);
    T_EQ_INT(zc_open(dir, 1 << 20, &s), 0);
    T_EQ_INT(zc_meta_get(s, "other", &v, &vl), 0);
    T_EQ_STR((char *)v, "1");
    free(v);
    T_EQ_INT(zc_meta_delete(s, "other"), 0);
    T_EQ_INT(zc_meta_delete(s, "other"), -ENOENT);
    T_EQ_INT(zc_meta_get(s, "other", &v, &vl), -ENOENT);
    /* a corrupt blob reads as absent and is removed */
    DIR *d = opendir(path_in(dir, "meta"));
    struct dirent *e;
    char victim[4200] = "";
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            snprintf(victim, sizeof victim, "%s/meta/%s", dir, e->d_name);
    closedir(d);
    T_TRUE(victim[0] != 0);
    flip_byte(victim, 30);
    int absent = 0;
    const char *keys[2] = {"repo/a/refs/main", "repo/b/tree"};
    for (int i = 0; i < 2; i++) {
        int rc = zc_meta_get(s, keys[i], &v, &vl);
        T_TRUE(rc == 0 || rc == -ENOENT);
        if (rc == 0)
            free(v);
        else
            absent++;
    }
    T_EQ_INT(absent, 1);
    T_EQ_INT(count_files(path_in(dir, "meta")), 1);
    /* bad keys */
    T_EQ_INT(zc_meta_put(s, "", "x", 1, 0), -EINVAL);
    char *longkey = malloc(5000);
    memset(longkey, 'k', 4999);
    longkey[4999] = 0;
    T_EQ_INT(zc_meta_put(s, longkey, "x", 1, 0), -EINVAL);
    free(longkey);
    T_EQ_INT(count_files(path_in(dir, "tmp")), 0);
    T_EQ_INT(zc_close(s), 0);
    free(b);
    rm_rf(dir);
    free(dir);
}

/* zc_runs merges touching and overlapping segments; zc_chunk_hashes gives
 * a ready segment's header entries, and only for a ready ref. */
static void test_runs(void)
{
    char *dir = tmpdir();
    zc_store *s;
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    xet_hash h = xorb_of(77);
    zc_range r[4];
    T_EQ_INT(zc_runs(s, &h, r, 4), 0);
    T_EQ_INT(put_run(s, 77, 0, 4, false, 0, NULL), 0);
    T_EQ_INT(put_run(s, 77, 4, 6, true, 0, NULL), 0);
    T_EQ_INT(put_run(s, 77, 10, 12, false, 0, NULL), 0);
    T_EQ_INT(put_run(s, 77, 11, 15, false, 0, NULL), 0);
    T_EQ_INT(zc_runs(s, &h, r, 4), 2);
    T_EQ_INT(r[0].start, 0);
    T_EQ_INT(r[0].end, 6);
    T_EQ_INT(r[1].start, 10);
    T_EQ_INT(r[1].end, 15);
    memset(r, 0, sizeof r);
    T_EQ_INT(zc_runs(s, &h, r, 1), 2); /* counts all, writes max */
    T_EQ_INT(r[0].end, 6);
    T_EQ_INT(r[1].end, 0);

    struct run want;
    run_make(77, 0, 4, &want);
    zc_ref ref;
    uint32_t lens[4];
    xet_hash hs[4];
    T_EQ_INT(zc_lookup(s, &h, 1, &ref), 0);
    T_EQ_INT(zc_chunk_hashes(&ref, 1, 4, lens, hs), 0);
    for (int i = 0; i < 3; i++) {
        T_EQ_INT(lens[i], want.lens[i + 1]);
        T_TRUE(xet_hash_eq(&hs[i], &want.hashes[i + 1]));
    }
    T_EQ_INT(zc_chunk_hashes(&ref, 2, 5, lens, hs), -ERANGE);
    zc_unpin(&ref);
    T_EQ_INT(zc_close(s), 0);

    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0); /* unverified after reopen */
    T_EQ_INT(zc_runs(s, &h, r, 4), 2);
    T_EQ_INT(zc_lookup(s, &h, 0, &ref), -EAGAIN);
    T_EQ_INT(zc_chunk_hashes(&ref, 0, 4, NULL, hs), -EINVAL);
    T_EQ_INT(zc_verify_segment(&ref), 0);
    T_EQ_INT(zc_chunk_hashes(&ref, 0, 4, NULL, hs), 0);
    T_TRUE(xet_hash_eq(&hs[3], &want.hashes[3]));
    zc_unpin(&ref);
    run_free(&want);
    T_EQ_INT(zc_close(s), 0);
    rm_rf(dir);
    free(dir);
}

/* Pages of fd's file in the page cache. */
static size_t resident(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        return 0;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return (size_t)-1;
    size_t pages = ((size_t)st.st_size + 4095) / 4096, n = 0;
    unsigned char *v = malloc(pages);
    if (v && mincore(m, (size_t)st.st_size, v) == 0)
        for (size_t i = 0; i < pages; i++)
            n += v[i] & 1;
    free(v);
    munmap(m, (size_t)st.st_size);
    return n;
}

/* ZC_PUT_NOCACHE (O_DIRECT through a bounce buffer) and zc_read_nocache
 * (RWF_DONTCACHE): the same bytes and files as buffered I/O, and no page
 * of them left in the page cache where the kernel and the fs allow it. */
static void test_nocache(void)
{
    char *dir = tmpdir(), *dir2 = tmpdir();
    zc_store *s, *s2;
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    T_EQ_INT(zc_open(dir2, 1ull << 30, &s2), 0);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/probe", dir);
    int pfd = open(probe, O_RDWR | O_CREAT | O_DIRECT, 0600);
    bool direct = pfd >= 0;
    if (pfd >= 0)
        close(pfd);
    unlink(probe);
    /* 300 chunks of up to 40000 bytes: a run over the 4 MiB bounce buffer */
    g_maxlen = 40000;
    zc_ref ref, ref2;
    T_EQ_INT(put_run(s, 7, 0, 300, true, ZC_PUT_NOCACHE, &ref), 0);
    T_EQ_INT(put_run(s2, 7, 0, 300, true, 0, &ref2), 0);
    struct stat a, b;
    T_EQ_INT(fstat(ref.fd, &a), 0);
    T_EQ_INT(fstat(ref2.fd, &b), 0);
    T_EQ_INT(a.st_size, b.st_size); /* the padding of the last block is cut off */
    T_TRUE(a.st_size > (4 << 20));
    if (direct)
        T_EQ_INT(resident(ref.fd), 0);
    else
        printf("  (no O_DIRECT on this fs: written buffered)\n");
    T_TRUE(resident(ref2.fd) > 0);
    /* peer-style reads around the page cache */
    struct run r;
    run_make(7, 0, 300, &r);
    uint8_t *buf = malloc(r.len);
    T_EQ_INT(zc_read_nocache(&ref, 0, 0, buf, r.len), r.len);
    T_EQ_MEM(buf, r.data, r.len);
    size_t after = resident(ref.fd);
    printf("  pages cached after zc_read_nocache: %zu of %zu\n", after, (size_t)(a.st_size + 4095) / 4096);
    uint8_t one[16];
    struct iovec v = {one, sizeof one};
    if (direct && preadv2(ref.fd, &v, 1, 0, 0x80 /* RWF_DONTCACHE */) >= 0)
        T_TRUE(after * 100 < (size_t)a.st_size / 4096); /* the header page, maybe */
    else
        printf("  (no RWF_DONTCACHE here: read buffered)\n");
    T_EQ_INT(zc_read_nocache(&ref2, 5, 3, buf, 1000), 1000);
    T_EQ_MEM(buf, r.data + r.lens[0] + r.lens[1] + r.lens[2] + r.lens[3] + r.lens[4] + 3, 1000);
    zc_unpin(&ref);
    zc_unpin(&ref2);
    /* as found at the next open: verified from disk, every chunk right */
    T_EQ_INT(zc_close(s), 0);
    T_EQ_INT(zc_open(dir, 1ull << 30, &s), 0);
    for (uint32_t c = 0; c < 300; c++)
        T_EQ_INT(check_chunk(s, 7, c), 1);
    zc_stats st;
    zc_get_stats(s, &st);
    T_EQ_INT(st.corrupt, 0);
    /* a small put takes the buffered path, same bytes */
    T_EQ_INT(put_run(s, 8, 0, 1, true, ZC_PUT_NOCACHE, NULL), 0);
    T_EQ_INT(check_chunk(s, 8, 0), 1);
    g_maxlen = 20000;
    free(buf);
    run_free(&r);
    T_EQ_INT(zc_close(s), 0);
    T_EQ_INT(zc_close(s2), 0);
    rm_rf(dir);
    rm_rf(dir2);
    free(dir);
    free(dir2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T_RUN(test_basic);
    T_RUN(test_reopen);
    T_RUN(test_corrupt);
    T_RUN(test_meta);
    T_RUN(test_runs);
    T_RUN(test_nocache);
    T_RUN(test_cap);
    T_RUN(test_fds);
    T_RUN(test_threads);
    T_RUN(test_enospc);
    T_RUN(test_kill9);
    return t_done();
}
