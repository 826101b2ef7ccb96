/* bencode.h — strict BEP 3 bencoding (issue #5; spec/p2p.md §3.1).
 *
 * Decoding.  zb_decode parses one value from a buffer into a tree that is a
 *   single allocation (free it with zb_free).  Strings are not copied: they
 *   point into the input, which must outlive the tree.  Strict: integers
 *   without leading zeros or "-0" and within int64; string lengths checked
 *   against the buffer; dict keys strings in strictly increasing raw-byte
 *   order (no duplicates) unless ZB_LENIENT_ORDER (then any order, the tree
 *   still lists them sorted; duplicates remain -EBADMSG); nesting depth at
 *   most ZB_MAX_DEPTH; at most ZB_MAX_ITEMS values in all.  Errors:
 *   -EBADMSG for malformed or truncated input (and caps exceeded), -ENOMEM.
 *   *consumed receives the bytes used, which may be fewer than len (the
 *   caller decides whether trailing bytes are an error).
 * Encoding.  A zb_buf grows as values are appended; the first allocation
 *   failure sticks in b->err (-ENOMEM) and later calls do nothing.  The
 *   caller writes dict keys in sorted order and frees b->p.
 */
#ifndef ZESTFS_BENCODE_H
#define ZESTFS_BENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZB_MAX_DEPTH 32
#define ZB_MAX_ITEMS (1u << 20)

/* zb_decode flags */
#define ZB_LENIENT_ORDER 1u /* accept dict keys in any order */

typedef enum { ZB_INT, ZB_STR, ZB_LIST, ZB_DICT } zb_type;

typedef struct zb_val {
    zb_type type;
    int64_t i;            /* ZB_INT */
    const uint8_t *s;     /* ZB_STR: points into the decoded buffer (not copied) */
    size_t len;           /* ZB_STR: bytes; ZB_LIST: items; ZB_DICT: pairs */
    struct zb_val *items; /* LIST: len items; DICT: 2*len, key,value,... keys sorted */
} zb_val;

int zb_decode(const uint8_t *buf, size_t len, unsigned flags, zb_val **out, size_t *consumed);
void zb_free(zb_val *v);

/* Dictionary lookups: NULL / false when absent, not a dict, or of another type. */
const zb_val *zb_get(const zb_val *dict, const char *key);
bool zb_get_int(const zb_val *dict, const char *key, int64_t *out);
bool zb_get_str(const zb_val *dict, const char *key, const uint8_t **s, size_t *len);

typedef struct zb_buf {
    uint8_t *p;
    size_t len, cap;
    int err;
} zb_buf;

void zb_int(zb_buf *b, int64_t v);
void zb_str(zb_buf *b, const void *s, size_t len);
void zb_cstr(zb_buf *b, const char *s);
void zb_list(zb_buf *b); /* begin */
void zb_dict(zb_buf *b); /* begin; caller writes keys in sorted order */
void zb_end(zb_buf *b);

#ifdef __cplusplus
}
#endif
#endif
