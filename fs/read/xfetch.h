/* xfetch.h — xorb range fetches, keyed by (xorb, chunk range): one for all
 * the windows and files that need it, each an rd_waiter.  Fetch bodies in
 * flight are capped by XF_BUDGET (fetches queue beyond it, source.h).  A
 * CDN body is decoded on the pool (DEC_PARTS jobs; record count = the
 * descriptor's chunks, each term's chunks decode to its unpacked_length);
 * a peer's run comes verified.  The FUSE reads waiting whose bytes all lie
 * in the run are answered from it in memory (the replies go first, from the
 * pool job that then hashes and stores it with zc_put); reads arriving
 * meanwhile are answered from it on the loop (rd_read_from_runs).  Then the
 * waiters are told (done) and the stored run is pinned for them.  The
 * sources report a body or a failure through rd_ctx.xf_body = rd_xf_body. */
#ifndef ZESTFS_FS_READ_XFETCH_H
#define ZESTFS_FS_READ_XFETCH_H

#include "read_int.h"

void rd_xf_finish(rd_xf *xf, int err);
int rd_read_from_runs(rd_read *r);
int rd_xf_need(rd_ctx *c, rd_file *f, const rd_waiter *w, const xet_recon *rc,
               const xet_fetch *d);
int rd_xf_early(rd_xf *xf, const rd_file *f, fuse_req_t req, uint64_t off, uint64_t len);
void rd_xf_body(rd_xf *xf, int err);

#endif
