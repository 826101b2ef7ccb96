/* read.c — reads of virtual blobs (ARCHITECTURE.md, "The path of a read").
 *
 * Everything here is owned by the loop thread except the work items, which
 * carry what they need to the libuv pool and come back in after_work.
 *
 * Xet files (keyed by Xet file id; shared by every repo/revision/path that
 * has that content):
 *   - a FILE MAP: sorted extents (file offset, length, xorb, chunk range),
 *     one per reconstruction term seen, persisted as store metadata
 *     "fmap/<xet id>" (loaded on first use), so a remount or an offline
 *     mount knows where stored bytes are without the network.  No extent is
 *     contained in another, so starts and ends both increase and the extent
 *     covering a byte is found with one binary search.
 *   - a read [off, min(off+size, file size)) whose bytes are all mapped goes
 *     to the pool as a STORE READ: walk the extents, zc_lookup each chunk
 *     run (verifying segments found at zc_open on first use), zc_read into
 *     one buffer and fuse_reply_buf from the worker.  Nothing missing: done.
 *   - otherwise (unmapped byte, or the store read found a chunk missing at
 *     byte m) the read waits for the WINDOW FETCHES ("cells": the aligned
 *     8 MiB windows of the file) that contain [m, end).  A cell is one
 *     in-flight fetch however many reads wait on it:
 *       zn_cas_reconstruction(Range: bytes=S-E, rev = the commit) -> terms
 *       become extents -> each descriptor with chunks missing in the store
 *       joins or creates an XORB RANGE FETCH keyed by (xorb, chunk range):
 *       one CDN request (zn_cdn_fetch, the exact signed range) for all the
 *       cells and files that need it; its body is decoded on the pool (record
 *       count = the descriptor's chunks, each term's chunks decode to its
 *       unpacked_length); the FUSE reads waiting whose bytes all lie in the
 *       run are answered from it in memory (replies sent first by the pool
 *       job that then hashes and stores it with zc_put; reads arriving
 *       meanwhile are answered from it on the loop); then the cell's other
 *       reads try the store again.
 *     A failed cell is tried again from a fresh reconstruction (signed URLs
 *     may have expired) with backoff, 3 attempts within 60 s; then its reads
 *     fail with EIO (a fill's window goes on its retry list instead).  A read never gets a short answer before EOF.
 *   - memory: fetch bodies in flight are capped by XF_BUDGET (fetches queue
 *     beyond it); a cell is 8 MiB of file data; no whole file is buffered.
 * Other files (no Xet hash; small regular files): fetched whole once from
 * {endpoint}/{repo}/resolve/{commit}/{path}, checked (sha256 of LFS files,
 * git blob sha1 otherwise), stored as metadata "blob/<etag>", and served
 * from memory (an LRU of BLOB_MEM bytes) or the store.  Larger non-Xet files
 * (> BLOB_MAX) are stored as windows of synthetic xorbs: see "large non-Xet
 * files" below.
 *
 * Errors are negative errno values internally; a FUSE read ends with EIO
 * when its bytes cannot be had (offline, fetch failed), never short. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <fcntl.h>

#include <openssl/evp.h>

#include "net.h"
#include "p2p.h"
#include "tensors.h"
#include "bufpool.h"
#include "log.h"
#include "zfs.h"

#define CELL_SIZE (8ull << 20)
#define MAX_ATTEMPTS 3
#define DEADLINE_MS 60000
#define XF_BUDGET (128ull << 20)
#define BLOB_MAX ZF_BLOB_MAX
#define BLOB_MEM (64ull << 20)
#define MAX_ROUNDS 4       /* fetch rounds per read before EIO */
#define READ_DEADLINE_MS 60000 /* a read waiting for fetches fails after this (ZESTFS_READ_DEADLINE s) */
#define NSTREAMS 8         /* sequential streams tracked per file */
#define SEQ_BACK (1ull << 20)   /* a stream continues with a read starting this far */
#define SEQ_FWD (128ull << 10)  /* behind or ahead of where it stopped */
#define SEQ_MIN (4ull << 20) /* sequential bytes before prefetch starts */
#define MAX_AHEAD 32       /* windows fetched ahead of a sequential stream (256 MiB) */
#define NBUCKETS 4096
#define DISK_RA (8ull << 20) /* stored bytes a sequential reader's disk reads run ahead */
#define P2P_TICK_MS 25     /* parked and peer fetches are looked at this often */
#define RACE_AFTER_MS 500  /* a peer fetch a read waits for is not raced before this */
#define BG_RACE_AFTER_MS 10000 /* one nobody waits for (pull, prefetch): this */
#define PARK_BG_MS 30000   /* a background fetch waits this long for a peer's CDN fetch */
#define PARK_FG_MIN_MS 1000 /* a read's: max(this, bytes / 10 MB/s) */
#define JITTER_MS 200      /* a background CDN fetch with peers connected waits 0..this first */
#define REPARK_MS 2000     /* no manifest yet for a background fetch: the peers again after */
#define REPARKS_BG 10      /* ... at most this many times, then the CDN */
#define HOLD_MAX_MS 20000  /* a fill's CDN transfer is held at most this long in all */
#define FILL_XF_FG 2       /* fill fetches started at once while reads use the CDN ... */
#define FG_RECENT_MS 1000  /* ... or did this recently */

typedef struct rd_ctx rd_ctx;
typedef struct rd_file rd_file;
typedef struct rd_read rd_read;
typedef struct rd_cell rd_cell;
typedef struct rd_xf rd_xf;
typedef struct rd_openpf rd_openpf;
typedef struct big_dl big_dl;

typedef struct rd_ext {
    uint64_t off, len;
    xet_hash xorb;
    uint32_t cs, ce;
} rd_ext;

typedef struct rd_check { /* a term to check against a fetched run */
    uint32_t cs, ce, ulen;
} rd_check;

/* A pinned store segment shared by the cells and reads that need it: runs
 * fetched (or found) for a window stay pinned until the reads woken by it
 * have read them, so a small store cap cannot evict them in between. */
typedef struct rd_pin {
    zc_ref ref;
    int refs;
} rd_pin;

typedef struct rd_pins {
    rd_pin **v;
    size_t n, cap;
} rd_pins;

typedef struct rd_stream { /* a sequential reader of a file */
    uint64_t next, run, used;
} rd_stream;

enum { MAP_NONE, MAP_LOADING, MAP_READY };
enum { BLOB_NONE, BLOB_LOADING, BLOB_FETCHING, BLOB_READY };

struct rd_file {
    rd_file *hnext;
    rd_ctx *c;
    bool xet;
    char key[72];              /* "x<xet id>" or "b<etag>" */
    char id[65];               /* Xet id string */
    uint64_t size;
    /* where it comes from (pointers into the presented models) */
    zn_repo_type type;
    const char *repo;
    char rev[41];
    const char *path;
    char oid[41], etag[65];
    bool has_lfs;
    bool big;                  /* non-Xet, over BLOB_MAX: windows of synthetic xorbs */
    big_dl *dl;                /* its first download, while one is needed */
    /* Xet map */
    int map_state;
    rd_ext *ext;
    size_t n, cap;
    bool map_dirty, map_saving;
    rd_read *map_wait;
    rd_cell *cells;
    uint8_t *done;             /* windows fetched (or found stored): bitmap */
    rd_stream streams[NSTREAMS];
    uint64_t tick;
    /* non-Xet content */
    int blob_state;
    uint8_t *blob;
    rd_read *blob_wait;
    rd_file *lru_prev, *lru_next;
    rd_openpf *opf;            /* prefetch at open */
};

struct rd_read {
    rd_ctx *c;
    rd_file *f;
    fuse_req_t req;
    uint64_t off, len;
    unsigned rounds;
    int waits;                 /* cells outstanding */
    int err;
    rd_read *next;             /* map_wait / blob_wait */
    uv_work_t work;
    rd_ext *snap;              /* extents for the store read */
    size_t nsnap;
    int rc;                    /* store read: 0 replied, -ENOENT missing at miss */
    uint64_t miss;
    rd_pins pins;              /* segments held for this read */
    zf_fill *fill;             /* a background read (no FUSE request) */
    int ftries;                /* a fill's piece handed out again: its failures so far */
    uint64_t fepoch;           /* ... and the fill's progress (nok) at the last one */
    uint64_t t0;               /* uv_hrtime at arrival */
    zf_read_cb cb;             /* an internal read (zf_read_async): no FUSE request */
    void *ud;
    uint8_t *out;              /* its bytes, from the store read */
    bool nofetch;              /* zf_read_stored: -ENOENT rather than fetch */
    bool check;                /* zf_read_check: walk the store, copy nothing */
    bool http;                 /* zf_read_async (the HTTP access server): counted like FUSE reads */
    uint64_t ra_len;           /* store read: also hint this many bytes DISK_RA ahead */
    int label;                 /* zf_read_label_file: 1 on, -1 off (no data read) */
    void (*label_cb)(void *ud, int err, uint64_t nxorbs);
    void (*xorbs_cb)(void *ud, int err, const xet_hash *v, size_t n); /* label == 2 */
    uv_timer_t *deadline;      /* while waiting for fetches: fails the read at t0 + deadline */
    bool expired;              /* answered EIO by the deadline; freed once no cell holds it */
};

struct rd_cell {
    rd_cell *next;             /* f->cells */
    rd_file *f;
    uint64_t idx, start, end;
    rd_read **w;
    size_t nw, cw;
    int pending;               /* xorb range fetches (+1 while being set up) */
    int err;
    int attempt;
    uint64_t t0;
    uv_timer_t timer;
    rd_pins pins;
    bool ahead;                /* a sequential reader's prefetch wants it (not only fills) */
};

/* A FUSE read answered from a fetched run in memory, before the run is
 * stored: the reply is sent from the pool job that stores the run. */
typedef struct rd_early {
    struct rd_early *next;
    fuse_req_t req;
    int n;
    struct iovec iov[];
} rd_early;

struct rd_xf {
    rd_xf *next;               /* c->xfs (all live ones) */
    rd_xf *qnext;              /* c->xq (waiting for budget) */
    rd_ctx *c;
    xet_hash xorb;
    uint32_t cs, ce;
    uint64_t bs, be;
    char *url;
    uint8_t *buf;
    uint64_t bytes;
    bool started, decoding;
    rd_cell **w;
    size_t nw, cw;
    rd_check *chk;
    size_t nchk, cchk;
    uint32_t *lens;            /* after decode */
    uint8_t *data;             /* the decoded, checked run, from decode until stored */
    uint64_t dlen;
    uint64_t *pre;             /* its chunks' offsets (ce - cs + 1): set while the run may
                                  answer reads (decoded and checked, not yet freed) */
    rd_early *early;           /* reads answered from it, replied before it is stored */
    xet_record *recs;          /* the body's records, while it is decoded */
    int dparts;                /* decode jobs outstanding (+1 while queued); the first
                                  failure goes to err */
    zc_ref pin;                /* the stored run, pinned by zc_put */
    int err;
    uint64_t t0;               /* uv_hrtime when started */
    uv_work_t work;
    int src;                   /* ZF_SRC_PEER or ZF_SRC_CDN */
    zn_peer_op *pop;           /* peer fetch in flight */
    xet_hash *hashes;          /* from a peer (verified): chunk hashes */
    uint64_t got;              /* decoded bytes from a peer */
    /* the CDN request (alone, or racing a slow peer fetch) */
    zn_req *creq;              /* in flight */
    uint8_t *cbuf;             /* its body */
    uint64_t ct0;              /* uv_hrtime when it started */
    int cdn_err;               /* it failed while the peer fetch goes on */
    bool raced, cdn_won;
    bool held;                 /* its CDN transfer is paused (net_prio) */
    uint64_t held_t0, held_ms; /* since when, and for how long before (ms) */
    uint64_t extra;            /* budget counted for the racing body */
    uint64_t pt0;              /* now_ms when the peer fetch started */
    bool parked;               /* waiting for a peer's CDN fetch of this range */
    bool pend_seen;            /* a peer's PENDING (else: only the start jitter) */
    bool wait_xorb;            /* parked until no peer fetches any of the xorb (its manifest) */
    bool retry_peer;           /* parked for a while, then the peers again */
    int reparks;
    uint64_t park_t0, park_lim; /* since, and for how long at most (ms) */
    bool pend_on;              /* our CDN fetch announced as PENDING */
    int nops;                  /* callbacks outstanding (peer fetch, CDN request) */
    bool finished;             /* xf_finish done; freed once nops == 0 */
    bool nocache;              /* only pulls wait: stored around the page cache */
};

struct rd_ctx {
    zf_fs *fs;
    uv_loop_t *loop;
    zc_store *store;
    zn_http *http;
    zn_hub *hub;
    char *endpoint;
    char *auth;                /* "Authorization: Bearer ..." or NULL */
    bool stopping;
    bool splice;               /* store reads answered with fd buffers (ZESTFS_NO_SPLICE=1: copied) */
    rd_file *tab[NBUCKETS];
    rd_xf *xfs;
    rd_xf *xq, **xqtail;
    uint64_t xf_bytes;
    rd_file *lru_head, *lru_tail;
    uint64_t blob_mem;
    zn_retry cdn_retry;
    zf_metrics m;
    zf_fill *fills;            /* background fills (pull, prefetch at open) */
    zf_fill *fills_done;       /* finished, callback pending */
    int bg_reads;              /* background windows in flight */
    uv_timer_t fill_timer;
    uv_timer_cb fill_timer_cb;
    uv_timer_t p2p_timer;      /* parked fetches, races (P2P_TICK_MS while any) */
    bool p2p_timer_on;
    bool fg_on;                /* a CDN transfer not only for fills is in flight (net_prio) */
    uint64_t fg_last;          /* ... when that was last seen (ms) */
    uv_timer_t prio_timer;     /* fills held back by fill_gated: the queue again then */
    uv_work_t warm;            /* fills the buffer pool at start */
    double cdn_bpms;           /* CDN fetch throughput, bytes per ms (EWMA; 0: none yet) */
    uint64_t race_after_ms;    /* RACE_AFTER_MS; 0 after the CDN won a race, until a peer
                                  fetch finishes unraced */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A millisecond knob from the environment (tests shorten waits with these). */
static uint64_t env_ms(const char *name, uint64_t dflt)
{
    const char *e = getenv(name);
    long v = e ? atol(e) : 0;
    return v > 0 ? (uint64_t)v : dflt;
}

static uint64_t umin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- metrics ------------------------------------------------------------------ */

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

static void note_read(rd_read *r, int err);

/* ---- files ------------------------------------------------------------------ */

static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static rd_file *file_get(rd_ctx *c, const zv_ent *e)
{
    const zf_file *zf = e->file;
    char key[72];
    if (zf->has_xet) {
        key[0] = 'x';
        xet_hash_to_string(&zf->xet, key + 1);
    } else
        snprintf(key, sizeof key, "b%s", zf->etag);
    uint32_t b = hash_key(key) % NBUCKETS;
    for (rd_file *f = c->tab[b]; f; f = f->hnext)
        if (strcmp(f->key, key) == 0)
            return f;
    rd_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->c = c;
    memcpy(f->key, key, sizeof key);
    f->xet = zf->has_xet;
    if (f->xet)
        memcpy(f->id, key + 1, 65);
    f->size = zf->size;
    f->type = (zn_repo_type)e->repo->type;
    f->repo = e->repo->id;
    memcpy(f->rev, e->commit->sha, 41);
    f->path = zf->path;
    memcpy(f->oid, zf->oid, 41);
    memcpy(f->etag, zf->etag, 65);
    f->has_lfs = zf->has_lfs;
    f->big = !f->xet && f->size > BLOB_MAX;
    f->hnext = c->tab[b];
    c->tab[b] = f;
    return f;
}

/* ---- pins ------------------------------------------------------------------------ */

static rd_pin *pin_new(const zc_ref *ref)
{
    rd_pin *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    p->ref = *ref;
    p->refs = 1;
    return p;
}

static void pin_put(rd_pin *p)
{
    if (--p->refs == 0) {
        zc_unpin(&p->ref);
        free(p);
    }
}

/* Add a reference to p to the set (0, or -ENOMEM and nothing added). */
static int pins_add(rd_pins *s, rd_pin *p)
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

static void pins_clear(rd_pins *s)
{
    for (size_t i = 0; i < s->n; i++)
        pin_put(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* ---- replies ----------------------------------------------------------------- */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void read_free(rd_read *r)
{
    if (r->deadline)
        uv_close((uv_handle_t *)r->deadline, free_handle);
    pins_clear(&r->pins);
    free(r->snap);
    free(r);
}

static void fill_piece_done(rd_read *r, int err);

static void read_fail(rd_read *r, int err)
{
    if (r->fill) {
        fill_piece_done(r, err ? err : -EIO);
        return;
    }
    if (r->cb) {
        if (r->http)
            note_read(r, err ? err : -EIO);
        r->cb(r->ud, err ? err : -EIO, NULL, 0);
        read_free(r);
        return;
    }
    /* the cause was logged where it happened */
    note_read(r, err ? err : -EIO);
    fuse_reply_err(r->req, EIO);
    read_free(r);
}

static void note_read(rd_read *r, int err)
{
    zf_metrics *m = &r->c->m;
    if (err) {
        m->read_errors++;
        return;
    }
    double ms = (double)(uv_hrtime() - r->t0) / 1e6;
    m->reads++;
    if (r->http)
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

/* ---- extent map ------------------------------------------------------------------- */

/* Index of the last extent with off <= pos, or -1. */
static long ext_floor(const rd_file *f, uint64_t pos)
{
    long lo = 0, hi = (long)f->n;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (f->ext[mid].off <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* First byte of [off, end) that no extent covers, or end. */
static uint64_t ext_uncovered(const rd_file *f, uint64_t off, uint64_t end)
{
    uint64_t pos = off;
    while (pos < end) {
        long i = ext_floor(f, pos);
        if (i < 0 || f->ext[i].off + f->ext[i].len <= pos)
            return pos;
        pos = f->ext[i].off + f->ext[i].len;
    }
    return end;
}

static int ext_add(rd_file *f, const rd_ext *e)
{
    uint64_t eend = e->off + e->len;
    long i = ext_floor(f, e->off);
    if (i >= 0 && f->ext[i].off + f->ext[i].len >= eend)
        return 0; /* contained in an existing one */
    size_t at = (size_t)(i + 1);
    /* f->ext[i].off < e->off here, or i < 0: drop those contained in e */
    size_t j = at;
    while (j < f->n && f->ext[j].off + f->ext[j].len <= eend)
        j++;
    if (j > at) {
        memmove(&f->ext[at], &f->ext[j], (f->n - j) * sizeof *f->ext);
        f->n -= j - at;
    }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        rd_ext *ne = realloc(f->ext, nc * sizeof *ne);
        if (!ne)
            return -ENOMEM;
        f->ext = ne;
        f->cap = nc;
    }
    memmove(&f->ext[at + 1], &f->ext[at], (f->n - at) * sizeof *f->ext);
    f->ext[at] = *e;
    f->n++;
    return 1;
}

/* Serialized map: "ZFMAP001", u64 n, n x {u64 off, u64 len, xorb[32], u32 cs, u32 ce}. */
#define MAP_MAGIC "ZFMAP001"
#define MAP_REC 56

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct map_job {
    uv_work_t work;
    rd_file *f;
    zc_store *store;
    char key[80];
    uint8_t *data;
    size_t len;
    rd_ext *ext;   /* loaded */
    size_t n;
    int rc;
} map_job;

static void map_key(const rd_file *f, char *out, size_t n)
{
    snprintf(out, n, "fmap/%s", f->id);
}

static void map_load_work(uv_work_t *w)
{
    map_job *j = w->data;
    void *data;
    size_t len;
    j->rc = zc_meta_get(j->store, j->key, &data, &len);
    if (j->rc)
        return;
    const uint8_t *p = data;
    j->rc = -EBADMSG;
    if (len < 16 || memcmp(p, MAP_MAGIC, 8) != 0)
        goto out;
    uint64_t n = get_u64(p + 8);
    if (n > (len - 16) / MAP_REC || 16 + n * MAP_REC != len)
        goto out;
    j->ext = malloc((n ? n : 1) * sizeof *j->ext);
    if (!j->ext) {
        j->rc = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *q = p + 16 + i * MAP_REC;
        rd_ext *e = &j->ext[i];
        e->off = get_u64(q);
        e->len = get_u64(q + 8);
        memcpy(e->xorb.b, q + 16, 32);
        e->cs = get_u32(q + 48);
        e->ce = get_u32(q + 52);
        if (e->len == 0 || e->cs >= e->ce || e->off + e->len < e->off ||
            (i && (e->off <= e[-1].off || e->off + e->len <= e[-1].off + e[-1].len))) {
            free(j->ext);
            j->ext = NULL;
            goto out;
        }
    }
    j->n = (size_t)n;
    j->rc = 0;
out:
    free(data);
}

static void xet_try(rd_read *r);
static int read_from_runs(rd_read *r);

static void map_ready(rd_file *f)
{
    f->map_state = MAP_READY;
    rd_read *r = f->map_wait;
    f->map_wait = NULL;
    while (r) {
        rd_read *nx = r->next;
        xet_try(r);
        r = nx;
    }
}

static void map_load_after(uv_work_t *w, int status)
{
    map_job *j = w->data;
    rd_file *f = j->f;
    if (j->rc == 0) {
        for (size_t i = 0; i < j->n; i++)
            if (j->ext[i].off + j->ext[i].len <= f->size && ext_add(f, &j->ext[i]) > 0 &&
                f->c->fs->p2p)
                zf_p2p_repo_xorb(f->c->fs->p2p, zf_p2p_type_name((enum zf_repo_type)f->type),
                                 f->repo, &j->ext[i].xorb);
    } else if (j->rc != -ENOENT)
        zf_log(ZF_LOG_WARN, "zestfs: map of %s: %s (ignored)\n", f->id, zf_strerror(-j->rc));
    free(j->ext);
    free(j);
    map_ready(f);
}

static void map_save_work(uv_work_t *w)
{
    map_job *j = w->data;
    j->rc = zc_meta_put(j->store, j->key, j->data, j->len, 0);
}

static void map_save(rd_file *f);

static void map_save_after(uv_work_t *w, int status)
{
    map_job *j = w->data;
    rd_file *f = j->f;
    if (j->rc)
        zf_log(ZF_LOG_WARN, "zestfs: saving the map of %s: %s\n", f->id, zf_strerror(-j->rc));
    free(j->data);
    free(j);
    f->map_saving = false;
    if (f->map_dirty)
        map_save(f);
}

static void map_save(rd_file *f)
{
    if (f->map_saving) {
        f->map_dirty = true;
        return;
    }
    f->map_dirty = false;
    map_job *j = calloc(1, sizeof *j);
    uint8_t *d = j ? malloc(16 + f->n * MAP_REC) : NULL;
    if (!d) {
        free(j);
        return;
    }
    memcpy(d, MAP_MAGIC, 8);
    put_u64(d + 8, f->n);
    for (size_t i = 0; i < f->n; i++) {
        uint8_t *q = d + 16 + i * MAP_REC;
        put_u64(q, f->ext[i].off);
        put_u64(q + 8, f->ext[i].len);
        memcpy(q + 16, f->ext[i].xorb.b, 32);
        put_u32(q + 48, f->ext[i].cs);
        put_u32(q + 52, f->ext[i].ce);
    }
    j->f = f;
    j->store = f->c->store;
    j->data = d;
    j->len = 16 + f->n * MAP_REC;
    map_key(f, j->key, sizeof j->key);
    j->work.data = j;
    f->map_saving = true;
    if (uv_queue_work(f->c->loop, &j->work, map_save_work, map_save_after) != 0) {
        f->map_saving = false;
        free(d);
        free(j);
    }
}

/* ---- store reads ---------------------------------------------------------------- */

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

static int store_read(zc_store *s, const rd_ext *ex, size_t n, uint64_t off, uint64_t len,
                      uint8_t *out, uint64_t *miss)
{
    return store_read_sp(s, ex, n, off, len, out, NULL, miss);
}

/* store_read, or with sp: the pieces are collected (pinned) rather than
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
    if (r->fill || r->check) {
        r->rc = store_read(r->c->store, r->snap, r->nsnap, r->off, r->len, NULL, &r->miss);
        return;
    }
    if (!r->cb && r->c->splice) {
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
    r->rc = store_read(r->c->store, r->snap, r->nsnap, r->off, r->len, buf, &r->miss);
    if (r->rc == 0 && r->cb) {
        r->out = buf; /* handed over on the loop */
        return;
    }
    if (r->rc == 0) {
        fuse_reply_buf(r->req, (const char *)buf, r->len);
        disk_ahead(r);
    }
    free(buf);
}

static void fetch_cells(rd_read *r, uint64_t from);

static void store_after(uv_work_t *w, int status)
{
    rd_read *r = w->data;
    free(r->snap);
    r->snap = NULL;
    if (r->rc == 0 && r->fill) {
        fill_piece_done(r, 0);
        return;
    }
    if (r->rc == 0) {
        if (!r->cb || r->http)
            note_read(r, 0);
        if (r->cb)
            r->cb(r->ud, 0, r->out, r->len);
        free(r->out);
        read_free(r);
        return;
    }
    if (r->rc == -ENOENT) {
        fetch_cells(r, r->miss);
        return;
    }
    if (r->rc == -EBADMSG)
        zf_log(ZF_LOG_WARN, "zestfs: %s: stored chunks disagree with the file map at %" PRIu64 "\n",
                r->f->id, r->off);
    /* inconsistent: fetch again (bounded by rounds) */
    fetch_cells(r, r->off);
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
static void store_start(rd_read *r)
{
    rd_file *f = r->f;
    uint64_t end = r->off + r->len;
    /* a FUSE read continuing a sequential stream also hints the disk reads
     * of the bytes DISK_RA ahead (store_work) */
    r->ra_len = 0;
    if (!r->fill && !r->cb && seq_reader(f, r->off, end) && end + DISK_RA <= f->size) {
        r->ra_len = r->len;
        end += DISK_RA;
    }
    long i0 = ext_floor(f, r->off);
    size_t i1 = (size_t)i0;
    while (i1 + 1 < f->n && f->ext[i1 + 1].off < end)
        i1++;
    r->nsnap = i1 - (size_t)i0 + 1;
    r->snap = malloc(r->nsnap * sizeof *r->snap);
    if (!r->snap) {
        read_fail(r, -ENOMEM);
        return;
    }
    memcpy(r->snap, &f->ext[i0], r->nsnap * sizeof *r->snap);
    r->work.data = r;
    if (uv_queue_work(r->c->loop, &r->work, store_work, store_after) != 0)
        read_fail(r, -EIO);
}

/* First byte of [off, end) (all mapped) whose chunks are not in the store,
 * or end.  Loop thread: index lookups only. */
static uint64_t first_unstored(rd_file *f, uint64_t off, uint64_t end)
{
    for (long i = ext_floor(f, off); i >= 0 && (size_t)i < f->n && f->ext[i].off < end; i++)
        if (f->ext[i].off + f->ext[i].len > off &&
            zc_missing(f->c->store, &f->ext[i].xorb, f->ext[i].cs, f->ext[i].ce, NULL, 0) != 0)
            return f->ext[i].off > off ? f->ext[i].off : off;
    return end;
}

static void xet_try(rd_read *r)
{
    rd_file *f = r->f;
    uint64_t end = r->off + r->len;
    if (r->label == 2) { /* the map is loaded: list the xorbs it names */
        xet_hash *v = f->n ? malloc(f->n * sizeof *v) : NULL;
        size_t n = 0;
        for (size_t i = 0; v && i < f->n; i++)
            if (n == 0 || !xet_hash_eq(&f->ext[i].xorb, &v[n - 1]))
                v[n++] = f->ext[i].xorb;
        /* what is stored may change under the caller (evict): forget
         * which windows were found whole */
        free(f->done);
        f->done = NULL;
        r->xorbs_cb(r->ud, f->n && !v ? -ENOMEM : 0, v, n);
        free(v);
        read_free(r);
        return;
    }
    if (r->label) { /* the map is loaded: label the xorbs it names */
        uint64_t n = 0;
        for (size_t i = 0; i < f->n; i++)
            if (i == 0 || !xet_hash_eq(&f->ext[i].xorb, &f->ext[i - 1].xorb)) {
                zc_label_pin(r->c->store, &f->ext[i].xorb, r->label > 0);
                n++;
            }
        r->label_cb(r->ud, ext_uncovered(f, 0, f->size) == f->size ? 0 : -ENODATA, n);
        read_free(r);
        return;
    }
    uint64_t u = ext_uncovered(f, r->off, end);
    if (u == end && r->fill && first_unstored(f, r->off, end) == end)
        fill_piece_done(r, 0); /* whole extents stored: no need to look closer */
    else if (u == end && read_from_runs(r)) /* in a run being stored: answered from memory */
        return;
    else if (u == end) /* a fill's store read only checks (no copy) */
        store_start(r);
    else
        fetch_cells(r, u);
}

/* ---- xorb range fetches ---------------------------------------------------------------- */

static void cell_fetches_done(rd_cell *cl);
static void xf_pump(rd_ctx *c);
static void net_prio(rd_ctx *c);
static bool xf_fill_only(const rd_xf *xf);
static bool xf_fills_only(const rd_xf *xf, bool pull);

static const rd_file *xf_file(const rd_xf *xf)
{
    return xf->nw ? xf->w[0]->f : NULL;
}

static void xf_free(rd_xf *xf)
{
    xf->c->xf_bytes -= xf->extra;
    free(xf->w);
    free(xf->chk);
    free(xf->lens);
    free(xf->hashes);
    free(xf->url);
    zf_buf_free(xf->buf);
    zf_buf_free(xf->cbuf);
    zf_buf_free(xf->data);
    free(xf->pre);
    free(xf->recs);
    free(xf);
}

/* A callback came back: free a finished fetch once none is outstanding. */
static void xf_release(rd_xf *xf)
{
    if (!xf->finished || xf->nops)
        return;
    rd_ctx *c = xf->c;
    bool pump = xf->extra != 0;
    xf_free(xf);
    if (pump)
        xf_pump(c);
}

/* The racing CDN body is no longer needed or is the fetch's own now. */
static void xf_drop_extra(rd_xf *xf)
{
    if (xf->extra) {
        xf->c->xf_bytes -= xf->extra;
        xf->extra = 0;
    }
}

static void xf_finish(rd_xf *xf, int err)
{
    rd_ctx *c = xf->c;
    if (xf->finished)
        return;
    xf->finished = true;
    for (rd_xf **pp = &c->xfs; *pp; pp = &(*pp)->next)
        if (*pp == xf) {
            *pp = xf->next;
            break;
        }
    const rd_file *f = xf_file(xf);
    const char *ftype = f ? zf_p2p_type_name((enum zf_repo_type)f->type) : NULL;
    if (xf->started) {
        c->xf_bytes -= xf->bytes;
        c->m.fetches_inflight--;
        if (!err) {
            bool peer = xf->src == ZF_SRC_PEER;
            double ms = (double)(uv_hrtime() - xf->t0) / 1e6;
            c->m.bytes_by_src[xf->src] += peer ? xf->got : xf->bytes;
            zf_hist_add(&c->m.fetch_ms[xf->src], ms);
            if (zf_log_level >= ZF_LOG_DEBUG) {
                char xs[65];
                xet_hash_to_string(&xf->xorb, xs);
                zf_debug("zestfs: fetched xorb %.16s chunks [%u, %u) from the %s: %" PRIu64
                         " bytes in %.1f ms%s\n",
                         xs, xf->cs, xf->ce, peer ? "peers" : "CDN", peer ? xf->got : xf->bytes, ms,
                         xf->raced ? (xf->cdn_won ? " (raced: the CDN won)" : " (raced: peers won)")
                                   : "");
            }
            if (c->fs->p2p && !c->stopping) /* tell peers, in the swarm of the repo read */
                zf_p2p_stored(c->fs->p2p, ftype, f ? f->repo : NULL, &xf->xorb, xf->cs, xf->ce);
        }
        if (err == -EBADMSG || err == -EILSEQ || err == -EPROTO)
            c->m.verify_failures++;
    }
    if (xf->pend_on && c->fs->p2p) /* after HAVE: peers waiting on us ask us now */
        zf_p2p_cdn_fetching(c->fs->p2p, ftype, f ? f->repo : NULL, &xf->xorb, xf->cs, xf->ce,
                            false);
    xf->pend_on = false;
    if (err && err != -ECANCELED) {
        char xs[65];
        xet_hash_to_string(&xf->xorb, xs);
        zf_log(ZF_LOG_WARN, "zestfs: xorb %s chunks [%u, %u): %s\n", xs, xf->cs, xf->ce,
                zf_strerror(-err));
    }
    rd_pin *pin = !err && xf->pin.seg ? pin_new(&xf->pin) : NULL;
    if (!pin)
        zc_unpin(&xf->pin);
    for (size_t i = 0; i < xf->nw; i++) {
        rd_cell *cl = xf->w[i];
        if (err && !cl->err)
            cl->err = err;
        if (pin)
            pins_add(&cl->pins, pin);
        if (--cl->pending == 0)
            cell_fetches_done(cl);
    }
    if (pin)
        pin_put(pin);
    /* a loser still running is told to stop; its callback frees us */
    if (xf->creq)
        zn_req_cancel(xf->creq);
    if (xf->pop)
        zn_peer_op_cancel(xf->pop);
    if (!xf->nops)
        xf_free(xf);
    xf_pump(c);
    net_prio(c);
}

static int check_terms(const rd_xf *xf, const rd_check *chk, size_t n, const uint32_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        if (chk[i].cs < xf->cs || chk[i].ce > xf->ce || chk[i].cs >= chk[i].ce)
            return -EBADMSG;
        uint64_t sum = 0;
        for (uint32_t k = chk[i].cs; k < chk[i].ce; k++)
            sum += lens[k - xf->cs];
        if (sum != chk[i].ulen)
            return -EILSEQ;
    }
    return 0;
}

/* A CDN body is decoded by up to DEC_PARTS pool jobs at once, each a run of
 * its records (split by compressed bytes): the first read of a mount waits
 * for one body's decode, and the pool has a thread per core. */
#define DEC_PARTS 2
#define DEC_SPLIT (2u << 20) /* bodies under this are one job */

typedef struct dec_part {
    uv_work_t work;
    rd_xf *xf;
    long r0, r1;    /* records [r0, r1) */
    uint64_t out0;  /* where record r0 decodes to */
    int rc;
} dec_part;

/* Pool: decode records [r0, r1) of the body into the run. */
static void dec_work(uv_work_t *w)
{
    dec_part *d = w->data;
    rd_xf *xf = d->xf;
    uint64_t pos = d->out0;
    for (long i = d->r0; i < d->r1 && !d->rc; i++) {
        const xet_record *r = &xf->recs[i];
        d->rc = xet_chunk_decode(&r->hdr, xf->buf + r->offset + XET_CHUNK_HEADER_LEN,
                                 xf->data + pos);
        pos += r->hdr.ulen;
    }
}

static void xf_decoded(rd_xf *xf, int err);

static void dec_after(uv_work_t *w, int status)
{
    dec_part *d = w->data;
    rd_xf *xf = d->xf;
    if (!xf->err)
        xf->err = status ? status : d->rc;
    free(d);
    if (--xf->dparts == 0)
        xf_decoded(xf, xf->err);
}

/* Loop: the body is in.  Walk its record headers (no payload is touched
 * here), size the run, and hand the decoding to the pool in parts. */
static void xf_decode_start(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    long n = xet_xorb_index(xf->buf, xf->bytes, &xf->recs);
    int rc = n < 0 ? (int)n : 0;
    uint32_t want = xf->ce - xf->cs;
    if (!rc && (uint64_t)n != want)
        rc = -EBADMSG;
    uint64_t total = 0;
    for (long i = 0; !rc && i < n; i++) {
        if (xf->recs[i].hdr.ulen == 0)
            rc = -EBADMSG;
        total += xf->recs[i].hdr.ulen;
    }
    if (!rc) {
        xf->lens = malloc(want * sizeof *xf->lens);
        xf->data = zf_buf_get(total);
        if (!xf->lens || !xf->data)
            rc = -ENOMEM;
    }
    if (rc) {
        xf_decoded(xf, rc);
        return;
    }
    for (long i = 0; i < n; i++)
        xf->lens[i] = xf->recs[i].hdr.ulen;
    xf->dlen = total;
    int parts = xf->bytes >= DEC_SPLIT ? DEC_PARTS : 1;
    xf->err = 0;
    xf->dparts = 1; /* held while the parts are queued */
    long r0 = 0;
    uint64_t out = 0;
    for (int p = 0; p < parts && r0 < n; p++) {
        long r1 = n;
        if (p + 1 < parts) { /* the first record past this part's share of the body */
            uint64_t cut = xf->bytes * (uint64_t)(p + 1) / (uint64_t)parts;
            r1 = r0 + 1;
            while (r1 < n && xf->recs[r1].offset < cut)
                r1++;
        }
        dec_part *d = calloc(1, sizeof *d);
        if (!d) {
            xf->err = -ENOMEM;
            break;
        }
        d->xf = xf;
        d->r0 = r0;
        d->r1 = r1;
        d->out0 = out;
        d->work.data = d;
        for (long i = r0; i < r1; i++)
            out += xf->recs[i].hdr.ulen;
        xf->dparts++;
        if (uv_queue_work(c->loop, &d->work, dec_work, dec_after) != 0) {
            d->rc = -EIO;
            dec_after(&d->work, 0);
        }
        r0 = r1;
    }
    if (--xf->dparts == 0)
        xf_decoded(xf, xf->err);
}

/* Pool: send the replies of the reads answered from the run in memory. */
static void early_send(rd_xf *xf)
{
    while (xf->early) {
        rd_early *e = xf->early;
        xf->early = e->next;
        fuse_reply_iov(e->req, e->iov, e->n);
        free(e);
    }
}

/* Pool: the decoded run from the CDN: answer the reads taken from it, then
 * hash and store it. */
static void xf_put_work(uv_work_t *w)
{
    rd_xf *xf = w->data;
    early_send(xf);
    int rc = zc_put(xf->c->store, &xf->xorb, xf->cs, xf->ce, xf->lens, NULL, xf->data, xf->dlen,
                    xf->nocache ? ZC_PUT_NOCACHE : 0, &xf->pin);
    if (!rc && xf->c->fs->p2p) /* a whole xorb from [0, n): its manifest, and proof */
        zf_p2p_after_put(xf->c->fs->p2p, &xf->xorb, xf->cs, xf->ce);
    xf->err = rc;
}

/* Pool: a verified run from peers (decoded, hashes known, terms checked on
 * the loop): answer the reads taken from it, store it like CDN data. */
static void xf_peer_work(uv_work_t *w)
{
    rd_xf *xf = w->data;
    early_send(xf);
    int rc = zc_put(xf->c->store, &xf->xorb, xf->cs, xf->ce, xf->lens, xf->hashes, xf->data,
                    xf->dlen, xf->nocache ? ZC_PUT_NOCACHE : 0, &xf->pin);
    if (!rc && xf->c->fs->p2p)
        zf_p2p_after_put(xf->c->fs->p2p, &xf->xorb, xf->cs, xf->ce);
    xf->err = rc;
}

/* Loop: the run is stored (or not): free it, finish the fetch. */
static void xf_put_after(uv_work_t *w, int status)
{
    rd_xf *xf = w->data;
    zf_buf_free(xf->data);
    free(xf->pre);
    xf->data = NULL;
    xf->pre = NULL;
    xf_finish(xf, status ? status : xf->err);
}

/* The store job of a run (inline if the pool refuses it: its replies must go out). */
static void queue_put(rd_xf *xf, uv_work_cb work)
{
    xf->work.data = xf;
    if (uv_queue_work(xf->c->loop, &xf->work, work, xf_put_after) != 0) {
        work(&xf->work);
        xf_put_after(&xf->work, 0);
    }
}

/* The iovec of [off, end) of f in the run of xf in memory: 1 if it is
 * all there (n pieces), else 0.  Loop thread. */
static int run_iov(const rd_xf *xf, const rd_file *f, uint64_t off, uint64_t end,
                   struct iovec *iov, int max, int *n)
{
    const uint64_t *pre = xf->pre;
    int ni = 0;
    uint64_t pos = off;
    if (!pre || ext_uncovered(f, off, end) != end)
        return 0;
    while (pos < end) {
        long x = ext_floor(f, pos);
        const rd_ext *e = x >= 0 ? &f->ext[x] : NULL;
        if (!e || pos >= e->off + e->len || !xet_hash_eq(&e->xorb, &xf->xorb) ||
            e->cs < xf->cs || e->ce > xf->ce ||
            pre[e->ce - xf->cs] - pre[e->cs - xf->cs] != e->len)
            return 0;
        uint64_t b = umin(end, e->off + e->len);
        uint8_t *src = xf->data + pre[e->cs - xf->cs] + (pos - e->off);
        if (ni && (uint8_t *)iov[ni - 1].iov_base + iov[ni - 1].iov_len == src)
            iov[ni - 1].iov_len += b - pos;
        else if (ni < max)
            iov[ni++] = (struct iovec){src, b - pos};
        else
            return 0;
        pos = b;
    }
    *n = ni;
    return 1;
}

/* A FUSE read answered from a run in memory: stats, and no deadline. */
static void read_answered_early(rd_read *r)
{
    if (r->deadline)
        uv_timer_stop(r->deadline);
    note_read(r, 0);
    r->c->m.reads_early++;
}

/* A FUSE read about to wait for fetches whose bytes are all in a run
 * decoded and being stored: answered from it now, on the loop (the store
 * job only reads the run too; it is freed on the loop after).  1 if so. */
static int read_from_runs(rd_read *r)
{
    if (!r->req) /* FUSE reads only */
        return 0;
    for (rd_xf *xf = r->c->xfs; xf; xf = xf->next) {
        struct iovec iov[8];
        int n;
        if (run_iov(xf, r->f, r->off, r->off + r->len, iov, 8, &n)) {
            read_answered_early(r);
            fuse_reply_iov(r->req, iov, n);
            read_free(r);
            return 1;
        }
    }
    return 0;
}

/* The FUSE reads waiting on the fetch's windows whose bytes all lie in the
 * run [data) (decoded and checked against the terms) are answered from it
 * now: their replies go out first in the job that stores the run, so a
 * first read does not wait for the store's writes.  The read is left in
 * its windows, marked answered (expired), and freed when they are done.
 * Loop thread. */
static void early_collect(rd_xf *xf)
{
    uint32_t n = xf->ce - xf->cs;
    if (!(xf->pre = malloc((n + 1) * sizeof *xf->pre)))
        return;
    xf->pre[0] = 0;
    for (uint32_t k = 0; k < n; k++)
        xf->pre[k + 1] = xf->pre[k] + xf->lens[k];
    for (size_t i = 0; i < xf->nw; i++) {
        rd_cell *cl = xf->w[i];
        for (size_t j = 0; j < cl->nw; j++) {
            rd_read *r = cl->w[j];
            struct iovec iov[8];
            int ni;
            if (!r->req || r->expired || r->err || /* FUSE reads not yet answered */
                !run_iov(xf, cl->f, r->off, r->off + r->len, iov, 8, &ni))
                continue;
            rd_early *ea = malloc(sizeof *ea + (size_t)ni * sizeof ea->iov[0]);
            if (!ea)
                return;
            ea->req = r->req;
            ea->n = ni;
            memcpy(ea->iov, iov, (size_t)ni * sizeof iov[0]);
            ea->next = xf->early;
            xf->early = ea;
            r->expired = true; /* answered: freed once no window holds it */
            read_answered_early(r);
        }
    }
}

/* Loop: the CDN run is decoded (or failed): checked against the terms,
 * answer what it can, then store it. */
static void xf_decoded(rd_xf *xf, int err)
{
    free(xf->recs);
    xf->recs = NULL;
    zf_buf_free(xf->buf);
    xf->buf = NULL;
    if (!err)
        err = check_terms(xf, xf->chk, xf->nchk, xf->lens);
    if (err) {
        zf_buf_free(xf->data);
        xf->data = NULL;
        xf_finish(xf, err);
        return;
    }
    early_collect(xf);
    queue_put(xf, xf_put_work);
}

static void p2p_timer_arm(rd_ctx *c);
static bool cell_has_fg(const rd_cell *cl);
static void xf_debug(const rd_xf *xf, const char *what);
static bool xf_has_fg(const rd_xf *xf);

/* The CDN request of a fetch: alone, or racing its peer fetch (xf->pop set;
 * a failure to start then just leaves the peers to it). */
static void xf_body(void *ud, int err, const zn_resp *resp);

static void xf_cdn(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    int rc = c->http ? 0 : -ENETDOWN;
    if (!rc && !(xf->cbuf = zf_buf_get(xf->bytes)))
        rc = -ENOMEM;
    if (!rc) {
        xf->ct0 = uv_hrtime();
        xf->nops++;
        rc = zn_cdn_fetch(c->http, xf->url, xf->bs, xf->be, xf->cbuf, &c->cdn_retry, xf_body, xf,
                          &xf->creq);
        if (rc) {
            xf->nops--;
            xf->creq = NULL;
            zf_buf_free(xf->cbuf);
            xf->cbuf = NULL;
        }
    }
    if (rc) {
        xf_drop_extra(xf);
        if (!xf->pop)
            xf_finish(xf, rc);
        return;
    }
    if (!xf->pop)
        xf->src = ZF_SRC_CDN;
    if (zf_log_level >= ZF_LOG_DEBUG) /* the walks only for the log */
        xf_debug(xf, xf_fill_only(xf) ? "from the CDN (a fill's)"
                     : xf_has_fg(xf) ? "from the CDN (a read waits)"
                                     : "from the CDN (ahead of a reader)");
    net_prio(c);
    if (c->fs->p2p && !xf->pend_on) { /* peers about to fetch this range wait for ours */
        const rd_file *f = xf_file(xf);
        xf->pend_on = true;
        zf_p2p_cdn_fetching(c->fs->p2p, f ? zf_p2p_type_name((enum zf_repo_type)f->type) : NULL,
                            f ? f->repo : NULL, &xf->xorb, xf->cs, xf->ce, true);
    }
}

static void xf_body(void *ud, int err, const zn_resp *resp)
{
    (void)resp;
    rd_xf *xf = ud;
    rd_ctx *c = xf->c;
    uint8_t *buf = xf->cbuf;
    bool was_held = xf->held || xf->held_ms;
    xf->cbuf = NULL;
    xf->creq = NULL;
    xf->held = false;
    xf->nops--;
    xf_drop_extra(xf);
    net_prio(c); /* a transfer ended: the held ones may go on */
    if (xf->finished || xf->decoding) { /* we lost the race (or no one waits) */
        zf_buf_free(buf);
        xf_release(xf);
        xf_pump(c);
        return;
    }
    if (err || c->stopping) {
        zf_buf_free(buf);
        if (xf->pop) { /* racing: the peer fetch goes on and decides */
            xf->cdn_err = err ? err : -ECANCELED;
            return;
        }
        xf_finish(xf, err ? err : -ECANCELED);
        return;
    }
    double ms = (double)(uv_hrtime() - xf->ct0) / 1e6;
    double bpms = (double)xf->bytes / (ms > 1 ? ms : 1);
    if (!was_held) /* a held transfer's time says nothing of the CDN */
        c->cdn_bpms = c->cdn_bpms > 0 ? 0.7 * c->cdn_bpms + 0.3 * bpms : bpms;
    if (xf->pop) { /* the CDN won the race: the peer fetch is cancelled (callback later) */
        xf->cdn_won = true;
        c->m.races_cdn_won++;
        c->race_after_ms = 0; /* the peers are slow now: race the next ones at once */
        zn_peer_op_cancel(xf->pop);
    }
    xf->src = ZF_SRC_CDN;
    zf_buf_free(xf->buf);
    xf->buf = buf;
    xf->decoding = true;
    xf->nocache = xf_fills_only(xf, true);
    xf_decode_start(xf);
}

static void xf_peer_done(void *ud, int err, const uint32_t *lens, const xet_hash *hashes,
                         const uint8_t *data, size_t len)
{
    rd_xf *xf = ud;
    rd_ctx *c = xf->c;
    xf->pop = NULL;
    xf->nops--;
    if (xf->finished || xf->cdn_won) {
        xf_release(xf);
        return;
    }
    if (c->fs->p2p) {
        zf_p2p_stats st;
        zf_p2p_get_stats(c->fs->p2p, &st);
        if (st.node.bans > c->m.peer_bans)
            c->m.peer_bans = st.node.bans;
    }
    uint32_t n = xf->ce - xf->cs;
    if (!err) {
        xf->lens = malloc(n * sizeof *xf->lens);
        xf->hashes = malloc(n * sizeof *xf->hashes);
        xf->buf = zf_buf_get(len);
        if (!xf->lens || !xf->hashes || !xf->buf)
            err = -ENOMEM;
    }
    if (err) {
        free(xf->lens);
        free(xf->hashes);
        zf_buf_free(xf->buf);
        xf->lens = NULL;
        xf->hashes = NULL;
        xf->buf = NULL;
        if (zf_log_level >= ZF_LOG_DEBUG && err != -ECANCELED) {
            char why[96];
            snprintf(why, sizeof why, "peer fetch failed: %s", zf_strerror(-err));
            xf_debug(xf, why);
        }
        if (xf->creq) /* the racing CDN request decides */
            return;
        bool pend = zf_p2p_pending(c->fs->p2p, &xf->xorb, 0, 0) > 0;
        if (!c->stopping && err == -ENOENT &&
            ((pend && xf->reparks < 3) || (!xf_has_fg(xf) && xf->reparks < REPARKS_BG))) {
            /* No manifest yet: nobody holds the whole xorb and the peers'
             * parts do not add up to it.  Peers fetching the rest of it now:
             * wait for them.  Else, nobody waiting on this (pull, prefetch):
             * the nodes pulling with us will fetch the rest soon, so ask the
             * peers again in a while rather than copy the CDN's bytes. */
            xf->reparks++;
            xf->parked = xf->pend_seen = true;
            xf->wait_xorb = pend;
            xf->retry_peer = !pend;
            xf->park_t0 = now_ms();
            c->m.fetches_parked++;
            xf_debug(xf, pend ? "no manifest yet, peers fetch the rest of the xorb: waiting"
                              : "no manifest yet: asking the peers again in a while");
            p2p_timer_arm(c);
            return;
        }
        if (c->stopping || err == -ECANCELED)
            xf_finish(xf, -ECANCELED);
        else if (xf->cdn_err)
            xf_finish(xf, xf->cdn_err);
        else
            xf_cdn(xf); /* -ENOENT, -ETIMEDOUT, liars banned: the CDN at once */
        return;
    }
    if (xf->creq) /* the peers won the race */
        zn_req_cancel(xf->creq);
    else if (!xf->raced)
        c->race_after_ms = RACE_AFTER_MS;
    memcpy(xf->lens, lens, n * sizeof *lens);
    memcpy(xf->hashes, hashes, n * sizeof *hashes);
    memcpy(xf->buf, data, len);
    xf->got = len;
    xf->data = xf->buf; /* decoded and verified: the run in memory until stored */
    xf->dlen = len;
    xf->buf = NULL;
    xf->src = ZF_SRC_PEER;
    xf->decoding = true;
    xf->nocache = xf_fills_only(xf, true);
    int ck = check_terms(xf, xf->chk, xf->nchk, xf->lens);
    if (ck) {
        xf_finish(xf, ck);
        return;
    }
    early_collect(xf);
    queue_put(xf, xf_peer_work);
}

static bool xf_peer(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    xf->src = ZF_SRC_PEER;
    xf->pt0 = now_ms();
    xf->nops++;
    if (zf_p2p_fetch(c->fs->p2p, &xf->xorb, xf->cs, xf->ce, xf->bytes, xf_peer_done, xf,
                     &xf->pop) == 0) {
        p2p_timer_arm(c);
        return true;
    }
    xf->nops--;
    xf->pop = NULL;
    return false;
}

static void xf_debug(const rd_xf *xf, const char *what)
{
    if (zf_log_level < ZF_LOG_DEBUG)
        return;
    char xs[65];
    xet_hash_to_string(&xf->xorb, xs);
    zf_debug("zestfs: xorb %.16s chunks [%u, %u): %s\n", xs, xf->cs, xf->ce, what);
}

static bool xf_has_fg(const rd_xf *xf)
{
    for (size_t i = 0; i < xf->nw; i++)
        if (cell_has_fg(xf->w[i]))
            return true;
    return false;
}

/* Foreground first on the network.  While a CDN transfer that is not only
 * for fills is in flight (a read waits for it, or it runs ahead of a
 * sequential reader), the transfers only fills wait for are held
 * (zn_req_pause: TCP flow control stops their senders once the socket
 * buffers fill), so a read's bytes do not share the link with a prefetch
 * of the whole file; they resume when no such transfer is left.  A
 * transfer is held HOLD_MAX_MS at most in all, so a long foreground stream
 * cannot starve a pull (or leave a CDN connection idle past its timeout).
 * Called whenever a transfer starts or ends or a read joins one. */
static void net_prio(rd_ctx *c)
{
    bool fg = false;
    for (rd_xf *x = c->xfs; x && !fg; x = x->next)
        fg = x->creq && !x->held && !x->finished && !xf_fill_only(x);
    uint64_t now = now_ms();
    if (fg || c->fg_on)
        c->fg_last = now;
    c->fg_on = fg;
    for (rd_xf *x = c->xfs; x; x = x->next) {
        if (!x->creq || x->finished)
            continue;
        uint64_t used = x->held_ms + (x->held ? now - x->held_t0 : 0);
        bool want = fg && used < HOLD_MAX_MS && xf_fill_only(x);
        if (want == x->held)
            continue;
        if (want) {
            x->held_t0 = now;
            c->m.fetches_held++;
        } else {
            x->held_ms = used;
        }
        x->held = want;
        zn_req_pause(x->creq, want);
        xf_debug(x, want ? "held" : "resumed");
    }
}

/* Peers that hold the whole range first (raced against the CDN when slow);
 * when none does but one is fetching it from the CDN now, wait for that
 * (parked); else the CDN. */
static void xf_start(rd_xf *xf)
{
    rd_ctx *c = xf->c;
    xf->started = true;
    xf->t0 = uv_hrtime();
    c->m.fetches_inflight++;
    c->xf_bytes += xf->bytes;
    zf_p2p *p = c->fs->p2p;
    if (p && zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) > 0 && xf_peer(xf))
        return;
    if (p && zf_p2p_pending(p, &xf->xorb, xf->cs, xf->ce) > 0) {
        xf->parked = xf->pend_seen = true;
        xf->park_t0 = now_ms();
        c->m.fetches_parked++;
        xf_debug(xf, "a peer fetches it from the CDN: waiting for that");
        p2p_timer_arm(c);
        return;
    }
    if (p && !xf_has_fg(xf)) {
        /* Background, and peers may be about to fetch the same range (nodes
         * pulling one model together): wait a random 0..JITTER_MS first, so
         * that one of them goes first and the others see its PENDING. */
        zf_p2p_stats st;
        zf_p2p_get_stats(p, &st);
        uint16_t r = 0;
        if (st.node.peers > 0 && getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) {
            xf->parked = true;
            xf->pend_seen = false;
            xf->park_t0 = now_ms();
            xf->park_lim = r % (JITTER_MS + 1);
            p2p_timer_arm(c);
            return;
        }
    }
    xf_cdn(xf);
}

/* The CDN time of a fetch of `bytes`, from what CDN fetches took so far. */
static double cdn_eta_ms(const rd_ctx *c, uint64_t bytes)
{
    double bpms = c->cdn_bpms > 0 ? c->cdn_bpms : 20000.0; /* none yet: 20 MB/s */
    return 100.0 + (double)bytes / bpms;
}

/* One look at one fetch; true when it changed state (the list may have). */
static bool p2p_look(rd_xf *xf, uint64_t now, bool *busy)
{
    rd_ctx *c = xf->c;
    zf_p2p *p = c->fs->p2p;
    if (xf->parked) {
        *busy = true;
        if (!xf->pend_seen && zf_p2p_pending(p, &xf->xorb, xf->cs, xf->ce) > 0) {
            xf->pend_seen = true; /* a peer went first: wait for it */
            xf->park_t0 = now;
            c->m.fetches_parked++;
            xf_debug(xf, "a peer fetches it from the CDN: waiting for that");
        }
        uint64_t lim = xf->park_lim;
        if (xf->pend_seen) {
            lim = PARK_BG_MS;
            if (xf_has_fg(xf)) {
                lim = xf->bytes / 10000; /* 10 MB/s */
                if (lim < PARK_FG_MIN_MS)
                    lim = PARK_FG_MIN_MS;
            }
        } else if (xf_has_fg(xf))
            lim = 0; /* a read waits now: no jitter */
        if (c->stopping) {
            xf->parked = false;
            xf_finish(xf, -ECANCELED);
            return true;
        }
        if (xf->retry_peer) {
            if (now - xf->park_t0 < REPARK_MS && !xf_has_fg(xf))
                return false;
            xf->parked = xf->retry_peer = false;
            if (zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) == 0 || !xf_peer(xf))
                xf_cdn(xf);
            return true;
        }
        if (xf->wait_xorb) { /* until the peers' fetches of the xorb are over */
            if (zf_p2p_pending(p, &xf->xorb, 0, 0) > 0 && now - xf->park_t0 < lim)
                return false;
            xf->parked = xf->wait_xorb = false;
            xf_debug(xf, "the peers' fetches of the xorb ended: peers again");
            if (zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) == 0 || !xf_peer(xf))
                xf_cdn(xf);
            return true;
        }
        if (zf_p2p_holders(p, &xf->xorb, xf->cs, xf->ce) > 0) {
            xf->parked = false;
            xf_debug(xf, "a peer has it now");
            if (!xf_peer(xf))
                xf_cdn(xf);
            return true;
        }
        if ((xf->pend_seen && zf_p2p_pending(p, &xf->xorb, xf->cs, xf->ce) == 0) ||
            now - xf->park_t0 >= lim) {
            xf->parked = false;
            xf_debug(xf, xf->pend_seen ? (now - xf->park_t0 >= lim ? "waited too long: the CDN"
                                                                   : "the peer's fetch ended: the CDN")
                                       : "no peer went first: the CDN");
            xf_cdn(xf);
            return true;
        }
        return false;
    }
    if (!xf->pop || xf->creq || xf->raced || xf->finished || xf->decoding || c->stopping ||
        !c->http)
        return false;
    *busy = true;
    uint64_t e = now - xf->pt0;
    if (e < c->race_after_ms)
        return false;
    uint64_t done = 0, total = 0;
    zn_peer_op_progress(xf->pop, &done, &total);
    double peer_eta = 1e18;
    if (done > 0 && total > done)
        peer_eta = (double)(total - done) * (double)e / (double)done;
    else if (done > 0)
        peer_eta = 0;
    bool fg = xf_has_fg(xf);
    if (!fg) {
        /* Nobody waits (pull, prefetch): a CDN copy costs the origin more
         * than the time it saves, so only a peer that has all but stalled
         * is raced (slow ones are dropped by the peer node anyway). */
        if (e < BG_RACE_AFTER_MS || peer_eta <= 10 * cdn_eta_ms(c, xf->bytes) + 5000)
            return false;
    } else {
        if (peer_eta <= 2 * cdn_eta_ms(c, xf->bytes) + 250)
            return false;
    }
    /* slower than the CDN would be: race it (the first verified copy wins) */
    xf->raced = true;
    c->m.races++;
    xf->extra = xf->bytes;
    c->xf_bytes += xf->extra;
    if (zf_log_level >= ZF_LOG_DEBUG) {
        char xs[65];
        xet_hash_to_string(&xf->xorb, xs);
        zf_debug("zestfs: xorb %.16s chunks [%u, %u): peers slow (%" PRIu64 "/%" PRIu64
                 " bytes in %" PRIu64 " ms), racing the CDN\n",
                 xs, xf->cs, xf->ce, done, total, e);
    }
    xf_cdn(xf);
    return true;
}

static void p2p_tick(uv_timer_t *t)
{
    rd_ctx *c = t->data;
    uint64_t now = now_ms();
    bool busy = false;
    for (rd_xf *xf = c->xfs; xf;)
        xf = p2p_look(xf, now, &busy) ? c->xfs : xf->next; /* changed: look again from the top */
    if (!busy) {
        uv_timer_stop(t);
        c->p2p_timer_on = false;
    }
}

static void p2p_timer_arm(rd_ctx *c)
{
    if (!c->p2p_timer_on && !c->stopping) {
        c->p2p_timer_on = true;
        uv_timer_start(&c->p2p_timer, p2p_tick, P2P_TICK_MS, P2P_TICK_MS);
    }
}

/* While reads use the CDN (now, or within FG_RECENT_MS), fills start at
 * most FILL_XF_FG fetches at once: what each one has in flight (socket
 * buffers, queues along the path) still arrives after it is held, ahead of
 * a read's bytes. */
static bool fill_gated(rd_ctx *c, const rd_xf *xf, uint64_t now)
{
    if ((!c->fg_on && now >= c->fg_last + FG_RECENT_MS) || !xf_fill_only(xf))
        return false;
    int n = 0;
    for (const rd_xf *x = c->xfs; x && n < FILL_XF_FG; x = x->next)
        n += x->started && !x->finished && xf_fill_only(x);
    return n >= FILL_XF_FG;
}

static void prio_tick(uv_timer_t *t)
{
    xf_pump(t->data);
}

/* Start queued fetches, in order, while the budget allows (a fill held
 * back by fill_gated keeps its place; the timer looks again). */
static void xf_pump(rd_ctx *c)
{
    uint64_t now = now_ms();
    bool gated = false;
    rd_xf **pp = &c->xq;
    while (*pp && !c->stopping) {
        rd_xf *xf = *pp;
        if (c->xf_bytes && c->xf_bytes + xf->bytes > XF_BUDGET)
            break;
        if (fill_gated(c, xf, now)) {
            gated = true;
            pp = &xf->qnext;
            continue;
        }
        *pp = xf->qnext;
        if (c->xqtail == &xf->qnext)
            c->xqtail = pp;
        xf->qnext = NULL;
        xf_start(xf); /* may finish fetches and change the queue: look again from its head */
        pp = &c->xq;
    }
    if (gated && !c->stopping)
        uv_timer_start(&c->prio_timer, prio_tick,
                       c->fg_on ? FG_RECENT_MS : c->fg_last + FG_RECENT_MS - now + 1, 0);
}

static int push_ptr(void ***v, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        void **nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = p;
    return 0;
}

static int add_checks(rd_xf *xf, const xet_recon *rc, const xet_fetch *d)
{
    for (size_t t = 0; t < rc->nterms; t++) {
        const xet_recon_term *tm = &rc->terms[t];
        if (tm->fetch != d)
            continue;
        if (xf->nchk == xf->cchk) {
            size_t nc = xf->cchk ? xf->cchk * 2 : 4;
            rd_check *nv = realloc(xf->chk, nc * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            xf->chk = nv;
            xf->cchk = nc;
        }
        xf->chk[xf->nchk++] = (rd_check){tm->chunk_start, tm->chunk_end, tm->unpacked_length};
    }
    return 0;
}

static bool cell_has_fg(const rd_cell *cl)
{
    for (size_t i = 0; i < cl->nw; i++)
        if (!cl->w[i]->fill)
            return true;
    return false;
}

/* The cell needs descriptor d: join a fetch in flight that covers it or
 * start one.  0 (cell->pending counted) or negative errno. */
static int xf_need(rd_cell *cl, const xet_recon *rc, const xet_fetch *d)
{
    rd_ctx *c = cl->f->c;
    rd_xf *xf = NULL;
    for (rd_xf *x = c->xfs; x; x = x->next)
        if (xet_hash_eq(&x->xorb, &d->xorb) && x->cs <= d->chunk_start && d->chunk_end <= x->ce) {
            xf = x;
            break;
        }
    if (xf) {
        if (push_ptr((void ***)&xf->w, &xf->nw, &xf->cw, cl))
            return -ENOMEM;
        if (!xf->decoding)
            add_checks(xf, rc, d);
        cl->pending++;
        net_prio(c); /* a read may wait for it now */
        if (!xf->started && c->xq != xf && cell_has_fg(cl)) { /* a read waits now: to the front */
            for (rd_xf **pp = &c->xq; *pp; pp = &(*pp)->qnext)
                if (*pp == xf) {
                    *pp = xf->qnext;
                    if (c->xqtail == &xf->qnext)
                        c->xqtail = pp;
                    xf->qnext = c->xq;
                    c->xq = xf;
                    break;
                }
        }
        return 0;
    }
    if (d->byte_end < d->byte_start || d->byte_end - d->byte_start >= XET_XORB_MAX_BYTES ||
        d->chunk_start >= d->chunk_end || d->chunk_end - d->chunk_start > XET_XORB_MAX_CHUNKS ||
        !d->url)
        return -EBADMSG;
    xf = calloc(1, sizeof *xf);
    if (!xf || !(xf->url = strdup(d->url))) {
        free(xf);
        return -ENOMEM;
    }
    xf->c = c;
    xf->xorb = d->xorb;
    xf->cs = d->chunk_start;
    xf->ce = d->chunk_end;
    xf->bs = d->byte_start;
    xf->be = d->byte_end;
    xf->bytes = d->byte_end - d->byte_start + 1;
    xf->pin.seg = NULL;
    if (push_ptr((void ***)&xf->w, &xf->nw, &xf->cw, cl) || add_checks(xf, rc, d)) {
        free(xf->w);
        free(xf->chk);
        free(xf->url);
        free(xf);
        return -ENOMEM;
    }
    cl->pending++;
    xf->next = c->xfs;
    c->xfs = xf;
    if (cell_has_fg(cl) && c->xq) { /* a read waits: ahead of prefetches */
        xf->qnext = c->xq;
        c->xq = xf;
    } else {
        *c->xqtail = xf;
        c->xqtail = &xf->qnext;
    }
    xf_pump(c);
    return 0;
}

/* ---- cells (window fetches) --------------------------------------------------------------- */

static void cell_start(rd_cell *cl);

static void cell_closed(uv_handle_t *h)
{
    rd_cell *cl = h->data;
    pins_clear(&cl->pins);
    free(cl->w);
    free(cl);
}

static void waits_over(rd_read *r);

static void cell_done(rd_cell *cl, int err)
{
    rd_file *f = cl->f;
    if (!err && f->done)
        f->done[cl->idx / 8] |= (uint8_t)(1u << (cl->idx % 8));
    for (rd_cell **pp = &f->cells; *pp; pp = &(*pp)->next)
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    if (err && err != -ECANCELED)
        zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s after %d attempt(s)\n", f->id,
                cl->start, cl->end, zf_strerror(-err), cl->attempt);
    rd_read **w = cl->w;
    size_t nw = cl->nw;
    cl->w = NULL;
    cl->nw = 0;
    uv_close((uv_handle_t *)&cl->timer, cell_closed);
    for (size_t i = 0; i < nw; i++) {
        rd_read *r = w[i];
        if (err && !r->err)
            r->err = err;
        for (size_t k = 0; !err && k < cl->pins.n; k++)
            pins_add(&r->pins, cl->pins.v[k]);
        if (--r->waits > 0)
            continue;
        waits_over(r);
    }
    free(w);
}

static void cell_retry_timer(uv_timer_t *t)
{
    rd_cell *cl = t->data;
    if (cl->f->c->stopping)
        cell_done(cl, -ECANCELED);
    else
        cell_start(cl);
}

static bool retryable(int err)
{
    return !(err == -ENOENT || err == -EACCES || err == -EPERM || err == -EINVAL ||
             err == -ENOMEM || err == -ECANCELED || err == -ERANGE || err == -EKEYREJECTED);
}

static void cell_attempt_failed(rd_cell *cl, int err)
{
    rd_ctx *c = cl->f->c;
    if (c->stopping || !retryable(err) || cl->attempt >= MAX_ATTEMPTS) {
        cell_done(cl, err);
        return;
    }
    uint64_t delay = 500;
    for (int i = 1; i < cl->attempt; i++)
        delay *= 3;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)now_ms();
    delay = delay / 2 + (delay / 2) * (rnd % 1000) / 1000;
    if (now_ms() - cl->t0 + delay > env_ms("ZESTFS_CELL_DEADLINE_MS", DEADLINE_MS)) {
        cell_done(cl, err);
        return;
    }
    zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s, trying again\n", cl->f->id,
            cl->start, cl->end, zf_strerror(-err));
    uv_timer_start(&cl->timer, cell_retry_timer, delay, 0);
}

static void cell_fetches_done(rd_cell *cl)
{
    if (cl->err)
        cell_attempt_failed(cl, cl->err);
    else
        cell_done(cl, 0);
}

/* Hold the stored segments of a descriptor that needs no fetch. */
static void pin_present(rd_cell *cl, const xet_fetch *d)
{
    zc_store *s = cl->f->c->store;
    for (uint32_t ch = d->chunk_start; ch < d->chunk_end;) {
        zc_ref ref;
        int rc = zc_lookup(s, &d->xorb, ch, &ref);
        if (rc != 0 && rc != -EAGAIN)
            return;
        rd_pin *p = pin_new(&ref);
        if (!p) {
            zc_unpin(&ref);
            return;
        }
        pins_add(&cl->pins, p);
        pin_put(p);
        ch = ref.seg_end;
    }
}

static void on_recon(void *ud, int err, xet_recon *rc)
{
    rd_cell *cl = ud;
    rd_file *f = cl->f;
    rd_ctx *c = f->c;
    if (!err && c->stopping)
        err = -ECANCELED;
    if (err) {
        zn_recon_free(rc);
        cell_attempt_failed(cl, err);
        return;
    }
    zf_debug("zestfs: %s [%" PRIu64 ", %" PRIu64 "): reconstruction in %" PRIu64 " ms\n", f->id,
             cl->start, cl->end, now_ms() - cl->t0);
    /* terms -> extents; they must cover the cell */
    uint64_t pos = rc->base;
    bool changed = false;
    for (size_t i = 0; i < rc->nterms && !err; i++) {
        const xet_recon_term *t = &rc->terms[i];
        if (t->unpacked_length == 0 || t->chunk_start >= t->chunk_end ||
            pos + t->unpacked_length > f->size) {
            err = -EBADMSG;
            break;
        }
        rd_ext e = {pos, t->unpacked_length, t->xorb, t->chunk_start, t->chunk_end};
        int a = ext_add(f, &e);
        if (a > 0 && c->fs->p2p) /* the repo's swarm may serve this xorb now */
            zf_p2p_repo_xorb(c->fs->p2p, zf_p2p_type_name((enum zf_repo_type)f->type), f->repo,
                             &t->xorb);
        if (a < 0)
            err = a;
        changed |= a > 0;
        pos += t->unpacked_length;
    }
    if (!err && (rc->base > cl->start || pos < cl->end))
        err = -EBADMSG;
    if (changed)
        map_save(f);
    if (err) {
        zf_log(ZF_LOG_WARN, "zestfs: %s: reconstruction does not match the file\n", f->id);
        zn_recon_free(rc);
        cell_attempt_failed(cl, err);
        return;
    }
    cl->err = 0;
    cl->pending = 1; /* held while descriptors are set up */
    for (size_t k = 0; k < rc->nfetch; k++) {
        const xet_fetch *d = &rc->fetch[k];
        bool used = false;
        for (size_t t = 0; t < rc->nterms && !used; t++)
            used = rc->terms[t].fetch == d;
        if (!used)
            continue;
        if (zc_missing(c->store, &d->xorb, d->chunk_start, d->chunk_end, NULL, 0) == 0) {
            pin_present(cl, d);
            continue;
        }
        int e = xf_need(cl, rc, d);
        if (e && !cl->err)
            cl->err = e;
    }
    zn_recon_free(rc);
    if (--cl->pending == 0)
        cell_fetches_done(cl);
}

static void big_cell_start(rd_cell *cl);

static void cell_start(rd_cell *cl)
{
    rd_file *f = cl->f;
    rd_ctx *c = f->c;
    cl->attempt++;
    cl->err = 0;
    if (f->big) {
        big_cell_start(cl);
        return;
    }
    zn_range range = {cl->start, cl->end - 1};
    int rc = zn_cas_reconstruction(c->hub, f->type, f->repo, f->rev, f->id, &range, on_recon, cl,
                                   NULL);
    if (rc)
        cell_attempt_failed(cl, rc);
}

static rd_cell *cell_find(rd_file *f, uint64_t k)
{
    for (rd_cell *x = f->cells; x; x = x->next)
        if (x->idx == k)
            return x;
    return NULL;
}

static rd_cell *cell_new(rd_file *f, uint64_t k)
{
    rd_cell *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->f = f;
    cl->idx = k;
    cl->start = k * CELL_SIZE;
    cl->end = umin(f->size, (k + 1) * CELL_SIZE);
    cl->t0 = now_ms();
    uv_timer_init(f->c->loop, &cl->timer);
    cl->timer.data = cl;
    cl->next = f->cells;
    f->cells = cl;
    return cl;
}

/* ---- sequential prefetch -------------------------------------------------------------------- */

/* Is window k known to be stored?  Mapped, and every chunk of the extents
 * over it in the store (remembered once seen, or fetched). */
static bool cell_stored(rd_file *f, uint64_t k)
{
    if (f->done[k / 8] & (1u << (k % 8)))
        return true;
    uint64_t s = k * CELL_SIZE, e = umin(f->size, s + CELL_SIZE);
    if (ext_uncovered(f, s, e) != e)
        return false;
    for (long i = ext_floor(f, s); i >= 0 && (size_t)i < f->n && f->ext[i].off < e; i++)
        if (f->ext[i].off + f->ext[i].len > s &&
            zc_missing(f->c->store, &f->ext[i].xorb, f->ext[i].cs, f->ext[i].ce, NULL, 0) != 0)
            return false;
    f->done[k / 8] |= (uint8_t)(1u << (k % 8));
    return true;
}

/* Track sequential readers of f; ahead of one that has read SEQ_MIN bytes
 * in a row, start the windows it will need (more the longer it goes on:
 * one per 8 MiB read, up to MAX_AHEAD), with no read waiting on them. */
static void prefetch(rd_file *f, uint64_t off, uint64_t len)
{
    rd_ctx *c = f->c;
    uint64_t end = off + len;
    rd_stream *st = NULL, *lru = &f->streams[0];
    f->tick++;
    for (int i = 0; i < NSTREAMS; i++) {
        rd_stream *x = &f->streams[i];
        if (x->used && off + SEQ_BACK >= x->next && off <= x->next + SEQ_FWD) {
            st = x;
            break;
        }
        if (x->used < lru->used)
            lru = x;
    }
    if (!st) {
        st = lru;
        st->next = end;
        st->run = len;
        st->used = f->tick;
        return;
    }
    st->used = f->tick;
    if (end > st->next) {
        st->run += end - st->next;
        st->next = end;
    }
    if (st->run < SEQ_MIN || !c->hub || c->stopping)
        return;
    uint64_t ncells = (f->size + CELL_SIZE - 1) / CELL_SIZE;
    if (!f->done && !(f->done = calloc((ncells + 7) / 8, 1)))
        return;
    uint64_t ahead = st->run / CELL_SIZE + 1;
    if (ahead > MAX_AHEAD)
        ahead = MAX_AHEAD;
    zc_stats zs;
    zc_get_stats(c->store, &zs);
    if (ahead > zs.cap / CELL_SIZE / 4) /* a small store would evict them before they are read */
        ahead = zs.cap / CELL_SIZE / 4 ? zs.cap / CELL_SIZE / 4 : 1;
    uint64_t k0 = (st->next - 1) / CELL_SIZE;
    bool joined = false;
    for (uint64_t k = k0 + 1; k <= k0 + ahead && k < ncells; k++) {
        rd_cell *cl = cell_find(f, k);
        if (cl) { /* a fill's window the reader will need: no longer held for reads */
            joined |= !cl->ahead;
            cl->ahead = true;
            continue;
        }
        if (cell_stored(f, k))
            continue;
        if (!(cl = cell_new(f, k)))
            break;
        cl->ahead = true;
        cell_start(cl);
    }
    if (joined) {
        net_prio(c);
        xf_pump(c);
    }
}

/* A read (FUSE or HTTP) still waiting for fetches at its deadline is
 * answered EIO then; the cells it waits on go on (other reads may want
 * them) and it is freed when the last lets go of it.  Loop thread. */
static void read_deadline(uv_timer_t *t)
{
    rd_read *r = t->data;
    if (r->waits <= 0 || r->expired)
        return;
    r->expired = true;
    zf_log(ZF_LOG_WARN, "zestfs: %s/%s [%" PRIu64 ", +%" PRIu64 "): no bytes after %.0f s: EIO\n",
           r->f->repo ? r->f->repo : "?", r->f->path ? r->f->path : "?", r->off, r->len,
           (double)(uv_hrtime() - r->t0) / 1e9);
    if (r->cb) {
        note_read(r, -EIO);
        r->cb(r->ud, -EIO, NULL, 0);
    } else {
        note_read(r, -EIO);
        fuse_reply_err(r->req, EIO);
    }
}

static uint64_t read_deadline_ms(void)
{
    static uint64_t ms;
    if (!ms) {
        const char *e = getenv("ZESTFS_READ_DEADLINE");
        ms = e && atol(e) > 0 ? (uint64_t)atol(e) * 1000 : READ_DEADLINE_MS;
    }
    return ms;
}

/* Start (or keep) the deadline of a read that waits; fills have none. */
static void deadline_arm(rd_read *r)
{
    if (r->fill || !r->t0 || r->expired || (r->deadline && uv_is_active((uv_handle_t *)r->deadline)))
        return;
    if (!r->deadline) {
        if (!(r->deadline = malloc(sizeof *r->deadline)))
            return;
        uv_timer_init(r->c->loop, r->deadline);
        r->deadline->data = r;
    }
    uint64_t age = (uv_hrtime() - r->t0) / 1000000, dl = read_deadline_ms();
    uv_timer_start(r->deadline, read_deadline, age < dl ? dl - age : 0, 0);
}

/* The last cell a read waited on is done: on with it (or free it, when its
 * deadline already answered it). */
static void waits_over(rd_read *r)
{
    if (r->deadline)
        uv_timer_stop(r->deadline);
    if (r->expired) {
        read_free(r);
        return;
    }
    if (r->err)
        read_fail(r, r->err);
    else
        xet_try(r);
}

/* The read waits for every cell holding a byte of [from, end). */
static void fetch_cells(rd_read *r, uint64_t from)
{
    rd_file *f = r->f;
    rd_ctx *c = f->c;
    if (!r->fill && !r->nofetch)
        zf_debug("zestfs: read %s/%s [%" PRIu64 ", +%" PRIu64 ") waits for a fetch from %" PRIu64 "\n",
                 f->repo ? f->repo : "?", f->path ? f->path : "?", r->off, r->len, from);
    if (r->nofetch) {
        read_fail(r, -ENOENT);
        return;
    }
    if (read_from_runs(r))
        return;
    if (!c->hub || c->stopping) {
        read_fail(r, -ENETDOWN);
        return;
    }
    if (++r->rounds > MAX_ROUNDS) {
        zf_log(ZF_LOG_WARN, "zestfs: %s at %" PRIu64 ": still missing after %d fetches\n", f->id,
                from, MAX_ROUNDS);
        read_fail(r, -EIO);
        return;
    }
    uint64_t end = r->off + r->len;
    uint64_t k0 = from / CELL_SIZE, k1 = (end - 1) / CELL_SIZE;
    r->waits = 1;
    r->err = 0;
    for (uint64_t k = k0; k <= k1; k++) {
        rd_cell *cl = cell_find(f, k);
        bool fresh = false;
        if (!cl) {
            if (!(cl = cell_new(f, k))) {
                r->err = -ENOMEM;
                break;
            }
            fresh = true;
        }
        if (push_ptr((void ***)&cl->w, &cl->nw, &cl->cw, r)) {
            r->err = -ENOMEM;
            if (fresh)
                cell_done(cl, -ENOMEM);
            break;
        }
        r->waits++;
        if (fresh)
            cell_start(cl);
    }
    if (--r->waits == 0) {
        waits_over(r);
    } else {
        deadline_arm(r);
        if (!r->fill)
            net_prio(c); /* it may have joined a held transfer */
    }
}

/* ---- non-Xet files ----------------------------------------------------------------------- */

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
    rd_file *f = r->f;
    if (r->fill) {
        fill_piece_done(r, 0);
        return;
    }
    if (r->cb) {
        if (r->http)
            note_read(r, 0);
        r->cb(r->ud, 0, f->blob + r->off, r->len);
        read_free(r);
        return;
    }
    note_read(r, 0);
    fuse_reply_buf(r->req, (const char *)f->blob + r->off, r->len);
    read_free(r);
}

static void lru_unlink(rd_ctx *c, rd_file *f)
{
    if (f->lru_prev)
        f->lru_prev->lru_next = f->lru_next;
    else if (c->lru_head == f)
        c->lru_head = f->lru_next;
    if (f->lru_next)
        f->lru_next->lru_prev = f->lru_prev;
    else if (c->lru_tail == f)
        c->lru_tail = f->lru_prev;
    f->lru_prev = f->lru_next = NULL;
}

static void lru_touch(rd_ctx *c, rd_file *f)
{
    lru_unlink(c, f);
    f->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = f;
    c->lru_head = f;
    if (!c->lru_tail)
        c->lru_tail = f;
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
        lru_touch(c, f);
        while (c->blob_mem > BLOB_MEM && c->lru_tail && c->lru_tail != f) {
            rd_file *v = c->lru_tail;
            lru_unlink(c, v);
            c->blob_mem -= v->size;
            free(v->blob);
            v->blob = NULL;
            v->blob_state = BLOB_NONE;
        }
    }
    while (r) {
        rd_read *nx = r->next;
        if (err)
            read_fail(r, err);
        else
            blob_serve(r);
        r = nx;
    }
}

static void blob_fetch(rd_file *f);

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
        want |= !r->nofetch;
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

static char *pct_path(const char *s)
{
    static const char hexd[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/')
            *o++ = (char)ch;
        else {
            *o++ = '%';
            *o++ = hexd[ch >> 4];
            *o++ = hexd[ch & 15];
        }
    }
    *o = 0;
    return out;
}

/* A GET of a non-Xet file's bytes at {endpoint}/{repo}/resolve/{commit}/{path}
 * (one range of it, or all), into buf.  A redirect to another origin (LFS
 * content on a CDN) is followed once, without credentials.  done gets err 0
 * only for a 200 (or, for a range, 206) answer of exactly the bytes asked. */
typedef void (*rs_done_cb)(void *ud, int err, uint8_t *buf, uint64_t len);

typedef struct rs_get {
    rd_ctx *c;
    zn_range rg;
    bool ranged;
    bool second;               /* following a cross-origin redirect */
    uint8_t *buf;
    uint64_t len;
    const zn_retry *retry;
    rs_done_cb done;
    void *ud;
} rs_get;

static int rs_send(rs_get *g, const char *url, bool auth);

static void rs_answer(void *ud, int err, const zn_resp *resp)
{
    rs_get *g = ud;
    if (!err && g->c->stopping)
        err = -ECANCELED;
    if (!err) {
        int st = zn_resp_status(resp);
        const char *loc = zn_resp_header(resp, "Location");
        if (st >= 300 && st < 400 && loc && !g->second) {
            g->second = true; /* the content lives elsewhere: no credentials there */
            if (strncmp(loc, "https://", 8) && strncmp(loc, "http://", 7))
                err = -EBADMSG;
            else if ((err = rs_send(g, loc, false)) == 0)
                return;
        } else if (st != 200 && !(g->ranged && st == 206)) {
            err = -EBADMSG;
        } else if (!g->ranged) { /* (a range's length is checked by the client) */
            size_t n;
            zn_resp_body(resp, &n);
            if (n != g->len)
                err = -EPROTO;
        }
    }
    rs_done_cb done = g->done;
    void *dud = g->ud;
    uint8_t *buf = g->buf;
    uint64_t len = g->len;
    free(g);
    done(dud, err, buf, len);
}

static int rs_send(rs_get *g, const char *url, bool auth)
{
    const char *hdrs[2] = {auth ? g->c->auth : NULL, NULL};
    zn_http_req q = {
        .url = url,
        .headers = hdrs,
        .ranges = g->ranged ? &g->rg : NULL,
        .nranges = g->ranged,
        .range_body = g->ranged,
        .buf = g->buf,
        .buf_len = g->len,
        .follow_redirects = true,
        .retry = g->retry,
        .done = rs_answer,
        .ud = g,
    };
    return zn_http_request(g->c->http, &q, NULL);
}

/* Bytes [off, off + len) of f (all of it: off 0, len f->size, ranged false).
 * 0: done comes later (buf handed back there); else nothing was started. */
static int rs_start(rd_file *f, bool ranged, uint64_t off, uint64_t len, uint8_t *buf,
                    const zn_retry *retry, rs_done_cb done, void *ud)
{
    rd_ctx *c = f->c;
    static const char *prefix[] = {"", "datasets/", "spaces/"};
    rs_get *g = calloc(1, sizeof *g);
    char *epath = pct_path(f->path), *url = NULL;
    int rc = -ENOMEM;
    if (g && epath) {
        size_t n = strlen(c->endpoint) + strlen(f->repo) + strlen(epath) + 80;
        if ((url = malloc(n))) {
            snprintf(url, n, "%s/%s%s/resolve/%s/%s", c->endpoint, prefix[f->type], f->repo,
                     f->rev, epath);
            *g = (rs_get){c, {off, off + len - 1}, ranged, false, buf, len, retry, done, ud};
            rc = rs_send(g, url, true);
        }
    }
    free(epath);
    free(url);
    if (rc)
        free(g);
    return rc;
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
    int rc = buf ? rs_start(f, false, 0, f->size, buf, &retry, blob_done, f) : -ENOMEM;
    if (rc) {
        free(buf);
        blob_settle(f, rc);
    }
}

static void blob_read(rd_read *r)
{
    rd_file *f = r->f;
    if (f->blob_state == BLOB_READY) {
        lru_touch(f->c, f);
        blob_serve(r);
        return;
    }
    r->next = f->blob_wait;
    f->blob_wait = r;
    if (f->blob_state == BLOB_NONE)
        blob_queue(f, NULL, 0, false);
}

/* ---- large non-Xet files -------------------------------------------------------------------- */

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
            if (len != 16 || memcmp(d, BIG_MAGIC, 8) || get_u64((uint8_t *)d + 8) != f->size)
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
        put_u64(mark + 8, f->size);
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

static void big_dl_pump(rd_file *f);
static void big_after(uv_work_t *w, int status);

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
        map_ready(f);
        return;
    }
    f->map_state = MAP_NONE;
    rd_read *r = f->map_wait;
    f->map_wait = NULL;
    if (err != -ENOENT)
        zf_log(ZF_LOG_WARN, "zestfs: %s (%s): %s\n", f->path, f->etag, zf_strerror(-err));
    while (r) {
        rd_read *nx = r->next;
        read_fail(r, err);
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
    cell_attempt_failed(cl, err);
}

/* Window k into buf: for the download (part) or a refetch (cl). */
static int big_get_start(rd_file *f, uint64_t k, uint8_t *buf, big_part *part, rd_cell *cl)
{
    big_get *g = malloc(sizeof *g);
    if (!g)
        return -ENOMEM;
    *g = (big_get){f, part, cl};
    uint64_t off = k * CELL_SIZE;
    int rc = rs_start(f, true, off, umin(CELL_SIZE, f->size - off), buf, &f->c->cdn_retry,
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
            want |= !r->nofetch;
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
            rd_pin *p = pin_new(&j->pin);
            if (p) {
                pins_add(&cl->pins, p);
                pin_put(p);
            } else
                zc_unpin(&j->pin);
        } else if (rc == -EBADMSG)
            f->c->m.verify_failures++;
        free(j);
        if (rc)
            cell_attempt_failed(cl, rc);
        else
            cell_done(cl, 0);
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
static void big_cell_start(rd_cell *cl)
{
    rd_file *f = cl->f;
    uint8_t *buf = malloc(CELL_SIZE);
    int rc = buf ? big_get_start(f, cl->idx, buf, NULL, cl) : -ENOMEM;
    if (rc) {
        free(buf);
        cell_attempt_failed(cl, rc);
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
    xet_hash x;
    if (r->label == 2) {
        xet_hash *v = malloc(n * sizeof *v);
        for (uint64_t k = 0; v && k < n; k++)
            big_xorb(f, k, &v[k]);
        r->xorbs_cb(r->ud, v ? 0 : -ENOMEM, v, v ? (size_t)n : 0);
        free(v);
    } else {
        for (uint64_t k = 0; k < n; k++) {
            big_xorb(f, k, &x);
            zc_label_pin(r->c->store, &x, r->label > 0);
        }
        r->label_cb(r->ud, 0, n);
    }
    read_free(r);
}

static void big_label(rd_read *r)
{
    r->work.data = r;
    if (uv_queue_work(r->c->loop, &r->work, big_label_work, big_label_after) != 0)
        big_label_after(&r->work, -EIO); /* not from inside a caller: only at shutdown */
}

/* A read of a large non-Xet file before its map is ready. */
static void big_map(rd_file *f)
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

/* ---- entry point -------------------------------------------------------------------------- */

/* Start a read (FUSE or background) whose file state may not be loaded. */
static void read_go(rd_read *r)
{
    rd_file *f = r->f;
    rd_ctx *c = r->c;
    if (!f->xet && !f->big) {
        blob_read(r);
        return;
    }
    if (f->big && r->label) {
        big_label(r);
        return;
    }
    if (f->big && f->map_state != MAP_READY) {
        r->next = f->map_wait;
        f->map_wait = r;
        big_map(f);
        return;
    }
    if (f->map_state == MAP_READY) {
        if (!r->fill && !r->label && !r->nofetch)
            prefetch(f, r->off, r->len);
        xet_try(r);
        return;
    }
    r->next = f->map_wait;
    f->map_wait = r;
    if (f->map_state == MAP_NONE) {
        map_job *j = calloc(1, sizeof *j);
        if (!j) {
            map_ready(f);
            return;
        }
        j->f = f;
        j->store = c->store;
        map_key(f, j->key, sizeof j->key);
        j->work.data = j;
        f->map_state = MAP_LOADING;
        if (uv_queue_work(c->loop, &j->work, map_load_work, map_load_after) != 0) {
            j->rc = -EIO;
            map_load_after(&j->work, 0);
        }
    }
}

static void read_blob(zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off)
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
    rd_file *f = file_get(c, e);
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
    read_go(r);
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
    rd_file *f = file_get(c, e);
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
    read_go(r);
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
    rd_file *f = file_get(c, e);
    rd_read *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->f = f;
    r->label = on ? 1 : -1;
    r->label_cb = cb;
    r->ud = ud;
    r->len = 1;
    read_go(r);
    return 0;
}

void zf_read_forget_blob(zf_fs *fs, const char *etag)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || !etag)
        return;
    char key[72];
    snprintf(key, sizeof key, "b%s", etag);
    for (rd_file *f = c->tab[hash_key(key) % NBUCKETS]; f; f = f->hnext)
        if (strcmp(f->key, key) == 0 && f->blob_state == BLOB_READY) {
            lru_unlink(c, f);
            c->blob_mem -= f->size;
            free(f->blob);
            f->blob = NULL;
            f->blob_state = BLOB_NONE;
        }
}

int zf_read_file_xorbs(zf_fs *fs, const zv_ent *e,
                       void (*cb)(void *ud, int err, const xet_hash *v, size_t n), void *ud)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb || !ZF_IN_XORBS(e->file) || e->file->size == 0)
        return -EINVAL;
    rd_file *f = file_get(c, e);
    rd_read *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->f = f;
    r->label = 2;
    r->xorbs_cb = cb;
    r->ud = ud;
    r->len = 1;
    read_go(r);
    return 0;
}

/* ---- background fills ---------------------------------------------------------------------- */

/* A fill walks its byte ranges window by window (a piece never crosses an
 * 8 MiB window), as background reads that stop once the bytes are stored.
 * All fills share BG_WINDOWS pieces in flight, handed out round-robin;
 * their cells' xorb fetches queue behind any a FUSE read waits on. */
#define BG_WINDOWS 6

struct zf_fill {
    zf_fill *next;             /* c->fills, then c->fills_done */
    rd_ctx *c;
    rd_file *f;
    uint64_t *rg;              /* [start, end) pairs */
    size_t nrg, ri;
    uint64_t pos;              /* next byte of rg[ri] to hand out */
    uint64_t total, done;
    int inflight;
    int err;
    bool cancelled, finished;
    /* pieces that failed with a transient error, handed out again first once
     * their backoff is over; the fill fails only when one piece has failed
     * FILL_STALL times with no piece of the fill stored in between (a slow
     * shared link makes progress, just slowly: a pull must not give up) */
    struct fill_retry { uint64_t off, len, not_before, epoch; int tries; } *retry;
    size_t nretry, retry_cap;
    uint64_t nok;              /* pieces stored so far (progress) */
    bool nocache;              /* zf_fill_nocache: a pull */
    zf_fill_cb cb;
    void *ud;
};

void zf_fill_nocache(zf_fill *fl)
{
    fl->nocache = true;
}

/* Every read waiting on xf is a fill (pull, prefetch at open) and no
 * sequential reader's prefetch wants its windows: its transfer gives way to
 * reads (net_prio).  With pull: every fill is a pull's too, so nobody will
 * read the run soon and it is stored around the page cache
 * (ZC_PUT_NOCACHE). */
static bool xf_fills_only(const rd_xf *xf, bool pull)
{
    size_t n = 0;
    for (size_t i = 0; i < xf->nw; i++) {
        if (xf->w[i]->ahead)
            return false;
        for (size_t k = 0; k < xf->w[i]->nw; k++, n++) {
            const zf_fill *fl = xf->w[i]->w[k]->fill;
            if (!fl || (pull && !fl->nocache))
                return false;
        }
    }
    return n > 0;
}

static bool xf_fill_only(const rd_xf *xf)
{
    return xf_fills_only(xf, false);
}

#define FILL_STALL 6

/* Everything that hands out pieces or ends fills runs from this zero-delay
 * timer, never nested in a caller or in a completion. */
static void fill_kick(rd_ctx *c)
{
    if (c->stopping)
        c->fill_timer_cb(&c->fill_timer); /* the timer is closed: end them now */
    else if (!uv_is_active((uv_handle_t *)&c->fill_timer) ||
             uv_timer_get_due_in(&c->fill_timer) > 0) /* a retry wait: now instead */
        uv_timer_start(&c->fill_timer, c->fill_timer_cb, 0, 0);
}

static bool fill_exhausted(const zf_fill *fl)
{
    return (fl->ri >= fl->nrg && !fl->nretry) || fl->err || fl->cancelled;
}

/* Worth another try later: the network or a peer failed, not the request. */
static bool fill_retryable(const zf_fill *fl, int err)
{
    return retryable(err) && err != -ENETDOWN && err != -ENOSPC && err != -EBADMSG &&
           !fl->c->stopping && fl->c->http;
}

static int fill_retry_add(zf_fill *fl, uint64_t off, uint64_t len, int tries)
{
    if (fl->nretry == fl->retry_cap) {
        size_t nc = fl->retry_cap ? fl->retry_cap * 2 : 8;
        struct fill_retry *nr = realloc(fl->retry, nc * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        fl->retry = nr;
        fl->retry_cap = nc;
    }
    /* 1 s, 2 s, .. 16 s (ZESTFS_FILL_RETRY_MS: the first) */
    uint64_t delay = env_ms("ZESTFS_FILL_RETRY_MS", 1000) << (tries > 5 ? 4 : tries - 1);
    fl->retry[fl->nretry++] = (struct fill_retry){off, len, now_ms() + delay, fl->nok, tries};
    return 0;
}

/* Finished: off c->fills, onto c->fills_done (its callback comes from the timer). */
static void fill_maybe_finish(zf_fill *fl)
{
    rd_ctx *c = fl->c;
    if (fl->inflight || !fill_exhausted(fl) || fl->finished)
        return;
    fl->finished = true;
    for (zf_fill **pp = &c->fills; *pp; pp = &(*pp)->next)
        if (*pp == fl) {
            *pp = fl->next;
            break;
        }
    fl->next = c->fills_done;
    c->fills_done = fl;
    fill_kick(c);
}

static void fill_piece_done(rd_read *r, int err)
{
    zf_fill *fl = r->fill;
    rd_ctx *c = r->c;
    uint64_t off = r->off, len = r->len;
    /* failures of this piece in a row, with no progress of the fill between */
    int tries = r->ftries && r->fepoch == fl->nok ? r->ftries + 1 : 1;
    read_free(r);
    c->bg_reads--;
    fl->inflight--;
    if (err) {
        if (!fl->err && !fl->cancelled) {
            if (fill_retryable(fl, err) && tries < FILL_STALL &&
                fill_retry_add(fl, off, len, tries) == 0)
                zf_log(ZF_LOG_WARN, "zestfs: %s [%" PRIu64 ", %" PRIu64 "): %s; the fill tries "
                       "it again\n", fl->f->path, off, off + len, zf_strerror(-err));
            else
                fl->err = err;
        }
    } else {
        fl->nok++;
        fl->done += len;
        if (!fl->cancelled && !fl->err)
            fl->cb(fl->ud, fl, fl->done, fl->total, false, 0);
    }
    fill_maybe_finish(fl);
    fill_kick(c);
}

/* Start a background read of [off, off + len) for fl. */
static bool fill_piece(zf_fill *fl, uint64_t off, uint64_t len, int tries, uint64_t epoch)
{
    rd_read *r = calloc(1, sizeof *r);
    if (!r) {
        fl->err = -ENOMEM;
        return false;
    }
    r->c = fl->c;
    r->f = fl->f;
    r->fill = fl;
    r->off = off;
    r->len = len;
    r->ftries = tries;
    r->fepoch = epoch;
    fl->inflight++;
    fl->c->bg_reads++;
    read_go(r);
    return true;
}

/* Hand out the next piece of fl (a retry that is due first): false when it
 * has none left. */
static bool fill_next(zf_fill *fl)
{
    if (fill_exhausted(fl))
        return false;
    uint64_t now = now_ms();
    for (size_t i = 0; i < fl->nretry; i++)
        if (fl->retry[i].not_before <= now) {
            struct fill_retry rt = fl->retry[i];
            fl->retry[i] = fl->retry[--fl->nretry];
            return fill_piece(fl, rt.off, rt.len, rt.tries, rt.epoch);
        }
    if (fl->ri >= fl->nrg)
        return false; /* only retries left, not due yet */
    uint64_t end = fl->rg[2 * fl->ri + 1];
    uint64_t off = fl->pos, pend = umin(end, (off / CELL_SIZE + 1) * CELL_SIZE);
    fl->pos = pend;
    if (fl->pos >= end && ++fl->ri < fl->nrg)
        fl->pos = fl->rg[2 * fl->ri];
    return fill_piece(fl, off, pend - off, 0, 0);
}

static void fill_timer_cb(uv_timer_t *t)
{
    rd_ctx *c = t->data;
    /* rounds: each fill with pieces left gets one, while slots are free */
    bool any = true;
    while (any && c->bg_reads < BG_WINDOWS && !c->stopping) {
        any = false;
        for (zf_fill *fl = c->fills; fl && c->bg_reads < BG_WINDOWS; fl = fl->next)
            any |= fill_next(fl);
    }
    uint64_t due = UINT64_MAX;
    for (zf_fill *fl = c->fills, *nx; fl; fl = nx) {
        nx = fl->next;
        for (size_t i = 0; !fill_exhausted(fl) && i < fl->nretry; i++)
            due = umin(due, fl->retry[i].not_before);
        fill_maybe_finish(fl);
    }
    while (c->fills_done) {
        zf_fill *fl = c->fills_done;
        c->fills_done = fl->next;
        int err = fl->err ? fl->err : fl->cancelled ? -ECANCELED : 0;
        fl->cb(fl->ud, fl, fl->done, fl->total, true, err);
        free(fl->retry);
        free(fl->rg);
        free(fl);
    }
    /* wake up for the first retry not due yet; one due now waits for a free
     * slot, and every piece that ends kicks the timer */
    uint64_t now = now_ms();
    if (due != UINT64_MAX && due > now && !c->stopping)
        uv_timer_start(&c->fill_timer, c->fill_timer_cb, due - now, 0);
}

static int fill_start_file(rd_file *f, const uint64_t *ranges, size_t nranges, zf_fill_cb cb,
                           void *ud, zf_fill **out)
{
    rd_ctx *c = f->c;
    if (c->stopping)
        return -ESHUTDOWN;
    zf_fill *fl = calloc(1, sizeof *fl);
    if (!fl)
        return -ENOMEM;
    uint64_t whole[2] = {0, f->size};
    if (!ranges || !f->xet) { /* non-Xet files come whole anyway */
        ranges = whole;
        nranges = 1;
    }
    fl->rg = malloc(nranges * 2 * sizeof *fl->rg + 1);
    if (!fl->rg) {
        free(fl);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nranges; i++) {
        uint64_t st = ranges[2 * i], en = umin(ranges[2 * i + 1], f->size);
        if (st >= en)
            continue;
        fl->rg[2 * fl->nrg] = st;
        fl->rg[2 * fl->nrg + 1] = en;
        fl->nrg++;
        fl->total += en - st;
    }
    fl->c = c;
    fl->f = f;
    fl->pos = fl->nrg ? fl->rg[0] : 0;
    fl->cb = cb;
    fl->ud = ud;
    fl->next = c->fills;
    c->fills = fl;
    if (out)
        *out = fl;
    fill_kick(c);
    return 0;
}

int zf_fill_start(zf_fs *fs, const zv_ent *e, const uint64_t *ranges, size_t nranges,
                  zf_fill_cb cb, void *ud, zf_fill **out)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return -ESHUTDOWN;
    if (!e || e->kind != ZV_BLOB || !cb)
        return -EINVAL;
    rd_file *f = file_get(c, e);
    if (!f)
        return -ENOMEM;
    return fill_start_file(f, ranges, nranges, cb, ud, out);
}

void zf_fill_cancel(zf_fill *fl)
{
    if (!fl || fl->finished)
        return;
    fl->cancelled = true;
    fill_maybe_finish(fl);
}

/* ---- prefetch at open (safetensors, GGUF) --------------------------------------------------- */

/* While a .safetensors or .gguf blob is open: fill its first window, parse
 * the header from the store (tensors.c; more of the file if the header is
 * longer), then fill the tensors' byte ranges in file order.  Cancelled at
 * the last release.  Not for files over half the store cap (they would
 * evict themselves); sequential prefetch still applies to those. */
enum { OPF_HEADER, OPF_PARSING, OPF_TENSORS, OPF_DONE };

#define OPF_GRACE_MS 250 /* a file still open this long after its header came is being loaded */

struct rd_openpf {
    rd_file *f;
    uv_timer_t timer;         /* the grace period */
    bool closed;              /* timer closed by zf_read_stop: zf_read_free frees */
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

static void opf_free(uv_handle_t *h)
{
    rd_openpf *o = h->data;
    zf_tensor_map_free(&o->map);
    free(o->snap);
    free(o);
}

static void opf_maybe_free(rd_openpf *o)
{
    if (o->opens || o->fill || o->parsing || o->closed)
        return;
    o->f->opf = NULL;
    uv_close((uv_handle_t *)&o->timer, opf_free);
}

static void opf_fill_cb(void *ud, zf_fill *fl, uint64_t done, uint64_t total, bool final, int err);

static void opf_fill(rd_openpf *o, const uint64_t *rg, size_t n)
{
    rd_file *f = o->f;
    int rc = fill_start_file(f, rg, n, opf_fill_cb, o, &o->fill);
    if (rc) {
        o->fill = NULL;
        o->state = OPF_DONE;
    }
}

static void opf_grace(uv_timer_t *t)
{
    rd_openpf *o = t->data;
    if (o->opens && !o->f->c->stopping)
        opf_fill(o, o->map.ranges, o->map.nranges);
    opf_maybe_free(o);
}

static void opf_parse_work(uv_work_t *w)
{
    rd_openpf *o = w->data;
    rd_file *f = o->f;
    uint8_t *buf = malloc(o->have ? o->have : 1);
    uint64_t miss;
    o->rc = buf ? store_read(f->c->store, o->snap, o->nsnap, 0, o->have, buf, &miss) : -ENOMEM;
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
        o->state = OPF_DONE;
        return;
    }
    o->state = OPF_TENSORS;
    uv_timer_start(&o->timer, opf_grace, OPF_GRACE_MS, 0);
}

static void opf_parse(rd_openpf *o)
{
    rd_file *f = o->f;
    if (ext_uncovered(f, 0, o->have) != o->have) {
        o->state = OPF_DONE;
        return;
    }
    long i1 = ext_floor(f, o->have - 1);
    o->nsnap = (size_t)i1 + 1;
    o->snap = malloc(o->nsnap * sizeof *o->snap);
    if (!o->snap) {
        o->state = OPF_DONE;
        return;
    }
    memcpy(o->snap, f->ext, o->nsnap * sizeof *o->snap);
    o->state = OPF_PARSING;
    o->parsing = true;
    o->work.data = o;
    if (uv_queue_work(f->c->loop, &o->work, opf_parse_work, opf_parse_after) != 0) {
        o->parsing = false;
        o->state = OPF_DONE;
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
        o->state = OPF_DONE;
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

static void *blob_opened(zf_fs *fs, const zv_ent *e)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping || !c->hub || !e->file->has_xet || e->file->size < 16 ||
        !tensor_file(e->file->path))
        return NULL;
    zc_stats st;
    zc_get_stats(c->store, &st);
    if (st.cap && e->file->size > st.cap / 2)
        return NULL;
    rd_file *f = file_get(c, e);
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
    uv_timer_init(c->loop, &o->timer);
    o->timer.data = o;
    f->opf = o;
    o->have = umin(f->size, CELL_SIZE);
    uint64_t rg[2] = {0, o->have};
    opf_fill(o, rg, 1);
    return f;
}

static void blob_released(zf_fs *fs, void *token)
{
    rd_file *f = token;
    rd_openpf *o = f ? f->opf : NULL;
    if (!o || --o->opens > 0)
        return;
    if (o->fill)
        zf_fill_cancel(o->fill);
    uv_timer_stop(&o->timer);
    opf_maybe_free(o);
}

#define WARM_BUF (12u << 20) /* two: a first fetch's body and its decoded run */

static void warm_work(uv_work_t *w)
{
    (void)w;
    zf_buf_warm(WARM_BUF, 2);
}

/* ---- Xet tokens ahead of the first read -------------------------------------------------- */

static void warm_token_cb(void *ud, int err, const zn_xet_token *tok)
{
    (void)ud;
    (void)tok;
    if (err)
        zf_debug("zestfs: Xet read token ahead of a read: %s\n", zf_strerror(-err));
}

void zf_read_warm_repo(zf_fs *fs, const zf_repo *r)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || !c->hub || c->stopping || !r)
        return;
    for (size_t i = 0; i < r->nrefs && i < 4; i++) { /* main, and a few more */
        const zf_commit *cm = zf_repo_commit(r, r->refs[i].sha);
        bool seen = false, xet = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = !strcmp(r->refs[k].sha, r->refs[i].sha);
        for (size_t k = 0; cm && !seen && k < cm->nfiles && !xet; k++)
            xet = cm->files[k].has_xet;
        if (xet) /* cached and shared in net/: no request while the one we have is fresh */
            zn_hub_xet_token(c->hub, (zn_repo_type)r->type, r->id, cm->sha, false, warm_token_cb,
                             NULL, NULL);
    }
}

int zf_read_init(zf_fs *fs, const zf_opts *o, zc_store *store)
{
    rd_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fs = fs;
    c->loop = fs->loop;
    c->store = store;
    c->xqtail = &c->xq;
    c->race_after_ms = RACE_AFTER_MS;
    const char *ns = getenv("ZESTFS_NO_SPLICE");
    c->splice = !(ns && *ns && strcmp(ns, "0"));
    c->cdn_retry = (zn_retry){.max_attempts = 3, .base_ms = 300, .max_delay_ms = 5000,
                              .deadline_ms = 30000};
    c->endpoint = strdup(o->endpoint);
    if (o->token) {
        size_t n = strlen(o->token) + 32;
        c->auth = malloc(n);
        if (c->auth)
            snprintf(c->auth, n, "Authorization: Bearer %s", o->token);
    }
    if (!c->endpoint || (o->token && !c->auth)) {
        free(c->endpoint);
        free(c->auth);
        free(c);
        return -ENOMEM;
    }
    if (!o->offline) {
        zn_http_opts ho = {.cacert = o->cacert, .max_conns_per_host = 16};
        /* a transfer under 1 KiB/s for this long is abandoned (and retried
         * on a fresh connection): ZESTFS_STALL_TIMEOUT seconds, default 30 */
        const char *st = getenv("ZESTFS_STALL_TIMEOUT");
        if (st && atol(st) > 0)
            ho.low_speed_time_s = atol(st);
        c->http = zn_http_new(fs->loop, &ho);
        zn_hub_opts hopts = {
            .endpoint = o->endpoint,
            .token = o->token,
            .retry = {.max_attempts = 3, .base_ms = 500, .max_delay_ms = 5000,
                      .deadline_ms = 20000},
        };
        c->hub = c->http ? zn_hub_new(c->http, &hopts) : NULL;
        if (!c->hub) {
            zn_http_free(c->http);
            free(c->endpoint);
            free(c->auth);
            free(c);
            return -ENOMEM;
        }
    }
    uv_timer_init(fs->loop, &c->fill_timer);
    c->fill_timer.data = c;
    uv_timer_init(fs->loop, &c->p2p_timer);
    c->p2p_timer.data = c;
    uv_timer_init(fs->loop, &c->prio_timer);
    c->prio_timer.data = c;
    c->fill_timer_cb = fill_timer_cb;
    if (c->hub) { /* the first fetch's body and run land in memory already faulted in */
        c->warm.data = c;
        uv_queue_work(fs->loop, &c->warm, warm_work, NULL);
    }
    fs->read_ctx = c;
    for (size_t i = 0; i < fs->tree.nrepos && i < 16; i++)
        zf_read_warm_repo(fs, fs->tree.repos[i]);
    fs->read_blob = read_blob;
    fs->blob_opened = blob_opened;
    fs->blob_released = blob_released;
    return 0;
}

void zf_read_stop(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || c->stopping)
        return;
    c->stopping = true;
    uv_close((uv_handle_t *)&c->fill_timer, NULL);
    uv_close((uv_handle_t *)&c->p2p_timer, NULL);
    uv_close((uv_handle_t *)&c->prio_timer, NULL);
    c->p2p_timer_on = false;
    for (zf_fill *fl = c->fills; fl; fl = fl->next)
        fl->cancelled = true;
    fill_kick(c); /* fills with nothing in flight end now; the others as it ends */
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rd_file *f = c->tab[b]; f; f = f->hnext)
            if (f->opf && !f->opf->closed) {
                f->opf->closed = true;
                uv_close((uv_handle_t *)&f->opf->timer, NULL);
            }
    /* queued fetches never started */
    while (c->xq) {
        rd_xf *xf = c->xq;
        c->xq = xf->qnext;
        xf_finish(xf, -ECANCELED);
    }
    c->xqtail = &c->xq;
    /* fetches waiting for a peer's end now */
    for (rd_xf *xf = c->xfs; xf;)
        if (xf->parked) {
            xf->parked = false;
            xf_finish(xf, -ECANCELED);
            xf = c->xfs;
        } else
            xf = xf->next;
    /* peer fetches in flight end with -ECANCELED (their callback, later) */
    for (rd_xf *xf = c->xfs; xf; xf = xf->next)
        if (xf->pop)
            zn_peer_op_cancel(xf->pop);
    /* cells waiting on a backoff timer end now */
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rd_file *f = c->tab[b]; f; f = f->hnext) {
            rd_cell *cl = f->cells;
            while (cl) {
                rd_cell *nx = cl->next;
                if (uv_is_active((uv_handle_t *)&cl->timer)) {
                    uv_timer_stop(&cl->timer);
                    cell_done(cl, -ECANCELED);
                    nx = f->cells; /* the list changed: start over */
                }
                cl = nx;
            }
        }
    /* in-flight requests complete with -ECANCELED */
    zn_hub_free(c->hub);
    zn_http_free(c->http);
    c->hub = NULL;
    c->http = NULL;
}

void zf_read_free(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    if (!c)
        return;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rd_file *f = c->tab[b], *nx; f; f = nx) {
            nx = f->hnext;
            free(f->ext);
            free(f->done);
            free(f->blob);
            if (f->dl) {
                for (int i = 0; i < BIG_DEPTH; i++)
                    free(f->dl->parts[i].buf);
                EVP_MD_CTX_free(f->dl->md);
                free(f->dl);
            }
            if (f->opf) {
                zf_tensor_map_free(&f->opf->map);
                free(f->opf->snap);
                free(f->opf);
            }
            free(f);
        }
    free(c->endpoint);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth));
        free(c->auth);
    }
    free(c);
    fs->read_ctx = NULL;
    fs->read_blob = NULL;
}

zn_hub *zf_read_hub(zf_fs *fs)
{
    rd_ctx *c = fs->read_ctx;
    return c && !c->stopping ? c->hub : NULL;
}
