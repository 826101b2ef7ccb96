/* store.c — the zestfs-origin data directory (layout in origin.h). */
#include "origin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

char *o_path(const o_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *rel = NULL;
    if (vasprintf(&rel, fmt, ap) < 0)
        rel = NULL;
    va_end(ap);
    if (!rel)
        return NULL;
    char *p = o_strdup_printf("%s/%s", s->dir, rel);
    free(rel);
    return p;
}

int o_store_open(o_store *s, const char *dir, bool create)
{
    memset(s, 0, sizeof *s);
    s->dir = strdup(dir);
    if (!s->dir)
        return -ENOMEM;
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (!create)
            return -errno;
        int e = o_mkdirs(dir, 0755);
        if (e)
            return e;
    }
    static const char *subs[] = {"xorbs", "shards", "files", "blobs", "repos", "tmp"};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        char *p = o_path(s, "%s", subs[i]);
        if (!p)
            return -ENOMEM;
        int e = o_mkdirs(p, 0755);
        free(p);
        if (e)
            return e;
    }
    char *sp = o_path(s, "secret");
    if (!sp)
        return -ENOMEM;
    uint8_t *b;
    size_t n;
    int e = o_read_file(sp, &b, &n, 4096);
    if (e == 0 && n == 32) {
        memcpy(s->secret, b, 32);
        free(b);
    } else {
        if (e == 0)
            free(b);
        e = o_random(s->secret, 32);
        if (!e) {
            int fd = open(sp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd >= 0) {
                if (write(fd, s->secret, 32) != 32)
                    e = -EIO;
                close(fd);
            } else if (errno == EEXIST) { /* a concurrent creator won: use theirs */
                if (o_read_file(sp, &b, &n, 4096) == 0) {
                    if (n == 32)
                        memcpy(s->secret, b, 32);
                    free(b);
                }
            } else {
                e = -errno;
            }
        }
    }
    free(sp);
    return e;
}

void o_store_close(o_store *s)
{
    free(s->dir);
    memset(s, 0, sizeof *s);
}

/* ---- xorbs ------------------------------------------------------------- */

int o_xorb_idx_load(const o_store *s, const xet_hash *h, o_xorb_idx *x)
{
    memset(x, 0, sizeof *x);
    char hs[65];
    xet_hash_to_string(h, hs);
    char *p = o_path(s, "xorbs/%s.idx", hs);
    if (!p)
        return -ENOMEM;
    uint8_t *b;
    size_t n;
    int e = o_read_file(p, &b, &n, 16 + (size_t)XET_XORB_MAX_CHUNKS * 40);
    free(p);
    if (e)
        return e;
    if (n < 16 || memcmp(b, "ZOXIDX01", 8) != 0) {
        free(b);
        return -EBADMSG;
    }
    uint32_t cnt = xet_le32(b + 8);
    if (cnt > XET_XORB_MAX_CHUNKS || n != 16 + (size_t)cnt * 40) {
        free(b);
        return -EBADMSG;
    }
    x->n = cnt;
    x->rec_end = malloc((cnt + 1) * sizeof *x->rec_end);
    x->ulen = malloc((cnt + 1) * sizeof *x->ulen);
    x->hash = malloc((cnt + 1) * sizeof *x->hash);
    if (!x->rec_end || !x->ulen || !x->hash) {
        free(b);
        o_xorb_idx_free(x);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < cnt; i++) {
        const uint8_t *r = b + 16 + (size_t)i * 40;
        x->rec_end[i] = xet_le32(r);
        x->ulen[i] = xet_le32(r + 4);
        memcpy(x->hash[i].b, r + 8, 32);
    }
    free(b);
    return 0;
}

void o_xorb_idx_free(o_xorb_idx *x)
{
    free(x->rec_end);
    free(x->ulen);
    free(x->hash);
    memset(x, 0, sizeof *x);
}

int o_xorb_store(const o_store *s, const xet_hash *h, const uint8_t *buf, size_t len,
                 const o_xorb_idx *idx)
{
    char hs[65];
    xet_hash_to_string(h, hs);
    char *xp = o_path(s, "xorbs/%s", hs);
    char *ip = o_path(s, "xorbs/%s.idx", hs);
    size_t ilen = 16 + (size_t)idx->n * 40;
    uint8_t *ib = calloc(1, ilen);
    int e = -ENOMEM;
    if (xp && ip && ib) {
        memcpy(ib, "ZOXIDX01", 8);
        xet_put_le32(ib + 8, idx->n);
        for (uint32_t i = 0; i < idx->n; i++) {
            uint8_t *r = ib + 16 + (size_t)i * 40;
            xet_put_le32(r, idx->rec_end[i]);
            xet_put_le32(r + 4, idx->ulen[i]);
            memcpy(r + 8, idx->hash[i].b, 32);
        }
        /* bytes first, index last: a xorb is "present" once its index is */
        e = o_write_atomic(s->dir, xp, buf, len);
        if (!e)
            e = o_write_atomic(s->dir, ip, ib, ilen);
    }
    free(ib);
    free(xp);
    free(ip);
    return e;
}

bool o_xorb_exists(const o_store *s, const xet_hash *h, uint64_t *size)
{
    char hs[65];
    xet_hash_to_string(h, hs);
    char *xp = o_path(s, "xorbs/%s", hs);
    char *ip = o_path(s, "xorbs/%s.idx", hs);
    struct stat st, st2;
    bool ok = xp && ip && stat(ip, &st2) == 0 && stat(xp, &st) == 0;
    if (ok && size)
        *size = (uint64_t)st.st_size;
    free(xp);
    free(ip);
    return ok;
}

/* ---- file reconstruction records ---------------------------------------- */

int o_file_load(const o_store *s, const xet_hash *h, o_file *f)
{
    memset(f, 0, sizeof *f);
    char hs[65];
    xet_hash_to_string(h, hs);
    char *p = o_path(s, "files/%s.json", hs);
    if (!p)
        return -ENOMEM;
    cJSON *j = o_read_json(p);
    free(p);
    if (!j)
        return -ENOENT;
    int e = -EBADMSG;
    f->hash = *h;
    cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha256");
    cJSON *terms = cJSON_GetObjectItemCaseSensitive(j, "terms");
    if (!cJSON_IsNumber(size) || !cJSON_IsArray(terms))
        goto out;
    f->size = (uint64_t)size->valuedouble;
    if (cJSON_IsString(sha) && strlen(sha->valuestring) == 64)
        memcpy(f->sha256, sha->valuestring, 65);
    int n = cJSON_GetArraySize(terms);
    f->terms = calloc(n ? (size_t)n : 1, sizeof *f->terms);
    if (!f->terms) {
        e = -ENOMEM;
        goto out;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, terms)
    {
        if (cJSON_GetArraySize(t) != 4)
            goto out;
        const cJSON *xh = cJSON_GetArrayItem(t, 0);
        o_term *ot = &f->terms[f->nterms];
        if (!cJSON_IsString(xh) || xet_hash_from_string(xh->valuestring, &ot->xorb) != 0)
            goto out;
        ot->start = (uint32_t)cJSON_GetArrayItem(t, 1)->valuedouble;
        ot->end = (uint32_t)cJSON_GetArrayItem(t, 2)->valuedouble;
        ot->unpacked = (uint32_t)cJSON_GetArrayItem(t, 3)->valuedouble;
        f->nterms++;
    }
    e = 0;
out:
    cJSON_Delete(j);
    if (e)
        o_file_free(f);
    return e;
}

int o_file_save(const o_store *s, const o_file *f)
{
    char hs[65];
    xet_hash_to_string(&f->hash, hs);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "size", (double)f->size);
    if (f->sha256[0])
        cJSON_AddStringToObject(j, "sha256", f->sha256);
    cJSON *terms = cJSON_AddArrayToObject(j, "terms");
    for (size_t i = 0; i < f->nterms; i++) {
        char xs[65];
        xet_hash_to_string(&f->terms[i].xorb, xs);
        cJSON *t = cJSON_CreateArray();
        cJSON_AddItemToArray(t, cJSON_CreateString(xs));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(f->terms[i].start));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(f->terms[i].end));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(f->terms[i].unpacked));
        cJSON_AddItemToArray(terms, t);
    }
    char *p = o_path(s, "files/%s.json", hs);
    int e = p ? o_write_json(s->dir, p, j) : -ENOMEM;
    free(p);
    cJSON_Delete(j);
    return e;
}

void o_file_free(o_file *f)
{
    free(f->terms);
    memset(f, 0, sizeof *f);
}

bool o_file_exists(const o_store *s, const xet_hash *h)
{
    char hs[65];
    xet_hash_to_string(h, hs);
    char *p = o_path(s, "files/%s.json", hs);
    struct stat st;
    bool ok = p && stat(p, &st) == 0;
    free(p);
    return ok;
}

/* ---- repos, refs, commits -------------------------------------------------- */

static bool valid_type(const char *t)
{
    return !strcmp(t, "model") || !strcmp(t, "dataset") || !strcmp(t, "space");
}

static bool valid_id(const char *id)
{
    const char *sl = strchr(id, '/');
    if (!sl || strchr(sl + 1, '/') || (size_t)(sl - id) >= 128)
        return false;
    char ns[128];
    memcpy(ns, id, (size_t)(sl - id));
    ns[sl - id] = 0;
    return o_valid_name(ns) && o_valid_name(sl + 1);
}

int o_repo_load(const o_store *s, const char *type, const char *id, o_repo *r)
{
    memset(r, 0, sizeof *r);
    if (!valid_type(type) || !valid_id(id) || strlen(id) >= sizeof r->id)
        return -ENOENT;
    char *p = o_path(s, "repos/%ss/%s/repo.json", type, id);
    if (!p)
        return -ENOMEM;
    cJSON *j = o_read_json(p);
    free(p);
    if (!j)
        return -ENOENT;
    snprintf(r->type, sizeof r->type, "%s", type);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->private_ = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "private"));
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "gated");
    if (cJSON_IsString(g) && strlen(g->valuestring) < sizeof r->gated)
        snprintf(r->gated, sizeof r->gated, "%s", g->valuestring);
    cJSON_Delete(j);
    return 0;
}

int o_repo_set_gated(const o_store *s, const char *type, const char *id, const char *mode)
{
    if (!valid_type(type) || !valid_id(id))
        return -EINVAL;
    char *p = o_path(s, "repos/%ss/%s/repo.json", type, id);
    if (!p)
        return -ENOMEM;
    cJSON *j = o_read_json(p);
    int e = j ? 0 : -ENOENT;
    if (j) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "gated");
        cJSON_AddStringToObject(j, "gated", mode);
        e = o_write_json(s->dir, p, j);
    }
    cJSON_Delete(j);
    free(p);
    return e;
}

int o_repo_create(const o_store *s, const char *type, const char *id, bool priv)
{
    if (!valid_type(type) || !valid_id(id))
        return -EINVAL;
    char *p = o_path(s, "repos/%ss/%s/repo.json", type, id);
    if (!p)
        return -ENOMEM;
    cJSON *j = o_read_json(p);
    int e = 0;
    if (!j || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "private")) != priv) {
        cJSON_Delete(j);
        j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "private", priv);
        e = o_write_json(s->dir, p, j);
    }
    cJSON_Delete(j);
    free(p);
    return e;
}

int o_ref_read(const o_store *s, const o_repo *r, const char *branch, char out[41])
{
    if (!o_valid_branch(branch))
        return -ENOENT;
    char *p = o_path(s, "repos/%ss/%s/refs/%s", r->type, r->id, branch);
    if (!p)
        return -ENOMEM;
    uint8_t *b;
    size_t n;
    int e = o_read_file(p, &b, &n, 64);
    free(p);
    if (e)
        return e == -EISDIR ? -ENOENT : e;
    if (n < 40) {
        free(b);
        return -EBADMSG;
    }
    memcpy(out, b, 40);
    out[40] = 0;
    free(b);
    return o_is_hex(out, 40) ? 0 : -EBADMSG;
}

int o_ref_write(const o_store *s, const o_repo *r, const char *branch, const char *commit)
{
    if (!o_valid_branch(branch))
        return -EINVAL;
    char *p = o_path(s, "repos/%ss/%s/refs/%s", r->type, r->id, branch);
    if (!p)
        return -ENOMEM;
    int e = o_write_atomic(s->dir, p, commit, 40);
    free(p);
    return e;
}

static int list_refs_rec(const char *base, const char *rel, char ***names, size_t *n, size_t *cap)
{
    char *dp = rel[0] ? o_strdup_printf("%s/%s", base, rel) : strdup(base);
    if (!dp)
        return -ENOMEM;
    DIR *d = opendir(dp);
    free(dp);
    if (!d)
        return 0;
    struct dirent *de;
    int e = 0;
    while (!e && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *r2 = rel[0] ? o_strdup_printf("%s/%s", rel, de->d_name) : strdup(de->d_name);
        if (!r2) {
            e = -ENOMEM;
            break;
        }
        char *full = o_strdup_printf("%s/%s", base, r2);
        struct stat st;
        if (full && stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            e = list_refs_rec(base, r2, names, n, cap);
            free(r2);
        } else {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 8;
                char **nn = realloc(*names, *cap * sizeof *nn);
                if (!nn) {
                    free(r2);
                    free(full);
                    e = -ENOMEM;
                    break;
                }
                *names = nn;
            }
            (*names)[(*n)++] = r2;
        }
        free(full);
    }
    closedir(d);
    return e;
}

int o_refs_list(const o_store *s, const o_repo *r, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    size_t cap = 0;
    char *p = o_path(s, "repos/%ss/%s/refs", r->type, r->id);
    if (!p)
        return -ENOMEM;
    int e = list_refs_rec(p, "", names, n, &cap);
    free(p);
    return e;
}

void o_commit_free(o_commit *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].path);
    free(c->e);
    free(c->message);
    memset(c, 0, sizeof *c);
}

static void cpy(char *dst, size_t cap, const cJSON *j)
{
    dst[0] = 0;
    if (cJSON_IsString(j))
        snprintf(dst, cap, "%s", j->valuestring);
}

int o_commit_load(const o_store *s, const o_repo *r, const char *id, o_commit *c)
{
    memset(c, 0, sizeof *c);
    if (strlen(id) != 40 || !o_is_hex(id, 40))
        return -ENOENT;
    char *p = o_path(s, "repos/%ss/%s/commits/%s.json", r->type, r->id, id);
    if (!p)
        return -ENOMEM;
    cJSON *j = o_read_json(p);
    free(p);
    if (!j)
        return -ENOENT;
    memcpy(c->id, id, 41);
    cpy(c->parent, sizeof c->parent, cJSON_GetObjectItemCaseSensitive(j, "parent"));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    c->message = strdup(cJSON_IsString(m) ? m->valuestring : "");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "date");
    c->date = cJSON_IsNumber(d) ? (int64_t)d->valuedouble : 0;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
    int n = cJSON_GetArraySize(files);
    c->e = calloc(n > 0 ? (size_t)n : 1, sizeof *c->e);
    int e = c->e && c->message ? 0 : -ENOMEM;
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (e)
            break;
        o_entry *en = &c->e[c->n];
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(f, "path");
        if (!cJSON_IsString(path)) {
            e = -EBADMSG;
            break;
        }
        en->path = strdup(path->valuestring);
        if (!en->path) {
            e = -ENOMEM;
            break;
        }
        c->n++;
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(f, "size");
        en->size = cJSON_IsNumber(sz) ? (uint64_t)sz->valuedouble : 0;
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(f, "kind");
        en->xet = cJSON_IsString(kind) && !strcmp(kind->valuestring, "xet");
        cpy(en->oid, sizeof en->oid, cJSON_GetObjectItemCaseSensitive(f, "oid"));
        cpy(en->sha256, sizeof en->sha256, cJSON_GetObjectItemCaseSensitive(f, "sha256"));
        cpy(en->xet_hash, sizeof en->xet_hash, cJSON_GetObjectItemCaseSensitive(f, "xet_hash"));
        cpy(en->last_commit, sizeof en->last_commit,
            cJSON_GetObjectItemCaseSensitive(f, "last_commit"));
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(f, "pointer_size");
        en->pointer_size = cJSON_IsNumber(ps) ? (uint32_t)ps->valuedouble : 0;
    }
    cJSON_Delete(j);
    if (e)
        o_commit_free(c);
    return e;
}

int o_resolve_rev(const o_store *s, const o_repo *r, const char *rev, o_commit *c)
{
    char id[41];
    if (strlen(rev) == 40 && o_is_hex(rev, 40)) {
        int e = o_commit_load(s, r, rev, c);
        if (e != -ENOENT)
            return e;
    }
    int e = o_ref_read(s, r, rev, id);
    if (e)
        return e == -EBADMSG ? e : -ENOENT;
    return o_commit_load(s, r, id, c);
}

const o_entry *o_commit_find(const o_commit *c, const char *path)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int k = strcmp(c->e[mid].path, path);
        if (k == 0)
            return &c->e[mid];
        if (k < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const o_entry *)a)->path, ((const o_entry *)b)->path);
}

int o_commit_save(const o_store *s, const o_repo *r, o_commit *c)
{
    qsort(c->e, c->n, sizeof *c->e, cmp_entry);
    /* id = sha1 over a canonical text of the tree, parent, date, message */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return -ENOMEM;
    EVP_DigestInit_ex(md, EVP_sha1(), NULL);
    char line[512];
    int l = snprintf(line, sizeof line, "zestfs-origin commit v1\nparent %s\ndate %lld\n", c->parent,
                     (long long)c->date);
    EVP_DigestUpdate(md, line, (size_t)l);
    EVP_DigestUpdate(md, c->message ? c->message : "", c->message ? strlen(c->message) + 1 : 1);
    for (size_t i = 0; i < c->n; i++) {
        const o_entry *e = &c->e[i];
        EVP_DigestUpdate(md, e->path, strlen(e->path) + 1);
        l = snprintf(line, sizeof line, "%s %llu %s %s %s\n", e->xet ? "xet" : "regular",
                     (unsigned long long)e->size, e->oid, e->sha256, e->xet_hash);
        EVP_DigestUpdate(md, line, (size_t)l);
    }
    uint8_t d[20];
    unsigned dl = 20;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    o_hex(d, 20, c->id);
    for (size_t i = 0; i < c->n; i++)
        if (!c->e[i].last_commit[0])
            memcpy(c->e[i].last_commit, c->id, 41);

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", c->id);
    cJSON_AddStringToObject(j, "parent", c->parent);
    cJSON_AddStringToObject(j, "message", c->message ? c->message : "");
    cJSON_AddNumberToObject(j, "date", (double)c->date);
    cJSON *files = cJSON_AddArrayToObject(j, "files");
    for (size_t i = 0; i < c->n; i++) {
        const o_entry *e = &c->e[i];
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "path", e->path);
        cJSON_AddNumberToObject(f, "size", (double)e->size);
        cJSON_AddStringToObject(f, "kind", e->xet ? "xet" : "regular");
        cJSON_AddStringToObject(f, "oid", e->oid);
        if (e->xet) {
            cJSON_AddStringToObject(f, "sha256", e->sha256);
            cJSON_AddStringToObject(f, "xet_hash", e->xet_hash);
            cJSON_AddNumberToObject(f, "pointer_size", e->pointer_size);
        }
        cJSON_AddStringToObject(f, "last_commit", e->last_commit);
        cJSON_AddItemToArray(files, f);
    }
    char *p = o_path(s, "repos/%ss/%s/commits/%s.json", r->type, r->id, c->id);
    int e = p ? o_write_json(s->dir, p, j) : -ENOMEM;
    free(p);
    cJSON_Delete(j);
    return e;
}

static bool same_entry(const o_entry *a, const o_entry *b)
{
    return a->xet == b->xet && a->size == b->size && !strcmp(a->oid, b->oid) &&
           !strcmp(a->sha256, b->sha256) && !strcmp(a->xet_hash, b->xet_hash);
}

int o_commit_entries(const o_store *s, const o_repo *r, const char *branch, o_entry *ne, size_t nn,
                     bool replace_all, const char *message, char out_id[41])
{
    o_commit old;
    memset(&old, 0, sizeof old);
    char head[41] = "";
    int e = o_ref_read(s, r, branch, head);
    if (e == 0) {
        e = o_commit_load(s, r, head, &old);
        if (e)
            return e;
    } else if (e != -ENOENT) {
        return e;
    }
    o_commit c;
    memset(&c, 0, sizeof c);
    memcpy(c.parent, head, 41);
    c.date = (int64_t)time(NULL);
    c.message = strdup(message ? message : "");
    c.e = calloc(old.n + nn + 1, sizeof *c.e);
    if (!c.e || !c.message) {
        o_commit_free(&old);
        o_commit_free(&c);
        return -ENOMEM;
    }
    bool changed = false;
    if (!replace_all) {
        for (size_t i = 0; i < old.n; i++) {
            bool replaced = false;
            for (size_t k = 0; k < nn; k++)
                if (!strcmp(ne[k].path, old.e[i].path))
                    replaced = true;
            if (!replaced) {
                c.e[c.n] = old.e[i];
                c.e[c.n].path = strdup(old.e[i].path);
                c.n++;
            }
        }
    } else if (nn != old.n) {
        changed = true;
    }
    for (size_t k = 0; k < nn; k++) {
        c.e[c.n] = ne[k];
        c.e[c.n].path = strdup(ne[k].path);
        const o_entry *prev = o_commit_find(&old, ne[k].path);
        if (prev && same_entry(prev, &ne[k])) {
            memcpy(c.e[c.n].last_commit, prev->last_commit, 41);
        } else {
            c.e[c.n].last_commit[0] = 0;
            changed = true;
        }
        c.n++;
    }
    if (replace_all) {
        for (size_t i = 0; i < old.n; i++) {
            bool found = false;
            for (size_t k = 0; k < nn; k++)
                if (!strcmp(ne[k].path, old.e[i].path))
                    found = true;
            if (!found)
                changed = true;
        }
    }
    if (!changed && head[0]) {
        memcpy(out_id, head, 41);
        o_commit_free(&old);
        o_commit_free(&c);
        return 0;
    }
    e = o_commit_save(s, r, &c);
    if (!e)
        e = o_ref_write(s, r, branch, c.id);
    if (!e)
        memcpy(out_id, c.id, 41);
    o_commit_free(&old);
    o_commit_free(&c);
    return e;
}

/* ---- chunk index ----------------------------------------------------------- */

int o_cindex_init(o_cindex *ci)
{
    memset(ci, 0, sizeof *ci);
    pthread_mutex_init(&ci->mu, NULL);
    ci->cap = 1024;
    ci->tab = calloc(ci->cap, sizeof *ci->tab);
    return ci->tab ? 0 : -ENOMEM;
}

void o_cindex_free(o_cindex *ci)
{
    free(ci->tab);
    free(ci->xorbs);
    pthread_mutex_destroy(&ci->mu);
    memset(ci, 0, sizeof *ci);
}

static uint64_t hkey(const xet_hash *h)
{
    uint64_t k;
    memcpy(&k, h->b, 8);
    return k;
}

static void put(o_chunk_loc *tab, size_t cap, const o_chunk_loc *l)
{
    size_t i = hkey(&l->chunk) & (cap - 1);
    while (tab[i].xorb != 0) {
        if (xet_hash_eq(&tab[i].chunk, &l->chunk))
            return; /* keep the first location */
        i = (i + 1) & (cap - 1);
    }
    tab[i] = *l;
}

/* xorb slot numbers start at 1 in tab (0 = empty). */
int o_cindex_add_xorb(o_cindex *ci, const xet_hash *xorb, const o_xorb_idx *idx)
{
    pthread_mutex_lock(&ci->mu);
    int e = 0;
    if (ci->nxorbs + 2 > ci->xcap) {
        size_t nc = ci->xcap ? ci->xcap * 2 : 64;
        xet_hash *nx = realloc(ci->xorbs, nc * sizeof *nx);
        if (!nx) {
            e = -ENOMEM;
            goto out;
        }
        ci->xorbs = nx;
        ci->xcap = nc;
    }
    if ((ci->n + idx->n) * 2 > ci->cap) {
        size_t nc = ci->cap;
        while ((ci->n + idx->n) * 2 > nc)
            nc *= 2;
        o_chunk_loc *nt = calloc(nc, sizeof *nt);
        if (!nt) {
            e = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < ci->cap; i++)
            if (ci->tab[i].xorb)
                put(nt, nc, &ci->tab[i]);
        free(ci->tab);
        ci->tab = nt;
        ci->cap = nc;
    }
    ci->xorbs[ci->nxorbs++] = *xorb;
    uint32_t slot = (uint32_t)ci->nxorbs; /* 1-based */
    for (uint32_t i = 0; i < idx->n; i++) {
        o_chunk_loc l = {.chunk = idx->hash[i], .xorb = slot, .index = i};
        put(ci->tab, ci->cap, &l);
    }
    ci->n += idx->n;
out:
    pthread_mutex_unlock(&ci->mu);
    return e;
}

long o_cindex_find(o_cindex *ci, const xet_hash *chunk, uint32_t *index, xet_hash *xorb)
{
    pthread_mutex_lock(&ci->mu);
    long r = -ENOENT;
    size_t i = hkey(chunk) & (ci->cap - 1);
    while (ci->tab[i].xorb != 0) {
        if (xet_hash_eq(&ci->tab[i].chunk, chunk)) {
            r = ci->tab[i].xorb - 1;
            if (index)
                *index = ci->tab[i].index;
            if (xorb)
                *xorb = ci->xorbs[r];
            break;
        }
        i = (i + 1) & (ci->cap - 1);
    }
    pthread_mutex_unlock(&ci->mu);
    return r;
}

int o_cindex_load(o_cindex *ci, const o_store *s)
{
    char *p = o_path(s, "xorbs");
    if (!p)
        return -ENOMEM;
    DIR *d = opendir(p);
    free(p);
    if (!d)
        return -errno;
    struct dirent *de;
    int e = 0;
    while (!e && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l != 68 || strcmp(de->d_name + 64, ".idx") != 0)
            continue;
        xet_hash h;
        if (xet_hash_from_string(de->d_name, &h) != 0)
            continue;
        o_xorb_idx x;
        if (o_xorb_idx_load(s, &h, &x) != 0)
            continue;
        e = o_cindex_add_xorb(ci, &h, &x);
        o_xorb_idx_free(&x);
    }
    closedir(d);
    return e;
}

/* ---- sha256 -> file hash index (for commits of uploaded files) ----------- */

int o_file_index_sha(const o_store *s, const char *sha, const xet_hash *fh)
{
    if (strlen(sha) != 64 || !o_is_hex(sha, 64))
        return -EINVAL;
    char hs[65];
    xet_hash_to_string(fh, hs);
    char *p = o_path(s, "files/by-sha256/%s", sha);
    int e = p ? o_write_atomic(s->dir, p, hs, 64) : -ENOMEM;
    free(p);
    return e;
}

int o_file_by_sha(const o_store *s, const char *sha, xet_hash *fh)
{
    if (strlen(sha) != 64 || !o_is_hex(sha, 64))
        return -EINVAL;
    char *p = o_path(s, "files/by-sha256/%s", sha);
    if (!p)
        return -ENOMEM;
    uint8_t *b;
    size_t n;
    int e = o_read_file(p, &b, &n, 128);
    free(p);
    if (e)
        return e;
    e = n >= 64 ? xet_hash_from_string((const char *)b, fh) : -EBADMSG;
    free(b);
    return e;
}
