/* hubapi.c — the Hub's write API subset used by huggingface_hub's
 * create_repo / upload_file / upload_folder / create_commit:
 *
 *   POST /api/repos/create                     {name, organization?, type?, private?}
 *   POST /api/{t}/ns/name/preupload/REV        {files:[{path, sample, size}]}
 *        -> {files:[{path, uploadMode: "lfs"|"regular", shouldIgnore, oid?}]}
 *   POST /api/{t}/ns/name/commit/REV           NDJSON: header, file (base64),
 *        lfsFile (sha256 of a file uploaded through the CAS), deletedFile,
 *        deletedFolder -> {success, commitOid, commitUrl, pullRequestUrl}
 *
 * Large files reach the CAS through hf_xet (write token from
 * xet-write-token); the commit names them by SHA-256, which the origin
 * maps to the Xet file it verified when the shard was uploaded.
 */
#include "origin.h"
#include "hubapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

static int b64_decode(const char *in, uint8_t **out, size_t *outlen)
{
    size_t n = strlen(in);
    if (n % 4)
        return -EINVAL;
    uint8_t *b = malloc(n / 4 * 3 + 1);
    if (!b)
        return -ENOMEM;
    int r = n ? EVP_DecodeBlock(b, (const unsigned char *)in, (int)n) : 0;
    if (r < 0) {
        free(b);
        return -EINVAL;
    }
    size_t pad = 0;
    if (n && in[n - 1] == '=')
        pad++;
    if (n > 1 && in[n - 2] == '=')
        pad++;
    *out = b;
    *outlen = (size_t)r - pad;
    return 0;
}

cJSON *o_hub_preupload(const o_store *s, const o_repo *r, const char *rev, const char *body,
                       size_t len)
{
    cJSON *in = cJSON_ParseWithLength(body, len);
    cJSON *files = cJSON_GetObjectItemCaseSensitive(in, "files");
    if (!cJSON_IsArray(files)) {
        cJSON_Delete(in);
        return NULL;
    }
    o_commit c;
    bool have = o_resolve_rev(s, r, rev, &c) == 0;
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "files");
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(f, "path");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(f, "size");
        const cJSON *sample = cJSON_GetObjectItemCaseSensitive(f, "sample");
        if (!cJSON_IsString(p))
            continue;
        bool lfs = o_is_xet_name(p->valuestring) || (cJSON_IsNumber(sz) && sz->valuedouble >= 10000000);
        if (!lfs && cJSON_IsString(sample)) {
            uint8_t *b;
            size_t bl;
            if (b64_decode(sample->valuestring, &b, &bl) == 0) {
                if (memchr(b, 0, bl))
                    lfs = true;
                free(b);
            }
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", p->valuestring);
        cJSON_AddStringToObject(o, "uploadMode", lfs ? "lfs" : "regular");
        cJSON_AddBoolToObject(o, "shouldIgnore", false);
        const o_entry *e = have ? o_commit_find(&c, p->valuestring) : NULL;
        if (e)
            cJSON_AddStringToObject(o, "oid", e->xet ? e->sha256 : e->oid);
        cJSON_AddItemToArray(arr, o);
    }
    if (have)
        o_commit_free(&c);
    cJSON_Delete(in);
    return out;
}

static bool in_folder(const char *path, const char *folder)
{
    size_t l = strlen(folder);
    while (l && folder[l - 1] == '/')
        l--;
    return l == 0 || (!strncmp(path, folder, l) && path[l] == '/');
}

int o_hub_commit(const o_store *s, const o_repo *r, const char *branch, const char *body, size_t len,
                 char out_id[41], char *err, size_t errlen)
{
    o_commit old;
    memset(&old, 0, sizeof old);
    char head[41] = "";
    if (o_ref_read(s, r, branch, head) == 0 && o_commit_load(s, r, head, &old) != 0) {
        snprintf(err, errlen, "cannot load the branch head");
        return -EIO;
    }
    if (!o_valid_branch(branch)) {
        snprintf(err, errlen, "invalid branch");
        return -EINVAL;
    }
    /* working tree: old entries, then operations applied in order */
    size_t cap = old.n + 16, n = 0;
    o_entry *e = calloc(cap, sizeof *e);
    bool *gone = calloc(cap, sizeof *gone);
    char *summary = NULL;
    int rc = (e && gone) ? 0 : -ENOMEM;
    for (size_t i = 0; i < old.n && !rc; i++) {
        e[n] = old.e[i];
        e[n].path = strdup(old.e[i].path);
        n++;
    }
    const char *p = body, *end = body + len;
    while (p < end && !rc) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        cJSON *line = ll ? cJSON_ParseWithLength(p, ll) : NULL;
        p += ll + 1;
        if (!ll)
            continue;
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(line, "key");
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(line, "value");
        if (!cJSON_IsString(key) || !cJSON_IsObject(val)) {
            snprintf(err, errlen, "malformed commit line");
            rc = -EINVAL;
            cJSON_Delete(line);
            break;
        }
        const char *k = key->valuestring;
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(val, "path");
        if (!strcmp(k, "header")) {
            const cJSON *sm = cJSON_GetObjectItemCaseSensitive(val, "summary");
            const cJSON *pc = cJSON_GetObjectItemCaseSensitive(val, "parentCommit");
            free(summary);
            summary = strdup(cJSON_IsString(sm) ? sm->valuestring : "");
            if (cJSON_IsString(pc) && strcmp(pc->valuestring, head) != 0) {
                snprintf(err, errlen, "parentCommit is not the head of %s", branch);
                rc = -EAGAIN;
            }
            cJSON_Delete(line);
            continue;
        }
        if (!cJSON_IsString(path) || !o_valid_relpath(path->valuestring)) {
            snprintf(err, errlen, "invalid path");
            rc = -EINVAL;
            cJSON_Delete(line);
            break;
        }
        const char *ps = path->valuestring;
        if (!strcmp(k, "deletedFile") || !strcmp(k, "deletedFolder")) {
            bool folder = !strcmp(k, "deletedFolder"), any = false;
            for (size_t i = 0; i < n; i++)
                if (!gone[i] && (folder ? in_folder(e[i].path, ps) : !strcmp(e[i].path, ps)))
                    gone[i] = any = true;
            if (!any) {
                snprintf(err, errlen, "%s: no such file", ps);
                rc = -ENOENT;
            }
            cJSON_Delete(line);
            continue;
        }
        o_entry ne;
        memset(&ne, 0, sizeof ne);
        if (!strcmp(k, "file")) {
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(val, "content");
            const cJSON *enc = cJSON_GetObjectItemCaseSensitive(val, "encoding");
            uint8_t *b = NULL;
            size_t bl = 0;
            if (!cJSON_IsString(content)) {
                rc = -EINVAL;
            } else if (cJSON_IsString(enc) && !strcmp(enc->valuestring, "base64")) {
                rc = b64_decode(content->valuestring, &b, &bl);
            } else {
                b = (uint8_t *)strdup(content->valuestring);
                bl = b ? strlen((char *)b) : 0;
                rc = b ? 0 : -ENOMEM;
            }
            if (!rc) {
                o_git_blob_sha1(b, bl, ne.oid);
                char *bp = o_path(s, "blobs/%s", ne.oid);
                rc = bp ? o_write_atomic(s->dir, bp, b, bl) : -ENOMEM;
                free(bp);
                ne.size = bl;
            }
            free(b);
            if (rc)
                snprintf(err, errlen, "%s: bad file content", ps);
        } else if (!strcmp(k, "lfsFile")) {
            const cJSON *oid = cJSON_GetObjectItemCaseSensitive(val, "oid");
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(val, "size");
            xet_hash fh;
            o_file f;
            if (!cJSON_IsString(oid) || o_file_by_sha(s, oid->valuestring, &fh) != 0 ||
                o_file_load(s, &fh, &f) != 0) {
                snprintf(err, errlen, "%s: no uploaded file with this sha256 (upload it through the CAS first)", ps);
                rc = -ENOENT;
            } else {
                if (cJSON_IsNumber(sz) && (uint64_t)sz->valuedouble != f.size) {
                    snprintf(err, errlen, "%s: size does not match the upload", ps);
                    rc = -EINVAL;
                }
                ne.xet = true;
                ne.size = f.size;
                memcpy(ne.sha256, oid->valuestring, 64);
                xet_hash_to_string(&fh, ne.xet_hash);
                char ptr[256];
                int pl = o_lfs_pointer(ne.sha256, f.size, ptr, sizeof ptr);
                ne.pointer_size = (uint32_t)pl;
                o_git_blob_sha1(ptr, (size_t)pl, ne.oid);
                o_file_free(&f);
            }
        } else {
            snprintf(err, errlen, "unsupported operation %s", k);
            rc = -EOPNOTSUPP;
        }
        if (!rc) {
            for (size_t i = 0; i < n; i++)
                if (!gone[i] && !strcmp(e[i].path, ps))
                    gone[i] = true;
            if (n == cap) {
                cap *= 2;
                o_entry *ee = realloc(e, cap * sizeof *ee);
                bool *gg = realloc(gone, cap * sizeof *gg);
                if (ee)
                    e = ee;
                if (gg)
                    gone = gg;
                if (!ee || !gg)
                    rc = -ENOMEM;
            }
            if (!rc) {
                ne.path = strdup(ps);
                e[n] = ne;
                gone[n] = false;
                n++;
            }
        }
        cJSON_Delete(line);
    }
    if (!rc) {
        /* compact */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (gone[i]) {
                free(e[i].path);
                continue;
            }
            e[m++] = e[i];
        }
        n = m;
        rc = o_commit_entries(s, r, branch, e, n, true, summary ? summary : "commit", out_id);
        if (rc)
            snprintf(err, errlen, "commit failed: %s", strerror(-rc));
    }
    for (size_t i = 0; i < n; i++)
        free(e[i].path);
    free(e);
    free(gone);
    free(summary);
    o_commit_free(&old);
    return rc;
}

int o_hub_create_repo(const o_store *s, const char *type, const char *id, bool priv, char *err,
                      size_t errlen)
{
    o_repo r;
    if (o_repo_load(s, type, id, &r) == 0) {
        snprintf(err, errlen, "You already created this %s repo", type);
        return -EEXIST;
    }
    int e = o_repo_create(s, type, id, priv);
    if (e) {
        snprintf(err, errlen, "invalid repo id");
        return e;
    }
    e = o_repo_load(s, type, id, &r);
    if (e)
        return e;
    /* the Hub starts every repo with a .gitattributes commit */
    static const char ga[] = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                             "*.bin filter=lfs diff=lfs merge=lfs -text\n"
                             "*.gguf filter=lfs diff=lfs merge=lfs -text\n";
    o_entry en;
    memset(&en, 0, sizeof en);
    en.path = ".gitattributes";
    en.size = sizeof ga - 1;
    o_git_blob_sha1(ga, sizeof ga - 1, en.oid);
    char *bp = o_path(s, "blobs/%s", en.oid);
    e = bp ? o_write_atomic(s->dir, bp, ga, sizeof ga - 1) : -ENOMEM;
    free(bp);
    char id41[41];
    if (!e)
        e = o_commit_entries(s, &r, "main", &en, 1, true, "initial commit", id41);
    return e;
}
