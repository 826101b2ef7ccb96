/* test_chunker.c — all 14 chunking vectors (tests/vectors/chunks-*.txt),
 * byte-exact: inputs regenerated and checked by SHA-256, boundaries, chunk
 * hashes, xorb/file/verification hashes; the same result whatever piece
 * sizes the input is fed in. */
#include "gen.h"
#include "t.h"
#include "xet.h"

static const char *NAMES[] = {"empty", "one_byte_0x61", "rand_8191", "rand_8192", "rand_8193",
                              "zeros_200k", "zeros_131073", "const59_1m", "rand_1m_seed0",
                              "rand_3m", "text_300k", "trigger_pad1", "trigger_pad24",
                              "trigger_pad126"};

/* Output of the chunks CLI format, built in memory. */
struct out {
    char *buf;
    size_t len, cap;
};
static void emit(struct out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->buf = realloc(o->buf, o->cap);
    }
    memcpy(o->buf + o->len, s, n + 1);
    o->len += n;
}
static void on_chunk(void *ud, uint64_t index, uint64_t offset, uint32_t len, const xet_hash *h)
{
    char s[XET_HASH_STR_LEN + 1], line[160];
    xet_hash_to_string(h, s);
    snprintf(line, sizeof line, "chunk %llu %llu %u %s\n", (unsigned long long)index,
             (unsigned long long)offset, len, s);
    emit(ud, line);
}

static char *run(const uint8_t *data, size_t len, size_t piece)
{
    struct out o = {0};
    emit(&o, "");
    xet_file_hasher *fh = xet_file_hasher_new(on_chunk, &o);
    uint64_t rng = piece;
    for (size_t off = 0; off < len;) {
        size_t n = piece;
        if (piece == 0) { /* random piece sizes 1..100000 */
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            n = 1 + (size_t)((rng >> 33) % 100000);
        }
        if (n > len - off)
            n = len - off;
        xet_file_hasher_update(fh, data + off, n);
        off += n;
    }
    xet_file_digest d;
    xet_file_hasher_final(fh, &d);
    char s[XET_HASH_STR_LEN + 1], line[160];
    xet_hash_to_string(&d.xorb_hash, s);
    snprintf(line, sizeof line, "xorb_hash %s\n", s);
    emit(&o, line);
    xet_hash_to_string(&d.file_hash, s);
    snprintf(line, sizeof line, "file_hash %s\n", s);
    emit(&o, line);
    if (d.nchunks)
        xet_hash_to_string(&d.verification_hash, s);
    else
        strcpy(s, "-");
    snprintf(line, sizeof line, "verification_hash_all_chunks %s\n", s);
    emit(&o, line);
    return o.buf;
}

/* Compare line by line so a failure names the first differing line. */
static void same_lines(const char *name, size_t piece, const char *got, const char *want)
{
    int line = 1;
    const char *g = got, *w = want;
    while (*g && *w) {
        const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
        size_t gl = ge ? (size_t)(ge - g) : strlen(g), wl = we ? (size_t)(we - w) : strlen(w);
        if (gl != wl || memcmp(g, w, gl) != 0) {
            fprintf(stderr, "  %s (piece %zu) line %d:\n   got      %.*s\n   expected %.*s\n", name,
                    piece, line, (int)gl, g, (int)wl, w);
            T_TRUE(!"chunk output differs");
            return;
        }
        g += gl + (ge ? 1 : 0);
        w += wl + (we ? 1 : 0);
        line++;
    }
    if (*g || *w) {
        fprintf(stderr, "  %s (piece %zu): output lengths differ at line %d\n", name, piece, line);
        T_TRUE(!"chunk output length differs");
    }
    t_checks++;
}

static void test_vectors(void)
{
    uint8_t *buf = malloc(4 << 20);
    for (size_t v = 0; v < sizeof NAMES / sizeof NAMES[0]; v++) {
        char fname[128];
        snprintf(fname, sizeof fname, "chunks-%s.txt", NAMES[v]);
        size_t tl;
        char *txt = (char *)t_read_file(fname, &tl);
        /* expected: non-comment lines; header gives size and SHA-256 */
        char *want = calloc(1, tl + 1), sha[65] = "";
        size_t wl = 0;
        long size = -1;
        for (char *line = txt; *line;) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            if (line[0] == '#') {
                sscanf(line, "# size: %ld", &size);
                sscanf(line, "# sha256(input): %64s", sha);
            } else if (ll) {
                memcpy(want + wl, line, ll);
                wl += ll;
                want[wl++] = '\n';
            }
            line += ll + (nl ? 1 : 0);
        }
        long n = gen_named(NAMES[v], buf);
        T_EQ_INT(n, size);
        char got_sha[65];
        sha256_hex(buf, (size_t)n, got_sha);
        T_EQ_STR(got_sha, sha);
        size_t pieces[] = {(size_t)n ? (size_t)n : 1, 1, 7, 777, 1000, 8192, 65536, 0};
        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            if (pieces[p] == 1 && n > 300000)
                continue; /* byte-at-a-time on the big ones is just slow */
            char *got = run(buf, (size_t)n, pieces[p]);
            same_lines(NAMES[v], pieces[p], got, want);
            free(got);
        }
        free(want);
        free(txt);
    }
    free(buf);
}

/* Boundary rules by construction (§1.4): min and max sizes, forced cut. */
static void test_rules(void)
{
    size_t n = 3 << 20;
    uint8_t *buf = malloc(n);
    gen_splitmix64(42, buf, n);
    uint64_t *b;
    long k = xet_chunk_buffer(buf, n, &b);
    T_TRUE(k > 10);
    uint64_t prev = 0;
    for (long i = 0; i < k; i++) {
        uint64_t len = b[i] - prev;
        T_TRUE(len <= XET_CHUNK_MAX);
        if (i + 1 < k)
            T_TRUE(len >= XET_CHUNK_MIN);
        prev = b[i];
    }
    T_EQ_INT(b[k - 1], n);
    free(b);
    /* zeros never match: forced cuts at exactly 131072 */
    memset(buf, 0, n);
    k = xet_chunk_buffer(buf, 300000, &b);
    T_EQ_INT(k, 3);
    T_EQ_INT(b[0], 131072);
    T_EQ_INT(b[1], 262144);
    T_EQ_INT(b[2], 300000);
    free(b);
    k = xet_chunk_buffer(buf, 0, &b);
    T_EQ_INT(k, 0);
    free(b);
    free(buf);
}

int main(void)
{
    T_RUN(test_vectors);
    T_RUN(test_rules);
    return t_done();
}
