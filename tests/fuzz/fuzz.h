/* fuzz.h — what every harness in tests/fuzz/ provides and may use.
 *
 * Each fuzz_<target>.c defines LLVMFuzzerTestOneInput.  Built with clang and
 * -fsanitize=fuzzer (meson -Dfuzz=true) it is a libFuzzer binary; built with
 * any compiler and replay.c it is a program that feeds the files named on
 * its command line (directories: every file in them) to the same entry
 * point — the regression test every CI build runs over corpus/<target>/ and
 * regress/<target>/.  A harness must never abort on hostile input: it
 * aborts (FZ_CHECK) only when an invariant of the code under test breaks. */
#ifndef ZESTFS_FUZZ_H
#define ZESTFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* A malloc'd NUL-terminated copy (string parsers get exactly `size` bytes
 * plus the terminator, so a missing NUL check shows up as an overflow). */
static inline char *fz_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < n; i++)
        s[i] = (char)p[i];
    s[n] = 0;
    return s;
}

/* A malloc'd copy of exactly n bytes (a read past the end is an ASan report). */
static inline uint8_t *fz_dup(const uint8_t *p, size_t n)
{
    uint8_t *d = calloc(n ? n : 1, 1);
    if (!d)
        abort();
    for (size_t i = 0; i < n; i++)
        d[i] = p[i];
    return d;
}

#endif
