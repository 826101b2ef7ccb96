/* file.c — the contract is in file.h. */
#include "read_int.h"
#include "file.h"

uint32_t rd_hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

rd_file *rd_file_get(rd_ctx *c, const zv_ent *e)
{
    const zf_file *zf = e->file;
    char key[72];
    if (zf->has_xet) {
        key[0] = 'x';
        xet_hash_to_string(&zf->xet, key + 1);
    } else
        snprintf(key, sizeof key, "b%s", zf->etag);
    uint32_t b = rd_hash_key(key) % NBUCKETS;
    for (rd_file *f = c->tab[b]; f; f = f->hnext)
        if (strcmp(f->key, key) == 0)
            return f;
    rd_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->c = c;
    memcpy(f->key, key, sizeof key);
    f->xet = zf->has_xet;
    if (f->xet)
        memcpy(f->id, key + 1, 65);
    f->size = zf->size;
    f->type = (zn_repo_type)e->repo->type;
    f->repo = e->repo->id;
    memcpy(f->rev, e->commit->sha, 41);
    f->path = zf->path;
    memcpy(f->oid, zf->oid, 41);
    memcpy(f->etag, zf->etag, 65);
    f->has_lfs = zf->has_lfs;
    f->big = !f->xet && f->size > BLOB_MAX;
    f->hnext = c->tab[b];
    c->tab[b] = f;
    return f;
}

void rd_lru_unlink(rd_ctx *c, rd_file *f)
{
    if (f->lru_prev)
        f->lru_prev->lru_next = f->lru_next;
    else if (c->lru_head == f)
        c->lru_head = f->lru_next;
    if (f->lru_next)
        f->lru_next->lru_prev = f->lru_prev;
    else if (c->lru_tail == f)
        c->lru_tail = f->lru_prev;
    f->lru_prev = f->lru_next = NULL;
}

void rd_lru_touch(rd_ctx *c, rd_file *f)
{
    rd_lru_unlink(c, f);
    f->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = f;
    c->lru_head = f;
    if (!c->lru_tail)
        c->lru_tail = f;
}
