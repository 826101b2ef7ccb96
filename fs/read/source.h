/* source.h — where a fetch's bytes come from, and when.  Peers that hold
 * the whole range first (raced against the CDN when slow: RACE_AFTER_MS for
 * a fetch a read waits on, BG_RACE_AFTER_MS otherwise); when none does but
 * one is fetching it from the CDN now, wait for that (parked, PARK_*); a
 * background fetch with peers connected waits a random 0..JITTER_MS first;
 * else the CDN.  Foreground first: while a CDN transfer that a read (or a
 * sequential reader) wants is in flight, those only fills want are held
 * (zn_req_pause, HOLD_MAX_MS at most) and fills start FILL_XF_FG at most.
 * Who wants a fetch is asked of its waiters (rd_waiter_ops.want).  The
 * queue of fetches waiting for budget is pumped here.  The body (or an
 * error) goes back through rd_ctx.xf_body. */
#ifndef ZESTFS_FS_READ_SOURCE_H
#define ZESTFS_FS_READ_SOURCE_H

#include "read_int.h"

void rd_xf_free(rd_xf *xf);
void rd_net_prio(rd_ctx *c);
void rd_xf_pump(rd_ctx *c);

#endif
