/* prefetch.c — the contract is in prefetch.h. */
#include "read_int.h"
#include "fmap.h"
#include "prefetch.h"
#include "source.h"
#include "window.h"

/* Is window k known to be stored?  Mapped, and every chunk of the extents
 * over it in the store (remembered once seen, or fetched). */
static bool cell_stored(rd_file *f, uint64_t k)
{
    if (f->done[k / 8] & (1u << (k % 8)))
        return true;
    uint64_t s = k * CELL_SIZE, e = umin(f->size, s + CELL_SIZE);
    if (rd_ext_uncovered(f, s, e) != e)
        return false;
    for (long i = rd_ext_floor(f, s); i >= 0 && (size_t)i < f->n && f->ext[i].off < e; i++)
        if (f->ext[i].off + f->ext[i].len > s &&
            zc_missing(f->c->store, &f->ext[i].xorb, f->ext[i].cs, f->ext[i].ce, NULL, 0) != 0)
            return false;
    f->done[k / 8] |= (uint8_t)(1u << (k % 8));
    return true;
}

/* Track sequential readers of f; ahead of one that has read SEQ_MIN bytes
 * in a row, start the windows it will need (more the longer it goes on:
 * one per 8 MiB read, up to MAX_AHEAD), with no read waiting on them. */
void rd_seq_prefetch(rd_file *f, uint64_t off, uint64_t len)
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
    if (joined) {
        rd_net_prio(c);
        rd_xf_pump(c);
    }
}
