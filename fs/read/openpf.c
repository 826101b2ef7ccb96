/* openpf.c — the contract is in openpf.h. */
#include "read_int.h"
#include "file.h"
#include "fill.h"
#include "fmap.h"
#include "openpf.h"
#include "prefetch.h"
#include "store_read.h"

static void opf_fill_cb(void *ud, zf_fill *fl, uint64_t done, uint64_t total, bool final, int err);

/* While a .safetensors or .gguf blob is open: fill its first window, parse
 * the header from the store (tensors.c; more of the file if the header is
 * longer), then publish the tensor table as f->tmap for the reader-driven
 * prefetch (prefetch.c) and the tensor-sized misses (window.c) until the
 * last release.  No tensor is fetched here: which ones are wanted is the
 * reader's to show. */
enum { OPF_HEADER, OPF_PARSING, OPF_READY, OPF_DONE };

struct rd_openpf {
    rd_file *f;
    bool closed;              /* zf_read_stop came: zf_read_free frees */
    int opens;
    int state;
    zf_fill *fill;            /* in flight, or NULL */
    bool parsing;
    uint64_t have;            /* header bytes known stored */
    uv_work_t work;
    rd_ext *snap;
    size_t nsnap;
    zf_tensor_map map;
    int rc;
};


/* Until its header is parsed: nothing is prefetched ahead of its streams
 * (rd_seq_again when it is), its misses are fetched as any file's (tspan.h). */
static const zf_tensor_map opf_pending;

/* No tensor table for this open (not a well-formed header, a failed fill). */
static void opf_done(rd_openpf *o)
{
    o->state = OPF_DONE;
    if (o->f->tmap == &opf_pending) {
        o->f->tmap = NULL;
        rd_seq_again(o->f); /* prefetched as any file's from now */
    }
}

static void opf_maybe_free(rd_openpf *o)
{
    if (o->opens || o->fill || o->parsing || o->closed)
        return;
    o->f->opf = NULL;
    o->f->tmap = NULL;
    zf_tensor_map_free(&o->map);
    free(o->snap);
    free(o);
}

static void opf_fill(rd_openpf *o, const uint64_t *rg, size_t n)
{
    rd_file *f = o->f;
    int rc = rd_fill_start_file(f, rg, n, opf_fill_cb, o, &o->fill);
    if (rc) {
        o->fill = NULL;
        opf_done(o);
    }
}

static void opf_parse_work(uv_work_t *w)
{
    rd_openpf *o = w->data;
    rd_file *f = o->f;
    uint8_t *buf = malloc(o->have ? o->have : 1);
    uint64_t miss;
    o->rc = buf ? rd_store_read(f->c->store, o->snap, o->nsnap, 0, o->have, buf, &miss) : -ENOMEM;
    if (o->rc == 0)
        o->rc = zf_tensor_map_parse(buf, o->have, f->size, &o->map);
    free(buf);
}

static void opf_parse_after(uv_work_t *w, int status)
{
    rd_openpf *o = w->data;
    rd_file *f = o->f;
    o->parsing = false;
    free(o->snap);
    o->snap = NULL;
    int rc = status ? status : o->rc;
    if (o->opens == 0 || f->c->stopping) {
        opf_maybe_free(o);
        return;
    }
    if (rc == -EAGAIN && o->map.need > o->have && o->map.need <= f->size) {
        uint64_t rg[2] = {o->have, o->map.need};
        o->have = o->map.need;
        o->state = OPF_HEADER;
        opf_fill(o, rg, 1);
        return;
    }
    if (rc) {
        if (rc != -EBADMSG)
            zf_log(ZF_LOG_WARN, "zestfs: %s: tensor header: %s (no prefetch)\n", f->path,
                    zf_strerror(-rc));
        opf_done(o);
        return;
    }
    o->state = OPF_READY;
    f->tmap = &o->map;
    rd_seq_again(f);
}

static void opf_parse(rd_openpf *o)
{
    rd_file *f = o->f;
    if (rd_ext_uncovered(f, 0, o->have) != o->have) {
        opf_done(o);
        return;
    }
    long i1 = rd_ext_floor(f, o->have - 1);
    o->nsnap = (size_t)i1 + 1;
    o->snap = malloc(o->nsnap * sizeof *o->snap);
    if (!o->snap) {
        opf_done(o);
        return;
    }
    memcpy(o->snap, f->ext, o->nsnap * sizeof *o->snap);
    o->state = OPF_PARSING;
    o->parsing = true;
    o->work.data = o;
    if (uv_queue_work(f->c->loop, &o->work, opf_parse_work, opf_parse_after) != 0) {
        o->parsing = false;
        opf_done(o);
    }
}

static void opf_fill_cb(void *ud, zf_fill *fl, uint64_t done, uint64_t total, bool final, int err)
{
    rd_openpf *o = ud;
    if (!final)
        return;
    o->fill = NULL;
    if (err || o->opens == 0 || o->state != OPF_HEADER) {
        if (err && err != -ECANCELED)
            zf_log(ZF_LOG_WARN, "zestfs: %s: prefetch: %s\n", o->f->path, zf_strerror(-err));
        opf_done(o);
        opf_maybe_free(o);
        return;
    }
    opf_parse(o);
    opf_maybe_free(o);
}

static bool tensor_file(const char *path)
{
    size_t n = strlen(path);
    return (n > 12 && strcmp(path + n - 12, ".safetensors") == 0) ||
           (n > 5 && strcmp(path + n - 5, ".gguf") == 0);
}

void *rd_blob_opened(zf_fs *fs, const zv_ent *e)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping || !c->hub || !e->file->has_xet || e->file->size < 16 ||
        !tensor_file(e->file->path))
        return NULL;
    rd_file *f = rd_file_get(c, e);
    if (!f)
        return NULL;
    if (f->opf) {
        f->opf->opens++;
        return f;
    }
    rd_openpf *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->f = f;
    o->opens = 1;
    f->opf = o;
    f->tmap = &opf_pending;
    o->have = umin(f->size, CELL_SIZE);
    uint64_t rg[2] = {0, o->have};
    opf_fill(o, rg, 1);
    return f;
}

void rd_blob_released(zf_fs *fs, void *token)
{
    rd_file *f = token;
    rd_openpf *o = f ? f->opf : NULL;
    if (!o || --o->opens > 0)
        return;
    if (o->fill)
        zf_fill_cancel(o->fill);
    opf_maybe_free(o);
}

/* zf_read_stop: f's record is no longer freed at its last release (a parse
 * may still come back); rd_openpf_free frees it. */
void rd_openpf_stop(rd_file *f)
{
    if (f->opf)
        f->opf->closed = true;
}

/* zf_read_free: the record itself. */
void rd_openpf_free(rd_file *f)
{
    if (f->opf) {
        f->tmap = NULL;
        zf_tensor_map_free(&f->opf->map);
        free(f->opf->snap);
        free(f->opf);
        f->opf = NULL;
    }
}
