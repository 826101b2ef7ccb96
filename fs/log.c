/* log.c — see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define MAX_SECRETS 8
#define LINE_MAX_LEN 4096

int zf_log_level = ZF_LOG_INFO;
static int journal = -1;
static char *secrets[MAX_SECRETS];
static int nsecrets;

int zf_log_parse_level(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {{"err", ZF_LOG_ERR},   {"error", ZF_LOG_ERR}, {"warn", ZF_LOG_WARN},
                 {"warning", ZF_LOG_WARN}, {"info", ZF_LOG_INFO}, {"debug", ZF_LOG_DEBUG}};
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name))
            return names[i].level;
    if (s[0] >= '3' && s[0] <= '7' && !s[1])
        return s[0] - '0';
    return -1;
}

void zf_log_init(void)
{
    if (journal >= 0)
        return;
    journal = 0;
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        journal = 1;
}

void zf_log_secret(const char *s)
{
    if (!s || strlen(s) < 4 || nsecrets == MAX_SECRETS)
        return;
    for (int i = 0; i < nsecrets; i++)
        if (!strcmp(secrets[i], s))
            return;
    char *d = strdup(s);
    if (d)
        secrets[nsecrets++] = d;
}

/* replace each secret in line (len bytes, room for cap) by "***" */
static size_t scrub(char *line, size_t len)
{
    for (int i = 0; i < nsecrets; i++) {
        size_t sl = strlen(secrets[i]);
        char *p;
        while ((p = memmem(line, len, secrets[i], sl)) != NULL) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + sl, len - (size_t)(p - line) - sl);
            len -= sl - 3;
        }
    }
    return len;
}

const char *zf_strerror(int e)
{
    if (e == EKEYREJECTED)
        return "the server's TLS certificate does not verify (see --cacert)";
    if (e == EKEYREVOKED) /* net: 401 "Invalid credentials in Authorization header" */
        return "the Hub token is invalid or expired";
    if (e == EUSERS) /* net: still 429 when the wait had to end */
        return "the Hub rate-limited us (HTTP 429)";
    return strerror(e);
}

void zf_log(int level, const char *fmt, ...)
{
    if (level > zf_log_level)
        return;
    if (journal < 0)
        zf_log_init();
    char line[LINE_MAX_LEN + 8];
    size_t n = 0;
    if (journal > 0)
        n = (size_t)snprintf(line, sizeof line, "<%d>", level);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, LINE_MAX_LEN - n, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    n += (size_t)w < LINE_MAX_LEN - n ? (size_t)w : LINE_MAX_LEN - n - 1;
    n = scrub(line, n);
    if (n == 0 || line[n - 1] != '\n')
        line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
