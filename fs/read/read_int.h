/* read_int.h — what the rooms of the read path (fs/read/) share: the
 * records (a file, a request, a window, an xorb range fetch, the context),
 * the tuning constants and a few small helpers.  Not for the rest of fs/:
 * the read path's public interface is in zfs.h (zf_read_*, zf_fill_*).
 *
 * Everything here is owned by the loop thread except the work items, which
 * carry what they need to the libuv pool and come back in after_work.
 * Errors are negative errno values; a FUSE read ends with EIO when its
 * bytes cannot be had (offline, fetch failed), never short.
 *
 * The rooms, each behind its header, and who may call whom (a room calls
 * only rooms below it; the ways back up are the function pointers in
 * rd_ctx, rd_ops and rd_waiter_ops, checked by tests/check_layers.py):
 *   ctx      zf_read_init/stop/free: the context, the hooks     (top)
 *   api      the public requests: FUSE, HTTP, stored, check, label, list
 *   openpf   prefetch at open (safetensors, GGUF)
 *   fill     background fills (pull, prefetch at open)
 *   route    where a request goes: blob, big file, map, store, windows
 *   prefetch sequential readers and the windows ahead of them
 *   store_read  answers from the store on the pool
 *   big      large non-Xet files as windows of synthetic xorbs
 *   blob     small non-Xet files, whole in memory
 *   window   8 MiB windows: reconstruction, retries, read deadlines
 *   tspan    how wide a reader's miss in a tensor file is fetched
 *   xfetch   xorb range fetches: join, decode, check, early replies, put
 *   source   where bytes come from: peers, parking, CDN, races, holding
 *   resolve  GETs of {endpoint}/{repo}/resolve/{commit}/{path}
 *   fmap     the extent map of a Xet file and its persistence
 *   file     the table of files, the blob LRU
 *   req      the request record and its kinds' ops, pins, metrics (bottom)
 *   tokens   Xet read tokens ahead of the first read (alone) */
#ifndef ZESTFS_FS_READ_INT_H
#define ZESTFS_FS_READ_INT_H
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
#include "options.h"
#include "read.h"
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
#define REPARKS_SLOW 3     /* a background peer fetch past its deadline: the peers again, this often */
#define HOLD_MAX_MS 20000  /* a fill's CDN transfer is held at most this long in all */
#define FILL_XF_FG 2       /* fill fetches started at once while reads use the CDN ... */
#define FG_RECENT_MS 1000  /* ... or did this recently */
#define LEARN_PER_FILE 64  /* window reconstructions learned ahead per file (512 MiB around a miss) */
#define LEARN_MAX 1024     /* ... in all (LRU); and at most LEARN_BYTES of them */
#define LEARN_BYTES (16ull << 20)
#define LEARN_INFLIGHT 8   /* reconstructions asked ahead at once */
#define LEARN_TTL_S 300    /* a learned one whose URLs name no Expires is used this long */

typedef struct rd_ctx rd_ctx;
typedef struct rd_file rd_file;
typedef struct rd_read rd_read;
typedef struct rd_cell rd_cell;
typedef struct rd_xf rd_xf;
typedef struct rd_pin rd_pin;
typedef struct rd_openpf rd_openpf;
typedef struct big_dl big_dl;
typedef struct rd_learn rd_learn;

/* A waiter of an xorb range fetch (a window, window.c): told when it ends
 * and asked who waits, so the fetch knows nothing of windows or reads. */
enum {
    RD_W_FG = 1,               /* a read that is not a fill waits */
    RD_W_AHEAD = 2,            /* a sequential reader's prefetch wants it */
    RD_W_FILL = 4,             /* a fill waits */
    RD_W_CACHED_FILL = 8,      /* ... one that is not a pull's */
};

typedef struct rd_waiter_ops {
    /* the fetch ended: err, or 0 and its stored run pinned (pin may be NULL) */
    void (*done)(void *ud, int err, rd_pin *pin);
    unsigned (*want)(const void *ud); /* RD_W_* */
    /* the run is decoded and checked, in memory: answer what it can (rd_xf_early);
     * negative errno stops the walk */
    int (*early)(void *ud, rd_xf *xf);
} rd_waiter_ops;

typedef struct rd_waiter {
    const rd_waiter_ops *ops;
    void *ud;
} rd_waiter;

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
struct rd_pin {
    zc_ref ref;
    int refs;
};

typedef struct rd_pins {
    rd_pin **v;
    size_t n, cap;
} rd_pins;

typedef struct rd_stream { /* a sequential reader of a file */
    uint64_t first, next, run, used; /* it has read [first, next); last used (f->tick) */
    uint64_t born;             /* f->tick when it began */
    uint64_t cross;            /* tensor boundaries it read across, in the order it read
                                  (tensor files; counted once `counted`) */
    bool counted;
    uint64_t pf;               /* prefetch asked up to here (tensor files) */
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
    rd_learn *learn;           /* window reconstructions learned ahead (window.c) */
    unsigned nlearn;
    const zf_tensor_map *tmap; /* its tensors, while open and parsed (openpf.c owns it) */
};

/* A request: a FUSE read, an internal read (HTTP access server, stored
 * only, a check), a label or a listing of a file's xorbs, or a piece of a
 * fill.  What differs between them is the kind's rd_ops (req.h); the record
 * is the same.  A kind that needs more embeds rd_read first in its own
 * record (api.c, fill.c) and allocates it with rd_read_new. */
typedef struct rd_ops rd_ops;

struct rd_read {
    const rd_ops *ops;
    rd_ctx *c;
    rd_file *f;
    fuse_req_t req;            /* the FUSE request (RD_FUSE), answered from the pool or early */
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
    uint64_t t0;               /* uv_hrtime at arrival (0: not timed) */
    uint8_t *out;              /* its bytes, from the store read (RD_STORE_COPY) */
    uint64_t ra_len;           /* store read: also hint this many bytes DISK_RA ahead */
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
    bool ahead_asked;          /* the windows around it are being learned */
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
    rd_file *f;                /* the file of the first waiter (for the peers' swarm) */
    rd_waiter *w;              /* who waits for it (cells): told through their ops */
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
    /* the ways back up, registered at zf_read_init (ctx.c) so that no room
     * calls one that calls it */
    void (*resume)(rd_read *r);          /* route: a read whose map or windows are ready */
    void (*big_window)(rd_cell *cl);     /* big: a window of a large non-Xet file again */
    void (*xf_body)(rd_xf *xf, int err); /* xfetch: a source has xf's body (or failed) */
    uint64_t race_after_ms;    /* RACE_AFTER_MS; 0 after the CDN won a race, until a peer
                                  fetch finishes unraced */
    /* window reconstructions learned ahead of their misses (window.c) */
    rd_learn *lq, **lqtail;    /* queued, not asked yet */
    rd_learn *lru_old, *lru_new; /* learned, oldest first */
    unsigned nlearn, learn_asking;
    uint64_t learn_bytes;
};

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t umin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Serialized map: "ZFMAP001", u64 n, n x {u64 off, u64 len, xorb[32], u32 cs, u32 ce}. */
#define MAP_MAGIC "ZFMAP001"
#define MAP_REC 56


static inline int push_ptr(void ***v, size_t *n, size_t *cap, void *p)
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

#endif
