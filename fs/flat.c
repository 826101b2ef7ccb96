/* flat.c — whole-file copies of stored blobs, read by the kernel itself
 * through FUSE passthrough (Linux >= 6.9, CONFIG_FUSE_PASSTHROUGH).
 *
 * WHY  A blob read through FUSE costs a round trip to zestfs per request and
 * lives in the FUSE inode's page cache, which has no large folios: re-reads
 * run at about 0.86x of a local file and every mmap fault of a warm page is
 * a minor fault of 16 pages.  With passthrough the kernel reads a backing
 * file on the local fs directly (its page cache, its readahead, its large
 * folios): no request reaches zestfs at all.  The store keeps chunk runs,
 * not files, so a blob needs one contiguous copy of its bytes: a FLAT.
 *
 * WHEN  A flat is made for a blob that is hot and whole: a Xet or LFS blob
 * of at least FLAT_MIN bytes whose every byte is stored, once it has been
 * opened twice since the mount (a model loaded again, or a loader that
 * opens it twice: more loads are likely; a file read once through a single
 * open never pays for a copy) and its last handle is closed.  One build at
 * a time, on the pool, 8 MiB at a time from the store (zf_read_stored: no
 * fetch; each piece only once no blob has been read through FUSE for
 * FLAT_QUIET_MS: a build beside a load of the same or another blob took
 * half its speed, 1233 vs 2986 MB/s for a store-warm dd), hashed with SHA-256 as it is written — the blob's etag IS the
 * SHA-256 of its content, so a flat is checked end to end against the
 * Hub's tree before anything uses it — then fdatasync'd and renamed from
 * flat/.tmp-<etag> to flat/<etag>.  kill -9 leaves at worst a temp file
 * (deleted at the next start).  Flats found at startup are re-hashed the
 * first time their blob is opened (that open and the ones during the check
 * are served by the FUSE path); one that fails is deleted.
 *
 * SPACE  Flats count against the store cap: at most half of it, and the
 * store's own cap shrinks by what flats hold (zc_set_cap), so segments plus
 * flats never exceed --store-size.  A new flat that does not fit drops the
 * least recently opened flats not in use; a blob whose flat cannot fit gets
 * none.  `zestfs evict` drops the flats of what it evicts.
 *
 * OPEN  An open of a blob with a verified flat is answered with
 * FOPEN_PASSTHROUGH and the flat's backing id (FUSE_DEV_IOC_BACKING_OPEN on
 * the session fd, made once per flat and kept while it exists).  The kernel
 * refuses (EIO to the caller) an inode with cached and passthrough opens at
 * once, and passthrough opens of one inode with different backing files, so
 * opens are counted per blob: while a cached open is alive new opens stay
 * cached; while a passthrough open is alive new ones use the same backing
 * id, even when the flat was dropped meanwhile (the kernel holds the file).
 *
 * PROTOCOL  Debian's libfuse 3.14 predates passthrough (libfuse >= 3.17 has
 * it): it can neither ask for FUSE_PASSTHROUGH in INIT nor send a backing id
 * in an open reply.  So zestfs does both bits itself: the INIT request is
 * processed by libfuse with the session fd pointed at a pipe for the call,
 * its reply read back, FUSE_PASSTHROUGH and max_stack_depth = 1 added (only
 * when the kernel offered passthrough), and written to /dev/fuse; an open
 * reply with a backing id is written directly (the request's unique id is
 * taken from the header when the request is dispatched) and libfuse's
 * request is freed with fuse_reply_none.  One BACKING_OPEN probe right
 * after INIT tells whether the kernel took it and zestfs may use it
 * (CAP_SYS_ADMIN); otherwise flats are never made.  --no-passthrough turns
 * all of this off.
 *
 * Everything here is owned by the loop thread; the work items carry their
 * job. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "read.h"
#include "flat.h"
#include "zfs.h"

#define FLAT_MIN (8ull << 20)
#define PIECE (8u << 20)
#define RETRY_MS 60000 /* a blob whose build failed is not tried again before this */

/* ---- the FUSE protocol bits libfuse 3.14 does not know (linux/fuse.h 7.40) ---- */

#define PT_OP_INIT 26
#define PT_INIT_EXT (1u << 30)
#define PT_WRITEBACK_CACHE (1u << 16)
#define PT_PASSTHROUGH_HI (1u << 5) /* FUSE_PASSTHROUGH = 1 << 37: bit 5 of flags2 */
#define PT_FOPEN_PASSTHROUGH (1u << 7)

struct pt_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define PT_IOC_BACKING_OPEN _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

struct pt_in_header {
    uint32_t len, opcode;
    uint64_t unique, nodeid;
    uint32_t uid, gid, pid;
    uint16_t total_extlen, padding;
};
struct pt_out_header {
    uint32_t len;
    int32_t error;
    uint64_t unique;
};
struct pt_open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id;
};
_Static_assert(sizeof(struct pt_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct pt_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct pt_open_out) == 16, "fuse_open_out");
/* fuse_init_in after the header: major, minor, max_readahead, flags, flags2 */
#define INIT_IN_FLAGS 12
#define INIT_IN_FLAGS2 16
/* fuse_init_out: ... flags at 12, flags2 at 32, max_stack_depth at 36 */
#define INIT_OUT_FLAGS 12
#define INIT_OUT_FLAGS2 32
#define INIT_OUT_DEPTH 36
#define INIT_OUT_MIN 40

/* ---- state ------------------------------------------------------------------ */

enum { FL_NONE, FL_BUILDING, FL_UNVERIFIED, FL_VERIFYING, FL_READY };

typedef struct fl_ent {
    struct fl_ent *next;       /* hash chain */
    char etag[65];
    uint64_t size;             /* the blob's (and its flat's) size */
    int state;
    int backing;               /* > 0: the kernel's id for the flat */
    unsigned cached, pt;       /* open handles: through the FUSE path, through passthrough */
    unsigned opens;            /* opens since the mount */
    uint64_t used;             /* loop ms of the last open (LRU) */
    uint64_t failed_at;        /* loop ms of the last failed build; 0: none */
    bool want;                 /* a build is due once nothing has it open */
    zv_ent ent;                /* how to read it (last open's) */
} fl_ent;

typedef struct fl_job {
    zf_flats *F;
    fl_ent *e;
    bool verify;               /* re-hash an existing flat; else build one */
    bool opened;               /* open_work done: pieces now */
    int fd;
    uint64_t off;
    uint8_t *buf;
    size_t len;
    int err;
    EVP_MD_CTX *md;
    uv_work_t work;
} fl_job;

struct zf_flats {
    zf_fs *fs;
    zc_store *store;
    int dirfd;                 /* <store>/flat */
    uint64_t cap;              /* the store cap (--store-size) */
    bool want;                 /* not --no-passthrough */
    bool on;                   /* negotiated, and a backing id could be made */
    bool stopping;
    fl_ent **tab;
    size_t nb, n;
    fl_job *job;               /* the one build or check in flight */
    fl_job *held;              /* ... when it waits for reads to go quiet */
    uv_timer_t quiet;
    bool quiet_init;
    zf_flat_stats st;          /* bytes: held by flats (ready or waiting for their check) */
};

static uint64_t now_ms(zf_flats *F)
{
    return uv_now(F->fs->loop);
}

static size_t bucket(const zf_flats *F, const char *etag)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = etag; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (size_t)(h % F->nb);
}

static fl_ent *ent_find(zf_flats *F, const char *etag)
{
    for (fl_ent *e = F->tab[bucket(F, etag)]; e; e = e->next)
        if (strcmp(e->etag, etag) == 0)
            return e;
    return NULL;
}

static fl_ent *ent_get(zf_flats *F, const char *etag, uint64_t size)
{
    fl_ent *e = ent_find(F, etag);
    if (e)
        return e;
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    snprintf(e->etag, sizeof e->etag, "%s", etag);
    e->size = size;
    size_t b = bucket(F, etag);
    e->next = F->tab[b];
    F->tab[b] = e;
    F->n++;
    return e;
}

static bool is_sha256_hex(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 64;
}

/* The store gets what the flats leave of the cap. */
static void apply_cap(zf_flats *F)
{
    zc_set_cap(F->store, F->cap > F->st.bytes ? F->cap - F->st.bytes : 0);
}

static void backing_close(zf_flats *F, fl_ent *e)
{
    if (e->backing > 0) {
        uint32_t id = (uint32_t)e->backing;
        if (ioctl(fuse_session_fd(F->fs->se), PT_IOC_BACKING_CLOSE, &id) != 0)
            zf_debug("zestfs: closing backing id %d: %s\n", e->backing, strerror(errno));
    }
    e->backing = 0;
}

/* Delete a flat (its space is the store's again).  Handles still open on
 * it keep reading it: the kernel holds the file. */
static void flat_drop(zf_flats *F, fl_ent *e)
{
    if (e->state != FL_READY && e->state != FL_UNVERIFIED)
        return;
    if (unlinkat(F->dirfd, e->etag, 0) != 0 && errno != ENOENT)
        zf_log(ZF_LOG_WARN, "zestfs: removing flat %s: %s\n", e->etag, strerror(errno));
    e->state = FL_NONE;
    F->st.bytes -= e->size;
    F->st.flats--;
    if (e->pt == 0)
        backing_close(F, e);
    apply_cap(F);
}

/* Drop the least recently opened flats nobody has open until flats hold
 * at most `limit` bytes.  false: they cannot get there. */
static bool shrink_to(zf_flats *F, uint64_t limit)
{
    while (F->st.bytes > limit) {
        fl_ent *victim = NULL;
        for (size_t b = 0; b < F->nb; b++)
            for (fl_ent *e = F->tab[b]; e; e = e->next)
                if ((e->state == FL_READY || e->state == FL_UNVERIFIED) && e->pt == 0 &&
                    e->cached == 0 && (!victim || e->used < victim->used))
                    victim = e;
        if (!victim)
            return false;
        zf_debug("zestfs: flat %s dropped for room\n", victim->etag);
        flat_drop(F, victim);
    }
    return true;
}

/* Room for `need` more bytes of flats within half the cap. */
static bool make_room(zf_flats *F, uint64_t need)
{
    uint64_t budget = F->cap / 2;
    return need <= budget && shrink_to(F, budget - need);
}

void zf_flat_yield(zf_flats *F, uint64_t need)
{
    if (F)
        shrink_to(F, F->cap > need ? F->cap - need : 0);
}

/* ---- builds and checks ------------------------------------------------------------ */

static void job_next(zf_flats *F);
static void job_piece(fl_job *j);

static void tmp_name(const fl_ent *e, char *out, size_t n)
{
    snprintf(out, n, ".tmp-%s", e->etag);
}

/* The xorbs of a blob whose whole copy did not match its sha256: the
 * stored segments it was built from hold a wrong byte that their own check
 * did not see (segments this process wrote are trusted), so every segment
 * of those xorbs is dropped — labelled ones too (the label is lifted for
 * the drop and put back) — and the next read fetches and verifies them
 * again.  On the loop. */
static void drop_xorbs_cb(void *ud, int err, const xet_hash *v, size_t n)
{
    zc_store *store = ud;
    if (err) {
        zf_log(ZF_LOG_WARN, "zestfs: the segments of a blob that failed its sha256 could not "
               "be listed (%s): they stay\n", strerror(-err));
        return;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t freed = 0;
        int rc = zc_drop_xorb(store, &v[i], &freed);
        if (rc == -EBUSY) { /* labelled (pinned): the label comes back, the bytes do not */
            zc_label_pin(store, &v[i], false);
            rc = zc_drop_xorb(store, &v[i], &freed);
            zc_label_pin(store, &v[i], true);
        }
        total += rc == 0 ? freed : 0;
    }
    zf_log(ZF_LOG_WARN, "zestfs: dropped the stored segments of %zu xorb%s (%" PRIu64
           " bytes) that built it: they are fetched and verified again\n", n, n == 1 ? "" : "s",
           total);
}

static void job_end(fl_job *j, int err)
{
    zf_flats *F = j->F;
    fl_ent *e = j->e;
    if (j->fd >= 0)
        close(j->fd);
    if (j->verify) {
        if (err == 0) {
            e->state = FL_READY;
            F->st.checks++;
        } else {
            zf_log(err == -EBADMSG ? ZF_LOG_WARN : ZF_LOG_INFO,
                   "zestfs: flat %s: %s; removed\n", e->etag,
                   err == -EBADMSG ? "content does not match its sha256" : strerror(-err));
            e->state = FL_READY; /* so that flat_drop takes it */
            flat_drop(F, e);
            F->st.failures++;
        }
    } else if (err == 0) {
        e->state = FL_READY;
        F->st.bytes += e->size;
        F->st.flats++;
        F->st.builds++;
        F->st.build_bytes += e->size;
        apply_cap(F);
        zf_log(ZF_LOG_INFO, "zestfs: %s/%s: whole copy made for passthrough (%" PRIu64 " bytes)\n",
               e->ent.repo ? e->ent.repo->id : "?", e->ent.file ? e->ent.file->path : "?", e->size);
    } else {
        char t[80];
        tmp_name(e, t, sizeof t);
        unlinkat(F->dirfd, t, 0);
        e->state = FL_NONE;
        if (err != -ENOENT && err != -ESHUTDOWN) { /* not stored whole yet: no failure */
            e->failed_at = now_ms(F);
            F->st.failures++;
            zf_log(err == -EBADMSG ? ZF_LOG_WARN : ZF_LOG_INFO, "zestfs: flat of %s: %s\n",
                   e->etag,
                   err == -EBADMSG ? "stored bytes do not match the blob's sha256" : strerror(-err));
            if (err == -EBADMSG) {
                if (zf_read_file_xorbs(F->fs, &e->ent, drop_xorbs_cb, F->store) != 0)
                    zf_log(ZF_LOG_WARN, "zestfs: flat of %s: its segments could not be dropped\n",
                           e->etag);
            }
        }
    }
    if (j->md)
        EVP_MD_CTX_free(j->md);
    free(j->buf);
    free(j);
    F->job = NULL;
    job_next(F);
}

static void hash_check(fl_job *j)
{
    unsigned char md[32];
    unsigned n = 0;
    char hex[65];
    EVP_DigestFinal_ex(j->md, md, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (n != 32 || strcmp(hex, j->e->etag) != 0)
        j->err = -EBADMSG;
}

/* Pool: hash the piece and write it (build) or read and hash it (check);
 * after the last piece, check the digest, then (build) make it durable and
 * give it its name. */
static void piece_work(uv_work_t *w)
{
    fl_job *j = w->data;
    if (j->verify) {
        size_t got = 0;
        while (got < j->len) {
            ssize_t r = pread(j->fd, j->buf + got, j->len - got, (off_t)(j->off + got));
            if (r <= 0) {
                j->err = r < 0 ? -errno : -EIO;
                return;
            }
            got += (size_t)r;
        }
    }
    EVP_DigestUpdate(j->md, j->buf, j->len);
    if (!j->verify) {
        size_t put = 0;
        while (put < j->len) {
            ssize_t r = pwrite(j->fd, j->buf + put, j->len - put, (off_t)(j->off + put));
            if (r < 0) {
                j->err = -errno;
                return;
            }
            put += (size_t)r;
        }
    }
    if (j->off + j->len < j->e->size)
        return;
    hash_check(j);
    if (j->err || j->verify)
        return;
    if (fdatasync(j->fd) != 0) {
        j->err = -errno;
        return;
    }
    char t[80];
    tmp_name(j->e, t, sizeof t);
    if (renameat(j->F->dirfd, t, j->F->dirfd, j->e->etag) != 0)
        j->err = -errno;
}

/* After the open (open_work) or a piece (piece_work): on to the next. */
static void job_after(uv_work_t *w, int status)
{
    fl_job *j = w->data;
    if (status != 0 && !j->err)
        j->err = -ECANCELED;
    if (j->err) {
        job_end(j, j->err);
        return;
    }
    if (!j->opened)
        j->opened = true;
    else if ((j->off += j->len) >= j->e->size) {
        job_end(j, 0);
        return;
    }
    job_piece(j);
}

static void queue_piece(fl_job *j)
{
    j->work.data = j;
    if (uv_queue_work(j->F->fs->loop, &j->work, piece_work, job_after) != 0)
        job_end(j, -EIO);
}

static void stored_cb(void *ud, int err, const uint8_t *data, size_t len)
{
    fl_job *j = ud;
    if (err || len != j->len) {
        job_end(j, err ? err : -EIO);
        return;
    }
    memcpy(j->buf, data, len);
    queue_piece(j);
}

#define FLAT_QUIET_MS 1000

static void quiet_cb(uv_timer_t *t)
{
    zf_flats *F = t->data;
    fl_job *j = F->held;
    F->held = NULL;
    if (j)
        job_piece(j);
}

static void job_piece(fl_job *j)
{
    zf_flats *F = j->F;
    if (F->stopping) {
        job_end(j, -ESHUTDOWN);
        return;
    }
    uint64_t now = now_ms(F), last = F->fs->blob_read_ms;
    if (!j->verify && last && now - last < FLAT_QUIET_MS) { /* reads go first */
        if (!F->quiet_init) {
            uv_timer_init(F->fs->loop, &F->quiet);
            F->quiet.data = F;
            F->quiet_init = true;
        }
        F->held = j;
        uv_timer_start(&F->quiet, quiet_cb, FLAT_QUIET_MS - (now - last), 0);
        return;
    }
    uint64_t left = j->e->size - j->off;
    j->len = left < PIECE ? (size_t)left : PIECE;
    if (j->verify) {
        queue_piece(j);
        return;
    }
    int err = zf_read_stored(j->F->fs, &j->e->ent, j->off, j->len, stored_cb, j);
    if (err)
        job_end(j, err);
}

/* Pool: create the temp file (its whole size reserved first: a full disk
 * fails here, not halfway) or open the flat to check. */
static void open_work(uv_work_t *w)
{
    fl_job *j = w->data;
    if (j->verify) {
        j->fd = openat(j->F->dirfd, j->e->etag, O_RDONLY | O_CLOEXEC);
    } else {
        char t[80];
        tmp_name(j->e, t, sizeof t);
        j->fd = openat(j->F->dirfd, t, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (j->fd >= 0 && fallocate(j->fd, 0, 0, (off_t)j->e->size) != 0 && errno != EOPNOTSUPP)
            j->err = -errno;
    }
    if (j->fd < 0)
        j->err = -errno;
}

static void queue_open(fl_job *j)
{
    j->work.data = j;
    if (uv_queue_work(j->F->fs->loop, &j->work, open_work, job_after) != 0)
        job_end(j, -EIO);
}

/* zf_read_check's answer: every byte stored (0) or not. */
static void check_cb(void *ud, int err, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    if (err)
        job_end(ud, err);
    else
        queue_open(ud);
}

static void job_start(zf_flats *F, fl_ent *e, bool verify)
{
    fl_job *j = calloc(1, sizeof *j);
    if (j) {
        j->buf = malloc(PIECE);
        j->md = EVP_MD_CTX_new();
    }
    if (!j || !j->buf || !j->md || !EVP_DigestInit_ex(j->md, EVP_sha256(), NULL)) {
        if (j) {
            free(j->buf);
            EVP_MD_CTX_free(j->md);
            free(j);
        }
        return;
    }
    j->F = F;
    j->e = e;
    j->verify = verify;
    j->fd = -1;
    F->job = j;
    e->state = verify ? FL_VERIFYING : FL_BUILDING;
    e->want = false;
    if (verify) {
        queue_open(j);
        return;
    }
    /* every byte stored? (a walk of the store index, nothing copied) */
    int err = zf_read_check(F->fs, &e->ent, check_cb, j);
    if (err)
        job_end(j, err);
}

/* Start the next build or check due, if none is in flight. */
static void job_next(zf_flats *F)
{
    if (F->job || F->stopping || !F->on)
        return;
    uint64_t now = now_ms(F);
    fl_ent *best = NULL;
    for (size_t b = 0; b < F->nb; b++)
        for (fl_ent *e = F->tab[b]; e; e = e->next) {
            bool due = (e->state == FL_UNVERIFIED && e->opens > 0) ||
                       (e->state == FL_NONE && e->want && e->cached == 0 && e->pt == 0 &&
                        (!e->failed_at || now - e->failed_at >= RETRY_MS));
            if (due && (!best || e->used > best->used))
                best = e;
        }
    if (!best)
        return;
    zc_stats zs;
    zc_get_stats(F->store, &zs);
    /* the store must be able to give the room up: pinned bytes stay */
    if (best->state == FL_NONE &&
        (zs.pinned + F->st.bytes + best->size > F->cap || !make_room(F, best->size))) {
        best->want = false;
        return;
    }
    job_start(F, best, best->state == FL_UNVERIFIED);
}

/* ---- the mount's side ---------------------------------------------------------------- */

int zf_flat_init(zf_fs *fs, zc_store *store, const char *store_dir, uint64_t cap, bool want,
                 zf_flats **out)
{
    *out = NULL;
    zf_flats *F = calloc(1, sizeof *F);
    if (!F)
        return -ENOMEM;
    F->fs = fs;
    F->store = store;
    F->cap = cap;
    F->want = want;
    F->nb = 1024;
    F->tab = calloc(F->nb, sizeof *F->tab);
    char path[4200];
    snprintf(path, sizeof path, "%s/flat", store_dir);
    if (!F->tab || (mkdir(path, 0700) != 0 && errno != EEXIST) ||
        (F->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        int err = F->tab ? -errno : -ENOMEM;
        free(F->tab);
        free(F);
        return err;
    }
    /* what an earlier run left: temp files go, flats wait for their check */
    DIR *d = fdopendir(dup(F->dirfd));
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.') {
            if (strncmp(de->d_name, ".tmp-", 5) == 0)
                unlinkat(F->dirfd, de->d_name, 0);
            continue;
        }
        if (!is_sha256_hex(de->d_name) || fstatat(F->dirfd, de->d_name, &st, 0) != 0 ||
            !S_ISREG(st.st_mode) || !want) {
            unlinkat(F->dirfd, de->d_name, 0);
            continue;
        }
        fl_ent *e = ent_get(F, de->d_name, (uint64_t)st.st_size);
        if (!e)
            continue;
        e->state = FL_UNVERIFIED;
        F->st.bytes += e->size;
        F->st.flats++;
    }
    if (d)
        closedir(d);
    apply_cap(F);
    *out = F;
    return 0;
}

/* Passthrough cannot be used in this run: the flats only take space. */
static void drop_all(zf_flats *F)
{
    for (size_t b = 0; b < F->nb; b++)
        for (fl_ent *e = F->tab[b]; e; e = e->next)
            flat_drop(F, e);
}

/* Called by mount.c for each request before libfuse dispatches it: notes
 * the request's unique id (for zf_flat_reply_open) and, for INIT, adds
 * FUSE_PASSTHROUGH to libfuse's reply.  true: the request was processed. */
bool zf_flat_dispatch(zf_fs *fs, struct fuse_session *se, const struct fuse_buf *buf)
{
    if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < sizeof(struct pt_in_header))
        return false;
    struct pt_in_header ih;
    memcpy(&ih, buf->mem, sizeof ih);
    fs->cur_unique = ih.unique;
    zf_flats *F = fs->flats;
    if (ih.opcode != PT_OP_INIT || !F || !F->want || buf->size < sizeof ih + INIT_IN_FLAGS2 + 4)
        return false;
    uint32_t kflags, kflags2;
    memcpy(&kflags, (const char *)buf->mem + sizeof ih + INIT_IN_FLAGS, 4);
    memcpy(&kflags2, (const char *)buf->mem + sizeof ih + INIT_IN_FLAGS2, 4);
    if (!(kflags & PT_INIT_EXT) || !(kflags2 & PT_PASSTHROUGH_HI)) {
        zf_log(ZF_LOG_INFO, "zestfs: the kernel offers no FUSE passthrough: blobs are read "
                            "through zestfs only\n");
        drop_all(F);
        return false;
    }
    int fd = fuse_session_fd(se), p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    int saved = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (saved < 0 || dup3(p[1], fd, O_CLOEXEC) < 0) {
        if (saved >= 0)
            close(saved);
        close(p[0]);
        close(p[1]);
        return false;
    }
    fuse_session_process_buf(se, buf); /* libfuse's INIT reply goes into the pipe */
    dup3(saved, fd, O_CLOEXEC);
    close(saved);
    close(p[1]);
    uint8_t rep[1024];
    ssize_t n = read(p[0], rep, sizeof rep);
    close(p[0]);
    if (n <= 0) {
        zf_log(ZF_LOG_ERR, "zestfs: no INIT reply from libfuse\n");
        return true;
    }
    struct pt_out_header oh;
    bool patched = false;
    uint8_t orig[sizeof rep];
    memcpy(orig, rep, (size_t)n);
    if ((size_t)n >= sizeof oh + INIT_OUT_MIN) {
        memcpy(&oh, rep, sizeof oh);
        uint32_t of;
        memcpy(&of, rep + sizeof oh + INIT_OUT_FLAGS, 4);
        if (oh.error == 0 && oh.len == (uint32_t)n && (of & PT_INIT_EXT) &&
            !(of & PT_WRITEBACK_CACHE)) {
            uint32_t f2, depth = 1; /* the backing fs must not be stacked itself */
            memcpy(&f2, rep + sizeof oh + INIT_OUT_FLAGS2, 4);
            f2 |= PT_PASSTHROUGH_HI;
            memcpy(rep + sizeof oh + INIT_OUT_FLAGS2, &f2, 4);
            memcpy(rep + sizeof oh + INIT_OUT_DEPTH, &depth, 4);
            patched = true;
        }
    }
    if (write(fd, rep, (size_t)n) != n) {
        int e = errno;
        /* refused with passthrough asked for: the reply libfuse made, as it was */
        if (!patched || write(fd, orig, (size_t)n) != n)
            zf_log(ZF_LOG_ERR, "zestfs: writing the INIT reply: %s\n", strerror(errno));
        else
            zf_log(ZF_LOG_INFO, "zestfs: the kernel refused FUSE passthrough in INIT (%s)\n",
                   strerror(e));
        drop_all(F);
        return true;
    }
    if (!patched) {
        drop_all(F);
        return true;
    }
    /* did the kernel take it, and may we make backing files? (an unnamed
     * regular file on the store's fs: what a flat will be) */
    int probe = openat(F->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    struct pt_backing_map map = {.fd = probe};
    int id = probe >= 0 ? ioctl(fd, PT_IOC_BACKING_OPEN, &map) : -1;
    if (probe >= 0)
        close(probe);
    if (id > 0) {
        uint32_t u = (uint32_t)id;
        ioctl(fd, PT_IOC_BACKING_CLOSE, &u);
        F->on = true;
        zf_log(ZF_LOG_INFO, "zestfs: FUSE passthrough on: blobs read often are read by the "
                            "kernel from whole copies\n");
    } else {
        zf_log(ZF_LOG_INFO, "zestfs: FUSE passthrough unavailable (%s): blobs are read "
                            "through zestfs only\n", strerror(errno));
        drop_all(F);
    }
    return true;
}

static int backing_open(zf_flats *F, fl_ent *e)
{
    int ffd = openat(F->dirfd, e->etag, O_RDONLY | O_CLOEXEC);
    if (ffd < 0)
        return -errno;
    struct pt_backing_map map = {.fd = ffd};
    int id = ioctl(fuse_session_fd(F->fs->se), PT_IOC_BACKING_OPEN, &map);
    int err = id > 0 ? 0 : -errno;
    close(ffd);
    if (err)
        return err;
    e->backing = id;
    return 0;
}

int zf_flat_open(zf_flats *F, const zv_ent *ent)
{
    const zf_file *f = ent->file;
    if (!F || !f || !f->has_lfs || !ZF_IN_XORBS(f) || f->size < FLAT_MIN || !is_sha256_hex(f->etag))
        return 0;
    fl_ent *e = ent_get(F, f->etag, f->size);
    if (!e)
        return 0;
    e->opens++;
    e->used = now_ms(F);
    e->ent = *ent;
    if (e->pt > 0) { /* the inode is in passthrough mode: same backing file */
        e->pt++;
        F->st.opens++;
        return e->backing;
    }
    if (F->on && e->state == FL_READY && e->cached == 0) {
        if (e->backing <= 0) {
            int err = backing_open(F, e);
            if (err) {
                zf_log(ZF_LOG_WARN, "zestfs: passthrough of %s refused (%s): flat removed\n",
                       e->etag, strerror(-err));
                flat_drop(F, e);
                F->st.failures++;
                goto cached;
            }
        }
        e->pt++;
        F->st.opens++;
        return e->backing;
    }
cached:
    e->cached++;
    if (e->state == FL_UNVERIFIED)
        job_next(F);
    return 0;
}

void zf_flat_release(zf_flats *F, const zv_ent *ent, bool passthrough)
{
    const zf_file *f = ent->file;
    fl_ent *e = F && f ? ent_find(F, f->etag) : NULL;
    if (!e)
        return;
    if (passthrough && e->pt > 0) {
        if (--e->pt == 0 && e->state != FL_READY)
            backing_close(F, e);
    } else if (!passthrough && e->cached > 0) {
        e->cached--;
    }
    if (e->cached == 0 && e->pt == 0 && e->state == FL_NONE && e->opens >= 2 && F->on) {
        e->want = true;
        job_next(F);
    }
}

int zf_flat_reply_open(zf_fs *fs, fuse_req_t req, struct fuse_file_info *fi, int backing)
{
    struct {
        struct pt_out_header h;
        struct pt_open_out o;
    } m = {{sizeof m, 0, fs->cur_unique},
           {fi->fh, PT_FOPEN_PASSTHROUGH, backing}};
    ssize_t n = write(fuse_session_fd(fs->se), &m, sizeof m);
    int err = n == (ssize_t)sizeof m ? 0 : n < 0 ? -errno : -EIO;
    fuse_reply_none(req);
    return err;
}

void zf_flat_drop_etag(zf_flats *F, const char *etag, uint64_t *freed)
{
    fl_ent *e = F ? ent_find(F, etag) : NULL;
    if (!e || (e->state != FL_READY && e->state != FL_UNVERIFIED))
        return;
    if (freed)
        *freed += e->size;
    flat_drop(F, e);
}

const zf_flat_stats *zf_flat_stats_get(zf_flats *F)
{
    if (!F)
        return NULL;
    F->st.on = F->on;
    F->st.busy = F->job != NULL;
    return &F->st;
}

void zf_flat_stop(zf_flats *F)
{
    if (!F)
        return;
    F->stopping = true; /* a job in flight ends at its next step */
    if (F->held) {
        fl_job *j = F->held;
        F->held = NULL;
        uv_timer_stop(&F->quiet);
        job_end(j, -ESHUTDOWN);
    }
    if (F->quiet_init && !uv_is_closing((uv_handle_t *)&F->quiet))
        uv_close((uv_handle_t *)&F->quiet, NULL);
}

void zf_flat_free(zf_flats *F)
{
    if (!F)
        return;
    for (size_t b = 0; b < F->nb; b++)
        for (fl_ent *e = F->tab[b], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    free(F->tab);
    close(F->dirfd);
    free(F);
}
