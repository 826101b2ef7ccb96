/* hubreal.c — the real Hub's less happy answers (spec/hub-real.md), as knobs.
 *
 * Everything here is configuration held under one mutex (MHD runs a thread
 * per connection) and a few pure functions server.c calls at fixed points:
 *   o_hr_pre          before a Hub route: revoked token 401, 429 with
 *                     RateLimit / RateLimit-Policy, alias 307, tree faults
 *   o_hr_gate_denies  before resolve, the bridge and xet-read-token
 *   o_hr_repo_info    gated: "manual" in the repo info
 *   o_hr_redact       xetHash -> 64 '*' in tree and paths-info answers
 * Repos are named "[models/|datasets/|spaces/]ns/name" (or a one-segment
 * legacy name such as "gpt2" for an alias). */
#include "hubreal.h"
#include "origin.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HR_MAX_ENTRIES 256

typedef struct hr_gate {
    char key[280];      /* "model/ns/name" */
    char **toks;        /* tokens with access */
    size_t ntoks;
} hr_gate;

typedef struct hr_alias {
    char key[280];      /* "model/old" or "model/ns/old" */
    char target[260];   /* canonical id "ns/name" */
} hr_alias;

struct o_hr {
    pthread_mutex_t mu;
    hr_gate *gates;
    size_t ngates;
    bool redact_all;
    hr_alias *aliases;
    size_t naliases;
    char **revoked;
    size_t nrevoked;
    uint64_t rl_api_until, rl_tree_until, rl_resolve_until; /* monotonic ms */
    unsigned rl_q;
    unsigned tree_fail_next, tree_fail_status, tree_latency_ms;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "[models/|datasets/|spaces/]id" -> "type/id" */
static int repo_key(const char *spec, char *out, size_t cap)
{
    const char *type = "model";
    const char *sl = strchr(spec, '/');
    if (sl) {
        char first[16];
        size_t l = (size_t)(sl - spec);
        if (l < sizeof first) {
            memcpy(first, spec, l);
            first[l] = 0;
            const char *t = o_type_from_plural(first);
            if (t) {
                type = t;
                spec = sl + 1;
            }
        }
    }
    if (!*spec || strlen(spec) > 250 || spec[0] == '/' || strstr(spec, ".."))
        return -EINVAL;
    snprintf(out, cap, "%s/%s", type, spec);
    return 0;
}

o_hr *o_hr_new(void)
{
    o_hr *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    h->rl_q = 1000;
    h->tree_fail_status = 504;
    return h;
}

static void gates_clear(o_hr *h)
{
    for (size_t i = 0; i < h->ngates; i++) {
        for (size_t k = 0; k < h->gates[i].ntoks; k++)
            free(h->gates[i].toks[k]);
        free(h->gates[i].toks);
    }
    free(h->gates);
    h->gates = NULL;
    h->ngates = 0;
}

static void revoked_clear(o_hr *h)
{
    for (size_t i = 0; i < h->nrevoked; i++)
        free(h->revoked[i]);
    free(h->revoked);
    h->revoked = NULL;
    h->nrevoked = 0;
}

void o_hr_free(o_hr *h)
{
    if (!h)
        return;
    gates_clear(h);
    revoked_clear(h);
    free(h->aliases);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* ---- configuration (callers hold mu) ----------------------------------------- */

static hr_gate *gate_add(o_hr *h, const char *spec)
{
    char key[280];
    if (repo_key(spec, key, sizeof key) || h->ngates >= HR_MAX_ENTRIES)
        return NULL;
    for (size_t i = 0; i < h->ngates; i++)
        if (!strcmp(h->gates[i].key, key))
            return &h->gates[i];
    hr_gate *ng = realloc(h->gates, (h->ngates + 1) * sizeof *ng);
    if (!ng)
        return NULL;
    h->gates = ng;
    hr_gate *g = &h->gates[h->ngates++];
    memset(g, 0, sizeof *g);
    snprintf(g->key, sizeof g->key, "%s", key);
    return g;
}

static int gate_tok(hr_gate *g, const char *tok, size_t len)
{
    if (!len || g->ntoks >= HR_MAX_ENTRIES)
        return -EINVAL;
    char **nt = realloc(g->toks, (g->ntoks + 1) * sizeof *nt);
    if (!nt)
        return -ENOMEM;
    g->toks = nt;
    if (!(g->toks[g->ntoks] = strndup(tok, len)))
        return -ENOMEM;
    g->ntoks++;
    return 0;
}

static int alias_add(o_hr *h, const char *old, const char *target)
{
    char key[280];
    if (repo_key(old, key, sizeof key) || !*target || strlen(target) >= sizeof h->aliases->target ||
        h->naliases >= HR_MAX_ENTRIES)
        return -EINVAL;
    /* the target keeps the old name's type: strip a type prefix */
    const char *sl = strchr(target, '/');
    if (sl) {
        char first[16];
        size_t l = (size_t)(sl - target);
        if (l < sizeof first) {
            memcpy(first, target, l);
            first[l] = 0;
            if (o_type_from_plural(first))
                target = sl + 1;
        }
    }
    hr_alias *na = realloc(h->aliases, (h->naliases + 1) * sizeof *na);
    if (!na)
        return -ENOMEM;
    h->aliases = na;
    hr_alias *a = &h->aliases[h->naliases++];
    snprintf(a->key, sizeof a->key, "%s", key);
    snprintf(a->target, sizeof a->target, "%s", target);
    return 0;
}

static int revoked_add(o_hr *h, const char *t)
{
    if (!*t || h->nrevoked >= HR_MAX_ENTRIES)
        return -EINVAL;
    char **nr = realloc(h->revoked, (h->nrevoked + 1) * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    h->revoked = nr;
    if (!(h->revoked[h->nrevoked] = strdup(t)))
        return -ENOMEM;
    h->nrevoked++;
    return 0;
}

static const char *const FLAGS[] = {
    "--gated", "--gated-redact-all", "--alias", "--revoked-token", "--rate-limit-s",
    "--rate-limit-tree-s", "--rate-limit-resolve-s", "--rate-limit-q", "--tree-fail-next",
    "--tree-fail-status", "--tree-latency-ms", NULL,
};

bool o_hr_is_flag(const char *flag)
{
    for (size_t i = 0; FLAGS[i]; i++)
        if (!strcmp(flag, FLAGS[i]))
            return true;
    return false;
}

static int set_num(o_hr *h, const char *name, double v)
{
    if (!(v >= 0) || v > 1e9)
        return -EINVAL;
    uint64_t now = mono_ms();
    if (!strcmp(name, "rate_limit_s"))
        h->rl_api_until = v > 0 ? now + (uint64_t)(v * 1000) : 0;
    else if (!strcmp(name, "rate_limit_tree_s"))
        h->rl_tree_until = v > 0 ? now + (uint64_t)(v * 1000) : 0;
    else if (!strcmp(name, "rate_limit_resolve_s"))
        h->rl_resolve_until = v > 0 ? now + (uint64_t)(v * 1000) : 0;
    else if (!strcmp(name, "rate_limit_q"))
        h->rl_q = v >= 1 ? (unsigned)v : 1;
    else if (!strcmp(name, "tree_fail_next"))
        h->tree_fail_next = (unsigned)v;
    else if (!strcmp(name, "tree_fail_status"))
        h->tree_fail_status = v >= 500 && v <= 599 ? (unsigned)v : 504;
    else if (!strcmp(name, "tree_latency_ms"))
        h->tree_latency_ms = (unsigned)v;
    else if (!strcmp(name, "gated_redact_all"))
        h->redact_all = v != 0;
    else
        return -ENOENT;
    return 0;
}

int o_hr_flag(o_hr *h, const char *flag, const char *val)
{
    int rc = -EINVAL;
    pthread_mutex_lock(&h->mu);
    if (!strcmp(flag, "--gated")) {
        /* REPO[=TOKEN[,TOKEN...]] */
        const char *eq = strchr(val, '=');
        char spec[280];
        size_t l = eq ? (size_t)(eq - val) : strlen(val);
        if (l < sizeof spec) {
            memcpy(spec, val, l);
            spec[l] = 0;
            hr_gate *g = gate_add(h, spec);
            rc = g ? 0 : -EINVAL;
            for (const char *p = eq ? eq + 1 : NULL; g && p && *p && rc == 0;) {
                const char *c = strchr(p, ',');
                size_t tl = c ? (size_t)(c - p) : strlen(p);
                rc = gate_tok(g, p, tl);
                p = c ? c + 1 : NULL;
            }
        }
    } else if (!strcmp(flag, "--gated-redact-all")) {
        h->redact_all = strcmp(val, "0") != 0;
        rc = 0;
    } else if (!strcmp(flag, "--alias")) {
        const char *eq = strchr(val, '=');
        char old[280];
        if (eq && (size_t)(eq - val) < sizeof old) {
            memcpy(old, val, (size_t)(eq - val));
            old[eq - val] = 0;
            rc = alias_add(h, old, eq + 1);
        }
    } else if (!strcmp(flag, "--revoked-token")) {
        rc = revoked_add(h, val);
    } else if (!strncmp(flag, "--", 2) && o_hr_is_flag(flag)) {
        char name[40];
        size_t k = 0;
        for (const char *p = flag + 2; *p && k + 1 < sizeof name; p++)
            name[k++] = *p == '-' ? '_' : *p;
        name[k] = 0;
        char *end;
        double v = strtod(val, &end);
        rc = end != val && *end == 0 ? set_num(h, name, v) : -EINVAL;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

bool o_hr_knob(o_hr *h, const cJSON *it)
{
    if (!it->string)
        return false;
    const char *k = it->string;
    bool ours = true;
    pthread_mutex_lock(&h->mu);
    if (!strcmp(k, "gated")) {
        /* {"ns/name": ["token", ...]} (or a list of names): replaces the set */
        gates_clear(h);
        const cJSON *g;
        cJSON_ArrayForEach(g, it)
        {
            hr_gate *ng = gate_add(h, cJSON_IsString(g) ? g->valuestring : g->string ? g->string : "");
            const cJSON *t;
            if (!ng || !cJSON_IsArray(g))
                continue;
            cJSON_ArrayForEach(t, g)
            {
                if (cJSON_IsString(t))
                    gate_tok(ng, t->valuestring, strlen(t->valuestring));
            }
        }
    } else if (!strcmp(k, "aliases")) {
        /* {"old": "ns/new"}: replaces the set */
        free(h->aliases);
        h->aliases = NULL;
        h->naliases = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, it)
        {
            if (a->string && cJSON_IsString(a))
                alias_add(h, a->string, a->valuestring);
        }
    } else if (!strcmp(k, "revoked_tokens")) {
        revoked_clear(h);
        const cJSON *t;
        cJSON_ArrayForEach(t, it)
        {
            if (cJSON_IsString(t))
                revoked_add(h, t->valuestring);
        }
    } else if (cJSON_IsNumber(it) || cJSON_IsBool(it)) {
        double v = cJSON_IsBool(it) ? (cJSON_IsTrue(it) ? 1 : 0) : it->valuedouble;
        ours = set_num(h, k, v) != -ENOENT;
    } else {
        ours = false;
    }
    pthread_mutex_unlock(&h->mu);
    return ours;
}

static double left_s(uint64_t until, uint64_t now)
{
    return until > now ? (double)((until - now + 999) / 1000) : 0;
}

void o_hr_knobs_json(o_hr *h, cJSON *j)
{
    pthread_mutex_lock(&h->mu);
    cJSON *g = cJSON_AddObjectToObject(j, "gated");
    for (size_t i = 0; i < h->ngates; i++) {
        /* names only: the tokens stay secret */
        cJSON_AddNumberToObject(g, strchr(h->gates[i].key, '/') + 1, (double)h->gates[i].ntoks);
    }
    cJSON_AddNumberToObject(j, "gated_redact_all", h->redact_all);
    cJSON *a = cJSON_AddObjectToObject(j, "aliases");
    for (size_t i = 0; i < h->naliases; i++)
        cJSON_AddStringToObject(a, strchr(h->aliases[i].key, '/') + 1, h->aliases[i].target);
    cJSON_AddNumberToObject(j, "revoked_tokens", (double)h->nrevoked);
    uint64_t now = mono_ms();
    cJSON_AddNumberToObject(j, "rate_limit_s", left_s(h->rl_api_until, now));
    cJSON_AddNumberToObject(j, "rate_limit_tree_s", left_s(h->rl_tree_until, now));
    cJSON_AddNumberToObject(j, "rate_limit_resolve_s", left_s(h->rl_resolve_until, now));
    cJSON_AddNumberToObject(j, "rate_limit_q", h->rl_q);
    cJSON_AddNumberToObject(j, "tree_fail_next", h->tree_fail_next);
    cJSON_AddNumberToObject(j, "tree_fail_status", h->tree_fail_status);
    cJSON_AddNumberToObject(j, "tree_latency_ms", h->tree_latency_ms);
    pthread_mutex_unlock(&h->mu);
}

/* ---- answers ------------------------------------------------------------------ */

static const char *bearer_of(struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return *a ? a : NULL;
}

static enum MHD_Result queue_text(struct MHD_Connection *c, unsigned status, const char *ct,
                                  const char *body, const char *const *hdrs)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ct);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result queue_err(struct MHD_Connection *c, unsigned status, const char *code,
                                 const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    const char *hdrs[] = {"X-Error-Code", code, "X-Error-Message", msg, NULL};
    enum MHD_Result ret = queue_text(c, status, "application/json; charset=utf-8", s,
                                     code ? hdrs : hdrs + 2);
    free(s);
    return ret;
}

/* percent-encode one path segment (RFC 3986 unreserved kept) */
static size_t enc_seg(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    ch == '-' || ch == '_' || ch == '.' || ch == '~';
        if (k + 4 >= cap)
            break;
        if (keep) {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    out[k] = 0;
    return k;
}

typedef struct qbuf {
    char *p;
    size_t len, cap;
    bool first;
} qbuf;

static void qb_add(qbuf *q, const char *s)
{
    size_t l = strlen(s);
    if (q->len + l + 1 > q->cap)
        return;
    memcpy(q->p + q->len, s, l + 1);
    q->len += l;
}

/* the raw query (the server's unescape callback leaves arguments raw) */
static enum MHD_Result q_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    qbuf *q = cls;
    qb_add(q, q->first ? "?" : "&");
    q->first = false;
    qb_add(q, key);
    if (value) {
        qb_add(q, "=");
        qb_add(q, value);
    }
    return MHD_YES;
}

static bool alias_find(o_hr *h, const char *type, const char *id, char *target, size_t cap)
{
    char key[280];
    snprintf(key, sizeof key, "%s/%s", type, id);
    for (size_t i = 0; i < h->naliases; i++)
        if (!strcmp(h->aliases[i].key, key)) {
            snprintf(target, cap, "%s", h->aliases[i].target);
            return true;
        }
    return false;
}

/* 429 as huggingface.co sends it (spec/hub-real.md "Errors"). */
static enum MHD_Result queue_429(struct MHD_Connection *c, uint64_t until, unsigned q)
{
    uint64_t now = mono_ms();
    unsigned t = until > now ? (unsigned)((until - now + 999) / 1000) : 1;
    char rl[64], pol[96];
    snprintf(rl, sizeof rl, "\"api\";r=0;t=%u", t);
    snprintf(pol, sizeof pol, "\"fixed window\";\"api\";q=%u;w=300", q);
    const char *msg = "You have exceeded our rate limit for api calls. Please wait and retry.";
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    const char *hdrs[] = {"RateLimit", rl, "RateLimit-Policy", pol, "X-Error-Message", msg, NULL};
    enum MHD_Result ret = queue_text(c, 429, "application/json; charset=utf-8", s, hdrs);
    free(s);
    return ret;
}

bool o_hr_pre(o_hr *h, struct MHD_Connection *c, char *const *v, size_t n, enum MHD_Result *ret)
{
    /* which Hub route: (type, id segments [ib, ib+il), op segment) */
    const char *type = NULL;
    size_t ib = 0, il = 2;
    bool api = false, tree = false, resolve = false;
    if (n >= 3 && !strcmp(v[0], "api") && (type = o_type_from_plural(v[1]))) {
        api = true;
        ib = 2;
    } else {
        size_t o = n >= 1 && (!strcmp(v[0], "datasets") || !strcmp(v[0], "spaces")) ? 1 : 0;
        type = o ? o_type_from_plural(v[0]) : "model";
        ib = o;
        if (n >= o + 4 && !strcmp(v[o + 2], "resolve"))
            resolve = true;
        else if (n >= o + 3 && !strcmp(v[o + 1], "resolve")) {
            resolve = true;
            il = 1;
        } else
            return false;
    }
    pthread_mutex_lock(&h->mu);
    char target[260];
    bool aliased = false;
    char id[520];
    if (api) {
        if (n >= 4) {
            snprintf(id, sizeof id, "%s/%s", v[2], v[3]);
            aliased = alias_find(h, type, id, target, sizeof target);
        }
        if (!aliased) {
            aliased = alias_find(h, type, v[2], target, sizeof target);
            il = aliased ? 1 : 2;
        }
        tree = n > ib + il && !strcmp(v[ib + il], "tree");
    } else {
        if (il == 2)
            snprintf(id, sizeof id, "%s/%s", v[ib], v[ib + 1]);
        else
            snprintf(id, sizeof id, "%s", v[ib]);
        aliased = alias_find(h, type, id, target, sizeof target);
    }
    /* 1. a revoked token */
    const char *b = bearer_of(c);
    for (size_t i = 0; b && i < h->nrevoked; i++)
        if (!strcmp(b, h->revoked[i])) {
            pthread_mutex_unlock(&h->mu);
            *ret = queue_err(c, 401, NULL, "Invalid credentials in Authorization header");
            return true;
        }
    /* 2. rate limits, per route class */
    uint64_t now = mono_ms();
    uint64_t until = 0;
    if (api && h->rl_api_until > now)
        until = h->rl_api_until;
    if (tree && h->rl_tree_until > now && h->rl_tree_until > until)
        until = h->rl_tree_until;
    if (resolve && h->rl_resolve_until > now && h->rl_resolve_until > until)
        until = h->rl_resolve_until;
    if (until) {
        unsigned q = h->rl_q;
        pthread_mutex_unlock(&h->mu);
        *ret = queue_429(c, until, q);
        return true;
    }
    /* 3. a renamed repo: relative 307 to the canonical path */
    if (aliased) {
        pthread_mutex_unlock(&h->mu);
        size_t cap = 8192;
        char *loc = malloc(cap), seg[1536];
        if (!loc) {
            *ret = MHD_NO;
            return true;
        }
        loc[0] = 0;
        qbuf qb = {loc, 0, cap, true};
        for (size_t i = 0; i < ib; i++) {
            qb_add(&qb, "/");
            enc_seg(v[i], seg, sizeof seg);
            qb_add(&qb, seg);
        }
        qb_add(&qb, "/");
        qb_add(&qb, target); /* ns/name: valid repo ids need no escaping */
        for (size_t i = ib + il; i < n; i++) {
            qb_add(&qb, "/");
            enc_seg(v[i], seg, sizeof seg);
            qb_add(&qb, seg);
        }
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, q_iter, &qb);
        char *body = malloc(cap + 64);
        if (!body) {
            free(loc);
            *ret = MHD_NO;
            return true;
        }
        snprintf(body, cap + 64, "Temporary Redirect. Redirecting to %s", loc);
        const char *hdrs[] = {"Location", loc, NULL};
        *ret = queue_text(c, 307, "text/plain; charset=utf-8", body, hdrs);
        free(body);
        free(loc);
        return true;
    }
    /* 4. slow or failing tree pages */
    if (tree) {
        unsigned lat = h->tree_latency_ms;
        bool fail = h->tree_fail_next > 0;
        unsigned st = h->tree_fail_status;
        if (fail)
            h->tree_fail_next--;
        pthread_mutex_unlock(&h->mu);
        if (lat) {
            struct timespec ts = {.tv_sec = lat / 1000, .tv_nsec = (long)(lat % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
        if (fail) {
            *ret = queue_text(c, st, "text/plain; charset=utf-8",
                              st == 504 ? "upstream request timeout" : "internal error", NULL);
            return true;
        }
        return false;
    }
    pthread_mutex_unlock(&h->mu);
    return false;
}

/* 0: not gated; 1: gated, this caller has access; -1: gated, no access */
static int access_of(o_hr *h, struct MHD_Connection *c, const char *type, const char *id,
                     bool *redact_all)
{
    char key[280];
    snprintf(key, sizeof key, "%s/%s", type, id);
    const char *b = bearer_of(c);
    int r = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->ngates && r == 0; i++)
        if (!strcmp(h->gates[i].key, key)) {
            r = -1;
            for (size_t k = 0; b && k < h->gates[i].ntoks; k++)
                if (!strcmp(b, h->gates[i].toks[k]))
                    r = 1;
        }
    if (redact_all)
        *redact_all = h->redact_all;
    pthread_mutex_unlock(&h->mu);
    return r;
}

bool o_hr_gate_denies(o_hr *h, struct MHD_Connection *c, const char *type, const char *id,
                      const char *base, enum MHD_Result *ret)
{
    if (access_of(h, c, type, id, NULL) >= 0)
        return false;
    bool anon = bearer_of(c) == NULL;
    const char *pfx = !strcmp(type, "dataset") ? "datasets/" : !strcmp(type, "space") ? "spaces/" : "";
    char msg[1024];
    if (anon)
        snprintf(msg, sizeof msg,
                 "Access to %s %s is restricted. You must have access to it and be authenticated to "
                 "access it. Please log in. Visit %s/%s%s to ask for access.",
                 type, id, base ? base : "", pfx, id);
    else
        snprintf(msg, sizeof msg,
                 "Access to %s %s is restricted and you are not in the authorized list. Visit "
                 "%s/%s%s to ask for access.",
                 type, id, base ? base : "", pfx, id);
    *ret = queue_err(c, anon ? 401 : 403, "GatedRepo", msg);
    return true;
}

void o_hr_repo_info(o_hr *h, const char *type, const char *id, cJSON *info)
{
    char key[280];
    snprintf(key, sizeof key, "%s/%s", type, id);
    bool gated = false;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->ngates; i++)
        if (!strcmp(h->gates[i].key, key))
            gated = true;
    pthread_mutex_unlock(&h->mu);
    if (!gated)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(info, "gated");
    cJSON_AddStringToObject(info, "gated", "manual");
}

void o_hr_redact(o_hr *h, struct MHD_Connection *c, const char *type, const char *id, cJSON *arr)
{
    bool all = false;
    int a = access_of(h, c, type, id, &all);
    if (a == 0 || (a == 1 && !all))
        return;
    static const char stars[] = "****************************************************************";
    cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        cJSON *x = cJSON_GetObjectItemCaseSensitive(e, "xetHash");
        if (cJSON_IsString(x))
            cJSON_ReplaceItemInObjectCaseSensitive(e, "xetHash", cJSON_CreateString(stars));
    }
}
