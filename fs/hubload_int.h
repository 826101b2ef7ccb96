/* hubload_int.h — what hubload.c's Hub loads share with ondemand.c: one
 * repo resolved on the Hub (revision, tree, visibility) and merged into its
 * persisted model is a job. */
#ifndef ZESTFS_FS_HUBLOAD_INT_H
#define ZESTFS_FS_HUBLOAD_INT_H

#include <stdbool.h>

#include "net.h"
#include "zfs.h"

typedef struct job job;
struct job {
    zf_fs *fs;
    zc_store *store;
    zn_hub *hub;
    const char *spec;
    enum zf_repo_type type;
    char id[256];
    char rev[256];
    char key[300];
    zn_revision revision;
    zn_tree *tree;         /* the commit's listing, while hidden hashes and the
                            * visibility are asked for */
    enum zf_visibility vis; /* the Hub's answer to the anonymous repo info */
    zf_repo *repo;         /* the merged model, when err == 0 */
    char *json;            /* its JSON */
    int err;
    bool done;
    void (*on_done)(job *j);
    /* a gated repo (issue 18): redacted Xet hashes asked for per file */
    size_t next;           /* next tree entry to look at */
    int inflight, perr;
    bool probed, no_access;
    bool refresh;          /* a TTL check of a presented ref: nothing to do
                            * when the Hub names the commit it already has */
    bool lookup;           /* a revision looked up in a presented repo */
};

/* "[models/|datasets/|spaces/]org/name[@rev]" into j (type, id, rev, key):
 * 0 or -EINVAL. */
int parse_spec(const char *spec, job *j);
/* zn_hub_revision's callback (ud: the job): the revision in, the tree
 * next; j->on_done when the job is over. */
void on_revision(void *ud, int err, const zn_revision *rev);
/* A bad or expired Hub token (-EKEYREVOKED) is said once per process:
 * true when this line is a repeat. */
bool token_log_once(int err);

#endif
