/* options.c — option helpers shared by the commands (mount, pull, seed, the
 * control clients): sizes, the default store and its cap, the Hub endpoint,
 * the Hub token, and where a mount registers its control socket.  No state;
 * nothing here calls another file of fs/. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "options.h"

/* "123", "64K", "512M", "10G", "1T" (powers of 1024; "KiB", "MB" fine too). */
int zf_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    case 't': case 'T': mul = 1ull << 40; end++; break;
    default: break;
    }
    if (mul > 1 && *end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v * (double)mul >= 18446744073709551615.0)
        return -EINVAL;
    *out = (uint64_t)(v * (double)mul);
    return 0;
}

/* Contents of a token file, whitespace trimmed; NULL if none or empty. */
/* The HF token file: a regular file (not followed through a symlink at
 * its last component) owned by us or root.  Writable by group or others:
 * refused (someone else could substitute a token); readable by others: used,
 * with a warning that names the file and the fix. */
char *zf_read_token_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            fprintf(stderr, "zestfs: token file %s is a symlink: not used\n", path);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NULL;
    }
    if ((st.st_uid != getuid() && st.st_uid != 0) || (st.st_mode & 022)) {
        fprintf(stderr,
                "zestfs: token file %s is %s: not used (chown it to yourself, chmod 600)\n", path,
                st.st_mode & 022 ? "writable by other users" : "owned by another user");
        close(fd);
        return NULL;
    }
    if (st.st_mode & 044)
        fprintf(stderr, "zestfs: warning: token file %s is readable by other users (mode %04o): "
                        "chmod 600 %s\n", path, (unsigned)(st.st_mode & 07777), path);
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return NULL;
    buf[n] = 0;
    char *b = buf;
    while (*b && strchr(" \t\r\n", *b))
        b++;
    size_t l = strlen(b);
    while (l && strchr(" \t\r\n", b[l - 1]))
        b[--l] = 0;
    char *out = l ? strdup(b) : NULL;
    memset(buf, 0, sizeof buf);
    return out;
}

/* --token, else HF_TOKEN, else the HF token file ($HF_TOKEN_PATH,
 * $HF_HOME/token, ~/.cache/huggingface/token). */
char *zf_find_token(const char *opt)
{
    if (opt)
        return opt[0] ? strdup(opt) : NULL;
    const char *e = getenv("HF_TOKEN");
    if (e && e[0])
        return strdup(e);
    char path[4096];
    if ((e = getenv("HF_TOKEN_PATH")) && e[0])
        return zf_read_token_file(e);
    if ((e = getenv("HF_HOME")) && e[0])
        snprintf(path, sizeof path, "%s/token", e);
    else if ((e = getenv("XDG_CACHE_HOME")) && e[0])
        snprintf(path, sizeof path, "%s/huggingface/token", e);
    else if ((e = getenv("HOME")) && e[0])
        snprintf(path, sizeof path, "%s/.cache/huggingface/token", e);
    else
        return NULL;
    return zf_read_token_file(path);
}

char *zf_default_store(void)
{
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    char path[4096];
    if (x && x[0] == '/')
        snprintf(path, sizeof path, "%s/zestfs", x);
    else if (h && h[0])
        snprintf(path, sizeof path, "%s/.cache/zestfs", h);
    else
        return NULL;
    return strdup(path);
}

char *zf_endpoint(const char *opt)
{
    const char *endpoint = opt;
    if (!endpoint || !endpoint[0])
        endpoint = getenv("HF_ENDPOINT");
    if (!endpoint || !endpoint[0])
        endpoint = "https://huggingface.co";
    char *ep = strdup(endpoint);
    if (!ep)
        return NULL;
    for (size_t l = strlen(ep); l > 0 && ep[l - 1] == '/';)
        ep[--l] = 0;
    if (strncmp(ep, "https://", 8) && strncmp(ep, "http://", 7)) {
        fprintf(stderr, "zestfs: --endpoint %s: not an http(s) URL\n", ep);
        free(ep);
        return NULL;
    }
    return ep;
}

uint64_t zf_default_cap(const char *store)
{
    struct statvfs sv;
    uint64_t cap = 1ull << 30;
    if (statvfs(store, &sv) == 0 && (uint64_t)sv.f_blocks * sv.f_frsize / 2 > cap)
        cap = (uint64_t)sv.f_blocks * sv.f_frsize / 2;
    return cap;
}

/* $XDG_RUNTIME_DIR/zestfs, /run/zestfs for root, else /tmp/zestfs-UID;
 * the file for a mountpoint is its real path with every byte that is not
 * [A-Za-z0-9._-] written as %XX. */
int zf_registry_path(const char *mountpoint, char *out, size_t len, bool mkdirs)
{
    char real[PATH_MAX], dir[512];
    if (!realpath(mountpoint, real))
        return -errno;
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (x && x[0] == '/')
        snprintf(dir, sizeof dir, "%s/zestfs", x);
    else if (getuid() == 0)
        snprintf(dir, sizeof dir, "/run/zestfs");
    else
        snprintf(dir, sizeof dir, "/tmp/zestfs-%u", (unsigned)getuid());
    if (mkdirs) {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -errno;
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
            return -EPERM; /* someone else's directory: do not use it */
    }
    size_t n = (size_t)snprintf(out, len, "%s/", dir);
    for (const unsigned char *p = (const unsigned char *)real; *p && n + 4 < len; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '_' || *p == '-')
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, len - n, "%%%02X", *p);
    }
    if (n + 4 >= len)
        return -ENAMETOOLONG;
    out[n] = 0;
    return 0;
}

uint64_t zf_env_ms(const char *name, uint64_t dflt)
{
    const char *e = getenv(name);
    char *end;
    unsigned long long v = e && *e ? strtoull(e, &end, 10) : 0;
    return v > 0 && !*end && v < 86400000ull ? (uint64_t)v : dflt;
}
