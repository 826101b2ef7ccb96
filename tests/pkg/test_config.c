/* test_config.c — zf_config_argv: config files become options placed before
 * the command line's; flags, repeatable keys, pass-through of unknown keys,
 * quoting and comments, ~ expansion, the token permission rule (the value
 * never appears in an error), and that getopt_long then sees the command
 * line win. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../fs/config.h"
#include "../t.h"

static char dir[256];

static const char *file(const char *name, const char *text, mode_t mode)
{
    static char paths[8][512];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
    return p;
}

static char *joined(int argc, char **argv)
{
    static char buf[4096];
    buf[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(buf, " ");
        strcat(buf, argv[i]);
    }
    return buf;
}

static int run(const char *const *paths, int n, int argc, char **argv, char **out, char *err)
{
    int oc;
    char **ov;
    int must[4] = {0, 0, 0, 1};
    int e = zf_config_argv_files(argc, argv, paths, must, n, &oc, &ov, err, 512);
    if (e)
        return e;
    T_TRUE(ov[oc] == NULL);
    *out = strdup(joined(oc, ov));
    zf_config_free(ov);
    return 0;
}

static void test_none(void)
{
    char *argv[] = {"zestfs", "-f", "/mnt", NULL};
    const char *paths[] = {NULL, "/nonexistent/zestfs/config"};
    char *out, err[512];
    T_EQ_INT(run(paths, 2, 3, argv, &out, err), 0);
    T_EQ_STR(out, "zestfs -f /mnt");
    free(out);
}

static void test_basic(void)
{
    setenv("HOME", "/home/u", 1);
    const char *p = file("basic",
                         "# a comment\n"
                         "\n"
                         "  endpoint = http://127.0.0.1:8080/  \n"
                         "store = ~/models\n"
                         "store-size=10G # inline comment\n"
                         "repo = org/a@main\n"
                         "repo = \"datasets/org/b\"\n"
                         "offline = yes\n"
                         "--allow-other\n"
                         "cacert = '/etc/ssl/a b.pem'\n",
                         0644);
    const char *paths[] = {p};
    char *argv[] = {"zestfs", "--repo", "org/c", "/mnt", NULL};
    char *out, err[512];
    T_EQ_INT(run(paths, 1, 4, argv, &out, err), 0);
    T_EQ_STR(out, "zestfs --endpoint=http://127.0.0.1:8080/ --store=/home/u/models "
                  "--store-size=10G --repo=org/a@main --repo=datasets/org/b --offline "
                  "--allow-other --cacert=/etc/ssl/a b.pem --repo org/c /mnt");
    free(out);
}

static void test_layers(void)
{
    const char *sys = file("sys", "endpoint = http://sys\noffline = true\nrepo = org/sys\n", 0644);
    const char *usr = file("usr", "endpoint = http://user\noffline = false\nrepo = org/usr\n", 0600);
    const char *paths[] = {sys, usr};
    char *argv[] = {"zestfs", "/mnt", NULL};
    char *out, err[512];
    T_EQ_INT(run(paths, 2, 2, argv, &out, err), 0);
    /* offline=false removed the earlier flag; both endpoints stay, the last wins in getopt */
    T_EQ_STR(out, "zestfs --endpoint=http://sys --repo=org/sys --endpoint=http://user "
                  "--repo=org/usr /mnt");
    free(out);
}

static void test_passthrough(void)
{
    const char *p = file("future", "listen = 127.0.0.1:9000\npeer = 10.0.0.2:6881\n"
                                   "peer = 10.0.0.3:6881\nmetrics = on\nseed-only = off\n", 0644);
    const char *paths[] = {p};
    char *argv[] = {"zestfs", "/mnt", NULL};
    char *out, err[512];
    T_EQ_INT(run(paths, 1, 2, argv, &out, err), 0);
    T_EQ_STR(out, "zestfs --listen=127.0.0.1:9000 --peer=10.0.0.2:6881 --peer=10.0.0.3:6881 "
                  "--metrics /mnt");
    free(out);
}

static void test_errors(void)
{
    char *argv[] = {"zestfs", "/mnt", NULL};
    char *out = NULL, err[512];
    const char *bad[] = {
        "Endpoint = x\n",      /* upper case */
        "end point = x\n",     /* space in the key */
        "=x\n",                /* no key */
        "offline = maybe\n",   /* flag with a non-boolean */
        "endpoint\n",          /* value key without a value */
        "help = true\n",       /* refused key */
        "store = \"/a\n",      /* unterminated quote */
        "x = 1\n",             /* one-letter key (short option) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = file("bad", bad[i], 0644);
        const char *paths[] = {p};
        err[0] = 0;
        T_EQ_INT(run(paths, 1, 2, argv, &out, err), -EINVAL);
        T_TRUE(strstr(err, ":1:") != NULL);
    }
    /* a line that is too long */
    char *big = malloc(10000);
    memset(big, 'a', 9998);
    memcpy(big, "store = ", 8);
    big[9998] = '\n';
    big[9999] = 0;
    const char *paths[] = {file("long", big, 0644)};
    free(big);
    T_EQ_INT(run(paths, 1, 2, argv, &out, err), -EINVAL);
    T_TRUE(strstr(err, "too long") != NULL);
    /* an explicit file ($ZESTFS_CONFIG) must exist; the others may not */
    const char *missing[] = {NULL, NULL, NULL, "/nonexistent/cfg"};
    T_EQ_INT(run(missing, 4, 2, argv, &out, err), -ENOENT);
    T_TRUE(strstr(err, "/nonexistent/cfg") != NULL);
    /* every user can write it: refused whatever it holds */
    const char *ww[] = {file("ww", "endpoint = http://evil\n", 0666)};
    T_EQ_INT(run(ww, 1, 2, argv, &out, err), -EPERM);
}

static void test_token(void)
{
    char *argv[] = {"zestfs", "/mnt", NULL};
    char *out, err[512];
    const char *secret = "hf_SECRETVALUE123";
    char text[256];
    snprintf(text, sizeof text, "endpoint = http://h\ntoken = %s\n", secret);
    const char *open_ = file("tok644", text, 0644);
    const char *paths[] = {open_};
    err[0] = 0;
    T_EQ_INT(run(paths, 1, 2, argv, &out, err), -EPERM);
    T_TRUE(strstr(err, "token") != NULL);
    T_TRUE(strstr(err, ":2:") != NULL);
    T_TRUE(strstr(err, secret) == NULL);
    /* group-readable but not world-readable is accepted (root:zestfs 0640) */
    const char *closed = file("tok640", text, 0640);
    const char *ok[] = {closed};
    T_EQ_INT(run(ok, 1, 2, argv, &out, err), 0);
    T_EQ_STR(out, "zestfs --endpoint=http://h --token=hf_SECRETVALUE123 /mnt");
    free(out);
    /* token-file is a path, fine anywhere */
    const char *tf[] = {file("tf", "token-file = ~/.hf-token\n", 0644)};
    setenv("HOME", "/home/u", 1);
    T_EQ_INT(run(tf, 1, 2, argv, &out, err), 0);
    T_EQ_STR(out, "zestfs --token-file=/home/u/.hf-token /mnt");
    free(out);
}

static void test_no_config(void)
{
    const char *p = file("nc", "endpoint = http://x\n", 0644);
    const char *paths[] = {p};
    char *argv[] = {"zestfs", "--no-config", "/mnt", "--", "--no-config", NULL};
    char *out, err[512];
    T_EQ_INT(run(paths, 1, 5, argv, &out, err), 0);
    T_EQ_STR(out, "zestfs /mnt -- --no-config");
    free(out);
}

/* The real entry point: $XDG_CONFIG_HOME/zestfs/config then $ZESTFS_CONFIG;
 * then getopt_long over the result sees the command line win. */
static void test_env_and_getopt(void)
{
    char d[512];
    snprintf(d, sizeof d, "%s/xdg/zestfs", dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", d);
    T_EQ_INT(system(cmd), 0);
    file("xdg/zestfs/config", "endpoint = http://user\nstore-size = 1G\nrepo = org/u\n", 0644);
    const char *extra = file("extra", "store-size = 2G\n", 0644);
    setenv("XDG_CONFIG_HOME", strcat(strcpy(d, dir), "/xdg"), 1);
    setenv("ZESTFS_CONFIG", extra, 1);
    char *argv[] = {"zestfs", "--endpoint", "http://cli", "--repo=org/c", "/mnt", NULL};
    int oc;
    char **ov;
    char err[512];
    T_EQ_INT(zf_config_argv(5, argv, &oc, &ov, err, sizeof err), 0);
    struct stat st;
    if (stat("/etc/zestfs/config", &st) != 0) /* the host's file would add options */
        T_EQ_STR(joined(oc, ov), "zestfs --endpoint=http://user --store-size=1G --repo=org/u "
                                 "--store-size=2G --endpoint http://cli --repo=org/c /mnt");
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"store-size", required_argument, NULL, 's'},
        {"repo", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = NULL, *size = NULL, *repos[8];
    int nrepo = 0, c;
    optind = 1;
    while ((c = getopt_long(oc, ov, "", opts, NULL)) != -1) {
        if (c == 'e')
            endpoint = optarg;
        else if (c == 's')
            size = optarg;
        else if (c == 'r' && nrepo < 8)
            repos[nrepo++] = optarg;
    }
    T_EQ_STR(endpoint, "http://cli");
    T_EQ_STR(size, "2G");
    T_EQ_INT(nrepo, 2);
    if (nrepo == 2) {
        T_EQ_STR(repos[0], "org/u");
        T_EQ_STR(repos[1], "org/c");
    }
    T_EQ_INT(optind, oc - 1);
    T_EQ_STR(ov[optind], "/mnt");
    zf_config_free(ov);
    /* $ZESTFS_CONFIG pointing nowhere is an error */
    setenv("ZESTFS_CONFIG", "/nonexistent/x", 1);
    T_EQ_INT(zf_config_argv(5, argv, &oc, &ov, err, sizeof err), -ENOENT);
    unsetenv("ZESTFS_CONFIG");
    unsetenv("XDG_CONFIG_HOME");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/zf-config-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    umask(0);
    T_RUN(test_none);
    T_RUN(test_basic);
    T_RUN(test_layers);
    T_RUN(test_passthrough);
    T_RUN(test_errors);
    T_RUN(test_token);
    T_RUN(test_no_config);
    T_RUN(test_env_and_getopt);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return t_done();
}
