/* nodes.h — the inode table of the FUSE operations (nodes.c). */
#ifndef ZESTFS_FS_NODES_H
#define ZESTFS_FS_NODES_H

#include <stdint.h>

#include "zfs.h"

typedef struct zf_node {
    uint64_t ino;
    uint64_t parent;
    char *name;
    uint64_t nlookup;
    int held;        /* fd + 1 of a real file renamed onto a ref and removed
                      * (rename_onto_ref): keeps its inode number from reuse
                      * while the kernel may still use it; 0: none */
    struct zf_node *next;
} zf_node;

zf_node *node_get(zf_fs *fs, uint64_t ino);             /* NULL: unknown */
/* Look up ino (one more lookup), adding it under (parent, name) if new;
 * NULL on ENOMEM. */
zf_node *node_ref(zf_fs *fs, uint64_t ino, uint64_t parent, const char *name);
void node_forget(zf_fs *fs, uint64_t ino, uint64_t nlookup);
/* Mount-relative path of an inode ("" for the root); malloc'd, NULL if the
 * inode is unknown. */
char *node_path(zf_fs *fs, uint64_t ino);
char *join(const char *dir, const char *name);            /* "dir/name"; malloc'd */

#endif
