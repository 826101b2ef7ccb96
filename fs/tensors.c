/* tensors.c — where the tensors of a safetensors or GGUF file lie, from the
 * file's first bytes (for the prefetch that follows the reader: fs/read/
 * openpf.c, prefetch.c, tspan.c).
 *
 * safetensors: u64 LE header length N, N bytes of JSON {name: {dtype, shape,
 *   data_offsets: [b, e]}, "__metadata__": {...}}; tensor bytes at 8+N+b.
 * GGUF (v2, v3): "GGUF", u32 version, u64 tensor count, u64 metadata count,
 *   metadata (key string, u32 type, value), tensor infos (name string, u32
 *   n_dims, u64 dims[n_dims], u32 ggml type, u64 offset); the data section
 *   starts at the end of the infos rounded up to general.alignment (32 by
 *   default) and offsets are relative to it.  A tensor's size depends on
 *   the ggml type's block layout; we need none: tensor i spans from its
 *   offset to the next tensor's (the last to the end of the file).
 * Strings are u64 length + bytes.  Every length is checked against the
 * bytes given and against the file size; nothing here trusts the file. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tensors.h"
#include "xet.h"

#define MAX_TENSORS (1u << 20)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sort [start, end) pairs by start and merge touching or overlapping ones. */
static size_t merge(uint64_t *r, size_t n)
{
    qsort(r, n, 2 * sizeof *r, cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && r[2 * i] <= r[2 * k - 1]) {
            if (r[2 * i + 1] > r[2 * k - 1])
                r[2 * k - 1] = r[2 * i + 1];
            continue;
        }
        r[2 * k] = r[2 * i];
        r[2 * k + 1] = r[2 * i + 1];
        k++;
    }
    return k;
}

/* m->tens from the k [start, end) pairs of r: sorted by start, an overlap
 * cut off the later tensor, empty ones dropped. */
static int set_tens(zf_tensor_map *m, const uint64_t *r, size_t k)
{
    uint64_t *t = malloc((k ? k : 1) * 2 * sizeof *t);
    if (!t)
        return -ENOMEM;
    memcpy(t, r, k * 2 * sizeof *t);
    qsort(t, k, 2 * sizeof *t, cmp_u64);
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        uint64_t s = t[2 * i], e = t[2 * i + 1];
        if (n && s < t[2 * n - 1])
            s = t[2 * n - 1];
        if (e <= s)
            continue;
        t[2 * n] = s;
        t[2 * n + 1] = e;
        n++;
    }
    m->tens = t;
    m->ntens = n;
    return 0;
}

static int safetensors(const uint8_t *buf, size_t len, uint64_t fsize, zf_tensor_map *m)
{
    if (len < 8)
        return m->need = 8, -EAGAIN;
    uint64_t n = xet_le64(buf);
    if (n < 2 || n > ZF_TENSOR_HEADER_MAX || 8 + n > fsize)
        return -EBADMSG;
    if (len < 8 + n)
        return m->need = 8 + n, -EAGAIN;
    if (buf[8] != '{')
        return -EBADMSG;
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)n);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -EBADMSG;
    }
    uint64_t base = 8 + n;
    size_t cnt = (size_t)cJSON_GetArraySize(root);
    uint64_t *r = malloc((cnt ? cnt : 1) * 2 * sizeof *r);
    size_t k = 0;
    int rc = r ? 0 : -ENOMEM;
    const cJSON *t;
    cJSON_ArrayForEach(t, root)
    {
        if (rc)
            break;
        if (t->string && strcmp(t->string, "__metadata__") == 0)
            continue;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        const cJSON *b = cJSON_GetArrayItem(o, 0), *e = cJSON_GetArrayItem(o, 1);
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) != 2 || !cJSON_IsNumber(b) ||
            !cJSON_IsNumber(e) || b->valuedouble < 0 || e->valuedouble < b->valuedouble ||
            e->valuedouble > (double)(fsize - base)) {
            rc = -EBADMSG;
            break;
        }
        uint64_t bo = (uint64_t)b->valuedouble, eo = (uint64_t)e->valuedouble;
        if (eo > bo) {
            r[2 * k] = base + bo;
            r[2 * k + 1] = base + eo;
            k++;
        }
    }
    cJSON_Delete(root);
    if (!rc)
        rc = set_tens(m, r, k);
    if (rc) {
        free(r);
        return rc;
    }
    m->format = ZF_SAFETENSORS;
    m->header_len = base;
    m->ntensors = k;
    m->ranges = r;
    m->nranges = merge(r, k);
    return 0;
}

/* A cursor over the GGUF header: every read checks the bytes at hand. */
typedef struct cur {
    const uint8_t *p;
    size_t len, pos;
    uint64_t fsize;
} cur;

static int need(cur *c, uint64_t n)
{
    if (n > c->fsize || c->pos + n > c->fsize)
        return -EBADMSG;
    if (c->pos + n > c->len)
        return -EAGAIN;
    return 0;
}

static int get64(cur *c, uint64_t *v)
{
    int rc = need(c, 8);
    if (rc)
        return rc;
    *v = xet_le64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

static int get32(cur *c, uint32_t *v)
{
    int rc = need(c, 4);
    if (rc)
        return rc;
    *v = xet_le32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int skip(cur *c, uint64_t n)
{
    int rc = need(c, n);
    if (!rc)
        c->pos += n;
    return rc;
}

static int get_str(cur *c, const uint8_t **s, uint64_t *n)
{
    int rc = get64(c, n);
    if (rc)
        return rc;
    if (*n > (1u << 20))
        return -EBADMSG;
    if ((rc = need(c, *n)))
        return rc;
    *s = c->p + c->pos;
    c->pos += *n;
    return 0;
}

static const uint8_t SCALAR[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static int skip_value(cur *c, uint32_t type, int depth)
{
    if (type > 12 || depth > 2)
        return -EBADMSG;
    if (type == 8) {
        const uint8_t *s;
        uint64_t n;
        return get_str(c, &s, &n);
    }
    if (type != 9)
        return skip(c, SCALAR[type]);
    uint32_t et;
    uint64_t n;
    int rc = get32(c, &et);
    if (!rc)
        rc = get64(c, &n);
    if (rc)
        return rc;
    if (et > 12 || n > c->fsize)
        return -EBADMSG;
    if (et != 8 && et != 9)
        return skip(c, n * SCALAR[et]);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = skip_value(c, et, depth + 1);
    return rc;
}

static int gguf(const uint8_t *buf, size_t len, uint64_t fsize, zf_tensor_map *m)
{
    cur c = {buf, len, 4, fsize};
    uint32_t ver;
    uint64_t nt, nkv;
    int rc = get32(&c, &ver);
    if (!rc)
        rc = get64(&c, &nt);
    if (!rc)
        rc = get64(&c, &nkv);
    if (!rc && (ver < 2 || ver > 3 || nt > MAX_TENSORS || nkv > MAX_TENSORS))
        rc = -EBADMSG;
    uint64_t align = 32;
    for (uint64_t i = 0; i < nkv && !rc; i++) {
        const uint8_t *key;
        uint64_t kn;
        uint32_t type;
        rc = get_str(&c, &key, &kn);
        if (!rc)
            rc = get32(&c, &type);
        if (rc)
            break;
        if (kn == 17 && memcmp(key, "general.alignment", 17) == 0 && type == 4) {
            uint32_t a;
            if ((rc = get32(&c, &a)))
                break;
            if (a == 0 || (a & (a - 1)) || a > (1u << 20))
                rc = -EBADMSG;
            align = a;
        } else
            rc = skip_value(&c, type, 0);
    }
    uint64_t *off = !rc ? malloc((nt ? nt : 1) * sizeof *off) : NULL;
    if (!rc && !off)
        rc = -ENOMEM;
    for (uint64_t i = 0; i < nt && !rc; i++) {
        const uint8_t *name;
        uint64_t nn, d;
        uint32_t nd, type;
        rc = get_str(&c, &name, &nn);
        if (!rc)
            rc = get32(&c, &nd);
        if (!rc && nd > 8)
            rc = -EBADMSG;
        for (uint32_t k = 0; k < nd && !rc; k++)
            rc = get64(&c, &d);
        if (!rc)
            rc = get32(&c, &type);
        if (!rc)
            rc = get64(&c, &off[i]);
    }
    if (rc) {
        free(off);
        if (rc == -EAGAIN) /* a larger prefix helps: ask for twice as much */
            m->need = len * 2 > fsize ? fsize : len * 2;
        if (rc == -EAGAIN && m->need > ZF_TENSOR_HEADER_MAX)
            rc = -EFBIG;
        return rc;
    }
    uint64_t data = (c.pos + align - 1) / align * align;
    if (data > fsize) {
        free(off);
        return -EBADMSG;
    }
    qsort(off, nt, sizeof *off, cmp_u64);
    uint64_t *r = malloc((nt ? nt : 1) * 2 * sizeof *r);
    if (!r) {
        free(off);
        return -ENOMEM;
    }
    size_t k = 0;
    for (uint64_t i = 0; i < nt; i++) {
        if (off[i] > fsize - data) {
            free(off);
            free(r);
            return -EBADMSG;
        }
        uint64_t s = data + off[i], e = i + 1 < nt ? data + off[i + 1] : fsize;
        if (e > s) {
            r[2 * k] = s;
            r[2 * k + 1] = e;
            k++;
        }
    }
    free(off);
    int rc2 = set_tens(m, r, k);
    if (rc2) {
        free(r);
        return rc2;
    }
    m->format = ZF_GGUF;
    m->header_len = data;
    m->ntensors = nt;
    m->ranges = r;
    m->nranges = merge(r, k);
    return 0;
}

int zf_tensor_map_parse(const uint8_t *buf, size_t len, uint64_t fsize, zf_tensor_map *m)
{
    memset(m, 0, sizeof *m);
    if (len > fsize)
        return -EINVAL;
    if (fsize >= 4 && len < 4)
        return m->need = 4, -EAGAIN;
    if (len >= 4 && memcmp(buf, "GGUF", 4) == 0)
        return gguf(buf, len, fsize, m);
    return safetensors(buf, len, fsize, m);
}

void zf_tensor_map_free(zf_tensor_map *m)
{
    free(m->tens);
    free(m->ranges);
    memset(m, 0, sizeof *m);
}

size_t zf_tensor_from(const zf_tensor_map *m, uint64_t off)
{
    size_t lo = 0, hi = m->ntens; /* the first tensor starting at or after off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->tens[2 * mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long zf_tensor_at(const zf_tensor_map *m, uint64_t off)
{
    size_t i = zf_tensor_from(m, off + 1); /* the first starting after off */
    if (i == 0 || off == UINT64_MAX)
        return -1;
    i--;
    return off < m->tens[2 * i + 1] ? (long)i : -1;
}

void zf_tensor_clip(const zf_tensor_map *m, uint64_t s, uint64_t e, uint64_t *lo, uint64_t *hi)
{
    if (!m || e <= s)
        return;
    if (m->format == ZF_TENSORS_NONE) { /* no table yet: the MiB around the bytes */
        uint64_t g = ZF_TENSOR_UNKNOWN_GRAIN, l = s / g * g;
        uint64_t h = e > UINT64_MAX - g ? e : (e + g - 1) / g * g;
        if (l > *lo)
            *lo = l;
        if (h < *hi)
            *hi = h;
        return;
    }
    long a = zf_tensor_at(m, s), b = zf_tensor_at(m, e - 1);
    uint64_t l = s, h = e; /* across a boundary, or outside the tensors: what it asked */
    if (a >= 0 && a == b) {
        l = m->tens[2 * a];
        h = m->tens[2 * a + 1];
    }
    if (l > *lo)
        *lo = l;
    if (h < *hi)
        *hi = h;
}
