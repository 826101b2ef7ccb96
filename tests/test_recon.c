/* test_recon.c — reconstruction responses (tests/vectors/reconstruction.json):
 * all 20 cases in both shapes (v2 `xorbs`, v1 `fetch_info`) parsed and
 * checked field by field against the JSON; every requested range rebuilt
 * byte-exactly from the vector xorb through a simulated CDN (each descriptor's
 * exact byte range sliced out of the xorb); descriptor byte ranges checked
 * against the xorb's record boundaries; random sub-ranges; uncovered ranges;
 * xet_fetch_extract's error cases; and malformed or mutated JSON bodies
 * (missing fields, wrong types, bad numbers and hashes, truncations, random
 * edits), which must fail with -EBADMSG and never crash. */
#include <cjson/cJSON.h>

#include "t.h"
#include "xet.h"

#define XORB_FILE "xorb-028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b.bin"

static uint8_t *xorb;
static size_t xorb_len;
static xet_record *xrecs;
static long nxrecs;

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static cJSON *load_json(const char *name)
{
    size_t len;
    char *text = (char *)t_read_file(name, &len);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) {
        fprintf(stderr, "bad json %s\n", name);
        exit(2);
    }
    return j;
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static uint64_t num(const cJSON *o, const char *k)
{
    return (uint64_t)get(o, k)->valuedouble;
}

/* Parse a cJSON tree through its text. */
static int parse_tree(const cJSON *j, uint64_t range_start, xet_recon *r)
{
    char *text = cJSON_PrintUnformatted(j);
    int rc = xet_recon_parse(text, strlen(text), range_start, r);
    free(text);
    return rc;
}

/* The descriptor body a CDN returns for f: an exact-size copy of its slice,
 * so that ASan notices any read past it. */
static uint8_t *cdn_get(const xet_fetch *f, size_t *len)
{
    *len = (size_t)(f->byte_end - f->byte_start + 1);
    if (f->byte_end >= xorb_len)
        return NULL;
    uint8_t *b = malloc(*len);
    memcpy(b, xorb + f->byte_start, *len);
    return b;
}

/* Rebuild file bytes [off, off+len) from r through the simulated CDN. */
static int rebuild(const xet_recon *r, uint64_t off, uint64_t len, uint8_t *out)
{
    xet_piece *p;
    long n = xet_recon_map(r, off, len, &p);
    if (n < 0)
        return (int)n;
    uint64_t expect_out = 0;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        const xet_recon_term *t = &r->terms[p[i].term];
        /* pieces are consecutive, in term order, and never empty */
        if (p[i].out_off != expect_out || p[i].take == 0 ||
            p[i].skip + p[i].take > t->unpacked_length || (i && p[i].term <= p[i - 1].term))
            rc = -EPROTO;
        expect_out += p[i].take;
        size_t blen;
        uint8_t *body = cdn_get(t->fetch, &blen);
        if (!body)
            return -EPROTO;
        if (rc == 0)
            rc = xet_recon_term_extract(t, body, blen, p[i].skip, p[i].take, out + p[i].out_off);
        free(body);
    }
    if (rc == 0 && expect_out != len)
        rc = -EPROTO;
    free(p);
    return rc;
}

static void check_terms(const xet_recon *r, const cJSON *v)
{
    const cJSON *terms = get(v, "terms");
    T_EQ_INT(r->nterms, cJSON_GetArraySize(terms));
    T_EQ_INT(r->offset_into_first_range, num(v, "offset_into_first_range"));
    size_t i = 0;
    for (const cJSON *t = terms->child; t && i < r->nterms; t = t->next, i++) {
        char s[XET_HASH_STR_LEN + 1];
        xet_hash_to_string(&r->terms[i].xorb, s);
        T_EQ_STR(s, get(t, "hash")->valuestring);
        T_EQ_INT(r->terms[i].chunk_start, num(get(t, "range"), "start"));
        T_EQ_INT(r->terms[i].chunk_end, num(get(t, "range"), "end"));
        T_EQ_INT(r->terms[i].unpacked_length, num(t, "unpacked_length"));
        const xet_fetch *f = r->terms[i].fetch;
        T_TRUE(f >= r->fetch && f < r->fetch + r->nfetch);
        if (f) {
            T_TRUE(xet_hash_eq(&f->xorb, &r->terms[i].xorb));
            T_TRUE(f->chunk_start <= r->terms[i].chunk_start);
            T_TRUE(r->terms[i].chunk_end <= f->chunk_end);
        }
    }
}

/* Descriptors in JSON order, each field compared; v2 URLs shared per entry. */
static void check_fetch(const xet_recon *r, const cJSON *v, bool v2)
{
    const cJSON *map = get(v, v2 ? "xorbs" : "fetch_info");
    size_t i = 0;
    for (const cJSON *x = map->child; x; x = x->next)
        for (const cJSON *e = x->child; e; e = e->next) {
            const char *url = get(e, "url")->valuestring;
            const cJSON *ranges = v2 ? get(e, "ranges") : NULL;
            const cJSON *rg = v2 ? ranges->child : e;
            const char *first_url = NULL;
            for (; rg; rg = v2 ? rg->next : NULL, i++) {
                if (i >= r->nfetch) {
                    T_TRUE(i < r->nfetch);
                    return;
                }
                const xet_fetch *f = &r->fetch[i];
                char s[XET_HASH_STR_LEN + 1];
                xet_hash_to_string(&f->xorb, s);
                T_EQ_STR(s, x->string);
                const cJSON *ch = get(rg, v2 ? "chunks" : "range");
                const cJSON *by = get(rg, v2 ? "bytes" : "url_range");
                T_EQ_INT(f->chunk_start, num(ch, "start"));
                T_EQ_INT(f->chunk_end, num(ch, "end"));
                T_EQ_INT(f->byte_start, num(by, "start"));
                T_EQ_INT(f->byte_end, num(by, "end"));
                T_EQ_STR(f->url, url);
                if (first_url)
                    T_TRUE(f->url == first_url);
                first_url = f->url;

                /* §5.4: the range starts on chunk start's header and ends
                 * with the last byte of chunk end−1's payload */
                T_TRUE(f->chunk_end <= (uint64_t)nxrecs);
                if (f->chunk_end <= (uint64_t)nxrecs) {
                    const xet_record *last = &xrecs[f->chunk_end - 1];
                    T_EQ_INT(f->byte_start, xrecs[f->chunk_start].offset);
                    T_EQ_INT(f->byte_end + 1, last->offset + XET_CHUNK_HEADER_LEN + last->hdr.clen);
                }
            }
        }
    T_EQ_INT(r->nfetch, i);
}

/* "bytes=S-E" → S, E; null → whole file; E clamped to size − 1. */
static void request_range(const cJSON *hdr, uint64_t size, uint64_t *s, uint64_t *e_excl)
{
    if (!cJSON_IsString(hdr)) {
        *s = 0;
        *e_excl = size;
        return;
    }
    unsigned long long a, b;
    if (sscanf(hdr->valuestring, "bytes=%llu-%llu", &a, &b) != 2) {
        fprintf(stderr, "bad range header %s\n", hdr->valuestring);
        exit(2);
    }
    *s = a;
    *e_excl = b + 1 < size ? b + 1 : size;
}

static uint64_t terms_end(const xet_recon *r)
{
    uint64_t e = r->base;
    for (size_t i = 0; i < r->nterms; i++)
        e += r->terms[i].unpacked_length;
    return e;
}

static void test_vectors(void)
{
    cJSON *j = load_json("reconstruction.json");
    const cJSON *cases = get(j, "cases");
    T_EQ_INT(cJSON_GetArraySize(cases), 20);
    int nrun = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        char name[256];
        snprintf(name, sizeof name, "input-%s", get(c, "file")->valuestring);
        size_t size;
        uint8_t *input = t_read_file(name, &size);
        uint64_t s, e;
        request_range(get(c, "request_range_header"), size, &s, &e);
        for (int v2 = 1; v2 >= 0; v2--) {
            const cJSON *v = get(c, v2 ? "v2" : "v1");
            xet_recon r;
            int rc = parse_tree(v, s, &r);
            T_EQ_INT(rc, 0);
            if (rc)
                continue;
            nrun++;
            check_terms(&r, v);
            check_fetch(&r, v, v2);
            T_EQ_INT(r.base, s - num(v, "offset_into_first_range"));

            /* the requested range, byte-exact */
            uint8_t *out = malloc(e - s + 1);
            T_EQ_INT(rebuild(&r, s, e - s, out), 0);
            T_EQ_MEM(out, input + s, e - s);
            free(out);

            /* random sub-ranges of what the terms cover */
            uint64_t lo = r.base, hi = terms_end(&r);
            T_TRUE(hi <= size);
            T_TRUE(lo <= s && e <= hi);
            for (int k = 0; k < 40; k++) {
                uint64_t a = lo + rnd() % (hi - lo);
                uint64_t n = 1 + rnd() % (k < 20 ? 64 : hi - a);
                if (n > hi - a)
                    n = hi - a;
                uint8_t *buf = malloc(n);
                rc = rebuild(&r, a, n, buf);
                T_EQ_INT(rc, 0);
                if (rc == 0)
                    T_EQ_MEM(buf, input + a, n);
                free(buf);
            }
            /* the whole covered extent, and ranges it does not cover */
            uint8_t *all = malloc(hi - lo);
            T_EQ_INT(rebuild(&r, lo, hi - lo, all), 0);
            T_EQ_MEM(all, input + lo, hi - lo);
            free(all);
            xet_piece *p = (xet_piece *)&p;
            T_EQ_INT(xet_recon_map(&r, hi, 1, &p), -ERANGE);
            T_TRUE(p == NULL);
            T_EQ_INT(xet_recon_map(&r, hi - 1, 2, &p), -ERANGE);
            T_EQ_INT(xet_recon_map(&r, lo, hi - lo + 1, &p), -ERANGE);
            T_EQ_INT(xet_recon_map(&r, UINT64_MAX, 1, &p), -ERANGE);
            T_EQ_INT(xet_recon_map(&r, lo, UINT64_MAX, &p), -ERANGE);
            if (lo > 0) {
                T_EQ_INT(xet_recon_map(&r, lo - 1, 1, &p), -ERANGE);
                T_EQ_INT(xet_recon_map(&r, lo - 1, hi - lo, &p), -ERANGE);
            }
            T_EQ_INT(xet_recon_map(&r, hi + 5, 0, &p), 0);
            T_TRUE(p == NULL);
            xet_recon_free(&r);
            T_EQ_INT(r.nterms, 0);
            T_TRUE(r.fetch == NULL);
        }
        free(input);
    }
    T_EQ_INT(nrun, 40);
    cJSON_Delete(j);
}

/* d_concat.bin: three terms into one xorb, out of chunk order (trap 13). */
static void test_repeated_xorb(void)
{
    cJSON *j = load_json("reconstruction.json");
    const cJSON *c = cJSON_GetArrayItem(get(j, "cases"), 15);
    T_EQ_STR(get(c, "file")->valuestring, "d_concat.bin");
    xet_recon r;
    T_EQ_INT(parse_tree(get(c, "v2"), 0, &r), 0);
    T_EQ_INT(r.nterms, 3);
    T_EQ_INT(r.nfetch, 3);
    uint32_t want[3][2] = {{0, 2}, {7, 8}, {4, 6}};
    for (int i = 0; i < 3; i++) {
        T_EQ_INT(r.terms[i].chunk_start, want[i][0]);
        T_EQ_INT(r.terms[i].chunk_end, want[i][1]);
    }
    /* a range spanning all three terms: one piece per term */
    xet_piece *p;
    T_EQ_INT(xet_recon_map(&r, 38000, 200000, &p), 3);
    T_EQ_INT(p[0].term, 0);
    T_EQ_INT(p[0].skip, 38000);
    T_EQ_INT(p[0].take, 750);
    T_EQ_INT(p[0].out_off, 0);
    T_EQ_INT(p[1].term, 1);
    T_EQ_INT(p[1].skip, 0);
    T_EQ_INT(p[1].take, 125882);
    T_EQ_INT(p[1].out_off, 750);
    T_EQ_INT(p[2].term, 2);
    T_EQ_INT(p[2].skip, 0);
    T_EQ_INT(p[2].take, 200000 - 750 - 125882);
    T_EQ_INT(p[2].out_off, 750 + 125882);
    free(p);
    /* a range inside one term */
    T_EQ_INT(xet_recon_map(&r, 40000, 10, &p), 1);
    T_EQ_INT(p[0].term, 1);
    T_EQ_INT(p[0].skip, 40000 - 38750);
    T_EQ_INT(p[0].take, 10);
    free(p);
    /* a range ending exactly at a term boundary */
    T_EQ_INT(xet_recon_map(&r, 0, 38750, &p), 1);
    T_EQ_INT(p[0].take, 38750);
    free(p);
    xet_recon_free(&r);
    cJSON_Delete(j);
}

/* xet_fetch_extract on descriptors built by hand over the vector xorb. */
static void test_extract(void)
{
    size_t size;
    uint8_t *input = t_read_file("input-b_text.txt", &size);
    /* b_text.txt = chunks 3, 4, 5 of the xorb */
    xet_fetch f = {.chunk_start = 3, .chunk_end = 6};
    f.byte_start = xrecs[3].offset;
    f.byte_end = xrecs[5].offset + XET_CHUNK_HEADER_LEN + xrecs[5].hdr.clen - 1;
    size_t blen;
    uint8_t *body = cdn_get(&f, &blen);
    uint8_t *out = malloc(size + 16);
    uint32_t l3 = xrecs[3].hdr.ulen, l4 = xrecs[4].hdr.ulen, l5 = xrecs[5].hdr.ulen;
    T_EQ_INT(l3 + l4 + l5, size);

    T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 6, 0, size, out), 0);
    T_EQ_MEM(out, input, size);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 4, 6, 5, l4 + l5 - 5, out), 0);
    T_EQ_MEM(out, input + l3 + 5, l4 + l5 - 5);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 4, 5, 0, l4, out), 0);
    T_EQ_MEM(out, input + l3, l4);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 5, 6, 9, 1, out), 0);
    T_EQ_MEM(out, input + size - 1, 1);
    /* every split point across a chunk boundary */
    for (uint64_t sk = l3 - 3; sk < l3 + 3; sk++) {
        T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 6, sk, 7, out), 0);
        T_EQ_MEM(out, input + sk, 7);
    }
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 6, 100, 0, NULL), 0);

    /* bad arguments */
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 2, 6, 0, 1, out), -EINVAL);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 7, 0, 1, out), -EINVAL);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 4, 4, 0, 1, out), -EINVAL);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 6, 0, 1, NULL), -EINVAL);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 6, UINT64_MAX, 2, out), -EINVAL);
    /* asking past the chunks' output */
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 3, 6, 0, size + 1, out), -EILSEQ);
    T_EQ_INT(xet_fetch_extract(&f, body, blen, 4, 5, l4, 1, out), -EILSEQ);
    /* bodies that are not exactly the descriptor's records */
    T_EQ_INT(xet_fetch_extract(&f, body, blen - 1, 3, 6, 0, 1, out), -EBADMSG);
    T_EQ_INT(xet_fetch_extract(&f, NULL, blen, 3, 6, 0, 1, out), -EBADMSG);
    uint8_t *longer = malloc(blen + 9);
    memcpy(longer, body, blen);
    memcpy(longer + blen, xorb, 9); /* one more (tiny) record would be a 4th chunk */
    xet_fetch g = f;
    g.byte_end += 9;
    T_TRUE(xet_fetch_extract(&g, longer, blen + 9, 3, 6, 0, 1, out) < 0);
    free(longer);
    xet_fetch wide = f; /* claims one chunk more than the body holds */
    wide.chunk_end = 7;
    T_EQ_INT(xet_fetch_extract(&wide, body, blen, 3, 6, 0, 1, out), -EBADMSG);
    xet_fetch narrow = f; /* claims one chunk fewer */
    narrow.chunk_end = 5;
    T_EQ_INT(xet_fetch_extract(&narrow, body, blen, 3, 5, 0, 1, out), -EBADMSG);
    /* a bad record header / a corrupt LZ4 payload (chunk 3 is scheme 1) */
    uint8_t *bad = malloc(blen);
    memcpy(bad, body, blen);
    bad[0] = 1;
    T_EQ_INT(xet_fetch_extract(&f, bad, blen, 3, 6, 0, 1, out), -EPROTONOSUPPORT);
    memcpy(bad, body, blen);
    T_EQ_INT(xrecs[3].hdr.scheme, XET_SCHEME_LZ4);
    for (size_t i = XET_CHUNK_HEADER_LEN + 16; i < XET_CHUNK_HEADER_LEN + xrecs[3].hdr.clen; i++)
        bad[i] = 0xff;
    T_TRUE(xet_fetch_extract(&f, bad, blen, 3, 6, 0, 1, out) < 0);
    /* chunks not needed are not decoded: the corruption in chunk 3 is unseen */
    T_EQ_INT(xet_fetch_extract(&f, bad, blen, 4, 6, 0, l4 + l5, out), 0);
    T_EQ_MEM(out, input + l3, l4 + l5);
    free(bad);

    /* term-level: the unpacked length is checked */
    xet_recon_term t = {.chunk_start = 4, .chunk_end = 6, .unpacked_length = l4 + l5, .fetch = &f};
    T_EQ_INT(xet_recon_term_extract(&t, body, blen, 1, 2, out), 0);
    T_EQ_MEM(out, input + l3 + 1, 2);
    t.unpacked_length = l4 + l5 - 1;
    T_EQ_INT(xet_recon_term_extract(&t, body, blen, 1, 2, out), -EILSEQ);
    t.unpacked_length = l4 + l5 + 1;
    T_EQ_INT(xet_recon_term_extract(&t, body, blen, 1, 2, out), -EILSEQ);
    t.fetch = NULL;
    T_EQ_INT(xet_recon_term_extract(&t, body, blen, 1, 2, out), -EINVAL);

    free(out);
    free(body);
    free(input);
}

/* Hand-made bodies: empty files, repeated terms, shared descriptors, base. */
#define H1 "028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b"
#define H2 "1111111111111111222222222222222233333333333333334444444444444444"

static int parse_str(const char *s, uint64_t range_start, xet_recon *r)
{
    return xet_recon_parse(s, strlen(s), range_start, r);
}

static void test_shapes(void)
{
    xet_recon r;
    xet_piece *p;
    /* empty file */
    T_EQ_INT(parse_str("{\"offset_into_first_range\":0,\"terms\":[],\"xorbs\":{}}", 0, &r), 0);
    T_EQ_INT(r.nterms, 0);
    T_EQ_INT(r.nfetch, 0);
    T_EQ_INT(xet_recon_map(&r, 0, 0, &p), 0);
    T_EQ_INT(xet_recon_map(&r, 0, 1, &p), -ERANGE);
    xet_recon_free(&r);
    T_EQ_INT(parse_str(" {\"offset_into_first_range\":0,\"terms\":[],\"fetch_info\":{}}\n", 0, &r), 0);
    xet_recon_free(&r);
    T_EQ_INT(parse_str("{\"offset_into_first_range\":0,\"terms\":[]}", 0, &r), 0);
    xet_recon_free(&r);

    /* two xorbs, repeated and shared descriptors, v2 entries with several
     * ranges, a ranged request: base = 5000 − 300 */
    const char *v2 =
        "{\"offset_into_first_range\":300,\"terms\":["
        "{\"hash\":\"" H1 "\",\"unpacked_length\":1000,\"range\":{\"start\":1,\"end\":3}},"
        "{\"hash\":\"" H2 "\",\"unpacked_length\":500,\"range\":{\"start\":0,\"end\":1}},"
        "{\"hash\":\"" H1 "\",\"unpacked_length\":1000,\"range\":{\"start\":1,\"end\":3}},"
        "{\"hash\":\"" H1 "\",\"unpacked_length\":10,\"range\":{\"start\":7,\"end\":8}},"
        "{\"hash\":\"" H1 "\",\"unpacked_length\":400,\"range\":{\"start\":2,\"end\":3}}],"
        "\"xorbs\":{\"" H1 "\":["
        "{\"url\":\"u1\",\"ranges\":[{\"chunks\":{\"start\":0,\"end\":3},\"bytes\":{\"start\":0,\"end\":999}},"
        "{\"chunks\":{\"start\":5,\"end\":6},\"bytes\":{\"start\":2000,\"end\":2099}}]},"
        "{\"url\":\"u2\",\"ranges\":[{\"chunks\":{\"start\":7,\"end\":8},\"bytes\":{\"start\":5000,\"end\":5017}}]}],"
        "\"" H2 "\":[{\"url\":\"u3\",\"ranges\":[{\"chunks\":{\"start\":0,\"end\":2},\"bytes\":{\"start\":0,\"end\":99}}]}]}}";
    T_EQ_INT(parse_str(v2, 5000, &r), 0);
    T_EQ_INT(r.base, 4700);
    T_EQ_INT(r.nterms, 5);
    T_EQ_INT(r.nfetch, 4);
    T_TRUE(r.fetch[0].url == r.fetch[1].url);
    T_EQ_STR(r.fetch[2].url, "u2");
    T_EQ_STR(r.fetch[3].url, "u3");
    T_TRUE(r.terms[0].fetch == &r.fetch[0]);
    T_TRUE(r.terms[1].fetch == &r.fetch[3]);
    T_TRUE(r.terms[2].fetch == &r.fetch[0]);
    T_TRUE(r.terms[3].fetch == &r.fetch[2]);
    T_TRUE(r.terms[4].fetch == &r.fetch[0]);
    /* terms cover [4700, 4700+2910) */
    T_EQ_INT(xet_recon_map(&r, 4700, 2910, &p), 5);
    uint64_t out = 0;
    for (int i = 0; i < 5; i++) {
        T_EQ_INT(p[i].term, i);
        T_EQ_INT(p[i].skip, 0);
        T_EQ_INT(p[i].take, r.terms[i].unpacked_length);
        T_EQ_INT(p[i].out_off, out);
        out += p[i].take;
    }
    free(p);
    T_EQ_INT(xet_recon_map(&r, 5000, 1300, &p), 3);
    T_EQ_INT(p[0].term, 0);
    T_EQ_INT(p[0].skip, 300);
    T_EQ_INT(p[0].take, 700);
    T_EQ_INT(p[1].term, 1);
    T_EQ_INT(p[1].take, 500);
    T_EQ_INT(p[1].out_off, 700);
    T_EQ_INT(p[2].term, 2);
    T_EQ_INT(p[2].skip, 0);
    T_EQ_INT(p[2].take, 100);
    T_EQ_INT(p[2].out_off, 1200);
    free(p);
    T_EQ_INT(xet_recon_map(&r, 4699, 2, &p), -ERANGE);
    T_EQ_INT(xet_recon_map(&r, 7609, 1, &p), 1);
    T_EQ_INT(p[0].term, 4);
    T_EQ_INT(p[0].skip, 399);
    free(p);
    T_EQ_INT(xet_recon_map(&r, 7609, 2, &p), -ERANGE);
    xet_recon_free(&r);

    /* offset_into_first_range may not exceed the requested start */
    T_EQ_INT(parse_str(v2, 299, &r), -EBADMSG);
    T_EQ_INT(parse_str(v2, 300, &r), 0);
    T_EQ_INT(r.base, 0);
    xet_recon_free(&r);

    /* v1 with two descriptors of one xorb, each its own URL; the term
     * [5,6) lies in the second */
    const char *v1 =
        "{\"offset_into_first_range\":0,\"terms\":["
        "{\"hash\":\"" H1 "\",\"unpacked_length\":7,\"range\":{\"start\":5,\"end\":6}}],"
        "\"fetch_info\":{\"" H1 "\":["
        "{\"range\":{\"start\":0,\"end\":3},\"url\":\"a\",\"url_range\":{\"start\":0,\"end\":999}},"
        "{\"range\":{\"start\":4,\"end\":6},\"url\":\"b\",\"url_range\":{\"start\":2000,\"end\":2099}}]}}";
    T_EQ_INT(parse_str(v1, 0, &r), 0);
    T_EQ_INT(r.nfetch, 2);
    T_TRUE(r.terms[0].fetch == &r.fetch[1]);
    T_EQ_STR(r.fetch[1].url, "b");
    T_EQ_INT(r.fetch[1].byte_start, 2000);
    T_EQ_INT(r.fetch[1].byte_end, 2099);
    xet_recon_free(&r);
    xet_recon_free(&r); /* twice is harmless */
}

/* ---- malformed bodies ---------------------------------------------------- */

static cJSON *valid_case(bool v2)
{
    cJSON *j = load_json("reconstruction.json");
    cJSON *c = cJSON_GetArrayItem(get(j, "cases"), 15); /* d_concat, full file */
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(c, v2 ? "v2" : "v1");
    cJSON_Delete(j);
    return v;
}

/* Walk a path like "terms/0/range/start" to the node. */
static cJSON *at(cJSON *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *n = root;
    for (char *save, *tok = strtok_r(buf, "/", &save); tok && n; tok = strtok_r(NULL, "/", &save)) {
        if (cJSON_IsArray(n))
            n = cJSON_GetArrayItem(n, atoi(tok));
        else if (strcmp(tok, "*") == 0)
            n = n->child; /* first member, whatever its key */
        else
            n = cJSON_GetObjectItemCaseSensitive(n, tok);
    }
    if (!n) {
        fprintf(stderr, "no node %s\n", path);
        exit(2);
    }
    return n;
}

/* Replace node n of parent by repl, under n's key (cJSON_ReplaceItemViaPointer
 * keeps the replacement's own, empty, key). */
static void swap_node(cJSON *parent, cJSON *n, cJSON *repl)
{
    if (n->string) {
        repl->string = strdup(n->string);
        repl->type &= ~cJSON_StringIsConst;
    }
    cJSON_ReplaceItemViaPointer(parent, n, repl);
}

/* Replace the node at path (its parent is an object or array) with repl. */
static void replace(cJSON *root, const char *path, cJSON *repl)
{
    cJSON *n = at(root, path);
    cJSON *parent = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash) {
        *slash = 0;
        parent = at(root, buf);
    }
    swap_node(parent, n, repl);
}

static void remove_node(cJSON *root, const char *path)
{
    cJSON *n = at(root, path);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    cJSON *parent = root;
    if (slash) {
        *slash = 0;
        parent = at(root, buf);
    }
    cJSON_Delete(cJSON_DetachItemViaPointer(parent, n));
}

static cJSON *raw(const char *s)
{
    cJSON *n = cJSON_CreateRaw(s);
    return n;
}

struct mutation {
    const char *path; /* node to change */
    const char *value; /* raw JSON text to put there, NULL = delete the node */
};

static int mutated(bool v2, const struct mutation *m, uint64_t range_start)
{
    cJSON *v = valid_case(v2);
    if (m->value)
        replace(v, m->path, raw(m->value));
    else
        remove_node(v, m->path);
    xet_recon r;
    memset(&r, 0x5a, sizeof r);
    int rc = parse_tree(v, range_start, &r);
    /* on failure the struct is left empty */
    if (rc < 0 && (r.nterms || r.terms || r.nfetch || r.fetch))
        rc = -EPROTO;
    if (rc == 0)
        xet_recon_free(&r);
    cJSON_Delete(v);
    return rc;
}

static void test_malformed_common(void)
{
    /* paths valid in both shapes */
    static const struct mutation m[] = {
        {"offset_into_first_range", NULL},
        {"offset_into_first_range", "\"0\""},
        {"offset_into_first_range", "-1"},
        {"offset_into_first_range", "0.5"},
        {"offset_into_first_range", "1"}, /* > range start 0 */
        {"offset_into_first_range", "1e400"},
        {"offset_into_first_range", "-0"},
        {"offset_into_first_range", "null"},
        {"offset_into_first_range", "true"},
        {"offset_into_first_range", "18446744073709551616"},
        {"terms", NULL},
        {"terms", "{}"},
        {"terms", "null"},
        {"terms", "\"x\""},
        {"terms/0", "[]"},
        {"terms/0", "1"},
        {"terms/0/hash", NULL},
        {"terms/0/hash", "7"},
        {"terms/0/hash", "\"\""},
        {"terms/0/hash", "\"028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6\""},
        {"terms/0/hash", "\"028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b0\""},
        {"terms/0/hash", "\"028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6g\""},
        {"terms/0/hash", "\"028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6 \""},
        {"terms/0/hash", "\"028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4\\u0000ab\""},
        {"terms/0/hash", "\"" H2 "\""}, /* valid hash, no descriptor */
        {"terms/0/unpacked_length", NULL},
        {"terms/0/unpacked_length", "0"},
        {"terms/0/unpacked_length", "1"}, /* fewer bytes than chunks */
        {"terms/0/unpacked_length", "262145"}, /* more than 2 maximal chunks */
        {"terms/0/unpacked_length", "4294967296"},
        {"terms/0/unpacked_length", "-38750"},
        {"terms/0/unpacked_length", "38750.5"},
        {"terms/0/unpacked_length", "\"38750\""},
        {"terms/0/range", NULL},
        {"terms/0/range", "[0,2]"},
        {"terms/0/range/start", NULL},
        {"terms/0/range/end", NULL},
        {"terms/0/range/start", "2"},    /* start == end */
        {"terms/0/range/start", "3"},    /* start > end */
        {"terms/0/range/start", "-1"},
        {"terms/0/range/start", "0.25"},
        {"terms/0/range/start", "false"},
        {"terms/0/range/end", "3"},      /* past its descriptor [0,2) */
        {"terms/0/range/end", "8193"},
        {"terms/0/range/end", "1e10"},
        {"terms/1/range/start", "6"},    /* [6,8): descriptor is [7,8) */
        {"terms/2/range/start", "3"},    /* [3,6): descriptor is [4,6) */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        for (int v2 = 0; v2 < 2; v2++) {
            int rc = mutated(v2, &m[i], 0);
            if (rc != -EBADMSG)
                fprintf(stderr, "  mutation %s := %s (v%d): %d\n", m[i].path,
                        m[i].value ? m[i].value : "(deleted)", v2 ? 2 : 1, rc);
            T_EQ_INT(rc, -EBADMSG);
        }
    /* the same values as in the body (checks the mutation tool itself) */
    struct mutation same[] = {{"offset_into_first_range", "0"}, {"terms/0/range/end", "2"},
                              {"terms/0/unpacked_length", "38750"}};
    for (int i = 0; i < 3; i++)
        for (int v2 = 0; v2 < 2; v2++)
            T_EQ_INT(mutated(v2, &same[i], 0), 0);
    /* a nonzero offset with a range start to match is fine */
    struct mutation ok = {"offset_into_first_range", "1"};
    T_EQ_INT(mutated(true, &ok, 1), 0);
    T_EQ_INT(mutated(false, &ok, 5), 0);
    /* harmless: a smaller term inside its descriptor, extra fields */
    struct mutation ok2 = {"terms/2/range/end", "5"};
    T_EQ_INT(mutated(true, &ok2, 0), 0);
    struct mutation ok3 = {"terms/0/range/start", "1"};
    T_EQ_INT(mutated(false, &ok3, 0), 0);
}

static void test_malformed_v2(void)
{
    /* the d_concat v2 body: xorbs{H1: [{url, ranges:[[0,2)]}, {url, ranges:[[4,6)]},
     * {url, ranges:[[7,8)]}]} */
    static const struct mutation m[] = {
        {"xorbs", NULL},
        {"xorbs", "[]"},
        {"xorbs", "null"},
        {"xorbs", "{}"},
        {"xorbs/*", "{}"},
        {"xorbs/*", "[]"},          /* no descriptors for the terms */
        {"xorbs/*", "[1]"},
        {"xorbs/*/0", "[]"},
        {"xorbs/*/0/url", NULL},
        {"xorbs/*/0/url", "\"\""},
        {"xorbs/*/0/url", "3"},
        {"xorbs/*/0/ranges", NULL},
        {"xorbs/*/0/ranges", "{}"},
        {"xorbs/*/0/ranges", "[]"},  /* term 0 loses its descriptor */
        {"xorbs/*/0/ranges/0", "7"},
        {"xorbs/*/0/ranges/0/chunks", NULL},
        {"xorbs/*/0/ranges/0/chunks", "\"0-2\""},
        {"xorbs/*/0/ranges/0/chunks/start", "2"},
        {"xorbs/*/0/ranges/0/chunks/start", "1"},  /* [1,2) no longer covers [0,2) */
        {"xorbs/*/0/ranges/0/chunks/end", "1"},
        {"xorbs/*/0/ranges/0/chunks/end", "-2"},
        {"xorbs/*/0/ranges/0/chunks/end", "2.5"},
        {"xorbs/*/0/ranges/0/chunks/end", "8193"},
        {"xorbs/*/0/ranges/0/bytes", NULL},
        {"xorbs/*/0/ranges/0/bytes", "[0,38765]"},
        {"xorbs/*/0/ranges/0/bytes/start", NULL},
        {"xorbs/*/0/ranges/0/bytes/start", "38766"},     /* start > end */
        {"xorbs/*/0/ranges/0/bytes/start", "-1"},
        {"xorbs/*/0/ranges/0/bytes/start", "0.5"},
        {"xorbs/*/0/ranges/0/bytes/end", "\"38765\""},
        {"xorbs/*/0/ranges/0/bytes/end", "9007199254740993"},
        {"xorbs/*/0/ranges/0/bytes/end", "67108864"},     /* past a maximal xorb */
        {"xorbs/*/0/ranges/0/bytes/end", "14"},           /* under 8 bytes a chunk */
        {"xorbs/*/2/ranges/0/chunks/start", "8"},         /* term [7,8) uncovered */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int rc = mutated(true, &m[i], 0);
        if (rc != -EBADMSG)
            fprintf(stderr, "  mutation %s := %s: %d\n", m[i].path,
                    m[i].value ? m[i].value : "(deleted)", rc);
        T_EQ_INT(rc, -EBADMSG);
    }
    /* a bad key in xorbs, even one no term uses */
    cJSON *v = valid_case(true);
    cJSON *x = at(v, "xorbs");
    cJSON_AddItemToObject(x, "xyz", cJSON_CreateArray());
    xet_recon r;
    T_EQ_INT(parse_tree(v, 0, &r), -EBADMSG);
    cJSON_Delete(v);
    /* an extra, unused xorb with a valid key is fine; so is an extra field */
    v = valid_case(true);
    x = at(v, "xorbs");
    cJSON_AddItemToObject(x, H2, cJSON_CreateArray());
    cJSON_AddItemToObject(v, "future_field", cJSON_CreateString("x"));
    T_EQ_INT(parse_tree(v, 0, &r), 0);
    xet_recon_free(&r);
    cJSON_Delete(v);
}

static void test_malformed_v1(void)
{
    static const struct mutation m[] = {
        {"fetch_info", NULL},
        {"fetch_info", "[]"},
        {"fetch_info", "{}"},
        {"fetch_info/*", "{}"},
        {"fetch_info/*/0", "\"x\""},
        {"fetch_info/*/0/url", NULL},
        {"fetch_info/*/0/url", "null"},
        {"fetch_info/*/0/url", "\"\""},
        {"fetch_info/*/0/range", NULL},
        {"fetch_info/*/0/range/start", "2"},
        {"fetch_info/*/0/range/end", "0"},
        {"fetch_info/*/0/range/end", "1.5"},
        {"fetch_info/*/0/url_range", NULL},
        {"fetch_info/*/0/url_range", "1"},
        {"fetch_info/*/0/url_range/end", NULL},
        {"fetch_info/*/0/url_range/end", "-38765"},
        {"fetch_info/*/0/url_range/start", "38766"},
        {"fetch_info/*/0/url_range/start", "1e-3"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int rc = mutated(false, &m[i], 0);
        if (rc != -EBADMSG)
            fprintf(stderr, "  mutation %s := %s: %d\n", m[i].path,
                    m[i].value ? m[i].value : "(deleted)", rc);
        T_EQ_INT(rc, -EBADMSG);
    }
}

static void test_malformed_text(void)
{
    xet_recon r;
    static const char *bad[] = {
        "", " ", "null", "[]", "{}", "0", "\"x\"", "{\"terms\":[]}",
        "{\"offset_into_first_range\":0}",
        "{\"offset_into_first_range\":0,\"terms\":[]", /* unclosed */
        "{\"offset_into_first_range\":0,\"terms\":[]}x", /* trailing junk */
        "{\"offset_into_first_range\":0,\"terms\":[]}{}",
        "{\"offset_into_first_range\":NaN,\"terms\":[]}",
        "{\"offset_into_first_range\":Infinity,\"terms\":[]}",
        "{\"offset_into_first_range\":0,\"terms\":[],\"xorbs\":[]}",
        "{\"offset_into_first_range\":0,\"terms\":[],\"fetch_info\":7}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_str(bad[i], 0, &r);
        if (rc != -EBADMSG)
            fprintf(stderr, "  body %s: %d\n", bad[i], rc);
        T_EQ_INT(rc, -EBADMSG);
    }
    /* an embedded NUL, and bytes after the given length are not looked at */
    const char nul[] = "{\"offset_into_first_range\":0,\"terms\":[]}\0";
    T_EQ_INT(xet_recon_parse(nul, sizeof nul - 1, 0, &r), -EBADMSG);
    T_EQ_INT(xet_recon_parse(nul, sizeof nul - 2, 0, &r), 0);
    xet_recon_free(&r);
    T_EQ_INT(xet_recon_parse("{}}", 2, 0, &r), -EBADMSG);

    /* every truncation of valid bodies */
    for (int v2 = 0; v2 < 2; v2++) {
        cJSON *v = valid_case(v2);
        char *text = cJSON_Print(v); /* formatted: truncations inside whitespace too */
        size_t len = strlen(text);
        for (size_t cut = 0; cut < len; cut++) {
            /* a heap copy of exactly `cut` bytes: ASan catches over-reads */
            char *piece = malloc(cut ? cut : 1);
            memcpy(piece, text, cut);
            int rc = xet_recon_parse(piece, cut, 0, &r);
            /* only trailing whitespace may go */
            bool ws_only = true;
            for (size_t k = cut; k < len; k++)
                if (!strchr(" \t\r\n", text[k]))
                    ws_only = false;
            if (ws_only) {
                T_EQ_INT(rc, 0);
                xet_recon_free(&r);
            } else if (rc != -EBADMSG) {
                T_EQ_INT(rc, -EBADMSG);
                fprintf(stderr, "  truncated at %zu\n", cut);
            }
            free(piece);
        }
        T_EQ_INT(xet_recon_parse(text, len, 0, &r), 0);
        xet_recon_free(&r);
        free(text);
        cJSON_Delete(v);
    }
}

/* Every node of a valid body replaced by every kind of value, or deleted;
 * then random byte edits of the text.  Only 0 or -EBADMSG may come back. */
static const char *SWAPS[] = {"null", "true", "\"s\"", "\"\"", "1.5", "-1", "0", "8192",
                              "4294967296", "[]", "{}", "[{}]", "{\"start\":0,\"end\":1}"};

static int nodes_of(cJSON *n, cJSON **out, int k)
{
    for (cJSON *c = n->child; c; c = c->next) {
        out[k++] = c;
        k = nodes_of(c, out, k);
    }
    return k;
}

static void check_rc(int rc, int *ok, int *bad)
{
    if (rc == 0)
        (*ok)++;
    else if (rc == -EBADMSG)
        (*bad)++;
    else
        T_EQ_INT(rc, -EBADMSG);
}

static void test_fuzz(void)
{
    int ok = 0, badn = 0;
    for (int v2 = 0; v2 < 2; v2++) {
        cJSON *v = valid_case(v2);
        cJSON *nodes[512];
        int n = nodes_of(v, nodes, 0);
        for (int i = 0; i < n; i++) {
            for (size_t s = 0; s <= sizeof SWAPS / sizeof SWAPS[0]; s++) {
                cJSON *copy = cJSON_Duplicate(v, 1);
                cJSON *cn[512];
                nodes_of(copy, cn, 0);
                /* parent of node i: find it by walking */
                cJSON *parent = NULL;
                for (int k = -1; k < n && !parent; k++) {
                    cJSON *p = k < 0 ? copy : cn[k];
                    for (cJSON *c = p->child; c; c = c->next)
                        if (c == cn[i])
                            parent = p;
                }
                if (s == sizeof SWAPS / sizeof SWAPS[0])
                    cJSON_Delete(cJSON_DetachItemViaPointer(parent, cn[i]));
                else
                    swap_node(parent, cn[i], raw(SWAPS[s]));
                xet_recon r;
                int rc = parse_tree(copy, 0, &r);
                check_rc(rc, &ok, &badn);
                if (rc == 0) {
                    /* whatever parsed must map and link consistently */
                    for (size_t t = 0; t < r.nterms; t++)
                        T_TRUE(r.terms[t].fetch && r.terms[t].fetch->chunk_start <= r.terms[t].chunk_start);
                    xet_piece *p;
                    uint64_t total = terms_end(&r) - r.base;
                    long np = xet_recon_map(&r, r.base, total, &p);
                    T_TRUE(np >= 0 && (size_t)np == r.nterms);
                    free(p);
                    xet_recon_free(&r);
                }
                cJSON_Delete(copy);
            }
        }
        /* random byte edits */
        char *text = cJSON_PrintUnformatted(v);
        size_t len = strlen(text);
        static const char alphabet[] = "{}[],:\"0123456789-.eE abcdefxyz\\";
        for (int it = 0; it < 3000; it++) {
            char *t = malloc(len);
            memcpy(t, text, len);
            int edits = 1 + (int)(rnd() % 4);
            for (int e = 0; e < edits; e++)
                t[rnd() % len] = alphabet[rnd() % (sizeof alphabet - 1)];
            xet_recon r;
            int rc = xet_recon_parse(t, len, 0, &r);
            check_rc(rc, &ok, &badn);
            if (rc == 0)
                xet_recon_free(&r);
            free(t);
        }
        free(text);
        cJSON_Delete(v);
    }
    fprintf(stderr, "  fuzz: %d accepted, %d rejected\n", ok, badn);
    T_TRUE(badn > 0 && ok > 0);
}

int main(void)
{
    xorb = t_read_file(XORB_FILE, &xorb_len);
    nxrecs = xet_xorb_index(xorb, xorb_len, &xrecs);
    if (nxrecs != 8) {
        fprintf(stderr, "xet_xorb_index on the vector xorb: %ld\n", nxrecs);
        return 1;
    }
    T_RUN(test_vectors);
    T_RUN(test_repeated_xorb);
    T_RUN(test_extract);
    T_RUN(test_shapes);
    T_RUN(test_malformed_common);
    T_RUN(test_malformed_v2);
    T_RUN(test_malformed_v1);
    T_RUN(test_malformed_text);
    T_RUN(test_fuzz);
    free(xrecs);
    free(xorb);
    return t_done();
}
