/* hubload.h — presenting repos from the Hub: at startup, and resolved
 * while mounted (hubload.c). */
#ifndef ZESTFS_FS_HUBLOAD_H
#define ZESTFS_FS_HUBLOAD_H

#include "net.h"
#include "zfs.h"

/* Startup (hubload.c), before the FUSE session exists and outside any
 * loop: every repo persisted in the store ("repo/<type>/<id>") is loaded,
 * then each --repo is resolved on the Hub (revision + tree listing, on a
 * private loop), merged into its persisted model, persisted again and
 * presented.  Offline, or when the Hub cannot be reached, the persisted
 * model is presented instead.  0, or a negative errno for a repo that
 * cannot be presented at all (a message is printed). */
int zf_load_repos(zf_fs *fs, const zf_opts *o, zc_store *store);

/* Resolve "[models/|datasets/|spaces/]org/name[@rev]" while the loop runs
 * (hubload.c): online, the Hub's revision and tree are merged into the
 * presented model (which replaces the old one; see `retired`) and
 * persisted; offline or when the Hub fails, the stored model answers if it
 * knows rev.  cb gets the presented repo and the commit (40 hex), or an
 * errno (-ENOENT unknown, -ENETDOWN offline and not stored); never from
 * inside the call.  -EINVAL for a bad spec. */
typedef void (*zf_resolve_cb)(void *ud, int err, const zf_repo *repo, const char *commit);
int zf_resolve_repo(zf_fs *fs, zc_store *store, const char *spec, zf_resolve_cb cb, void *ud);

/* Xet read tokens ahead of the mount: hubload.c asks them, tokseed.h keeps
 * them for the read path. */

#endif
