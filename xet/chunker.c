/* chunker.c — Xet content-defined chunking (spec/xet.md §1.4, §1.5).
 *
 * The normative rule hashes every byte of a chunk and tests for a boundary
 * from size MIN on.  Because the gear hash forgets a byte after 64 updates,
 * the first MIN-65 bytes of a chunk cannot influence any tested value, so
 * (like xet-core) we start hashing at chunk offset MIN-65 with h = 0 and get
 * identical cuts.  In the tested region four bytes are folded per step: the
 * gear terms of the four bytes combine off the critical path and the loop
 * carries only one shift+add per four bytes. */
#include "xet.h"

#include <errno.h>
#include <stdlib.h>

static const uint64_t GEAR[256] = {
#include "gear_table.inc"
};

#define MASK 0xFFFF000000000000ULL
#define SKIP (XET_CHUNK_MIN - 64 - 1)

void xet_chunker_init(xet_chunker *c)
{
    c->h = 0;
    c->size = 0;
}

size_t xet_chunker_next(xet_chunker *c, const uint8_t *data, size_t len, bool *cut)
{
    uint64_t h = c->h, size = c->size;
    size_t pos = 0;
    *cut = false;

    if (size < SKIP) {
        uint64_t k = SKIP - size;
        if (k > len)
            k = len;
        size += k;
        pos += k;
    }
    /* bytes whose resulting size is below MIN: hashed, never tested */
    while (pos < len && size < XET_CHUNK_MIN - 1) {
        h = (h << 1) + GEAR[data[pos++]];
        size++;
    }
    if (pos == len) {
        c->h = h;
        c->size = size;
        return pos;
    }

    /* tested region: every byte now yields size >= MIN */
    uint64_t room = XET_CHUNK_MAX - size;
    size_t avail = len - pos;
    const uint8_t *p = data + pos;
    const uint8_t *end = p + (room < avail ? room : avail);

    while (end - p >= 4) {
        uint64_t a1 = GEAR[p[0]];
        uint64_t a2 = (a1 << 1) + GEAR[p[1]];
        uint64_t a3 = (a2 << 1) + GEAR[p[2]];
        uint64_t a4 = (a3 << 1) + GEAR[p[3]];
        uint64_t h1 = (h << 1) + a1;
        uint64_t h2 = (h << 2) + a2;
        uint64_t h3 = (h << 3) + a3;
        uint64_t h4 = (h << 4) + a4;
        if (__builtin_expect(!(h1 & MASK) || !(h2 & MASK) || !(h3 & MASK) || !(h4 & MASK), 0)) {
            int k = !(h1 & MASK) ? 1 : !(h2 & MASK) ? 2 : !(h3 & MASK) ? 3 : 4;
            p += k;
            goto boundary;
        }
        h = h4;
        p += 4;
    }
    while (p < end) {
        h = (h << 1) + GEAR[*p++];
        if (!(h & MASK))
            goto boundary;
    }
    size += (uint64_t)(p - (data + pos));
    if (size >= XET_CHUNK_MAX) {
        *cut = true;
        c->h = 0;
        c->size = 0;
        return (size_t)(p - data);
    }
    c->h = h;
    c->size = size;
    return (size_t)(p - data);

boundary:
    *cut = true;
    c->h = 0;
    c->size = 0;
    return (size_t)(p - data);
}

long xet_chunk_buffer(const uint8_t *data, size_t len, uint64_t **bounds)
{
    size_t cap = len / XET_CHUNK_MIN + 2, n = 0;
    uint64_t *b = malloc(cap * sizeof *b);
    if (!b)
        return -ENOMEM;
    xet_chunker c;
    xet_chunker_init(&c);
    size_t off = 0;
    while (off < len) {
        bool cut;
        off += xet_chunker_next(&c, data + off, len - off, &cut);
        if (cut)
            b[n++] = off;
    }
    if (c.size > 0)
        b[n++] = len;
    *bounds = b;
    return (long)n;
}
