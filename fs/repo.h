/* repo.h — what zestfs presents of one Hub repository: its refs and, per
 * commit, the complete file listing (path, size, etag, Xet id).
 *
 * The model is built from the Hub API (tree listing) or loaded from the JSON
 * persisted in the store, so an offline remount presents exactly what the
 * last online mount did.  JSON form (zf_repo_to_json / zf_repo_from_json):
 *
 *   {"format": 1, "type": "model", "id": "org/name",
 *    "refs": {"main": "<40 hex>"},
 *    "ref_written": {"main": <unix s>}?,   (refs a client wrote; ops.c)
 *    "commits": {"<40 hex>": {"date": <unix s>, "files": [
 *        {"path": "config.json", "size": 123, "oid": "<git blob sha1>",
 *         "lfs_sha256": "<64 hex>"?, "xet_hash": "<64 hex>"?}, ...]}},
 *    "visibility": {"verdict": "public|private|gated|unknown", "checked": <unix s>}?}
 *
 * Names coming from the network are validated here (repo ids, revision
 * names, repo paths): no "..", no absolute paths, no NUL, no empty
 * components, bounded lengths — nothing from the Hub can escape the mount. */
#ifndef ZESTFS_FS_REPO_H
#define ZESTFS_FS_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xet.h"

enum zf_repo_type { ZF_MODEL, ZF_DATASET, ZF_SPACE };

typedef struct zf_file {
    char *path;         /* repo-relative, validated */
    uint64_t size;
    char oid[41];       /* git blob sha1 */
    char etag[65];      /* blob name: lfs sha256 if LFS/Xet, else oid */
    bool has_lfs;
    bool has_xet;
    xet_hash xet;       /* Xet file id when has_xet */
} zf_file;

typedef struct zf_commit {
    char sha[41];
    int64_t date;       /* used as mtime of everything presented for it */
    size_t nfiles;
    zf_file *files;     /* sorted by path (strcmp) */
} zf_commit;

typedef struct zf_ref {
    char *name;         /* "main", "v1.0", "refs/pr/1" */
    char sha[41];
    int64_t written;    /* unix s a client wrote this value through the mount
                         * (ops.c); 0: the value is the Hub's */
} zf_ref;

/* Whether the repo may be seeded: the Hub's repo info asked without a token
 * (zn_hub_repo_info_anon) when the repo was last resolved.  Public only for
 * a 200 with "private": false and "gated": false; UNKNOWN: never checked, or
 * the check got no answer.  Only PUBLIC repos are served to peers (plus
 * --seed-private ones). */
enum zf_visibility { ZF_VIS_UNKNOWN, ZF_VIS_PUBLIC, ZF_VIS_PRIVATE, ZF_VIS_GATED };

typedef struct zf_repo {
    enum zf_repo_type type;
    char *id;           /* "org/name" */
    char *folder;       /* "models--org--name" */
    size_t nrefs;
    zf_ref *refs;
    size_t ncommits;
    zf_commit *commits;
    /* The Hub (issue 18).  canonical: the id the Hub's repo info names (a
     * renamed repo is presented and cached under `id`, the name asked for;
     * its swarm is the canonical one); NULL when unknown or the same.
     * gated_url: set when the repo is gated and our token has no access:
     * its files are listed, opening one fails with EACCES; the page where
     * access is asked for.  JSON: "canonical", "gated_url" (optional). */
    char *canonical;
    char *gated_url;
    uint64_t gated_logged_ms;  /* last refused-open log line (not persisted) */
    enum zf_visibility vis;   /* persisted as "visibility": {"verdict", "checked"} */
    int64_t vis_checked;      /* Unix s of the check; 0: never */
} zf_repo;

/* "models--org--name" for (ZF_MODEL, "org/name"); NULL if the id is invalid. */
char *zf_repo_folder(enum zf_repo_type type, const char *id);
/* Inverse of zf_repo_folder: -EINVAL if `folder` is not a repo folder name. */
int zf_repo_parse_folder(const char *folder, enum zf_repo_type *type, char **id);
bool zf_valid_repo_id(const char *id);
bool zf_valid_rev(const char *rev);
bool zf_valid_path(const char *path);
const char *zf_type_plural(enum zf_repo_type t); /* "models", "datasets", "spaces" */
const char *zf_type_name(enum zf_repo_type t);   /* "model", "dataset", "space" */
/* "unknown", "public", "private", "gated"; parse: -EINVAL if none of them. */
const char *zf_vis_name(enum zf_visibility v);
int zf_vis_parse(const char *s, enum zf_visibility *out);

int zf_repo_from_json(const char *json, size_t len, zf_repo **out);
char *zf_repo_to_json(const zf_repo *r);  /* malloc'd */
void zf_repo_free(zf_repo *r);

const zf_commit *zf_repo_commit(const zf_repo *r, const char *sha);
const zf_file *zf_commit_file(const zf_commit *c, const char *path);
/* Is `dir` ("" for the root, else "a/b") a directory of the commit's tree? */
bool zf_commit_is_dir(const zf_commit *c, const char *dir);
/* The file whose etag is `etag` in any commit (blobs/<etag>); NULL if none. */
const zf_file *zf_repo_blob(const zf_repo *r, const char *etag, const zf_commit **commit);

/* A copy of r with ref `name` set to `sha` (added when absent), stamped
 * `written` (0: the Hub's value); NULL on a bad name or sha, or no memory. */
zf_repo *zf_repo_with_ref(const zf_repo *r, const char *name, const char *sha, int64_t written);

/* A copy of r without ref `ref` and without commit `commit` (each NULL:
 * kept); refs naming a removed commit stay (cachedel.c).  NULL: no memory. */
zf_repo *zf_repo_without(const zf_repo *r, const char *ref, const char *commit);

/* trees/<commit>.json as huggingface_hub >= 1.22 writes it (format_version 1). */
char *zf_commit_tree_json(const zf_commit *c); /* malloc'd */

#endif
