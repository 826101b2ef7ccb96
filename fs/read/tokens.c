/* tokens.c — Xet read tokens ahead of the first read (zfs.h:
 * zf_read_warm_repo): asked for a few refs of each repo at mount, cached
 * and shared in net/. */
#include "read_int.h"

static void warm_token_cb(void *ud, int err, const zn_xet_token *tok)
{
    (void)ud;
    (void)tok;
    if (err)
        zf_debug("zestfs: Xet read token ahead of a read: %s\n", zf_strerror(-err));
}

void zf_read_warm_repo(zf_fs *fs, const zf_repo *r)
{
    rd_ctx *c = fs->read_ctx;
    if (!c || !c->hub || c->stopping || !r)
        return;
    for (size_t i = 0; i < r->nrefs && i < 4; i++) { /* main, and a few more */
        const zf_commit *cm = zf_repo_commit(r, r->refs[i].sha);
        bool seen = false, xet = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = !strcmp(r->refs[k].sha, r->refs[i].sha);
        for (size_t k = 0; cm && !seen && k < cm->nfiles && !xet; k++)
            xet = cm->files[k].has_xet;
        if (xet) /* cached and shared in net/: no request while the one we have is fresh */
            zn_hub_xet_token(c->hub, (zn_repo_type)r->type, r->id, cm->sha, false, warm_token_cb,
                             NULL, NULL);
    }
}
