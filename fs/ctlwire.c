/* ctlwire.c — the control socket's wire helpers, shared by the server
 * (ctl.c) and its clients (cli_ctl.c, pull.c): whole writes, and a pull's
 * progress as a JSON object each way.  The protocol is described in ctl.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctlwire.h"
#include "pull.h"
#include "zfs.h"

int zf_ctl_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

void zf_ctl_stat_to_json(cJSON *o, const zf_pull_stat *st)
{
    cJSON_AddNumberToObject(o, "done", (double)st->done);
    cJSON_AddNumberToObject(o, "total", (double)st->total);
    cJSON_AddNumberToObject(o, "files_done", st->files_done);
    cJSON_AddNumberToObject(o, "files", st->files);
    cJSON_AddNumberToObject(o, "files_failed", st->files_failed);
    cJSON_AddNumberToObject(o, "peer_bytes", (double)st->peer_bytes);
    cJSON_AddNumberToObject(o, "cdn_bytes", (double)st->cdn_bytes);
    if (st->commit[0])
        cJSON_AddStringToObject(o, "commit", st->commit);
    cJSON_AddNumberToObject(o, "errno", -st->err);
    if (st->err)
        cJSON_AddStringToObject(o, "error", strerror(-st->err));
}

void zf_ctl_stat_from_json(const cJSON *o, zf_pull_stat *st)
{
    const cJSON *v;
    memset(st, 0, sizeof *st);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "done")) && cJSON_IsNumber(v))
        st->done = (uint64_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "total")) && cJSON_IsNumber(v))
        st->total = (uint64_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "files_done")) && cJSON_IsNumber(v))
        st->files_done = (unsigned)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "files")) && cJSON_IsNumber(v))
        st->files = (unsigned)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "files_failed")) && cJSON_IsNumber(v))
        st->files_failed = (unsigned)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "peer_bytes")) && cJSON_IsNumber(v))
        st->peer_bytes = (uint64_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "cdn_bytes")) && cJSON_IsNumber(v))
        st->cdn_bytes = (uint64_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "errno")) && cJSON_IsNumber(v))
        st->err = -(int)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "commit")) && cJSON_IsString(v))
        snprintf(st->commit, sizeof st->commit, "%s", v->valuestring);
}
