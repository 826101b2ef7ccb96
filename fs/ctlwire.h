/* ctlwire.h — the control socket's wire helpers (ctlwire.c): used by the
 * server (ctl.c) and its clients (cli_ctl.c, pull.c). */
#ifndef ZESTFS_FS_CTLWIRE_H
#define ZESTFS_FS_CTLWIRE_H

#include <stddef.h>

struct cJSON;
struct zf_pull_stat;

/* Write all n bytes to fd (EINTR retried): 0 or a negative errno. */
int zf_ctl_write_all(int fd, const void *p, size_t n);
/* A pull's progress into a JSON object ("done", "total", "files_done",
 * "files", "files_failed", "commit", "errno", "error"), and back. */
void zf_ctl_stat_to_json(struct cJSON *o, const struct zf_pull_stat *st);
void zf_ctl_stat_from_json(const struct cJSON *o, struct zf_pull_stat *st);

#endif
