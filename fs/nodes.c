/* nodes.c — the inode table of the FUSE operations: open hashing on the
 * inode number; each node names its parent and its name, so a path can be
 * rebuilt for *at() calls and vtree lookups (see ops.c's header). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodes.h"
#include "zfs.h"

/* ---- inode table ------------------------------------------------------- */

zf_node *node_get(zf_fs *fs, uint64_t ino)
{
    for (zf_node *n = fs->nodes[ino % fs->nbuckets]; n; n = n->next)
        if (n->ino == ino)
            return n;
    return NULL;
}

static void grow(zf_fs *fs)
{
    size_t nb = fs->nbuckets * 2;
    zf_node **t = calloc(nb, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < fs->nbuckets; i++)
        for (zf_node *n = fs->nodes[i], *nx; n; n = nx) {
            nx = n->next;
            n->next = t[n->ino % nb];
            t[n->ino % nb] = n;
        }
    free(fs->nodes);
    fs->nodes = t;
    fs->nbuckets = nb;
}

zf_node *node_ref(zf_fs *fs, uint64_t ino, uint64_t parent, const char *name)
{
    zf_node *n = node_get(fs, ino);
    if (n) {
        if (n->parent != parent || strcmp(n->name, name) != 0) {
            char *nm = strdup(name);
            if (nm) {
                free(n->name);
                n->name = nm;
                n->parent = parent;
            }
        }
        n->nlookup++;
        return n;
    }
    if (fs->nnodes > fs->nbuckets * 2)
        grow(fs);
    n = calloc(1, sizeof *n);
    if (!n || !(n->name = strdup(name))) {
        free(n);
        return NULL;
    }
    n->ino = ino;
    n->parent = parent;
    n->nlookup = 1;
    n->next = fs->nodes[ino % fs->nbuckets];
    fs->nodes[ino % fs->nbuckets] = n;
    fs->nnodes++;
    return n;
}

void node_forget(zf_fs *fs, uint64_t ino, uint64_t nlookup)
{
    if (ino == FUSE_ROOT_ID)
        return;
    zf_node **pp = &fs->nodes[ino % fs->nbuckets];
    for (zf_node *n = *pp; n; pp = &n->next, n = n->next)
        if (n->ino == ino) {
            n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
            if (n->nlookup == 0) {
                *pp = n->next;
                if (n->held)
                    close(n->held - 1);
                free(n->name);
                free(n);
                fs->nnodes--;
            }
            return;
        }
}

/* Mount-relative path of an inode ("" for the root); malloc'd, NULL if the
 * inode is unknown. */
char *node_path(zf_fs *fs, uint64_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return strdup("");
    const char *parts[256];
    size_t np = 0, len = 0;
    while (ino != FUSE_ROOT_ID) {
        zf_node *n = node_get(fs, ino);
        if (!n || np == 256)
            return NULL;
        parts[np++] = n->name;
        len += strlen(n->name) + 1;
        ino = n->parent;
    }
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    while (np--) {
        size_t l = strlen(parts[np]);
        memcpy(o, parts[np], l);
        o += l;
        *o++ = '/';
    }
    o[-1] = 0;
    return out;
}

char *join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    char *out = malloc(dl + nl + 2);
    if (!out)
        return NULL;
    if (dl) {
        memcpy(out, dir, dl);
        out[dl] = '/';
        memcpy(out + dl + 1, name, nl + 1);
    } else
        memcpy(out, name, nl + 1);
    return out;
}
