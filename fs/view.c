/* view.c — repo-at mounts attached to a running zestfs (contract and
 * design in view.h).
 *
 * An attached mount is a zf_fs of its own (inodes, handles, FUSE session,
 * the mountpoint's directory) whose tree is a repo-at tree over the
 * daemon's repos (zv_tree.base) and whose read hooks, read context, store
 * and swarm are the daemon's: a read through it is the daemon's read, with
 * the same fetches, prefetch and counters.  Passthrough is off for it (a
 * backing id belongs to one FUSE connection: flat.c opens them on the
 * daemon's).  A session that ends (fusermount3 -u) stops being polled and
 * is unmounted, but its zf_fs and session live until zf_views_free: reads
 * still in flight in the read path may answer its requests until then. */
#include "view.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "flat.h"
#include "hubload.h"
#include "log.h"
#include "ops.h"
#include "options.h"

typedef struct zf_view {
    struct zf_view *next;
    struct zf_views *set;
    zf_fs fs;                  /* its own FUSE state; reads go to the daemon's */
    zf_fs *base;
    uv_poll_t poll;
    struct fuse_buf buf;
    char *folder, *rev, *mnt, *sock, *spec;
    char reg[PATH_MAX + 64];   /* its registry file (cli_ctl.c); "": none */
    int rootfd;
    bool allow_other, polling, mounted, fs_init;
    zf_view_cb cb;
    void *ud;
} zf_view;

struct zf_views {
    zf_view *list;             /* mounted (or ended), newest first */
    unsigned pending;          /* resolving */
    bool stopping;
};

int zf_at_parse(const char *spec, char **folder, char **rev)
{
    enum zf_repo_type type = ZF_MODEL;
    const char *p = spec;
    if (!strncmp(p, "models/", 7))
        p += 7;
    else if (!strncmp(p, "datasets/", 9)) {
        type = ZF_DATASET;
        p += 9;
    } else if (!strncmp(p, "spaces/", 7)) {
        type = ZF_SPACE;
        p += 7;
    }
    const char *at = strchr(p, '@');
    char *id = strndup(p, at ? (size_t)(at - p) : strlen(p));
    const char *r = at ? at + 1 : "main";
    *folder = id && zf_valid_repo_id(id) && zf_valid_rev(r) ? zf_repo_folder(type, id) : NULL;
    free(id);
    *rev = *folder ? strdup(r) : NULL;
    if (*folder && *rev)
        return 0;
    free(*folder);
    *folder = NULL;
    return -EINVAL;
}

/* ---- the command side ------------------------------------------------------ */

static int send_line(int fd, const char *line)
{
    size_t n = strlen(line);
    for (size_t off = 0; off <= n;) {
        const char *p = off < n ? line + off : "\n";
        ssize_t w = write(fd, p, off < n ? n - off : 1);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

int zf_view_attach(const char *store_dir, const char *spec, const char *mnt, bool allow_other)
{
    char real[PATH_MAX], sock[PATH_MAX + 16];
    if (!realpath(mnt, real)) {
        fprintf(stderr, "zestfs: %s: %s\n", mnt, strerror(errno));
        return 1;
    }
    snprintf(sock, sizeof sock, "%s/ctl.sock", store_dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path) {
        fprintf(stderr, "zestfs: %s: path too long\n", sock);
        return 1;
    }
    strcpy(sa.sun_path, sock);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cmd", "mount");
    cJSON_AddStringToObject(o, "repo", spec);
    cJSON_AddStringToObject(o, "mountpoint", real);
    cJSON_AddBoolToObject(o, "allow_other", allow_other);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 120}; /* resolving on the Hub, then mounting */
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!line || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send_line(fd, line) != 0) {
        fprintf(stderr, "zestfs: store %s is used by another zestfs, which cannot be asked to "
                        "mount %s (%s)\n", store_dir, mnt, strerror(errno));
        free(line);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    free(line);
    FILE *f = fdopen(fd, "r");
    char buf[4096];
    cJSON *ans = f && fgets(buf, sizeof buf, f) ? cJSON_Parse(buf) : NULL;
    if (f)
        fclose(f);
    else
        close(fd);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(ans, "event");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(ans, "errno");
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(ans, "error");
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(ans, "commit");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(ans, "pid");
    int rc = 1;
    if (!cJSON_IsString(ev))
        fprintf(stderr, "zestfs: no answer from the zestfs of store %s\n", store_dir);
    else if (!strcmp(ev->valuestring, "done") && cJSON_IsNumber(en) && en->valuedouble == 0) {
        fprintf(stderr,
                "zestfs: %s at %s (commit %s), served by the zestfs of store %s (pid %.0f)\n", spec,
                real, cJSON_IsString(cm) ? cm->valuestring : "?", store_dir,
                cJSON_IsNumber(pid) ? pid->valuedouble : 0);
        rc = 0;
    } else
        fprintf(stderr, "zestfs: %s at %s: %s\n", spec, real,
                cJSON_IsString(em) ? em->valuestring : "refused");
    cJSON_Delete(ans);
    return rc;
}

/* ---- the daemon side ------------------------------------------------------- */

static void view_end(zf_view *v);

static void on_view_fuse(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    zf_view *v = p->data;
    struct fuse_session *se = v->fs.se;
    for (int i = 0; i < 64; i++) {
        int r = fuse_session_receive_buf(se, &v->buf);
        if (r == -EAGAIN || r == -EINTR)
            return;
        if (r <= 0 || fuse_session_exited(se)) {
            if (r < 0 && r != -ENODEV)
                zf_log(ZF_LOG_WARN, "zestfs: %s: reading FUSE requests: %s\n", v->mnt,
                       strerror(-r));
            view_end(v);
            return;
        }
        if (!zf_flat_dispatch(&v->fs, se, &v->buf)) /* notes the request (no passthrough) */
            fuse_session_process_buf(se, &v->buf);
    }
}

/* The session stops being read; unmounted (and freed) by zf_views_free. */
static void view_end(zf_view *v)
{
    if (!v->polling)
        return;
    v->polling = false;
    uv_close((uv_handle_t *)&v->poll, NULL);
    zf_fs_release_handles(&v->fs); /* their prefetch at open ends */
    if (v->reg[0])
        unlink(v->reg);
    v->reg[0] = 0;
    zf_log(ZF_LOG_INFO, "zestfs: %s: unmounted\n", v->mnt);
}

static void view_free(zf_view *v)
{
    if (v->fs.se) {
        if (v->mounted)
            fuse_session_unmount(v->fs.se);
        fuse_session_destroy(v->fs.se);
    }
    if (v->reg[0])
        unlink(v->reg);
    if (v->fs_init)
        zf_fs_destroy(&v->fs);
    if (v->rootfd >= 0)
        close(v->rootfd);
    free(v->buf.mem);
    free(v->folder);
    free(v->rev);
    free(v->mnt);
    free(v->sock);
    free(v->spec);
    free(v);
}

static int view_start(zf_view *v)
{
    zf_fs *b = v->base, *fs = &v->fs;
    int err = zf_fs_init(fs, v->rootfd);
    if (err)
        return err;
    v->fs_init = true;
    fs->loop = b->loop;
    fs->store = b->store;
    fs->p2p = b->p2p;
    fs->max_read = b->max_read;
    /* the daemon's read path; no repos or revisions on demand at a snapshot */
    fs->hooks.read_blob = b->hooks.read_blob;
    fs->hooks.blob_opened = b->hooks.blob_opened;
    fs->hooks.blob_released = b->hooks.blob_released;
    fs->hooks.warm_repo = b->hooks.warm_repo;
    fs->read_ctx = b->read_ctx;
    fs->tree.base = &b->tree;
    fs->tree.at_folder = v->folder;
    fs->tree.at_rev = v->rev;
    if (!zv_at_commit(&fs->tree))
        return -ENOENT;
    if (zf_registry_path(v->mnt, v->reg, sizeof v->reg, true) != 0)
        v->reg[0] = 0;
    char optstr[256], mr[32] = "";
    if (fs->max_read)
        snprintf(mr, sizeof mr, ",max_read=%u", fs->max_read);
    snprintf(optstr, sizeof optstr, "-ofsname=zestfs,subtype=zestfs,default_permissions,ro%s%s",
             v->allow_other ? ",allow_other" : "", mr);
    char *fargv[] = {"zestfs", optstr, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(2, fargv);
    fs->se = fuse_session_new(&args, &zf_ops, sizeof zf_ops, fs);
    fuse_opt_free_args(&args);
    if (!fs->se)
        return -ENOMEM;
    if (fuse_session_mount(fs->se, v->mnt) != 0)
        return -EPERM; /* libfuse said why on stderr */
    v->mounted = true;
    fs->mountpoint = v->mnt;
    int fd = fuse_session_fd(fs->se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uv_poll_init(b->loop, &v->poll, fd);
    v->poll.data = v;
    v->polling = true;
    uv_poll_start(&v->poll, UV_READABLE, on_view_fuse);
    if (v->reg[0]) {
        FILE *rf = fopen(v->reg, "w");
        if (rf) {
            fprintf(rf, "%s\n", v->sock);
            fclose(rf);
        }
    }
    return 0;
}

static void view_resolved(void *ud, int err, const zf_repo *repo, const char *commit)
{
    (void)repo;
    zf_view *v = ud;
    struct zf_views *set = v->set;
    set->pending--;
    if (!err && set->stopping)
        err = -ECANCELED;
    if (!err)
        err = view_start(v);
    if (!err) {
        v->next = set->list;
        set->list = v;
        zf_log(ZF_LOG_INFO, "zestfs: %s/%s at %s, read-only\n", v->folder, v->rev, v->mnt);
    }
    v->cb(v->ud, err, err ? NULL : commit);
    if (err)
        view_free(v);
}

int zf_view_mount(zf_fs *fs, zc_store *store, const char *sock, const char *spec, const char *mnt,
                  bool allow_other, zf_view_cb cb, void *ud)
{
    if (!fs->read_ctx || !mnt || mnt[0] != '/')
        return -EINVAL;
    if (!fs->views && !(fs->views = calloc(1, sizeof *fs->views)))
        return -ENOMEM;
    if (fs->views->stopping)
        return -ESHUTDOWN;
    zf_view *v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    v->rootfd = -1;
    int err = zf_at_parse(spec, &v->folder, &v->rev);
    if (!err && (!(v->mnt = strdup(mnt)) || !(v->sock = strdup(sock ? sock : "")) ||
                 !(v->spec = strdup(spec))))
        err = -ENOMEM;
    if (!err && (v->rootfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        err = -errno;
    v->set = fs->views;
    v->base = fs;
    v->allow_other = allow_other;
    v->cb = cb;
    v->ud = ud;
    if (!err)
        err = zf_resolve_repo(fs, store, spec, view_resolved, v);
    if (err) {
        view_free(v);
        return err;
    }
    fs->views->pending++;
    return 0;
}

void zf_views_status(zf_fs *fs, cJSON *arr)
{
    for (zf_view *v = fs->views ? fs->views->list : NULL; v && arr; v = v->next) {
        const zf_commit *c = zv_at_commit(&v->fs.tree);
        if (!v->polling)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "mountpoint", v->mnt);
        cJSON_AddStringToObject(o, "repo", v->spec);
        cJSON_AddStringToObject(o, "commit", c ? c->sha : "");
        cJSON_AddItemToArray(arr, o);
    }
}

void zf_views_stop(zf_fs *fs)
{
    if (!fs->views)
        return;
    fs->views->stopping = true;
    for (zf_view *v = fs->views->list; v; v = v->next)
        view_end(v);
}

void zf_views_free(zf_fs *fs)
{
    if (!fs->views)
        return;
    for (zf_view *v = fs->views->list, *nx; v; v = nx) {
        nx = v->next;
        view_free(v);
    }
    free(fs->views);
    fs->views = NULL;
}
