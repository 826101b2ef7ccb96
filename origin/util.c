/* util.c — small helpers for zestfs-origin: files, hashes, validation. */
#include "origin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

int o_mkdirs(const char *path, int mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return -errno;
            buf[i] = c;
        }
    }
    return 0;
}

int o_mkdirs_parent(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    char *sl = strrchr(buf, '/');
    if (!sl || sl == buf)
        return 0;
    *sl = '\0';
    return o_mkdirs(buf, 0755);
}

int o_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int o_write_atomic(const char *data_dir, const char *path, const void *buf, size_t len)
{
    uint8_t rnd[8];
    char hex[17];
    int err = o_random(rnd, sizeof rnd);
    if (err)
        return err;
    o_hex(rnd, 8, hex);
    char *tmp = o_strdup_printf("%s/tmp/%s.tmp", data_dir, hex);
    if (!tmp)
        return -ENOMEM;
    err = o_mkdirs_parent(tmp);
    if (!err)
        err = o_mkdirs_parent(path);
    if (err) {
        free(tmp);
        return err;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = -errno;
        free(tmp);
        return err;
    }
    const uint8_t *p = buf;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!err && fsync(fd) != 0)
        err = -errno;
    if (close(fd) != 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) != 0)
        err = -errno;
    if (err)
        unlink(tmp);
    free(tmp);
    return err;
}

int o_read_file(const char *path, uint8_t **buf, size_t *len, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return -EFBIG;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n + 1);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(b);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    b[got] = 0;
    *buf = b;
    *len = got;
    return 0;
}

cJSON *o_read_json(const char *path)
{
    uint8_t *b;
    size_t n;
    if (o_read_file(path, &b, &n, 256u << 20) != 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)b, n);
    free(b);
    return j;
}

int o_write_json(const char *data_dir, const char *path, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (!s)
        return -ENOMEM;
    int err = o_write_atomic(data_dir, path, s, strlen(s));
    free(s);
    return err;
}

void o_sha256(const void *p, size_t n, uint8_t out[32])
{
    SHA256(p, n, out);
}

void o_hmac_sha256(const uint8_t *key, size_t klen, const void *p, size_t n, uint8_t out[32])
{
    unsigned int ol = 32;
    HMAC(EVP_sha256(), key, (int)klen, p, n, out, &ol);
}

void o_hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

bool o_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[n] == '\0';
}

void o_git_blob_sha1(const void *p, size_t n, char out[41])
{
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "blob %zu", n);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t d[20];
    unsigned int dl = 20;
    EVP_DigestInit_ex(c, EVP_sha1(), NULL);
    EVP_DigestUpdate(c, hdr, (size_t)hl + 1); /* includes the NUL */
    EVP_DigestUpdate(c, p, n);
    EVP_DigestFinal_ex(c, d, &dl);
    EVP_MD_CTX_free(c);
    o_hex(d, 20, out);
}

int o_lfs_pointer(const char *sha256hex, uint64_t size, char *out, size_t cap)
{
    return snprintf(out, cap, "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %llu\n",
                    sha256hex, (unsigned long long)size);
}

char *o_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Hub rules: letters, digits, '_', '.', '-'; 1..96 chars; no leading or
 * trailing '-'/'.'; no "--" or "..". */
bool o_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 96)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
        return false;
    if (strstr(s, "--") || strstr(s, ".."))
        return false;
    return true;
}

bool o_valid_relpath(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 1024 || s[0] == '/' || s[n - 1] == '/')
        return false;
    const char *p = s;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == '\\')
                return false;
        p += l;
        if (*p == '/')
            p++;
    }
    return true;
}

const char *o_type_from_plural(const char *p)
{
    if (!strcmp(p, "models"))
        return "model";
    if (!strcmp(p, "datasets"))
        return "dataset";
    if (!strcmp(p, "spaces"))
        return "space";
    return NULL;
}

bool o_valid_branch(const char *s)
{
    if (!o_valid_relpath(s) || strlen(s) > 200)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '~' || *p == '^' || *p == ':' || *p == '?' || *p == '*' || *p == '[')
            return false;
    return true;
}
