/* shard.c — Xet MDB shards (spec/xet.md §4): parse and write the header,
 * the file info section (file blocks: terms, verification entries, SHA-256
 * extension), the xorb info section (xorb blocks: chunk entries) and the
 * optional 200-byte footer.  Lookup tables are neither read nor written.
 *
 * Every record of both sections is 48 bytes; each section ends with a
 * bookend record (32 × 0xFF, then 16 reserved bytes).  Sections are read
 * until their bookends, never through the footer's lookup offsets (the hub
 * writes those as 0, §7 trap 19).
 *
 * Parsing is hostile-input safe: every count is checked against the bytes
 * that remain before anything is allocated, so a shard of n bytes never
 * allocates more than O(n).  Errors: -EBADMSG for a wrong tag, truncation,
 * a missing bookend or inconsistent fields; -EPROTONOSUPPORT for a shard
 * or footer version this code does not know; -ENOMEM. */
#include "xet.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REC 48u /* size of every section record */

static const uint8_t SHARD_TAG[32] = {
    0x48, 0x46, 0x52, 0x65, 0x70, 0x6f, 0x4d, 0x65, 0x74, 0x61, 0x44, 0x61, 0x74, 0x61, 0x00, 0x55,
    0x69, 0x67, 0x45, 0x6a, 0x7b, 0x81, 0x57, 0x83, 0xa5, 0xbd, 0xd9, 0x5c, 0xcd, 0xd1, 0x4a, 0xa9};
#define SHARD_VERSION 2u
#define FOOTER_VERSION 1u

/* Footer field offsets (§4.5). */
enum {
    FT_VERSION = 0,
    FT_FILE_INFO = 8,
    FT_XORB_INFO = 16,
    FT_HMAC_KEY = 72,
    FT_CREATED = 104,
    FT_KEY_EXPIRY = 112,
    FT_STORED_ON_DISK = 168,
    FT_MATERIALIZED = 176,
    FT_STORED = 184,
    FT_FOOTER_OFFSET = 192,
};

/* ---- byte order (the plain readers and writers are in xet.h) ------------- */

/* The SHA-256 field is stored with each 8-byte group reversed (§4.3); the
 * same transform converts in both directions. */
static void swap_groups(const uint8_t in[32], uint8_t out[32])
{
    for (int g = 0; g < 4; g++)
        for (int i = 0; i < 8; i++)
            out[g * 8 + i] = in[g * 8 + 7 - i];
}

static bool is_bookend(const uint8_t *rec)
{
    for (int i = 0; i < 32; i++)
        if (rec[i] != 0xFF)
            return false;
    return true;
}

static void write_bookend(uint8_t *rec)
{
    memset(rec, 0xFF, 32);
    memset(rec + 32, 0, REC - 32);
}

/* ---- parsing ------------------------------------------------------------ */

/* Append one zeroed element to a growing array; returns it or NULL. */
static void *push(void **arr, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 8;
        void *a = realloc(*arr, c * size);
        if (!a)
            return NULL;
        *arr = a;
        *cap = c;
    }
    void *e = (uint8_t *)*arr + (*n)++ * size;
    memset(e, 0, size);
    return e;
}

/* One file block at p (header record included), with `avail` bytes up to
 * the end of the sections.  Returns the block length or a negative errno. */
static long parse_file(const uint8_t *p, size_t avail, xet_shard_file *f)
{
    memcpy(f->file_hash.b, p, 32);
    f->flags = xet_le32(p + 32);
    uint64_t n = xet_le32(p + 36);
    bool ver = f->flags & XET_SHARD_FLAG_VERIFICATION;
    bool ext = f->flags & XET_SHARD_FLAG_METADATA_EXT;
    uint64_t need = REC * (1 + n * (ver ? 2 : 1) + (ext ? 1 : 0)); /* < 2^40 */
    if (need > avail)
        return -EBADMSG;
    const uint8_t *q = p + REC;
    if (n) {
        f->terms = calloc((size_t)n, sizeof *f->terms);
        if (!f->terms)
            return -ENOMEM;
    }
    f->nterms = (size_t)n;
    for (size_t i = 0; i < n; i++, q += REC) {
        xet_term *t = &f->terms[i];
        memcpy(t->xorb.b, q, 32);
        t->flags = xet_le32(q + 32);
        t->unpacked_bytes = xet_le32(q + 36);
        t->chunk_start = xet_le32(q + 40);
        t->chunk_end = xet_le32(q + 44);
        if (t->chunk_start >= t->chunk_end)
            return -EBADMSG;
    }
    if (ver) {
        if (n) {
            f->verification = calloc((size_t)n, sizeof *f->verification);
            if (!f->verification)
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++, q += REC)
            memcpy(f->verification[i].b, q, 32);
    }
    if (ext) {
        f->has_sha256 = true;
        swap_groups(q, f->sha256);
        q += REC;
    }
    return (long)(q - p);
}

/* One xorb block at p; as parse_file. */
static long parse_xorb(const uint8_t *p, size_t avail, xet_shard_xorb *x)
{
    memcpy(x->hash.b, p, 32);
    x->flags = xet_le32(p + 32);
    uint64_t n = xet_le32(p + 36);
    x->bytes_in_xorb = xet_le32(p + 40);
    x->bytes_on_disk = xet_le32(p + 44);
    if (REC * (1 + n) > avail)
        return -EBADMSG;
    if (n) {
        x->chunks = calloc((size_t)n, sizeof *x->chunks);
        if (!x->chunks)
            return -ENOMEM;
    }
    x->nchunks = (size_t)n;
    const uint8_t *q = p + REC;
    for (size_t i = 0; i < n; i++, q += REC) {
        xet_shard_chunk *c = &x->chunks[i];
        memcpy(c->hash.b, q, 32);
        c->offset = xet_le32(q + 32);
        c->len = xet_le32(q + 36);
        c->flags = xet_le32(q + 40);
    }
    return (long)(q - p);
}

int xet_shard_parse(const uint8_t *buf, size_t len, xet_shard *out)
{
    memset(out, 0, sizeof *out);
    if (len < XET_SHARD_HEADER_LEN || memcmp(buf, SHARD_TAG, sizeof SHARD_TAG) != 0)
        return -EBADMSG;
    if (xet_le64(buf + 32) != SHARD_VERSION)
        return -EPROTONOSUPPORT;
    uint64_t footer_size = xet_le64(buf + 40);
    if (footer_size != 0 && footer_size != XET_SHARD_FOOTER_LEN)
        return -EBADMSG;
    if (len < XET_SHARD_HEADER_LEN + footer_size)
        return -EBADMSG;
    size_t end = len - (size_t)footer_size; /* the sections lie in [48, end) */
    size_t off = XET_SHARD_HEADER_LEN, fcap = 0, xcap = 0;
    int err = 0;

    /* file info section */
    for (;;) {
        if (end - off < REC) {
            err = -EBADMSG;
            goto fail;
        }
        if (is_bookend(buf + off)) {
            off += REC;
            break;
        }
        xet_shard_file *f = push((void **)&out->files, &out->nfiles, &fcap, sizeof *f);
        if (!f) {
            err = -ENOMEM;
            goto fail;
        }
        long n = parse_file(buf + off, end - off, f);
        if (n < 0) {
            err = (int)n;
            goto fail;
        }
        off += (size_t)n;
    }

    /* xorb info section */
    for (;;) {
        if (end - off < REC) {
            err = -EBADMSG;
            goto fail;
        }
        if (is_bookend(buf + off)) {
            off += REC;
            break;
        }
        xet_shard_xorb *x = push((void **)&out->xorbs, &out->nxorbs, &xcap, sizeof *x);
        if (!x) {
            err = -ENOMEM;
            goto fail;
        }
        long n = parse_xorb(buf + off, end - off, x);
        if (n < 0) {
            err = (int)n;
            goto fail;
        }
        off += (size_t)n;
    }

    /* footer: only the fields a reader needs (timestamp, HMAC key) */
    if (footer_size) {
        const uint8_t *ft = buf + end;
        if (xet_le64(ft + FT_VERSION) != FOOTER_VERSION) {
            err = -EPROTONOSUPPORT;
            goto fail;
        }
        out->has_footer = true;
        out->created = xet_le64(ft + FT_CREATED);
        out->key_expiry = xet_le64(ft + FT_KEY_EXPIRY);
        memcpy(out->hmac_key, ft + FT_HMAC_KEY, 32);
    }
    return 0;
fail:
    xet_shard_free(out);
    return err;
}

void xet_shard_free(xet_shard *s)
{
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].terms);
        free(s->files[i].verification);
    }
    free(s->files);
    for (size_t i = 0; i < s->nxorbs; i++)
        free(s->xorbs[i].chunks);
    free(s->xorbs);
    memset(s, 0, sizeof *s);
}

/* ---- writing ------------------------------------------------------------ */

/* The flags written for a file: the verification and metadata-extension
 * bits follow what the struct actually carries. */
static uint32_t file_flags(const xet_shard_file *f)
{
    uint32_t fl = f->flags & ~(XET_SHARD_FLAG_VERIFICATION | XET_SHARD_FLAG_METADATA_EXT);
    if (f->verification)
        fl |= XET_SHARD_FLAG_VERIFICATION;
    if (f->has_sha256)
        fl |= XET_SHARD_FLAG_METADATA_EXT;
    return fl;
}

int xet_shard_write(const xet_shard *s, bool footer, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    /* size first: every record is 48 bytes */
    size_t nrec = 2; /* the two bookends */
    for (size_t i = 0; i < s->nfiles; i++) {
        const xet_shard_file *f = &s->files[i];
        if (f->nterms > UINT32_MAX)
            return -EINVAL;
        nrec += 1 + f->nterms * (f->verification ? 2 : 1) + (f->has_sha256 ? 1 : 0);
    }
    for (size_t i = 0; i < s->nxorbs; i++) {
        if (s->xorbs[i].nchunks > UINT32_MAX)
            return -EINVAL;
        nrec += 1 + s->xorbs[i].nchunks;
    }
    size_t total = XET_SHARD_HEADER_LEN + nrec * REC + (footer ? XET_SHARD_FOOTER_LEN : 0);
    uint8_t *buf = calloc(1, total);
    if (!buf)
        return -ENOMEM;

    memcpy(buf, SHARD_TAG, sizeof SHARD_TAG);
    xet_put_le64(buf + 32, SHARD_VERSION);
    xet_put_le64(buf + 40, footer ? XET_SHARD_FOOTER_LEN : 0);
    uint8_t *p = buf + XET_SHARD_HEADER_LEN;

    for (size_t i = 0; i < s->nfiles; i++) {
        const xet_shard_file *f = &s->files[i];
        memcpy(p, f->file_hash.b, 32);
        xet_put_le32(p + 32, file_flags(f));
        xet_put_le32(p + 36, (uint32_t)f->nterms);
        p += REC;
        for (size_t k = 0; k < f->nterms; k++, p += REC) {
            const xet_term *t = &f->terms[k];
            memcpy(p, t->xorb.b, 32);
            xet_put_le32(p + 32, t->flags);
            xet_put_le32(p + 36, t->unpacked_bytes);
            xet_put_le32(p + 40, t->chunk_start);
            xet_put_le32(p + 44, t->chunk_end);
        }
        if (f->verification)
            for (size_t k = 0; k < f->nterms; k++, p += REC)
                memcpy(p, f->verification[k].b, 32);
        if (f->has_sha256) {
            swap_groups(f->sha256, p);
            p += REC;
        }
    }
    write_bookend(p);
    p += REC;

    size_t xorb_info = (size_t)(p - buf);
    uint64_t on_disk = 0, in_xorbs = 0;
    for (size_t i = 0; i < s->nxorbs; i++) {
        const xet_shard_xorb *x = &s->xorbs[i];
        memcpy(p, x->hash.b, 32);
        xet_put_le32(p + 32, x->flags);
        xet_put_le32(p + 36, (uint32_t)x->nchunks);
        xet_put_le32(p + 40, x->bytes_in_xorb);
        xet_put_le32(p + 44, x->bytes_on_disk);
        p += REC;
        for (size_t k = 0; k < x->nchunks; k++, p += REC) {
            const xet_shard_chunk *c = &x->chunks[k];
            memcpy(p, c->hash.b, 32);
            xet_put_le32(p + 32, c->offset);
            xet_put_le32(p + 36, c->len);
            xet_put_le32(p + 40, c->flags);
        }
        on_disk += x->bytes_on_disk;
        in_xorbs += x->bytes_in_xorb;
    }
    write_bookend(p);
    p += REC;

    if (footer) {
        /* No lookup tables (offsets and counts 0), as @huggingface/hub
         * writes it; materialized_bytes is left 0 like the hub does. */
        uint8_t *ft = p;
        xet_put_le64(ft + FT_VERSION, FOOTER_VERSION);
        xet_put_le64(ft + FT_FILE_INFO, XET_SHARD_HEADER_LEN);
        xet_put_le64(ft + FT_XORB_INFO, xorb_info);
        memcpy(ft + FT_HMAC_KEY, s->hmac_key, 32);
        xet_put_le64(ft + FT_CREATED, s->created);
        xet_put_le64(ft + FT_KEY_EXPIRY, s->key_expiry);
        xet_put_le64(ft + FT_STORED_ON_DISK, on_disk);
        xet_put_le64(ft + FT_MATERIALIZED, 0);
        xet_put_le64(ft + FT_STORED, in_xorbs);
        xet_put_le64(ft + FT_FOOTER_OFFSET, (uint64_t)(p - buf));
    }
    *out = buf;
    *outlen = total;
    return 0;
}

/* ---- lookups ------------------------------------------------------------ */

const xet_shard_xorb *xet_shard_find_xorb(const xet_shard *s, const xet_hash *h)
{
    for (size_t i = 0; i < s->nxorbs; i++)
        if (xet_hash_eq(&s->xorbs[i].hash, h))
            return &s->xorbs[i];
    return NULL;
}

const xet_shard_file *xet_shard_find_file(const xet_shard *s, const xet_hash *h)
{
    for (size_t i = 0; i < s->nfiles; i++)
        if (xet_hash_eq(&s->files[i].file_hash, h))
            return &s->files[i];
    return NULL;
}
