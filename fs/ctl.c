/* ctl.c — the mount's control socket: <store>/ctl.sock, a Unix stream
 * socket created mode 0600 and answering only its owner's uid (and root),
 * checked with SO_PEERCRED.  One JSON object per line each way.
 *
 *   -> {"cmd": "pull", "repo": "org/name@rev", "include": ["*.json"]}
 *   <- {"event": "progress", "done": B, "total": B, "files_done": n,
 *       "files": n, "files_failed": n, "commit": "<40 hex>"}   (≤ 10 a second)
 *   <- {"event": "done", ..., "errno": 0 | E, "error": "text"}
 *   -> {"cmd": "ping"}            <- {"event": "pong", "pid": N}
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
    uint64_t last_progress;
    bool closing;
};

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

static void put_stat(cJSON *o, const zf_pull_stat *st)
{
    cJSON_AddNumberToObject(o, "done", (double)st->done);
    cJSON_AddNumberToObject(o, "total", (double)st->total);
    cJSON_AddNumberToObject(o, "files_done", st->files_done);
    cJSON_AddNumberToObject(o, "files", st->files);
    cJSON_AddNumberToObject(o, "files_failed", st->files_failed);
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
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "errno")) && cJSON_IsNumber(v))
        st->err = -(int)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "commit")) && cJSON_IsString(v))
        snprintf(st->commit, sizeof st->commit, "%s", v->valuestring);
}

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
    if (c->pull) {
        zf_pull_cancel(c->pull); /* its final callback sees closing and lets go */
        c->pull = NULL;
        c->ctl = NULL;
        /* the pull's callback still holds c: freed there */
        uv_read_stop((uv_stream_t *)&c->pipe);
        return;
    }
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void pull_cb(void *ud, const zf_pull_stat *st, bool final)
{
    ctl_conn *c = ud;
    if (c->closing) { /* the client went away: the pull was cancelled */
        if (final)
            uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    if (final)
        c->pull = NULL;
    else {
        uint64_t now = uv_now(c->ctl->fs->loop);
        if (now - c->last_progress < 100 && st->done < st->total)
            return;
        c->last_progress = now;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", final ? "done" : "progress");
    put_stat(o, st);
    conn_send(c, o);
}

static void handle(ctl_conn *c, const char *line)
{
    cJSON *req = cJSON_Parse(line);
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    if (!cJSON_IsString(cmd)) {
        send_error(c, -EINVAL, "expected {\"cmd\": ...}");
    } else if (c->pull) {
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
