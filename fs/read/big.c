/* big.c — the contract is in big.h. */
#include "read_int.h"
#include "big.h"
#include "fmap.h"
#include "req.h"
#include "resolve.h"
#include "window.h"

static void big_dl_pump(rd_file *f);
static void big_after(uv_work_t *w, int status);

/* A non-Xet file over BLOB_MAX is kept in the store like Xet content: its
 * 8 MiB windows are the chunk runs of synthetic xorbs (window k: xorb
 * big_xorb(etag, k), chunks of BIG_CHUNK bytes), so eviction, pinning,
 * crash safety and the Xet serving path (store reads, splice, prefetch,
 * fills) apply unchanged.  The only proof of its bytes is the sha256 of the
 * whole file (the git blob sha1 when it is not in LFS), so the first read
 * downloads all of it, window by window in order (BIG_DEPTH ranges in
 * flight, hashed and stored on the pool), and serves nothing until the
 * digest matches.  Each window's chunk hashes are kept as metadata
 * "bigw/<etag>/<k>", and "big/<etag>" marks the file verified, written last;
 * from then on a window that was evicted is fetched again alone (Range) and
 * checked chunk by chunk against its hashes.  A mismatch drops what was
 * stored (-EBADMSG); a failed download resumes at the window it stopped at
 * on the next read. */
#define BIG_CHUNK (64u << 10)
#define BIG_DEPTH 2
#define BIG_MAGIC "ZFBIG001"

typedef struct big_part {
    uint64_t k;                /* window */
    uint8_t *buf;
    bool busy, got;
} big_part;

struct big_dl {
    rd_file *f;
    EVP_MD_CTX *md;
    uint64_t next_k, hashed_k, nwin;
    big_part parts[BIG_DEPTH];
    bool working, running;
    int err;
};

typedef struct big_get {
    rd_file *f;
    big_part *part;            /* the download's, or NULL: a window refetch */
    rd_cell *cl;
} big_get;

typedef struct big_job {
    uv_work_t work;
    rd_file *f;
    zc_store *store;
    int kind;                  /* 0 find the mark, 1 hash + store a window, 2 finish, 3 refetch */
    uint64_t k;
    const uint8_t *data;
    uint64_t len;
    EVP_MD_CTX *md;
    rd_cell *cl;               /* kind 3 */
    bool drop_first;
    zc_ref pin;
    int rc;
} big_job;


static uint64_t big_nwin(const rd_file *f)
{
    return (f->size + CELL_SIZE - 1) / CELL_SIZE;
}

static void big_xorb(const rd_file *f, uint64_t k, xet_hash *out)
{
    static const uint8_t key[32] = "zestfs: window of a non-Xet file";
    char msg[96];
    int n = snprintf(msg, sizeof msg, "%s/%" PRIu64, f->etag, k);
    xet_keyed_hash(key, msg, (size_t)n, out);
}

static uint32_t big_chunks(uint64_t len, uint32_t *lens)
{
    uint32_t n = 0;
    for (uint64_t o = 0; o < len; o += BIG_CHUNK)
        lens[n++] = (uint32_t)umin(BIG_CHUNK, len - o);
    return n;
}

/* The extents of a verified file: window k = chunks of xorb k. */
static int big_extents(rd_file *f)
{
    uint64_t n = big_nwin(f);
    rd_ext *e = malloc((n ? n : 1) * sizeof *e);
    if (!e)
        return -ENOMEM;
    for (uint64_t k = 0; k < n; k++) {
        e[k].off = k * CELL_SIZE;
        e[k].len = umin(CELL_SIZE, f->size - e[k].off);
        big_xorb(f, k, &e[k].xorb);
        e[k].cs = 0;
        e[k].ce = (uint32_t)((e[k].len + BIG_CHUNK - 1) / BIG_CHUNK);
    }
    free(f->ext);
    f->ext = e;
    f->n = f->cap = (size_t)n;
    return 0;
}

static void big_wkey(const rd_file *f, uint64_t k, char *out, size_t n)
{
    snprintf(out, n, "bigw/%s/%" PRIu64, f->etag, k);
}

static void big_mkey(const rd_file *f, char *out, size_t n)
{
    snprintf(out, n, "big/%s", f->etag);
}

/* Drop every stored window of f (worker thread). */
static void big_drop(const rd_file *f, zc_store *store)
{
    xet_hash x;
    for (uint64_t k = 0, n = big_nwin(f); k < n; k++) {
        big_xorb(f, k, &x);
        zc_drop_xorb(store, &x, NULL);
    }
}

static void big_work(uv_work_t *w)
{
    big_job *j = w->data;
    rd_file *f = j->f;
    char key[128];
    if (j->kind == 0) { /* is the file verified and stored? */
        void *d;
        size_t len;
        big_mkey(f, key, sizeof key);
        j->rc = zc_meta_get(j->store, key, &d, &len);
        if (j->rc == 0) {
            if (len != 16 || memcmp(d, BIG_MAGIC, 8) || xet_le64((uint8_t *)d + 8) != f->size)
                j->rc = -EBADMSG;
            free(d);
        }
        return;
    }
    uint32_t lens[CELL_SIZE / BIG_CHUNK];
    xet_hash hs[CELL_SIZE / BIG_CHUNK];
    uint32_t n = j->len ? big_chunks(j->len, lens) : 0;
    xet_hash xorb;
    big_xorb(f, j->k, &xorb);
    if (j->kind == 1) { /* the download: digest, chunk hashes, store */
        if (j->drop_first)
            big_drop(f, j->store);
        if (!EVP_DigestUpdate(j->md, j->data, j->len)) {
            j->rc = -EIO;
            return;
        }
        uint8_t rec[sizeof hs];
        uint64_t o = 0;
        for (uint32_t i = 0; i < n; i++) {
            xet_chunk_hash(j->data + o, lens[i], &hs[i]);
            memcpy(rec + 32 * i, hs[i].b, 32);
            o += lens[i];
        }
        big_wkey(f, j->k, key, sizeof key);
        j->rc = zc_meta_put(j->store, key, rec, 32 * (size_t)n, 0);
        if (j->rc == 0)
            j->rc = zc_put(j->store, &xorb, 0, n, lens, hs, j->data, j->len, 0, NULL);
        return;
    }
    if (j->kind == 2) { /* the digest of the whole file, then the mark */
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        if (!EVP_DigestFinal_ex(j->md, md, &mdlen)) {
            j->rc = -EIO;
            return;
        }
        xet_hex(md, mdlen, hex);
        if (strcmp(hex, f->has_lfs ? f->etag : f->oid)) {
            j->rc = -EBADMSG;
            big_drop(f, j->store);
            return;
        }
        uint8_t mark[16];
        memcpy(mark, BIG_MAGIC, 8);
        xet_put_le64(mark + 8, f->size);
        big_mkey(f, key, sizeof key);
        j->rc = zc_meta_put(j->store, key, mark, sizeof mark, ZC_PUT_FSYNC);
        return;
    }
    /* kind 3: a window fetched again, checked against its kept hashes */
    void *d;
    size_t dlen;
    big_wkey(f, j->k, key, sizeof key);
    j->rc = zc_meta_get(j->store, key, &d, &dlen);
    if (j->rc)
        return;
    j->rc = dlen == 32 * (size_t)n ? 0 : -EBADMSG;
    for (uint32_t i = 0; i < n && !j->rc; i++)
        memcpy(hs[i].b, (uint8_t *)d + 32 * i, 32);
    free(d);
    if (j->rc == 0)
        j->rc = zc_put(j->store, &xorb, 0, n, lens, hs, j->data, j->len, ZC_PUT_VERIFY, &j->pin);
}

static int big_queue(rd_file *f, int kind, uint64_t k, const uint8_t *data, uint64_t len,
                     big_job **out)
{
    big_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->f = f;
    j->store = f->c->store;
    j->kind = kind;
    j->k = k;
    j->data = data;
    j->len = len;
    if (f->dl) {
        j->md = f->dl->md;
        j->drop_first = kind == 1 && k == 0;
    }
    j->work.data = j;
    if (out)
        *out = j;
    if (uv_queue_work(f->c->loop, &j->work, big_work, big_after) != 0) {
        free(j);
        return -EIO;
    }
    return 0;
}

/* Every read waiting for the map gets the outcome of the download. */
static void big_settle(rd_file *f, int err)
{
    if (err == 0 && (err = big_extents(f)) == 0) {
        if (f->dl) {
            EVP_MD_CTX_free(f->dl->md);
            free(f->dl);
            f->dl = NULL;
        }
        rd_map_ready(f);
        return;
    }
    f->map_state = MAP_NONE;
    rd_read *r = f->map_wait;
    f->map_wait = NULL;
    if (err != -ENOENT)
        zf_log(ZF_LOG_WARN, "zestfs: %s (%s): %s\n", f->path, f->etag, zf_strerror(-err));
    while (r) {
        rd_read *nx = r->next;
        rd_read_fail(r, err);
        r = nx;
    }
}

static void big_fail(rd_file *f, int err)
{
    big_dl *d = f->dl;
    d->err = err;
    if (d->working)
        return; /* after the job */
    for (int i = 0; i < BIG_DEPTH; i++)
        if (d->parts[i].busy && !d->parts[i].got)
            return; /* after the requests */
    for (int i = 0; i < BIG_DEPTH; i++) {
        free(d->parts[i].buf);
        d->parts[i] = (big_part){0};
    }
    d->running = false;
    d->next_k = d->hashed_k; /* resume here */
    if (err == -EBADMSG) { /* the digest: start over */
        EVP_MD_CTX_free(d->md);
        free(d);
        f->dl = NULL;
    }
    big_settle(f, err);
}

static void big_get_done(void *ud, int err, uint8_t *buf, uint64_t len)
{
    big_get *g = ud;
    rd_file *f = g->f;
    big_part *p = g->part;
    rd_cell *cl = g->cl;
    free(g);
    if (!err)
        f->c->m.bytes_by_src[ZF_SRC_CDN] += len;
    if (p) { /* the download */
        if (err) {
            p->busy = false;
            free(p->buf);
            p->buf = NULL;
            big_fail(f, err);
            return;
        }
        p->got = true;
        big_dl_pump(f);
        return;
    }
    big_job *j;
    if (!err && (err = big_queue(f, 3, cl->idx, buf, len, &j)) == 0) {
        j->cl = cl;
        return;
    }
    free(buf);
    rd_cell_attempt_failed(cl, err);
}

/* Window k into buf: for the download (part) or a refetch (cl). */
static int big_get_start(rd_file *f, uint64_t k, uint8_t *buf, big_part *part, rd_cell *cl)
{
    big_get *g = malloc(sizeof *g);
    if (!g)
        return -ENOMEM;
    *g = (big_get){f, part, cl};
    uint64_t off = k * CELL_SIZE;
    int rc = rd_rs_start(f, true, off, umin(CELL_SIZE, f->size - off), buf, &f->c->cdn_retry,
                      big_get_done, g);
    if (rc)
        free(g);
    return rc;
}

/* Keep BIG_DEPTH windows in flight and hash them in order. */
static void big_dl_pump(rd_file *f)
{
    big_dl *d = f->dl;
    if (d->err) {
        big_fail(f, d->err);
        return;
    }
    if (!d->working) {
        for (int i = 0; i < BIG_DEPTH; i++) {
            big_part *p = &d->parts[i];
            if (p->busy && p->got && p->k == d->hashed_k) {
                int rc = big_queue(f, 1, p->k, p->buf, umin(CELL_SIZE, f->size - p->k * CELL_SIZE),
                                   NULL);
                if (rc) {
                    big_fail(f, rc);
                    return;
                }
                d->working = true;
                break;
            }
        }
    }
    if (!d->working && d->hashed_k == d->nwin) {
        int rc = big_queue(f, 2, 0, NULL, 0, NULL);
        if (rc)
            big_fail(f, rc);
        else
            d->working = true;
        return;
    }
    for (int i = 0; i < BIG_DEPTH && d->next_k < d->nwin && !f->c->stopping; i++) {
        big_part *p = &d->parts[i];
        if (p->busy)
            continue;
        if (!(p->buf = malloc(CELL_SIZE))) {
            big_fail(f, -ENOMEM);
            return;
        }
        p->k = d->next_k;
        p->busy = true;
        p->got = false;
        int rc = big_get_start(f, p->k, p->buf, p, NULL);
        if (rc) {
            p->busy = false;
            free(p->buf);
            p->buf = NULL;
            big_fail(f, rc);
            return;
        }
        d->next_k++;
    }
}

static void big_dl_start(rd_file *f)
{
    rd_ctx *c = f->c;
    if (!c->http || c->stopping) {
        big_settle(f, -ENETDOWN);
        return;
    }
    if (!f->dl) {
        big_dl *d = calloc(1, sizeof *d);
        EVP_MD_CTX *md = d ? EVP_MD_CTX_new() : NULL;
        int ok = md && EVP_DigestInit_ex(md, f->has_lfs ? EVP_sha256() : EVP_sha1(), NULL);
        if (ok && !f->has_lfs) {
            char hdr[40];
            int hl = snprintf(hdr, sizeof hdr, "blob %" PRIu64, f->size);
            ok = EVP_DigestUpdate(md, hdr, (size_t)hl + 1);
        }
        if (!ok) {
            EVP_MD_CTX_free(md);
            free(d);
            big_settle(f, -ENOMEM);
            return;
        }
        d->f = f;
        d->md = md;
        d->nwin = big_nwin(f);
        f->dl = d;
    }
    f->dl->err = 0;
    f->dl->running = true;
    zf_log(ZF_LOG_INFO, "zestfs: %s: a non-Xet file of %" PRIu64 " bytes: downloading it whole "
           "(its sha is checked before a byte is served)\n", f->path, f->size);
    big_dl_pump(f);
}

static void big_after(uv_work_t *w, int status)
{
    big_job *j = w->data;
    rd_file *f = j->f;
    int rc = status ? status : j->rc;
    int kind = j->kind;
    if (kind == 0) {
        free(j);
        bool want = false;
        for (rd_read *r = f->map_wait; r; r = r->next)
            want |= !r->ops->nofetch;
        if (rc == -ENOENT && want && !f->c->stopping)
            big_dl_start(f);
        else
            big_settle(f, rc);
        return;
    }
    if (kind == 3) {
        rd_cell *cl = j->cl;
        free((void *)j->data);
        if (rc == 0) {
            rd_pin *p = rd_pin_new(&j->pin);
            if (p) {
                rd_pins_add(&cl->pins, p);
                rd_pin_put(p);
            } else
                zc_unpin(&j->pin);
        } else if (rc == -EBADMSG)
            f->c->m.verify_failures++;
        free(j);
        if (rc)
            rd_cell_attempt_failed(cl, rc);
        else
            rd_cell_done(cl, 0);
        return;
    }
    big_dl *d = f->dl;
    d->working = false;
    free(j);
    if (kind == 1) {
        for (int i = 0; i < BIG_DEPTH; i++)
            if (d->parts[i].busy && d->parts[i].k == d->hashed_k) {
                free(d->parts[i].buf);
                d->parts[i] = (big_part){0};
            }
        if (rc) {
            big_fail(f, rc);
            return;
        }
        d->hashed_k++;
        big_dl_pump(f);
        return;
    }
    /* kind 2 */
    if (rc) {
        if (rc == -EBADMSG) {
            f->c->m.verify_failures++;
            zf_log(ZF_LOG_WARN, "zestfs: %s: the download does not match its %s\n", f->path,
                   f->has_lfs ? "sha256" : "git blob sha1");
        }
        big_fail(f, rc);
        return;
    }
    d->running = false;
    big_settle(f, 0);
}

/* A window of a verified file that is no longer stored: fetch it again. */
void rd_big_cell_start(rd_cell *cl)
{
    rd_file *f = cl->f;
    uint8_t *buf = malloc(CELL_SIZE);
    int rc = buf ? big_get_start(f, cl->idx, buf, NULL, cl) : -ENOMEM;
    if (rc) {
        free(buf);
        rd_cell_attempt_failed(cl, rc);
    }
}

/* Label or list the xorbs of a large non-Xet file: they are known without
 * its map (nor a download).  The answer comes from the loop, later. */
static void big_label_work(uv_work_t *w)
{
    (void)w;
}

static void big_label_after(uv_work_t *w, int status)
{
    (void)status;
    rd_read *r = w->data;
    rd_file *f = r->f;
    uint64_t n = big_nwin(f);
    xet_hash *v = malloc(n * sizeof *v);
    for (uint64_t k = 0; v && k < n; k++)
        big_xorb(f, k, &v[k]);
    r->ops->xorbs(r, v ? 0 : -ENOMEM, v, v ? (size_t)n : 0, true);
    free(v);
    rd_read_free(r);
}

void rd_big_label(rd_read *r)
{
    r->work.data = r;
    if (uv_queue_work(r->c->loop, &r->work, big_label_work, big_label_after) != 0)
        big_label_after(&r->work, -EIO); /* not from inside a caller: only at shutdown */
}

/* A read of a large non-Xet file before its map is ready. */
void rd_big_map(rd_file *f)
{
    if (f->map_state != MAP_NONE)
        return;
    f->map_state = MAP_LOADING;
    if (f->dl && !f->dl->err && f->dl->running)
        return;
    int rc = big_queue(f, 0, 0, NULL, 0, NULL);
    if (rc)
        big_settle(f, rc);
}

/* Teardown (zf_read_free): what a download of f still holds. */
void rd_big_free(rd_file *f)
{
    if (f->dl) {
        for (int i = 0; i < BIG_DEPTH; i++)
            free(f->dl->parts[i].buf);
        EVP_MD_CTX_free(f->dl->md);
        free(f->dl);
        f->dl = NULL;
    }
}
