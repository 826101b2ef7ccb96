/* options.h — option helpers shared by the commands (options.c). */
#ifndef ZESTFS_FS_OPTIONS_H
#define ZESTFS_FS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Option helpers shared by the commands (options.c). */
char *zf_default_store(void);                 /* $XDG_CACHE_HOME/zestfs or ~/.cache/zestfs */
uint64_t zf_default_cap(const char *store);   /* half the store's file system, ≥ 1 GiB */
int zf_parse_size(const char *s, uint64_t *out); /* "10G", "512M", bytes */
char *zf_endpoint(const char *opt);           /* opt, $HF_ENDPOINT or huggingface.co; NULL: bad */
char *zf_find_token(const char *opt);         /* opt, $HF_TOKEN or the HF token file */
/* A token file (owned by us or root, not writable by others, no symlink),
 * whitespace trimmed; NULL if refused, absent or empty. */
char *zf_read_token_file(const char *path);
/* A millisecond knob from the environment (tests shorten waits with these):
 * a whole decimal number in (0, 1 day); dflt when unset or anything else. */
uint64_t zf_env_ms(const char *name, uint64_t dflt);

/* Where a mount registers its control socket (options.c): a file in the
 * user's run directory named after the mountpoint's real path.  Compute it
 * before mounting (realpath would ask the mount itself). */
int zf_registry_path(const char *mountpoint, char *out, size_t len, bool mkdirs);

#endif
