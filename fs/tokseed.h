/* tokseed.h — Xet read tokens ahead of the mount (tokseed.c).
 *
 * zf_load_repos (hubload.c) asks the Xet read
 * token of the first few --repo's commits on its private loop, alongside
 * the tree listing, and keeps those that came in fs->tokseeds; zf_read_init
 * hands them to its hub's cache (zf_tokseeds_give: every seed is wiped and
 * freed, hub NULL included), so the first read after the mount waits for
 * no token request.  zf_tokseeds_free wipes what is left (zf_fs_destroy). */
#ifndef ZESTFS_FS_TOKSEED_H
#define ZESTFS_FS_TOKSEED_H

#include "net.h"
#include "zfs.h"

/* Keep a copy of token t for type/id@sha (0 or -ENOMEM). */
int zf_tokseeds_add(zf_fs *fs, enum zf_repo_type type, const char *id, const char *sha,
                    const zn_xet_token *t);
void zf_tokseeds_give(zf_fs *fs, zn_hub *hub);
void zf_tokseeds_free(zf_fs *fs);

#endif
