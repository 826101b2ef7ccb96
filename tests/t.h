/* t.h — a tiny test harness.  Every assertion that fails prints where, the
 * two expressions and both values (for memory: the first differing offset),
 * then the test goes on; main() returns non-zero if anything failed.
 *
 *   static void test_x(void) { T_EQ_INT(f(), 3); }
 *   int main(void) { T_RUN(test_x); return t_done(); }
 */
#ifndef ZESTFS_T_H
#define ZESTFS_T_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_checks, t_fail, t_tests, t_tests_failed, t_skips;
static const char *t_current __attribute__((unused)) = "";

#define T_FAIL_HDR() fprintf(stderr, "FAIL %s (%s:%d): ", t_current, __FILE__, __LINE__)

#define T_TRUE(e)                                                                           \
    do {                                                                                    \
        t_checks++;                                                                         \
        if (!(e)) {                                                                         \
            t_fail++;                                                                       \
            T_FAIL_HDR();                                                                   \
            fprintf(stderr, "expected true: %s\n", #e);                                    \
        }                                                                                   \
    } while (0)

#define T_EQ_INT(a, b)                                                                      \
    do {                                                                                    \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                             \
        t_checks++;                                                                         \
        if (t_a_ != t_b_) {                                                                 \
            t_fail++;                                                                       \
            T_FAIL_HDR();                                                                   \
            fprintf(stderr, "%s == %s: got %lld, expected %lld\n", #a, #b, t_a_, t_b_);     \
        }                                                                                   \
    } while (0)

#define T_EQ_STR(a, b)                                                                      \
    do {                                                                                    \
        const char *t_a_ = (a), *t_b_ = (b);                                                \
        t_checks++;                                                                         \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) {                                    \
            t_fail++;                                                                       \
            T_FAIL_HDR();                                                                   \
            fprintf(stderr, "%s == %s:\n   got      \"%s\"\n   expected \"%s\"\n", #a, #b,  \
                    t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                        \
        }                                                                                   \
    } while (0)

#define T_EQ_MEM(a, b, n)                                                                   \
    do {                                                                                    \
        const unsigned char *t_a_ = (const void *)(a), *t_b_ = (const void *)(b);           \
        size_t t_n_ = (n), t_i_ = 0;                                                        \
        t_checks++;                                                                         \
        while (t_i_ < t_n_ && t_a_[t_i_] == t_b_[t_i_])                                     \
            t_i_++;                                                                         \
        if (t_i_ < t_n_) {                                                                  \
            t_fail++;                                                                       \
            T_FAIL_HDR();                                                                   \
            fprintf(stderr, "%s == %s (%zu bytes): first difference at offset %zu: "       \
                    "0x%02x vs 0x%02x\n", #a, #b, t_n_, t_i_, t_a_[t_i_], t_b_[t_i_]);      \
        }                                                                                   \
    } while (0)

#define T_RUN(fn)                                                                           \
    do {                                                                                    \
        int t_before_ = t_fail;                                                             \
        t_current = #fn;                                                                    \
        fn();                                                                               \
        t_tests++;                                                                          \
        if (t_fail != t_before_) {                                                          \
            t_tests_failed++;                                                               \
            fprintf(stderr, "not ok %s\n", #fn);                                            \
        } else                                                                              \
            fprintf(stderr, "ok %s\n", #fn);                                                \
    } while (0)

/* A part of the test could not run here: say why (a line "skip: WHY", see
 * tests/skip-reasons.txt); the test then exits 77 (SKIP) unless something failed. */
#define T_SKIP(...)                                                                         \
    do {                                                                                    \
        t_skips++;                                                                          \
        fprintf(stderr, "skip: %s: ", t_current);                                           \
        fprintf(stderr, __VA_ARGS__);                                                       \
        fputc('\n', stderr);                                                                \
    } while (0)

static inline int t_done(void)
{
    fprintf(stderr, "%d checks, %d failed; %d tests, %d failed; %d parts skipped\n", t_checks,
            t_fail, t_tests, t_tests_failed, t_skips);
    return t_fail ? 1 : t_skips ? 77 : 0;
}

/* Read a whole file (path relative to the vector directory when not absolute). */
#ifndef T_VECTOR_DIR
#define T_VECTOR_DIR "."
#endif
static inline unsigned char *t_read_file(const char *name, size_t *len)
{
    char path[4096];
    if (name[0] == '/')
        snprintf(path, sizeof path, "%s", name);
    else
        snprintf(path, sizeof path, "%s/%s", T_VECTOR_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
