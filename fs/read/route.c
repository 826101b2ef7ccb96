/* route.c — the contract is in route.h. */
#include "read_int.h"
#include "big.h"
#include "blob.h"
#include "fmap.h"
#include "prefetch.h"
#include "req.h"
#include "route.h"
#include "store_read.h"
#include "window.h"
#include "xfetch.h"

void rd_xet_try(rd_read *r)
{
    rd_file *f = r->f;
    uint64_t end = r->off + r->len;
    if (r->ops->xorbs) { /* the map is loaded: the xorbs it names, once each */
        xet_hash *v = f->n ? malloc(f->n * sizeof *v) : NULL;
        size_t n = 0;
        for (size_t i = 0; v && i < f->n; i++)
            if (n == 0 || !xet_hash_eq(&f->ext[i].xorb, &v[n - 1]))
                v[n++] = f->ext[i].xorb;
        r->ops->xorbs(r, f->n && !v ? -ENOMEM : 0, v, n,
                      rd_ext_uncovered(f, 0, f->size) == f->size);
        free(v);
        rd_read_free(r);
        return;
    }
    uint64_t u = rd_ext_uncovered(f, r->off, end);
    if (u == end && r->ops->stored_enough && rd_first_unstored(f, r->off, end) == end)
        rd_read_end(r, 0, NULL, 0); /* whole extents stored: no need to look closer */
    else if (u == end && rd_read_from_runs(r)) /* in a run being stored: answered from memory */
        return;
    else if (u == end) /* what the store read does with the bytes is the kind's (rd_ops.store) */
        rd_store_start(r);
    else
        rd_fetch_cells(r, u);
}

/* Start a read (FUSE or background) whose file state may not be loaded. */
void rd_read_go(rd_read *r)
{
    rd_file *f = r->f;
    if (!f->xet && !f->big) {
        rd_blob_read(r);
        return;
    }
    if (f->big && r->ops->xorbs) {
        rd_big_label(r);
        return;
    }
    if (f->big && f->map_state != MAP_READY) {
        r->next = f->map_wait;
        f->map_wait = r;
        rd_big_map(f);
        return;
    }
    if (f->map_state == MAP_READY) {
        if (r->ops->seq)
            rd_seq_prefetch(f, r->off, r->len);
        rd_xet_try(r);
        return;
    }
    r->next = f->map_wait;
    f->map_wait = r;
    if (f->map_state == MAP_NONE)
        rd_map_load(f);
}
