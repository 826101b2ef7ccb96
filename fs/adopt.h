/* adopt.h — caches that already hold models (issue 18 item 6; design note
 * in adopt.c).  On the mount's loop, after zf_read_init and zf_p2p_start. */
#ifndef ZESTFS_FS_ADOPT_H
#define ZESTFS_FS_ADOPT_H

#include <stdbool.h>
#include <stdint.h>

#include "zfs.h"

typedef struct zf_adopt zf_adopt;
typedef struct zf_adopt_stats {
    uint64_t files, bytes;            /* earlier downloads found (Xet, and non-Xet when mounted) */
    uint64_t done, done_bytes;        /* verified and imported (non-Xet: verified), or recorded before */
    uint64_t pending, pending_bytes;  /* not looked at yet */
    uint64_t refused, refused_bytes;  /* hash mismatch: fetched like any other blob */
    uint64_t failed;                  /* verified, but not imported (no reconstruction, I/O) */
    bool running;
} zf_adopt_stats;

/* Look for earlier downloads of every presented Xet file under fs->rootfd
 * (cheap: fstatat/readlinkat per file) and start adopting them, one at a
 * time on the pool.  Sets fs->adopt.  0 or -errno. */
int zf_adopt_start(zf_fs *fs, zc_store *store);
/* The real blobs/<etag> at `path` (mount-relative) is not verified (yet):
 * the overlay presents the virtual blob instead (ops.c). */
bool zf_adopt_hides(const zf_adopt *a, const char *path);
const zf_adopt_stats *zf_adopt_stats_get(const zf_adopt *a);
void zf_adopt_stop(zf_adopt *a);  /* on the loop, before zf_read_stop */
void zf_adopt_free(zf_adopt *a);  /* after the loop ran empty */

#endif
