/* fuzz_cache.c — store files read back from disk (cache/cache.c): a
 * segment file found at zc_open and verified on first use (zc_lookup →
 * zc_read), or a metadata blob (zc_meta_get).  A store survives crashes,
 * power loss and other processes: its files are untrusted input.
 *
 * Input: byte 0 flags, byte 1 chunk count (1 + b % 8), byte 2 first chunk
 * (b % 4), then the file.  Flags help the fuzzer past the checksums so it
 * reaches the code behind them (the format is documented in cache.h):
 *   1  recompute the header checksum (segment) / blob checksum (meta)
 *   2  recompute the chunk hashes of the table from the data   (segment)
 *   4  metadata blob instead of a segment
 *   8  write the expected fixed fields (magic, version, lengths, xorb,
 *      chunk range / key) over the file's own
 * A segment that verifies must give back exactly its data bytes; one that
 * does not must be gone from the store afterwards. */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "xet.h"

/* the keys the store's checksums and blob names use (cache.c) */
static const uint8_t SEG_CK_KEY[32] = "zestfs store segment header v1!";
static const uint8_t META_CK_KEY[32] = "zestfs store metadata blob v1!!";
static const uint8_t META_NAME_KEY[32] = "zestfs store metadata name v1!!";
#define SEG_FIXED 72u
#define SEG_ENTRY 36u
#define META_FIXED 24u
#define META_KEY "repo/model/org/name"

static char dir[256];

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
    return remove(p);
}

static void cleanup(void)
{
    if (dir[0])
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        abort();
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

static void setup(void)
{
    if (dir[0])
        return;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/zestfs-fuzz-cache.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
}

static void fuzz_segment(uint8_t flags, uint32_t n, uint32_t start, uint8_t *f, size_t len)
{
    xet_hash xorb;
    memset(xorb.b, 0x5a, sizeof xorb.b);
    xorb.b[0] = 0x1e;
    uint32_t end = start + n, hl = SEG_FIXED + SEG_ENTRY * n + XET_HASH_LEN;
    if ((flags & 8) && len >= SEG_FIXED) {
        memcpy(f, "ZESTSEG1", 8);
        put32(f + 8, 1);
        put32(f + 12, hl);
        memcpy(f + 16, xorb.b, 32);
        put32(f + 48, start);
        put32(f + 52, end);
        uint64_t dl = len > hl ? len - hl : 0;
        put64(f + 56, dl);
        put32(f + 64, 0);
        put32(f + 68, 0);
    }
    if ((flags & 2) && len >= hl) {
        uint64_t off = hl;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t l = get32(f + SEG_FIXED + SEG_ENTRY * i);
            if (l == 0 || l > XET_CHUNK_MAX || off + l > len)
                break;
            xet_hash h;
            xet_chunk_hash(f + off, l, &h);
            memcpy(f + SEG_FIXED + SEG_ENTRY * i + 4, h.b, 32);
            off += l;
        }
    }
    if ((flags & 1) && len >= hl) {
        xet_hash ck;
        xet_keyed_hash(SEG_CK_KEY, f, hl - XET_HASH_LEN, &ck);
        memcpy(f + hl - XET_HASH_LEN, ck.b, XET_HASH_LEN);
    }
    char hex[XET_HASH_STR_LEN + 1], path[512];
    xet_hash_to_string(&xorb, hex);
    snprintf(path, sizeof path, "%s/xorbs", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/xorbs/%.2s", dir, hex);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/xorbs/%.2s/%s.%u-%u.1", dir, hex, hex, start, end);
    write_file(path, f, len);

    zc_store *s = NULL;
    FZ_CHECK(zc_open(dir, 1ull << 30, &s) == 0);
    zc_ref ref;
    int rc = zc_lookup(s, &xorb, start, &ref);
    if (rc == 0 || rc == -EAGAIN) {
        uint8_t *out = malloc(len + 1);
        if (!out)
            abort();
        ssize_t got = zc_read(&ref, start, 0, out, len + 1);
        if (got >= 0) {
            FZ_CHECK(ref.ready && ref.seg_start == start && ref.seg_end == end);
            FZ_CHECK((uint64_t)got + hl == len);
            FZ_CHECK(memcmp(out, f + hl, (size_t)got) == 0);
            uint64_t sum = 0;
            for (uint32_t c = start; c < end; c++) {
                uint64_t off;
                uint32_t l;
                FZ_CHECK(zc_chunk_span(&ref, c, &off, &l) == 0);
                FZ_CHECK(off == hl + sum && l >= 1 && l <= XET_CHUNK_MAX);
                sum += l;
            }
            FZ_CHECK(sum == (uint64_t)got);
            FZ_CHECK(zc_read(&ref, end - 1, (uint64_t)got + 1, out, 1) == 0);
        } else {
            FZ_CHECK(got == -EBADMSG || got == -EIO);
        }
        free(out);
        zc_unpin(&ref);
        if (got < 0) {
            zc_ref again;
            FZ_CHECK(zc_lookup(s, &xorb, start, &again) == -ENOENT);
        }
    } else {
        FZ_CHECK(rc == -ENOENT);
    }
    FZ_CHECK(zc_close(s) == 0);
    unlink(path);
}

static void fuzz_meta(uint8_t flags, uint8_t *f, size_t len)
{
    size_t klen = strlen(META_KEY);
    if ((flags & 8) && len >= META_FIXED + klen + XET_HASH_LEN) {
        memcpy(f, "ZESTMET1", 8);
        put32(f + 8, 1);
        put32(f + 12, (uint32_t)klen);
        put64(f + 16, len - META_FIXED - klen - XET_HASH_LEN);
        memcpy(f + META_FIXED, META_KEY, klen);
    }
    if ((flags & 1) && len >= XET_HASH_LEN) {
        xet_hash ck;
        xet_keyed_hash(META_CK_KEY, f, len - XET_HASH_LEN, &ck);
        memcpy(f + len - XET_HASH_LEN, ck.b, XET_HASH_LEN);
    }
    xet_hash nh;
    char hex[2 * XET_HASH_LEN + 1], path[512];
    xet_keyed_hash(META_NAME_KEY, META_KEY, klen, &nh);
    xet_hex(nh.b, XET_HASH_LEN, hex);
    snprintf(path, sizeof path, "%s/meta", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/meta/%s", dir, hex);
    write_file(path, f, len);

    zc_store *s = NULL;
    FZ_CHECK(zc_open(dir, 1ull << 30, &s) == 0);
    void *d = NULL;
    size_t dl = 0;
    int rc = zc_meta_get(s, META_KEY, &d, &dl);
    if (rc == 0) {
        FZ_CHECK(dl + META_FIXED + klen + XET_HASH_LEN == len);
        FZ_CHECK(memcmp(d, f + META_FIXED + klen, dl) == 0 && ((char *)d)[dl] == 0);
        free(d);
    } else {
        FZ_CHECK(rc == -ENOENT || rc == -EBADMSG || rc == -EIO);
        FZ_CHECK(d == NULL);
    }
    FZ_CHECK(zc_close(s) == 0);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > (4u << 20))
        return 0;
    setup();
    uint8_t *f = fz_dup(data + 3, size - 3);
    if (data[0] & 4)
        fuzz_meta(data[0], f, size - 3);
    else
        fuzz_segment(data[0], 1 + data[1] % 8u, data[2] % 4u, f, size - 3);
    free(f);
    return 0;
}
