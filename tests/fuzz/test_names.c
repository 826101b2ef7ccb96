/* test_names.c — names that come from the Hub cannot escape the mount
 * (fs/repo.c, SECURITY.md "Paths"): repo-relative paths and revisions
 * (no "..", ".", empty components, absolute paths, control bytes, over-long
 * names), repo ids and their folder names, and the persisted repo JSON,
 * which must refuse any such path before it reaches the virtual tree. */
#include "t.h"

#include "repo.h"

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static void test_paths(void)
{
    static const char *bad[] = {
        "", "/", "/etc/passwd", "..", "../x", "a/../b", "a/..", "../../../../etc/passwd",
        ".", "./a", "a/./b", "a/.", "a//b", "a/", "//a", "a\x01" "b", "a\nb", "a\tb", "\x7f" "\x1f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T_TRUE(!zf_valid_path(bad[i]));
        T_TRUE(!zf_valid_rev(bad[i]));
    }
    static const char *good[] = {
        "a", "config.json", "a/b/c.safetensors", "...", "..a", "a..", ".hidden", "a/.b/..c",
        "refs/pr/1", "weights (1).bin", "\xc3\xa9t\xc3\xa9.txt",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        T_TRUE(zf_valid_path(good[i]));
    T_TRUE(zf_valid_rev("main"));
    T_TRUE(zf_valid_rev("refs/pr/1"));

    /* a component: 255 bytes at most; a path: 4000 */
    char *c255 = repeat('x', 255), *c256 = repeat('x', 256);
    T_TRUE(zf_valid_path(c255));
    T_TRUE(!zf_valid_path(c256));
    char *p = malloc(4002);
    size_t n = 0;
    while (n < 4000) {
        size_t k = 4000 - n < 200 ? 4000 - n : 200;
        if (n && k < 2)
            k = 2;
        memset(p + n, 'y', k);
        n += k;
        if (n < 4000)
            p[n - 1] = '/';
    }
    p[4000] = 0;
    T_EQ_INT(strlen(p), 4000);
    T_TRUE(zf_valid_path(p));
    p[3999] = 0;
    strcat(p, "zz"); /* 4001 */
    T_TRUE(!zf_valid_path(p));
    /* revisions: 255 bytes at most */
    T_TRUE(zf_valid_rev(c255));
    char *r256 = repeat('r', 256);
    r256[100] = '/';
    T_TRUE(zf_valid_path(r256) && !zf_valid_rev(r256));
    free(r256);
    free(p);
    free(c255);
    free(c256);
}

static void test_repo_ids(void)
{
    static const char *bad[] = {
        "", "/", "/a", "a/", "a/b/c", "../x", "org/../x", "..", "a..b", "a--b", "org/a--b",
        "-a", "a-", ".a", "a.", "a b", "a\nb", "a%2fb", "a\\b", "org//name",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T_TRUE(!zf_valid_repo_id(bad[i]));
        T_TRUE(zf_repo_folder(ZF_MODEL, bad[i]) == NULL);
    }
    T_TRUE(zf_valid_repo_id("gpt2"));
    T_TRUE(zf_valid_repo_id("org-x/name_1.2"));
    char *p96 = repeat('a', 96), *p97 = repeat('a', 97);
    T_TRUE(zf_valid_repo_id(p96));
    T_TRUE(!zf_valid_repo_id(p97));
    free(p96);
    free(p97);

    char *f = zf_repo_folder(ZF_DATASET, "org/name");
    T_EQ_STR(f, "datasets--org--name");
    free(f);
    enum zf_repo_type t;
    char *id = NULL;
    T_EQ_INT(zf_repo_parse_folder("models--org--name", &t, &id), 0);
    T_EQ_INT(t, ZF_MODEL);
    T_EQ_STR(id, "org/name");
    free(id);
    static const char *badf[] = {
        "models--", "models--org--name--x", "models----x", "model--a", "models-a", "foo--a",
        "models--..", "models--a--..", "models--a..b", "spaces--a--b--c", "models--a/b",
        "models--a--b/c",
    };
    for (size_t i = 0; i < sizeof badf / sizeof badf[0]; i++) {
        id = NULL;
        T_EQ_INT(zf_repo_parse_folder(badf[i], &t, &id), -EINVAL);
        T_TRUE(id == NULL);
    }
}

#define SHA "0123456789abcdef0123456789abcdef01234567"
#define REPO_JSON(path)                                                                     \
    "{\"format\":1,\"type\":\"model\",\"id\":\"org/name\",\"refs\":{\"main\":\"" SHA "\"},"  \
    "\"commits\":{\"" SHA "\":{\"date\":1,\"files\":[{\"path\":\"" path "\",\"size\":1,"     \
    "\"oid\":\"" SHA "\"}]}}}"

static int load(const char *json)
{
    zf_repo *r = NULL;
    int rc = zf_repo_from_json(json, strlen(json), &r);
    if (rc == 0) {
        for (size_t i = 0; i < r->ncommits; i++)
            for (size_t k = 0; k < r->commits[i].nfiles; k++)
                T_TRUE(zf_valid_path(r->commits[i].files[k].path));
        zf_repo_free(r);
    }
    return rc;
}

static void test_repo_json(void)
{
    T_EQ_INT(load(REPO_JSON("a/b.txt")), 0);
    T_EQ_INT(load(REPO_JSON("../../etc/passwd")), -EBADMSG);
    T_EQ_INT(load(REPO_JSON("/etc/passwd")), -EBADMSG);
    T_EQ_INT(load(REPO_JSON("a/../../b")), -EBADMSG);
    T_EQ_INT(load(REPO_JSON("a//b")), -EBADMSG);
    T_EQ_INT(load(REPO_JSON("a\\u0001b")), -EBADMSG);
    T_EQ_INT(load(REPO_JSON("a\\nb")), -EBADMSG);
    /* an escaped NUL must not smuggle anything past the checks */
    int rc = load(REPO_JSON("a\\u0000/../../b"));
    T_TRUE(rc == 0 || rc == -EBADMSG);
    T_EQ_INT(load("{\"format\":1,\"type\":\"model\",\"id\":\"../x\",\"refs\":{},\"commits\":{}}"),
             -EBADMSG);
    T_EQ_INT(load("{\"format\":1,\"type\":\"model\",\"id\":\"o/n\",\"refs\":{\"../x\":\"" SHA
                  "\"},\"commits\":{}}"),
             -EBADMSG);
    T_EQ_INT(load("{\"format\":1,\"type\":\"model\",\"id\":\"o/n\",\"refs\":{},\"commits\":{\"../"
                  "x\":{\"files\":[]}}}"),
             -EBADMSG);
    /* two files with the same path: refused */
    T_EQ_INT(load("{\"format\":1,\"type\":\"model\",\"id\":\"o/n\",\"refs\":{},\"commits\":{\"" SHA
                  "\":{\"files\":[{\"path\":\"a\",\"size\":1,\"oid\":\"" SHA "\"},{\"path\":\"a\","
                  "\"size\":2,\"oid\":\"" SHA "\"}]}}}"),
             -EBADMSG);
}

/* The visibility verdict kept with the model: round-trips; anything odd
 * (unknown word, no check time, wrong types) loads as unknown, never public. */
static zf_repo *load_vis(const char *vis)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"format\":1,\"type\":\"model\",\"id\":\"o/n\",\"refs\":{},\"commits\":{}%s%s}",
             vis ? ",\"visibility\":" : "", vis ? vis : "");
    zf_repo *r = NULL;
    T_EQ_INT(zf_repo_from_json(json, strlen(json), &r), 0);
    return r;
}

static void test_repo_visibility(void)
{
    static const struct {
        const char *vis;
        enum zf_visibility want;
    } cases[] = {
        {NULL, ZF_VIS_UNKNOWN},
        {"{\"verdict\":\"public\",\"checked\":1700000000}", ZF_VIS_PUBLIC},
        {"{\"verdict\":\"private\",\"checked\":1700000000}", ZF_VIS_PRIVATE},
        {"{\"verdict\":\"gated\",\"checked\":1700000000}", ZF_VIS_GATED},
        {"{\"verdict\":\"public\"}", ZF_VIS_UNKNOWN},
        {"{\"verdict\":\"public\",\"checked\":0}", ZF_VIS_UNKNOWN},
        {"{\"verdict\":\"Public\",\"checked\":1}", ZF_VIS_UNKNOWN},
        {"{\"verdict\":true,\"checked\":1}", ZF_VIS_UNKNOWN},
        {"\"public\"", ZF_VIS_UNKNOWN},
        {"{\"verdict\":\"public\",\"checked\":1e300}", ZF_VIS_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zf_repo *r = load_vis(cases[i].vis);
        if (!r)
            continue;
        T_EQ_INT((int)r->vis, (int)cases[i].want);
        char *j = zf_repo_to_json(r);
        zf_repo *r2 = NULL;
        T_EQ_INT(zf_repo_from_json(j, strlen(j), &r2), 0);
        if (r2) {
            T_EQ_INT((int)r2->vis, (int)r->vis);
            T_TRUE(r2->vis_checked == r->vis_checked);
            T_TRUE(r->vis == ZF_VIS_UNKNOWN || r2->vis_checked == 1700000000);
        }
        zf_repo_free(r2);
        free(j);
        zf_repo_free(r);
    }
    T_EQ_STR(zf_vis_name(ZF_VIS_PUBLIC), "public");
    enum zf_visibility v;
    T_EQ_INT(zf_vis_parse("gated", &v), 0);
    T_EQ_INT((int)v, (int)ZF_VIS_GATED);
    T_EQ_INT(zf_vis_parse("nope", &v), -EINVAL);
}

int main(void)
{
    T_RUN(test_paths);
    T_RUN(test_repo_ids);
    T_RUN(test_repo_json);
    T_RUN(test_repo_visibility);
    return t_done();
}
