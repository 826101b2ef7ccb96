/* admin.h — verify and pins (admin.c). */
#ifndef ZESTFS_FS_ADMIN_H
#define ZESTFS_FS_ADMIN_H

#include "zfs.h"

/* Verify (admin.c): re-hash the stored bytes of every file of a commit
 * against its Xet id (or sha256 / git sha1), reading the store only.
 * file_cb per file with "ok", "mismatch", "missing" or "error" (+errno);
 * done_cb once at the end.  Never from inside zf_verify_start. */
typedef struct zf_verify_stat {
    unsigned files, ok, bad, missing;
    uint64_t bytes;            /* verified */
    int err;
} zf_verify_stat;
typedef struct zf_verify zf_verify;
typedef void (*zf_verify_file_cb)(void *ud, const char *path, const char *result, int err);
typedef void (*zf_verify_done_cb)(void *ud, const zf_verify_stat *st);
int zf_verify_start(zf_fs *fs, const zf_repo *repo, const char *commit, zf_verify_file_cb file_cb,
                    zf_verify_done_cb done_cb, void *ud, zf_verify **out);
void zf_verify_cancel(zf_verify *v);

/* Pins (admin.c): store metadata "pins" lists "<type>/<id>@<commit>"; a
 * pinned commit's xorbs are labelled in the store (never evicted).
 * zf_pin(on) records the pin (one per repo: a new commit replaces the old)
 * and labels; (off) removes it, unlabels, relabels the other pins.  cb on
 * the loop, possibly from inside the call.  zf_pins_apply relabels every
 * pin at startup (after zf_read_init). */
typedef struct zf_pinop zf_pinop;
typedef void (*zf_pin_cb)(void *ud, int err, const char *key, uint64_t xorbs);
int zf_pin(zf_fs *fs, zc_store *store, const zf_repo *repo, const char *commit, bool on,
           zf_pin_cb cb, void *ud);
int zf_pins_apply(zf_fs *fs, zc_store *store);
int zf_pins_list(zc_store *store, char ***out, size_t *n); /* malloc'd strings + array */

#endif
