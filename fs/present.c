/* present.c — the repo models the mount presents (fs->tree): adding one, or
 * replacing one of the same type and id (the old model is retired, kept
 * until zf_fs_destroy: open handles and reads may still point into it).
 * Called by startup (hubload.c, mount.c), on-demand loads, pulls and ref
 * writes (refs.c); calls only the swarm (p2p.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p.h"
#include "present.h"
#include "zfs.h"

int zf_fs_add_repo(zf_fs *fs, zf_repo *r)
{
    for (size_t i = 0; i < fs->tree.nrepos; i++)
        if (fs->tree.repos[i]->type == r->type && strcmp(fs->tree.repos[i]->id, r->id) == 0) {
            zf_repo **nv = realloc(fs->retired, (fs->nretired + 1) * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            fs->retired = nv;
            fs->retired[fs->nretired++] = fs->tree.repos[i];
            fs->tree.repos[i] = r;
            if (fs->p2p) /* new commits: their xorbs are announced too */
                zf_p2p_add_repo(fs->p2p, r);
            return 0;
        }
    zf_repo **nr = realloc(fs->tree.repos, (fs->tree.nrepos + 1) * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    fs->tree.repos = nr;
    fs->tree.repos[fs->tree.nrepos++] = r;
    if (fs->p2p) /* presented after startup (on demand, pull): its swarm too */
        zf_p2p_add_repo(fs->p2p, r);
    return 0;
}

const zf_repo *zf_fs_find_repo(const zf_fs *fs, enum zf_repo_type type, const char *id)
{
    for (size_t i = 0; i < fs->tree.nrepos; i++)
        if (fs->tree.repos[i]->type == type && strcmp(fs->tree.repos[i]->id, id) == 0)
            return fs->tree.repos[i];
    return NULL;
}
