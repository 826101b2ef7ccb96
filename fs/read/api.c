/* api.c — the contract is in api.h. */
#include "read_int.h"
#include "api.h"
#include "file.h"
#include "req.h"
#include "route.h"

/* ---- FUSE reads ---- */

static void fuse_answer(rd_read *r, int err, const uint8_t *data, size_t len)
{
    rd_note_read(r, err);
    if (err)
        fuse_reply_err(r->req, EIO);
    else if (data) /* else it went out from the pool (store read) */
        fuse_reply_buf(r->req, (const char *)data, len);
}

static const rd_ops fuse_ops = {
    .name = "fuse", .store = RD_STORE_REPLY, .deadline = true, .seq = true, .early = true,
    .answer = fuse_answer,
};

void rd_read_blob(zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off)
{
    rd_ctx *c = fs->read_ctx;
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    uint64_t fsize = e->file->size;
    if ((uint64_t)off >= fsize || size == 0) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    rd_file *f = rd_file_get(c, e);
    rd_read *r = rd_read_new(sizeof *r, &fuse_ops, c, f, (uint64_t)off,
                             umin(size, fsize - (uint64_t)off));
    if (!r) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    r->req = req;
    r->t0 = uv_hrtime();
    rd_read_go(r);
}

/* ---- internal reads: zf_read_async (HTTP), zf_read_stored, zf_read_check ---- */

typedef struct cb_read {
    rd_read r;
    zf_read_cb cb;
    void *ud;
} cb_read;

static void cb_answer(rd_read *r, int err, const uint8_t *data, size_t len)
{
    cb_read *q = (cb_read *)r;
    if (r->ops->http)
        rd_note_read(r, err);
    q->cb(q->ud, err, err ? NULL : data, err ? 0 : len);
}

static const rd_ops http_ops = {
    .name = "http", .store = RD_STORE_COPY, .deadline = true, .seq = true, .http = true,
    .answer = cb_answer,
};
static const rd_ops stored_ops = {
    .name = "stored", .store = RD_STORE_COPY, .nofetch = true, .answer = cb_answer,
};
static const rd_ops check_ops = {
    .name = "check", .store = RD_STORE_WALK, .nofetch = true, .answer = cb_answer,
};

static int cb_read_start(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb,
                         void *ud, const rd_ops *ops)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb || len == 0 || off >= e->file->size ||
        (ops == &check_ops && !ZF_IN_XORBS(e->file)))
        return -EINVAL;
    rd_file *f = rd_file_get(c, e);
    cb_read *q = (cb_read *)rd_read_new(sizeof *q, ops, c, f, off, f ? umin(len, f->size - off) : 0);
    if (!q)
        return -ENOMEM;
    q->cb = cb;
    q->ud = ud;
    if (ops->http)
        q->r.t0 = uv_hrtime();
    rd_read_go(&q->r);
    return 0;
}

int zf_read_async(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb, void *ud)
{
    return cb_read_start(fs, e, off, len, cb, ud, &http_ops);
}

int zf_read_stored(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb, void *ud)
{
    return cb_read_start(fs, e, off, len, cb, ud, &stored_ops);
}

int zf_read_check(zf_fs *fs, const zv_ent *e, zf_read_cb cb, void *ud)
{
    return cb_read_start(fs, e, 0, e && e->kind == ZV_BLOB ? e->file->size : 0, cb, ud,
                         &check_ops);
}

/* ---- labels (pin) and listings of a file's xorbs (evict) ---- */

typedef struct label_read {
    rd_read r;
    bool on;
    void (*label_cb)(void *ud, int err, uint64_t nxorbs);
    void (*xorbs_cb)(void *ud, int err, const xet_hash *v, size_t n);
    void *ud;
} label_read;

static void label_xorbs(rd_read *r, int err, const xet_hash *v, size_t n, bool whole)
{
    label_read *q = (label_read *)r;
    for (size_t i = 0; v && i < n; i++)
        zc_label_pin(r->c->store, &v[i], q->on);
    q->label_cb(q->ud, err ? err : whole ? 0 : -ENODATA, v ? n : 0);
}

static void label_answer(rd_read *r, int err, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    label_xorbs(r, err, NULL, 0, false);
}

static void list_xorbs(rd_read *r, int err, const xet_hash *v, size_t n, bool whole)
{
    (void)whole;
    label_read *q = (label_read *)r;
    /* what is stored may change under the caller (evict): forget which
     * windows were found whole */
    free(r->f->done);
    r->f->done = NULL;
    q->xorbs_cb(q->ud, err, v, n);
}

static void list_answer(rd_read *r, int err, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    list_xorbs(r, err, NULL, 0, false);
}

static const rd_ops label_ops = {
    .name = "label", .nofetch = true, .answer = label_answer, .xorbs = label_xorbs,
};
static const rd_ops list_ops = {
    .name = "xorbs", .nofetch = true, .answer = list_answer, .xorbs = list_xorbs,
};

static int label_start(zf_fs *fs, const zv_ent *e, const rd_ops *ops, bool on,
                       void (*label_cb)(void *ud, int err, uint64_t nxorbs),
                       void (*xorbs_cb)(void *ud, int err, const xet_hash *v, size_t n), void *ud)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || (!label_cb && !xorbs_cb) || !ZF_IN_XORBS(e->file) ||
        e->file->size == 0)
        return -EINVAL;
    rd_file *f = rd_file_get(c, e);
    label_read *q = (label_read *)rd_read_new(sizeof *q, ops, c, f, 0, 1);
    if (!q)
        return -ENOMEM;
    q->on = on;
    q->label_cb = label_cb;
    q->xorbs_cb = xorbs_cb;
    q->ud = ud;
    rd_read_go(&q->r);
    return 0;
}

int zf_read_label_file(zf_fs *fs, const zv_ent *e, bool on,
                       void (*cb)(void *ud, int err, uint64_t nxorbs), void *ud)
{
    return label_start(fs, e, &label_ops, on, cb, NULL, ud);
}

int zf_read_file_xorbs(zf_fs *fs, const zv_ent *e,
                       void (*cb)(void *ud, int err, const xet_hash *v, size_t n), void *ud)
{
    return label_start(fs, e, &list_ops, false, NULL, cb, ud);
}
