/* gen.h — the input generators of the Xet test vectors (tests/vectors/README.md). */
#ifndef ZESTFS_TESTS_GEN_H
#define ZESTFS_TESTS_GEN_H
#include <stddef.h>
#include <stdint.h>
void gen_splitmix64(uint64_t seed, uint8_t *out, size_t n);
void gen_text(uint8_t *out, size_t n);
void gen_float32(uint8_t *out, size_t n);
void gen_triggering(uint8_t *out, size_t n, size_t padding);
/* Fill `out` with the named vector input ("rand_3m", "text_300k", ...);
 * returns its size, or -1 for an unknown name. out must hold 4 MiB. */
long gen_named(const char *name, uint8_t *out);
void sha256_hex(const void *data, size_t len, char out[65]);
#endif
