/* hubapi.h — Hub write API subset (see hubapi.c). */
#ifndef ZESTFS_ORIGIN_HUBAPI_H
#define ZESTFS_ORIGIN_HUBAPI_H
#include "origin.h"
cJSON *o_hub_preupload(const o_store *s, const o_repo *r, const char *rev, const char *body,
                       size_t len);
int o_hub_commit(const o_store *s, const o_repo *r, const char *branch, const char *body, size_t len,
                 char out_id[41], char *err, size_t errlen);
int o_hub_create_repo(const o_store *s, const char *type, const char *id, bool priv, char *err,
                      size_t errlen);
#endif
