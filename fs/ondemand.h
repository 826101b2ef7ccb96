/* ondemand.h — repos and revisions on demand, and refs checked again
 * (ondemand.c). */
#ifndef ZESTFS_FS_ONDEMAND_H
#define ZESTFS_FS_ONDEMAND_H

#include "zfs.h"

/* Repos on demand (ondemand.c), on fs->loop, after zf_read_init: a lookup
 * of an unknown "models--org--name" (datasets--, spaces--) at the root
 * resolves org/name@main on the Hub (through zf_read_hub), presents and
 * persists it, then answers; absent upstream it is ENOENT, remembered for a
 * minute (other failures for 10 s).  Nothing when offline. */
int zf_ondemand_init(zf_fs *fs, zc_store *store);
void zf_ondemand_free(zf_fs *fs);
/* Revisions on demand (issue 18): a lookup inside a presented repo of
 * `<folder>/snapshots/<40 hex>` or `<folder>/refs/<name>` that found nothing
 * (`path`, relative to the root) resolves that commit, branch, tag or
 * refs/pr/N on the Hub, presents it, then answers (zf_lookup_reply); absent
 * upstream: ENOENT, remembered as for repos.  False: not taken (answer now).
 * zf_refs_ttl_start: every presented repo's refs are asked for again once
 * their last check is `ttl_s` seconds old (0: never); a moved ref brings its
 * commit's tree, the new snapshot is presented, the old ones stay.
 * zf_ondemand_stop (on the loop, at unmount) ends that timer. */
bool zf_lookup_rev(zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name, const char *path);
void zf_refs_ttl_start(zf_fs *fs, unsigned ttl_s);
void zf_ondemand_stop(zf_fs *fs);

#endif
