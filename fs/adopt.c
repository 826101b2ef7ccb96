/* adopt.c — caches that already hold models (issue 18 item 6).
 *
 * WHAT  zestfs mounts over a cache directory that may already hold blobs
 * downloaded earlier: models--…/blobs/<etag> regular files, and
 * huggingface_hub ≥ 2.x's shared store <cache>/blobs/<xx>/<xet hash> (a
 * repo's blobs/<etag> then a relative symlink ../../blobs/<xx>/<xet hash>;
 * spec/hub-real.md).  Such a blob of a presented Xet file is ADOPTED:
 *   1. found at start (per presented Xet file: its repo's blobs/<etag>, a
 *      regular file or a symlink into the shared store, else the shared
 *      store entry itself; the size must match).  Until step 3 its
 *      blobs/<etag> is hidden from the overlay (zf_adopt_hides: ops.c then
 *      presents the virtual blob), so nothing unverified is served;
 *   2. verified on the pool, one file at a time, 8 MiB per pool job: the
 *      Xet file hash is recomputed with xet/'s chunker and hashes (as
 *      `zestfs xet hash`), the chunk lengths and hashes kept;
 *   3. a mismatch is REFUSED (logged): the blob stays hidden and is read
 *      like any other (fetched).  A match is shown again (the user's file
 *      is served by the overlay, locally);
 *   4. imported: the file's reconstruction (CAS; no xorb bytes) names the
 *      xorb chunk ranges of its terms; the file's chunks are cut by them
 *      (counts and lengths must agree) and each term is zc_put as a
 *      segment with the chunk hashes computed in 2 (one pool job per
 *      term; zf_p2p_after_put builds the xorb's manifest when the store
 *      holds all of it, zf_p2p_repo_xorb + zf_p2p_stored announce it on the
 *      repo's swarm: peers get them), its map saved as "fmap/<xet id>"
 *      (fs/read/fmap.c's format);
 *   5. recorded as store metadata "adopt/<xet id>" = "ok <size>", so a
 *      remount does not redo it (unless the store evicted some of it since:
 *      then it is verified and imported again).
 * Non-Xet blobs of presented repos (LFS files with a sha256 etag and no
 * Xet hash, small git files named by their git blob sha1) are verified
 * the same way when mounted: found as in 1 (the repo's blobs/<etag> only:
 * the shared store holds Xet files), hidden until verified, hashed a
 * piece per pool job (sha256 of the content for a 64-hex etag, the git
 * blob sha1 of "blob <size>\0" + content for a 40-hex one, as
 * fs/read/blob.c checks fetched blobs), refused (stays hidden: the read
 * path fetches and verifies it) or shown again and recorded as
 * "adopt/<etag>" = "ok <size> <inode> <mtime s.ns>" (a remount redoes it
 * only when the file changed).  Nothing of them is imported into the
 * chunk store and nothing is seeded (peers exchange Xet xorbs only), so
 * `zestfs seed --adopt` (no mount, fs->se NULL) skips them.  The status
 * counters (adopted, refused) include them.
 * The user's files are only ever opened O_RDONLY.  One pool
 * thread at most is busy with adoption, so FUSE reads and their store
 * reads keep the others, and a piece waits (20 ms at a time, up to 1 s)
 * while the read path has fetches in flight.  Owned by the loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "adopt.h"
#include "log.h"
#include "net.h"
#include "p2p.h"
#include "read.h"

#define PIECE (8u << 20)
#define HOLD_MS 20   /* a piece waits this long while the read path has fetches in flight */
#define HOLD_MAX 50  /* ... at most this many times in a row (1 s), then goes anyway */

enum { A_PENDING, A_DONE, A_REFUSED, A_FAILED };

typedef struct a_file {
    enum zf_repo_type type;
    char *repo, *folder;
    char commit[41];
    char etag[65];
    char id[XET_HASH_STR_LEN + 1]; /* Xet id, or the etag of a non-Xet blob */
    bool is_xet;
    xet_hash xet;
    uint64_t size;
    char *local;        /* path below the root to read */
    char *hide;         /* "<folder>/blobs/<etag>" */
    int state;
} a_file;

struct zf_adopt {
    zf_fs *fs;
    zc_store *store;
    a_file *f;
    size_t n, cur;
    zf_adopt_stats st;
    bool stopping, busy;
    zn_op *op;
    /* the file being adopted */
    int fd;
    uint64_t off;
    xet_file_hasher *fh;
    EVP_MD_CTX *md;     /* non-Xet: sha256 or git blob sha1 */
    struct stat fst;    /* non-Xet: the file as opened */
    uint32_t *lens;
    xet_hash *hashes;
    size_t nch, capch;
    xet_recon *rc;
    size_t term;
    uint64_t toff;      /* file offset of rc->terms[term] */
    size_t tch;         /* its first chunk index */
    int err;
    uv_work_t work;
    bool meta_ok, in_recon;
    uv_timer_t timer;   /* holds the next piece behind reads */
    bool timer_on;
    unsigned held;
    uv_work_cb next_w;
    uv_after_work_cb next_after;
};

static void next_file(zf_adopt *a);

static void chunk_cb(void *ud, uint64_t index, uint64_t offset, uint32_t len, const xet_hash *h)
{
    (void)index;
    (void)offset;
    zf_adopt *a = ud;
    if (a->err)
        return;
    if (a->nch == a->capch) {
        size_t nc = a->capch ? a->capch * 2 : 1024;
        uint32_t *l = realloc(a->lens, nc * sizeof *l);
        if (l)
            a->lens = l;
        xet_hash *hh = l ? realloc(a->hashes, nc * sizeof *hh) : NULL;
        if (!hh) {
            a->err = -ENOMEM;
            return;
        }
        a->hashes = hh;
        a->capch = nc;
    }
    a->lens[a->nch] = len;
    a->hashes[a->nch++] = *h;
}

static void reset_cur(zf_adopt *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    if (a->fh) {
        xet_file_digest d;
        xet_file_hasher_final(a->fh, &d);
    }
    a->fh = NULL;
    EVP_MD_CTX_free(a->md);
    a->md = NULL;
    a->nch = 0;
    a->off = 0;
    a->err = 0;
    a->term = 0;
    a->toff = 0;
    a->tch = 0;
    a->meta_ok = false;
    if (a->rc)
        zn_recon_free(a->rc);
    a->rc = NULL;
}

static void finish(zf_adopt *a, int state)
{
    a_file *f = &a->f[a->cur];
    f->state = state;
    a->st.pending--;
    a->st.pending_bytes -= f->size;
    if (state == A_DONE) {
        a->st.done++;
        a->st.done_bytes += f->size;
    } else if (state == A_REFUSED) {
        a->st.refused++;
        a->st.refused_bytes += f->size;
    } else
        a->st.failed++;
    reset_cur(a);
    a->cur++;
    next_file(a);
}

/* ---- 5: record ---- */

/* The "adopt/<id>" record of f (non-Xet: of the file as opened, a->fst). */
static void meta_val(const zf_adopt *a, const a_file *f, char *val, size_t cap)
{
    if (f->is_xet)
        snprintf(val, cap, "ok %" PRIu64, f->size);
    else
        snprintf(val, cap, "ok %" PRIu64 " %ju %jd.%09ld", f->size, (uintmax_t)a->fst.st_ino,
                 (intmax_t)a->fst.st_mtim.tv_sec, (long)a->fst.st_mtim.tv_nsec);
}

static void record_work(uv_work_t *w)
{
    zf_adopt *a = w->data;
    a_file *f = &a->f[a->cur];
    char key[96], val[64];
    int err = 0;
    if (a->rc) { /* the map, as fs/read/fmap.c saves it */
        size_t n = a->rc->nterms, len = 16 + n * 56;
        uint8_t *d = calloc(1, len);
        if (!d) {
            a->err = -ENOMEM;
            return;
        }
        memcpy(d, "ZFMAP001", 8);
        uint64_t off = 0;
        for (int i = 0; i < 8; i++)
            d[8 + i] = (uint8_t)((uint64_t)n >> (8 * i));
        for (size_t k = 0; k < n; k++) {
            const xet_recon_term *t = &a->rc->terms[k];
            uint8_t *q = d + 16 + k * 56;
            uint64_t v[2] = {off, t->unpacked_length};
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 8; i++)
                    q[8 * j + i] = (uint8_t)(v[j] >> (8 * i));
            memcpy(q + 16, t->xorb.b, 32);
            uint32_t u[2] = {t->chunk_start, t->chunk_end};
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 4; i++)
                    q[48 + 4 * j + i] = (uint8_t)(u[j] >> (8 * i));
            off += t->unpacked_length;
        }
        snprintf(key, sizeof key, "fmap/%s", f->id);
        err = zc_meta_put(a->store, key, d, len, 0);
        free(d);
    }
    snprintf(key, sizeof key, "adopt/%s", f->id);
    meta_val(a, f, val, sizeof val);
    if (!err)
        err = zc_meta_put(a->store, key, val, strlen(val), 0);
    a->err = err;
}

static void record_after(uv_work_t *w, int status)
{
    (void)status;
    zf_adopt *a = w->data;
    a->busy = false;
    a_file *f = &a->f[a->cur];
    if (a->err) {
        zf_log(ZF_LOG_WARN, "zestfs: adopt %s: recording: %s\n", f->local, zf_strerror(-a->err));
        finish(a, A_FAILED);
        return;
    }
    if (!f->is_xet) {
        zf_log(ZF_LOG_INFO, "zestfs: adopted %s (%" PRIu64 " bytes, %s verified; read locally, "
                            "not imported)\n", f->local, f->size,
               strlen(f->etag) == 64 ? "sha256" : "git blob sha1");
        finish(a, A_DONE);
        return;
    }
    for (size_t k = 0; a->fs->p2p && k < a->rc->nterms; k++)
        zf_p2p_repo_xorb(a->fs->p2p, zf_p2p_type_name(f->type), f->repo, &a->rc->terms[k].xorb);
    zf_log(ZF_LOG_INFO, "zestfs: adopted %s (%" PRIu64 " bytes, %zu terms)\n", f->local, f->size,
           a->rc->nterms);
    finish(a, A_DONE);
}

static void queue(zf_adopt *a, uv_work_cb w, uv_after_work_cb after)
{
    a->busy = true;
    a->work.data = a;
    if (uv_queue_work(a->fs->loop, &a->work, w, after) != 0) {
        a->err = -EIO;
        after(&a->work, 0);
    }
}

static void on_hold(uv_timer_t *t);

/* The next piece, after the read path's fetches (FUSE reads first). */
static void step(zf_adopt *a, uv_work_cb w, uv_after_work_cb after)
{
    zf_metrics *m = zf_read_metrics(a->fs);
    if (a->timer_on && m && m->fetches_inflight > 0 && a->held < HOLD_MAX) {
        a->held++;
        a->next_w = w;
        a->next_after = after;
        uv_timer_start(&a->timer, on_hold, HOLD_MS, 0);
        return;
    }
    a->held = 0;
    queue(a, w, after);
}

static void on_hold(uv_timer_t *t)
{
    zf_adopt *a = t->data;
    if (!a->stopping)
        step(a, a->next_w, a->next_after);
}

/* ---- 4: import, a term per pool job ---- */

static void term_work(uv_work_t *w)
{
    zf_adopt *a = w->data;
    const xet_recon_term *t = &a->rc->terms[a->term];
    uint32_t nc = t->chunk_end - t->chunk_start;
    uint8_t *buf = malloc(t->unpacked_length ? t->unpacked_length : 1);
    if (!buf) {
        a->err = -ENOMEM;
        return;
    }
    size_t got = 0;
    while (got < t->unpacked_length) {
        ssize_t r = pread(a->fd, buf + got, t->unpacked_length - got, (off_t)(a->toff + got));
        if (r <= 0) {
            a->err = r < 0 ? -errno : -EIO;
            free(buf);
            return;
        }
        got += (size_t)r;
    }
    a->err = zc_put(a->store, &t->xorb, t->chunk_start, t->chunk_end, a->lens + a->tch,
                    a->hashes + a->tch, buf, got, 0, NULL);
    (void)nc;
    free(buf);
    if (!a->err && a->fs->p2p) /* the xorb's manifest, when the store now holds all of it */
        zf_p2p_after_put(a->fs->p2p, &t->xorb, t->chunk_start, t->chunk_end);
}

static void term_after(uv_work_t *w, int status)
{
    (void)status;
    zf_adopt *a = w->data;
    a->busy = false;
    a_file *f = &a->f[a->cur];
    if (a->err) {
        zf_log(ZF_LOG_WARN, "zestfs: adopt %s: storing: %s\n", f->local, zf_strerror(-a->err));
        finish(a, A_FAILED);
        return;
    }
    const xet_recon_term *t = &a->rc->terms[a->term];
    if (a->fs->p2p) { /* served on the repo's swarm from now on, and said so */
        zf_p2p_repo_xorb(a->fs->p2p, zf_p2p_type_name(f->type), f->repo, &t->xorb);
        zf_p2p_stored(a->fs->p2p, zf_p2p_type_name(f->type), f->repo, &t->xorb, t->chunk_start,
                      t->chunk_end);
    }
    a->toff += t->unpacked_length;
    a->tch += t->chunk_end - t->chunk_start;
    a->term++;
    if (a->stopping)
        return;
    if (a->term < a->rc->nterms)
        step(a, term_work, term_after);
    else
        queue(a, record_work, record_after);
}

static void recon_cb(void *ud, int err, xet_recon *r)
{
    zf_adopt *a = ud;
    a->op = NULL;
    a->in_recon = false;
    a_file *f = &a->f[a->cur];
    if (err) {
        if (err != -ECANCELED)
            zf_log(ZF_LOG_WARN, "zestfs: adopt %s: verified, not imported (reconstruction: %s)\n",
                   f->local, zf_strerror(-err));
        if (!a->stopping)
            finish(a, A_FAILED);
        return;
    }
    a->rc = r;
    /* the terms must cut the file's chunks exactly */
    size_t ch = 0;
    uint64_t off = 0;
    bool ok = r->base == 0 && r->nterms > 0;
    for (size_t k = 0; ok && k < r->nterms; k++) {
        const xet_recon_term *t = &r->terms[k];
        uint64_t sum = 0;
        if (t->chunk_end <= t->chunk_start || ch + (t->chunk_end - t->chunk_start) > a->nch) {
            ok = false;
            break;
        }
        for (uint32_t i = t->chunk_start; i < t->chunk_end; i++)
            sum += a->lens[ch++];
        ok = sum == t->unpacked_length;
        off += sum;
    }
    if (!ok || ch != a->nch || off != f->size) {
        zf_log(ZF_LOG_WARN, "zestfs: adopt %s: verified, not imported (reconstruction does not "
                            "match its chunks)\n", f->local);
        finish(a, A_FAILED);
        return;
    }
    queue(a, term_work, term_after);
}

/* ---- 2, 3: verify, a piece per pool job ---- */

/* Pool: the store still holds every chunk range of the file's saved map
 * (adopted before, and not evicted since). */
static bool stored_whole(zc_store *s, const char *id)
{
    char key[96];
    void *data = NULL;
    size_t len = 0;
    snprintf(key, sizeof key, "fmap/%s", id);
    if (zc_meta_get(s, key, &data, &len) != 0)
        return false;
    const uint8_t *p = data;
    bool ok = len >= 16 && memcmp(p, "ZFMAP001", 8) == 0 && (len - 16) % 56 == 0 && len > 16;
    for (size_t o = 16; ok && o < len; o += 56) {
        xet_hash x;
        memcpy(x.b, p + o + 16, 32);
        uint32_t cs = 0, ce = 0;
        for (int i = 3; i >= 0; i--) {
            cs = cs << 8 | p[o + 48 + i];
            ce = ce << 8 | p[o + 52 + i];
        }
        ok = cs < ce && zc_missing(s, &x, cs, ce, NULL, 0) == 0;
    }
    free(data);
    return ok;
}

static void hash_work(uv_work_t *w)
{
    zf_adopt *a = w->data;
    a_file *f = &a->f[a->cur];
    if (a->fd < 0) { /* first piece: done before? */
        char key[96];
        void *data = NULL;
        size_t len = 0;
        a->fd = openat(a->fs->rootfd, f->local, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (a->fd < 0 || fstat(a->fd, &a->fst) != 0) {
            a->err = -errno;
            return;
        }
        if (!S_ISREG(a->fst.st_mode) || (uint64_t)a->fst.st_size != f->size) {
            a->err = -EBADMSG;
            return;
        }
        snprintf(key, sizeof key, "adopt/%s", f->id);
        if (zc_meta_get(a->store, key, &data, &len) == 0) {
            char want[96];
            meta_val(a, f, want, sizeof want);
            a->meta_ok = len == strlen(want) && memcmp(data, want, len) == 0;
            free(data);
            if (a->meta_ok && (a->meta_ok = !f->is_xet || stored_whole(a->store, f->id)))
                return;
        }
        if (f->is_xet) {
            a->fh = xet_file_hasher_new(chunk_cb, a);
            if (!a->fh) {
                a->err = -ENOMEM;
                return;
            }
        } else {
            bool lfs = strlen(f->etag) == 64;
            char hdr[40];
            int hl = snprintf(hdr, sizeof hdr, "blob %" PRIu64, f->size);
            a->md = EVP_MD_CTX_new();
            if (!a->md || !EVP_DigestInit_ex(a->md, lfs ? EVP_sha256() : EVP_sha1(), NULL) ||
                (!lfs && !EVP_DigestUpdate(a->md, hdr, (size_t)hl + 1))) {
                a->err = -ENOMEM;
                return;
            }
        }
    }
    uint8_t *buf = malloc(PIECE);
    if (!buf) {
        a->err = -ENOMEM;
        return;
    }
    uint64_t end = a->off + PIECE < f->size ? a->off + PIECE : f->size;
    while (a->off < end && !a->err) {
        ssize_t r = pread(a->fd, buf, end - a->off, (off_t)a->off);
        if (r <= 0) {
            a->err = r < 0 ? -errno : -EIO; /* shrunk under us */
            break;
        }
        if (a->fh)
            xet_file_hasher_update(a->fh, buf, (size_t)r);
        else if (!EVP_DigestUpdate(a->md, buf, (size_t)r))
            a->err = -EIO;
        a->off += (uint64_t)r;
    }
    free(buf);
}

static void hash_after(uv_work_t *w, int status)
{
    (void)status;
    zf_adopt *a = w->data;
    a->busy = false;
    a_file *f = &a->f[a->cur];
    if (a->stopping)
        return;
    if (a->meta_ok) {
        zf_log(ZF_LOG_DEBUG, "zestfs: %s: adopted before\n", f->local);
        finish(a, A_DONE);
        return;
    }
    if (a->err) {
        zf_log(ZF_LOG_WARN, "zestfs: adopt %s: refused (%s); fetched instead\n", f->local,
               a->err == -EBADMSG ? "not a regular file of the right size" : zf_strerror(-a->err));
        finish(a, A_REFUSED);
        return;
    }
    if (a->off < f->size) {
        step(a, hash_work, hash_after);
        return;
    }
    if (!f->is_xet) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        char got[2 * EVP_MAX_MD_SIZE + 1] = "";
        if (EVP_DigestFinal_ex(a->md, md, &mdlen))
            xet_hex(md, mdlen, got);
        if (strcmp(got, f->etag) != 0) {
            zf_log(ZF_LOG_WARN, "zestfs: adopt %s: refused: its %s is %s, not %s; fetched "
                                "instead\n", f->local,
                   strlen(f->etag) == 64 ? "sha256" : "git blob sha1", got, f->etag);
            finish(a, A_REFUSED);
            return;
        }
        f->state = A_DONE; /* verified: the overlay shows the user's file again */
        queue(a, record_work, record_after);
        return;
    }
    xet_file_digest d;
    xet_file_hasher_final(a->fh, &d);
    a->fh = NULL;
    if (a->err || !xet_hash_eq(&d.file_hash, &f->xet)) {
        char got[XET_HASH_STR_LEN + 1];
        xet_hash_to_string(&d.file_hash, got);
        zf_log(ZF_LOG_WARN, "zestfs: adopt %s: refused: its Xet hash is %s, not %s; fetched "
                            "instead\n", f->local, got, f->id);
        finish(a, A_REFUSED);
        return;
    }
    f->state = A_DONE; /* verified: the overlay may show the user's file again */
    zn_hub *hub = zf_read_hub(a->fs);
    zn_op *op = NULL;
    a->in_recon = true;
    int err = hub ? zn_cas_reconstruction(hub, (zn_repo_type)f->type, f->repo, f->commit, f->id,
                                          NULL, recon_cb, a, &op)
                  : -ENETDOWN;
    if (err) {
        zf_log(ZF_LOG_WARN, "zestfs: adopt %s: verified, not imported (%s)\n", f->local,
               zf_strerror(-err));
        finish(a, A_FAILED);
        return;
    }
    if (a->in_recon) /* its callback did not run from inside the call */
        a->op = op;
}

static void next_file(zf_adopt *a)
{
    if (a->stopping)
        return;
    if (a->cur >= a->n) {
        if (a->st.running && a->n)
            zf_log(ZF_LOG_INFO, "zestfs: adoption done: %" PRIu64 " adopted, %" PRIu64
                                " refused, %" PRIu64 " not imported\n",
                   a->st.done, a->st.refused, a->st.failed);
        a->st.running = false;
        return;
    }
    step(a, hash_work, hash_after);
}

/* ---- 1: find ---- */

static bool hex_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == 0;
}

/* Where an earlier download of f lies below the root (malloc'd), or NULL. */
static char *find_local(int rootfd, const a_file *f, bool shared)
{
    struct stat st;
    char lnk[256];
    char *p = NULL;
    if (fstatat(rootfd, f->hide, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISREG(st.st_mode))
            p = strdup(f->hide);
        else if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlinkat(rootfd, f->hide, lnk, sizeof lnk - 1);
            lnk[n > 0 ? n : 0] = 0;
            /* ../../blobs/<xx>/<64 hex>: the shared store, read from the root */
            if (n == 6 + 6 + 3 + 64 && !strncmp(lnk, "../../blobs/", 12) && lnk[14] == '/' &&
                hex_name(lnk + 15, 64) && !strncmp(lnk + 12, lnk + 15, 2))
                p = strdup(lnk + 6);
        }
    }
    if (!p && shared && f->is_xet) {
        char s[100];
        snprintf(s, sizeof s, "blobs/%.2s/%s", f->id, f->id);
        if (fstatat(rootfd, s, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            p = strdup(s);
    }
    if (p && (fstatat(rootfd, p, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
              (uint64_t)st.st_size != f->size)) {
        free(p);
        p = NULL;
    }
    return p;
}

int zf_adopt_start(zf_fs *fs, zc_store *store)
{
    zf_adopt *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->fs = fs;
    a->store = store;
    a->fd = -1;
    struct stat st;
    bool shared = fstatat(fs->rootfd, "blobs/.huggingface-shared-blobs", &st, 0) == 0;
    size_t cap = 0;
    for (size_t i = 0; i < fs->tree.nrepos; i++) {
        const zf_repo *r = fs->tree.repos[i];
        for (size_t c = 0; c < r->ncommits; c++)
            for (size_t k = 0; k < r->commits[c].nfiles; k++) {
                const zf_file *zf = &r->commits[c].files[k];
                /* non-Xet blobs: verified only when mounted (nothing to seed) */
                size_t el = strlen(zf->etag);
                if (!zf->size || (!zf->has_xet && (!fs->se || (el != 64 && el != 40) ||
                                                   !hex_name(zf->etag, el))))
                    continue;
                bool seen = false;
                for (size_t j = 0; j < a->n && !seen; j++)
                    seen = !strcmp(a->f[j].etag, zf->etag) && !strcmp(a->f[j].folder, r->folder);
                if (seen)
                    continue;
                if (a->n == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    a_file *nf = realloc(a->f, nc * sizeof *nf);
                    if (!nf)
                        goto oom;
                    a->f = nf;
                    cap = nc;
                }
                a_file *f = &a->f[a->n];
                memset(f, 0, sizeof *f);
                f->type = r->type;
                memcpy(f->commit, r->commits[c].sha, 41);
                memcpy(f->etag, zf->etag, 65);
                f->is_xet = zf->has_xet;
                f->xet = zf->xet;
                if (f->is_xet)
                    xet_hash_to_string(&zf->xet, f->id);
                else
                    memcpy(f->id, zf->etag, el + 1);
                f->size = zf->size;
                f->repo = strdup(r->id);
                f->folder = strdup(r->folder);
                size_t hl = strlen(r->folder) + 8 + strlen(zf->etag);
                f->hide = malloc(hl);
                if (!f->repo || !f->folder || !f->hide) {
                    free(f->repo);
                    free(f->folder);
                    free(f->hide);
                    goto oom;
                }
                snprintf(f->hide, hl, "%s/blobs/%s", r->folder, zf->etag);
                f->local = find_local(fs->rootfd, f, shared);
                if (!f->local) {
                    free(f->repo);
                    free(f->folder);
                    free(f->hide);
                    continue;
                }
                a->n++;
                a->st.files++;
                a->st.bytes += f->size;
            }
    }
    a->st.pending = a->st.files;
    a->st.pending_bytes = a->st.bytes;
    a->st.running = a->n > 0;
    if (a->n)
        zf_log(ZF_LOG_INFO, "zestfs: adopting %zu earlier downloads (%" PRIu64 " bytes)%s\n",
               a->n, a->st.bytes, shared ? " (shared blob store found)" : "");
    fs->adopt = a;
    if (uv_timer_init(fs->loop, &a->timer) == 0) {
        a->timer.data = a;
        a->timer_on = true;
    }
    next_file(a);
    return 0;
oom:
    fs->adopt = a;
    zf_adopt_stop(a);
    zf_adopt_free(a);
    fs->adopt = NULL;
    return -ENOMEM;
}

bool zf_adopt_hides(const zf_adopt *a, const char *path)
{
    if (!a || !strstr(path, "/blobs/"))
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->f[i].state != A_DONE && a->f[i].state != A_FAILED && !strcmp(a->f[i].hide, path))
            return true;
    return false;
}

const zf_adopt_stats *zf_adopt_stats_get(const zf_adopt *a)
{
    return a ? &a->st : NULL;
}

void zf_adopt_stop(zf_adopt *a)
{
    if (!a || a->stopping)
        return;
    a->stopping = true;
    if (a->timer_on)
        uv_close((uv_handle_t *)&a->timer, NULL);
    if (a->op)
        zn_op_cancel(a->op);
    a->op = NULL;
}

void zf_adopt_free(zf_adopt *a)
{
    if (!a)
        return;
    reset_cur(a);
    for (size_t i = 0; i < a->n; i++) {
        free(a->f[i].repo);
        free(a->f[i].folder);
        free(a->f[i].local);
        free(a->f[i].hide);
    }
    free(a->f);
    free(a->lens);
    free(a->hashes);
    free(a);
}
