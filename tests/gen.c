/* gen.c — regenerates the inputs of the Xet chunking vectors. */
#include "gen.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

void gen_splitmix64(uint64_t seed, uint8_t *out, size_t n)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n; i += 8) {
        state += 0x9E3779B97F4A7C15ULL;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        for (size_t k = 0; k < 8 && i + k < n; k++)
            out[i + k] = (uint8_t)(z >> (8 * k));
    }
}

void gen_text(uint8_t *out, size_t n)
{
    size_t len = 0;
    char line[128];
    for (unsigned long i = 0; len < n; i++) {
        int k = snprintf(line, sizeof line, "line %lu: the quick brown fox jumps over the lazy dog %lu\n",
                         i, (i * 7) % 1000);
        size_t take = (size_t)k < n - len ? (size_t)k : n - len;
        memcpy(out + len, line, take);
        len += take;
    }
}

void gen_float32(uint8_t *out, size_t n)
{
    for (size_t i = 0; i * 4 < n; i++) {
        float f = (float)i / 1024.0f;
        uint8_t b[4];
        memcpy(b, &f, 4);
        for (size_t k = 0; k < 4 && i * 4 + k < n; k++)
            out[i * 4 + k] = b[k];
    }
}

/* The 128-byte pattern of xet-core's chunker tests (get_triggering_base_data). */
static const uint8_t TRIGGER[128] = {
    154, 52,  42,  34,  159, 75,  126, 224, 70,  236, 12,  196, 79,  236, 178, 124, 127, 50,  99,
    178, 44,  176, 174, 126, 250, 235, 205, 174, 252, 122, 35,  10,  20,  101, 214, 69,  193, 8,
    115, 105, 158, 228, 120, 111, 136, 162, 198, 251, 211, 183, 253, 252, 164, 147, 63,  16,  186,
    162, 117, 23,  170, 36,  205, 187, 174, 76,  210, 174, 211, 175, 12,  173, 145, 59,  2,   70,
    222, 181, 159, 227, 182, 156, 189, 51,  226, 106, 24,  50,  183, 157, 140, 10,  8,   23,  212,
    70,  10,  234, 23,  33,  219, 254, 39,  236, 70,  49,  191, 116, 9,   115, 15,  101, 26,  159,
    165, 220, 15,  170, 56,  125, 92,  163, 94,  235, 38,  40,  49,  81};

void gen_triggering(uint8_t *out, size_t n, size_t padding)
{
    size_t len = 128 + padding;
    memcpy(out, TRIGGER, 128);
    memset(out + 128, 0, padding);
    while (len < n) {
        size_t take = n - len < len ? n - len : len;
        memcpy(out + len, out, take);
        len += take;
    }
}

long gen_named(const char *name, uint8_t *out)
{
    struct { const char *name; int kind; long size; uint64_t arg; } T[] = {
        {"empty", 0, 0, 0},           {"one_byte_0x61", 1, 1, 0x61},
        {"rand_8191", 2, 8191, 1},    {"rand_8192", 2, 8192, 1},
        {"rand_8193", 2, 8193, 1},    {"zeros_200k", 1, 204800, 0},
        {"zeros_131073", 1, 131073, 0}, {"const59_1m", 1, 1000000, 0x3b},
        {"rand_1m_seed0", 2, 1000000, 0}, {"rand_3m", 2, 3145728, 0},
        {"text_300k", 3, 300000, 0},  {"trigger_pad1", 4, 65536, 1},
        {"trigger_pad24", 4, 65536, 24}, {"trigger_pad126", 4, 65536, 126},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (strcmp(T[i].name, name) != 0)
            continue;
        switch (T[i].kind) {
        case 1: memset(out, (int)T[i].arg, (size_t)T[i].size); break;
        case 2: gen_splitmix64(T[i].arg, out, (size_t)T[i].size); break;
        case 3: gen_text(out, (size_t)T[i].size); break;
        case 4: gen_triggering(out, (size_t)T[i].size, (size_t)T[i].arg); break;
        }
        return T[i].size;
    }
    return -1;
}

void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    static const char H[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = H[md[i] >> 4];
        out[2 * i + 1] = H[md[i] & 15];
    }
    out[64] = 0;
}
