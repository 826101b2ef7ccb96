/* xorb.c — Xet xorb records (spec/xet.md §3): 8-byte chunk headers, the
 * three compression schemes (none, LZ4 frame, byte-grouping-4 + LZ4 frame),
 * walking the records of a xorb, decoding a whole xorb and building one.
 *
 * LZ4 frames are parsed here rather than with LZ4F_decompress: the hub
 * writes frames with 4 MiB maximum block size, for which LZ4F_decompress
 * allocates a 4 MiB buffer and copies every block through it.  A chunk is
 * at most 128 KiB and its decoded size is known from the record header, so
 * each block is decoded straight into the output with
 * LZ4_decompress_safe_usingDict, the already-decoded prefix serving as the
 * dictionary (this is what linked blocks need, and it is the fast path of
 * liblz4 because the dictionary ends where the output continues).
 *
 * Frame checksums (header, block and content) are bounds-checked and
 * skipped, not verified: the chunk hash is the integrity check of Xet.
 *
 * Errors: a damaged record header or a record running past its buffer is
 * -EBADMSG, an unknown version/scheme -EPROTONOSUPPORT, sizes above the caps
 * -EFBIG; anything wrong inside a payload (bad frame, bad block, wrong
 * decoded size, trailing bytes) is -EILSEQ.
 *
 * No global mutable state: every function works on its arguments (and
 * per-call heap buffers), so all of it may run on several threads at once. */
#include "xet.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4frame.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- little-endian helpers ---------------------------------------------- */

static inline uint32_t rd_u24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline void wr_u24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
}

/* ---- record header (§3.1) ----------------------------------------------- */

int xet_chunk_header_parse(const uint8_t *p, size_t avail, xet_chunk_header *h)
{
    if (avail < XET_CHUNK_HEADER_LEN)
        return -EBADMSG;
    h->version = p[0];
    h->clen = rd_u24(p + 1);
    h->scheme = p[4];
    h->ulen = rd_u24(p + 5);
    if (h->version != 0 || h->scheme > XET_SCHEME_BG4_LZ4)
        return -EPROTONOSUPPORT;
    if (h->ulen > XET_CHUNK_MAX || h->clen > XET_MAX_COMPRESSED_LEN)
        return -EFBIG;
    return 0;
}

void xet_chunk_header_write(const xet_chunk_header *h, uint8_t out[XET_CHUNK_HEADER_LEN])
{
    out[0] = h->version;
    wr_u24(out + 1, h->clen);
    out[4] = h->scheme;
    wr_u24(out + 5, h->ulen);
}

/* ---- BG4 byte grouping (§3.2) ------------------------------------------- */

/* Start of each of the four groups in a grouped buffer of n bytes: group k
 * holds q + (r > k) bytes for k < 3, group 3 holds q (q = n/4, r = n%4). */
static void bg4_starts(size_t n, size_t s[4])
{
    size_t q = n / 4, r = n % 4;
    s[0] = 0;
    s[1] = s[0] + q + (r >= 1);
    s[2] = s[1] + q + (r >= 2);
    s[3] = s[2] + q + (r >= 3);
}

void xet_bg4_group(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t s[4], q = n / 4;
    bg4_starts(n, s);
    uint8_t *g0 = out + s[0], *g1 = out + s[1], *g2 = out + s[2], *g3 = out + s[3];
    for (size_t i = 0; i < q; i++) {
        g0[i] = in[4 * i];
        g1[i] = in[4 * i + 1];
        g2[i] = in[4 * i + 2];
        g3[i] = in[4 * i + 3];
    }
    for (size_t k = 0; k < n % 4; k++)
        out[s[k] + q] = in[4 * q + k];
}

void xet_bg4_regroup(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t s[4], q = n / 4, i = 0;
    bg4_starts(n, s);
    const uint8_t *g0 = in + s[0], *g1 = in + s[1], *g2 = in + s[2], *g3 = in + s[3];
#if defined(__SSE2__)
    /* 16 bytes of each group -> 64 interleaved output bytes. */
    for (; i + 16 <= q; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(g0 + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(g1 + i));
        __m128i c = _mm_loadu_si128((const __m128i *)(g2 + i));
        __m128i d = _mm_loadu_si128((const __m128i *)(g3 + i));
        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
        uint8_t *o = out + 4 * i;
        _mm_storeu_si128((__m128i *)(o + 0), _mm_unpacklo_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(o + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
        _mm_storeu_si128((__m128i *)(o + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
#endif
    for (; i < q; i++) {
        uint32_t w = (uint32_t)g0[i] | (uint32_t)g1[i] << 8 | (uint32_t)g2[i] << 16 |
                     (uint32_t)g3[i] << 24;
        uint8_t *o = out + 4 * i;
        o[0] = (uint8_t)w;
        o[1] = (uint8_t)(w >> 8);
        o[2] = (uint8_t)(w >> 16);
        o[3] = (uint8_t)(w >> 24);
    }
    for (size_t k = 0; k < n % 4; k++)
        out[4 * q + k] = in[s[k] + q];
}

/* ---- LZ4 frame decoding ------------------------------------------------- */

#define LZ4F_MAGIC 0x184D2204u
#define FLG_VERSION_MASK 0xC0u
#define FLG_VERSION_01 0x40u
#define FLG_BLOCK_INDEP 0x20u
#define FLG_BLOCK_CKSUM 0x10u
#define FLG_CONTENT_SIZE 0x08u
#define FLG_CONTENT_CKSUM 0x04u
#define FLG_RESERVED 0x02u
#define FLG_DICT_ID 0x01u
#define BLOCK_UNCOMPRESSED 0x80000000u

/* Decode one complete LZ4 frame of exactly `len` bytes into exactly `cap`
 * bytes of dst.  Returns 0 or -EILSEQ. */
static int lz4_frame_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    const uint8_t *p = src, *end = src + len;

    /* magic, FLG, BD */
    if (len < 7 || xet_le32(p) != LZ4F_MAGIC)
        return -EILSEQ;
    uint8_t flg = p[4], bd = p[5];
    p += 6;
    if ((flg & FLG_VERSION_MASK) != FLG_VERSION_01 || (flg & FLG_RESERVED) || (flg & FLG_DICT_ID))
        return -EILSEQ; /* unknown version, reserved bit, or a dictionary frame */
    unsigned bsid = (bd >> 4) & 7;
    if ((bd & 0x8F) || bsid < 4)
        return -EILSEQ;
    size_t block_max = (size_t)1 << (8 + 2 * bsid); /* 4: 64 KiB ... 7: 4 MiB */

    if (flg & FLG_CONTENT_SIZE) {
        if ((size_t)(end - p) < 8)
            return -EILSEQ;
        uint64_t csize = (uint64_t)xet_le32(p) | (uint64_t)xet_le32(p + 4) << 32;
        if (csize != cap)
            return -EILSEQ;
        p += 8;
    }
    if (p >= end)
        return -EILSEQ;
    p++; /* header checksum: not verified */

    bool linked = !(flg & FLG_BLOCK_INDEP);
    size_t bck = (flg & FLG_BLOCK_CKSUM) ? 4 : 0;
    size_t off = 0;
    for (;;) {
        if ((size_t)(end - p) < 4)
            return -EILSEQ;
        uint32_t bsize = xet_le32(p);
        p += 4;
        if (bsize == 0)
            break; /* end mark */
        bool stored = bsize & BLOCK_UNCOMPRESSED;
        bsize &= ~BLOCK_UNCOMPRESSED;
        if (bsize > block_max || bsize > (size_t)(end - p) || bck > (size_t)(end - p) - bsize)
            return -EILSEQ;
        size_t room = cap - off;
        if (room > block_max)
            room = block_max;
        if (stored) {
            if (bsize > room)
                return -EILSEQ;
            memcpy(dst + off, p, bsize);
            off += bsize;
        } else {
            int n;
            if (linked && off > 0)
                n = LZ4_decompress_safe_usingDict((const char *)p, (char *)dst + off, (int)bsize,
                                                  (int)room, (const char *)dst, (int)off);
            else
                n = LZ4_decompress_safe((const char *)p, (char *)dst + off, (int)bsize,
                                        (int)room);
            if (n < 0)
                return -EILSEQ;
            off += (size_t)n;
        }
        p += bsize + bck; /* block checksum: not verified */
    }
    if (flg & FLG_CONTENT_CKSUM) {
        if ((size_t)(end - p) < 4)
            return -EILSEQ;
        p += 4; /* content checksum: not verified */
    }
    if (p != end || off != cap)
        return -EILSEQ;
    return 0;
}

int xet_chunk_decode(const xet_chunk_header *h, const uint8_t *payload, uint8_t *out)
{
    if (h->version != 0 || h->scheme > XET_SCHEME_BG4_LZ4)
        return -EPROTONOSUPPORT;
    if (h->ulen > XET_CHUNK_MAX || h->clen > XET_MAX_COMPRESSED_LEN)
        return -EFBIG;
    switch (h->scheme) {
    case XET_SCHEME_NONE:
        if (h->clen != h->ulen)
            return -EILSEQ;
        memcpy(out, payload, h->ulen);
        return 0;
    case XET_SCHEME_LZ4:
        return lz4_frame_decode(payload, h->clen, out, h->ulen);
    default: { /* BG4: decode the grouped bytes, then interleave them back */
        uint8_t *tmp = malloc(h->ulen ? h->ulen : 1);
        if (!tmp)
            return -ENOMEM;
        int err = lz4_frame_decode(payload, h->clen, tmp, h->ulen);
        if (!err)
            xet_bg4_regroup(tmp, h->ulen, out);
        free(tmp);
        return err;
    }
    }
}

/* ---- encoding ----------------------------------------------------------- */

/* Frame options for writing: 64 KiB linked blocks, no checksums, no content
 * size — a plain standard frame that lz4_flex and lz4js both decode. */
static void lz4_prefs(LZ4F_preferences_t *prefs)
{
    memset(prefs, 0, sizeof *prefs);
    prefs->frameInfo.blockSizeID = LZ4F_max64KB;
    prefs->frameInfo.blockMode = LZ4F_blockLinked;
    prefs->frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
    prefs->frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
    prefs->frameInfo.contentSize = 0;
}

static size_t lz4_bound(size_t len)
{
    LZ4F_preferences_t prefs;
    lz4_prefs(&prefs);
    return LZ4F_compressFrameBound(len, &prefs);
}

size_t xet_chunk_record_bound(size_t len)
{
    size_t b = lz4_bound(len);
    return XET_CHUNK_HEADER_LEN + (b > len ? b : len);
}

/* Compress src into one LZ4 frame at dst (capacity lz4_bound(len)).
 * Returns the frame length or -EIO. */
static long lz4_frame_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    LZ4F_preferences_t prefs;
    lz4_prefs(&prefs);
    size_t n = LZ4F_compressFrame(dst, cap, src, len, &prefs);
    if (LZ4F_isError(n))
        return -EIO;
    return (long)n;
}

long xet_chunk_encode(const uint8_t *data, size_t len, int scheme, uint8_t *out)
{
    if (len > XET_CHUNK_MAX)
        return -EFBIG;
    if (scheme > XET_SCHEME_BG4_LZ4)
        return -EPROTONOSUPPORT;
    uint8_t *payload = out + XET_CHUNK_HEADER_LEN;
    size_t bound = lz4_bound(len);
    xet_chunk_header h = {.version = 0, .ulen = (uint32_t)len};
    long n;

    if (scheme == XET_SCHEME_NONE) {
        memcpy(payload, data, len);
        h.scheme = XET_SCHEME_NONE;
        h.clen = (uint32_t)len;
    } else if (scheme == XET_SCHEME_LZ4) {
        if ((n = lz4_frame_encode(data, len, payload, bound)) < 0)
            return n;
        h.scheme = XET_SCHEME_LZ4;
        h.clen = (uint32_t)n;
    } else {
        /* BG4, or auto: the grouped copy and (auto) a second frame live in
         * a per-call scratch buffer. */
        uint8_t *tmp = malloc(len + bound + 1);
        if (!tmp)
            return -ENOMEM;
        uint8_t *grouped = tmp, *frame = tmp + len;
        xet_bg4_group(data, len, grouped);
        if (scheme == XET_SCHEME_BG4_LZ4) {
            n = lz4_frame_encode(grouped, len, payload, bound);
            h.scheme = XET_SCHEME_BG4_LZ4;
        } else {
            /* auto (§3.2): the smaller of LZ4 and BG4, NONE unless a
             * compressed form is strictly shorter than the chunk */
            long nl = lz4_frame_encode(data, len, payload, bound);
            long nb = nl < 0 ? nl : lz4_frame_encode(grouped, len, frame, bound);
            n = nl < 0 ? nl : nb;
            if (n >= 0) {
                if (nb < nl && (size_t)nb < len) {
                    memcpy(payload, frame, (size_t)nb);
                    h.scheme = XET_SCHEME_BG4_LZ4;
                    n = nb;
                } else if ((size_t)nl < len) {
                    h.scheme = XET_SCHEME_LZ4;
                    n = nl;
                } else {
                    memcpy(payload, data, len);
                    h.scheme = XET_SCHEME_NONE;
                    n = (long)len;
                }
            }
        }
        free(tmp);
        if (n < 0)
            return n;
        h.clen = (uint32_t)n;
    }
    if (h.clen > XET_MAX_COMPRESSED_LEN)
        return -EFBIG; /* cannot happen for len <= 128 KiB, but keep the cap */
    xet_chunk_header_write(&h, out);
    return (long)(XET_CHUNK_HEADER_LEN + h.clen);
}

/* ---- walking records (§3.4, §3.5) --------------------------------------- */

static const char FOOTER_MAGIC[7] = {'X', 'E', 'T', 'B', 'L', 'O', 'B'};

/* Visit the records of buf; when recs is non-NULL fill it.  Returns the
 * count or a negative errno. */
static long walk_records(const uint8_t *buf, size_t len, xet_record *recs)
{
    size_t off = 0, n = 0;
    while (off < len) {
        size_t left = len - off;
        if (left >= sizeof FOOTER_MAGIC && memcmp(buf + off, FOOTER_MAGIC, sizeof FOOTER_MAGIC) == 0)
            break;
        xet_chunk_header h;
        int err = xet_chunk_header_parse(buf + off, left, &h);
        if (err)
            return err;
        if (h.clen > left - XET_CHUNK_HEADER_LEN)
            return -EBADMSG;
        if (n >= XET_XORB_MAX_CHUNKS)
            return -EFBIG;
        if (recs) {
            recs[n].offset = off;
            recs[n].hdr = h;
        }
        n++;
        off += XET_CHUNK_HEADER_LEN + h.clen;
    }
    return (long)n;
}

long xet_xorb_index(const uint8_t *buf, size_t len, xet_record **recs)
{
    *recs = NULL;
    long n = walk_records(buf, len, NULL);
    if (n <= 0)
        return n;
    xet_record *r = malloc((size_t)n * sizeof *r);
    if (!r)
        return -ENOMEM;
    walk_records(buf, len, r);
    *recs = r;
    return n;
}

void xet_xorb_decoded_free(xet_xorb_decoded *d)
{
    free(d->data);
    free(d->chunk_len);
    free(d->chunk_hash);
    memset(d, 0, sizeof *d);
}

int xet_xorb_decode_all(const uint8_t *buf, size_t len, xet_xorb_decoded *out)
{
    memset(out, 0, sizeof *out);
    xet_record *recs;
    long n = xet_xorb_index(buf, len, &recs);
    if (n < 0)
        return (int)n;
    uint64_t total = 0;
    for (long i = 0; i < n; i++)
        total += recs[i].hdr.ulen;

    int err = 0;
    xet_merkle_node *nodes = NULL;
    out->nchunks = (size_t)n;
    out->len = total;
    out->data = malloc(total ? total : 1);
    out->chunk_len = malloc(n ? (size_t)n * sizeof *out->chunk_len : 1);
    out->chunk_hash = malloc(n ? (size_t)n * sizeof *out->chunk_hash : 1);
    nodes = malloc(n ? (size_t)n * sizeof *nodes : 1);
    if (!out->data || !out->chunk_len || !out->chunk_hash || !nodes) {
        err = -ENOMEM;
        goto done;
    }
    uint64_t pos = 0;
    for (long i = 0; i < n; i++) {
        const xet_chunk_header *h = &recs[i].hdr;
        err = xet_chunk_decode(h, buf + recs[i].offset + XET_CHUNK_HEADER_LEN, out->data + pos);
        if (err)
            goto done;
        out->chunk_len[i] = h->ulen;
        xet_chunk_hash(out->data + pos, h->ulen, &out->chunk_hash[i]);
        nodes[i].hash = out->chunk_hash[i];
        nodes[i].len = h->ulen;
        pos += h->ulen;
    }
    xet_merkle_root(nodes, (size_t)n, &out->xorb_hash);
done:
    free(nodes);
    free(recs);
    if (err)
        xet_xorb_decoded_free(out);
    return err;
}

/* ---- xorb writer -------------------------------------------------------- */

void xet_xorb_writer_init(xet_xorb_writer *w, int scheme)
{
    memset(w, 0, sizeof *w);
    w->scheme = scheme;
}

/* Make room in the record buffer for `need` bytes: doubling from 1 MiB,
 * but never beyond what the largest possible xorb plus one record needs. */
static int grow_buf(xet_xorb_writer *w, size_t need)
{
    if (need <= w->cap)
        return 0;
    size_t ceiling = XET_XORB_MAX_BYTES + xet_chunk_record_bound(XET_CHUNK_MAX);
    size_t c = w->cap ? w->cap : (size_t)1 << 20;
    while (c < need)
        c *= 2;
    if (c > ceiling)
        c = need > ceiling ? need : ceiling;
    uint8_t *q = realloc(w->buf, c);
    if (!q)
        return -ENOMEM;
    w->buf = q;
    w->cap = c;
    return 0;
}

/* Make room for one more chunk in the per-chunk arrays. */
static int grow_chunks(xet_xorb_writer *w)
{
    if (w->nchunks < w->chunks_cap)
        return 0;
    size_t c = w->chunks_cap ? 2 * w->chunks_cap : 64;
    xet_merkle_node *a = realloc(w->chunks, c * sizeof *a);
    if (!a)
        return -ENOMEM;
    w->chunks = a;
    uint32_t *b = realloc(w->rec_end, c * sizeof *b);
    if (!b)
        return -ENOMEM; /* chunks_cap unchanged: both arrays still hold it */
    w->rec_end = b;
    w->chunks_cap = c;
    return 0;
}

long xet_xorb_writer_add(xet_xorb_writer *w, const uint8_t *data, size_t len, const xet_hash *hash)
{
    if (len == 0)
        return -EINVAL; /* chunks are never empty */
    if (len > XET_CHUNK_MAX)
        return -EFBIG;
    if (w->nchunks >= XET_XORB_MAX_CHUNKS)
        return -E2BIG;
    int err = grow_buf(w, w->len + xet_chunk_record_bound(len));
    if (!err)
        err = grow_chunks(w);
    if (err)
        return err;
    long n = xet_chunk_encode(data, len, w->scheme, w->buf + w->len);
    if (n < 0)
        return n;
    if (w->len + (size_t)n > XET_XORB_MAX_BYTES)
        return -E2BIG; /* the record written past len is simply dropped */
    w->len += (size_t)n;
    xet_merkle_node *c = &w->chunks[w->nchunks];
    if (hash)
        c->hash = *hash;
    else
        xet_chunk_hash(data, len, &c->hash);
    c->len = len;
    w->rec_end[w->nchunks] = (uint32_t)w->len;
    w->unpacked += len;
    return (long)w->nchunks++;
}

void xet_xorb_writer_hash(const xet_xorb_writer *w, xet_hash *out)
{
    xet_merkle_root(w->chunks, w->nchunks, out);
}

void xet_xorb_writer_reset(xet_xorb_writer *w)
{
    w->len = 0;
    w->nchunks = 0;
    w->unpacked = 0;
}

void xet_xorb_writer_free(xet_xorb_writer *w)
{
    free(w->buf);
    free(w->chunks);
    free(w->rec_end);
    int scheme = w->scheme;
    memset(w, 0, sizeof *w);
    w->scheme = scheme;
}
