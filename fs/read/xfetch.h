/* xfetch.h — TODO contract */
#ifndef ZESTFS_FS_READ_XFETCH_H
#define ZESTFS_FS_READ_XFETCH_H

#include "read_int.h"

void rd_xf_finish(rd_xf *xf, int err);
int rd_check_terms(const rd_xf *xf, const rd_check *chk, size_t n, const uint32_t *lens);
void rd_xf_decode_start(rd_xf *xf);
void rd_xf_peer_work(uv_work_t *w);
void rd_queue_put(rd_xf *xf, uv_work_cb work);
int rd_read_from_runs(rd_read *r);
void rd_early_collect(rd_xf *xf);
int rd_xf_need(rd_ctx *c, rd_file *f, const rd_waiter *w, const xet_recon *rc,
               const xet_fetch *d);
int rd_xf_early(rd_xf *xf, const rd_file *f, fuse_req_t req, uint64_t off, uint64_t len);
void rd_xf_body(rd_xf *xf, int err);

#endif
