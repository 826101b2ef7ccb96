/* repo.c — the repo model: validation of Hub-supplied names, JSON
 * persistence, and the lookups the virtual tree needs. */
#include "repo.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *TYPES[] = {"model", "dataset", "space"};
static const char *PLURALS[] = {"models", "datasets", "spaces"};

const char *zf_type_plural(enum zf_repo_type t)
{
    return PLURALS[t];
}

const char *zf_type_name(enum zf_repo_type t)
{
    return TYPES[t];
}

static const char *VIS[] = {"unknown", "public", "private", "gated"};

const char *zf_vis_name(enum zf_visibility v)
{
    return (unsigned)v < 4 ? VIS[v] : VIS[0];
}

int zf_vis_parse(const char *s, enum zf_visibility *out)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, VIS[i])) {
            *out = (enum zf_visibility)i;
            return 0;
        }
    return -EINVAL;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* One id part: 1..96 chars of [A-Za-z0-9_.-], no "--" or "..", not
 * starting or ending with '-' or '.'. */
static bool valid_part(const char *s, size_t n)
{
    if (n == 0 || n > 96)
        return false;
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i]))
            return false;
        if (i && ((s[i] == '-' && s[i - 1] == '-') || (s[i] == '.' && s[i - 1] == '.')))
            return false;
    }
    return true;
}

bool zf_valid_repo_id(const char *id)
{
    const char *slash = strchr(id, '/');
    if (!slash)
        return valid_part(id, strlen(id));
    if (strchr(slash + 1, '/'))
        return false;
    return valid_part(id, (size_t)(slash - id)) && valid_part(slash + 1, strlen(slash + 1));
}

/* Repo-relative paths and revision names: components separated by '/',
 * none empty, "." or "..", no NUL (C strings), each <= 255 bytes, total
 * <= 4000. */
static bool valid_components(const char *p)
{
    size_t total = strlen(p);
    if (total == 0 || total > 4000 || p[0] == '/')
        return false;
    const char *s = p;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || n > 255 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20)
                return false;
        if (!e)
            return true;
        s = e + 1;
    }
}

bool zf_valid_path(const char *path)
{
    return valid_components(path);
}

bool zf_valid_rev(const char *rev)
{
    return valid_components(rev) && strlen(rev) <= 255;
}

char *zf_repo_folder(enum zf_repo_type type, const char *id)
{
    if (!zf_valid_repo_id(id))
        return NULL;
    size_t n = strlen(PLURALS[type]) + 2 + strlen(id) * 2 + 1;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    o += sprintf(o, "%s--", PLURALS[type]);
    for (const char *s = id; *s; s++) {
        if (*s == '/') {
            *o++ = '-';
            *o++ = '-';
        } else
            *o++ = *s;
    }
    *o = 0;
    return out;
}

int zf_repo_parse_folder(const char *folder, enum zf_repo_type *type, char **id)
{
    const char *sep = strstr(folder, "--");
    if (!sep)
        return -EINVAL;
    size_t tl = (size_t)(sep - folder);
    int t = -1;
    for (int i = 0; i < 3; i++)
        if (strlen(PLURALS[i]) == tl && strncmp(folder, PLURALS[i], tl) == 0)
            t = i;
    if (t < 0)
        return -EINVAL;
    const char *rest = sep + 2;
    if (strchr(rest, '/'))
        return -EINVAL; /* "models--a/b" is not the folder of a/b */
    char *out = malloc(strlen(rest) + 1), *o = out;
    if (!out)
        return -ENOMEM;
    int slashes = 0;
    for (const char *s = rest; *s; s++) {
        if (s[0] == '-' && s[1] == '-') {
            *o++ = '/';
            s++;
            slashes++;
        } else
            *o++ = *s;
    }
    *o = 0;
    if (slashes > 1 || !zf_valid_repo_id(out)) {
        free(out);
        return -EINVAL;
    }
    *type = (enum zf_repo_type)t;
    *id = out;
    return 0;
}

static bool is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const zf_file *)a)->path, ((const zf_file *)b)->path);
}

void zf_repo_free(zf_repo *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nrefs; i++)
        free(r->refs[i].name);
    free(r->refs);
    for (size_t i = 0; i < r->ncommits; i++) {
        for (size_t k = 0; k < r->commits[i].nfiles; k++)
            free(r->commits[i].files[k].path);
        free(r->commits[i].files);
    }
    free(r->commits);
    free(r->id);
    free(r->folder);
    free(r->canonical);
    free(r->gated_url);
    free(r);
}

static int parse_file(const cJSON *j, zf_file *f)
{
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "path");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(j, "oid");
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(j, "lfs_sha256");
    const cJSON *xh = cJSON_GetObjectItemCaseSensitive(j, "xet_hash");
    if (!cJSON_IsString(path) || !zf_valid_path(path->valuestring) || !cJSON_IsNumber(size) ||
        size->valuedouble < 0 || size->valuedouble > 9007199254740992.0 ||
        !cJSON_IsString(oid) || !is_hex(oid->valuestring, 40))
        return -EBADMSG;
    memset(f, 0, sizeof *f);
    f->size = (uint64_t)size->valuedouble;
    memcpy(f->oid, oid->valuestring, 41);
    if (cJSON_IsString(lfs)) {
        if (!is_hex(lfs->valuestring, 64))
            return -EBADMSG;
        f->has_lfs = true;
        memcpy(f->etag, lfs->valuestring, 65);
    } else
        memcpy(f->etag, f->oid, 41);
    if (cJSON_IsString(xh)) {
        if (xet_hash_from_string(xh->valuestring, &f->xet) != 0 || strlen(xh->valuestring) != 64)
            return -EBADMSG;
        f->has_xet = true;
    }
    f->path = strdup(path->valuestring);
    return f->path ? 0 : -ENOMEM;
}

int zf_repo_from_json(const char *json, size_t len, zf_repo **out)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j)
        return -EBADMSG;
    int err = -EBADMSG;
    zf_repo *r = calloc(1, sizeof *r);
    if (!r) {
        cJSON_Delete(j);
        return -ENOMEM;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(j, "refs");
    const cJSON *commits = cJSON_GetObjectItemCaseSensitive(j, "commits");
    if (!cJSON_IsString(type) || !cJSON_IsString(id) || !cJSON_IsObject(refs) ||
        !cJSON_IsObject(commits))
        goto fail;
    int t = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(type->valuestring, TYPES[i]) == 0)
            t = i;
    if (t < 0 || !zf_valid_repo_id(id->valuestring))
        goto fail;
    const cJSON *canon = cJSON_GetObjectItemCaseSensitive(j, "canonical");
    if (cJSON_IsString(canon) && zf_valid_repo_id(canon->valuestring) &&
        strcmp(canon->valuestring, id->valuestring) != 0 && !(r->canonical = strdup(canon->valuestring)))
        goto fail;
    const cJSON *gurl = cJSON_GetObjectItemCaseSensitive(j, "gated_url");
    if (cJSON_IsString(gurl) && strlen(gurl->valuestring) < 2048 &&
        !strpbrk(gurl->valuestring, "\r\n") && !(r->gated_url = strdup(gurl->valuestring)))
        goto fail;
    r->type = (enum zf_repo_type)t;
    r->id = strdup(id->valuestring);
    r->folder = zf_repo_folder(r->type, r->id);
    if (!r->id || !r->folder)
        goto fail;

    size_t n = (size_t)cJSON_GetArraySize(refs);
    r->refs = calloc(n ? n : 1, sizeof *r->refs);
    const cJSON *it;
    cJSON_ArrayForEach(it, refs)
    {
        if (!zf_valid_rev(it->string) || !cJSON_IsString(it) || !is_hex(it->valuestring, 40))
            goto fail;
        zf_ref *ref = &r->refs[r->nrefs++];
        ref->name = strdup(it->string);
        memcpy(ref->sha, it->valuestring, 41);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "ref_written"), it->string);
        if (cJSON_IsNumber(w) && w->valuedouble > 0 && w->valuedouble < 9.2e18)
            ref->written = (int64_t)w->valuedouble;
    }
    n = (size_t)cJSON_GetArraySize(commits);
    r->commits = calloc(n ? n : 1, sizeof *r->commits);
    cJSON_ArrayForEach(it, commits)
    {
        const cJSON *files = cJSON_GetObjectItemCaseSensitive(it, "files");
        const cJSON *date = cJSON_GetObjectItemCaseSensitive(it, "date");
        if (!is_hex(it->string, 40) || !cJSON_IsArray(files))
            goto fail;
        zf_commit *c = &r->commits[r->ncommits++];
        memcpy(c->sha, it->string, 41);
        /* a double outside int64 would be undefined behaviour to convert */
        c->date = cJSON_IsNumber(date) && date->valuedouble > -9.2e18 &&
                          date->valuedouble < 9.2e18
                      ? (int64_t)date->valuedouble
                      : 0;
        size_t nf = (size_t)cJSON_GetArraySize(files);
        c->files = calloc(nf ? nf : 1, sizeof *c->files);
        const cJSON *f;
        cJSON_ArrayForEach(f, files)
        {
            if ((err = parse_file(f, &c->files[c->nfiles])) != 0)
                goto fail;
            c->nfiles++;
        }
        qsort(c->files, c->nfiles, sizeof *c->files, cmp_file);
        for (size_t k = 1; k < c->nfiles; k++)
            if (strcmp(c->files[k - 1].path, c->files[k].path) == 0) {
                err = -EBADMSG;
                goto fail;
            }
        err = -EBADMSG;
    }
    /* no verdict, or one this version does not know: unknown (never served) */
    const cJSON *vis = cJSON_GetObjectItemCaseSensitive(j, "visibility");
    const cJSON *verdict = cJSON_GetObjectItemCaseSensitive(vis, "verdict");
    const cJSON *checked = cJSON_GetObjectItemCaseSensitive(vis, "checked");
    if (cJSON_IsString(verdict) && zf_vis_parse(verdict->valuestring, &r->vis) == 0 &&
        cJSON_IsNumber(checked) && checked->valuedouble > 0 && checked->valuedouble < 9.2e18)
        r->vis_checked = (int64_t)checked->valuedouble;
    else
        r->vis = ZF_VIS_UNKNOWN;
    cJSON_Delete(j);
    *out = r;
    return 0;
fail:
    cJSON_Delete(j);
    zf_repo_free(r);
    return err;
}

char *zf_repo_to_json(const zf_repo *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "format", 1);
    cJSON_AddStringToObject(j, "type", TYPES[r->type]);
    cJSON_AddStringToObject(j, "id", r->id);
    if (r->canonical)
        cJSON_AddStringToObject(j, "canonical", r->canonical);
    if (r->gated_url)
        cJSON_AddStringToObject(j, "gated_url", r->gated_url);
    cJSON *refs = cJSON_AddObjectToObject(j, "refs");
    cJSON *written = NULL;
    for (size_t i = 0; i < r->nrefs; i++) {
        cJSON_AddStringToObject(refs, r->refs[i].name, r->refs[i].sha);
        if (r->refs[i].written) {
            if (!written)
                written = cJSON_AddObjectToObject(j, "ref_written");
            cJSON_AddNumberToObject(written, r->refs[i].name, (double)r->refs[i].written);
        }
    }
    cJSON *commits = cJSON_AddObjectToObject(j, "commits");
    for (size_t i = 0; i < r->ncommits; i++) {
        const zf_commit *c = &r->commits[i];
        cJSON *cj = cJSON_AddObjectToObject(commits, c->sha);
        cJSON_AddNumberToObject(cj, "date", (double)c->date);
        cJSON *files = cJSON_AddArrayToObject(cj, "files");
        for (size_t k = 0; k < c->nfiles; k++) {
            const zf_file *f = &c->files[k];
            cJSON *fj = cJSON_CreateObject();
            cJSON_AddStringToObject(fj, "path", f->path);
            cJSON_AddNumberToObject(fj, "size", (double)f->size);
            cJSON_AddStringToObject(fj, "oid", f->oid);
            if (f->has_lfs)
                cJSON_AddStringToObject(fj, "lfs_sha256", f->etag);
            if (f->has_xet) {
                char s[XET_HASH_STR_LEN + 1];
                xet_hash_to_string(&f->xet, s);
                cJSON_AddStringToObject(fj, "xet_hash", s);
            }
            cJSON_AddItemToArray(files, fj);
        }
    }
    if (r->vis_checked) {
        cJSON *v = cJSON_AddObjectToObject(j, "visibility");
        cJSON_AddStringToObject(v, "verdict", zf_vis_name(r->vis));
        cJSON_AddNumberToObject(v, "checked", (double)r->vis_checked);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

const zf_commit *zf_repo_commit(const zf_repo *r, const char *sha)
{
    for (size_t i = 0; i < r->ncommits; i++)
        if (strcmp(r->commits[i].sha, sha) == 0)
            return &r->commits[i];
    return NULL;
}

const zf_file *zf_commit_file(const zf_commit *c, const char *path)
{
    size_t lo = 0, hi = c->nfiles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strcmp(c->files[mid].path, path);
        if (d == 0)
            return &c->files[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool zf_commit_is_dir(const zf_commit *c, const char *dir)
{
    if (!dir[0])
        return true;
    size_t n = strlen(dir);
    /* first path >= "dir/" */
    size_t lo = 0, hi = c->nfiles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strncmp(c->files[mid].path, dir, n);
        if (d < 0 || (d == 0 && c->files[mid].path[n] < '/'))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < c->nfiles; i++) {
        int d = strncmp(c->files[i].path, dir, n);
        if (d != 0)
            return false;
        if (c->files[i].path[n] == '/')
            return true;
        if (c->files[i].path[n] > '/')
            return false;
    }
    return false;
}

const zf_file *zf_repo_blob(const zf_repo *r, const char *etag, const zf_commit **commit)
{
    for (size_t i = 0; i < r->ncommits; i++)
        for (size_t k = 0; k < r->commits[i].nfiles; k++)
            if (strcmp(r->commits[i].files[k].etag, etag) == 0) {
                if (commit)
                    *commit = &r->commits[i];
                return &r->commits[i].files[k];
            }
    return NULL;
}

zf_repo *zf_repo_with_ref(const zf_repo *r, const char *name, const char *sha, int64_t written)
{
    if (!zf_valid_rev(name) || !is_hex(sha, 40))
        return NULL;
    char *s = zf_repo_to_json(r);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    cJSON *refs = cJSON_GetObjectItemCaseSensitive(j, "refs");
    if (!refs) {
        cJSON_Delete(j);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(refs, name);
    cJSON_AddStringToObject(refs, name, sha);
    cJSON *wr = cJSON_GetObjectItemCaseSensitive(j, "ref_written");
    if (!wr)
        wr = cJSON_AddObjectToObject(j, "ref_written");
    cJSON_DeleteItemFromObjectCaseSensitive(wr, name);
    if (written)
        cJSON_AddNumberToObject(wr, name, (double)written);
    s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    zf_repo *out = NULL;
    if (s && zf_repo_from_json(s, strlen(s), &out) != 0)
        out = NULL;
    free(s);
    return out;
}

char *zf_commit_tree_json(const zf_commit *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "format_version", 1);
    cJSON *files = cJSON_AddObjectToObject(j, "files");
    for (size_t k = 0; k < c->nfiles; k++) {
        const zf_file *f = &c->files[k];
        cJSON *fj = cJSON_AddObjectToObject(files, f->path);
        cJSON_AddNumberToObject(fj, "size", (double)f->size);
        cJSON_AddStringToObject(fj, "blob_id", f->oid);
        if (f->has_lfs) {
            cJSON_AddStringToObject(fj, "lfs_sha256", f->etag);
            cJSON_AddNumberToObject(fj, "lfs_size", (double)f->size);
        }
        if (f->has_xet) {
            char s[XET_HASH_STR_LEN + 1];
            xet_hash_to_string(&f->xet, s);
            cJSON_AddStringToObject(fj, "xet_hash", s);
        }
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

zf_repo *zf_repo_without(const zf_repo *r, const char *ref, const char *commit)
{
    char *s = zf_repo_to_json(r);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    cJSON *refs = cJSON_GetObjectItemCaseSensitive(j, "refs");
    cJSON *commits = cJSON_GetObjectItemCaseSensitive(j, "commits");
    if (!refs || !commits) {
        cJSON_Delete(j);
        return NULL;
    }
    if (ref) {
        cJSON_DeleteItemFromObjectCaseSensitive(refs, ref);
        cJSON *wr = cJSON_GetObjectItemCaseSensitive(j, "ref_written");
        if (wr)
            cJSON_DeleteItemFromObjectCaseSensitive(wr, ref);
    }
    if (commit)
        cJSON_DeleteItemFromObjectCaseSensitive(commits, commit);
    s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    zf_repo *out = NULL;
    if (s && zf_repo_from_json(s, strlen(s), &out) != 0)
        out = NULL;
    free(s);
    return out;
}
