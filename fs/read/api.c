/* api.c — TODO note */
#include "read_int.h"
#include "api.h"
#include "file.h"
#include "route.h"

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
    rd_read *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    r->c = c;
    r->f = f;
    r->req = req;
    r->t0 = uv_hrtime();
    r->off = (uint64_t)off;
    r->len = umin(size, fsize - (uint64_t)off);
    rd_read_go(r);
}

enum { CB_HTTP, CB_STORED, CB_CHECK };


/* The internal reads: zf_read_async (kind CB_HTTP), zf_read_stored,
 * zf_read_check. */
static int cb_read(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb, void *ud,
                   int kind)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb || len == 0 || off >= e->file->size ||
        (kind == CB_CHECK && !ZF_IN_XORBS(e->file)))
        return -EINVAL;
    rd_file *f = rd_file_get(c, e);
    rd_read *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->f = f;
    r->cb = cb;
    r->ud = ud;
    r->http = kind == CB_HTTP;
    r->nofetch = kind != CB_HTTP;
    r->check = kind == CB_CHECK;
    if (r->http)
        r->t0 = uv_hrtime();
    r->off = off;
    r->len = umin(len, f->size - off);
    rd_read_go(r);
    return 0;
}

int zf_read_async(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb, void *ud)
{
    return cb_read(fs, e, off, len, cb, ud, CB_HTTP);
}

int zf_read_stored(zf_fs *fs, const zv_ent *e, uint64_t off, size_t len, zf_read_cb cb, void *ud)
{
    return cb_read(fs, e, off, len, cb, ud, CB_STORED);
}

int zf_read_check(zf_fs *fs, const zv_ent *e, zf_read_cb cb, void *ud)
{
    return cb_read(fs, e, 0, e && e->kind == ZV_BLOB ? e->file->size : 0, cb, ud, CB_CHECK);
}

int zf_read_label_file(zf_fs *fs, const zv_ent *e, bool on,
                       void (*cb)(void *ud, int err, uint64_t nxorbs), void *ud)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb || !ZF_IN_XORBS(e->file) || e->file->size == 0)
        return -EINVAL;
    rd_file *f = rd_file_get(c, e);
    rd_read *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->f = f;
    r->label = on ? 1 : -1;
    r->label_cb = cb;
    r->ud = ud;
    r->len = 1;
    rd_read_go(r);
    return 0;
}

int zf_read_file_xorbs(zf_fs *fs, const zv_ent *e,
                       void (*cb)(void *ud, int err, const xet_hash *v, size_t n), void *ud)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb || !ZF_IN_XORBS(e->file) || e->file->size == 0)
        return -EINVAL;
    rd_file *f = rd_file_get(c, e);
    rd_read *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->f = f;
    r->label = 2;
    r->xorbs_cb = cb;
    r->ud = ud;
    r->len = 1;
    rd_read_go(r);
    return 0;
}
