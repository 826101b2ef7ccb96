/* fmap.c — the contract is in fmap.h. */
#include "read_int.h"
#include "fmap.h"

/* Index of the last extent with off <= pos, or -1. */
long rd_ext_floor(const rd_file *f, uint64_t pos)
{
    long lo = 0, hi = (long)f->n;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (f->ext[mid].off <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* First byte of [off, end) that no extent covers, or end. */
uint64_t rd_ext_uncovered(const rd_file *f, uint64_t off, uint64_t end)
{
    uint64_t pos = off;
    while (pos < end) {
        long i = rd_ext_floor(f, pos);
        if (i < 0 || f->ext[i].off + f->ext[i].len <= pos)
            return pos;
        pos = f->ext[i].off + f->ext[i].len;
    }
    return end;
}

int rd_ext_add(rd_file *f, const rd_ext *e)
{
    uint64_t eend = e->off + e->len;
    long i = rd_ext_floor(f, e->off);
    if (i >= 0 && f->ext[i].off + f->ext[i].len >= eend)
        return 0; /* contained in an existing one */
    /* one at e's own offset is shorter (not containing it): e takes its
     * place (two extents at one offset made a map that loading refused:
     * a tensor's narrow extent, then its window's from the same byte) */
    size_t at = i >= 0 && f->ext[i].off == e->off ? (size_t)i : (size_t)(i + 1);
    /* drop those from `at` on contained in e */
    size_t j = at;
    while (j < f->n && f->ext[j].off + f->ext[j].len <= eend)
        j++;
    if (j > at) {
        memmove(&f->ext[at], &f->ext[j], (f->n - j) * sizeof *f->ext);
        f->n -= j - at;
    }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        rd_ext *ne = realloc(f->ext, nc * sizeof *ne);
        if (!ne)
            return -ENOMEM;
        f->ext = ne;
        f->cap = nc;
    }
    memmove(&f->ext[at + 1], &f->ext[at], (f->n - at) * sizeof *f->ext);
    f->ext[at] = *e;
    f->n++;
    return 1;
}

typedef struct map_job {
    uv_work_t work;
    rd_file *f;
    zc_store *store;
    char key[80];
    uint8_t *data;
    size_t len;
    rd_ext *ext;   /* loaded */
    size_t n;
    int rc;
} map_job;


static void map_key(const rd_file *f, char *out, size_t n)
{
    snprintf(out, n, "fmap/%s", f->id);
}

static void map_load_work(uv_work_t *w)
{
    map_job *j = w->data;
    void *data;
    size_t len;
    j->rc = zc_meta_get(j->store, j->key, &data, &len);
    if (j->rc)
        return;
    const uint8_t *p = data;
    j->rc = -EBADMSG;
    if (len < 16 || memcmp(p, MAP_MAGIC, 8) != 0)
        goto out;
    uint64_t n = xet_le64(p + 8);
    if (n > (len - 16) / MAP_REC || 16 + n * MAP_REC != len)
        goto out;
    j->ext = malloc((n ? n : 1) * sizeof *j->ext);
    if (!j->ext) {
        j->rc = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *q = p + 16 + i * MAP_REC;
        rd_ext *e = &j->ext[i];
        e->off = xet_le64(q);
        e->len = xet_le64(q + 8);
        memcpy(e->xorb.b, q + 16, 32);
        e->cs = xet_le32(q + 48);
        e->ce = xet_le32(q + 52);
        if (e->len == 0 || e->cs >= e->ce || e->off + e->len < e->off) {
            free(j->ext);
            j->ext = NULL;
            goto out;
        } /* out of order or overlapping (an older build's): rd_ext_add sorts them out */
    }
    j->n = (size_t)n;
    j->rc = 0;
out:
    free(data);
}

void rd_map_ready(rd_file *f)
{
    f->map_state = MAP_READY;
    rd_read *r = f->map_wait;
    f->map_wait = NULL;
    while (r) {
        rd_read *nx = r->next;
        f->c->resume(r); /* on with it (route) */
        r = nx;
    }
}

static void map_load_after(uv_work_t *w, int status)
{
    map_job *j = w->data;
    rd_file *f = j->f;
    if (j->rc == 0) {
        for (size_t i = 0; i < j->n; i++)
            if (j->ext[i].off + j->ext[i].len <= f->size && rd_ext_add(f, &j->ext[i]) > 0 &&
                f->c->fs->p2p)
                zf_p2p_repo_xorb(f->c->fs->p2p, zf_p2p_type_name((enum zf_repo_type)f->type),
                                 f->repo, &j->ext[i].xorb);
    } else if (j->rc != -ENOENT)
        zf_log(ZF_LOG_WARN, "zestfs: map of %s: %s (ignored)\n", f->id, zf_strerror(-j->rc));
    free(j->ext);
    free(j);
    rd_map_ready(f);
}

/* Load the map of f from the store (on the pool); rd_map_ready when done. */
void rd_map_load(rd_file *f)
{
    rd_ctx *c = f->c;
    map_job *j = calloc(1, sizeof *j);
    if (!j) {
        rd_map_ready(f);
        return;
    }
    j->f = f;
    j->store = c->store;
    map_key(f, j->key, sizeof j->key);
    j->work.data = j;
    f->map_state = MAP_LOADING;
    if (uv_queue_work(c->loop, &j->work, map_load_work, map_load_after) != 0) {
        j->rc = -EIO;
        map_load_after(&j->work, 0);
    }
}

static void map_save_work(uv_work_t *w)
{
    map_job *j = w->data;
    j->rc = zc_meta_put(j->store, j->key, j->data, j->len, 0);
}

static void map_save_after(uv_work_t *w, int status)
{
    map_job *j = w->data;
    rd_file *f = j->f;
    if (j->rc)
        zf_log(ZF_LOG_WARN, "zestfs: saving the map of %s: %s\n", f->id, zf_strerror(-j->rc));
    free(j->data);
    free(j);
    f->map_saving = false;
    if (f->map_dirty)
        rd_map_save(f);
}

void rd_map_save(rd_file *f)
{
    if (f->map_saving) {
        f->map_dirty = true;
        return;
    }
    f->map_dirty = false;
    map_job *j = calloc(1, sizeof *j);
    uint8_t *d = j ? malloc(16 + f->n * MAP_REC) : NULL;
    if (!d) {
        free(j);
        return;
    }
    memcpy(d, MAP_MAGIC, 8);
    xet_put_le64(d + 8, f->n);
    for (size_t i = 0; i < f->n; i++) {
        uint8_t *q = d + 16 + i * MAP_REC;
        xet_put_le64(q, f->ext[i].off);
        xet_put_le64(q + 8, f->ext[i].len);
        memcpy(q + 16, f->ext[i].xorb.b, 32);
        xet_put_le32(q + 48, f->ext[i].cs);
        xet_put_le32(q + 52, f->ext[i].ce);
    }
    j->f = f;
    j->store = f->c->store;
    j->data = d;
    j->len = 16 + f->n * MAP_REC;
    map_key(f, j->key, sizeof j->key);
    j->work.data = j;
    f->map_saving = true;
    if (uv_queue_work(f->c->loop, &j->work, map_save_work, map_save_after) != 0) {
        f->map_saving = false;
        free(d);
        free(j);
    }
}
