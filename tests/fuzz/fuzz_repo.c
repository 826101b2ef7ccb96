/* fuzz_repo.c — the repo model (fs/repo.c): its persisted JSON (read back
 * from the store at every mount) and the validation of names that come
 * from the Hub (repo ids, folder names, revisions, repo paths), which is
 * what keeps the Hub from naming anything outside the mount.
 * Input: byte 0 even: the rest is repo JSON; odd: the rest is a name. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "repo.h"

/* What zf_valid_path promises (repo.h): relative, no empty, "." or ".."
 * component, no control byte, components <= 255 bytes, total <= 4000. */
static void check_path_ok(const char *s)
{
    size_t n = strlen(s);
    FZ_CHECK(n > 0 && n <= 4000 && s[0] != '/' && s[n - 1] != '/');
    const char *c = s;
    for (;;) {
        const char *e = strchr(c, '/');
        size_t l = e ? (size_t)(e - c) : strlen(c);
        FZ_CHECK(l > 0 && l <= 255);
        FZ_CHECK(!(l == 1 && c[0] == '.') && !(l == 2 && c[0] == '.' && c[1] == '.'));
        for (size_t i = 0; i < l; i++)
            FZ_CHECK((unsigned char)c[i] >= 0x20);
        if (!e)
            break;
        c = e + 1;
    }
}

static void check_repo(const zf_repo *r)
{
    FZ_CHECK(zf_valid_repo_id(r->id));
    enum zf_repo_type t;
    char *id = NULL;
    FZ_CHECK(zf_repo_parse_folder(r->folder, &t, &id) == 0);
    FZ_CHECK(t == r->type && strcmp(id, r->id) == 0);
    free(id);
    for (size_t i = 0; i < r->nrefs; i++)
        FZ_CHECK(zf_valid_rev(r->refs[i].name) && strlen(r->refs[i].sha) == 40);
    for (size_t i = 0; i < r->ncommits; i++) {
        const zf_commit *c = &r->commits[i];
        FZ_CHECK(zf_repo_commit(r, c->sha) != NULL);
        for (size_t k = 0; k < c->nfiles; k++) {
            check_path_ok(c->files[k].path);
            FZ_CHECK(zf_commit_file(c, c->files[k].path) == &c->files[k]);
            FZ_CHECK(zf_repo_blob(r, c->files[k].etag, NULL) != NULL);
            (void)zf_commit_is_dir(c, c->files[k].path);
        }
        (void)zf_commit_is_dir(c, "");
        char *tj = zf_commit_tree_json(c);
        FZ_CHECK(tj != NULL);
        free(tj);
    }
}

static void fuzz_json(const uint8_t *p, size_t n)
{
    char *json = (char *)fz_dup(p, n);
    zf_repo *r = NULL;
    int rc = zf_repo_from_json(json, n, &r);
    if (rc == 0) {
        check_repo(r);
        char *again = zf_repo_to_json(r);
        FZ_CHECK(again != NULL);
        zf_repo *r2 = NULL;
        FZ_CHECK(zf_repo_from_json(again, strlen(again), &r2) == 0);
        FZ_CHECK(r2->type == r->type && !strcmp(r2->id, r->id) && r2->nrefs == r->nrefs &&
                 r2->ncommits == r->ncommits);
        for (size_t i = 0; i < r->ncommits; i++) {
            FZ_CHECK(r2->commits[i].nfiles == r->commits[i].nfiles);
            for (size_t k = 0; k < r->commits[i].nfiles; k++) {
                FZ_CHECK(!strcmp(r2->commits[i].files[k].path, r->commits[i].files[k].path));
                FZ_CHECK(r2->commits[i].files[k].size == r->commits[i].files[k].size);
            }
        }
        zf_repo_free(r2);
        free(again);
        zf_repo_free(r);
    } else {
        FZ_CHECK(rc == -EBADMSG || rc == -ENOMEM);
    }
    free(json);
}

static void fuzz_name(const uint8_t *p, size_t n)
{
    char *s = fz_strndup(p, n);
    if (zf_valid_path(s))
        check_path_ok(s);
    if (zf_valid_rev(s)) {
        check_path_ok(s);
        FZ_CHECK(strlen(s) <= 255);
    }
    if (zf_valid_repo_id(s)) {
        FZ_CHECK(!strstr(s, "..") && !strstr(s, "--") && s[0] != '/' && s[0] != '.');
        for (int t = 0; t < 3; t++) {
            char *f = zf_repo_folder((enum zf_repo_type)t, s);
            FZ_CHECK(f && !strchr(f, '/'));
            enum zf_repo_type tt;
            char *id = NULL;
            FZ_CHECK(zf_repo_parse_folder(f, &tt, &id) == 0);
            FZ_CHECK((int)tt == t && strcmp(id, s) == 0);
            free(id);
            free(f);
        }
    } else {
        FZ_CHECK(zf_repo_folder(ZF_MODEL, s) == NULL);
    }
    enum zf_repo_type t;
    char *id = NULL;
    if (zf_repo_parse_folder(s, &t, &id) == 0) {
        /* one folder name per repo: parsing then naming gives it back */
        char *f = zf_repo_folder(t, id);
        FZ_CHECK(f && strcmp(f, s) == 0);
        free(f);
        free(id);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_name(data + 1, size - 1);
    else
        fuzz_json(data + 1, size - 1);
    return 0;
}
