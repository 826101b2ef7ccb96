/* admin.c — what the control socket's verify, pin and unpin commands do.
 *
 * VERIFY re-hashes the stored bytes of every file of a repo revision,
 * end to end: each file is read from the store only (zf_read_stored: a
 * byte not stored makes the file "missing", nothing is fetched) in 8 MiB
 * pieces, one at a time, and fed to the Xet file hasher (chunker + chunk
 * hashes + Merkle + file hash) on the thread pool; the result must equal
 * the file's Xet id.  Non-Xet files: sha256 (LFS) or the git blob sha1 of
 * the stored copy.  Each file ends "ok", "mismatch", "missing" or an
 * errno; nothing is changed (a mismatch is reported and counted).
 *
 * PINS: `pin` pulls the revision (zf_pull_start), then labels every xorb
 * its Xet files' maps name (zf_read_label_file): labelled xorbs are never
 * evicted.  The list of pins ("<type>/<id>@<commit>") is store metadata
 * "pins", re-applied at startup (zf_pins_apply).  `unpin` removes one,
 * unlabels its files, then labels the remaining pins' files again (a
 * xorb shared by two pinned repos stays labelled). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "read.h"
#include "admin.h"
#include "zfs.h"

#define PIECE (8u << 20)

/* ---- verify --------------------------------------------------------------------------- */

struct zf_verify {
    zf_fs *fs;
    const zf_repo *repo;
    const zf_commit *commit;
    size_t fi;                 /* file being verified */
    uint64_t off;
    xet_file_hasher *xh;
    EVP_MD_CTX *md;            /* non-Xet files */
    uint8_t *buf;
    size_t len;
    uv_work_t work;
    bool cancelled;
    zf_verify_file_cb file_cb;
    zf_verify_done_cb done_cb;
    void *ud;
    zf_verify_stat st;
};

static void v_next_file(zf_verify *v);
static void v_piece(zf_verify *v);

static void v_end_file(zf_verify *v, const char *result, int err)
{
    const zf_file *f = &v->commit->files[v->fi];
    if (v->xh) {
        xet_file_digest d;
        xet_file_hasher_final(v->xh, &d);
        v->xh = NULL;
    }
    if (v->md) {
        EVP_MD_CTX_free(v->md);
        v->md = NULL;
    }
    if (strcmp(result, "ok") == 0) {
        v->st.ok++;
        v->st.bytes += f->size;
    } else if (strcmp(result, "missing") == 0)
        v->st.missing++;
    else
        v->st.bad++;
    v->file_cb(v->ud, f->path, result, err);
    v->fi++;
    v->off = 0;
    v_next_file(v);
}

static void v_finish_hash(zf_verify *v)
{
    const zf_file *f = &v->commit->files[v->fi];
    bool same;
    if (f->has_xet) {
        xet_file_digest d;
        xet_file_hasher_final(v->xh, &d);
        v->xh = NULL;
        same = d.size == f->size && xet_hash_eq(&d.file_hash, &f->xet);
    } else {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        EVP_DigestFinal_ex(v->md, md, &n);
        xet_hex(md, n, hex);
        same = strcmp(hex, f->has_lfs ? f->etag : f->oid) == 0;
    }
    v_end_file(v, same ? "ok" : "mismatch", same ? 0 : -EBADMSG);
}

static void v_hash_work(uv_work_t *w)
{
    zf_verify *v = w->data;
    if (v->xh)
        xet_file_hasher_update(v->xh, v->buf, v->len);
    else
        EVP_DigestUpdate(v->md, v->buf, v->len);
}

static void v_hash_after(uv_work_t *w, int status)
{
    zf_verify *v = w->data;
    v->off += v->len;
    v_piece(v);
}

static void v_read_cb(void *ud, int err, const uint8_t *data, size_t len)
{
    zf_verify *v = ud;
    if (err) {
        v_end_file(v, err == -ENOENT || err == -ENETDOWN ? "missing" : "error", err);
        return;
    }
    memcpy(v->buf, data, len);
    v->len = len;
    v->work.data = v;
    if (uv_queue_work(v->fs->loop, &v->work, v_hash_work, v_hash_after) != 0)
        v_end_file(v, "error", -EIO);
}

static void v_piece(zf_verify *v)
{
    const zf_file *f = &v->commit->files[v->fi];
    if (v->cancelled) {
        v_end_file(v, "error", -ECANCELED);
        return;
    }
    if (v->off >= f->size) {
        v_finish_hash(v);
        return;
    }
    zv_ent e = {.kind = ZV_BLOB, .repo = v->repo, .commit = v->commit, .file = f,
                .size = f->size, .mtime = v->commit->date};
    uint64_t n = f->size - v->off < PIECE ? f->size - v->off : PIECE;
    int err = zf_read_stored(v->fs, &e, v->off, (size_t)n, v_read_cb, v);
    if (err)
        v_end_file(v, "error", err);
}

static void v_next_file(zf_verify *v)
{
    if (v->cancelled || v->fi >= v->commit->nfiles) {
        if (v->cancelled && !v->st.err)
            v->st.err = -ECANCELED;
        v->done_cb(v->ud, &v->st);
        free(v->buf);
        free(v);
        return;
    }
    const zf_file *f = &v->commit->files[v->fi];
    v->st.files++;
    if (f->size == 0) {
        v_end_file(v, "ok", 0);
        return;
    }
    if (f->has_xet)
        v->xh = xet_file_hasher_new(NULL, NULL);
    else {
        v->md = EVP_MD_CTX_new();
        if (v->md && !EVP_DigestInit_ex(v->md, f->has_lfs ? EVP_sha256() : EVP_sha1(), NULL)) {
            EVP_MD_CTX_free(v->md);
            v->md = NULL;
        }
        if (v->md && !f->has_lfs) {
            char hdr[40];
            int hl = snprintf(hdr, sizeof hdr, "blob %llu", (unsigned long long)f->size);
            EVP_DigestUpdate(v->md, hdr, (size_t)hl + 1);
        }
    }
    if (!v->xh && !v->md) {
        v_end_file(v, "error", -ENOMEM);
        return;
    }
    v_piece(v);
}

static void v_start_work(uv_work_t *w)
{
}

static void v_start_after(uv_work_t *w, int status)
{
    v_next_file(w->data);
}

int zf_verify_start(zf_fs *fs, const zf_repo *repo, const char *commit, zf_verify_file_cb file_cb,
                    zf_verify_done_cb done_cb, void *ud, zf_verify **out)
{
    const zf_commit *c = zf_repo_commit(repo, commit);
    if (!c)
        return -ENOENT;
    zf_verify *v = calloc(1, sizeof *v);
    if (!v || !(v->buf = malloc(PIECE))) {
        free(v);
        return -ENOMEM;
    }
    v->fs = fs;
    v->repo = repo;
    v->commit = c;
    v->file_cb = file_cb;
    v->done_cb = done_cb;
    v->ud = ud;
    if (out)
        *out = v;
    /* start from the loop's next turn (an empty work item): never call back from inside */
    v->work.data = v;
    if (uv_queue_work(fs->loop, &v->work, v_start_work, v_start_after) != 0) {
        free(v->buf);
        free(v);
        return -EIO;
    }
    return 0;
}

void zf_verify_cancel(zf_verify *v)
{
    if (v)
        v->cancelled = true;
}

/* ---- pins ------------------------------------------------------------------------------- */

typedef struct pin_list {
    char **v;
    size_t n;
} pin_list;

static void pins_free(pin_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Worker or startup: read "pins". */
static int pins_load(zc_store *store, pin_list *l)
{
    void *data;
    size_t len;
    int rc = zc_meta_get(store, "pins", &data, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    cJSON *a = cJSON_ParseWithLength(data, len);
    free(data);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(a, "pins"))
    {
        if (!cJSON_IsString(it))
            continue;
        char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
        if (!nv || !(nv[l->n] = strdup(it->valuestring))) {
            if (nv)
                l->v = nv;
            cJSON_Delete(a);
            return -ENOMEM;
        }
        l->v = nv;
        l->n++;
    }
    cJSON_Delete(a);
    return 0;
}

static int pins_save(zc_store *store, const pin_list *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "pins");
    for (size_t i = 0; i < l->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = s ? zc_meta_put(store, "pins", s, strlen(s), ZC_PUT_FSYNC) : -ENOMEM;
    free(s);
    return rc;
}

/* "<type>/<id>@<commit>" -> the presented repo and commit. */
static int pin_parse(zf_fs *fs, const char *pin, const zf_repo **repo, const zf_commit **commit)
{
    const char *at = strrchr(pin, '@'), *slash = strchr(pin, '/');
    if (!at || !slash || slash > at)
        return -EINVAL;
    int type = -1;
    for (int t = 0; t < 3; t++)
        if ((size_t)(slash - pin) == strlen(zf_type_name(t)) && !strncmp(pin, zf_type_name(t), slash - pin))
            type = t;
    for (size_t i = 0; type >= 0 && i < fs->tree.nrepos; i++) {
        const zf_repo *r = fs->tree.repos[i];
        if ((int)r->type == type && strlen(r->id) == (size_t)(at - slash - 1) &&
            !strncmp(r->id, slash + 1, (size_t)(at - slash - 1))) {
            *repo = r;
            *commit = zf_repo_commit(r, at + 1);
            return *commit ? 0 : -ENOENT;
        }
    }
    return -ENOENT;
}

typedef struct label_op {
    int pending;
    uint64_t xorbs;
    int err;
    void (*done)(void *ud, int err, uint64_t xorbs);
    void *ud;
} label_op;

static void label_cb(void *ud, int err, uint64_t n)
{
    label_op *op = ud;
    op->xorbs += n;
    if (err && !op->err)
        op->err = err;
    if (--op->pending == 0) {
        if (op->done)
            op->done(op->ud, op->err, op->xorbs);
        free(op);
    }
}

/* Label (or unlabel) every Xet file of commit; done(ud, err, xorbs) when all are. */
static void label_commit(zf_fs *fs, const zf_repo *r, const zf_commit *c, bool on, label_op *op)
{
    for (size_t i = 0; i < c->nfiles; i++) {
        const zf_file *f = &c->files[i];
        if (!ZF_IN_XORBS(f) || f->size == 0)
            continue;
        zv_ent e = {.kind = ZV_BLOB, .repo = r, .commit = c, .file = f, .size = f->size,
                    .mtime = c->date};
        op->pending++;
        if (zf_read_label_file(fs, &e, on, label_cb, op) != 0)
            op->pending--;
    }
}

static label_op *label_op_new(void (*done)(void *, int, uint64_t), void *ud)
{
    label_op *op = calloc(1, sizeof *op);
    if (op) {
        op->pending = 1; /* held while starting */
        op->done = done;
        op->ud = ud;
    }
    return op;
}

int zf_pins_apply(zf_fs *fs, zc_store *store)
{
    pin_list l = {0};
    int rc = pins_load(store, &l);
    if (rc) {
        fprintf(stderr, "zestfs: reading the pins: %s\n", strerror(-rc));
        return rc;
    }
    label_op *op = label_op_new(NULL, NULL);
    for (size_t i = 0; op && i < l.n; i++) {
        const zf_repo *r;
        const zf_commit *c;
        if (pin_parse(fs, l.v[i], &r, &c) == 0)
            label_commit(fs, r, c, true, op);
        else
            fprintf(stderr, "zestfs: pinned %s is not presented (kept)\n", l.v[i]);
    }
    if (op)
        label_cb(op, 0, 0);
    pins_free(&l);
    return 0;
}

int zf_pins_list(zc_store *store, char ***out, size_t *n)
{
    pin_list l = {0};
    int rc = pins_load(store, &l);
    *out = l.v;
    *n = l.n;
    return rc;
}

/* A pin or unpin in flight (loop thread). */
struct zf_pinop {
    zf_fs *fs;
    zc_store *store;
    bool on;
    char key[400];             /* "<type>/<id>@<commit>" */
    const zf_repo *repo;
    const zf_commit *commit;
    zf_pin_cb cb;
    void *ud;
    uint64_t xorbs;
};

static void pinop_end(zf_pinop *p, int err)
{
    p->cb(p->ud, err, p->key, p->xorbs);
    free(p);
}

static void relabel_done(void *ud, int err, uint64_t n)
{
    pinop_end(ud, 0);
}

static void unlabel_done(void *ud, int err, uint64_t n)
{
    zf_pinop *p = ud;
    p->xorbs = n;
    /* the pins left: label them again (shared xorbs stay pinned) */
    pin_list l = {0};
    pins_load(p->store, &l);
    label_op *op = label_op_new(relabel_done, p);
    if (!op) {
        pins_free(&l);
        pinop_end(p, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        const zf_repo *r;
        const zf_commit *c;
        if (pin_parse(p->fs, l.v[i], &r, &c) == 0)
            label_commit(p->fs, r, c, true, op);
    }
    pins_free(&l);
    label_cb(op, 0, 0);
}

static void label_done(void *ud, int err, uint64_t n)
{
    zf_pinop *p = ud;
    p->xorbs = n;
    pinop_end(p, err);
}

int zf_pin(zf_fs *fs, zc_store *store, const zf_repo *repo, const char *commit, bool on,
           zf_pin_cb cb, void *ud)
{
    const zf_commit *c = zf_repo_commit(repo, commit);
    if (!c)
        return -ENOENT;
    zf_pinop *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->fs = fs;
    p->store = store;
    p->on = on;
    p->repo = repo;
    p->commit = c;
    p->cb = cb;
    p->ud = ud;
    snprintf(p->key, sizeof p->key, "%s/%s@%s", zf_type_name(repo->type), repo->id, c->sha);
    /* the list (small, fsync'd: done here on the loop — a pin is a rare, explicit act) */
    pin_list l = {0};
    int rc = pins_load(store, &l);
    size_t k = l.n;
    for (size_t i = 0; i < l.n; i++)
        if (strncmp(l.v[i], p->key, strlen(p->key) - 41) == 0 &&
            l.v[i][strlen(p->key) - 41] == '@') /* same repo, any commit */
            k = i;
    if (!rc && on) {
        if (k < l.n) { /* replace the repo's previous pin */
            free(l.v[k]);
            l.v[k] = strdup(p->key);
        } else {
            char **nv = realloc(l.v, (l.n + 1) * sizeof *nv);
            if (nv) {
                l.v = nv;
                l.v[l.n++] = strdup(p->key);
            } else
                rc = -ENOMEM;
        }
    } else if (!rc) {
        if (k == l.n)
            rc = -ENOENT; /* not pinned */
        else {
            free(l.v[k]);
            l.v[k] = l.v[--l.n];
        }
    }
    for (size_t i = 0; !rc && i < l.n; i++)
        if (!l.v[i])
            rc = -ENOMEM;
    if (!rc)
        rc = pins_save(store, &l);
    pins_free(&l);
    if (rc) {
        free(p);
        return rc;
    }
    label_op *op = label_op_new(on ? label_done : unlabel_done, p);
    if (!op) {
        free(p);
        return -ENOMEM;
    }
    label_commit(fs, repo, c, on, op);
    label_cb(op, 0, 0); /* may finish at once: callbacks then come from here */
    return 0;
}
