/* cas.c — the origin's Xet CAS: reconstructions, xorb and shard uploads
 * (deduplicated shards), chunk queries. */
#include "server_int.h"

/* ---- CAS --------------------------------------------------------------------- */

typedef struct kept {
    const o_term *t;
    uint32_t start, end, unpacked;
} kept;

typedef struct span {
    size_t xi;            /* index into xorb list */
    uint32_t start, end;
    uint64_t bs, be;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->xi != y->xi)
        return x->xi < y->xi ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

enum MHD_Result os__h_reconstruction(ctx *x, const char *hash, int version)
{
    int e = os__check_cas_token(x->S, x->c, false);
    if (e)
        return os__cas_denied(x->c, e);
    xet_hash fh;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &fh) != 0)
        return os__send_err(x->c, 400, NULL, "invalid file hash");
    o_file f;
    if (o_file_load(x->S->s, &fh, &f) != 0)
        return os__send_err(x->c, 404, NULL, "file not found");
    uint64_t S0 = 0, E0 = f.size ? f.size - 1 : 0;
    const char *rh = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Range");
    if (rh) {
        int pr = os__parse_range(rh, f.size ? f.size : 1, &S0, &E0);
        if (pr == -1) {
            o_file_free(&f);
            return os__send_err(x->c, 400, NULL, "invalid Range");
        }
        if (pr == -2 || (f.size == 0 && S0 > 0) || (f.size > 0 && S0 >= f.size)) {
            o_file_free(&f);
            return os__send_err(x->c, 416, NULL, "range start past end of file");
        }
    }
    /* trim terms at chunk granularity */
    kept *k = calloc(f.nterms ? f.nterms : 1, sizeof *k);
    o_xorb_idx *idx = calloc(f.nterms ? f.nterms : 1, sizeof *idx);
    xet_hash *xl = calloc(f.nterms ? f.nterms : 1, sizeof *xl);
    size_t *txi = calloc(f.nterms ? f.nterms : 1, sizeof *txi);
    size_t nk = 0, nx = 0;
    uint64_t first_off = 0;
    bool have_first = false;
    e = (k && idx && xl && txi) ? 0 : -ENOMEM;
    uint64_t off = 0;
    for (size_t i = 0; i < f.nterms && !e && f.size; i++) {
        const o_term *t = &f.terms[i];
        size_t xi;
        for (xi = 0; xi < nx; xi++)
            if (xet_hash_eq(&xl[xi], &t->xorb))
                break;
        if (xi == nx) {
            e = o_xorb_idx_load(x->S->s, &t->xorb, &idx[nx]);
            if (e)
                break;
            xl[nx++] = t->xorb;
        }
        const o_xorb_idx *ix = &idx[xi];
        if (t->end > ix->n || t->start >= t->end) {
            e = -EBADMSG;
            break;
        }
        uint32_t ks = UINT32_MAX, ke = 0, un = 0;
        uint64_t co = off;
        for (uint32_t ch = t->start; ch < t->end; ch++) {
            uint64_t cend = co + ix->ulen[ch];
            if (cend > S0 && co <= E0) {
                if (ks == UINT32_MAX) {
                    ks = ch;
                    if (!have_first) {
                        first_off = co;
                        have_first = true;
                    }
                }
                ke = ch + 1;
                un += ix->ulen[ch];
            }
            co = cend;
        }
        off = co;
        if (ks != UINT32_MAX) {
            k[nk].t = t;
            k[nk].start = ks;
            k[nk].end = ke;
            k[nk].unpacked = un;
            txi[nk] = xi;
            nk++;
        }
    }
    if (e) {
        for (size_t i = 0; i < nx; i++)
            o_xorb_idx_free(&idx[i]);
        free(k);
        free(idx);
        free(xl);
        free(txi);
        o_file_free(&f);
        return os__send_err(x->c, 500, NULL, "reconstruction data unavailable");
    }
    /* fetch spans: per xorb, merge overlapping or adjacent chunk ranges */
    span *sp = calloc(nk ? nk : 1, sizeof *sp);
    size_t ns = 0;
    for (size_t i = 0; i < nk && sp; i++)
        sp[ns++] = (span){.xi = txi[i], .start = k[i].start, .end = k[i].end};
    if (sp)
        qsort(sp, ns, sizeof *sp, cmp_span);
    size_t nm = 0;
    for (size_t i = 0; i < ns; i++) {
        if (nm && sp[nm - 1].xi == sp[i].xi && sp[i].start <= sp[nm - 1].end) {
            if (sp[i].end > sp[nm - 1].end)
                sp[nm - 1].end = sp[i].end;
        } else {
            sp[nm++] = sp[i];
        }
    }
    for (size_t i = 0; i < nm; i++) {
        const o_xorb_idx *ix = &idx[sp[i].xi];
        sp[i].bs = sp[i].start ? ix->rec_end[sp[i].start - 1] : 0;
        sp[i].be = (uint64_t)ix->rec_end[sp[i].end - 1] - 1;
    }
    char *base = os__base_url(x->S, x->c);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "offset_into_first_range", (double)(have_first ? S0 - first_off : 0));
    cJSON *terms = cJSON_AddArrayToObject(j, "terms");
    for (size_t i = 0; i < nk; i++) {
        char hs[65];
        xet_hash_to_string(&k[i].t->xorb, hs);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "hash", hs);
        cJSON_AddNumberToObject(t, "unpacked_length", k[i].unpacked);
        cJSON *rg = cJSON_AddObjectToObject(t, "range");
        cJSON_AddNumberToObject(rg, "start", k[i].start);
        cJSON_AddNumberToObject(rg, "end", k[i].end);
        cJSON_AddItemToArray(terms, t);
    }
    cJSON *map = cJSON_AddObjectToObject(j, version == 2 ? "xorbs" : "fetch_info");
    /* xorbs in order of first appearance in the terms */
    for (size_t i = 0; i < nk; i++) {
        char hs[65];
        xet_hash_to_string(&k[i].t->xorb, hs);
        if (cJSON_GetObjectItemCaseSensitive(map, hs))
            continue;
        cJSON *arr = cJSON_AddArrayToObject(map, hs);
        for (size_t m = 0; m < nm; m++) {
            if (sp[m].xi != txi[i])
                continue;
            char *url = os__xorb_url(x->S, base ? base : "", hs, sp[m].bs, sp[m].be);
            cJSON *d = cJSON_CreateObject();
            if (version == 2) {
                cJSON_AddStringToObject(d, "url", url ? url : "");
                cJSON *rgs = cJSON_AddArrayToObject(d, "ranges");
                cJSON *one = cJSON_CreateObject();
                cJSON *ch = cJSON_AddObjectToObject(one, "chunks");
                cJSON_AddNumberToObject(ch, "start", sp[m].start);
                cJSON_AddNumberToObject(ch, "end", sp[m].end);
                cJSON *by = cJSON_AddObjectToObject(one, "bytes");
                cJSON_AddNumberToObject(by, "start", (double)sp[m].bs);
                cJSON_AddNumberToObject(by, "end", (double)sp[m].be);
                cJSON_AddItemToArray(rgs, one);
            } else {
                cJSON *rg = cJSON_AddObjectToObject(d, "range");
                cJSON_AddNumberToObject(rg, "start", sp[m].start);
                cJSON_AddNumberToObject(rg, "end", sp[m].end);
                cJSON_AddStringToObject(d, "url", url ? url : "");
                cJSON *ur = cJSON_AddObjectToObject(d, "url_range");
                cJSON_AddNumberToObject(ur, "start", (double)sp[m].bs);
                cJSON_AddNumberToObject(ur, "end", (double)sp[m].be);
            }
            free(url);
            cJSON_AddItemToArray(arr, d);
        }
    }
    free(base);
    free(sp);
    for (size_t i = 0; i < nx; i++)
        o_xorb_idx_free(&idx[i]);
    free(k);
    free(idx);
    free(xl);
    free(txi);
    o_file_free(&f);
    return os__send_json(x->c, 200, j, NULL);
}

/* validate and store an uploaded xorb */
enum MHD_Result os__h_xorb_post(ctx *x, const char *hash)
{
    int e = os__check_cas_token(x->S, x->c, true);
    if (e)
        return os__cas_denied(x->c, e);
    xet_hash h;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &h) != 0)
        return os__send_err(x->c, 400, NULL, "invalid xorb hash");
    if (o_xorb_exists(x->S->s, &h, NULL)) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "was_inserted", false);
        return os__send_json(x->c, 200, j, NULL);
    }
    xet_record *recs = NULL;
    long n = xet_xorb_index(x->rq->body, x->rq->len, &recs);
    if (n <= 0 || (size_t)n > XET_XORB_MAX_CHUNKS) {
        free(recs);
        return os__send_err(x->c, 400, NULL, "malformed xorb");
    }
    o_xorb_idx idx = {.n = (uint32_t)n};
    idx.rec_end = malloc((size_t)n * sizeof *idx.rec_end);
    idx.ulen = malloc((size_t)n * sizeof *idx.ulen);
    idx.hash = malloc((size_t)n * sizeof *idx.hash);
    xet_merkle_node *leaves = malloc((size_t)n * sizeof *leaves);
    uint8_t *dec = malloc(XET_CHUNK_MAX);
    e = (idx.rec_end && idx.ulen && idx.hash && leaves && dec) ? 0 : -ENOMEM;
    uint64_t end = 0;
    for (long i = 0; i < n && !e; i++) {
        const xet_record *r = &recs[i];
        e = xet_chunk_decode(&r->hdr, x->rq->body + r->offset + XET_CHUNK_HEADER_LEN, dec);
        if (e)
            break;
        xet_chunk_hash(dec, r->hdr.ulen, &idx.hash[i]);
        idx.ulen[i] = r->hdr.ulen;
        end = r->offset + XET_CHUNK_HEADER_LEN + r->hdr.clen;
        idx.rec_end[i] = (uint32_t)end;
        leaves[i].hash = idx.hash[i];
        leaves[i].len = r->hdr.ulen;
    }
    free(dec);
    free(recs);
    enum MHD_Result ret;
    if (e == -ENOMEM) {
        ret = MHD_NO;
    } else if (e || end > XET_XORB_MAX_BYTES) {
        ret = os__send_err(x->c, 400, NULL, "xorb does not decode");
    } else {
        xet_hash root;
        xet_merkle_root(leaves, (size_t)n, &root);
        if (!xet_hash_eq(&root, &h)) {
            ret = os__send_err(x->c, 400, NULL, "xorb hash mismatch");
        } else {
            /* footer (if any) dropped: stored as records only */
            e = o_xorb_store(x->S->s, &h, x->rq->body, (size_t)end, &idx);
            if (!e)
                e = o_cindex_add_xorb(&x->S->ci, &h, &idx);
            if (e) {
                ret = os__send_err(x->c, 500, NULL, strerror(-e));
            } else {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddBoolToObject(j, "was_inserted", true);
                ret = os__send_json(x->c, 200, j, NULL);
            }
        }
    }
    free(leaves);
    o_xorb_idx_free(&idx);
    return ret;
}

enum MHD_Result os__h_shard_post(ctx *x, int version)
{
    int e = os__check_cas_token(x->S, x->c, true);
    if (e)
        return os__cas_denied(x->c, e);
    char err[256] = "";
    pthread_mutex_lock(&x->S->upmu);
    int r = o_shard_accept(x->S->s, &x->S->ci, x->rq->body, x->rq->len, err, sizeof err);
    pthread_mutex_unlock(&x->S->upmu);
    if (version == 2) {
        char *s;
        if (r < 0)
            s = o_strdup_printf("{\"type\":\"validating\",\"verified\":0,\"total\":1}\n"
                                "{\"type\":\"error\",\"message\":\"%s\"}\n",
                                err[0] ? err : "invalid shard");
        else
            s = o_strdup_printf("{\"type\":\"validating\",\"verified\":1,\"total\":1}\n"
                                "{\"type\":\"committing\",\"stage\":\"uploading\"}\n"
                                "{\"type\":\"result\",\"result\":%d}\n",
                                r);
        if (!s)
            return MHD_NO;
        struct MHD_Response *rs = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(rs, "Content-Type", "application/x-ndjson");
        return os__queue(x->c, 200, rs);
    }
    if (r < 0)
        return os__send_err(x->c, 400, NULL, err[0] ? err : "invalid shard");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "result", r);
    return os__send_json(x->c, 200, j, NULL);
}

/* A global-dedup answer: one xorb block, no files, plain chunk hashes, and
 * (unlike upload shards) the lookup tables and footer offsets that
 * xet-core's shard reader relies on: xorb lookup {u64 key, u32 record
 * index}, chunk lookup {u64 key, u32 xorb record index, u32 chunk index},
 * keys = first 8 raw hash bytes as LE u64, sorted. */
typedef struct lk {
    uint64_t key;
    uint32_t a, b;
} lk;

static int cmp_lk(const void *x, const void *y)
{
    const lk *p = x, *q = y;
    return p->key < q->key ? -1 : p->key > q->key;
}

static void w64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int dedup_shard(const xet_shard_xorb *sx, uint8_t **out, size_t *outlen)
{
    xet_shard sh;
    memset(&sh, 0, sizeof sh);
    sh.nxorbs = 1;
    sh.xorbs = (xet_shard_xorb *)sx;
    uint8_t *body = NULL;
    size_t blen = 0;
    int e = xet_shard_write(&sh, false, &body, &blen);
    if (e)
        return e;
    size_t nck = sx->nchunks;
    lk *t = calloc(nck ? nck : 1, sizeof *t);
    size_t total = blen + 12 + 16 * nck + XET_SHARD_FOOTER_LEN;
    uint8_t *b = realloc(body, total);
    if (!t || !b) {
        free(t);
        free(b ? b : body);
        return -ENOMEM;
    }
    w64(b + 40, XET_SHARD_FOOTER_LEN); /* header: footer present */
    size_t xorb_info = blen - 48 - (1 + nck) * 48; /* after the file bookend */
    uint8_t *p = b + blen;
    size_t cas_lookup = blen;
    uint64_t k;
    memcpy(&k, sx->hash.b, 8);
    w64(p, k);
    memset(p + 8, 0, 4); /* xorb header is record 0 of its section */
    p += 12;
    size_t chunk_lookup = (size_t)(p - b);
    for (size_t i = 0; i < nck; i++) {
        memcpy(&t[i].key, sx->chunks[i].hash.b, 8);
        t[i].a = 0;
        t[i].b = (uint32_t)i;
    }
    qsort(t, nck, sizeof *t, cmp_lk);
    for (size_t i = 0; i < nck; i++) {
        w64(p, t[i].key);
        for (int j = 0; j < 4; j++) {
            p[8 + j] = (uint8_t)(t[i].a >> (8 * j));
            p[12 + j] = (uint8_t)(t[i].b >> (8 * j));
        }
        p += 16;
    }
    free(t);
    uint8_t *ft = p;
    memset(ft, 0, XET_SHARD_FOOTER_LEN);
    uint64_t now = (uint64_t)time(NULL);
    w64(ft + 0, 1);
    w64(ft + 8, XET_SHARD_HEADER_LEN);
    w64(ft + 16, xorb_info);
    w64(ft + 24, cas_lookup); /* file lookup: empty, at the xorb lookup */
    w64(ft + 32, 0);
    w64(ft + 40, cas_lookup);
    w64(ft + 48, 1);
    w64(ft + 56, chunk_lookup);
    w64(ft + 64, nck);
    w64(ft + 104, now);
    w64(ft + 112, now + 7 * 86400);
    w64(ft + 168, sx->bytes_on_disk);
    w64(ft + 176, sx->bytes_in_xorb);
    w64(ft + 184, sx->bytes_in_xorb);
    w64(ft + 192, (uint64_t)(ft - b));
    *out = b;
    *outlen = total;
    return 0;
}

enum MHD_Result os__h_chunk_query(ctx *x, const char *hash)
{
    int e = os__check_cas_token(x->S, x->c, false);
    if (e)
        return os__cas_denied(x->c, e);
    xet_hash ch, xh;
    if (strlen(hash) != 64 || xet_hash_from_string(hash, &ch) != 0)
        return os__send_err(x->c, 400, NULL, "invalid chunk hash");
    uint32_t index;
    if (o_cindex_find(&x->S->ci, &ch, &index, &xh) < 0)
        return os__send_err(x->c, 404, NULL, "chunk not found");
    o_xorb_idx idx;
    if (o_xorb_idx_load(x->S->s, &xh, &idx) != 0)
        return os__send_err(x->c, 404, NULL, "chunk not found");
    uint64_t size = 0;
    o_xorb_exists(x->S->s, &xh, &size);
    xet_shard_xorb sx;
    memset(&sx, 0, sizeof sx);
    sx.hash = xh;
    sx.nchunks = idx.n;
    sx.bytes_on_disk = (uint32_t)size;
    sx.chunks = calloc(idx.n, sizeof *sx.chunks);
    uint32_t uoff = 0;
    for (uint32_t i = 0; sx.chunks && i < idx.n; i++) {
        sx.chunks[i].hash = idx.hash[i];
        sx.chunks[i].offset = uoff;
        sx.chunks[i].len = idx.ulen[i];
        uoff += idx.ulen[i];
    }
    sx.bytes_in_xorb = uoff;
    o_xorb_idx_free(&idx);
    uint8_t *out = NULL;
    size_t outlen = 0;
    e = sx.chunks ? dedup_shard(&sx, &out, &outlen) : -ENOMEM;
    free(sx.chunks);
    if (e)
        return os__send_err(x->c, 500, NULL, "shard write failed");
    struct MHD_Response *rs = MHD_create_response_from_buffer(outlen, out, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    return os__queue(x->c, 200, rs);
}

static ssize_t never_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

enum MHD_Result os__head_len(struct MHD_Connection *c, uint64_t len)
{
    struct MHD_Response *rs = MHD_create_response_from_callback(len, 4096, never_cb, NULL, NULL);
    return rs ? os__queue(c, 200, rs) : MHD_NO;
}
