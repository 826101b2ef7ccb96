/* config.c — config files turned into command-line options (see config.h).
 *
 * Design: each file is parsed line by line into a list of (key, value)
 * entries; nothing is interpreted beyond what the option parser of the mount
 * needs: a key is a long option name, a flag is emitted as --KEY, anything
 * else as --KEY=VALUE.  All entries are kept in file order (so a repeatable
 * option such as repo accumulates, and a single-valued one is won by the last
 * occurrence, as getopt_long does); a flag set to false removes the earlier
 * occurrences of its key.  The result is argv[0], the config's options, then
 * the caller's arguments, so the command line wins.
 *
 * `--no-config` anywhere before a `--` on the command line skips every file
 * and is removed from the result.
 *
 * Values are never copied into error messages. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { K_VALUE, K_FLAG };

/* The mount's options whose shape is known; others are passed through. */
static const struct {
    const char *name;
    int kind;
} known[] = {
    {"endpoint", K_VALUE},  {"store", K_VALUE},      {"store-size", K_VALUE},
    {"cacert", K_VALUE},    {"token", K_VALUE},      {"token-file", K_VALUE},
    {"repo", K_VALUE},      {"repo-json", K_VALUE},  {"offline", K_FLAG},
    {"allow-other", K_FLAG}, {"foreground", K_FLAG}, {"debug", K_FLAG},
};

/* keys that make no sense in a file */
static const char *const refused[] = {"help", "version", "no-config"};

typedef struct entry {
    char *key;
    char *val; /* NULL: a flag */
    bool secret;
} entry;

/* what zf_config_argv returns: the array, behind a count of the strings
 * it made (so zf_config_free knows which to free) */
typedef struct made_argv {
    size_t made;
    char *v[];
} made_argv;

typedef struct list {
    entry *e;
    int n, cap;
} list;

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void wipe_free(char *s, bool secret)
{
    if (s && secret) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
    }
    free(s);
}

static void list_free(list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->e[i].key);
        wipe_free(l->e[i].val, l->e[i].secret);
    }
    free(l->e);
    l->e = NULL;
    l->n = l->cap = 0;
}

static int list_push(list *l, char *key, char *val, bool secret)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        entry *e = realloc(l->e, (size_t)cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        l->e = e;
        l->cap = cap;
    }
    l->e[l->n++] = (entry){key, val, secret};
    return 0;
}

static void list_remove_key(list *l, const char *key)
{
    int j = 0;
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->e[i].key, key) == 0) {
            free(l->e[i].key);
            wipe_free(l->e[i].val, l->e[i].secret);
        } else
            l->e[j++] = l->e[i];
    }
    l->n = j;
}

static int key_kind(const char *key)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(known[i].name, key) == 0)
            return known[i].kind;
    return -1;
}

static bool valid_key(const char *k)
{
    size_t n = strlen(k);
    if (n < 2 || n > 64 || !(islower((unsigned char)k[0]) || isdigit((unsigned char)k[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)k[i]) || isdigit((unsigned char)k[i]) || k[i] == '-'))
            return false;
    return k[n - 1] != '-';
}

/* 1 true, 0 false, -1 neither */
static int boolean(const char *v)
{
    static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, t[i]) == 0)
            return 1;
        if (strcasecmp(v, f[i]) == 0)
            return 0;
    }
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

/* "~" or "~/..." at the start: $HOME */
static char *expand(const char *v)
{
    const char *home = getenv("HOME");
    if (v[0] == '~' && (v[1] == 0 || v[1] == '/') && home && home[0]) {
        size_t n = strlen(home) + strlen(v);
        char *s = malloc(n);
        if (s)
            snprintf(s, n, "%s%s", home, v + 1);
        return s;
    }
    return strdup(v);
}

/* One line; returns 0 or a negative errno value (err set). */
static int parse_line(list *l, char *line, const char *path, int lineno, const struct stat *st,
                      char *err, size_t errlen)
{
    char *s = trim(line);
    if (!*s || *s == '#' || *s == ';')
        return 0;
    char *eq = strchr(s, '=');
    char *val = NULL;
    if (eq) {
        *eq = 0;
        val = trim(eq + 1);
    }
    char *key = trim(s);
    if (strncmp(key, "--", 2) == 0)
        key += 2;
    if (!valid_key(key)) {
        seterr(err, errlen, "%s:%d: not an option name (expected key = value)", path, lineno);
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (strcmp(key, refused[i]) == 0) {
            seterr(err, errlen, "%s:%d: '%s' is not allowed in a config file", path, lineno,
                   key);
            return -EINVAL;
        }
    bool secret = strcmp(key, "token") == 0 || strcmp(key, "http-token") == 0;
    if (secret && (st->st_mode & (S_IROTH | S_IWOTH))) {
        seterr(err, errlen,
               "%s:%d: refusing '%s' from a file other users can read "
               "(chmod o-rw it, or use token-file)", path, lineno, key);
        return -EPERM;
    }
    if (val) {
        /* unquoted: " #" starts a comment; quoted: the quotes are removed */
        if ((val[0] == '"' || val[0] == '\'')) {
            char q = val[0];
            char *end = strchr(val + 1, q);
            const char *rest = end ? trim(end + 1) : NULL;
            if (!end || (*rest && *rest != '#')) {
                seterr(err, errlen, "%s:%d: unterminated quote or text after it", path, lineno);
                return -EINVAL;
            }
            *end = 0;
            val++;
        } else {
            for (char *c = val; *c; c++)
                if (*c == '#' && c > val && (c[-1] == ' ' || c[-1] == '\t')) {
                    *c = 0;
                    val = trim(val);
                    break;
                }
        }
    }
    int kind = key_kind(key);
    int b = val ? boolean(val) : 1;
    bool flag;
    if (kind == K_FLAG) {
        if (b < 0) {
            seterr(err, errlen, "%s:%d: '%s' takes true or false", path, lineno, key);
            return -EINVAL;
        }
        flag = true;
    } else if (kind == K_VALUE) {
        if (!val) {
            seterr(err, errlen, "%s:%d: '%s' needs a value", path, lineno, key);
            return -EINVAL;
        }
        flag = false;
    } else
        flag = b >= 0; /* unknown: true/false words make it a flag */
    if (flag && b == 0) {
        list_remove_key(l, key);
        return 0;
    }
    char *k = strdup(key), *v = NULL;
    if (!k)
        return -ENOMEM;
    if (!flag && !(v = secret ? strdup(val) : expand(val))) {
        free(k);
        return -ENOMEM;
    }
    int e = list_push(l, k, v, secret);
    if (e) {
        free(k);
        wipe_free(v, secret);
    }
    return e;
}

static int parse_file(list *l, const char *path, bool must_exist, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (!must_exist && (e == ENOENT || e == ENOTDIR))
            return 0;
        seterr(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        seterr(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) { /* /dev/null is fine */
        close(fd);
        seterr(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH)) {
        close(fd);
        seterr(err, errlen, "%s: refusing a config file every user can write", path);
        return -EPERM;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    char line[4096];
    int lineno = 0, e = 0;
    while (!e && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n' && !feof(f)) {
            seterr(err, errlen, "%s:%d: line too long", path, lineno);
            e = -EINVAL;
            break;
        }
        e = parse_line(l, line, path, lineno, &st, err, errlen);
    }
    if (!e && ferror(f)) {
        seterr(err, errlen, "%s: read error", path);
        e = -EIO;
    }
    memset(line, 0, sizeof line);
    fclose(f);
    return e;
}

int zf_config_argv_files(int argc, char **argv, const char *const *paths,
                         const int *must_exist, int npaths, int *out_argc, char ***out_argv,
                         char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    *out_argc = 0;
    *out_argv = NULL;
    if (argc < 1)
        return -EINVAL;
    bool skip = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--no-config") == 0)
            skip = true;
    list l = {0};
    int e = 0;
    for (int i = 0; !skip && !e && i < npaths; i++)
        if (paths[i])
            e = parse_file(&l, paths[i], must_exist && must_exist[i], err, errlen);
    made_argv *m = e ? NULL : calloc(1, sizeof *m + ((size_t)argc + (size_t)l.n + 1) * sizeof(char *));
    char **nv = m ? m->v : NULL;
    if (!e && !nv) {
        seterr(err, errlen, "out of memory");
        e = -ENOMEM;
    }
    int n = 0;
    if (!e) {
        nv[n++] = argv[0];
        for (int i = 0; i < l.n; i++) {
            size_t len = strlen(l.e[i].key) + (l.e[i].val ? strlen(l.e[i].val) : 0) + 4;
            char *s = malloc(len);
            if (!s) {
                e = -ENOMEM;
                seterr(err, errlen, "out of memory");
                break;
            }
            if (l.e[i].val)
                snprintf(s, len, "--%s=%s", l.e[i].key, l.e[i].val);
            else
                snprintf(s, len, "--%s", l.e[i].key);
            nv[n++] = s;
        }
    }
    if (e) {
        if (nv)
            for (int i = 1; i < n; i++)
                wipe_free(nv[i], true);
        free(m);
        list_free(&l);
        return e;
    }
    bool dashdash = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            dashdash = true;
        if (!dashdash && strcmp(argv[i], "--no-config") == 0)
            continue;
        nv[n++] = argv[i];
    }
    nv[n] = NULL;
    m->made = (size_t)l.n; /* our strings sit at [1, 1 + made) */
    list_free(&l);
    *out_argc = n;
    *out_argv = nv;
    return 0;
}

void zf_config_free(char **argv)
{
    if (!argv)
        return;
    made_argv *m = (made_argv *)((char *)argv - offsetof(made_argv, v));
    for (size_t i = 1; i <= m->made; i++)
        wipe_free(argv[i], true);
    free(m);
}

int zf_config_argv(int argc, char **argv, int *out_argc, char ***out_argv, char *err,
                   size_t errlen)
{
    char user[4096] = "";
    const char *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
    if (x && x[0] == '/')
        snprintf(user, sizeof user, "%s/zestfs/config", x);
    else if (h && h[0])
        snprintf(user, sizeof user, "%s/.config/zestfs/config", h);
    const char *env = getenv("ZESTFS_CONFIG");
    const char *paths[3] = {"/etc/zestfs/config", user[0] ? user : NULL,
                            env && env[0] ? env : NULL};
    const int must[3] = {0, 0, 1};
    return zf_config_argv_files(argc, argv, paths, must, 3, out_argc, out_argv, err, errlen);
}
