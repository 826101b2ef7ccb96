/* vtree.h — the virtual part of the mount: which paths zestfs presents for
 * the repos it knows (spec/hf-cache.md §4.1, §4.5), resolved from paths
 * relative to the mount root.  Pure lookups over the repo models: nothing
 * here does I/O or fetches content. */
#ifndef ZESTFS_FS_VTREE_H
#define ZESTFS_FS_VTREE_H

#include <stdbool.h>
#include <stdint.h>

#include "repo.h"

enum zv_kind {
    ZV_NONE = 0,
    ZV_DIR,        /* root, repo folder, refs/, snapshots/<c>/sub, .locks/..., ... */
    ZV_REF,        /* refs/<rev>: 40 hex, no newline */
    ZV_LINK,       /* snapshots/<c>/<path> -> ../../blobs/<etag> */
    ZV_BLOB,       /* blobs/<etag>: lazily fetched content */
    ZV_EMPTY,      /* .no_exist/<c>/<path> marker */
    ZV_TREEJSON,   /* trees/<c>.json */
};

typedef struct zv_ent {
    enum zv_kind kind;
    const zf_repo *repo;
    const zf_commit *commit;
    const zf_file *file;   /* ZV_LINK, ZV_BLOB */
    const zf_ref *ref;     /* ZV_REF */
    uint64_t size;
    int64_t mtime;
} zv_ent;

typedef struct zv_tree {
    size_t nrepos;
    zf_repo **repos;
} zv_tree;

/* Resolve a path relative to the mount root ("" = root; no leading '/'). */
bool zv_resolve(const zv_tree *t, const char *path, zv_ent *out);
/* Names directly under a ZV_DIR path, each once, in a stable order. */
typedef void (*zv_name_cb)(void *ud, const char *name, enum zv_kind kind);
void zv_list(const zv_tree *t, const char *path, zv_name_cb cb, void *ud);
/* Symlink target of a ZV_LINK (malloc'd), content of ZV_REF / ZV_TREEJSON
 * (malloc'd, *len set). */
char *zv_link_target(const zv_ent *e);
char *zv_content(const zv_ent *e, size_t *len);
/* Stable inode number for a virtual path (high bit set; never 1). */
uint64_t zv_ino(const char *path);

#endif
