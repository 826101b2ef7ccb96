/* hash.c — Xet hashes (spec/xet.md §0, §2): string form, chunk hash,
 * streaming aggregated Merkle tree, file hash, term verification hash. */
#include "xet.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blake3.h"

static const uint8_t DATA_KEY[32] = {
    102, 151, 245, 119, 91,  149, 80,  222, 49,  53,  203, 172, 165, 151, 24,  28,
    157, 228, 33,  16,  155, 235, 43,  88,  180, 208, 176, 75,  147, 173, 242, 41};
static const uint8_t INTERNAL_NODE_KEY[32] = {
    1,   126, 197, 199, 165, 71,  41,  150, 253, 148, 102, 102, 180, 138, 2,  230,
    93,  221, 83,  111, 55,  199, 109, 210, 248, 99,  82,  230, 74,  83,  113, 63};
static const uint8_t VERIFICATION_KEY[32] = {
    127, 24,  87,  214, 206, 86,  237, 102, 18,  127, 249, 19,  231, 165, 195, 243,
    164, 205, 38,  213, 181, 219, 73,  230, 65,  36,  152, 127, 40,  251, 148, 195};
static const uint8_t ZERO_KEY[32];

const xet_hash xet_zero_hash;

static const char HEX[] = "0123456789abcdef";

void xet_hash_to_string(const xet_hash *h, char out[XET_HASH_STR_LEN + 1])
{
    char *o = out;
    for (int g = 0; g < 4; g++)
        for (int i = 7; i >= 0; i--) {
            uint8_t b = h->b[g * 8 + i];
            *o++ = HEX[b >> 4];
            *o++ = HEX[b & 15];
        }
    *o = 0;
}

int xet_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int xet_hash_from_string(const char *s, xet_hash *h)
{
    if (!s)
        return -EINVAL;
    for (int g = 0; g < 4; g++)
        for (int i = 7; i >= 0; i--) {
            int hi = xet_hexval(*s++);
            if (hi < 0)
                return -EINVAL;
            int lo = xet_hexval(*s++);
            if (lo < 0)
                return -EINVAL;
            h->b[g * 8 + i] = (uint8_t)(hi << 4 | lo);
        }
    return 0;
}

void xet_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[p[i] >> 4];
        out[2 * i + 1] = HEX[p[i] & 15];
    }
    out[2 * n] = 0;
}

int xet_unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = xet_hexval(s[2 * i]);
        if (hi < 0)
            return -EINVAL;
        int lo = xet_hexval(s[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool xet_hash_is_zero(const xet_hash *h)
{
    return memcmp(h, &xet_zero_hash, sizeof *h) == 0;
}

bool xet_hash_eq(const xet_hash *a, const xet_hash *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

void xet_keyed_hash(const uint8_t key[32], const void *data, size_t len, xet_hash *out)
{
    blake3_hasher hs;
    blake3_hasher_init_keyed(&hs, key);
    blake3_hasher_update(&hs, data, len);
    blake3_hasher_finalize(&hs, out->b, XET_HASH_LEN);
}

void xet_chunk_hash(const void *data, size_t len, xet_hash *out)
{
    xet_keyed_hash(DATA_KEY, data, len, out);
}

/* ---- Merkle ------------------------------------------------------------- */

/* Natural cut: LE u64 of bytes 24..31 divisible by 4 (§2.2, trap 4). */
static bool natural_cut(const xet_hash *h)
{
    return (h->b[24] & 3) == 0;
}

/* Size of the next group among `r` nodes (r >= 1), per §2.2. */
static size_t group_size(const xet_merkle_node *nodes, size_t r)
{
    if (r <= 2)
        return r;
    size_t lim = r < XET_MERKLE_GROUP_MAX ? r : XET_MERKLE_GROUP_MAX;
    for (size_t i = 2; i < lim; i++)
        if (natural_cut(&nodes[i].hash))
            return i + 1;
    return lim;
}

/* Parent of a group: keyed(INTERNAL_NODE_KEY, "<hash> : <len>\n"...). */
static void hash_group(const xet_merkle_node *nodes, size_t n, xet_merkle_node *parent)
{
    blake3_hasher hs;
    blake3_hasher_init_keyed(&hs, INTERNAL_NODE_KEY);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char line[XET_HASH_STR_LEN + 3 + 20 + 2];
        xet_hash_to_string(&nodes[i].hash, line);
        char *p = line + XET_HASH_STR_LEN;
        *p++ = ' ';
        *p++ = ':';
        *p++ = ' ';
        char num[21];
        int k = 0;
        uint64_t v = nodes[i].len;
        do {
            num[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (k)
            *p++ = num[--k];
        *p++ = '\n';
        blake3_hasher_update(&hs, line, (size_t)(p - line));
        total += nodes[i].len;
    }
    blake3_hasher_finalize(&hs, parent->hash.b, XET_HASH_LEN);
    parent->len = total;
}

void xet_merkle_init(xet_merkle *m)
{
    memset(m->npending, 0, sizeof m->npending);
    memset(m->total, 0, sizeof m->total);
    m->nleaves = 0;
}

static void push(xet_merkle *m, int level, const xet_merkle_node *n);

/* Emit one group from the front of a level's pending buffer. */
static void emit_group(xet_merkle *m, int level, size_t gs)
{
    xet_merkle_node parent;
    hash_group(m->pending[level], gs, &parent);
    size_t left = m->npending[level] - gs;
    memmove(m->pending[level], m->pending[level] + gs, left * sizeof(xet_merkle_node));
    m->npending[level] = (uint8_t)left;
    push(m, level + 1, &parent);
}

static void push(xet_merkle *m, int level, const xet_merkle_node *n)
{
    /* A level never holds more than 9 pending nodes: once it has 9, the
     * decision for the group starting at its front is the same whatever
     * follows (a group is at most 9 long), so it is emitted at once.  With
     * 48 levels and fan-out >= 3 between levels that are not the last, the
     * tree can describe far more leaves than a u64 counts. */
    m->pending[level][m->npending[level]++] = *n;
    m->total[level]++;
    if (m->npending[level] == XET_MERKLE_GROUP_MAX)
        emit_group(m, level, group_size(m->pending[level], XET_MERKLE_GROUP_MAX + 1));
}

void xet_merkle_add(xet_merkle *m, const xet_hash *h, uint64_t len)
{
    xet_merkle_node n = {*h, len};
    m->nleaves++;
    push(m, 0, &n);
}

void xet_merkle_final(xet_merkle *m, xet_hash *root, uint64_t *total_len)
{
    if (m->nleaves == 0) {
        *root = xet_zero_hash;
        if (total_len)
            *total_len = 0;
        return;
    }
    for (int level = 0; level < XET_MERKLE_LEVELS - 1; level++) {
        if (m->total[level] == 1) {
            /* the only node this level ever had is the root */
            *root = m->pending[level][0].hash;
            if (total_len)
                *total_len = m->pending[level][0].len;
            return;
        }
        while (m->npending[level] > 0)
            emit_group(m, level, group_size(m->pending[level], m->npending[level]));
    }
    abort(); /* unreachable: 48 levels */
}

void xet_merkle_root(const xet_merkle_node *leaves, size_t n, xet_hash *root)
{
    xet_merkle m;
    xet_merkle_init(&m);
    for (size_t i = 0; i < n; i++)
        xet_merkle_add(&m, &leaves[i].hash, leaves[i].len);
    xet_merkle_final(&m, root, NULL);
}

void xet_file_hash_from_root(const xet_hash *root, uint64_t nchunks, const uint8_t *salt,
                             xet_hash *out)
{
    if (nchunks == 0) {
        *out = xet_zero_hash;
        return;
    }
    xet_keyed_hash(salt ? salt : ZERO_KEY, root->b, XET_HASH_LEN, out);
}

void xet_verification_hash(const xet_hash *chunk_hashes, size_t n, xet_hash *out)
{
    xet_keyed_hash(VERIFICATION_KEY, chunk_hashes, n * sizeof(xet_hash), out);
}

/* ---- whole-file digest -------------------------------------------------- */

struct xet_file_hasher {
    xet_chunker ch;
    xet_merkle m;
    blake3_hasher chunk;  /* current chunk */
    blake3_hasher verif;  /* raw chunk hashes, in order */
    uint64_t size, nchunks, chunk_off;
    xet_chunk_cb cb;
    void *ud;
};

xet_file_hasher *xet_file_hasher_new(xet_chunk_cb cb, void *ud)
{
    xet_file_hasher *fh = malloc(sizeof *fh);
    if (!fh)
        return NULL;
    xet_chunker_init(&fh->ch);
    xet_merkle_init(&fh->m);
    blake3_hasher_init_keyed(&fh->chunk, DATA_KEY);
    blake3_hasher_init_keyed(&fh->verif, VERIFICATION_KEY);
    fh->size = fh->nchunks = fh->chunk_off = 0;
    fh->cb = cb;
    fh->ud = ud;
    return fh;
}

static void end_chunk(xet_file_hasher *fh, uint64_t len)
{
    xet_hash h;
    blake3_hasher_finalize(&fh->chunk, h.b, XET_HASH_LEN);
    blake3_hasher_init_keyed(&fh->chunk, DATA_KEY);
    xet_merkle_add(&fh->m, &h, len);
    blake3_hasher_update(&fh->verif, h.b, XET_HASH_LEN);
    if (fh->cb)
        fh->cb(fh->ud, fh->nchunks, fh->chunk_off, (uint32_t)len, &h);
    fh->nchunks++;
    fh->chunk_off += len;
}

void xet_file_hasher_update(xet_file_hasher *fh, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        bool cut;
        size_t n = xet_chunker_next(&fh->ch, p, len, &cut);
        blake3_hasher_update(&fh->chunk, p, n);
        fh->size += n;
        p += n;
        len -= n;
        if (cut)
            end_chunk(fh, fh->size - fh->chunk_off);
    }
}

void xet_file_hasher_final(xet_file_hasher *fh, xet_file_digest *out)
{
    if (fh->size > fh->chunk_off)
        end_chunk(fh, fh->size - fh->chunk_off);
    xet_merkle_final(&fh->m, &out->xorb_hash, NULL);
    xet_file_hash_from_root(&out->xorb_hash, fh->nchunks, NULL, &out->file_hash);
    if (fh->nchunks)
        blake3_hasher_finalize(&fh->verif, out->verification_hash.b, XET_HASH_LEN);
    else
        out->verification_hash = xet_zero_hash;
    out->size = fh->size;
    out->nchunks = fh->nchunks;
    free(fh);
}
