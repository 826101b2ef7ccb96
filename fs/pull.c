/* pull.c — `zestfs pull REPO[@REV] [--include GLOB]...`: make every file of
 * a repo revision (or those matching a glob) stored, through a running
 * mount's control socket or, with none running, on its own.
 *
 * The engine (zf_pull_*) runs on a loop that owns a zf_fs with the read
 * path: it resolves the revision (zf_resolve_repo: the Hub, else the stored
 * model), picks the files (fnmatch, '*' matching '/' as huggingface_hub's
 * allow_patterns do), refuses a selection larger than the store cap
 * (-ENOSPC: it would evict itself), then fills PULL_FILES files at a time
 * (zf_fill_start; all fills share the read path's few background windows,
 * and FUSE reads go first).  A file that fails does not stop the others;
 * the pull ends with the first error.
 * With peers on, each node starts at its own random place: the file list
 * and each file's bytes (in 64 MiB steps) are rotated by a random offset,
 * so nodes pulling one model at once fetch different parts from the CDN
 * first and trade them (plus PENDING, fs/read.c), instead of all asking the
 * CDN for the same bytes.
 *
 * The command connects to <store>/ctl.sock; when nothing listens there it
 * opens the store itself (refused with -EBUSY if a mount holds it but does
 * not answer).  Progress: a bar (bytes, rate, ETA, files) redrawn on a TTY,
 * a plain line every few seconds otherwise. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctlwire.h"
#include "flat.h"
#include "hubload.h"
#include "ops.h"
#include "options.h"
#include "read.h"
#include "zfs.h"

#define PULL_FILES 4
#define ROTATE_STEP (64ull << 20) /* a file's bytes are rotated in these steps */

typedef struct pl_slot {
    zf_pull *p;
    zf_fill *fill;
    uint64_t done;
    bool busy;
} pl_slot;

struct zf_pull {
    zf_fs *fs;
    zc_store *store;
    char **inc;
    size_t ninc;
    zf_pull_cb cb;
    void *ud;
    const zf_repo *repo;
    const zf_commit *commit;
    size_t *sel;               /* indexes into commit->files */
    size_t nsel, next;
    pl_slot slots[PULL_FILES];
    int active;
    zf_pull_stat st;
    uint64_t done_files_bytes;
    bool resolving, cancelled, ended;
    uint64_t rnd;              /* with peers: where this node starts */
};

static void pull_end(zf_pull *p)
{
    if (p->ended)
        return;
    p->ended = true;
    if (!p->st.err && p->cancelled)
        p->st.err = -ECANCELED;
    p->cb(p->ud, &p->st, true);
    for (size_t i = 0; i < p->ninc; i++)
        free(p->inc[i]);
    free(p->inc);
    free(p->sel);
    free(p);
}

static void pull_next(zf_pull *p);

static void pull_fill_cb(void *ud, zf_fill *fl, uint64_t done, uint64_t total, bool final,
                         int err)
{
    pl_slot *s = ud;
    zf_pull *p = s->p;
    if (!final) {
        s->done = done;
        p->st.done = p->done_files_bytes;
        for (int i = 0; i < PULL_FILES; i++)
            p->st.done += p->slots[i].busy ? p->slots[i].done : 0;
        p->cb(p->ud, &p->st, false);
        return;
    }
    s->busy = false;
    s->fill = NULL;
    p->active--;
    p->done_files_bytes += err ? done : total; /* a failed file counts what it stored */
    if (err) {
        p->st.files_failed++;
        if (!p->st.err && err != -ECANCELED)
            p->st.err = err;
    } else
        p->st.files_done++;
    p->st.done = p->done_files_bytes;
    for (int i = 0; i < PULL_FILES; i++)
        p->st.done += p->slots[i].busy ? p->slots[i].done : 0;
    if (!p->cancelled)
        p->cb(p->ud, &p->st, false);
    pull_next(p);
}

static void pull_next(zf_pull *p)
{
    while (!p->cancelled && p->active < PULL_FILES && p->next < p->nsel) {
        const zf_file *file = &p->commit->files[p->sel[p->next++]];
        pl_slot *s = NULL;
        for (int i = 0; i < PULL_FILES && !s; i++)
            if (!p->slots[i].busy)
                s = &p->slots[i];
        zv_ent e = {.kind = ZV_BLOB, .repo = p->repo, .commit = p->commit, .file = file,
                    .size = file->size, .mtime = p->commit->date};
        s->p = p;
        s->done = 0;
        uint64_t rg[4] = {0, file->size, 0, 0};
        size_t nrg = 0;
        uint64_t steps = file->size / ROTATE_STEP;
        if (p->rnd && steps > 0) { /* [r, size) then [0, r) */
            uint64_t r = (p->rnd / 7 % (steps + 1)) * ROTATE_STEP;
            if (r > 0 && r < file->size) {
                rg[0] = r, rg[1] = file->size, rg[2] = 0, rg[3] = r;
                nrg = 2;
            }
        }
        int err = zf_fill_start(p->fs, &e, nrg ? rg : NULL, nrg, pull_fill_cb, s, &s->fill);
        if (err) {
            p->st.files_failed++;
            if (!p->st.err)
                p->st.err = err;
            p->done_files_bytes += file->size;
            continue;
        }
        zf_fill_nocache(s->fill); /* a pull's bytes are for later: not the page cache's */
        s->busy = true;
        p->active++;
    }
    if (p->active == 0 && (p->next >= p->nsel || p->cancelled))
        pull_end(p);
}

static bool selected(const zf_pull *p, const char *path)
{
    if (p->ninc == 0)
        return true;
    for (size_t i = 0; i < p->ninc; i++)
        if (fnmatch(p->inc[i], path, 0) == 0)
            return true;
    return false;
}

static void pull_resolved(void *ud, int err, const zf_repo *repo, const char *sha)
{
    zf_pull *p = ud;
    p->resolving = false;
    if (!err && p->cancelled)
        err = -ECANCELED;
    const zf_commit *c = err ? NULL : zf_repo_commit(repo, sha);
    if (!err && !c)
        err = -ENOENT;
    if (!err && !(p->sel = malloc((c->nfiles ? c->nfiles : 1) * sizeof *p->sel)))
        err = -ENOMEM;
    if (err) {
        p->st.err = err;
        pull_end(p);
        return;
    }
    p->repo = repo;
    p->commit = c;
    snprintf(p->st.commit, sizeof p->st.commit, "%s", sha);
    for (size_t i = 0; i < c->nfiles; i++)
        if (selected(p, c->files[i].path)) {
            p->sel[p->nsel++] = i;
            p->st.total += c->files[i].size;
        }
    p->st.files = (unsigned)p->nsel;
    if (p->rnd && p->nsel > 1) { /* rotate the file list */
        size_t k = (size_t)(p->rnd % p->nsel);
        size_t *v = malloc(p->nsel * sizeof *v);
        if (v) {
            for (size_t i = 0; i < p->nsel; i++)
                v[i] = p->sel[(i + k) % p->nsel];
            memcpy(p->sel, v, p->nsel * sizeof *v);
            free(v);
        }
    }
    zc_stats zs;
    zc_get_stats(p->store, &zs);
    if (zs.cap && p->st.total > zs.cap && p->fs->flats) { /* whole copies give way */
        zf_flat_yield(p->fs->flats, p->st.total);
        zc_get_stats(p->store, &zs);
    }
    if (zs.cap && p->st.total > zs.cap) {
        fprintf(stderr, "zestfs: pull %s: %" PRIu64 " bytes selected, the store cap is %" PRIu64
                        "\n", repo->id, p->st.total, zs.cap);
        p->st.err = -ENOSPC;
        pull_end(p);
        return;
    }
    p->cb(p->ud, &p->st, false);
    pull_next(p);
}

int zf_pull_start(zf_fs *fs, zc_store *store, const char *spec, const char *const *include,
                  size_t ninclude, zf_pull_cb cb, void *ud, zf_pull **out)
{
    zf_pull *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->fs = fs;
    p->store = store;
    p->cb = cb;
    p->ud = ud;
    if (fs->p2p && getrandom(&p->rnd, sizeof p->rnd, 0) != (ssize_t)sizeof p->rnd)
        p->rnd = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    if (fs->p2p && !p->rnd)
        p->rnd = 1;
    if (ninclude && !(p->inc = calloc(ninclude, sizeof *p->inc))) {
        free(p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ninclude; i++) {
        if (!(p->inc[p->ninc] = strdup(include[i]))) {
            for (size_t k = 0; k < p->ninc; k++)
                free(p->inc[k]);
            free(p->inc);
            free(p);
            return -ENOMEM;
        }
        p->ninc++;
    }
    int err = zf_resolve_repo(fs, store, spec, pull_resolved, p);
    if (err) {
        for (size_t k = 0; k < p->ninc; k++)
            free(p->inc[k]);
        free(p->inc);
        free(p);
        return err;
    }
    p->resolving = true;
    if (out)
        *out = p;
    return 0;
}

void zf_pull_cancel(zf_pull *p)
{
    if (!p || p->ended || p->cancelled)
        return;
    p->cancelled = true;
    for (int i = 0; i < PULL_FILES; i++)
        if (p->slots[i].busy)
            zf_fill_cancel(p->slots[i].fill);
    /* ends when the fills (or the resolve) come back */
}

/* ---- progress display -------------------------------------------------------------- */

typedef struct progress {
    bool tty, quiet;
    double t0, last_print, last_t;
    uint64_t last_done;
    double rate;               /* bytes/s, smoothed */
    int width;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void human(uint64_t n, char *out, size_t len)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(out, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void eta_str(double s, char *out, size_t len)
{
    if (s < 0 || s > 1e7) {
        snprintf(out, len, "--:--");
        return;
    }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, len, "%u:%02u", t / 60, t % 60);
}

static void progress_show(progress *pg, const zf_pull_stat *st, bool final)
{
    if (pg->quiet)
        return;
    double t = now_s();
    if (t > pg->last_t + 0.2 && st->done >= pg->last_done) {
        double inst = (double)(st->done - pg->last_done) / (t - pg->last_t);
        pg->rate = pg->rate == 0 ? inst : 0.7 * pg->rate + 0.3 * inst;
        pg->last_t = t;
        pg->last_done = st->done;
    }
    if (!final && t - pg->last_print < (pg->tty ? 0.1 : 5.0))
        return;
    pg->last_print = t;
    char d[32], tot[32], r[32], eta[32];
    human(st->done, d, sizeof d);
    human(st->total, tot, sizeof tot);
    double avg = t > pg->t0 ? (double)st->done / (t - pg->t0) : 0;
    double rate = final ? avg : pg->rate;
    human((uint64_t)rate, r, sizeof r);
    eta_str(rate > 0 ? (double)(st->total - st->done) / rate : -1, eta, sizeof eta);
    int pct = st->total ? (int)(100.0 * (double)st->done / (double)st->total) : 100;
    if (pg->tty) {
        char bar[41];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %3d%% %s / %s  %s/s  ETA %s  %u/%u files\033[K", bar, pct, d, tot,
                r, final ? "0:00" : eta, st->files_done, st->files);
        if (final)
            fputc('\n', stderr);
    } else
        fprintf(stderr, "pull: %s of %s (%d%%), %s/s, ETA %s, %u/%u files%s\n", d, tot, pct, r,
                final ? "0:00" : eta, st->files_done, st->files,
                !final ? "" : st->err ? ", failed" : ", done");
    fflush(stderr);
}

/* ---- the command --------------------------------------------------------------------- */

typedef struct standalone {
    progress pg;
    zf_pull_stat st;
    bool done;
    uv_signal_t sigint;
    zf_pull *p;
} standalone;

static void sa_cb(void *ud, const zf_pull_stat *st, bool final)
{
    standalone *s = ud;
    s->st = *st;
    progress_show(&s->pg, st, final);
    if (final) {
        s->done = true;
        s->p = NULL;
        uv_close((uv_handle_t *)&s->sigint, NULL);
    }
}

static void sa_sig(uv_signal_t *h, int signum)
{
    standalone *s = h->data;
    if (s->p)
        zf_pull_cancel(s->p);
}

static int pull_standalone(const char *spec, const char *const *inc, size_t ninc, zf_opts *o,
                           bool quiet)
{
    zc_store *store = NULL;
    int err = zc_open(o->store_dir, o->store_size ? o->store_size : UINT64_MAX / 2, &store);
    if (err) {
        fprintf(stderr, "zestfs pull: store %s: %s%s\n", o->store_dir, strerror(-err),
                err == -EBUSY ? " (a zestfs holds it, but its control socket does not answer)"
                              : "");
        return 1;
    }
    if (!o->store_size)
        zc_set_cap(store, zf_default_cap(o->store_dir));
    zf_fs fs;
    uv_loop_t loop;
    if (zf_fs_init(&fs, -1) != 0 || zf_load_repos(&fs, o, store) != 0) {
        zc_close(store);
        return 1;
    }
    uv_loop_init(&loop);
    fs.loop = &loop;
    standalone s = {.pg = {.tty = isatty(2), .quiet = quiet}};
    s.pg.t0 = s.pg.last_t = now_s();
    err = zf_read_init(&fs, o, store);
    if (!err)
        err = zf_pull_start(&fs, store, spec, inc, ninc, sa_cb, &s, &s.p);
    if (!err) {
        uv_signal_init(&loop, &s.sigint);
        s.sigint.data = &s;
        uv_signal_start(&s.sigint, sa_sig, SIGINT);
        while (!s.done && uv_run(&loop, UV_RUN_ONCE))
            ;
        err = s.st.err;
    }
    zf_read_stop(&fs);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    zf_read_free(&fs);
    zc_close(store);
    zf_fs_destroy(&fs);
    if (err)
        fprintf(stderr, "zestfs pull %s: %s\n", spec, strerror(-err));
    return err ? 1 : 0;
}

/* Through a running mount.  -ECONNREFUSED/-ENOENT: nothing listens. */
static int pull_via_ctl(const char *sock, const char *spec, const char *const *inc, size_t ninc,
                        bool quiet, int *status)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", "pull");
    cJSON_AddStringToObject(req, "repo", spec);
    cJSON *a = cJSON_AddArrayToObject(req, "include");
    for (size_t i = 0; i < ninc; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(inc[i]));
    char *line = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!line) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = strlen(line);
    line[n] = '\n'; /* cJSON's buffer has its NUL there: send it as the newline */
    int rc = zf_ctl_write_all(fd, line, n + 1);
    free(line);
    progress pg = {.tty = isatty(2), .quiet = quiet};
    pg.t0 = pg.last_t = now_s();
    FILE *in = rc ? NULL : fdopen(fd, "r");
    char *buf = NULL;
    size_t cap = 0;
    int result = -EPROTO;
    while (in && getline(&buf, &cap, in) > 0) {
        cJSON *m = cJSON_Parse(buf);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "event");
        zf_pull_stat st = {0};
        zf_ctl_stat_from_json(m, &st);
        if (cJSON_IsString(ev) && strcmp(ev->valuestring, "progress") == 0)
            progress_show(&pg, &st, false);
        else if (cJSON_IsString(ev) && strcmp(ev->valuestring, "done") == 0) {
            progress_show(&pg, &st, true);
            result = st.err;
            cJSON_Delete(m);
            break;
        } else if (cJSON_IsString(ev) && strcmp(ev->valuestring, "error") == 0) {
            result = st.err ? st.err : -EIO;
            cJSON_Delete(m);
            break;
        }
        cJSON_Delete(m);
    }
    free(buf);
    if (in)
        fclose(in);
    else
        close(fd);
    if (result)
        fprintf(stderr, "zestfs pull %s: %s\n", spec, strerror(-result));
    *status = result ? 1 : 0;
    return 0;
}

static void pull_usage(FILE *f)
{
    fprintf(f, "usage: zestfs pull [options] REPO[@REV]\n"
               "  REPO is org/name, datasets/org/name or spaces/org/name; REV defaults to main\n"
               "      --include GLOB      only files matching GLOB (repeatable; '*' matches '/')\n"
               "      --store DIR         the chunk store (default ~/.cache/zestfs); a mount\n"
               "                          using it does the work through DIR/ctl.sock\n"
               "      --store-size BYTES  store cap when no mount runs (default half its disk)\n"
               "      --endpoint URL      the Hub (default $HF_ENDPOINT, else https://huggingface.co)\n"
               "      --token TOKEN       Hub token (default $HF_TOKEN, else the HF token file)\n"
               "      --cacert FILE       PEM CA bundle for TLS\n"
               "      --offline           only check what the store has\n"
               "  -q, --quiet             no progress output\n");
}

int zestfs_cmd_pull(int argc, char **argv)
{
    enum { O_INC = 256, O_STORE, O_STORE_SIZE, O_ENDPOINT, O_TOKEN, O_CACERT, O_OFFLINE };
    static const struct option opts[] = {
        {"include", required_argument, NULL, O_INC},
        {"store", required_argument, NULL, O_STORE},
        {"store-size", required_argument, NULL, O_STORE_SIZE},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"token", required_argument, NULL, O_TOKEN},
        {"cacert", required_argument, NULL, O_CACERT},
        {"offline", no_argument, NULL, O_OFFLINE},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *inc[256];
    size_t ninc = 0;
    const char *store_opt = NULL, *endpoint = NULL, *token_opt = NULL;
    zf_opts o = {0};
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case O_INC:
            if (ninc == 256) {
                fprintf(stderr, "zestfs pull: at most 256 --include\n");
                return 2;
            }
            inc[ninc++] = optarg;
            break;
        case O_STORE: store_opt = optarg; break;
        case O_STORE_SIZE:
            if (zf_parse_size(optarg, &o.store_size) != 0 || o.store_size == 0) {
                fprintf(stderr, "zestfs pull: --store-size %s: not a size\n", optarg);
                return 2;
            }
            break;
        case O_ENDPOINT: endpoint = optarg; break;
        case O_TOKEN: token_opt = optarg; break;
        case O_CACERT: o.cacert = optarg; break;
        case O_OFFLINE: o.offline = true; break;
        case 'q': quiet = true; break;
        case 'h': pull_usage(stdout); return 0;
        default: pull_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        pull_usage(stderr);
        return 2;
    }
    const char *spec = argv[optind];
    char *store_dir = store_opt ? strdup(store_opt) : zf_default_store();
    if (!store_dir) {
        fprintf(stderr, "zestfs pull: no --store and no $HOME\n");
        return 1;
    }
    char sock[4200];
    snprintf(sock, sizeof sock, "%s/ctl.sock", store_dir);
    int status = 1;
    int rc = pull_via_ctl(sock, spec, inc, ninc, quiet, &status);
    if (rc == 0) {
        free(store_dir);
        return status;
    }
    if (rc != -ECONNREFUSED && rc != -ENOENT) {
        fprintf(stderr, "zestfs pull: %s: %s\n", sock, strerror(-rc));
        free(store_dir);
        return 1;
    }
    char *ep = zf_endpoint(endpoint);
    char *token = zf_find_token(token_opt);
    if (!ep) {
        free(store_dir);
        return 2;
    }
    o.endpoint = ep;
    o.token = token;
    o.store_dir = store_dir;
    status = pull_standalone(spec, inc, ninc, &o, quiet);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    free(ep);
    free(store_dir);
    return status;
}
