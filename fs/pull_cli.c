/* pull_cli.c — `zestfs pull REPO[@REV] [--include GLOB]... [peer options]
 * [--seed | --seed-for DURATION]`: the command around the pull engine
 * (pull.h): its options, the progress bar, the control socket client, and
 * the standalone run with the peer swarm and seeding afterwards.
 *
 * The command connects to <store>/ctl.sock; when a mount answers there the
 * pull runs in the mount (with the mount's own peer options).  When nothing
 * listens it opens the store itself (refused with -EBUSY if a mount holds
 * it but does not answer) and runs one loop with the read path and, unless
 * --no-p2p or --offline, a peer node (fs/p2p.c) started from the same
 * options as a mount's (zf_p2p_opt, ZF_P2P_LONGOPTS): resolving the
 * revision joins its swarm, the --peer nodes are dialled and waited for
 * (PEER_WAIT_MS at most) before the first fill, then every fetch asks the
 * peers that hold the range first and the CDN otherwise (fs/read/source.c).
 * --seed: after a pull that succeeded, keep the node serving the pulled
 * repo's swarm (public verdict or --seed-private, as `zestfs seed`) until
 * SIGINT/SIGTERM (exit 0), or for --seed-for DURATION.
 * Progress: a bar (bytes, rate, ETA, files, bytes from peers and from the
 * CDN) redrawn on a TTY, a plain line every few seconds otherwise; the last
 * line sums it up. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "cli.h"
#include "ctlwire.h"
#include "hubload.h"
#include "log.h"
#include "ops.h"
#include "options.h"
#include "p2p.h"
#include "pull.h"
#include "read.h"
#include "zfs.h"

#define PEER_WAIT_MS 6000 /* --peer nodes connected before the first fill (the redial is 5 s) */

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
    char d[32], tot[32], r[32], eta[32], pb[32], cb[32];
    human(st->done, d, sizeof d);
    human(st->total, tot, sizeof tot);
    human(st->peer_bytes, pb, sizeof pb);
    human(st->cdn_bytes, cb, sizeof cb);
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
        fprintf(stderr, "\r[%s] %3d%% %s / %s  %s/s  ETA %s  %u/%u files  peers %s  CDN %s\033[K",
                bar, pct, d, tot, r, final ? "0:00" : eta, st->files_done, st->files, pb, cb);
        if (final)
            fputc('\n', stderr);
    } else
        fprintf(stderr, "pull: %s of %s (%d%%), %s/s, ETA %s, %u/%u files, from peers %s, CDN %s%s\n",
                d, tot, pct, r, final ? "0:00" : eta, st->files_done, st->files, pb, cb,
                !final ? "" : st->err ? ", failed" : ", done");
    fflush(stderr);
}

/* ---- the options ------------------------------------------------------------------- */

typedef struct pull_args {
    const char *spec;
    const char *inc[256];
    size_t ninc;
    zf_opts o;
    bool quiet;
    bool seed;                 /* --seed or --seed-for */
    uint64_t seed_for_ms;      /* --seed-for; 0: until a signal */
    bool peer_opts;            /* a peer option was given */
    zf_p2p_opts po;
} pull_args;

/* "90", "90s", "500ms", "10m", "2h" (a number of seconds without a unit). */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0 || s[0] == '-')
        return -EINVAL;
    double mul = 1000;
    if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "m"))
        mul = 60e3;
    else if (!strcmp(end, "h"))
        mul = 3600e3;
    else if (*end && strcmp(end, "s"))
        return -EINVAL;
    if (v * mul > 1e12 || v * mul < 1)
        return -EINVAL;
    *out = (uint64_t)(v * mul);
    return 0;
}

/* ---- standalone: the store opened here, peers and seeding ------------------------ */

typedef struct standalone {
    const pull_args *a;
    progress pg;
    zf_pull_stat st;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t seed_timer;
    bool seed_timer_on, seeding, stopped, reading;
    zf_pull *p;
    zf_fs fs;
    zf_p2p_stats last;
} standalone;

/* End the session: the read path and the node stop, the handles close; the
 * loop then runs empty. */
static void sa_stop(standalone *s)
{
    if (s->stopped)
        return;
    s->stopped = true;
    if (s->fs.p2p)
        zf_p2p_get_stats(s->fs.p2p, &s->last);
    if (s->reading)
        zf_read_stop(&s->fs);
    zf_p2p_stop(s->fs.p2p);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    if (s->seed_timer_on)
        uv_close((uv_handle_t *)&s->seed_timer, NULL);
}

static void seed_timeout(uv_timer_t *t)
{
    standalone *s = t->data;
    fprintf(stderr, "zestfs pull: --seed-for over\n");
    sa_stop(s);
}

/* After the pull: keep serving the pulled commit's repo. */
static void seed_start(standalone *s)
{
    size_t served = 0;
    for (size_t i = 0; i < s->fs.tree.nrepos; i++) {
        const zf_repo *r = s->fs.tree.repos[i];
        if (!zf_repo_commit(r, s->st.commit))
            continue;
        if (zf_p2p_repo_served(s->fs.p2p, zf_p2p_type_name(r->type), r->id))
            served++;
        else
            fprintf(stderr, "zestfs pull: %s/%s: %s: not served (--seed-private serves it)\n",
                    zf_type_plural(r->type), r->id, zf_vis_name(r->vis));
    }
    if (!served) {
        sa_stop(s);
        return;
    }
    s->seeding = true;
    char dur[48] = "until SIGTERM";
    if (s->a->seed_for_ms) {
        snprintf(dur, sizeof dur, "for %.1f s", (double)s->a->seed_for_ms / 1000);
        uv_timer_init(&s->loop, &s->seed_timer);
        s->seed_timer.data = s;
        s->seed_timer_on = true;
        uv_timer_start(&s->seed_timer, seed_timeout, s->a->seed_for_ms, 0);
    }
    fprintf(stderr, "zestfs pull: seeding %s on port %d %s\n", s->a->spec, zf_p2p_port(s->fs.p2p),
            dur);
}

static void sa_cb(void *ud, const zf_pull_stat *st, bool final)
{
    standalone *s = ud;
    s->st = *st;
    progress_show(&s->pg, st, final);
    if (!final)
        return;
    s->p = NULL;
    if (!st->err && s->a->seed && s->fs.p2p)
        seed_start(s);
    else
        sa_stop(s);
}

static void sa_sig(uv_signal_t *h, int signum)
{
    standalone *s = h->data;
    if (s->p) /* its fills end at once (the read path stops), then its final callback */
        zf_pull_cancel(s->p);
    else if (s->seeding)
        fprintf(stderr, "zestfs pull: signal %d, seeding ends\n", signum);
    sa_stop(s);
}

static int pull_standalone(const pull_args *a, zf_opts *o)
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
    static standalone s; /* signal handles: not on a stack that may be gone */
    memset(&s, 0, sizeof s);
    s.a = a;
    s.pg = (progress){.tty = isatty(2), .quiet = a->quiet};
    zf_p2p_opts po = a->po;
    po.state_dir = o->store_dir;
    if (o->offline)
        po.disabled = true;
    if (zf_fs_init(&s.fs, -1) != 0) {
        zc_close(store);
        return 1;
    }
    if (zf_load_repos(&s.fs, o, store) != 0 || zf_p2p_reserve(&po) != 0) {
        zf_fs_destroy(&s.fs);
        zc_close(store);
        return 1;
    }
    uv_loop_init(&s.loop);
    s.fs.loop = &s.loop;
    s.pg.t0 = s.pg.last_t = now_s();
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, sa_sig, SIGINT);
    uv_signal_start(&s.sigterm, sa_sig, SIGTERM);
    err = zf_read_init(&s.fs, o, store);
    s.reading = err == 0;
    if (!err && (err = zf_p2p_start(&s.loop, store, &po, &s.fs.p2p)) != 0) {
        fprintf(stderr, "zestfs pull: peer swarm off: %s\n", strerror(-err)); /* CDN only */
        err = 0;
    } else if (!err && !s.fs.p2p && a->seed)
        fprintf(stderr, "zestfs pull: --seed: no peer swarm (%s): nothing to seed\n",
                o->offline ? "--offline" : "--no-p2p");
    if (!err)
        err = zf_pull_start(&s.fs, store, a->spec, a->inc, a->ninc, sa_cb, &s, &s.p);
    if (!err && po.npeers)
        zf_pull_wait_peers(s.p, (unsigned)po.npeers, PEER_WAIT_MS);
    if (err) {
        s.st.err = err;
        sa_stop(&s);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    err = s.st.err;
    if (s.seeding)
        fprintf(stderr,
                "zestfs pull: seeded %" PRIu64 " chunk bytes (%" PRIu64 " requests, %" PRIu64
                " refused), %" PRIu64 " peers banned\n",
                s.last.node.data_up, s.last.node.requests_served, s.last.node.requests_refused,
                s.last.node.bans);
    uv_loop_close(&s.loop);
    if (s.reading)
        zf_read_free(&s.fs);
    zf_p2p_free(s.fs.p2p);
    s.fs.p2p = NULL;
    int cerr = zc_close(store);
    if (cerr)
        fprintf(stderr, "zestfs pull: closing the store: %s\n", strerror(-cerr));
    zf_fs_destroy(&s.fs);
    if (err)
        fprintf(stderr, "zestfs pull %s: %s\n", a->spec, strerror(-err));
    return err || cerr ? 1 : 0;
}

/* ---- through a running mount ----------------------------------------------------- */

/* -ECONNREFUSED/-ENOENT: nothing listens. */
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

/* ---- the command --------------------------------------------------------------------- */

static void pull_usage(FILE *f)
{
    fprintf(f, "usage: zestfs pull [options] REPO[@REV]\n"
               "  REPO is org/name, datasets/org/name or spaces/org/name; REV defaults to main\n"
               "      --include GLOB      only files matching GLOB (repeatable; '*' matches '/')\n"
               "      --store DIR         the chunk store (default ~/.cache/zestfs); a mount\n"
               "                          using it does the work through DIR/ctl.sock (with\n"
               "                          its own peer options; --seed is then the mount's)\n"
               "      --store-size BYTES  store cap when no mount runs (default half its disk)\n"
               "      --endpoint URL      the Hub (default $HF_ENDPOINT, else https://huggingface.co)\n"
               "      --token TOKEN       Hub token (default $HF_TOKEN, else the HF token file)\n"
               "      --cacert FILE       PEM CA bundle for TLS\n"
               "      --offline           only check what the store has\n"
               "  -q, --quiet             no progress output\n"
               "  -v, --verbose           debug log lines (each fetch and where it came from)\n"
               "      --seed              after the pull, keep serving the repo to the peer\n"
               "                          swarm until SIGINT/SIGTERM (then exit 0)\n"
               "      --seed-for DURATION  the same, for DURATION (90, 90s, 500ms, 10m, 2h)\n"
               "peer swarm (on by default, as for a mount: chunks come from peers first;\n"
               "only repos the Hub says are public are served):\n"
               "%s",
            zf_p2p_usage);
}

int zestfs_cmd_pull(int argc, char **argv)
{
    enum { O_INC = 256, O_STORE, O_STORE_SIZE, O_ENDPOINT, O_TOKEN, O_CACERT, O_OFFLINE, O_SEED,
           O_SEED_FOR, O_P2P };
    static const struct option opts[] = {
        {"include", required_argument, NULL, O_INC},
        {"store", required_argument, NULL, O_STORE},
        {"store-size", required_argument, NULL, O_STORE_SIZE},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"token", required_argument, NULL, O_TOKEN},
        {"cacert", required_argument, NULL, O_CACERT},
        {"offline", no_argument, NULL, O_OFFLINE},
        {"seed", no_argument, NULL, O_SEED},
        {"seed-for", required_argument, NULL, O_SEED_FOR},
        ZF_P2P_LONGOPTS(O_P2P),
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static pull_args a;
    memset(&a, 0, sizeof a);
    a.po.reserve_fd = -1;
    const char *store_opt = NULL, *endpoint = NULL, *token_opt = NULL;
    int c, li = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qvh", opts, &li)) != -1) {
        switch (c) {
        case O_INC:
            if (a.ninc == 256) {
                fprintf(stderr, "zestfs pull: at most 256 --include\n");
                return 2;
            }
            a.inc[a.ninc++] = optarg;
            break;
        case O_STORE: store_opt = optarg; break;
        case O_STORE_SIZE:
            if (zf_parse_size(optarg, &a.o.store_size) != 0 || a.o.store_size == 0) {
                fprintf(stderr, "zestfs pull: --store-size %s: not a size\n", optarg);
                return 2;
            }
            break;
        case O_ENDPOINT: endpoint = optarg; break;
        case O_TOKEN: token_opt = optarg; break;
        case O_CACERT: a.o.cacert = optarg; break;
        case O_OFFLINE: a.o.offline = true; break;
        case O_SEED: a.seed = true; break;
        case O_SEED_FOR:
            if (parse_duration_ms(optarg, &a.seed_for_ms) != 0) {
                fprintf(stderr, "zestfs pull: --seed-for %s: not a duration (90, 90s, 500ms, "
                                "10m, 2h)\n", optarg);
                return 2;
            }
            a.seed = true;
            break;
        case O_P2P:
            if (zf_p2p_opt(&a.po, opts[li].name, optarg) < 0)
                return 2;
            a.peer_opts = true;
            break;
        case 'q': a.quiet = true; break;
        case 'v': zf_log_level = ZF_LOG_DEBUG; break;
        case 'h': pull_usage(stdout); return 0;
        default: pull_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        pull_usage(stderr);
        return 2;
    }
    a.spec = argv[optind];
    char *store_dir = store_opt ? strdup(store_opt) : zf_default_store();
    if (!store_dir) {
        fprintf(stderr, "zestfs pull: no --store and no $HOME\n");
        return 1;
    }
    char sock[4200];
    snprintf(sock, sizeof sock, "%s/ctl.sock", store_dir);
    int status = 1;
    int rc = pull_via_ctl(sock, a.spec, a.inc, a.ninc, a.quiet, &status);
    if (rc == 0) {
        if (a.peer_opts || a.seed)
            fprintf(stderr, "zestfs pull: a mount serves %s: it pulled with its own peer "
                            "options and seeds as it does (--seed and peer options unused)\n",
                    store_dir);
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
    a.o.endpoint = ep;
    a.o.token = token;
    a.o.store_dir = store_dir;
    status = pull_standalone(&a, &a.o);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    free(ep);
    free(store_dir);
    return status;
}
