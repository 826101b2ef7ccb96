/* blob.c — the contract is in blob.h. */
#include "read_int.h"
#include "blob.h"
#include "file.h"
#include "req.h"
#include "resolve.h"

static void blob_fetch(rd_file *f);

typedef struct blob_job {
    uv_work_t work;
    rd_file *f;
    zc_store *store;
    uint8_t *data;     /* in: fetched (or NULL: load from the store) */
    size_t len;
    bool fetched;
    int rc;
} blob_job;


static int digest(const EVP_MD *alg, const void *hdr, size_t hlen, const void *p, size_t n,
                  char *hex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && EVP_DigestInit_ex(m, alg, NULL) &&
             (!hlen || EVP_DigestUpdate(m, hdr, hlen)) && EVP_DigestUpdate(m, p, n) &&
             EVP_DigestFinal_ex(m, md, &mdlen);
    EVP_MD_CTX_free(m);
    if (!ok)
        return -EIO;
    xet_hex(md, mdlen, hex);
    return 0;
}

/* sha256 for LFS files (their etag), the git blob sha1 otherwise. */
static int blob_verify(const rd_file *f, const uint8_t *p, size_t n)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    int rc;
    if (f->has_lfs) {
        rc = digest(EVP_sha256(), NULL, 0, p, n, hex);
        return rc ? rc : strcmp(hex, f->etag) ? -EBADMSG : 0;
    }
    char hdr[40];
    int hl = snprintf(hdr, sizeof hdr, "blob %zu", n);
    rc = digest(EVP_sha1(), hdr, (size_t)hl + 1, p, n, hex);
    return rc ? rc : strcmp(hex, f->oid) ? -EBADMSG : 0;
}

static void blob_work(uv_work_t *w)
{
    blob_job *j = w->data;
    char key[80];
    snprintf(key, sizeof key, "blob/%s", j->f->etag);
    if (!j->fetched) {
        void *d;
        size_t len;
        j->rc = zc_meta_get(j->store, key, &d, &len);
        if (j->rc)
            return;
        j->data = d;
        j->len = len;
    }
    j->rc = j->len == j->f->size ? blob_verify(j->f, j->data, j->len) : -EBADMSG;
    if (j->rc == 0 && j->fetched) {
        int rc = zc_meta_put(j->store, key, j->data, j->len, 0);
        if (rc)
            zf_log(ZF_LOG_WARN, "zestfs: storing %s: %s\n", j->f->path, zf_strerror(-rc));
    } else if (j->rc && !j->fetched)
        zc_meta_delete(j->store, key);
}

static void blob_serve(rd_read *r)
{
    rd_read_end(r, 0, r->f->blob + r->off, r->len);
}

static void blob_settle(rd_file *f, int err)
{
    rd_ctx *c = f->c;
    rd_read *r = f->blob_wait;
    f->blob_wait = NULL;
    if (err) {
        f->blob_state = BLOB_NONE;
        free(f->blob);
        f->blob = NULL;
        if (err != -ENOENT)
            zf_log(ZF_LOG_WARN, "zestfs: %s (%s): %s\n", f->path, f->etag, zf_strerror(-err));
    } else {
        f->blob_state = BLOB_READY;
        c->blob_mem += f->size;
        rd_lru_touch(c, f);
        while (c->blob_mem > BLOB_MEM && c->lru_tail && c->lru_tail != f) {
            rd_file *v = c->lru_tail;
            rd_lru_unlink(c, v);
            c->blob_mem -= v->size;
            free(v->blob);
            v->blob = NULL;
            v->blob_state = BLOB_NONE;
        }
    }
    while (r) {
        rd_read *nx = r->next;
        if (err)
            rd_read_fail(r, err);
        else
            blob_serve(r);
        r = nx;
    }
}

static void blob_after(uv_work_t *w, int status)
{
    blob_job *j = w->data;
    rd_file *f = j->f;
    int rc = status ? status : j->rc;
    if (rc == 0) {
        f->blob = j->data;
        free(j);
        blob_settle(f, 0);
        return;
    }
    free(j->data);
    bool fetched = j->fetched, want = false;
    free(j);
    for (rd_read *r = f->blob_wait; r; r = r->next)
        want |= !r->ops->nofetch;
    if (!fetched && !want)
        blob_settle(f, -ENOENT); /* only store reads (verify) wait: not stored */
    else if (!fetched && !f->c->stopping && f->c->hub)
        blob_fetch(f); /* not stored (or bad): fetch it */
    else
        blob_settle(f, fetched ? rc : -ENETDOWN);
}

static void blob_queue(rd_file *f, uint8_t *data, size_t len, bool fetched)
{
    blob_job *j = calloc(1, sizeof *j);
    if (!j) {
        free(data);
        blob_settle(f, -ENOMEM);
        return;
    }
    j->f = f;
    j->store = f->c->store;
    j->data = data;
    j->len = len;
    j->fetched = fetched;
    j->work.data = j;
    f->blob_state = fetched ? BLOB_FETCHING : BLOB_LOADING;
    if (uv_queue_work(f->c->loop, &j->work, blob_work, blob_after) != 0) {
        free(data);
        free(j);
        blob_settle(f, -EIO);
    }
}

static void blob_done(void *ud, int err, uint8_t *buf, uint64_t len)
{
    rd_file *f = ud;
    if (err) {
        free(buf);
        blob_settle(f, err);
        return;
    }
    blob_queue(f, buf, len, true);
}

static void blob_fetch(rd_file *f)
{
    static const zn_retry retry = {.max_attempts = 3, .base_ms = 500, .max_delay_ms = 5000,
                                   .deadline_ms = 60000};
    f->blob_state = BLOB_FETCHING;
    uint8_t *buf = malloc(f->size);
    int rc = buf ? rd_rs_start(f, false, 0, f->size, buf, &retry, blob_done, f) : -ENOMEM;
    if (rc) {
        free(buf);
        blob_settle(f, rc);
    }
}

void rd_blob_read(rd_read *r)
{
    rd_file *f = r->f;
    if (f->blob_state == BLOB_READY) {
        rd_lru_touch(f->c, f);
        blob_serve(r);
        return;
    }
    r->next = f->blob_wait;
    f->blob_wait = r;
    if (f->blob_state == BLOB_NONE)
        blob_queue(f, NULL, 0, false);
}

void zf_read_forget_blob(zf_fs *fs, const char *etag)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || !etag)
        return;
    char key[72];
    snprintf(key, sizeof key, "b%s", etag);
    for (rd_file *f = c->tab[rd_hash_key(key) % NBUCKETS]; f; f = f->hnext)
        if (strcmp(f->key, key) == 0 && f->blob_state == BLOB_READY) {
            rd_lru_unlink(c, f);
            c->blob_mem -= f->size;
            free(f->blob);
            f->blob = NULL;
            f->blob_state = BLOB_NONE;
        }
}
