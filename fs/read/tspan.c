/* tspan.c — the contract is in tspan.h. */
#include "read_int.h"
#include "fmap.h"
#include "tspan.h"

/* Does the read [first, end) go on with a stream (prefetch.h) that began
 * well before byte ts (more than twice the read's length)? */
static bool continued(const rd_file *f, uint64_t first, uint64_t end, uint64_t ts)
{
    uint64_t near = 2 * (end - first) > SEQ_FWD ? 2 * (end - first) : SEQ_FWD;
    for (int i = 0; i < NSTREAMS; i++) {
        const rd_stream *x = &f->streams[i];
        if (x->used && x->first <= first && x->next >= end && x->first + near < ts)
            return true;
    }
    return false;
}

void rd_miss_span(rd_file *f, uint64_t first, uint64_t pos, uint64_t end, uint64_t *lo, uint64_t *hi)
{
    const zf_tensor_map *m = f->tmap;
    uint64_t e = umin(end, *hi);
    if (!m || pos >= e)
        return;
    if (m->format == ZF_TENSORS_NONE)
        return; /* the table is being read: the window, as any file's */
    uint64_t s = first > *lo ? first : *lo;
    /* the whole read decides, not its part in this window: a readaround
     * over a window's edge is no wish for the tensor past the edge */
    long a = zf_tensor_at(m, first);
    if (a < 0 || a != zf_tensor_at(m, end - 1) || continued(f, first, end, m->tens[2 * a])) {
        if (pos > *lo) /* across a boundary, outside the tensors, or read on into: as asked */
            *lo = pos;
        if (e < *hi)
            *hi = e;
        return;
    }
    zf_tensor_clip(m, s, e, lo, hi); /* a read into one tensor: all of it (in the window) */
    if (pos > *lo) { /* not over what an earlier miss mapped just before pos */
        long i = rd_ext_floor(f, pos - 1);
        uint64_t xe = i >= 0 ? f->ext[i].off + f->ext[i].len : 0;
        if (xe >= pos)
            *lo = pos;
        else if (xe > *lo)
            *lo = xe;
    }
}
