/* prefetch.c — the contract is in prefetch.h. */
#include "read_int.h"
#include "fmap.h"
#include "prefetch.h"
#include "source.h"
#include "window.h"

/* Tensor files: past the end of the tensor it reads, a stream is prefetched
 * only once it has read across PF_CROSS tensor boundaries in a row (the
 * kernel's readaround and readahead around one tensor make two), for the
 * first PF_EARLY boundaries after that only the next tensor (a reader of a
 * few tensors side by side, picked at random, is sent at most one more), then
 * 1/PF_RATIO of the bytes it has read in a row, but at least 1/PF_FLOOR_DIV
 * of the file up to PF_FLOOR, as whole windows (below), once PF_MIN more is
 * due. */
#define PF_CROSS 3
#define PF_EARLY 1
/* Into a tensor by this much a stream is its reader, not the kernel's
 * readahead running on past the tensor before (the mount's readahead,
 * 960K, and its next window asked ahead): the rest of the tensor is sent. */
#define PF_IN (2ull << 20)
#define PF_RATIO 10
#define PF_FLOOR (64ull << 20)
#define PF_FLOOR_DIV 16
#define PF_MIN (1ull << 20)
#define PF_SPARE 10

static uint64_t umax(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Are the bytes [s, e) of f known to be stored?  Mapped, and every chunk of
 * the extents over them in the store. */
static bool span_stored(rd_file *f, uint64_t s, uint64_t e)
{
    if (rd_ext_uncovered(f, s, e) != e)
        return false;
    for (long i = rd_ext_floor(f, s); i >= 0 && (size_t)i < f->n && f->ext[i].off < e; i++)
        if (f->ext[i].off + f->ext[i].len > s &&
            zc_missing(f->c->store, &f->ext[i].xorb, f->ext[i].cs, f->ext[i].ce, NULL, 0) != 0)
            return false;
    return true;
}

/* Is window k known to be stored?  (Remembered once seen, or fetched.) */
static bool cell_stored(rd_file *f, uint64_t k)
{
    if (f->done[k / 8] & (1u << (k % 8)))
        return true;
    uint64_t s = k * CELL_SIZE, e = umin(f->size, s + CELL_SIZE);
    if (!span_stored(f, s, e))
        return false;
    f->done[k / 8] |= (uint8_t)(1u << (k % 8));
    return true;
}

/* How far ahead of a stream at `next` that has read `run` bytes in a row
 * its windows may be started: one window per 8 MiB read, up to MAX_AHEAD,
 * a quarter of a small store.  0: not yet (or nothing to do). */
static uint64_t windows_ahead(rd_file *f, uint64_t run)
{
    uint64_t ahead = run / CELL_SIZE + 1;
    if (ahead > MAX_AHEAD)
        ahead = MAX_AHEAD;
    zc_stats zs;
    zc_get_stats(f->c->store, &zs);
    if (ahead > zs.cap / CELL_SIZE / 4) /* a small store would evict them before they are read */
        ahead = zs.cap / CELL_SIZE / 4 ? zs.cap / CELL_SIZE / 4 : 1;
    return ahead;
}

/* Start the bytes [a, b) of window k for a stream, no read waiting: the
 * cells of the window holding some are marked wanted ahead (*joined: one
 * of a fill, which the stream will need), the gaps between them that are
 * not stored get cells of their own. */
static void span_start(rd_file *f, uint64_t k, uint64_t a, uint64_t b, bool *joined)
{
    if (f->done[k / 8] & (1u << (k % 8)))
        return;
    while (a < b) {
        rd_cell *cl = rd_cell_at(f, k, a);
        if (cl) {
            *joined |= !cl->ahead;
            cl->ahead = true;
            a = cl->end;
            continue;
        }
        uint64_t lo = a, hi = b;
        rd_cell_gap(f, k, a, &lo, &hi);
        if (!span_stored(f, lo, hi) && (cl = rd_cell_new(f, k))) {
            cl->start = lo;
            cl->end = hi;
            cl->ahead = true;
            rd_cell_start(cl);
        }
        a = hi;
    }
}

/* A tensor file's stream (f->tmap): see prefetch.h. */
static void tensor_ahead(rd_file *f, rd_stream *st, bool *joined)
{
    const zf_tensor_map *m = f->tmap;
    uint64_t pos = st->next;
    if (pos >= f->size)
        return;
    long t = zf_tensor_at(m, pos - 1);
    uint64_t e = pos;
    if (t >= 0 && pos - umax(st->first, m->tens[2 * t]) >= PF_IN) /* the rest of a tensor it */
        e = m->tens[2 * t + 1];                                   /* has read PF_IN of */
    if (st->cross >= PF_CROSS && st->cross < PF_CROSS + PF_EARLY) { /* just the next tensor */
        long in = zf_tensor_at(m, pos); /* (the readahead may have gone into it) */
        size_t j = in >= 0 ? (size_t)in : zf_tensor_from(m, pos);
        if (j < m->ntens && m->tens[2 * j + 1] > e)
            e = m->tens[2 * j + 1];
    } else if (st->cross >= PF_CROSS) { /* tensor after tensor: the next ones, 1/PF_RATIO of its run */
        uint64_t floor = umin(PF_FLOOR, f->size / PF_FLOOR_DIV);
        uint64_t lim = umin(f->size, pos + umax(st->run / PF_RATIO, floor));
        /* whole windows: each is one round trip (its reconstruction learned
         * ahead, window.h) and one xorb range, and the windows to the end
         * of the one the lookahead ends in keep two or more in flight; but
         * never more than 1/PF_SPARE of the file past the reader, less room
         * for the kernel's readahead and chunk edges (so a reader stopping
         * half way has been sent at most 1.2x what it read; in a small file:
         * the windows the lookahead covers whole) */
        if (lim < f->size) {
            uint64_t up = umin(f->size, (lim + CELL_SIZE - 1) / CELL_SIZE * CELL_SIZE);
            lim = up - pos + CELL_SIZE / 2 <= f->size / PF_SPARE ? up : lim / CELL_SIZE * CELL_SIZE;
        }
        if (lim > e)
            e = lim;
    }
    uint64_t k0 = (pos - 1) / CELL_SIZE;
    e = umin(e, umin(f->size, (k0 + 1 + windows_ahead(f, st->run)) * CELL_SIZE));
    if (st->pf < pos)
        st->pf = pos;
    if (e <= st->pf || (e - st->pf < PF_MIN && e < f->size))
        return;
    for (uint64_t k = st->pf / CELL_SIZE; k * CELL_SIZE < e; k++)
        span_start(f, k, umax(st->pf, k * CELL_SIZE), umin(e, (k + 1) * CELL_SIZE), joined);
    st->pf = e;
}

static void stream_ahead(rd_file *f, rd_stream *st);

/* Tensor boundaries strictly inside (a, b) of a tensor file (its table known). */
static uint64_t bounds_in(const rd_file *f, uint64_t a, uint64_t b)
{
    return b > a + 1 ? zf_tensor_from(f->tmap, b) - zf_tensor_from(f->tmap, a + 1) : 0;
}

static bool tensor_table(const rd_file *f)
{
    return f->tmap && f->tmap->format != ZF_TENSORS_NONE;
}

void rd_seq_prefetch(rd_file *f, uint64_t off, uint64_t len)
{
    uint64_t end = off + len;
    /* a gap the kernel's readahead leaves (its reads arrive out of order) */
    uint64_t fwd = len * 2 > SEQ_FWD ? len * 2 : SEQ_FWD;
    rd_stream *st = NULL, *lru = &f->streams[0];
    f->tick++;
    for (int i = 0; i < NSTREAMS; i++) {
        rd_stream *x = &f->streams[i];
        if (x->used && off + SEQ_BACK >= x->first && off <= x->next + fwd) {
            st = x;
            break;
        }
        if (x->used < lru->used)
            lru = x;
    }
    if (!st) { /* a jump: a new stream, nothing ahead of it yet */
        st = lru;
        st->first = off;
        st->next = end;
        st->run = len;
        st->used = st->born = f->tick;
        st->counted = tensor_table(f);
        st->cross = st->counted ? bounds_in(f, off, end) : 0;
        st->pf = end;
        return;
    }
    st->used = f->tick;
    if (end > st->next) {
        if (st->counted) /* the boundaries it has read on across */
            st->cross += bounds_in(f, st->next - 1, end);
        st->next = end;
    }
    for (int i = 0; i < NSTREAMS; i++) { /* a stream it has caught up with is the same reader */
        rd_stream *y = &f->streams[i];
        if (y != st && y->used && y->first >= st->first && y->first <= st->next + fwd) {
            /* one begun after it is the kernel's readahead gone ahead of the
             * reader: the boundaries up to where that one is count; one begun
             * before it is an earlier read of the tensors just past (a reader
             * of a tensor that ran into the one it read before): no run of
             * tensors, the larger of the two counts */
            if (st->counted && y->counted && y->next > st->next)
                st->cross = y->born > st->born ? st->cross + bounds_in(f, st->next - 1, y->next)
                                               : umax(st->cross, y->cross);
            st->next = y->next > st->next ? y->next : st->next;
            st->pf = y->pf > st->pf ? y->pf : st->pf;
            y->used = 0;
        }
    }
    if (off < st->first) {
        if (st->counted)
            st->cross += bounds_in(f, off, st->first + 1);
        st->first = off;
    }
    st->run = st->next - st->first;
    if (f->tmap && f->tmap->format == ZF_TENSORS_NONE && st->first >= CELL_SIZE)
        return; /* the tensor table is being read: rd_seq_again when it is known (a
                   stream from the file's start, the header's reader, goes on as any file's) */
    stream_ahead(f, st);
}

/* What is started ahead of stream st of f (prefetch.h). */
static void stream_ahead(rd_file *f, rd_stream *st)
{
    rd_ctx *c = f->c;
    bool tens = tensor_table(f);
    if (tens && !st->counted) { /* the table came after it began: all it has read */
        st->cross = bounds_in(f, st->first, st->next);
        st->counted = true;
    }
    if (!c->hub || c->stopping || (!tens && st->run < SEQ_MIN))
        return;
    uint64_t ncells = (f->size + CELL_SIZE - 1) / CELL_SIZE;
    if (!f->done && !(f->done = calloc((ncells + 7) / 8, 1)))
        return;
    bool joined = false;
    if (tens)
        tensor_ahead(f, st, &joined);
    else if (st->run >= SEQ_MIN) {
        uint64_t ahead = windows_ahead(f, st->run);
        uint64_t k0 = (st->next - 1) / CELL_SIZE;
        for (uint64_t k = k0 + 1; k <= k0 + ahead && k < ncells; k++) {
            rd_cell *cl = rd_cell_find(f, k);
            if (cl) { /* a fill's window the reader will need: no longer held for reads */
                joined |= !cl->ahead;
                cl->ahead = true;
                continue;
            }
            if (cell_stored(f, k))
                continue;
            if (!(cl = rd_cell_new(f, k)))
                break;
            cl->ahead = true;
            rd_cell_start(cl);
        }
    }
    if (joined) {
        rd_net_prio(c);
        rd_xf_pump(c);
    }
}

void rd_seq_again(rd_file *f)
{
    rd_stream *st = NULL;
    for (int i = 0; i < NSTREAMS; i++)
        if (f->streams[i].used && (!st || f->streams[i].used > st->used))
            st = &f->streams[i];
    if (st && !(f->tmap && f->tmap->format == ZF_TENSORS_NONE))
        stream_ahead(f, st);
}
