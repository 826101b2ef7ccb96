/* hubreal.h — knobs that make zestfs-origin answer as huggingface.co does in
 * the cases spec/hub-real.md records: gated repos (redacted tree, 401/403
 * GatedRepo), renamed repos (relative 307), rate limits (429 + RateLimit),
 * a revoked token (401 "Invalid credentials in Authorization header") and
 * slow or failing tree pages.  All off by default; set by `serve` flags or
 * by POST /_origin/knobs (see origin/README.md). */
#ifndef ZESTFS_ORIGIN_HUBREAL_H
#define ZESTFS_ORIGIN_HUBREAL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

typedef struct o_hr o_hr;

o_hr *o_hr_new(void);
void o_hr_free(o_hr *h);
/* A `serve` flag of this file (takes one value)? */
bool o_hr_is_flag(const char *flag);
/* Apply a flag at start; 0 or -EINVAL. */
int o_hr_flag(o_hr *h, const char *flag, const char *val);
/* Apply one member of a POST /_origin/knobs object; true if it was ours. */
bool o_hr_knob(o_hr *h, const cJSON *item);
void o_hr_knobs_json(o_hr *h, cJSON *j);

/* Before a Hub route (/api/…, …/resolve/…) is served: answers revoked
 * tokens (401), rate limits (429), aliases (307) and tree faults.  Returns
 * true when it queued the answer (*ret set).  v/n: the decoded segments. */
bool o_hr_pre(o_hr *h, struct MHD_Connection *c, char *const *v, size_t n, enum MHD_Result *ret);
/* Gated repo without access for this caller: queue 401 (anonymous) or 403
 * (logged in) GatedRepo and return true.  base: the public base URL. */
bool o_hr_gate_denies(o_hr *h, struct MHD_Connection *c, const char *type, const char *id,
                      const char *base, enum MHD_Result *ret);
/* Repo info of a gated repo says gated: "manual". */
void o_hr_repo_info(o_hr *h, const char *type, const char *id, cJSON *info);
/* Tree / paths-info entries: every xetHash redacted to 64 '*' for callers
 * without access (for everyone with the knob gated_redact_all). */
void o_hr_redact(o_hr *h, struct MHD_Connection *c, const char *type, const char *id, cJSON *arr);

#endif
