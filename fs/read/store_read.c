/* store_read.c — the contract is in store_read.h. */
#include "read_int.h"
#include "fmap.h"
#include "req.h"
#include "store_read.h"
#include "window.h"

/* Copy file bytes [off, off+len) from the store using extents ex[0..n)
 * (sorted, covering the range).  0, or -ENOENT with *miss = the first byte
 * that is not stored; -EBADMSG when the stored chunks disagree with an
 * extent's length.  out NULL: only check that every byte is stored. */
/* A store read answered by splicing the segment files' bytes into the FUSE
 * reply (fuse_reply_data with fd buffers): the pieces keep their segments
 * pinned until the reply is written. */
typedef struct rd_splice {
    struct fuse_bufvec *bv;    /* bv->count pieces */
    zc_ref *refs;
    size_t n, cap;
    bool hint;                 /* only ask the kernel to read the pieces ahead */
} rd_splice;


static int splice_add(rd_splice *sp, zc_ref *ref, uint64_t fpos, uint64_t len)
{
    if (sp->hint) {
        posix_fadvise(ref->fd, (off_t)fpos, (off_t)len, POSIX_FADV_WILLNEED);
        zc_unpin(ref);
        return 0;
    }
    if (sp->n && sp->refs[sp->n - 1].seg == ref->seg) { /* same segment: extend */
        struct fuse_buf *b = &sp->bv->buf[sp->n - 1];
        if ((uint64_t)b->pos + b->size == fpos) {
            b->size += len;
            zc_unpin(ref);
            return 0;
        }
    }
    if (sp->n == sp->cap) {
        size_t nc = sp->cap ? sp->cap * 2 : 4;
        struct fuse_bufvec *nb = realloc(sp->bv, sizeof *nb + nc * sizeof nb->buf[0]);
        if (!nb)
            return -ENOMEM;
        sp->bv = nb;
        zc_ref *nr = realloc(sp->refs, nc * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        sp->refs = nr;
        sp->cap = nc;
    }
    sp->refs[sp->n] = *ref;
    sp->bv->buf[sp->n] = (struct fuse_buf){.size = (size_t)len, .flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
                                           .fd = ref->fd, .pos = (off_t)fpos};
    sp->n++;
    return 0;
}

static void splice_release(rd_splice *sp)
{
    for (size_t i = 0; i < sp->n; i++)
        zc_unpin(&sp->refs[i]);
    free(sp->refs);
    free(sp->bv);
    *sp = (rd_splice){0};
}

static int store_read_sp(zc_store *s, const rd_ext *ex, size_t n, uint64_t off, uint64_t len,
                         uint8_t *out, rd_splice *sp, uint64_t *miss);

int rd_store_read(zc_store *s, const rd_ext *ex, size_t n, uint64_t off, uint64_t len,
                      uint8_t *out, uint64_t *miss)
{
    return store_read_sp(s, ex, n, off, len, out, NULL, miss);
}

/* rd_store_read, or with sp: the pieces are collected (pinned) rather than
 * copied. */
static int store_read_sp(zc_store *s, const rd_ext *ex, size_t n, uint64_t off, uint64_t len,
                         uint8_t *out, rd_splice *sp, uint64_t *miss)
{
    uint64_t pos = off, end = off + len;
    size_t i = 0;
    while (pos < end) {
        while (i + 1 < n && ex[i + 1].off <= pos)
            i++;
        const rd_ext *e = &ex[i];
        uint64_t eend = e->off + e->len;
        if (e->off > pos || eend <= pos) {
            *miss = pos;
            return -ENOENT;
        }
        uint32_t ch = e->cs;
        uint64_t coff = e->off;
        while (pos < end && pos < eend) {
            if (ch >= e->ce || coff > pos)
                return -EBADMSG;
            zc_ref ref;
            int rc = zc_lookup(s, &e->xorb, ch, &ref);
            if (rc == -EAGAIN)
                rc = zc_verify_segment(&ref);
            if (rc) {
                zc_unpin(&ref);
                *miss = pos;
                return -ENOENT;
            }
            uint32_t stop = ref.seg_end < e->ce ? ref.seg_end : e->ce;
            uint64_t bytes = ref.run_bytes;
            if (stop < ref.seg_end) {
                uint64_t o;
                uint32_t l;
                if (zc_chunk_span(&ref, stop, &o, &l) != 0) {
                    zc_unpin(&ref);
                    return -EBADMSG;
                }
                bytes = o - ref.off;
            }
            if (pos < coff + bytes) {
                uint64_t want = umin(end, coff + bytes) - pos;
                if (sp) {
                    uint64_t fo;
                    uint32_t fl;
                    int e2 = zc_chunk_span(&ref, ch, &fo, &fl);
                    if (e2 == 0)
                        e2 = splice_add(sp, &ref, fo + (pos - coff), want);
                    if (e2) {
                        zc_unpin(&ref);
                        return e2 == -ENOMEM ? -ENOMEM : -EBADMSG;
                    }
                    pos += want;
                    coff += bytes;
                    ch = stop;
                    if (coff > eend || (ch == e->ce && coff != eend))
                        return -EBADMSG;
                    continue; /* ref is now held by sp */
                }
                ssize_t got = out ? zc_read(&ref, ch, pos - coff, out + (pos - off), (size_t)want)
                                  : (ssize_t)want; /* a check: stored and verified is enough */
                if (got < 0 || (uint64_t)got != want) {
                    zc_unpin(&ref);
                    *miss = pos;
                    return -ENOENT;
                }
                pos += want;
            }
            zc_unpin(&ref);
            coff += bytes;
            ch = stop;
            if (coff > eend || (ch == e->ce && coff != eend))
                return -EBADMSG;
        }
    }
    return 0;
}

/* After answering a sequential reader (r->ra_len set): start the disk
 * reads of the stored bytes DISK_RA ahead, so the segment files are not
 * read one request at a time when the page cache does not hold them
 * (dropped, or never filled since a remount).  Best effort. */
static void disk_ahead(rd_read *r)
{
    if (!r->ra_len)
        return;
    rd_splice h = {.hint = true};
    uint64_t m;
    store_read_sp(r->c->store, r->snap, r->nsnap, r->off + DISK_RA, r->ra_len, NULL, &h, &m);
}

static void store_work(uv_work_t *w)
{
    rd_read *r = w->data;
    int how = r->ops->store;
    if (how == RD_STORE_WALK) {
        r->rc = rd_store_read(r->c->store, r->snap, r->nsnap, r->off, r->len, NULL, &r->miss);
        return;
    }
    if (how == RD_STORE_REPLY && r->c->splice) {
        rd_splice sp = {0};
        r->rc = store_read_sp(r->c->store, r->snap, r->nsnap, r->off, r->len, NULL, &sp, &r->miss);
        if (r->rc == 0) {
            sp.bv->count = sp.n;
            sp.bv->idx = 0;
            sp.bv->off = 0;
            fuse_reply_data(r->req, sp.bv, FUSE_BUF_SPLICE_MOVE);
        }
        splice_release(&sp);
        if (r->rc == 0)
            disk_ahead(r);
        if (r->rc != -ENOMEM)
            return;
    }
    uint8_t *buf = malloc(r->len);
    if (!buf) {
        r->rc = -ENOMEM;
        return;
    }
    r->rc = rd_store_read(r->c->store, r->snap, r->nsnap, r->off, r->len, buf, &r->miss);
    if (r->rc == 0 && how == RD_STORE_COPY) {
        r->out = buf; /* handed over on the loop */
        return;
    }
    if (r->rc == 0) {
        fuse_reply_buf(r->req, (const char *)buf, r->len);
        disk_ahead(r);
    }
    free(buf);
}

static void store_after(uv_work_t *w, int status)
{
    rd_read *r = w->data;
    free(r->snap);
    r->snap = NULL;
    if (r->rc == 0) { /* its bytes: in out, or already sent from the pool */
        uint8_t *out = r->out;
        r->out = NULL;
        rd_read_end(r, 0, out, r->len);
        free(out);
        return;
    }
    if (r->rc == -ENOENT) {
        rd_fetch_cells(r, r->miss);
        return;
    }
    if (r->rc == -EBADMSG)
        zf_log(ZF_LOG_WARN, "zestfs: %s: stored chunks disagree with the file map at %" PRIu64 "\n",
                r->f->id, r->off);
    /* inconsistent: fetch again (bounded by rounds) */
    rd_fetch_cells(r, r->off);
}

/* Is [off, end) part of a sequential stream of f (prefetch() has seen it)? */
static bool seq_reader(const rd_file *f, uint64_t off, uint64_t end)
{
    for (int i = 0; i < NSTREAMS; i++) {
        const rd_stream *x = &f->streams[i];
        if (x->used && x->run >= (2ull << 20) && off <= x->next && x->next <= end + SEQ_BACK)
            return true;
    }
    return false;
}

/* The read's bytes are all mapped: read them from the store on the pool. */
void rd_store_start(rd_read *r)
{
    rd_file *f = r->f;
    uint64_t end = r->off + r->len;
    /* a FUSE read continuing a sequential stream also hints the disk reads
     * of the bytes DISK_RA ahead (store_work) */
    r->ra_len = 0;
    if (r->ops->store == RD_STORE_REPLY && seq_reader(f, r->off, end) && end + DISK_RA <= f->size) {
        r->ra_len = r->len;
        end += DISK_RA;
    }
    long i0 = rd_ext_floor(f, r->off);
    size_t i1 = (size_t)i0;
    while (i1 + 1 < f->n && f->ext[i1 + 1].off < end)
        i1++;
    r->nsnap = i1 - (size_t)i0 + 1;
    r->snap = malloc(r->nsnap * sizeof *r->snap);
    if (!r->snap) {
        rd_read_fail(r, -ENOMEM);
        return;
    }
    memcpy(r->snap, &f->ext[i0], r->nsnap * sizeof *r->snap);
    r->work.data = r;
    if (uv_queue_work(r->c->loop, &r->work, store_work, store_after) != 0)
        rd_read_fail(r, -EIO);
}

/* First byte of [off, end) (all mapped) whose chunks are not in the store,
 * or end.  Loop thread: index lookups only. */
uint64_t rd_first_unstored(rd_file *f, uint64_t off, uint64_t end)
{
    for (long i = rd_ext_floor(f, off); i >= 0 && (size_t)i < f->n && f->ext[i].off < end; i++)
        if (f->ext[i].off + f->ext[i].len > off &&
            zc_missing(f->c->store, &f->ext[i].xorb, f->ext[i].cs, f->ext[i].ce, NULL, 0) != 0)
            return f->ext[i].off > off ? f->ext[i].off : off;
    return end;
}
