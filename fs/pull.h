/* pull.h — the pull engine (fs/pull.c): make every file of a repo revision
 * (or those matching include globs) stored, on the loop of a zf_fs that has
 * the read path (zf_read_init) and, when peers are on, a swarm (fs->p2p).
 * Used by the control socket (ctl.c: pulls and pins through a mount) and by
 * the standalone command (pull_cli.c); the engine prints nothing but the
 * store-cap refusal and knows no command line.
 *
 * zf_pull_start resolves spec, then fills every file of the commit that
 * matches one of the include globs (all when none), a few files at a time.
 * cb: progress (final=false), then once final=true with st->err 0 or the
 * first error (-ENOSPC: the selection exceeds the store cap; -ECANCELED).
 * Never from inside zf_pull_start or zf_pull_cancel.  The zf_pull is gone
 * once the final callback returns. */
#ifndef ZESTFS_FS_PULL_H
#define ZESTFS_FS_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"

struct zf_fs;

typedef struct zf_pull_stat {
    uint64_t done, total;       /* bytes */
    unsigned files_done, files, files_failed;
    char commit[41];
    int err;
    /* bytes the read path fetched since the pull started, by source (its
     * bytes_by_src; through a mount, reads running meanwhile count too) */
    uint64_t peer_bytes, cdn_bytes;
} zf_pull_stat;
typedef struct zf_pull zf_pull;
typedef void (*zf_pull_cb)(void *ud, const zf_pull_stat *st, bool final);
int zf_pull_start(struct zf_fs *fs, zc_store *store, const char *spec, const char *const *include,
                  size_t ninclude, zf_pull_cb cb, void *ud, zf_pull **out);
/* Peers first: once the revision is resolved (its swarm joined, the static
 * peers dialled), wait until at least `n` peers are connected, `max_ms` at
 * most, before the first fill starts, so the first fetches can find holders.
 * Call right after zf_pull_start; no-op without fs->p2p. */
void zf_pull_wait_peers(zf_pull *p, unsigned n, unsigned max_ms);
void zf_pull_cancel(zf_pull *p);

#endif
