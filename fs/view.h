/* view.h — repo-at mounts (`zestfs --repo-at REPO[@REV] MOUNTPOINT`): one
 * snapshot of one repo at a mountpoint's root (vtree.h, repo-at trees).
 *
 * A store is used by one zestfs at a time (its flock).  A repo-at mount
 * whose store is held by a running zestfs does not open it: it asks that
 * zestfs, over the store's control socket (ctl.c, {"cmd": "mount"}), to
 * serve the mountpoint too — one daemon, one store, one read path, swarm,
 * prefetch, status and metrics for every mount of it.  The attached mount
 * is a second FUSE session on the daemon's loop with its own inodes and
 * handles (a zf_fs whose tree presents the daemon's repos, view.c); it is
 * read-only and ends with the daemon. */
#ifndef ZESTFS_FS_VIEW_H
#define ZESTFS_FS_VIEW_H

#include <stdbool.h>

#include "zfs.h"

/* "[models/|datasets/|spaces/]org/name[@rev]": the repo folder
 * ("models--org--name") and the revision ("main" when none); malloc'd.
 * -EINVAL for a bad spec. */
int zf_at_parse(const char *spec, char **folder, char **rev);

/* The command side: ask the zestfs serving store_dir to mount spec at mnt
 * (read-only); waits for its answer and prints what happened.  An exit
 * status: 0 mounted, 1 not. */
int zf_view_attach(const char *store_dir, const char *spec, const char *mnt, bool allow_other);

/* The daemon side (ctl.c), on fs->loop: resolve spec (zf_resolve_repo:
 * presented in fs's tree, persisted), then mount it at mnt (absolute) as a
 * repo-at session served by fs's read path; `sock` is the control socket
 * registered for mnt (`zestfs status MNT`).  cb once, never from inside the
 * call: 0 and the commit presented, or a negative errno. */
typedef void (*zf_view_cb)(void *ud, int err, const char *commit);
int zf_view_mount(zf_fs *fs, zc_store *store, const char *sock, const char *spec, const char *mnt,
                  bool allow_other, zf_view_cb cb, void *ud);
/* `zestfs status`: each attached mount still mounted as {"mountpoint",
 * "repo" (as asked), "commit" (presented now)} appended to arr. */
struct cJSON;
void zf_views_status(zf_fs *fs, struct cJSON *arr);
/* At the daemon's unmount (on the loop): attached sessions stop reading
 * requests.  zf_views_free, after the loop ran empty: they are unmounted
 * and freed. */
void zf_views_stop(zf_fs *fs);
void zf_views_free(zf_fs *fs);

#endif
