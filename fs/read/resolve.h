/* resolve.h — a GET of a non-Xet file's bytes at
 * {endpoint}/{repo}/resolve/{commit}/{path} (one range of it, or all),
 * into buf.  A redirect to another origin (LFS content on a CDN) is
 * followed once, without credentials.  done gets err 0 only for a 200 (or,
 * for a range, 206) answer of exactly the bytes asked. */
#ifndef ZESTFS_FS_READ_RESOLVE_H
#define ZESTFS_FS_READ_RESOLVE_H

#include "read_int.h"

typedef void (*rs_done_cb)(void *ud, int err, uint8_t *buf, uint64_t len);

int rd_rs_start(rd_file *f, bool ranged, uint64_t off, uint64_t len, uint8_t *buf,
                    const zn_retry *retry, rs_done_cb done, void *ud);

#endif
