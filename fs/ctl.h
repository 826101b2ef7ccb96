/* ctl.h — the mount's control socket, server side (ctl.c; protocol there). */
#ifndef ZESTFS_FS_CTL_H
#define ZESTFS_FS_CTL_H

#include "zfs.h"

/* The control socket (ctl.c): see the protocol there. */
typedef struct zf_ctl zf_ctl;
int zf_ctl_start(zf_fs *fs, zc_store *store, const char *path, zf_ctl **out);
void zf_ctl_stop(zf_ctl *ctl);   /* closes it (pulls in flight are cancelled) */
void zf_ctl_free(zf_ctl *ctl);   /* after the loop ran empty */

#endif
