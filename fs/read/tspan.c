/* tspan.c — the contract is in tspan.h. */
#include "read_int.h"
#include "fmap.h"
#include "tspan.h"

void rd_miss_span(rd_file *f, uint64_t first, uint64_t pos, uint64_t end, uint64_t *lo, uint64_t *hi)
{
    const zf_tensor_map *m = f->tmap;
    uint64_t e = umin(end, *hi);
    if (!m || pos >= e)
        return;
    if (m->format == ZF_TENSORS_NONE) {
        zf_tensor_clip(m, pos, e, lo, hi);
        return;
    }
    zf_tensor_clip(m, first > *lo ? first : *lo, e, lo, hi);
    if (pos > *lo) { /* not over what an earlier miss mapped just before pos */
        long i = rd_ext_floor(f, pos - 1);
        uint64_t xe = i >= 0 ? f->ext[i].off + f->ext[i].len : 0;
        if (xe >= pos)
            *lo = pos;
        else if (xe > *lo)
            *lo = xe;
    }
}
