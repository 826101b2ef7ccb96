/* tokseed.c — Xet read tokens asked at startup, kept for the read path
 * (tokseed.h).  A leaf: hubload.c adds, read/ctx.c gives, ops.c frees. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tokseed.h"

struct zf_tokseed {
    struct zf_tokseed *next;
    enum zf_repo_type type;
    char id[256];
    char sha[41];
    char *access, *cas_url;
    int64_t exp;
};

static void seed_free(struct zf_tokseed *s)
{
    if (s->access) { /* a secret: no copy left in freed memory */
        volatile char *p = s->access;
        while (*p)
            *p++ = 0;
    }
    free(s->access);
    free(s->cas_url);
    free(s);
}

void zf_tokseeds_free(zf_fs *fs)
{
    while (fs->tokseeds) {
        struct zf_tokseed *s = fs->tokseeds;
        fs->tokseeds = s->next;
        seed_free(s);
    }
}

int zf_tokseeds_add(zf_fs *fs, enum zf_repo_type type, const char *id, const char *sha,
                    const zn_xet_token *t)
{
    struct zf_tokseed *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->type = type;
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->sha, sizeof s->sha, "%s", sha);
    s->access = strdup(t->access_token);
    s->cas_url = strdup(t->cas_url);
    s->exp = t->exp;
    if (!s->access || !s->cas_url) {
        seed_free(s);
        return -ENOMEM;
    }
    s->next = fs->tokseeds;
    fs->tokseeds = s;
    return 0;
}

void zf_tokseeds_give(zf_fs *fs, zn_hub *hub)
{
    for (struct zf_tokseed *s = fs->tokseeds; hub && s; s = s->next) {
        zn_xet_token t = {.access_token = s->access, .cas_url = s->cas_url, .exp = s->exp};
        int err = zn_hub_xet_token_seed(hub, (zn_repo_type)s->type, s->id, s->sha, &t);
        zf_debug("zestfs: %s/%s@%.12s: Xet read token from startup %s\n", zf_type_plural(s->type),
                 s->id, s->sha, err ? zf_strerror(-err) : "kept");
    }
    zf_tokseeds_free(fs);
}

