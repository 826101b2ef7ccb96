/* bufpool.c — big buffers kept resident for reuse (bufpool.h). */
#include "bufpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HDR 64 /* keeps the buffer 64-byte aligned */

typedef struct buf_hdr {
    struct buf_hdr *next; /* in the free list */
    size_t cap;           /* bytes after the header */
} buf_hdr;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static buf_hdr *kept;
static size_t kept_bytes;

static void raw_free(buf_hdr *h)
{
    if (h->cap >= ZF_BUF_MIN)
        munmap(h, HDR + h->cap);
    else
        free(h);
}

/* Big capacities are whole MiB, so a buffer fits its neighbours' requests. */
static size_t cap_of(size_t n)
{
    return n < ZF_BUF_MIN ? (n ? n : 1) : (n + ZF_BUF_MIN - 1) / ZF_BUF_MIN * ZF_BUF_MIN;
}

static buf_hdr *hdr_of(void *p)
{
    return (buf_hdr *)((char *)p - HDR);
}

/* Big buffers are mapped directly, not taken from malloc: glibc would keep
 * freed ones in its heaps as well, and RSS would count them twice. */
static void *raw_alloc(size_t cap)
{
    void *m = NULL;
    if (cap >= ZF_BUF_MIN) {
        m = mmap(NULL, HDR + cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
    } else if (posix_memalign(&m, HDR, HDR + cap) != 0) {
        return NULL;
    }
    buf_hdr *h = m;
    h->next = NULL;
    h->cap = cap;
    return (char *)m + HDR;
}

void *zf_buf_get(size_t n)
{
    if (n >= ZF_BUF_MIN) {
        buf_hdr *best = NULL, **bestp = NULL;
        pthread_mutex_lock(&mu);
        for (buf_hdr **pp = &kept; *pp; pp = &(*pp)->next) {
            buf_hdr *h = *pp;
            /* the smallest that fits, and not one far too big for it */
            if (h->cap >= n && h->cap / 4 <= n && (!best || h->cap < best->cap)) {
                best = h;
                bestp = pp;
            }
        }
        if (best) {
            *bestp = best->next;
            kept_bytes -= best->cap;
        }
        pthread_mutex_unlock(&mu);
        if (best) {
            best->next = NULL;
            return (char *)best + HDR;
        }
    }
    return raw_alloc(cap_of(n));
}

void zf_buf_free(void *p)
{
    if (!p)
        return;
    buf_hdr *h = hdr_of(p);
    if (h->cap >= ZF_BUF_MIN) {
        pthread_mutex_lock(&mu);
        bool keep = kept_bytes + h->cap <= ZF_BUF_KEEP;
        if (keep) {
            h->next = kept;
            kept = h;
            kept_bytes += h->cap;
        }
        pthread_mutex_unlock(&mu);
        if (keep)
            return;
    }
    raw_free(h);
}

void zf_buf_warm(size_t size, int count)
{
    for (int i = 0; i < count; i++) {
        size_t cap = cap_of(size);
        pthread_mutex_lock(&mu);
        bool room = kept_bytes + cap <= ZF_BUF_KEEP;
        pthread_mutex_unlock(&mu);
        if (!room)
            return;
        void *p = raw_alloc(cap);
        if (!p)
            return;
        memset(p, 0, cap); /* fault it in now */
        zf_buf_free(p);
    }
}

void zf_buf_trim(void)
{
    pthread_mutex_lock(&mu);
    buf_hdr *h = kept;
    kept = NULL;
    kept_bytes = 0;
    pthread_mutex_unlock(&mu);
    while (h) {
        buf_hdr *next = h->next;
        raw_free(h);
        h = next;
    }
}

size_t zf_buf_kept(void)
{
    pthread_mutex_lock(&mu);
    size_t n = kept_bytes;
    pthread_mutex_unlock(&mu);
    return n;
}
