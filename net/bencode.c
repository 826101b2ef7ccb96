/* bencode.c — strict BEP 3 bencoding (see bencode.h).
 *
 * Decoding is two passes over the input.  The first validates everything
 * (syntax, integer form, string lengths, key order, depth, value count) and
 * counts the values; the second fills one array of that many zb_val, the
 * root first, each container's items as one contiguous block placed right
 * after it is known how many there are (a cheap skip over already validated
 * bytes).  So the tree is one allocation.  The second pass fails only in
 * lenient mode, for a duplicate key found once a dictionary is sorted; that
 * result is passed up from every depth (a nested duplicate fails the whole
 * value, issue #19). */
#include "bencode.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- pass 1: validate and count ------------------------------------------ */

/* Parse a non-negative decimal length at *pos up to the byte `term`. */
static int scan_len(const uint8_t *b, size_t len, size_t *pos, size_t *out)
{
    size_t p = *pos, v = 0, nd = 0;
    while (p < len && b[p] >= '0' && b[p] <= '9') {
        if (nd == 1 && b[*pos] == '0')
            return -EBADMSG; /* leading zero */
        if (v > (SIZE_MAX - 9) / 10)
            return -EBADMSG;
        v = v * 10 + (size_t)(b[p] - '0');
        p++, nd++;
    }
    if (nd == 0 || p >= len || b[p] != ':')
        return -EBADMSG;
    p++;
    if (v > len - p)
        return -EBADMSG;
    *pos = p;
    *out = v;
    return 0;
}

static int scan_int(const uint8_t *b, size_t len, size_t *pos, int64_t *out)
{
    size_t p = *pos + 1; /* after 'i' */
    bool neg = false;
    if (p < len && b[p] == '-')
        neg = true, p++;
    size_t start = p;
    uint64_t v = 0;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (p < len && b[p] >= '0' && b[p] <= '9') {
        uint64_t d = (uint64_t)(b[p] - '0');
        if (v > (lim - d) / 10)
            return -EBADMSG;
        v = v * 10 + d;
        p++;
    }
    if (p == start || p >= len || b[p] != 'e')
        return -EBADMSG;
    if (b[start] == '0' && (p - start > 1 || neg))
        return -EBADMSG; /* leading zero or -0 */
    *pos = p + 1;
    if (out)
        *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static int scan(const uint8_t *b, size_t len, size_t *pos, int depth, size_t *count,
                unsigned flags)
{
    if (*pos >= len)
        return -EBADMSG;
    if (++*count > ZB_MAX_ITEMS)
        return -EBADMSG;
    uint8_t c = b[*pos];
    if (c == 'i')
        return scan_int(b, len, pos, NULL);
    if (c >= '0' && c <= '9') {
        size_t n;
        int r = scan_len(b, len, pos, &n);
        if (r)
            return r;
        *pos += n;
        return 0;
    }
    if (c != 'l' && c != 'd')
        return -EBADMSG;
    if (depth >= ZB_MAX_DEPTH)
        return -EBADMSG;
    (*pos)++;
    const uint8_t *prev = NULL;
    size_t prevlen = 0;
    for (;;) {
        if (*pos >= len)
            return -EBADMSG;
        if (b[*pos] == 'e') {
            (*pos)++;
            return 0;
        }
        if (c == 'd') {
            if (b[*pos] < '0' || b[*pos] > '9')
                return -EBADMSG; /* keys are strings */
            size_t kl;
            int r = scan_len(b, len, pos, &kl);
            if (r)
                return r;
            const uint8_t *k = b + *pos;
            *pos += kl;
            if (++*count > ZB_MAX_ITEMS)
                return -EBADMSG;
            if (prev && !(flags & ZB_LENIENT_ORDER) && key_cmp(prev, prevlen, k, kl) >= 0)
                return -EBADMSG;
            prev = k, prevlen = kl;
        }
        int r = scan(b, len, pos, depth + 1, count, flags);
        if (r)
            return r;
    }
}

/* ---- pass 2: build (input known valid) ----------------------------------- */

static void skip(const uint8_t *b, size_t len, size_t *pos)
{
    uint8_t c = b[*pos];
    if (c == 'i') {
        scan_int(b, len, pos, NULL);
    } else if (c >= '0' && c <= '9') {
        size_t n;
        scan_len(b, len, pos, &n);
        *pos += n;
    } else {
        (*pos)++;
        while (b[*pos] != 'e')
            skip(b, len, pos);
        (*pos)++;
    }
}

typedef struct builder {
    const uint8_t *b;
    size_t len;
    zb_val *pool;
    size_t used;
} builder;

static int pair_cmp(const void *a, const void *b)
{
    const zb_val *x = a, *y = b;
    return key_cmp(x->s, x->len, y->s, y->len);
}

static int build(builder *bd, size_t *pos, zb_val *v, unsigned flags)
{
    const uint8_t *b = bd->b;
    uint8_t c = b[*pos];
    memset(v, 0, sizeof *v);
    if (c == 'i') {
        v->type = ZB_INT;
        scan_int(b, bd->len, pos, &v->i);
        return 0;
    }
    if (c >= '0' && c <= '9') {
        v->type = ZB_STR;
        scan_len(b, bd->len, pos, &v->len);
        v->s = b + *pos;
        *pos += v->len;
        return 0;
    }
    v->type = c == 'l' ? ZB_LIST : ZB_DICT;
    size_t p = *pos + 1, n = 0;
    while (b[p] != 'e')
        skip(b, bd->len, &p), n++;
    v->len = c == 'l' ? n : n / 2;
    v->items = n ? bd->pool + bd->used : NULL;
    bd->used += n;
    (*pos)++;
    for (size_t k = 0; k < n; k++) {
        int r = build(bd, pos, &v->items[k], flags);
        if (r)
            return r; /* a duplicate key at any depth fails the whole value */
    }
    (*pos)++;
    if (c == 'd' && (flags & ZB_LENIENT_ORDER) && v->len > 1) {
        qsort(v->items, v->len, 2 * sizeof(zb_val), pair_cmp);
        for (size_t k = 1; k < v->len; k++)
            if (!key_cmp(v->items[2 * k - 2].s, v->items[2 * k - 2].len, v->items[2 * k].s,
                         v->items[2 * k].len))
                return -EBADMSG; /* duplicate key */
    }
    return 0;
}

int zb_decode(const uint8_t *buf, size_t len, unsigned flags, zb_val **out, size_t *consumed)
{
    *out = NULL;
    size_t pos = 0, count = 0;
    if (!buf && len)
        return -EINVAL;
    int r = scan(buf, len, &pos, 0, &count, flags);
    if (r)
        return r;
    zb_val *pool = calloc(count, sizeof *pool);
    if (!pool)
        return -ENOMEM;
    builder bd = {buf, len, pool, 1};
    size_t p = 0;
    r = build(&bd, &p, &pool[0], flags);
    if (r) {
        free(pool);
        return r;
    }
    *out = pool;
    if (consumed)
        *consumed = pos;
    return 0;
}

void zb_free(zb_val *v)
{
    free(v);
}

/* ---- lookups ---------------------------------------------------------------- */

const zb_val *zb_get(const zb_val *d, const char *key)
{
    if (!d || d->type != ZB_DICT)
        return NULL;
    size_t kl = strlen(key), lo = 0, hi = d->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const zb_val *k = &d->items[2 * mid];
        int c = key_cmp(k->s, k->len, (const uint8_t *)key, kl);
        if (c == 0)
            return &d->items[2 * mid + 1];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool zb_get_int(const zb_val *d, const char *key, int64_t *out)
{
    const zb_val *v = zb_get(d, key);
    if (!v || v->type != ZB_INT)
        return false;
    *out = v->i;
    return true;
}

bool zb_get_str(const zb_val *d, const char *key, const uint8_t **s, size_t *len)
{
    const zb_val *v = zb_get(d, key);
    if (!v || v->type != ZB_STR)
        return false;
    *s = v->s;
    *len = v->len;
    return true;
}

/* ---- encoder ---------------------------------------------------------------- */

static void put(zb_buf *b, const void *p, size_t n)
{
    if (b->err)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->err = -ENOMEM;
                return;
            }
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->err = -ENOMEM;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_dec(zb_buf *b, uint64_t v, bool neg, char end)
{
    char t[24];
    int i = (int)sizeof t;
    t[--i] = end;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        t[--i] = '-';
    put(b, t + i, sizeof t - (size_t)i);
}

void zb_int(zb_buf *b, int64_t v)
{
    put(b, "i", 1);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    put_dec(b, u, v < 0, 'e');
}

void zb_str(zb_buf *b, const void *s, size_t len)
{
    put_dec(b, len, false, ':');
    put(b, s, len);
}

void zb_cstr(zb_buf *b, const char *s)
{
    zb_str(b, s, strlen(s));
}

void zb_list(zb_buf *b)
{
    put(b, "l", 1);
}

void zb_dict(zb_buf *b)
{
    put(b, "d", 1);
}

void zb_end(zb_buf *b)
{
    put(b, "e", 1);
}
