/* cache.c — the zestfs chunk store; design in cache.h. */
#include "cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SEG_MAGIC "ZESTSEG1"
#define META_MAGIC "ZESTMET1"
#define FORMAT_TEXT "zestfs-store 1\n"
#define SEG_VERSION 1u
#define SEG_FIXED 72u   /* bytes before the per-chunk table */
#define SEG_ENTRY 36u   /* u32 length + 32-byte hash */
#define META_FIXED 24u
#define META_KEY_MAX 4096u
#define META_MAX (1u << 30)
#define VERIFY_BUF (1u << 20)
#define ACCT_UNIT 4096u
#define DEFAULT_FD_LIMIT 256u
#define PATH_LEN 128

/* Keys of the keyed BLAKE3 checksums (any fixed 32 bytes; these spell it). */
static const uint8_t SEG_CK_KEY[32] = "zestfs store segment header v1!";
static const uint8_t META_CK_KEY[32] = "zestfs store metadata blob v1!!";
static const uint8_t META_NAME_KEY[32] = "zestfs store metadata name v1!!";

enum { SEG_UNVERIFIED, SEG_VERIFYING, SEG_OK, SEG_BAD };

struct dlink {
    struct dlink *prev, *next;
};

#define LINK_OWNER(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

struct zc_seg {
    struct zc_xorb *x;     /* NULL once out of the index */
    xet_hash xorb;
    uint32_t start, end;
    uint64_t gen;
    uint64_t acct;         /* accounted bytes */
    int64_t stamp;         /* recency at zc_open (ns) */
    uint32_t hdr_len;
    uint32_t *off;         /* end-start+1 cumulative decoded offsets, once SEG_OK */
    int state;
    int fd;                /* -1 when closed */
    uint32_t pins;
    bool doomed;           /* out of the index and unlinked; freed at last unpin */
    bool in_lru, in_fdlru;
    struct dlink lru, fdl;
};

struct zc_xorb {
    xet_hash h;
    struct zc_xorb *next;  /* hash chain */
    struct zc_seg **v;     /* sorted by start (and so by end) */
    uint32_t n, cap;
    bool label;
};

struct zc_store {
    int dfd, lockfd;
    pthread_mutex_t mu;
    pthread_cond_t vcond;
    struct zc_xorb **tab;
    size_t nbuckets, nxorbs;
    struct dlink lru;      /* evictable segments, most recent first */
    struct dlink fdl;      /* unpinned segments with an open fd, most recent first */
    uint64_t cap, used, lru_bytes, inflight, doomed;
    uint64_t nsegs, nfds, nfdl, fd_limit;
    uint64_t gen, pins;
    uint64_t puts, put_bytes, evictions, evicted_bytes, corrupt, enospc_retries;
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t acct_of(uint64_t size)
{
    return (size + ACCT_UNIT - 1) / ACCT_UNIT * ACCT_UNIT;
}

static uint32_t seg_hdr_len(uint32_t n)
{
    return SEG_FIXED + SEG_ENTRY * n + XET_HASH_LEN;
}

static void dl_init(struct dlink *h)
{
    h->prev = h->next = h;
}
static void dl_del(struct dlink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}
static void dl_push_front(struct dlink *h, struct dlink *l)
{
    l->next = h->next;
    l->prev = h;
    h->next->prev = l;
    h->next = l;
}

static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080 /* Linux 6.14: uncached buffered I/O */
#endif

/* pread_full whose newly cached pages are dropped after (RWF_DONTCACHE);
 * a plain pread where the kernel or the fs does not have it. */
static ssize_t pread_dontcache(int fd, void *buf, size_t n, uint64_t off)
{
    static int unsupported; /* racy but monotonic: once set, stays set */
    size_t done = 0;
    while (done < n && !unsupported) {
        struct iovec v = {(char *)buf + done, n - done};
        ssize_t r = preadv2(fd, &v, 1, (off_t)(off + done), RWF_DONTCACHE);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EOPNOTSUPP && errno != EINVAL)
                return -errno;
            unsupported = 1;
            break;
        }
        if (r == 0)
            return (ssize_t)done;
        done += (size_t)r;
    }
    if (done == n)
        return (ssize_t)done;
    ssize_t r = pread_full(fd, (char *)buf + done, n - done, off + done);
    return r < 0 ? r : (ssize_t)(done + (size_t)r);
}

static int pwrite_full(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    while (n) {
        ssize_t r = pwrite(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        off += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void seg_relpath(const struct zc_seg *g, char out[PATH_LEN])
{
    char hs[XET_HASH_STR_LEN + 1];
    xet_hash_to_string(&g->xorb, hs);
    snprintf(out, PATH_LEN, "xorbs/%.2s/%s.%" PRIu32 "-%" PRIu32 ".%" PRIu64, hs, hs, g->start,
             g->end, g->gen);
}

/* Deferred work: closes, unlinks and frees decided under the lock, done after. */
struct reap_item {
    int fd;
    struct zc_seg *free_seg;
    char path[PATH_LEN];
};
struct reap {
    struct reap_item *v;
    size_t n, cap;
    struct reap_item inl[8];
};

static void reap_init(struct reap *r)
{
    r->v = r->inl;
    r->n = 0;
    r->cap = 8;
}

static void seg_free(struct zc_seg *g)
{
    free(g->off);
    free(g);
}

static void reap_item_run(zc_store *s, struct reap_item *it)
{
    if (it->fd >= 0)
        close(it->fd);
    if (it->path[0])
        unlinkat(s->dfd, it->path, 0);
    if (it->free_seg)
        seg_free(it->free_seg);
}

/* Queue (or, if memory is short, do at once) a close/unlink/free. */
static void reap_add(zc_store *s, struct reap *r, int fd, const char *path, struct zc_seg *fr)
{
    if (r->n == r->cap) {
        size_t nc = r->cap * 2;
        struct reap_item *nv = malloc(nc * sizeof *nv);
        if (!nv) {
            struct reap_item it = {fd, fr, {0}};
            if (path)
                snprintf(it.path, PATH_LEN, "%s", path);
            reap_item_run(s, &it);
            return;
        }
        memcpy(nv, r->v, r->n * sizeof *nv);
        if (r->v != r->inl)
            free(r->v);
        r->v = nv;
        r->cap = nc;
    }
    struct reap_item *it = &r->v[r->n++];
    it->fd = fd;
    it->free_seg = fr;
    it->path[0] = 0;
    if (path)
        snprintf(it->path, PATH_LEN, "%s", path);
}

static void reap_run(zc_store *s, struct reap *r)
{
    for (size_t i = 0; i < r->n; i++)
        reap_item_run(s, &r->v[i]);
    if (r->v != r->inl)
        free(r->v);
    reap_init(r);
}

/* ---- xorb table ---------------------------------------------------------- */

static size_t xorb_bucket(const zc_store *s, const xet_hash *h)
{
    uint64_t a = xet_le64(h->b), b = xet_le64(h->b + 8), c = xet_le64(h->b + 16), d = xet_le64(h->b + 24);
    uint64_t k = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ (c * 0xc2b2ae3d27d4eb4full) ^ d);
    k ^= k >> 31;
    k *= 0x94d049bb133111ebull;
    k ^= k >> 29;
    return (size_t)(k & (s->nbuckets - 1));
}

static struct zc_xorb *xorb_find(zc_store *s, const xet_hash *h)
{
    for (struct zc_xorb *x = s->tab[xorb_bucket(s, h)]; x; x = x->next)
        if (xet_hash_eq(&x->h, h))
            return x;
    return NULL;
}

static struct zc_xorb *xorb_get(zc_store *s, const xet_hash *h)
{
    struct zc_xorb *x = xorb_find(s, h);
    if (x)
        return x;
    if (s->nxorbs >= s->nbuckets) {
        size_t nb = s->nbuckets * 2;
        struct zc_xorb **nt = calloc(nb, sizeof *nt);
        if (nt) {
            struct zc_xorb **old = s->tab;
            size_t onb = s->nbuckets;
            s->tab = nt;
            s->nbuckets = nb;
            for (size_t i = 0; i < onb; i++)
                for (struct zc_xorb *y = old[i], *nx; y; y = nx) {
                    nx = y->next;
                    size_t b = xorb_bucket(s, &y->h);
                    y->next = nt[b];
                    nt[b] = y;
                }
            free(old);
        } /* else: keep the longer chains */
    }
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->h = *h;
    size_t b = xorb_bucket(s, h);
    x->next = s->tab[b];
    s->tab[b] = x;
    s->nxorbs++;
    return x;
}

static void xorb_maybe_free(zc_store *s, struct zc_xorb *x)
{
    if (x->n || x->label)
        return;
    struct zc_xorb **pp = &s->tab[xorb_bucket(s, &x->h)];
    while (*pp != x)
        pp = &(*pp)->next;
    *pp = x->next;
    free(x->v);
    free(x);
    s->nxorbs--;
}

/* Index of the last segment with start <= c, or -1. */
static long seg_pos(const struct zc_xorb *x, uint32_t c)
{
    long lo = 0, hi = (long)x->n; /* first with start > c */
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (x->v[mid]->start <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* The segment that contains [a, b), if any. */
static struct zc_seg *seg_container(const struct zc_xorb *x, uint32_t a, uint32_t b)
{
    if (!x)
        return NULL;
    long i = seg_pos(x, a);
    return (i >= 0 && x->v[i]->end >= b) ? x->v[i] : NULL;
}

static int xorb_insert_at(struct zc_xorb *x, uint32_t i, struct zc_seg *g)
{
    if (x->n == x->cap) {
        uint32_t nc = x->cap ? x->cap * 2 : 4;
        struct zc_seg **nv = realloc(x->v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        x->v = nv;
        x->cap = nc;
    }
    memmove(&x->v[i + 1], &x->v[i], (x->n - i) * sizeof *x->v);
    x->v[i] = g;
    x->n++;
    g->x = x;
    return 0;
}

static void xorb_remove(struct zc_xorb *x, struct zc_seg *g)
{
    long i = seg_pos(x, g->start);
    while (i >= 0 && x->v[i] != g)
        i--; /* equal starts cannot coexist, so this is at most one step */
    if (i < 0)
        abort();
    memmove(&x->v[i], &x->v[i + 1], (x->n - (uint32_t)i - 1) * sizeof *x->v);
    x->n--;
}

/* ---- LRU, fds, pins (all under s->mu) ------------------------------------ */

static bool seg_evictable(const struct zc_seg *g)
{
    return g->x && !g->pins && !g->x->label;
}

static void lru_off(zc_store *s, struct zc_seg *g)
{
    if (g->in_lru) {
        dl_del(&g->lru);
        g->in_lru = false;
        s->lru_bytes -= g->acct;
    }
}

static void lru_front(zc_store *s, struct zc_seg *g)
{
    lru_off(s, g);
    if (seg_evictable(g)) {
        dl_push_front(&s->lru, &g->lru);
        g->in_lru = true;
        s->lru_bytes += g->acct;
    }
}

static void fdl_off(zc_store *s, struct zc_seg *g)
{
    if (g->in_fdlru) {
        dl_del(&g->fdl);
        g->in_fdlru = false;
        s->nfdl--;
    }
}

static void fdl_trim(zc_store *s, struct reap *r)
{
    while (s->nfdl > s->fd_limit) {
        struct zc_seg *g = LINK_OWNER(s->fdl.prev, struct zc_seg, fdl);
        fdl_off(s, g);
        reap_add(s, r, g->fd, NULL, NULL);
        g->fd = -1;
        s->nfds--;
    }
}

/* Take a segment out of the index, unlink its file; free it now or, when
 * pinned, at its last unpin. */
static void seg_doom(zc_store *s, struct zc_seg *g, struct reap *r, bool keep_xorb)
{
    char path[PATH_LEN];
    seg_relpath(g, path);
    struct zc_xorb *x = g->x;
    lru_off(s, g);
    xorb_remove(x, g);
    g->x = NULL;
    s->used -= g->acct;
    s->nsegs--;
    if (!keep_xorb)
        xorb_maybe_free(s, x);
    if (g->pins) {
        g->doomed = true;
        s->doomed += g->acct;
        reap_add(s, r, -1, path, NULL);
    } else {
        fdl_off(s, g);
        if (g->fd >= 0)
            s->nfds--;
        reap_add(s, r, g->fd, path, g);
        g->fd = -1;
    }
}

static void evict_one(zc_store *s, struct reap *r)
{
    struct zc_seg *g = LINK_OWNER(s->lru.prev, struct zc_seg, lru);
    s->evictions++;
    s->evicted_bytes += g->acct;
    seg_doom(s, g, r, false);
}

/* Evict LRU segments until used + in flight + extra fits the cap. */
static void evict_to_cap(zc_store *s, uint64_t extra, struct reap *r)
{
    while (s->used + s->inflight + s->doomed + extra > s->cap && s->lru.next != &s->lru)
        evict_one(s, r);
}

/* Evict at least `need` bytes; returns how many segments went. */
static unsigned evict_bytes(zc_store *s, uint64_t need, struct reap *r)
{
    unsigned k = 0;
    uint64_t freed = 0;
    while (freed < need && s->lru.next != &s->lru) {
        freed += LINK_OWNER(s->lru.prev, struct zc_seg, lru)->acct;
        evict_one(s, r);
        k++;
    }
    return k;
}

static void seg_pin(zc_store *s, struct zc_seg *g)
{
    if (g->pins++ == 0) {
        lru_off(s, g);
        fdl_off(s, g);
    }
    s->pins++;
}

static void seg_unpin(zc_store *s, struct zc_seg *g, struct reap *r)
{
    s->pins--;
    if (--g->pins)
        return;
    if (g->doomed) {
        s->doomed -= g->acct;
        if (g->fd >= 0)
            s->nfds--;
        reap_add(s, r, g->fd, NULL, g);
        g->fd = -1;
        return;
    }
    lru_front(s, g);
    if (g->fd >= 0) {
        dl_push_front(&s->fdl, &g->fdl);
        g->in_fdlru = true;
        s->nfdl++;
        fdl_trim(s, r);
    }
    evict_to_cap(s, 0, r);
}

static int seg_open_fd(zc_store *s, struct zc_seg *g)
{
    if (g->fd >= 0)
        return 0;
    char path[PATH_LEN];
    seg_relpath(g, path);
    int fd = openat(s->dfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && s->nfdl) {
        /* out of descriptors: give back every cached one (rare; cheap closes) */
        while (s->nfdl) {
            struct zc_seg *o = LINK_OWNER(s->fdl.prev, struct zc_seg, fdl);
            fdl_off(s, o);
            close(o->fd);
            o->fd = -1;
            s->nfds--;
        }
        fd = openat(s->dfd, path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    g->fd = fd;
    s->nfds++;
    return 0;
}

static void ref_fill(zc_ref *ref, zc_store *s, struct zc_seg *g, uint32_t chunk)
{
    ref->store = s;
    ref->seg = g;
    ref->fd = g->fd;
    ref->chunk = chunk;
    ref->seg_start = g->start;
    ref->seg_end = g->end;
    ref->ready = g->state == SEG_OK;
    if (ref->ready) {
        uint32_t k = chunk - g->start, n = g->end - g->start;
        ref->off = g->hdr_len + (uint64_t)g->off[k];
        ref->len = g->off[k + 1] - g->off[k];
        ref->run_bytes = (uint64_t)g->off[n] - g->off[k];
    } else {
        ref->off = 0;
        ref->len = 0;
        ref->run_bytes = 0;
    }
}

/* ---- open / close ------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return -EINVAL;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -errno;
            buf[i] = c;
        }
    }
    return 0;
}

static int mkdirat_ok(int dfd, const char *name)
{
    if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Remove every entry of dir (plain files; temp files are never directories). */
static void clear_dir(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(fd, e->d_name, 0);
    closedir(d);
}

static int check_format(int dfd)
{
    char buf[64];
    int fd = openat(dfd, "FORMAT", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = pread_full(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (n < 0)
            return (int)n;
        buf[n] = 0;
        return strcmp(buf, FORMAT_TEXT) ? -EPROTONOSUPPORT : 0;
    }
    if (errno != ENOENT)
        return -errno;
    fd = openat(dfd, "tmp/FORMAT", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_full(fd, FORMAT_TEXT, strlen(FORMAT_TEXT));
    if (!rc && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (!rc && renameat(dfd, "tmp/FORMAT", dfd, "FORMAT") < 0)
        rc = -errno;
    return rc;
}

struct found {
    xet_hash h;
    uint32_t start, end;
    uint64_t gen, size;
    int64_t stamp;
};

/* "<64 hex>.<start>-<end>.<gen>" in directory <first two chars>. */
static bool parse_seg_name(const char *name, const char *dir2, struct found *f)
{
    if (strlen(name) < XET_HASH_STR_LEN + 6 || name[XET_HASH_STR_LEN] != '.')
        return false;
    if (strncmp(name, dir2, 2) != 0)
        return false;
    for (int i = 0; i < XET_HASH_STR_LEN; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false; /* only the canonical lowercase form */
    }
    if (xet_hash_from_string(name, &f->h) < 0)
        return false;
    const char *p = name + XET_HASH_STR_LEN + 1;
    unsigned long long v[3];
    const char seps[3] = {'-', '.', 0};
    for (int i = 0; i < 3; i++) {
        if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
            return false;
        char *e;
        errno = 0;
        v[i] = strtoull(p, &e, 10);
        if (errno || *e != seps[i])
            return false;
        p = e + (i < 2);
    }
    if (v[0] >= v[1] || v[1] > UINT32_MAX || v[1] - v[0] > XET_XORB_MAX_CHUNKS)
        return false;
    f->start = (uint32_t)v[0];
    f->end = (uint32_t)v[1];
    f->gen = v[2];
    return true;
}

static int found_cmp(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    int c = memcmp(x->h.b, y->h.b, XET_HASH_LEN);
    if (c)
        return c;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end > y->end ? -1 : 1; /* longest first */
    return x->gen > y->gen ? -1 : (x->gen < y->gen);
}

static int seg_stamp_cmp(const void *a, const void *b)
{
    const struct zc_seg *x = *(struct zc_seg *const *)a, *y = *(struct zc_seg *const *)b;
    if (x->stamp != y->stamp)
        return x->stamp < y->stamp ? -1 : 1;
    return x->gen < y->gen ? -1 : (x->gen > y->gen);
}

static int64_t ts_ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Collect every valid segment file; delete invalid ones. */
static int scan_segments(zc_store *s, struct found **out, size_t *nout)
{
    struct found *v = NULL;
    size_t n = 0, cap = 0;
    int xfd = openat(s->dfd, "xorbs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (xfd < 0)
        return -errno;
    DIR *xd = fdopendir(xfd);
    if (!xd) {
        close(xfd);
        return -ENOMEM;
    }
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(xd))) {
        const char *d2 = de->d_name;
        if (strlen(d2) != 2 || !isxdigit((unsigned char)d2[0]) ||
            !isxdigit((unsigned char)d2[1]))
            continue;
        int sfd = openat(xfd, d2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd < 0)
            continue;
        DIR *sd = fdopendir(sfd);
        if (!sd) {
            close(sfd);
            continue;
        }
        struct dirent *fe;
        while ((fe = readdir(sd))) {
            if (!strcmp(fe->d_name, ".") || !strcmp(fe->d_name, ".."))
                continue;
            struct found f;
            struct stat st;
            if (fstatat(sfd, fe->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            if (!S_ISREG(st.st_mode))
                continue; /* not ours to delete */
            if (!parse_seg_name(fe->d_name, d2, &f) ||
                (uint64_t)st.st_size < seg_hdr_len(f.end - f.start) + (f.end - f.start)) {
                unlinkat(sfd, fe->d_name, 0);
                continue;
            }
            f.size = (uint64_t)st.st_size;
            int64_t a = ts_ns(st.st_atim), m = ts_ns(st.st_mtim);
            f.stamp = a > m ? a : m;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                struct found *nv = realloc(v, nc * sizeof *nv);
                if (!nv) {
                    rc = -ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            v[n++] = f;
        }
        closedir(sd);
    }
    closedir(xd);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *nout = n;
    return 0;
}

static int build_index(zc_store *s, struct reap *r)
{
    struct found *f = NULL;
    size_t n = 0;
    int rc = scan_segments(s, &f, &n);
    if (rc)
        return rc;
    if (n)
        qsort(f, n, sizeof *f, found_cmp);
    struct zc_seg **all = n ? malloc(n * sizeof *all) : NULL;
    if (n && !all) {
        free(f);
        return -ENOMEM;
    }
    size_t kept = 0;
    struct zc_xorb *x = NULL;
    uint32_t max_end = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i].gen >= s->gen)
            s->gen = f[i].gen + 1;
        if (!x || !xet_hash_eq(&x->h, &f[i].h)) {
            x = xorb_get(s, &f[i].h);
            if (!x) {
                rc = -ENOMEM;
                break;
            }
            max_end = 0;
        }
        struct zc_seg *g = calloc(1, sizeof *g);
        if (!g) {
            rc = -ENOMEM;
            break;
        }
        g->xorb = f[i].h;
        g->start = f[i].start;
        g->end = f[i].end;
        g->gen = f[i].gen;
        g->fd = -1;
        if (x->n && f[i].end <= max_end) { /* contained in a kept one: redundant */
            char path[PATH_LEN];
            seg_relpath(g, path);
            reap_add(s, r, -1, path, g);
            continue;
        }
        max_end = f[i].end;
        g->acct = acct_of(f[i].size);
        g->stamp = f[i].stamp;
        g->hdr_len = seg_hdr_len(g->end - g->start);
        g->state = SEG_UNVERIFIED;
        dl_init(&g->lru);
        dl_init(&g->fdl);
        if (xorb_insert_at(x, x->n, g)) {
            free(g);
            rc = -ENOMEM;
            break;
        }
        s->used += g->acct;
        s->nsegs++;
        all[kept++] = g;
    }
    free(f);
    /* Recency: oldest first onto the front, so the newest ends up in front. */
    if (kept)
        qsort(all, kept, sizeof *all, seg_stamp_cmp);
    for (size_t i = 0; i < kept; i++)
        lru_front(s, all[i]);
    free(all);
    return rc;
}

static void store_free(zc_store *s)
{
    for (size_t b = 0; s->tab && b < s->nbuckets; b++)
        for (struct zc_xorb *x = s->tab[b], *nx; x; x = nx) {
            nx = x->next;
            for (uint32_t i = 0; i < x->n; i++) {
                if (x->v[i]->fd >= 0)
                    close(x->v[i]->fd);
                seg_free(x->v[i]);
            }
            free(x->v);
            free(x);
        }
    free(s->tab);
    if (s->dfd >= 0)
        close(s->dfd);
    if (s->lockfd >= 0)
        close(s->lockfd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->vcond);
    free(s);
}

int zc_open(const char *dir, uint64_t cap_bytes, zc_store **out)
{
    *out = NULL;
    if (!dir || !*dir)
        return -EINVAL;
    int rc = mkdir_p(dir);
    if (rc)
        return rc;
    zc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->dfd = s->lockfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->vcond, NULL);
    dl_init(&s->lru);
    dl_init(&s->fdl);
    s->cap = cap_bytes;
    s->fd_limit = DEFAULT_FD_LIMIT;
    s->nbuckets = 64;
    s->tab = calloc(s->nbuckets, sizeof *s->tab);
    if (!s->tab) {
        store_free(s);
        return -ENOMEM;
    }
    s->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dfd < 0) {
        rc = -errno;
        store_free(s);
        return rc;
    }
    s->lockfd = openat(s->dfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        store_free(s);
        return rc;
    }
    if ((rc = mkdirat_ok(s->dfd, "tmp")) || (rc = mkdirat_ok(s->dfd, "xorbs")) ||
        (rc = mkdirat_ok(s->dfd, "meta"))) {
        store_free(s);
        return rc;
    }
    clear_dir(s->dfd, "tmp");
    if ((rc = check_format(s->dfd))) {
        store_free(s);
        return rc;
    }
    struct reap r;
    reap_init(&r);
    rc = build_index(s, &r);
    if (!rc)
        evict_to_cap(s, 0, &r);
    reap_run(s, &r);
    if (rc) {
        store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int zc_close(zc_store *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->mu);
    bool busy = s->pins != 0;
    pthread_mutex_unlock(&s->mu);
    if (busy)
        return -EBUSY;
    store_free(s);
    return 0;
}

void zc_set_fd_limit(zc_store *s, unsigned n)
{
    struct reap r;
    reap_init(&r);
    pthread_mutex_lock(&s->mu);
    s->fd_limit = n ? n : 1;
    fdl_trim(s, &r);
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
}

void zc_set_cap(zc_store *s, uint64_t cap_bytes)
{
    struct reap r;
    reap_init(&r);
    pthread_mutex_lock(&s->mu);
    s->cap = cap_bytes;
    evict_to_cap(s, 0, &r);
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
}

void zc_get_stats(zc_store *s, zc_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = (zc_stats){
        .cap = s->cap,
        .used = s->used,
        .pinned = s->used - s->lru_bytes,
        .inflight = s->inflight,
        .doomed = s->doomed,
        .segments = s->nsegs,
        .xorbs = s->nxorbs,
        .open_fds = s->nfds,
        .puts = s->puts,
        .put_bytes = s->put_bytes,
        .evictions = s->evictions,
        .evicted_bytes = s->evicted_bytes,
        .corrupt = s->corrupt,
        .enospc_retries = s->enospc_retries,
    };
    pthread_mutex_unlock(&s->mu);
}

/* ---- lookup / pin ------------------------------------------------------- */

int zc_lookup(zc_store *s, const xet_hash *xorb, uint32_t chunk, zc_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    ref->fd = -1;
    struct reap r;
    reap_init(&r);
    int rc;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct zc_xorb *x = xorb_find(s, xorb);
        long i = x ? seg_pos(x, chunk) : -1;
        if (i < 0 || x->v[i]->end <= chunk) {
            rc = -ENOENT;
            break;
        }
        struct zc_seg *g = x->v[i];
        rc = seg_open_fd(s, g);
        if (rc == -ENOENT) { /* deleted behind our back: forget it */
            seg_doom(s, g, &r, false);
            continue;
        }
        if (rc)
            break;
        seg_pin(s, g);
        ref_fill(ref, s, g, chunk);
        rc = ref->ready ? 0 : -EAGAIN;
        fdl_trim(s, &r);
        break;
    }
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    return rc;
}

void zc_unpin(zc_ref *ref)
{
    if (!ref || !ref->seg)
        return;
    zc_store *s = ref->store;
    struct reap r;
    reap_init(&r);
    pthread_mutex_lock(&s->mu);
    seg_unpin(s, ref->seg, &r);
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    ref->seg = NULL;
    ref->fd = -1;
    ref->ready = false;
}

long zc_missing(zc_store *s, const xet_hash *xorb, uint32_t start, uint32_t end,
                zc_range *out, size_t max)
{
    if (start > end)
        return -EINVAL;
    long k = 0;
    uint32_t pos = start;
    pthread_mutex_lock(&s->mu);
    struct zc_xorb *x = xorb_find(s, xorb);
    if (x) {
        long i = seg_pos(x, start);
        if (i < 0)
            i = 0;
        for (; (uint32_t)i < x->n && pos < end; i++) {
            struct zc_seg *g = x->v[i];
            if (g->start >= end)
                break;
            if (g->end <= pos)
                continue;
            if (g->start > pos) {
                if ((size_t)k < max)
                    out[k] = (zc_range){pos, g->start};
                k++;
            }
            pos = g->end;
        }
    }
    if (pos < end) {
        if ((size_t)k < max)
            out[k] = (zc_range){pos, end};
        k++;
    }
    pthread_mutex_unlock(&s->mu);
    return k;
}

int zc_label_pin(zc_store *s, const xet_hash *xorb, bool on)
{
    struct reap r;
    reap_init(&r);
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    struct zc_xorb *x = on ? xorb_get(s, xorb) : xorb_find(s, xorb);
    if (!x) {
        rc = on ? -ENOMEM : 0;
    } else if (x->label != on) {
        x->label = on;
        for (uint32_t i = 0; i < x->n; i++)
            lru_front(s, x->v[i]); /* on: leaves the LRU; off: joins it if unpinned */
        if (!on) {
            evict_to_cap(s, 0, &r);
            xorb_maybe_free(s, x);
        }
    }
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    return rc;
}

int zc_drop_xorb(zc_store *s, const xet_hash *xorb, uint64_t *freed)
{
    struct reap r;
    reap_init(&r);
    int rc = 0;
    uint64_t n = 0;
    pthread_mutex_lock(&s->mu);
    struct zc_xorb *x = xorb_find(s, xorb);
    if (x && x->label) {
        rc = -EBUSY;
    } else if (x) {
        while (x->n) {
            struct zc_seg *g = x->v[x->n - 1];
            n += g->acct;
            s->evictions++;
            s->evicted_bytes += g->acct;
            seg_doom(s, g, &r, true);
        }
        xorb_maybe_free(s, x);
    }
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    if (freed)
        *freed = n;
    return rc;
}

/* ---- verification --------------------------------------------------------- */

/* Check a segment file against its name: header fields and checksum, size,
 * every chunk's hash.  On success *offp = cumulative decoded offsets. */
static int check_segment(int fd, const xet_hash *xorb, uint32_t start, uint32_t end,
                         uint32_t **offp)
{
    uint32_t n = end - start, hl = seg_hdr_len(n);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size < hl)
        return -EBADMSG;
    uint8_t *h = malloc(hl);
    uint32_t *off = malloc((n + 1) * sizeof *off);
    uint8_t *buf = malloc(VERIFY_BUF);
    int rc = 0;
    if (!h || !off || !buf) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t got = pread_full(fd, h, hl, 0);
    if (got < 0) {
        rc = (int)got;
        goto out;
    }
    xet_hash ck;
    if ((uint32_t)got != hl || memcmp(h, SEG_MAGIC, 8) || xet_le32(h + 8) != SEG_VERSION ||
        xet_le32(h + 12) != hl || memcmp(h + 16, xorb->b, XET_HASH_LEN) ||
        xet_le32(h + 48) != start || xet_le32(h + 52) != end || xet_le32(h + 64) != 0 ||
        xet_le32(h + 68) != 0) {
        rc = -EBADMSG;
        goto out;
    }
    xet_keyed_hash(SEG_CK_KEY, h, hl - XET_HASH_LEN, &ck);
    if (memcmp(ck.b, h + hl - XET_HASH_LEN, XET_HASH_LEN)) {
        rc = -EBADMSG;
        goto out;
    }
    uint64_t data_len = xet_le64(h + 56), sum = 0;
    off[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = xet_le32(h + SEG_FIXED + SEG_ENTRY * i);
        if (l == 0 || l > XET_CHUNK_MAX) {
            rc = -EBADMSG;
            goto out;
        }
        sum += l;
        off[i + 1] = (uint32_t)sum;
    }
    if (sum != data_len || (uint64_t)st.st_size != hl + data_len) {
        rc = -EBADMSG;
        goto out;
    }
    for (uint32_t k = 0; k < n && !rc;) {
        uint32_t j = k;
        while (j < n && off[j + 1] - off[k] <= VERIFY_BUF)
            j++;
        size_t nb = off[j] - off[k];
        got = pread_full(fd, buf, nb, hl + (uint64_t)off[k]);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        if ((size_t)got != nb) {
            rc = -EBADMSG;
            break;
        }
        for (uint32_t i = k; i < j; i++) {
            xet_hash c;
            xet_chunk_hash(buf + (off[i] - off[k]), off[i + 1] - off[i], &c);
            if (memcmp(c.b, h + SEG_FIXED + SEG_ENTRY * i + 4, XET_HASH_LEN)) {
                rc = -EBADMSG;
                break;
            }
        }
        k = j;
    }
out:
    free(h);
    free(buf);
    if (rc)
        free(off);
    else
        *offp = off;
    return rc;
}

int zc_verify_segment(zc_ref *ref)
{
    if (!ref || !ref->seg)
        return -EINVAL;
    zc_store *s = ref->store;
    struct zc_seg *g = ref->seg;
    struct reap r;
    reap_init(&r);
    pthread_mutex_lock(&s->mu);
    while (g->state == SEG_VERIFYING)
        pthread_cond_wait(&s->vcond, &s->mu);
    if (g->state != SEG_UNVERIFIED) {
        int rc = g->state == SEG_OK ? 0 : -EBADMSG;
        if (!rc)
            ref_fill(ref, s, g, ref->chunk);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    g->state = SEG_VERIFYING;
    int fd = g->fd;
    pthread_mutex_unlock(&s->mu);

    uint32_t *off = NULL;
    int rc = check_segment(fd, &g->xorb, g->start, g->end, &off);

    pthread_mutex_lock(&s->mu);
    if (rc == 0) {
        g->off = off;
        g->state = SEG_OK;
        ref_fill(ref, s, g, ref->chunk);
    } else if (rc == -ENOMEM) {
        g->state = SEG_UNVERIFIED; /* not the segment's fault */
    } else {
        g->state = SEG_BAD; /* corrupt or unreadable: refetch */
        s->corrupt++;
        if (g->x)
            seg_doom(s, g, &r, false);
        if (rc != -EIO)
            rc = -EBADMSG;
    }
    pthread_cond_broadcast(&s->vcond);
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    return rc;
}

static ssize_t read_ref(zc_ref *ref, uint32_t chunk, uint64_t skip, void *out, size_t len,
                        bool nocache);

ssize_t zc_read(zc_ref *ref, uint32_t chunk, uint64_t skip, void *out, size_t len)
{
    return read_ref(ref, chunk, skip, out, len, false);
}

ssize_t zc_read_nocache(zc_ref *ref, uint32_t chunk, uint64_t skip, void *out, size_t len)
{
    return read_ref(ref, chunk, skip, out, len, true);
}

static ssize_t read_ref(zc_ref *ref, uint32_t chunk, uint64_t skip, void *out, size_t len,
                        bool nocache)
{
    if (!ref || !ref->seg)
        return -EINVAL;
    if (!ref->ready) {
        int rc = zc_verify_segment(ref);
        if (rc)
            return rc;
    }
    struct zc_seg *g = ref->seg; /* immutable once SEG_OK */
    if (chunk < g->start || chunk >= g->end)
        return -ERANGE;
    uint32_t n = g->end - g->start;
    uint64_t pos = (uint64_t)g->off[chunk - g->start] + skip, total = g->off[n];
    if (pos >= total || len == 0)
        return 0;
    if (len > total - pos)
        len = (size_t)(total - pos);
    ssize_t got = nocache ? pread_dontcache(ref->fd, out, len, g->hdr_len + pos)
                          : pread_full(ref->fd, out, len, g->hdr_len + pos);
    if (got >= 0 && (size_t)got != len)
        return -EIO; /* the file shrank under us: someone else touched the store */
    return got;
}

int zc_chunk_span(const zc_ref *ref, uint32_t chunk, uint64_t *off, uint32_t *len)
{
    if (!ref || !ref->seg || !ref->ready)
        return -EINVAL;
    const struct zc_seg *g = ref->seg;
    if (chunk < g->start || chunk >= g->end)
        return -ERANGE;
    uint32_t k = chunk - g->start;
    *off = g->hdr_len + (uint64_t)g->off[k];
    *len = g->off[k + 1] - g->off[k];
    return 0;
}

/* ---- put ------------------------------------------------------------------ */

static bool is_nospace(int rc)
{
    return rc == -ENOSPC || rc == -EDQUOT;
}

/* Called after a write failed for lack of space: evict `need` bytes.
 * Returns false when nothing could be evicted. */
static bool make_room(zc_store *s, uint64_t need)
{
    struct reap r;
    reap_init(&r);
    pthread_mutex_lock(&s->mu);
    unsigned k = evict_bytes(s, need, &r);
    if (k)
        s->enospc_retries++;
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    return k != 0;
}

static int fsync_dir(int dfd, const char *rel)
{
    int fd = openat(dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

#define BOUNCE (4u << 20)

/* a then b written with O_DIRECT through a per-thread bounce buffer (whole
 * 4 KiB blocks; the padding of the last one is cut off after).  -EINVAL
 * when the fs or the device will not take it (the caller writes buffered). */
static int write_direct(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
    static __thread uint8_t *bounce;
    if (!bounce && posix_memalign((void **)&bounce, 4096, BOUNCE) != 0) {
        bounce = NULL;
        return -ENOMEM;
    }
    size_t tot = alen + blen, done = 0;
    while (done < tot) {
        size_t n = tot - done < BOUNCE ? tot - done : BOUNCE, k = 0;
        while (k < n) { /* the next n bytes of a||b */
            size_t at = done + k, m;
            if (at < alen) {
                m = alen - at < n - k ? alen - at : n - k;
                memcpy(bounce + k, (const uint8_t *)a + at, m);
            } else {
                m = n - k;
                memcpy(bounce + k, (const uint8_t *)b + (at - alen), m);
            }
            k += m;
        }
        size_t w = (n + 4095) & ~(size_t)4095;
        memset(bounce + n, 0, w - n);
        for (size_t put = 0; put < w;) {
            ssize_t r = pwrite(fd, bounce + put, w - put, (off_t)(done + put));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 || (r & 4095))
                return r < 0 ? -errno : -EIO;
            put += (size_t)r;
        }
        done += n;
    }
    if (ftruncate(fd, (off_t)tot) != 0)
        return -errno;
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) == 0 ? 0 : -errno;
}

/* Write `parts` to tmp/<gen>.tmp, maybe fsync, rename to final.  Returns the
 * open fd (read-write) of the renamed file or a negative errno.  nocache:
 * around the page cache where the fs allows it (ZC_PUT_NOCACHE). */
static int write_tx(zc_store *s, uint64_t gen, const char *final, const char *subdir,
                    const void *a, size_t alen, const void *b, size_t blen, bool sync,
                    bool nocache)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "tmp/%" PRIu64 ".tmp", gen);
    int rc = 0, fd = -1;
    bool buffered = true;
    if (nocache && alen + blen >= 65536 &&
        (fd = openat(s->dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644)) >= 0) {
        rc = write_direct(fd, a, alen, b, blen);
        buffered = rc == -EINVAL || rc == -ENOMEM; /* not here: buffered, from the start */
        if (buffered)
            rc = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) == 0 && ftruncate(fd, 0) == 0
                     ? 0 : -errno;
    }
    if (fd < 0 && (fd = openat(s->dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return -errno;
    if (!rc && buffered) {
        rc = pwrite_full(fd, a, alen, 0);
        if (!rc && blen)
            rc = pwrite_full(fd, b, blen, (off_t)alen);
    }
    if (!rc && sync && fsync(fd) < 0)
        rc = -errno;
    if (!rc && renameat(s->dfd, tmp, s->dfd, final) < 0) {
        rc = -errno;
        if (rc == -ENOENT && subdir) { /* first file of this subdirectory */
            rc = mkdirat_ok(s->dfd, subdir);
            if (!rc && renameat(s->dfd, tmp, s->dfd, final) < 0)
                rc = -errno;
            if (!rc && sync)
                fsync_dir(s->dfd, "xorbs");
        }
    }
    if (rc) {
        close(fd);
        unlinkat(s->dfd, tmp, 0);
        return rc;
    }
    if (sync) {
        char dir[PATH_LEN];
        snprintf(dir, sizeof dir, "%s", final);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        fsync_dir(s->dfd, dir);
    }
    return fd;
}

static int put_existing(zc_store *s, struct zc_seg *e, uint32_t start, zc_ref *pin,
                        struct reap *r)
{
    /* under s->mu: e covers the run; pin it for the caller if asked */
    if (!pin)
        return 0;
    int rc = seg_open_fd(s, e);
    if (rc)
        return rc;
    seg_pin(s, e);
    ref_fill(pin, s, e, start);
    fdl_trim(s, r);
    return 1;
}

/* After put_existing() found a stored run covering a put: 0 when done (the
 * run is usable, pinned in `pin` if asked), a negative errno, or 1 when the
 * stored copy failed verification and is gone, so the put must store its own. */
static int settle_existing(int rc, zc_ref *pin)
{
    if (rc <= 0)
        return rc;
    if (pin->ready)
        return 0;
    rc = zc_verify_segment(pin);
    if (rc == 0)
        return 0;
    zc_unpin(pin);
    return rc == -EBADMSG || rc == -EIO ? 1 : rc;
}

int zc_put(zc_store *s, const xet_hash *xorb, uint32_t start, uint32_t end,
           const uint32_t *lens, const xet_hash *hashes, const void *data, size_t len,
           unsigned flags, zc_ref *pin)
{
    if (pin) {
        memset(pin, 0, sizeof *pin);
        pin->fd = -1;
    }
    if (!s || !xorb || start >= end || end - start > XET_XORB_MAX_CHUNKS || !lens ||
        (!data && len) || (flags & ~(ZC_PUT_FSYNC | ZC_PUT_VERIFY | ZC_PUT_NOCACHE)))
        return -EINVAL;
    uint32_t n = end - start, hl = seg_hdr_len(n);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > XET_CHUNK_MAX)
            return -EINVAL;
        sum += lens[i];
    }
    if (sum != len)
        return -EINVAL;

    int rc = 0;
    struct reap r;
    reap_init(&r);
again:
    /* Already stored?  Then there is nothing to write. */
    pthread_mutex_lock(&s->mu);
    struct zc_seg *e = seg_container(xorb_find(s, xorb), start, end);
    if (e) {
        rc = put_existing(s, e, start, pin, &r);
        pthread_mutex_unlock(&s->mu);
        reap_run(s, &r);
        if ((rc = settle_existing(rc, pin)) != 1)
            return rc;
        goto again; /* the old copy was bad and is gone: store ours */
    }
    uint64_t gen = s->gen++;
    uint64_t acct = acct_of(hl + len);
    evict_to_cap(s, acct, &r);
    s->inflight += acct;
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);

    uint8_t *h = malloc(hl);
    uint32_t *off = malloc((n + 1) * sizeof *off);
    struct zc_seg *g = calloc(1, sizeof *g);
    int fd = -1;
    if (!h || !off || !g) {
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(h, SEG_MAGIC, 8);
    xet_put_le32(h + 8, SEG_VERSION);
    xet_put_le32(h + 12, hl);
    memcpy(h + 16, xorb->b, XET_HASH_LEN);
    xet_put_le32(h + 48, start);
    xet_put_le32(h + 52, end);
    xet_put_le64(h + 56, len);
    xet_put_le32(h + 64, 0);
    xet_put_le32(h + 68, 0);
    off[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *ent = h + SEG_FIXED + SEG_ENTRY * i;
        const uint8_t *chunk = (const uint8_t *)data + off[i];
        xet_put_le32(ent, lens[i]);
        if (!hashes || (flags & ZC_PUT_VERIFY)) {
            xet_hash c;
            xet_chunk_hash(chunk, lens[i], &c);
            if (hashes && !xet_hash_eq(&c, &hashes[i])) {
                rc = -EBADMSG;
                goto fail;
            }
            memcpy(ent + 4, c.b, XET_HASH_LEN);
        } else {
            memcpy(ent + 4, hashes[i].b, XET_HASH_LEN);
        }
        off[i + 1] = off[i] + lens[i];
    }
    xet_hash ck;
    xet_keyed_hash(SEG_CK_KEY, h, hl - XET_HASH_LEN, &ck);
    memcpy(h + hl - XET_HASH_LEN, ck.b, XET_HASH_LEN);

    g->xorb = *xorb;
    g->start = start;
    g->end = end;
    g->gen = gen;
    g->acct = acct;
    g->hdr_len = hl;
    g->off = off;
    g->state = SEG_OK;
    g->fd = -1;
    dl_init(&g->lru);
    dl_init(&g->fdl);
    char path[PATH_LEN], sub[16];
    seg_relpath(g, path);
    snprintf(sub, sizeof sub, "%.8s", path); /* "xorbs/ab" */
    for (;;) {
        fd = write_tx(s, gen, path, sub, h, hl, data, len, flags & ZC_PUT_FSYNC,
                      flags & ZC_PUT_NOCACHE);
        if (fd >= 0 || !is_nospace(fd) || !make_room(s, acct))
            break;
    }
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    free(h);
    h = NULL;

    /* Commit. */
    pthread_mutex_lock(&s->mu);
    s->inflight -= acct;
    struct zc_xorb *x = xorb_get(s, xorb);
    e = x ? seg_container(x, start, end) : NULL;
    if (!x || e) { /* out of memory, or someone stored a covering run meanwhile */
        reap_add(s, &r, fd, path, g);
        rc = x ? put_existing(s, e, start, pin, &r) : -ENOMEM;
        if (x)
            xorb_maybe_free(s, x);
        pthread_mutex_unlock(&s->mu);
        reap_run(s, &r);
        if ((rc = settle_existing(rc, pin)) != 1)
            return rc;
        goto again; /* the old copy was bad and is gone: store ours */
    }
    /* Replace the segments this one contains; they are exactly those with
     * start >= our start and end <= our end, a run just after seg_pos. */
    long j = seg_pos(x, start) + 1;
    if (j > 0 && x->v[j - 1]->start == start)
        j--;
    while ((uint32_t)j < x->n && x->v[j]->end <= end)
        seg_doom(s, x->v[j], &r, true);
    if (xorb_insert_at(x, (uint32_t)j, g)) {
        xorb_maybe_free(s, x);
        reap_add(s, &r, fd, path, g);
        pthread_mutex_unlock(&s->mu);
        reap_run(s, &r);
        return -ENOMEM;
    }
    g->fd = fd;
    s->nfds++;
    s->used += acct;
    s->nsegs++;
    s->puts++;
    s->put_bytes += len;
    if (pin) {
        seg_pin(s, g);
        ref_fill(pin, s, g, start);
    } else {
        lru_front(s, g);
        dl_push_front(&s->fdl, &g->fdl);
        g->in_fdlru = true;
        s->nfdl++;
        fdl_trim(s, &r);
    }
    evict_to_cap(s, 0, &r);
    pthread_mutex_unlock(&s->mu);
    reap_run(s, &r);
    return 0;

fail:
    free(h);
    free(off);
    free(g);
    pthread_mutex_lock(&s->mu);
    s->inflight -= acct;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- metadata blobs --------------------------------------------------------- */

static int meta_path(const char *key, size_t klen, char out[PATH_LEN])
{
    if (klen == 0 || klen > META_KEY_MAX)
        return -EINVAL;
    xet_hash h;
    char hex[2 * XET_HASH_LEN + 1];
    xet_keyed_hash(META_NAME_KEY, key, klen, &h);
    xet_hex(h.b, XET_HASH_LEN, hex);
    snprintf(out, PATH_LEN, "meta/%s", hex);
    return 0;
}

int zc_meta_put(zc_store *s, const char *key, const void *data, size_t len, unsigned flags)
{
    if (!s || !key || (!data && len) || len > META_MAX || (flags & ~ZC_PUT_FSYNC))
        return -EINVAL;
    size_t klen = strlen(key);
    char path[PATH_LEN];
    int rc = meta_path(key, klen, path);
    if (rc)
        return rc;
    size_t total = META_FIXED + klen + len + XET_HASH_LEN;
    uint8_t *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, META_MAGIC, 8);
    xet_put_le32(buf + 8, 1);
    xet_put_le32(buf + 12, (uint32_t)klen);
    xet_put_le64(buf + 16, len);
    memcpy(buf + META_FIXED, key, klen);
    if (len)
        memcpy(buf + META_FIXED + klen, data, len);
    xet_hash ck;
    xet_keyed_hash(META_CK_KEY, buf, total - XET_HASH_LEN, &ck);
    memcpy(buf + total - XET_HASH_LEN, ck.b, XET_HASH_LEN);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        uint64_t gen = s->gen++;
        pthread_mutex_unlock(&s->mu);
        int fd = write_tx(s, gen, path, NULL, buf, total, NULL, 0, flags & ZC_PUT_FSYNC, false);
        if (fd >= 0) {
            close(fd);
            rc = 0;
            break;
        }
        rc = fd;
        if (!is_nospace(rc) || !make_room(s, acct_of(total)))
            break;
    }
    free(buf);
    return rc;
}

int zc_meta_get(zc_store *s, const char *key, void **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!s || !key)
        return -EINVAL;
    size_t klen = strlen(key);
    char path[PATH_LEN];
    int rc = meta_path(key, klen, path);
    if (rc)
        return rc;
    int fd = openat(s->dfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    size_t total = (size_t)st.st_size;
    if ((uint64_t)st.st_size < META_FIXED + XET_HASH_LEN ||
        (uint64_t)st.st_size > (uint64_t)META_MAX + META_KEY_MAX + META_FIXED + XET_HASH_LEN) {
        rc = -EBADMSG;
        goto out;
    }
    buf = malloc(total + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t got = pread_full(fd, buf, total, 0);
    if (got < 0) {
        rc = (int)got;
        goto out;
    }
    xet_hash ck;
    if ((size_t)got != total || memcmp(buf, META_MAGIC, 8) || xet_le32(buf + 8) != 1 ||
        xet_le32(buf + 12) != klen || xet_le64(buf + 16) != total - META_FIXED - klen - XET_HASH_LEN ||
        memcmp(buf + META_FIXED, key, klen)) {
        rc = -EBADMSG;
        goto out;
    }
    xet_keyed_hash(META_CK_KEY, buf, total - XET_HASH_LEN, &ck);
    if (memcmp(ck.b, buf + total - XET_HASH_LEN, XET_HASH_LEN)) {
        rc = -EBADMSG;
        goto out;
    }
    size_t dlen = total - META_FIXED - klen - XET_HASH_LEN;
    memmove(buf, buf + META_FIXED + klen, dlen);
    buf[dlen] = 0;
    *data = buf;
    *len = dlen;
    buf = NULL;
out:
    close(fd);
    free(buf);
    if (rc == -EBADMSG) { /* corrupt: drop it, it reads as absent */
        unlinkat(s->dfd, path, 0);
        rc = -ENOENT;
    }
    return rc;
}

int zc_meta_delete(zc_store *s, const char *key)
{
    if (!s || !key)
        return -EINVAL;
    char path[PATH_LEN];
    int rc = meta_path(key, strlen(key), path);
    if (rc)
        return rc;
    return unlinkat(s->dfd, path, 0) < 0 ? -errno : 0;
}

int zc_meta_list(zc_store *s, const char *prefix, int (*cb)(void *ud, const char *key),
                 void *ud)
{
    if (!s || !cb)
        return -EINVAL;
    size_t plen = prefix ? strlen(prefix) : 0;
    int mfd = openat(s->dfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0)
        return -errno;
    DIR *d = fdopendir(mfd);
    if (!d) {
        close(mfd);
        return -ENOMEM;
    }
    char *key = malloc(META_KEY_MAX + 1);
    if (!key) {
        closedir(d);
        return -ENOMEM;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strlen(e->d_name) != 2 * XET_HASH_LEN)
            continue;
        int fd = openat(mfd, e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        uint8_t hd[META_FIXED];
        uint32_t klen = 0;
        bool ok = pread_full(fd, hd, META_FIXED, 0) == META_FIXED &&
                  !memcmp(hd, META_MAGIC, 8) && (klen = xet_le32(hd + 12)) > 0 &&
                  klen <= META_KEY_MAX && pread_full(fd, key, klen, META_FIXED) == klen;
        close(fd);
        if (!ok)
            continue;
        key[klen] = 0;
        if (strlen(key) != klen || (plen && strncmp(key, prefix, plen)))
            continue;
        rc = cb(ud, key);
    }
    free(key);
    closedir(d);
    return rc;
}

/* ---- listings for the peer swarm ------------------------------------------ */

long zc_runs(zc_store *s, const xet_hash *xorb, zc_range *out, size_t max)
{
    long k = 0;
    uint32_t last = 0;
    pthread_mutex_lock(&s->mu);
    struct zc_xorb *x = xorb_find(s, xorb);
    for (uint32_t i = 0; x && i < x->n; i++) {
        const struct zc_seg *g = x->v[i];
        if (k > 0 && g->start <= last) { /* touches or overlaps the run before */
            if (g->end > last)
                last = g->end;
            if ((size_t)(k - 1) < max)
                out[k - 1].end = last;
            continue;
        }
        if ((size_t)k < max)
            out[k] = (zc_range){g->start, g->end};
        last = g->end;
        k++;
    }
    pthread_mutex_unlock(&s->mu);
    return k;
}

int zc_chunk_hashes(const zc_ref *ref, uint32_t start, uint32_t end, uint32_t *lens,
                    xet_hash *hashes)
{
    if (!ref || !ref->seg || !ref->ready || start >= end)
        return -EINVAL;
    const struct zc_seg *g = ref->seg; /* immutable once SEG_OK */
    if (start < g->start || end > g->end)
        return -ERANGE;
    uint32_t n = end - start;
    uint8_t *h = malloc((size_t)n * SEG_ENTRY);
    if (!h)
        return -ENOMEM;
    ssize_t got = pread_full(ref->fd, h, (size_t)n * SEG_ENTRY,
                             SEG_FIXED + (uint64_t)SEG_ENTRY * (start - g->start));
    int rc = got < 0 ? (int)got : (size_t)got != (size_t)n * SEG_ENTRY ? -EIO : 0;
    for (uint32_t i = 0; !rc && i < n; i++) {
        uint32_t l = xet_le32(h + SEG_ENTRY * i);
        if (l != g->off[start - g->start + i + 1] - g->off[start - g->start + i]) {
            rc = -EIO; /* the header changed under us */
            break;
        }
        if (lens)
            lens[i] = l;
        memcpy(hashes[i].b, h + SEG_ENTRY * i + 4, XET_HASH_LEN);
    }
    free(h);
    return rc;
}
