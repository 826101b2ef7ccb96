/* xet.h — byte-exact Xet: chunking, hashing, xorb and shard codecs,
 * reconstruction responses.
 *
 * Everything here is pure computation over caller-owned memory: no I/O, no
 * threads, no global state (apart from read-only tables).  Every function
 * that can fail returns 0 (or a count) on success and a negative errno value
 * on failure.  The error codes used for malformed input are:
 *
 *   -EBADMSG          truncated or structurally malformed input
 *   -EPROTONOSUPPORT  unknown version or compression scheme
 *   -EFBIG            a declared size above the protocol's caps
 *   -EILSEQ           payload that does not decode to its declared length
 *   -EINVAL           bad argument (e.g. a malformed hash string)
 *   -ENOMEM           allocation failure
 *
 * Facts and names follow ../shared/spec/xet.md (section numbers in comments).
 */
#ifndef ZESTFS_XET_H
#define ZESTFS_XET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants (§1.1, §3.1, §3.3) ------------------------------------- */
#define XET_HASH_LEN 32
#define XET_HASH_STR_LEN 64               /* without the NUL */
#define XET_CHUNK_TARGET 65536u
#define XET_CHUNK_MIN 8192u
#define XET_CHUNK_MAX 131072u
#define XET_CHUNK_HEADER_LEN 8u
#define XET_MAX_COMPRESSED_LEN 262144u     /* cap on a record's payload */
#define XET_XORB_MAX_BYTES 67108864u       /* serialized xorb cap, 64 MiB */
#define XET_XORB_MAX_CHUNKS 8192u

enum xet_scheme {
    XET_SCHEME_NONE = 0,
    XET_SCHEME_LZ4 = 1,
    XET_SCHEME_BG4_LZ4 = 2,
};

/* A hash: the 32 raw BLAKE3 output bytes. */
typedef struct xet_hash {
    uint8_t b[XET_HASH_LEN];
} xet_hash;

/* ---- hashes (§0, §2) ----------------------------------------------------- */

/* The Xet string form: each 8-byte group read as a LE u64, printed as 16
 * lowercase hex digits.  `out` receives 64 chars and a NUL. */
void xet_hash_to_string(const xet_hash *h, char out[XET_HASH_STR_LEN + 1]);
/* Inverse of xet_hash_to_string; accepts upper or lower case; exactly 64
 * hex digits (s need not be NUL-terminated after them). -EINVAL otherwise. */
int xet_hash_from_string(const char *s, xet_hash *h);
/* Plain hex of the raw bytes (for SHA-256 digests and debugging). */
void xet_hex(const uint8_t *p, size_t n, char *out /* 2n+1 */);
int xet_unhex(const char *s, size_t n /* bytes */, uint8_t *out);
bool xet_hash_is_zero(const xet_hash *h);
bool xet_hash_eq(const xet_hash *a, const xet_hash *b);

extern const xet_hash xet_zero_hash;

/* Chunk hash = BLAKE3_keyed(DATA_KEY, bytes). */
void xet_chunk_hash(const void *data, size_t len, xet_hash *out);
/* Keyed BLAKE3 of arbitrary data with a 32-byte key. */
void xet_keyed_hash(const uint8_t key[32], const void *data, size_t len, xet_hash *out);

/* Streaming aggregated Merkle tree (§2.2): push leaves in order, then final.
 * Memory is O(log n); suitable for files of any size. */
#define XET_MERKLE_LEVELS 48
#define XET_MERKLE_GROUP_MAX 9
typedef struct xet_merkle_node {
    xet_hash hash;
    uint64_t len;
} xet_merkle_node;
typedef struct xet_merkle {
    xet_merkle_node pending[XET_MERKLE_LEVELS][XET_MERKLE_GROUP_MAX + 1];
    uint8_t npending[XET_MERKLE_LEVELS];
    uint64_t total[XET_MERKLE_LEVELS]; /* nodes ever pushed into each level */
    uint64_t nleaves;
} xet_merkle;

void xet_merkle_init(xet_merkle *m);
void xet_merkle_add(xet_merkle *m, const xet_hash *h, uint64_t len);
/* Root over all leaves added (zero hash when none).  *total_len optional. */
void xet_merkle_final(xet_merkle *m, xet_hash *root, uint64_t *total_len);
/* One-shot root over an array (xorb hash when the leaves are a xorb's chunks). */
void xet_merkle_root(const xet_merkle_node *leaves, size_t n, xet_hash *root);

/* File hash from the Merkle root over the file's chunks: keyed(salt, root);
 * 32 zero bytes when nchunks == 0.  salt NULL = 32 zero bytes. */
void xet_file_hash_from_root(const xet_hash *root, uint64_t nchunks, const uint8_t *salt,
                             xet_hash *out);
/* Term verification hash: keyed(VERIFICATION_KEY, raw chunk hashes...). */
void xet_verification_hash(const xet_hash *chunk_hashes, size_t n, xet_hash *out);

/* ---- content-defined chunker (§1.4) ------------------------------------ */
typedef struct xet_chunker {
    uint64_t h;    /* rolling hash state */
    uint64_t size; /* bytes already in the current (unfinished) chunk */
} xet_chunker;

void xet_chunker_init(xet_chunker *c);
/* Scan `len` bytes that continue the current chunk.  Returns the number of
 * bytes consumed; *cut is set when a chunk boundary falls right after the
 * last consumed byte (the chunk is complete and the state restarts).  When
 * *cut is false all bytes were consumed and the chunk continues.  At end of
 * input, an unfinished chunk (c->size > 0) is the file's last chunk. */
size_t xet_chunker_next(xet_chunker *c, const uint8_t *data, size_t len, bool *cut);

/* Convenience: chunk a whole buffer.  Fills *bounds with a malloc'd array of
 * chunk END offsets; returns the count or -ENOMEM. */
long xet_chunk_buffer(const uint8_t *data, size_t len, uint64_t **bounds);

/* Everything `zestfs xet chunks` prints, computed streaming over a file. */
typedef struct xet_file_digest {
    xet_hash file_hash;
    xet_hash xorb_hash;         /* Merkle root over all chunks */
    xet_hash verification_hash; /* over all chunks */
    uint64_t size;
    uint64_t nchunks;
} xet_file_digest;

/* Streaming whole-file digest: chunker + chunk hashes + Merkle + file hash
 * + verification hash, fed with pieces of any size. */
typedef struct xet_file_hasher xet_file_hasher;
typedef void (*xet_chunk_cb)(void *ud, uint64_t index, uint64_t offset, uint32_t len,
                             const xet_hash *hash);
xet_file_hasher *xet_file_hasher_new(xet_chunk_cb cb, void *ud);
void xet_file_hasher_update(xet_file_hasher *fh, const void *data, size_t len);
void xet_file_hasher_final(xet_file_hasher *fh, xet_file_digest *out); /* frees fh */

/* ---- xorb records (§3) --------------------------------------------------- */
typedef struct xet_chunk_header {
    uint8_t version;
    uint8_t scheme;
    uint32_t clen; /* payload bytes after the 8-byte header */
    uint32_t ulen; /* decoded bytes */
} xet_chunk_header;

/* Parse and validate one 8-byte record header.  -EBADMSG if avail < 8,
 * -EPROTONOSUPPORT for version != 0 or unknown scheme, -EFBIG if
 * ulen > XET_CHUNK_MAX or clen > XET_MAX_COMPRESSED_LEN. */
int xet_chunk_header_parse(const uint8_t *p, size_t avail, xet_chunk_header *h);
void xet_chunk_header_write(const xet_chunk_header *h, uint8_t out[XET_CHUNK_HEADER_LEN]);

/* Decode one record's payload (exactly h->clen bytes) into out (h->ulen
 * bytes).  -EILSEQ if the payload does not decode to exactly ulen bytes. */
int xet_chunk_decode(const xet_chunk_header *h, const uint8_t *payload, uint8_t *out);

/* Encode one chunk as a full record (header + payload) into out, which must
 * hold xet_chunk_record_bound(len).  scheme < 0 picks the smallest of the
 * three forms (NONE unless a compressed one is strictly smaller).  Returns
 * the record length or a negative errno. */
size_t xet_chunk_record_bound(size_t len);
long xet_chunk_encode(const uint8_t *data, size_t len, int scheme, uint8_t *out);

/* BG4 (de)grouping (§3.2). */
void xet_bg4_group(const uint8_t *in, size_t n, uint8_t *out);
void xet_bg4_regroup(const uint8_t *in, size_t n, uint8_t *out);

/* One record located inside a buffer of consecutive records. */
typedef struct xet_record {
    uint64_t offset; /* of the header, from the start of the buffer */
    xet_chunk_header hdr;
} xet_record;

/* Walk the records of a buffer (a whole xorb, or a fetched run of records)
 * until its end or a footer ("XETBLOB").  Returns the number of records and a
 * malloc'd array in *recs (NULL when zero), or a negative errno.  Never reads
 * outside [buf, buf+len); a record that runs past len is -EBADMSG. */
long xet_xorb_index(const uint8_t *buf, size_t len, xet_record **recs);

/* Decode every record of buf into a malloc'd buffer; optionally returns
 * per-chunk hashes (malloc'd) and the xorb hash.  For `zestfs xet
 * xorb-decode` and tests. */
typedef struct xet_xorb_decoded {
    uint8_t *data;
    uint64_t len;
    size_t nchunks;
    uint32_t *chunk_len;     /* decoded length of each chunk */
    xet_hash *chunk_hash;    /* hash of each chunk */
    xet_hash xorb_hash;      /* Merkle root over the chunks */
} xet_xorb_decoded;
int xet_xorb_decode_all(const uint8_t *buf, size_t len, xet_xorb_decoded *out);
void xet_xorb_decoded_free(xet_xorb_decoded *d);

/* Xorb builder: append chunks, get the serialized bytes and the hash. */
typedef struct xet_xorb_writer {
    uint8_t *buf;
    size_t len, cap;
    size_t nchunks, chunks_cap;
    xet_merkle_node *chunks;  /* hash + decoded length of each chunk */
    uint32_t *rec_end;        /* end offset of each record in buf */
    uint64_t unpacked;        /* sum of decoded lengths */
    int scheme;               /* <0 auto */
} xet_xorb_writer;
void xet_xorb_writer_init(xet_xorb_writer *w, int scheme);
/* Append one chunk (hash optional: computed when NULL).  Returns the chunk's
 * index, or -E2BIG when it would not fit (64 MiB / 8192 chunks): then start
 * a new xorb. */
long xet_xorb_writer_add(xet_xorb_writer *w, const uint8_t *data, size_t len, const xet_hash *hash);
void xet_xorb_writer_hash(const xet_xorb_writer *w, xet_hash *out);
void xet_xorb_writer_reset(xet_xorb_writer *w);
void xet_xorb_writer_free(xet_xorb_writer *w);

/* ---- shards (§4) --------------------------------------------------------- */
#define XET_SHARD_HEADER_LEN 48u
#define XET_SHARD_FOOTER_LEN 200u
#define XET_SHARD_FLAG_VERIFICATION 0x80000000u
#define XET_SHARD_FLAG_METADATA_EXT 0x40000000u

typedef struct xet_term {
    xet_hash xorb;
    uint32_t flags;
    uint32_t unpacked_bytes;
    uint32_t chunk_start, chunk_end; /* [start, end) */
} xet_term;

typedef struct xet_shard_file {
    xet_hash file_hash;
    uint32_t flags;
    size_t nterms;
    xet_term *terms;
    xet_hash *verification; /* nterms entries, or NULL */
    bool has_sha256;
    uint8_t sha256[32];     /* plain digest byte order (as sha256sum prints) */
} xet_shard_file;

typedef struct xet_shard_chunk {
    xet_hash hash;
    uint32_t offset;         /* cumulative uncompressed offset in the xorb */
    uint32_t len;            /* uncompressed length */
    uint32_t flags;
} xet_shard_chunk;

typedef struct xet_shard_xorb {
    xet_hash hash;
    uint32_t flags;
    uint32_t bytes_in_xorb;  /* sum of uncompressed lengths */
    uint32_t bytes_on_disk;  /* serialized length (may be 0) */
    size_t nchunks;
    xet_shard_chunk *chunks;
} xet_shard_xorb;

typedef struct xet_shard {
    size_t nfiles;
    xet_shard_file *files;
    size_t nxorbs;
    xet_shard_xorb *xorbs;
    bool has_footer;
    uint64_t created;        /* footer timestamp, 0 if none */
    uint64_t key_expiry;
    uint8_t hmac_key[32];
} xet_shard;

/* Parse a shard (sections read until their bookends; lookup tables ignored).
 * Counts are capped against the buffer size before any allocation. */
int xet_shard_parse(const uint8_t *buf, size_t len, xet_shard *out);
void xet_shard_free(xet_shard *s);
/* Serialize (files, xorbs, bookends, optional 200-byte footer with the given
 * timestamp).  *out is malloc'd. */
int xet_shard_write(const xet_shard *s, bool footer, uint8_t **out, size_t *outlen);
/* Find a xorb / file in a parsed shard (linear; NULL if absent). */
const xet_shard_xorb *xet_shard_find_xorb(const xet_shard *s, const xet_hash *h);
const xet_shard_file *xet_shard_find_file(const xet_shard *s, const xet_hash *h);

/* ---- reconstruction (§5.3, §5.4) --------------------------------------- */
typedef struct xet_recon_term {
    xet_hash xorb;
    uint32_t chunk_start, chunk_end; /* [start, end) */
    uint32_t unpacked_length;
    struct xet_fetch *fetch;        /* descriptor that covers this term */
} xet_recon_term;

typedef struct xet_fetch {
    xet_hash xorb;
    uint32_t chunk_start, chunk_end; /* [start, end) */
    uint64_t byte_start, byte_end;   /* inclusive, offsets into the xorb */
    char *url;                       /* signed URL (shared by several in v2) */
} xet_fetch;

typedef struct xet_recon {
    uint64_t offset_into_first_range;
    size_t nterms;
    xet_recon_term *terms;
    size_t nfetch;
    xet_fetch *fetch;
    uint64_t base;       /* file offset where terms[0]'s decoded data begins:
                            set by the caller (range start − offset_into_first_range) */
} xet_recon;

/* Parse a v1 or v2 JSON body (shape detected).  Every term is linked to a
 * descriptor; a term without one is -EBADMSG.  `range_start` is the S of the
 * `Range: bytes=S-E` that was sent (0 without Range): r->base is derived. */
int xet_recon_parse(const char *json, size_t len, uint64_t range_start, xet_recon *out);
void xet_recon_free(xet_recon *r);

/* One piece of a mapped byte range: the caller fetches `term->fetch`, decodes
 * chunks [term->chunk_start, term->chunk_end), skips `skip` bytes of that
 * term's decoded output and copies `take` bytes to out_off of its buffer. */
typedef struct xet_piece {
    size_t term;        /* index into r->terms */
    uint64_t skip;
    uint64_t take;
    uint64_t out_off;
} xet_piece;

/* Map file bytes [off, off+len) to pieces.  Returns the number of pieces
 * written to *pieces (malloc'd), or -ERANGE when the range is not covered by
 * the reconstruction's terms. */
long xet_recon_map(const xet_recon *r, uint64_t off, uint64_t len, xet_piece **pieces);

/* Cut bytes out of a fetched descriptor.  `body` is the CDN's answer for
 * f's byte range: exactly body_len == byte_end − byte_start + 1 bytes of
 * whole chunk records, chunks f->chunk_start .. f->chunk_end − 1 (§5.4).
 * Decodes chunks [chunk_start, chunk_end) (a sub-range of f's) as needed and
 * copies `take` bytes, starting `skip` bytes into their decoded output, to
 * out.  Only the chunks that overlap [skip, skip+take) are decompressed.
 * -EINVAL for a chunk range outside f's (or take > 0 with out NULL);
 * -EBADMSG when the body is not exactly f's records (length other than f's
 * range, a record running past the end, more or fewer records than f's
 * chunks, a footer); -EILSEQ when skip+take exceeds the chunks' decoded
 * length; header and payload errors of xet_chunk_header_parse and
 * xet_chunk_decode (-EPROTONOSUPPORT, -EFBIG, -EILSEQ) pass through.
 * take == 0 only validates the body. */
int xet_fetch_extract(const xet_fetch *f, const uint8_t *body, size_t body_len,
                      uint32_t chunk_start, uint32_t chunk_end, uint64_t skip, uint64_t take,
                      uint8_t *out);
/* The same for one term (t->fetch's body, the term's chunks), which also
 * checks that the term's chunks decode to t->unpacked_length bytes in all
 * (-EILSEQ otherwise): use it with the pieces of xet_recon_map. */
int xet_recon_term_extract(const xet_recon_term *t, const uint8_t *body, size_t body_len,
                           uint64_t skip, uint64_t take, uint8_t *out);

/* ---- byte order and hex digits (shared by every library) ---------------- */

/* Xet formats and the cache are little-endian; the peer wire and UDP
 * trackers big-endian. */
static inline uint32_t xet_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t xet_le64(const uint8_t *p)
{
    return (uint64_t)xet_le32(p) | (uint64_t)xet_le32(p + 4) << 32;
}
static inline void xet_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void xet_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t xet_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t xet_be64(const uint8_t *p)
{
    return (uint64_t)xet_be32(p) << 32 | xet_be32(p + 4);
}
static inline void xet_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}
static inline void xet_put_be64(uint8_t *p, uint64_t v)
{
    xet_put_be32(p, (uint32_t)(v >> 32)), xet_put_be32(p + 4, (uint32_t)v);
}
/* The value of hex digit c (either case), -1 if c is not one. */
int xet_hexval(int c);

#ifdef __cplusplus
}
#endif
#endif
