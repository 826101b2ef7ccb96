/* window.h — window fetches ("cells": the aligned 8 MiB windows of a
 * file).  A window is one fetch however many reads wait on it:
 * zn_cas_reconstruction(Range, rev = the commit) -> terms become extents
 * (fmap.h) -> each descriptor with chunks missing in the store joins or
 * starts an xorb range fetch (xfetch.h), the window waiting on it as an
 * rd_waiter (told the end, asked who waits, asked to answer its FUSE reads
 * early); a large non-Xet file's window comes through rd_ctx.big_window.
 * A failed window is tried again from a fresh reconstruction (signed URLs
 * may have expired) with backoff, MAX_ATTEMPTS within DEADLINE_MS; then its
 * reads fail with EIO (a fill puts its piece on its retry list).  A read
 * waits at most READ_DEADLINE_MS (ZESTFS_READ_DEADLINE) if its kind has a
 * deadline; it goes on through rd_ctx.resume, at most MAX_ROUNDS times.
 * The reconstructions of the windows around a miss are asked ahead and kept
 * (bounded, until their URLs near expiry), so a later miss there is one
 * round trip (window.c, "learned ahead"); rd_learn_free at teardown.
 * A window may have several cells, each fetching a span of it (tensor
 * files: tspan.h, prefetch.h); a read waits on every cell holding its
 * bytes, and a new cell takes only bytes no cell of its window holds. */
#ifndef ZESTFS_FS_READ_WINDOW_H
#define ZESTFS_FS_READ_WINDOW_H

#include "read_int.h"

void rd_cell_done(rd_cell *cl, int err);
bool rd_retryable(int err);
void rd_cell_attempt_failed(rd_cell *cl, int err);
void rd_cell_start(rd_cell *cl);
rd_cell *rd_cell_find(rd_file *f, uint64_t k);
rd_cell *rd_cell_at(rd_file *f, uint64_t k, uint64_t pos);
void rd_cell_gap(rd_file *f, uint64_t k, uint64_t pos, uint64_t *lo, uint64_t *hi);
rd_cell *rd_cell_new(rd_file *f, uint64_t k);
void rd_fetch_cells(rd_read *r, uint64_t from);
void rd_learn_free(rd_file *f);

#endif
