/* log.h — the daemon's log lines (fs/ only): levels, the journal, secrets.
 *
 * One line per call, written with one write(2) to stderr, so lines from
 * the loop and the pool never interleave.  Levels are syslog's: when
 * stderr is the systemd journal (JOURNAL_STREAM names stderr's device and
 * inode) each line starts with "<N>" so journald keeps the level; no
 * libsystemd is needed.  Every configured secret (the Hub token, the HTTP
 * access token) is replaced by "***" in every line, a last line of defence:
 * no code path is meant to print one. */
#ifndef ZESTFS_FS_LOG_H
#define ZESTFS_FS_LOG_H

enum { ZF_LOG_ERR = 3, ZF_LOG_WARN = 4, ZF_LOG_INFO = 6, ZF_LOG_DEBUG = 7 };

extern int zf_log_level; /* lines above it are dropped; default ZF_LOG_INFO */

/* "err", "warn", "info", "debug" (or 3..7): the level, or -1. */
int zf_log_parse_level(const char *s);
/* Look at JOURNAL_STREAM once (call before logging; idempotent). */
void zf_log_init(void);
/* Scrub s (copied; at most 8, strings under 4 chars ignored) from every line. */
void zf_log_secret(const char *s);

void zf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* strerror(e) (e > 0), with zestfs's meaning where errno names are
 * misleading: EKEYREJECTED is a TLS certificate that does not verify. */
const char *zf_strerror(int e);

#define zf_debug(...)                                                                              \
    do {                                                                                           \
        if (zf_log_level >= ZF_LOG_DEBUG)                                                          \
            zf_log(ZF_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
