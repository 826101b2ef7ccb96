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
    /* A repo-at tree (`zestfs --repo-at`): the mount's root is one snapshot
     * of one repo, its files regular files (ZV_BLOB), nothing else.  Paths
     * below the root start with the commit they were looked up in:
     * "<40 hex>/dir/file" (ops.c keeps it in the inode of each name at the
     * root), so a file opened before the ref moved stays that commit's file;
     * "" is the root, listing the commit `at_rev` names now.  The repo is
     * found in `base`'s repos (another mount's tree: a repo-at mount
     * attached to a running zestfs, view.c), else in this tree's own. */
    const struct zv_tree *base;
    const char *at_folder;      /* "models--org--name"; NULL: the HF cache layout */
    const char *at_rev;         /* a ref name or a 40-hex commit */
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
/* A repo-at tree: the commit presented at its root now (at_rev's ref, else
 * at_rev as a commit); NULL when the tree is not one or the repo or commit
 * is not presented. */
const zf_commit *zv_at_commit(const zv_tree *t);
/* Stable inode number for a virtual path (high bit set; never 1). */
uint64_t zv_ino(const char *path);

#endif
