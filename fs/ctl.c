/* ctl.c — the mount's control socket: <store>/ctl.sock, a Unix stream
 * socket created mode 0600 and answering only its owner's uid (and root),
 * checked with SO_PEERCRED.  One JSON object per line each way.
 *
 *   -> {"cmd": "pull", "repo": "org/name@rev", "include": ["*.json"]}
 *   <- {"event": "progress", "done": B, "total": B, "files_done": n,
 *       "files": n, "files_failed": n, "peer_bytes": B, "cdn_bytes": B,
 *       "commit": "<40 hex>"}   (≤ 10 a second)
 *   <- {"event": "done", ..., "errno": 0 | E, "error": "text"}
 *   -> {"cmd": "ping"}            <- {"event": "pong", "pid": N}
 *   -> {"cmd": "evict", "repo": "org/name[@rev]"}
 *   <- {"event": "done", "files": n, "xorbs": n, "blobs": n, "bytes_freed": B,
 *       "kept_shared": n, "kept_pinned": n, "errno": 0 | E, "error": "text"}
 *   -> {"cmd": "mount", "repo": "org/name[@rev]", "mountpoint": "/abs", "allow_other": b}
 *   <- {"event": "done", "commit": "<40 hex>", "pid": N, "errno": 0 | E, "error": "text"}
 *                                 (a repo-at mount served by this zestfs: view.h)
 *   anything else                 <- {"event": "error", "errno": E, "error": "text"}
 *
 * A connection runs one command at a time; closing it cancels a pull in
 * flight.  Lines are capped at 64 KiB.  Everything runs on the mount's
 * loop. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "adopt.h"
#include "p2p.h"
#include "admin.h"
#include "ctlwire.h"
#include "pull.h"
#include "evict.h"
#include "flat.h"
#include "hubload.h"
#include "read.h"
#include "view.h"
#include "ctl.h"
#include "zfs.h"

#define LINE_MAX_BYTES (64u << 10)

typedef struct ctl_conn ctl_conn;

struct zf_ctl {
    zf_fs *fs;
    zc_store *store;
    uv_pipe_t srv;
    char *path;
    ctl_conn *conns;
    bool stopping;
};

struct ctl_conn {
    ctl_conn *next;
    zf_ctl *ctl;
    uv_pipe_t pipe;
    char *buf;
    size_t len, cap;
    zf_pull *pull;
    zf_verify *verify;
    bool busy;                 /* a command runs: its final callback calls op_done */
    int cmd;
    char spec[300];
    uint64_t last_progress;
    bool closing;
};

static void write_done(uv_write_t *w, int status)
{
    free(w->data);
    free(w);
}

static void conn_send(ctl_conn *c, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s || c->closing) {
        free(s);
        return;
    }
    size_t n = strlen(s);
    s[n] = '\n';
    uv_write_t *w = malloc(sizeof *w);
    if (!w) {
        free(s);
        return;
    }
    w->data = s;
    uv_buf_t b = uv_buf_init(s, (unsigned)n + 1);
    if (uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, write_done) != 0) {
        free(s);
        free(w);
    }
}

static void send_error(ctl_conn *c, int err, const char *what)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "error");
    cJSON_AddNumberToObject(o, "errno", -err);
    cJSON_AddStringToObject(o, "error", what ? what : strerror(-err));
    conn_send(c, o);
}

static void conn_closed(uv_handle_t *h)
{
    ctl_conn *c = h->data;
    free(c->buf);
    free(c);
}

static void conn_close(ctl_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    for (ctl_conn **pp = &c->ctl->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->busy) { /* the command's final callback holds c: it closes it (op_done) */
        zf_pull_cancel(c->pull);
        zf_verify_cancel(c->verify);
        uv_read_stop((uv_stream_t *)&c->pipe);
        return;
    }
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

/* The running command ended: false if the connection is gone (c freed). */
static bool op_done(ctl_conn *c)
{
    c->busy = false;
    c->pull = NULL;
    c->verify = NULL;
    if (c->closing) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return false;
    }
    return true;
}

static void pull_cb(void *ud, const zf_pull_stat *st, bool final)
{
    ctl_conn *c = ud;
    if (final && !op_done(c))
        return;
    if (c->closing)
        return;
    if (!final) {
        uint64_t now = uv_now(c->ctl->fs->loop);
        if (now - c->last_progress < 100 && st->done < st->total)
            return;
        c->last_progress = now;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", final ? "done" : "progress");
    zf_ctl_stat_to_json(o, st);
    conn_send(c, o);
}

enum { CMD_NONE, CMD_VERIFY, CMD_PIN, CMD_UNPIN, CMD_EVICT };

static cJSON *hist_json(const zf_hist *h)
{
    static const double bound[ZF_HIST_N] = ZF_HIST_BOUNDS_MS;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)h->count);
    cJSON_AddNumberToObject(o, "sum_ms", h->sum_ms);
    /* p50 / p99 from the buckets (upper bound of the bucket holding them) */
    const double q[2] = {0.5, 0.99};
    const char *qn[2] = {"p50_ms", "p99_ms"};
    for (int k = 0; k < 2; k++) {
        uint64_t want = (uint64_t)(q[k] * (double)h->count + 0.999999), acc = 0;
        double v = 0;
        for (int i = 0; i < ZF_HIST_N && h->count; i++) {
            acc += h->bucket[i];
            if (acc >= want) {
                v = i == ZF_HIST_N - 1 ? bound[ZF_HIST_N - 2] : bound[i];
                break;
            }
        }
        cJSON_AddNumberToObject(o, qn[k], v);
    }
    return o;
}

static cJSON *status_json(zf_ctl *ctl)
{
    zf_fs *fs = ctl->fs;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "status");
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    if (fs->mountpoint)
        cJSON_AddStringToObject(o, "mountpoint", fs->mountpoint);
    if (fs->views) /* repo-at mounts attached to this zestfs (view.h) */
        zf_views_status(fs, cJSON_AddArrayToObject(o, "attached"));
    zc_stats st;
    zc_get_stats(ctl->store, &st);
    cJSON *so = cJSON_AddObjectToObject(o, "store");
    cJSON_AddStringToObject(so, "dir", ctl->path);
    cJSON_AddNumberToObject(so, "used", (double)st.used);
    cJSON_AddNumberToObject(so, "cap", (double)st.cap);
    cJSON_AddNumberToObject(so, "pinned", (double)st.pinned);
    cJSON_AddNumberToObject(so, "segments", (double)st.segments);
    cJSON_AddNumberToObject(so, "xorbs", (double)st.xorbs);
    cJSON_AddNumberToObject(so, "evictions", (double)st.evictions);
    cJSON_AddNumberToObject(so, "corrupt", (double)st.corrupt);
    char **pins = NULL;
    size_t npins = 0;
    zf_pins_list(ctl->store, &pins, &npins);
    cJSON *pa = cJSON_AddArrayToObject(o, "pins");
    for (size_t i = 0; i < npins; i++) {
        cJSON_AddItemToArray(pa, cJSON_CreateString(pins[i]));
        free(pins[i]);
    }
    free(pins);
    cJSON *ra = cJSON_AddArrayToObject(o, "repos");
    for (size_t i = 0; i < fs->tree.nrepos; i++) {
        const zf_repo *r = fs->tree.repos[i];
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "type", zf_type_plural(r->type));
        cJSON_AddStringToObject(ro, "id", r->id);
        cJSON *refs = cJSON_AddObjectToObject(ro, "refs");
        for (size_t k = 0; k < r->nrefs; k++)
            cJSON_AddStringToObject(refs, r->refs[k].name, r->refs[k].sha);
        cJSON_AddNumberToObject(ro, "commits", (double)r->ncommits);
        const zf_commit *c = r->nrefs ? zf_repo_commit(r, r->refs[0].sha) : NULL;
        if (!c && r->ncommits)
            c = &r->commits[0];
        uint64_t bytes = 0;
        for (size_t k = 0; c && k < c->nfiles; k++)
            bytes += c->files[k].size;
        cJSON_AddNumberToObject(ro, "files", c ? (double)c->nfiles : 0);
        cJSON_AddNumberToObject(ro, "bytes", (double)bytes);
        /* the Hub's verdict kept with the model, and whether peers get it */
        cJSON_AddStringToObject(ro, "visibility", zf_vis_name(r->vis));
        cJSON_AddNumberToObject(ro, "visibility_checked", (double)r->vis_checked);
        cJSON_AddBoolToObject(ro, "seeded",
                              zf_p2p_repo_served(fs->p2p, zf_p2p_type_name(r->type), r->id));
        cJSON_AddItemToArray(ra, ro);
    }
    const zf_adopt_stats *ad = zf_adopt_stats_get(fs->adopt);
    if (ad) { /* earlier downloads under the mountpoint (adopt.c) */
        cJSON *ao = cJSON_AddObjectToObject(o, "adopt");
        cJSON_AddBoolToObject(ao, "running", ad->running);
        cJSON_AddNumberToObject(ao, "files", (double)ad->files);
        cJSON_AddNumberToObject(ao, "bytes", (double)ad->bytes);
        cJSON_AddNumberToObject(ao, "adopted", (double)ad->done);
        cJSON_AddNumberToObject(ao, "adopted_bytes", (double)ad->done_bytes);
        cJSON_AddNumberToObject(ao, "pending", (double)ad->pending);
        cJSON_AddNumberToObject(ao, "pending_bytes", (double)ad->pending_bytes);
        cJSON_AddNumberToObject(ao, "refused", (double)ad->refused);
        cJSON_AddNumberToObject(ao, "refused_bytes", (double)ad->refused_bytes);
        cJSON_AddNumberToObject(ao, "not_imported", (double)ad->failed);
    }
    cJSON *po = cJSON_AddObjectToObject(o, "peers");
    cJSON_AddBoolToObject(po, "enabled", fs->p2p != NULL);
    if (fs->p2p) {
        zf_p2p_stats ps;
        zf_p2p_get_stats(fs->p2p, &ps);
        cJSON_AddNumberToObject(po, "connected", ps.node.peers);
        cJSON_AddNumberToObject(po, "connections", ps.node.conns);
        cJSON_AddNumberToObject(po, "banned", (double)ps.node.bans);
        cJSON_AddNumberToObject(po, "swarms", ps.swarms);
        cJSON_AddNumberToObject(po, "data_up", (double)ps.node.data_up);
        cJSON_AddNumberToObject(po, "data_down", (double)ps.node.data_down);
        cJSON_AddNumberToObject(po, "requests_served", (double)ps.node.requests_served);
        cJSON_AddNumberToObject(po, "verify_failures", (double)ps.node.verify_failures);
        cJSON_AddNumberToObject(po, "pex_in", (double)ps.node.pex_in);
        cJSON_AddNumberToObject(po, "pex_out", (double)ps.node.pex_out);
        cJSON_AddNumberToObject(po, "pex_dialled", (double)ps.node.pex_dialled);
        cJSON_AddNumberToObject(po, "slow_drops", (double)ps.node.slow_drops);
        cJSON_AddNumberToObject(po, "fetches_ok", (double)ps.node.fetches_ok);
        cJSON_AddNumberToObject(po, "fetches_failed", (double)ps.node.fetches_failed);
        cJSON_AddNumberToObject(po, "mparts_in", (double)ps.node.mparts_in);
        cJSON_AddNumberToObject(po, "mparts_out", (double)ps.node.mparts_out);
        cJSON_AddNumberToObject(po, "manifests_joined", (double)ps.node.manifests_joined);
        cJSON *dh = cJSON_AddObjectToObject(po, "dht");
        cJSON_AddBoolToObject(dh, "enabled", ps.dht);
        cJSON_AddNumberToObject(dh, "nodes", (double)ps.dht_st.nodes);
        cJSON_AddNumberToObject(dh, "good_nodes", (double)ps.dht_st.good_nodes);
        cJSON_AddNumberToObject(dh, "lookups", (double)ps.dht_st.lookups);
        cJSON_AddNumberToObject(dh, "peers_found", (double)ps.dht_st.peers_found);
        cJSON_AddNumberToObject(dh, "announces", (double)ps.dht_st.announces);
    }
    const zf_flat_stats *fl = zf_flat_stats_get(fs->flats);
    if (fl) {
        cJSON *po = cJSON_AddObjectToObject(o, "passthrough");
        cJSON_AddBoolToObject(po, "on", fl->on);
        cJSON_AddNumberToObject(po, "flats", (double)fl->flats);
        cJSON_AddNumberToObject(po, "bytes", (double)fl->bytes);
        cJSON_AddNumberToObject(po, "opens", (double)fl->opens);
        cJSON_AddNumberToObject(po, "builds", (double)fl->builds);
        cJSON_AddNumberToObject(po, "build_bytes", (double)fl->build_bytes);
        cJSON_AddNumberToObject(po, "checks", (double)fl->checks);
        cJSON_AddNumberToObject(po, "failures", (double)fl->failures);
        cJSON_AddBoolToObject(po, "busy", fl->busy);
    }
    zf_metrics *m = zf_read_metrics(fs);
    if (m) {
        cJSON *mo = cJSON_AddObjectToObject(o, "reads");
        cJSON_AddNumberToObject(mo, "count", (double)m->reads);
        cJSON_AddNumberToObject(mo, "bytes", (double)m->read_bytes);
        cJSON_AddNumberToObject(mo, "errors", (double)m->read_errors);
        cJSON_AddNumberToObject(mo, "from_store", (double)m->reads_from_store);
        cJSON_AddNumberToObject(mo, "waited", (double)m->reads_waited);
        cJSON_AddNumberToObject(mo, "early", (double)m->reads_early);
        cJSON_AddItemToObject(mo, "latency", hist_json(&m->read_ms));
        cJSON *bo = cJSON_AddObjectToObject(o, "bytes_by_source");
        cJSON_AddNumberToObject(bo, "store", (double)m->bytes_by_src[ZF_SRC_STORE]);
        cJSON_AddNumberToObject(bo, "peers", (double)m->bytes_by_src[ZF_SRC_PEER]);
        cJSON_AddNumberToObject(bo, "cdn", (double)m->bytes_by_src[ZF_SRC_CDN]);
        cJSON *fo = cJSON_AddObjectToObject(o, "fetch_latency");
        cJSON_AddItemToObject(fo, "peers", hist_json(&m->fetch_ms[ZF_SRC_PEER]));
        cJSON_AddItemToObject(fo, "cdn", hist_json(&m->fetch_ms[ZF_SRC_CDN]));
        cJSON_AddNumberToObject(o, "fetches_in_flight", (double)m->fetches_inflight);
        cJSON_AddNumberToObject(o, "verify_failures", (double)m->verify_failures);
        cJSON_AddNumberToObject(o, "peer_bans", (double)m->peer_bans);
        cJSON_AddNumberToObject(o, "races", (double)m->races);
        cJSON_AddNumberToObject(o, "races_cdn_won", (double)m->races_cdn_won);
        cJSON_AddNumberToObject(o, "fetches_parked", (double)m->fetches_parked);
        cJSON_AddNumberToObject(o, "fetches_held", (double)m->fetches_held);
        cJSON_AddNumberToObject(o, "reconstructions", (double)m->recons);
        cJSON_AddNumberToObject(o, "reconstructions_learned", (double)m->recons_learned);
        cJSON_AddNumberToObject(mo, "http", (double)m->http_reads);
        cJSON *sa = cJSON_AddArrayToObject(o, "slowest_reads");
        for (int i = 0; i < ZF_SLOW_N; i++) {
            if (m->slow[i].ms <= 0)
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "ms", m->slow[i].ms);
            cJSON_AddStringToObject(e, "path", m->slow[i].path);
            cJSON_AddNumberToObject(e, "offset", (double)m->slow[i].off);
            cJSON_AddNumberToObject(e, "length", (double)m->slow[i].len);
            cJSON_AddItemToArray(sa, e);
        }
    }
    return o;
}

static void verify_file_cb(void *ud, const char *path, const char *result, int err)
{
    ctl_conn *c = ud;
    if (c->closing)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "file");
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "result", result);
    if (err)
        cJSON_AddStringToObject(o, "error", strerror(-err));
    conn_send(c, o);
}

static void verify_done_cb(void *ud, const zf_verify_stat *st)
{
    ctl_conn *c = ud;
    if (!op_done(c))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "done");
    cJSON_AddNumberToObject(o, "files", st->files);
    cJSON_AddNumberToObject(o, "ok", st->ok);
    cJSON_AddNumberToObject(o, "bad", st->bad);
    cJSON_AddNumberToObject(o, "missing", st->missing);
    cJSON_AddNumberToObject(o, "bytes", (double)st->bytes);
    int err = st->err ? st->err : st->bad ? -EBADMSG : 0;
    cJSON_AddNumberToObject(o, "errno", -err);
    if (err)
        cJSON_AddStringToObject(o, "error", st->err ? strerror(-err) : "stored data does not match");
    conn_send(c, o);
}

static void pin_done_cb(void *ud, int err, const char *key, uint64_t xorbs)
{
    ctl_conn *c = ud;
    if (!op_done(c))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "done");
    cJSON_AddStringToObject(o, "pin", key);
    cJSON_AddNumberToObject(o, "xorbs", (double)xorbs);
    cJSON_AddNumberToObject(o, "errno", err == -ENODATA ? 0 : -err);
    if (err && err != -ENODATA)
        cJSON_AddStringToObject(o, "error", strerror(-err));
    conn_send(c, o);
}

static void evict_done_cb(void *ud, const zf_evict_stat *st)
{
    ctl_conn *c = ud;
    if (!op_done(c))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "done");
    cJSON_AddNumberToObject(o, "files", st->files);
    cJSON_AddNumberToObject(o, "xorbs", (double)st->xorbs);
    cJSON_AddNumberToObject(o, "blobs", (double)st->blobs);
    cJSON_AddNumberToObject(o, "bytes_freed", (double)st->bytes);
    cJSON_AddNumberToObject(o, "kept_shared", (double)st->shared);
    cJSON_AddNumberToObject(o, "kept_pinned", (double)st->pinned);
    cJSON_AddNumberToObject(o, "errno", -st->err);
    if (st->err)
        cJSON_AddStringToObject(o, "error", strerror(-st->err));
    conn_send(c, o);
}

static void resolved_cb(void *ud, int err, const zf_repo *repo, const char *commit)
{
    ctl_conn *c = ud;
    if (!err && c->closing)
        err = -ECANCELED;
    if (!err && c->cmd == CMD_EVICT) {
        /* REPO@REV: that commit; REPO: every commit presented */
        err = zf_evict(c->ctl->fs, c->ctl->store, repo, strchr(c->spec, '@') ? commit : NULL,
                       evict_done_cb, c);
        if (err == -EBUSY && op_done(c)) {
            send_error(c, err, "the repo is pinned: unpin it first");
            return;
        }
    } else if (!err && c->cmd == CMD_VERIFY)
        err = zf_verify_start(c->ctl->fs, repo, commit, verify_file_cb, verify_done_cb, c,
                              &c->verify);
    else if (!err)
        err = zf_pin(c->ctl->fs, c->ctl->store, repo, commit, c->cmd == CMD_PIN, pin_done_cb, c);
    if (err && op_done(c))
        send_error(c, err, NULL);
}

static void pin_pull_cb(void *ud, const zf_pull_stat *st, bool final)
{
    ctl_conn *c = ud;
    if (!final) {
        pull_cb(ud, st, false);
        return;
    }
    c->pull = NULL;
    int err = c->closing ? -ECANCELED : st->err;
    const zf_repo *repo = NULL;
    if (!err) {
        /* the pull resolved and presented it: find the repo of that commit */
        for (size_t i = 0; i < c->ctl->fs->tree.nrepos && !repo; i++)
            if (zf_repo_commit(c->ctl->fs->tree.repos[i], st->commit))
                repo = c->ctl->fs->tree.repos[i];
        err = repo ? zf_pin(c->ctl->fs, c->ctl->store, repo, st->commit, true, pin_done_cb, c)
                   : -ENOENT;
    }
    if (err && op_done(c)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "done");
        zf_pull_stat s2 = *st;
        s2.err = err;
        zf_ctl_stat_to_json(o, &s2);
        conn_send(c, o);
    }
}

static void mount_done_cb(void *ud, int err, const char *commit)
{
    ctl_conn *c = ud;
    if (!op_done(c))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "done");
    if (commit)
        cJSON_AddStringToObject(o, "commit", commit);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddNumberToObject(o, "errno", -err);
    if (err)
        cJSON_AddStringToObject(o, "error", strerror(-err));
    conn_send(c, o);
}

static void handle(ctl_conn *c, const char *line)
{
    cJSON *req = cJSON_Parse(line);
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    if (!cJSON_IsString(cmd)) {
        send_error(c, -EINVAL, "expected {\"cmd\": ...}");
    } else if (c->busy) {
        send_error(c, -EBUSY, "a command is running on this connection");
    } else if (strcmp(cmd->valuestring, "ping") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "pong");
        cJSON_AddNumberToObject(o, "pid", (double)getpid());
        conn_send(c, o);
    } else if (strcmp(cmd->valuestring, "pull") == 0) {
        const cJSON *repo = cJSON_GetObjectItemCaseSensitive(req, "repo");
        const cJSON *inc = cJSON_GetObjectItemCaseSensitive(req, "include");
        const char *pats[256];
        size_t n = 0;
        int err = cJSON_IsString(repo) ? 0 : -EINVAL;
        const cJSON *it;
        if (!err && inc && !cJSON_IsArray(inc))
            err = -EINVAL;
        cJSON_ArrayForEach(it, inc)
        {
            if (!cJSON_IsString(it) || n == 256) {
                err = -EINVAL;
                break;
            }
            pats[n++] = it->valuestring;
        }
        if (!err)
            err = zf_pull_start(c->ctl->fs, c->ctl->store, repo->valuestring, pats, n, pull_cb, c,
                                &c->pull);
        if (err)
            send_error(c, err, NULL);
        else
            c->busy = true;
    } else if (strcmp(cmd->valuestring, "status") == 0) {
        conn_send(c, status_json(c->ctl));
    } else if (!strcmp(cmd->valuestring, "verify") || !strcmp(cmd->valuestring, "pin") ||
               !strcmp(cmd->valuestring, "unpin") || !strcmp(cmd->valuestring, "evict")) {
        const cJSON *repo = cJSON_GetObjectItemCaseSensitive(req, "repo");
        if (!cJSON_IsString(repo))
            send_error(c, -EINVAL, "expected \"repo\"");
        else {
            int err;
            c->busy = true;
            c->cmd = !strcmp(cmd->valuestring, "verify") ? CMD_VERIFY
                     : !strcmp(cmd->valuestring, "pin")   ? CMD_PIN
                     : !strcmp(cmd->valuestring, "evict") ? CMD_EVICT
                                                          : CMD_UNPIN;
            snprintf(c->spec, sizeof c->spec, "%s", repo->valuestring);
            if (c->cmd == CMD_PIN) /* pin = pull, then label */
                err = zf_pull_start(c->ctl->fs, c->ctl->store, repo->valuestring, NULL, 0,
                                    pin_pull_cb, c, &c->pull);
            else
                err = zf_resolve_repo(c->ctl->fs, c->ctl->store, repo->valuestring, resolved_cb, c);
            if (err) {
                c->busy = false;
                send_error(c, err, NULL);
            }
        }
    } else if (strcmp(cmd->valuestring, "mount") == 0) {
        const cJSON *repo = cJSON_GetObjectItemCaseSensitive(req, "repo");
        const cJSON *mp = cJSON_GetObjectItemCaseSensitive(req, "mountpoint");
        bool ao = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "allow_other"));
        int err = cJSON_IsString(repo) && cJSON_IsString(mp) ? 0 : -EINVAL;
        c->busy = !err;
        if (!err && (err = zf_view_mount(c->ctl->fs, c->ctl->store, c->ctl->path, repo->valuestring,
                                         mp->valuestring, ao, mount_done_cb, c)) != 0)
            c->busy = false;
        if (err)
            send_error(c, err, NULL);
    } else
        send_error(c, -ENOSYS, "unknown command");
    cJSON_Delete(req);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    ctl_conn *c = h->data;
    if (c->cap - c->len < 4096) {
        size_t nc = c->cap ? c->cap * 2 : 8192;
        char *nb = nc <= 2 * LINE_MAX_BYTES ? realloc(c->buf, nc) : NULL;
        if (!nb) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = nb;
        c->cap = nc;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    ctl_conn *c = s->data;
    if (n < 0 || (n == 0 && !b->base)) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    char *nl;
    while (!c->closing && (nl = memchr(c->buf, '\n', c->len))) {
        *nl = 0;
        handle(c, c->buf);
        size_t used = (size_t)(nl - c->buf) + 1;
        memmove(c->buf, nl + 1, c->len - used);
        c->len -= used;
    }
    if (c->len > LINE_MAX_BYTES) {
        send_error(c, -E2BIG, "line too long");
        conn_close(c);
    }
}

static void on_conn(uv_stream_t *srv, int status)
{
    zf_ctl *ctl = srv->data;
    if (status < 0 || ctl->stopping)
        return;
    ctl_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->ctl = ctl;
    uv_pipe_init(ctl->fs->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->pipe) != 0) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    uv_os_fd_t fd;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
        (cr.uid != getuid() && cr.uid != 0)) {
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    c->next = ctl->conns;
    ctl->conns = c;
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

int zf_ctl_start(zf_fs *fs, zc_store *store, const char *path, zf_ctl **out)
{
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    zf_ctl *ctl = calloc(1, sizeof *ctl);
    if (!ctl || !(ctl->path = strdup(path))) {
        free(ctl);
        return -ENOMEM;
    }
    ctl->fs = fs;
    ctl->store = store;
    uv_pipe_init(fs->loop, &ctl->srv, 0);
    ctl->srv.data = ctl;
    unlink(path); /* stale: the store's flock says no other zestfs runs on it */
    mode_t old = umask(0077);
    int rc = uv_pipe_bind(&ctl->srv, path);
    umask(old);
    if (!rc)
        rc = chmod(path, 0600) ? -errno : 0;
    if (!rc)
        rc = uv_listen((uv_stream_t *)&ctl->srv, 16, on_conn);
    if (rc) {
        uv_close((uv_handle_t *)&ctl->srv, NULL);
        ctl->stopping = true;
        *out = ctl; /* zf_ctl_stop frees it */
        return rc;
    }
    *out = ctl;
    return 0;
}

void zf_ctl_stop(zf_ctl *ctl)
{
    if (!ctl)
        return;
    if (!ctl->stopping) {
        ctl->stopping = true;
        uv_close((uv_handle_t *)&ctl->srv, NULL);
        unlink(ctl->path);
    }
    while (ctl->conns)
        conn_close(ctl->conns);
}

void zf_ctl_free(zf_ctl *ctl)
{
    if (!ctl)
        return;
    free(ctl->path);
    free(ctl);
}
