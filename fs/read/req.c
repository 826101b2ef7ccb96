/* req.c — the contract is in req.h. */
#include "read_int.h"
#include "req.h"

void zf_hist_add(zf_hist *h, double ms)
{
    static const double bound[ZF_HIST_N] = ZF_HIST_BOUNDS_MS;
    int i = 0;
    while (i < ZF_HIST_N - 1 && ms > bound[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum_ms += ms;
}

zf_metrics *zf_read_metrics(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    return c ? &c->m : NULL;
}

rd_pin *rd_pin_new(const zc_ref *ref)
{
    rd_pin *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    p->ref = *ref;
    p->refs = 1;
    return p;
}

void rd_pin_put(rd_pin *p)
{
    if (--p->refs == 0) {
        zc_unpin(&p->ref);
        free(p);
    }
}

/* Add a reference to p to the set (0, or -ENOMEM and nothing added). */
int rd_pins_add(rd_pins *s, rd_pin *p)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        rd_pin **nv = realloc(s->v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = p;
    p->refs++;
    return 0;
}

void rd_pins_clear(rd_pins *s)
{
    for (size_t i = 0; i < s->n; i++)
        rd_pin_put(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void rd_read_free(rd_read *r)
{
    if (r->deadline)
        uv_close((uv_handle_t *)r->deadline, free_handle);
    rd_pins_clear(&r->pins);
    free(r->snap);
    free(r);
}

/* A request of kind ops, in a record of size bytes (the kind's own, rd_read first). */
rd_read *rd_read_new(size_t size, const rd_ops *ops, rd_ctx *c, rd_file *f, uint64_t off,
                     uint64_t len)
{
    rd_read *r = f ? calloc(1, size) : NULL;
    if (!r)
        return NULL;
    r->ops = ops;
    r->c = c;
    r->f = f;
    r->off = off;
    r->len = len;
    return r;
}

/* Answer the request (its kind's way) and free it. */
void rd_read_end(rd_read *r, int err, const uint8_t *data, size_t len)
{
    r->ops->answer(r, err, data, len);
    rd_read_free(r);
}

/* The cause was logged where it happened. */
void rd_read_fail(rd_read *r, int err)
{
    rd_read_end(r, err ? err : -EIO, NULL, 0);
}

int rd_read_want(const rd_read *r)
{
    return r->ops->want ? r->ops->want(r) : RD_WANT_FG;
}

void rd_note_read(rd_read *r, int err)
{
    zf_metrics *m = &r->c->m;
    if (err) {
        m->read_errors++;
        return;
    }
    double ms = (double)(uv_hrtime() - r->t0) / 1e6;
    m->reads++;
    if (r->ops->http)
        m->http_reads++;
    m->read_bytes += r->len;
    m->bytes_by_src[ZF_SRC_STORE] += r->len;
    if (r->rounds)
        m->reads_waited++;
    else
        m->reads_from_store++;
    zf_hist_add(&m->read_ms, ms);
    /* slowest recent: replace the fastest kept, or an entry older than a minute */
    int k = -1;
    for (int i = 0; i < ZF_SLOW_N; i++)
        if (k < 0 || m->slow[i].ms < m->slow[k].ms)
            k = i;
    if (ms > m->slow[k].ms) {
        zf_slow_read *e = &m->slow[k];
        e->ms = ms;
        e->off = r->off;
        e->len = r->len;
        snprintf(e->path, sizeof e->path, "%s/%s", r->f->repo, r->f->path);
        /* keep them sorted, slowest first */
        for (int i = k; i > 0 && m->slow[i].ms > m->slow[i - 1].ms; i--) {
            zf_slow_read t = m->slow[i];
            m->slow[i] = m->slow[i - 1];
            m->slow[i - 1] = t;
        }
        for (int i = k; i + 1 < ZF_SLOW_N && m->slow[i].ms < m->slow[i + 1].ms; i++) {
            zf_slow_read t = m->slow[i];
            m->slow[i] = m->slow[i + 1];
            m->slow[i + 1] = t;
        }
    }
}

/* A FUSE read answered from a run in memory: stats, and no deadline. */
void rd_read_answered_early(rd_read *r)
{
    if (r->deadline)
        uv_timer_stop(r->deadline);
    rd_note_read(r, 0);
    r->c->m.reads_early++;
}
