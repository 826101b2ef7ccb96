/* recon.c — reconstruction responses (spec/xet.md §5.3–§5.5, traps 11–13):
 * parse the v2 (`xorbs`) and v1 (`fetch_info`) JSON shapes into plain
 * structs, link every term to the fetch descriptor that covers it, map file
 * byte ranges onto terms, and cut a term's bytes out of a fetched run of
 * chunk records.
 *
 * The JSON is hostile input: every field is type-checked, numbers must be
 * non-negative integers that fit their field (and, for u64 fields, that a
 * double holds exactly), and anything else is -EBADMSG. */
#include "xet.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* Largest integer every double below it represents exactly (2^53 − 1). */
#define EXACT_U64_MAX 9007199254740991ULL

/* ---- JSON field helpers ------------------------------------------------- */

static const cJSON *field(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* A JSON number that is a non-negative integer <= max.  cJSON keeps only the
 * double value, so a fraction too small for a double to hold (1.0000000000000001)
 * cannot be told from an integer; everything else (1.5, -1, -0, 1e999) is
 * rejected. */
static int num_u64(const cJSON *item, uint64_t max, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return -EBADMSG;
    double d = item->valuedouble;
    if (!isfinite(d) || signbit(d) || d != floor(d) || d > (double)max)
        return -EBADMSG;
    *out = (uint64_t)d;
    return 0;
}

static int get_u64(const cJSON *obj, const char *key, uint64_t max, uint64_t *out)
{
    return num_u64(field(obj, key), max, out);
}

/* {"start": a, "end": b} with a, b <= max. */
static int get_range(const cJSON *obj, const char *key, uint64_t max, uint64_t *start,
                     uint64_t *end)
{
    const cJSON *r = field(obj, key);
    if (!cJSON_IsObject(r))
        return -EBADMSG;
    if (get_u64(r, "start", max, start) < 0 || get_u64(r, "end", max, end) < 0)
        return -EBADMSG;
    return 0;
}

/* A chunk range [start, end) of one xorb: non-empty, within the chunk cap. */
static int get_chunk_range(const cJSON *obj, const char *key, uint32_t *start, uint32_t *end)
{
    uint64_t s, e;
    if (get_range(obj, key, XET_XORB_MAX_CHUNKS, &s, &e) < 0 || s >= e)
        return -EBADMSG;
    *start = (uint32_t)s;
    *end = (uint32_t)e;
    return 0;
}

/* Exactly 64 hex digits. */
static int parse_hash(const char *s, xet_hash *h)
{
    if (!s || strlen(s) != XET_HASH_STR_LEN || xet_hash_from_string(s, h) < 0)
        return -EBADMSG;
    return 0;
}

/* Fill a descriptor's byte range [bs, be] (inclusive, trap 11) and check it
 * is plausible for its chunk count: at least one header per chunk, at most
 * one maximal record per chunk, inside a maximal xorb. */
static int set_bytes(xet_fetch *f, uint64_t bs, uint64_t be)
{
    if (bs > be || be >= XET_XORB_MAX_BYTES)
        return -EBADMSG;
    uint64_t n = f->chunk_end - f->chunk_start, len = be - bs + 1;
    if (len < n * XET_CHUNK_HEADER_LEN ||
        len > n * (uint64_t)(XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN))
        return -EBADMSG;
    f->byte_start = bs;
    f->byte_end = be;
    return 0;
}

static bool valid_url(const cJSON *item)
{
    return cJSON_IsString(item) && item->valuestring && item->valuestring[0];
}

/* ---- descriptors ------------------------------------------------------------ */

/* Count the descriptors of a v2 `xorbs` or v1 `fetch_info` object, checking
 * the outer shape (object of arrays of objects; v2 entries' `ranges` arrays). */
static int count_fetch(const cJSON *map, bool v2, size_t *count)
{
    size_t n = 0;
    if (!cJSON_IsObject(map))
        return -EBADMSG;
    for (const cJSON *x = map->child; x; x = x->next) {
        if (!cJSON_IsArray(x))
            return -EBADMSG;
        for (const cJSON *e = x->child; e; e = e->next) {
            if (!cJSON_IsObject(e))
                return -EBADMSG;
            if (!v2) {
                n++;
                continue;
            }
            const cJSON *ranges = field(e, "ranges");
            if (!cJSON_IsArray(ranges))
                return -EBADMSG;
            for (const cJSON *rg = ranges->child; rg; rg = rg->next)
                n++;
        }
    }
    *count = n;
    return 0;
}

/* Fill r->fetch from the map (r->fetch has room for the counted number).
 * r->nfetch grows as entries are completed, so xet_recon_free can clean up
 * after a failure at any point. */
static int fill_fetch(const cJSON *map, bool v2, xet_recon *r)
{
    for (const cJSON *x = map->child; x; x = x->next) {
        xet_hash xh;
        if (parse_hash(x->string, &xh) < 0)
            return -EBADMSG;
        for (const cJSON *e = x->child; e; e = e->next) {
            if (!v2) {
                xet_fetch *f = &r->fetch[r->nfetch];
                uint64_t bs, be;
                f->xorb = xh;
                f->url = NULL;
                if (get_chunk_range(e, "range", &f->chunk_start, &f->chunk_end) < 0 ||
                    get_range(e, "url_range", EXACT_U64_MAX, &bs, &be) < 0 ||
                    set_bytes(f, bs, be) < 0)
                    return -EBADMSG;
                const cJSON *u = field(e, "url");
                if (!valid_url(u))
                    return -EBADMSG;
                if (!(f->url = strdup(u->valuestring)))
                    return -ENOMEM;
                r->nfetch++;
                continue;
            }
            /* v2: one URL shared by the consecutive descriptors of its
             * entry; xet_recon_free frees it once (at the first of them). */
            const cJSON *u = field(e, "url");
            if (!valid_url(u))
                return -EBADMSG;
            char *url = NULL;
            for (const cJSON *rg = field(e, "ranges")->child; rg; rg = rg->next) {
                xet_fetch *f = &r->fetch[r->nfetch];
                uint64_t bs, be;
                if (!cJSON_IsObject(rg))
                    return -EBADMSG;
                f->xorb = xh;
                f->url = NULL;
                if (get_chunk_range(rg, "chunks", &f->chunk_start, &f->chunk_end) < 0 ||
                    get_range(rg, "bytes", EXACT_U64_MAX, &bs, &be) < 0 ||
                    set_bytes(f, bs, be) < 0)
                    return -EBADMSG;
                if (!url && !(url = strdup(u->valuestring)))
                    return -ENOMEM;
                f->url = url; /* owned from here on: counted in r->nfetch */
                r->nfetch++;
            }
        }
    }
    return 0;
}

/* ---- linking terms to descriptors -------------------------------------------- */

static int cmp_fetch(const void *a, const void *b)
{
    const xet_fetch *x = *(const xet_fetch *const *)a, *y = *(const xet_fetch *const *)b;
    int c = memcmp(x->xorb.b, y->xorb.b, XET_HASH_LEN);
    if (c)
        return c;
    return (x->chunk_start > y->chunk_start) - (x->chunk_start < y->chunk_start);
}

/* Point every term at a descriptor of its xorb with
 * chunks.start <= term.start && term.end <= chunks.end (§5.3). */
static int link_terms(xet_recon *r)
{
    if (r->nterms == 0)
        return 0;
    if (r->nfetch == 0)
        return -EBADMSG;
    xet_fetch **idx = malloc(r->nfetch * sizeof *idx);
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < r->nfetch; i++)
        idx[i] = &r->fetch[i];
    qsort(idx, r->nfetch, sizeof *idx, cmp_fetch);

    int rc = 0;
    for (size_t t = 0; t < r->nterms && rc == 0; t++) {
        xet_recon_term *term = &r->terms[t];
        /* last descriptor ordered <= (xorb, term.start) */
        size_t lo = 0, hi = r->nfetch;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = memcmp(idx[mid]->xorb.b, term->xorb.b, XET_HASH_LEN);
            if (c < 0 || (c == 0 && idx[mid]->chunk_start <= term->chunk_start))
                lo = mid + 1;
            else
                hi = mid;
        }
        term->fetch = NULL;
        /* Descriptors should not overlap, so the first candidate is the one;
         * walk back over overlapping ones anyway rather than fail. */
        for (size_t k = lo; k-- > 0;) {
            const xet_fetch *f = idx[k];
            if (!xet_hash_eq(&f->xorb, &term->xorb))
                break;
            if (term->chunk_end <= f->chunk_end) {
                term->fetch = idx[k];
                break;
            }
        }
        if (!term->fetch)
            rc = -EBADMSG;
    }
    free(idx);
    return rc;
}

/* ---- parse ---------------------------------------------------------------- */

static int parse_terms(const cJSON *terms, xet_recon *r)
{
    if (!cJSON_IsArray(terms))
        return -EBADMSG;
    size_t n = 0;
    for (const cJSON *t = terms->child; t; t = t->next)
        n++;
    if (n == 0)
        return 0;
    r->terms = calloc(n, sizeof *r->terms);
    if (!r->terms)
        return -ENOMEM;
    r->nterms = n;
    size_t i = 0;
    for (const cJSON *t = terms->child; t; t = t->next, i++) {
        xet_recon_term *term = &r->terms[i];
        uint64_t ul;
        if (!cJSON_IsObject(t))
            return -EBADMSG;
        const cJSON *h = field(t, "hash");
        if (!cJSON_IsString(h) || parse_hash(h->valuestring, &term->xorb) < 0 ||
            get_chunk_range(t, "range", &term->chunk_start, &term->chunk_end) < 0 ||
            get_u64(t, "unpacked_length", UINT32_MAX, &ul) < 0)
            return -EBADMSG;
        /* every chunk decodes to 1..XET_CHUNK_MAX bytes */
        uint64_t nch = term->chunk_end - term->chunk_start;
        if (ul < nch || ul > nch * XET_CHUNK_MAX)
            return -EBADMSG;
        term->unpacked_length = (uint32_t)ul;
    }
    return 0;
}

static int parse_doc(const cJSON *doc, uint64_t range_start, xet_recon *r)
{
    int rc;
    if (!cJSON_IsObject(doc))
        return -EBADMSG;
    if (get_u64(doc, "offset_into_first_range", EXACT_U64_MAX, &r->offset_into_first_range) < 0 ||
        r->offset_into_first_range > range_start)
        return -EBADMSG;
    r->base = range_start - r->offset_into_first_range;
    if ((rc = parse_terms(field(doc, "terms"), r)) < 0)
        return rc;
    /* the file's extent must be representable */
    uint64_t end = r->base;
    for (size_t i = 0; i < r->nterms; i++) {
        if (end > UINT64_MAX - r->terms[i].unpacked_length)
            return -EBADMSG;
        end += r->terms[i].unpacked_length;
    }

    /* v2 when `xorbs` is present (even next to a v1 `fetch_info`) */
    const cJSON *map = field(doc, "xorbs");
    bool v2 = map != NULL;
    if (!v2)
        map = field(doc, "fetch_info");
    if (!map)
        return r->nterms == 0 ? 0 : -EBADMSG; /* an empty file may omit it */
    size_t n;
    if ((rc = count_fetch(map, v2, &n)) < 0)
        return rc;
    if (n) {
        r->fetch = calloc(n, sizeof *r->fetch);
        if (!r->fetch)
            return -ENOMEM;
    }
    if ((rc = fill_fetch(map, v2, r)) < 0)
        return rc;
    return link_terms(r);
}

int xet_recon_parse(const char *json, size_t len, uint64_t range_start, xet_recon *out)
{
    memset(out, 0, sizeof *out);
    if (!json || memchr(json, 0, len))
        return -EBADMSG;
    /* parse a NUL-terminated copy so no reader can run past the caller's buffer */
    char *text = malloc(len + 1);
    if (!text)
        return -ENOMEM;
    memcpy(text, json, len);
    text[len] = 0;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, 1); /* nothing but whitespace after */
    free(text);
    if (!doc) {
        /* cJSON reports no reason; a failed allocation looks like bad text */
        return -EBADMSG;
    }
    int rc = parse_doc(doc, range_start, out);
    cJSON_Delete(doc);
    if (rc < 0)
        xet_recon_free(out);
    return rc;
}

void xet_recon_free(xet_recon *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfetch; i++)
        if (i == 0 || r->fetch[i].url != r->fetch[i - 1].url)
            free(r->fetch[i].url);
    free(r->fetch);
    free(r->terms);
    memset(r, 0, sizeof *r);
}

/* ---- mapping file ranges to terms ------------------------------------------- */

long xet_recon_map(const xet_recon *r, uint64_t off, uint64_t len, xet_piece **pieces)
{
    *pieces = NULL;
    if (len == 0)
        return 0;
    if (off < r->base || off > UINT64_MAX - len)
        return -ERANGE;
    uint64_t end = off + len;

    /* first pass: count the terms that intersect, and check coverage */
    size_t first = SIZE_MAX, n = 0;
    uint64_t pos = r->base;
    for (size_t i = 0; i < r->nterms && pos < end; i++) {
        uint64_t tend = pos + r->terms[i].unpacked_length;
        if (tend > off) {
            if (first == SIZE_MAX)
                first = i;
            n++;
        }
        pos = tend;
    }
    if (pos < end)
        return -ERANGE;

    xet_piece *p = malloc(n * sizeof *p);
    if (!p)
        return -ENOMEM;
    pos = r->base;
    for (size_t i = 0; i < first; i++)
        pos += r->terms[i].unpacked_length;
    for (size_t k = 0; k < n; k++) {
        size_t i = first + k;
        uint64_t tend = pos + r->terms[i].unpacked_length;
        uint64_t s = off > pos ? off : pos, e = end < tend ? end : tend;
        p[k].term = i;
        p[k].skip = s - pos;
        p[k].take = e - s;
        p[k].out_off = s - off;
        pos = tend;
    }
    *pieces = p;
    return (long)n;
}

/* ---- cutting bytes out of a fetched body ---------------------------------------- */

/* Index the body of descriptor f: it must be exactly its chunk records. */
static long index_body(const xet_fetch *f, const uint8_t *body, size_t body_len,
                       xet_record **recs)
{
    *recs = NULL;
    if (!body || body_len != f->byte_end - f->byte_start + 1)
        return -EBADMSG;
    xet_record *rv;
    long n = xet_xorb_index(body, body_len, &rv);
    if (n < 0)
        return n;
    if ((uint64_t)n != f->chunk_end - f->chunk_start ||
        rv[n - 1].offset + XET_CHUNK_HEADER_LEN + rv[n - 1].hdr.clen != body_len) {
        free(rv);
        return -EBADMSG;
    }
    *recs = rv;
    return n;
}

/* Decode chunks [cs, ce) of f's body and copy [skip, skip+take) of their
 * output; when expect != UINT64_MAX their total decoded length must equal it. */
static int extract(const xet_fetch *f, const uint8_t *body, size_t body_len, uint32_t cs,
                   uint32_t ce, uint64_t skip, uint64_t take, uint64_t expect, uint8_t *out)
{
    if (!f || cs >= ce || cs < f->chunk_start || ce > f->chunk_end ||
        skip > UINT64_MAX - take || (take && !out))
        return -EINVAL;
    xet_record *recs;
    long n = index_body(f, body, body_len, &recs);
    if (n < 0)
        return (int)n;
    size_t a = cs - f->chunk_start, b = ce - f->chunk_start;
    uint64_t total = 0;
    for (size_t i = a; i < b; i++)
        total += recs[i].hdr.ulen;
    int rc = 0;
    if ((expect != UINT64_MAX && total != expect) || skip + take > total) {
        rc = -EILSEQ;
        goto out;
    }
    if (take == 0)
        goto out;

    uint8_t *tmp = NULL;
    uint64_t pos = 0, end = skip + take;
    for (size_t i = a; i < b && pos < end; i++) {
        const xet_record *rec = &recs[i];
        uint64_t cend = pos + rec->hdr.ulen;
        if (cend > skip) {
            const uint8_t *payload = body + rec->offset + XET_CHUNK_HEADER_LEN;
            uint64_t s = skip > pos ? skip : pos, e = end < cend ? end : cend;
            if (s == pos && e == cend) {
                rc = xet_chunk_decode(&rec->hdr, payload, out + (pos - skip));
            } else {
                if (!tmp && !(tmp = malloc(XET_CHUNK_MAX))) {
                    rc = -ENOMEM;
                    break;
                }
                rc = xet_chunk_decode(&rec->hdr, payload, tmp);
                if (rc == 0)
                    memcpy(out + (s - skip), tmp + (s - pos), e - s);
            }
            if (rc < 0)
                break;
        }
        pos = cend;
    }
    free(tmp);
out:
    free(recs);
    return rc;
}

int xet_fetch_extract(const xet_fetch *f, const uint8_t *body, size_t body_len,
                      uint32_t chunk_start, uint32_t chunk_end, uint64_t skip, uint64_t take,
                      uint8_t *out)
{
    return extract(f, body, body_len, chunk_start, chunk_end, skip, take, UINT64_MAX, out);
}

int xet_recon_term_extract(const xet_recon_term *t, const uint8_t *body, size_t body_len,
                           uint64_t skip, uint64_t take, uint8_t *out)
{
    if (!t)
        return -EINVAL;
    return extract(t->fetch, body, body_len, t->chunk_start, t->chunk_end, skip, take,
                   t->unpacked_length, out);
}
