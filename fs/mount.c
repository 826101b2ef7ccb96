/* mount.c — `zestfs [options] MOUNTPOINT`: opens the mountpoint directory
 * (kept as the overlay's real side), mounts the FUSE session over it, and
 * runs everything on one libuv loop: the FUSE fd is polled with uv_poll_t and
 * requests are dispatched there; SIGINT/SIGTERM unmount cleanly; an external
 * `fusermount3 -u` ends the session the same way.
 *
 * Startup order, one phase function each (zestfs_cmd_mount, at the end):
 * options; the store (flock'd: one zestfs per store; a --repo-at mount
 * whose store is held asks that zestfs to serve it, view.h); the repo
 * models (persisted ones, then --repo from the Hub on a private loop, then
 * --repo-json); the FUSE mount; daemon(); then the mount's loop with the
 * read path's network clients; teardown.  Nothing created before daemon()
 * runs threads or keeps sockets.
 *
 * --repo-at REPO[@REV]: the mount's root is that revision's snapshot, its
 * files regular files, read-only (vtree.h, repo-at trees); the revision
 * moves with its ref (--refs-ttl). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "p2p.h"
#include "log.h"
#include "admin.h"
#include "ctl.h"
#include "flat.h"
#include "httpd.h"
#include "hubload.h"
#include "ondemand.h"
#include "ops.h"
#include "options.h"
#include "present.h"
#include "read.h"
#include "zfs.h"
#include "adopt.h"
#include "view.h"

typedef struct zf_mount {
    zf_fs fs;
    zf_ctl *ctl;
    zf_http *http, *metrics;
    uv_loop_t loop;
    uv_poll_t poll;
    uv_signal_t sigint, sigterm;
    struct fuse_buf buf;
    int exit_code;
} zf_mount;

/* The first pool job maps zestfs's code and that of the libraries on its
 * read path, with their read-only data (LZ4's tables): one read per page,
 * after MADV_WILLNEED.  A first read after the mount sat idle, or after the
 * page cache was dropped, then does not wait for the disk to page code in
 * (0.3-1 ms here, traced).  Mapped pages stay in memory; drop_caches and
 * light reclaim take unmapped ones first.  About 1.5 MiB of RSS. */
static bool code_wanted(const char *path, const char *exe)
{
    static const char *const libs[] = {"/liblz4.", "/libblake3.", "/libfuse3.", "/libuv.",
                                       "/libcjson.", "/libcurl."};
    if (exe[0] && !strcmp(path, exe))
        return true;
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
        if (strstr(path, libs[i]))
            return true;
    return false;
}

__attribute__((no_sanitize_address)) static void pool_warm(uv_work_t *w)
{
    (void)w;
    char exe[4096] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    char line[4400];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perm[5];
        int at = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &lo, &hi, perm, &at) < 3 || !at ||
            perm[0] != 'r' || perm[1] == 'w')
            continue;
        char *path = line + at;
        path[strcspn(path, "\n")] = 0;
        if (!code_wanted(path, exe))
            continue;
        madvise((void *)lo, hi - lo, MADV_WILLNEED);
        for (unsigned long a = lo; a < hi; a += (unsigned long)pg)
            (void)*(volatile const unsigned char *)a; /* a read maps the page */
    }
    fclose(f);
}

static void pool_warm_after(uv_work_t *w, int status)
{
    (void)status;
    free(w);
}

/* Scheduling.  The loop thread answers every FUSE request, so a reply must
 * not wait for a pool job (decode, hashing, store I/O) or the client to use
 * up its time slice (up to a 4 ms tick here).  The pool threads are
 * SCHED_BATCH: a job the loop queues never preempts the loop or the client
 * at wakeup, it runs on a free core or when they sleep.  They inherit that
 * from the thread that creates them, the loop's, with its first job (pool_warm,
 * queued here).  The loop thread then asks for a short slice (EEVDF, Linux >= 6.12:
 * a waking task with a shorter slice preempts the running one); older
 * kernels refuse it and nothing changes. */
static void sched_threads(uv_loop_t *loop)
{
    struct sched_param sp = {0};
    bool batch = sched_setscheduler(0, SCHED_BATCH, &sp) == 0;
    uv_work_t *w = malloc(sizeof *w);
    if (w && uv_queue_work(loop, w, pool_warm, pool_warm_after) != 0)
        free(w);
    if (batch)
        sched_setscheduler(0, SCHED_OTHER, &sp);
#ifdef SYS_sched_setattr
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t prio;
        uint64_t runtime, deadline, period;
    } a = {.size = sizeof a, .policy = SCHED_OTHER, .runtime = 100000 /* ns */};
    errno = 0;
    a.nice = getpriority(PRIO_PROCESS, 0);
    if (errno == 0 && syscall(SYS_sched_setattr, 0, &a, 0) != 0)
        zf_debug("zestfs: short time slice for the loop: %s\n", strerror(errno));
#endif
}

static void stop(zf_mount *m)
{
    zf_views_stop(&m->fs);
    zf_ctl_stop(m->ctl);
    zf_http_stop(m->http);
    zf_http_stop(m->metrics);
    zf_ondemand_stop(&m->fs);
    zf_adopt_stop(m->fs.adopt);
    zf_read_stop(&m->fs);
    zf_flat_stop(m->fs.flats);
    zf_p2p_stop(m->fs.p2p);
    if (!uv_is_closing((uv_handle_t *)&m->poll))
        uv_close((uv_handle_t *)&m->poll, NULL);
    if (!uv_is_closing((uv_handle_t *)&m->sigint))
        uv_close((uv_handle_t *)&m->sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&m->sigterm))
        uv_close((uv_handle_t *)&m->sigterm, NULL);
}

static void on_fuse(uv_poll_t *p, int status, int events)
{
    zf_mount *m = p->data;
    struct fuse_session *se = m->fs.se;
    for (int i = 0; i < 64; i++) {
        int r = fuse_session_receive_buf(se, &m->buf);
        if (r == -EAGAIN || r == -EINTR)
            return;
        if (r <= 0 || fuse_session_exited(se)) {
            if (r < 0 && r != -ENODEV)
                fprintf(stderr, "zestfs: reading FUSE requests: %s\n", strerror(-r));
            stop(m);
            return;
        }
        if (!zf_flat_dispatch(&m->fs, se, &m->buf))
            fuse_session_process_buf(se, &m->buf);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    zf_mount *m = s->data;
    fprintf(stderr, "zestfs: signal %d, unmounting\n", signum);
    fuse_session_exit(m->fs.se);
    stop(m);
}

static int load_repo_json(zf_fs *fs, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    zf_repo *r;
    int err = zf_repo_from_json(buf, (size_t)n, &r);
    free(buf);
    if (err)
        return err;
    err = zf_fs_add_repo(fs, r);
    if (err)
        zf_repo_free(r);
    return err;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: zestfs [options] MOUNTPOINT\n"
               "  -f, --foreground        stay in the foreground\n"
               "      --allow-other       let other users access the mount\n"
               "      --endpoint URL      the Hub (default $HF_ENDPOINT, else https://huggingface.co)\n"
               "      --repo REPO[@REV]   present org/name (datasets/org/name, spaces/...) at REV\n"
               "                          (default main); repeatable\n"
               "      --repo-at REPO[@REV]  present only that snapshot, its files at the\n"
               "                          mount's root (read-only; moves with the ref, see\n"
               "                          --refs-ttl); a store held by a running zestfs: that\n"
               "                          one serves this mount too\n"
               "      --store DIR         chunk store (default ~/.cache/zestfs)\n"
               "      --store-size BYTES  store cap, suffixes K/M/G/T (default half its disk)\n"
               "      --token TOKEN       Hub token (default $HF_TOKEN, else the HF token file)\n"
               "      --cacert FILE       PEM CA bundle for TLS (default the system's)\n"
               "      --offline           no network: present and serve what the store has\n"
               "      --refs-ttl SECONDS  ask the Hub again for the refs of presented repos\n"
               "                          once their last check is this old; a moved ref's\n"
               "                          snapshot is added, older ones stay (default 60; 0:\n"
               "                          never)\n"
               "      --no-passthrough    never hand blobs read often to the kernel as whole\n"
               "                          copies in the store (FUSE passthrough; needs root)\n"
               "      --repo-json FILE    present the repo described by FILE (repeatable)\n"
               "      --read-ahead BYTES  kernel readahead of the mount (default 960K; 0: leave\n"
               "                          the kernel's 128K); needs root\n"
               "      --http [ADDR:]PORT  serve GET|HEAD /{repo}/resolve/{rev}/{path}, /xet/{id}\n"
               "                          (with Range) and /metrics over HTTP; ADDR defaults\n"
               "                          to 127.0.0.1; no auth: anyone who can connect reads\n"
               "                          every presented repo; port 0 picks one (printed)\n"
               "      --http-token TOKEN  require Authorization: Bearer TOKEN (--http and\n"
               "                          --metrics); also $ZESTFS_HTTP_TOKEN or\n"
               "      --http-token-file FILE  (the token from FILE). Without a token, repos\n"
               "                          not presented are never added on demand (404)\n"
               "      --http-host NAME    also accept requests whose Host header is NAME\n"
               "                          (repeatable); by default only the listener's ADDR:PORT\n"
               "                          (and localhost:PORT on loopback): else 421, which\n"
               "                          keeps web pages out (DNS rebinding)\n"
               "      --metrics [ADDR:]PORT  serve only /metrics (Prometheus text format)\n"
               "  -v, --verbose           debug log lines too (each fetch, each read that waits)\n"
               "  -q, --quiet             warnings and errors only\n"
               "      --log-level LEVEL   err, warn, info (default) or debug; to stderr, or the\n"
               "                          journal with levels when run by systemd\n"
               "  -d, --debug             FUSE debug output\n"
               "peer swarm (on by default; only repos the Hub says are public are served):\n"
               "%s", zf_p2p_usage);
}

/* --http-token-file (options.c reads token files) */
static char *read_token_file(const char *path)
{
    return zf_read_token_file(path);
}

/* The largest read request that libfuse can still answer by splicing the
 * stored bytes into /dev/fuse (read.c): it moves a reply through a pipe
 * only if the pipe holds the reply plus a page per buffer and two more, and
 * a process without CAP_SYS_RESOURCE cannot grow a pipe past
 * fs.pipe-max-size (1 MiB by default) — so a full 1 MiB reply would be
 * copied twice instead (read into a buffer, then written).  0: no limit
 * needed (the pipe can grow, or splicing is out of reach anyway). */
static unsigned splice_max_read(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 0;
    int big = fcntl(p[0], F_SETPIPE_SZ, 4 << 20);
    close(p[0]);
    close(p[1]);
    if (big >= (2 << 20))
        return 0;
    unsigned long max = 0;
    FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu", &max) != 1)
        max = 0;
    fclose(f);
    if (max < (256ul << 10))
        return 0;
    unsigned long lim = (max - (64ul << 10)) & ~4095ul; /* room for 14 buffers */
    return lim < (1ul << 20) ? (unsigned)lim : 0;
}

/* Raise the mount's readahead (the FUSE bdi starts at 128 KiB, and
 * max_readahead in INIT can only lower it): the largest request the kernel
 * sends then grows from 128 KiB to 1 MiB, for sequential reads and mmap
 * read-around alike (spec/limits.md §3).  The device comes from
 * /proc/self/mountinfo, not stat(2), which would ask our own, not yet
 * running, session.  Needs root (or a writable sysfs); best effort. */
static void set_readahead(const char *mnt, unsigned kb)
{
    char real[4096], line[8192], dev[64] = "";
    if (!kb || !realpath(mnt, real))
        return;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char mp[4096], d[64];
        if (sscanf(line, "%*s %*s %63s %*s %4095s", d, mp) == 2 && strcmp(mp, real) == 0 &&
            strstr(line, " - fuse.zestfs "))
            snprintf(dev, sizeof dev, "%s", d); /* the last one is ours */
    }
    fclose(f);
    if (!dev[0])
        return;
    char path[128];
    snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
    FILE *w = fopen(path, "w");
    if (!w || fprintf(w, "%u\n", kb) < 0 || fclose(w) != 0) {
        if (w)
            fclose(w);
        fprintf(stderr, "zestfs: cannot raise readahead (%s): reads stay at 128 KiB\n", path);
    }
}

/* ---- `zestfs [options] MOUNTPOINT`, in phases ------------------------------
 * options (the command line into mount_args), store (opened, or a running
 * zestfs's asked to serve a repo-at mount: view.h), models (the repos,
 * the listeners), mount (the FUSE session, daemon()), run (the loop), and
 * teardown, which frees whatever the earlier phases made however far they
 * got.  A phase returns MOUNT_GO_ON, or the exit status to end with. */

#define MOUNT_GO_ON (-1)

typedef struct mount_args {
    int foreground, allow_other, debug;
    unsigned refs_ttl;          /* --refs-ttl */
    int readahead_kb;           /* -1: one largest request (see splice_max_read) */
    bool passthrough;           /* --no-passthrough */
    bool size_set;
    const char *jsons[64], *repos[256];
    int njson;
    const char *endpoint, *token_opt, *store_opt, *repo_at;
    const char *http_opt, *http_token, *metrics_opt;
    const char *http_hosts[16];
    int nhttp_hosts;
    const char *mnt;
    zf_opts o;
    zf_p2p_opts po;
    /* made by the phases, freed by mount_teardown */
    char *ep, *token, *store_dir, *at_folder, *at_rev;
    int rootfd;
    bool fs_init, mounted, loop_init;
    zc_store *store;
    char reg[4200];
} mount_args;

static int mount_options(int argc, char **argv, mount_args *a)
{
    enum { O_ALLOW = 256, O_JSON, O_ENDPOINT, O_REPO, O_STORE, O_STORE_SIZE, O_TOKEN, O_CACERT,
           O_OFFLINE, O_READAHEAD, O_HTTP, O_HTTP_TOKEN, O_METRICS, O_P2P, O_LOGLEVEL, O_NO_PT,
           O_HTTP_HOST, O_HTTP_TOKEN_FILE, O_REFS_TTL, O_REPO_AT };
    static const struct option opts[] = {
        {"foreground", no_argument, NULL, 'f'},
        {"allow-other", no_argument, NULL, O_ALLOW},
        {"repo-json", required_argument, NULL, O_JSON},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"repo", required_argument, NULL, O_REPO},
        {"repo-at", required_argument, NULL, O_REPO_AT},
        {"store", required_argument, NULL, O_STORE},
        {"store-size", required_argument, NULL, O_STORE_SIZE},
        {"token", required_argument, NULL, O_TOKEN},
        {"cacert", required_argument, NULL, O_CACERT},
        {"offline", no_argument, NULL, O_OFFLINE},
        {"refs-ttl", required_argument, NULL, O_REFS_TTL},
        {"no-passthrough", no_argument, NULL, O_NO_PT},
        {"read-ahead", required_argument, NULL, O_READAHEAD},
        {"http", required_argument, NULL, O_HTTP},
        {"http-token", required_argument, NULL, O_HTTP_TOKEN},
        {"http-token-file", required_argument, NULL, O_HTTP_TOKEN_FILE},
        {"http-host", required_argument, NULL, O_HTTP_HOST},
        {"metrics", required_argument, NULL, O_METRICS},
        ZF_P2P_LONGOPTS(O_P2P),
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static char *token_copy;      /* reachable for the process's life */
    static char *http_token_copy; /* reachable for the process's life */
    zf_opts *o = &a->o;
    int c, li = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fdhvq", opts, &li)) != -1) {
        switch (c) {
        case 'f': a->foreground = 1; break;
        case 'v': zf_log_level = zf_log_level < ZF_LOG_DEBUG ? zf_log_level + 1 : ZF_LOG_DEBUG; break;
        case 'q': zf_log_level = ZF_LOG_WARN; break;
        case O_LOGLEVEL:
            if ((zf_log_level = zf_log_parse_level(optarg)) < 0) {
                fprintf(stderr, "zestfs: --log-level %s: not err, warn, info or debug\n", optarg);
                return 2;
            }
            break;
        case O_ALLOW: a->allow_other = 1; break;
        case 'd': a->debug = 1; break;
        case O_JSON:
            if (a->njson == 64) {
                fprintf(stderr, "zestfs: at most 64 --repo-json\n");
                return 2;
            }
            a->jsons[a->njson++] = optarg;
            break;
        case O_ENDPOINT: a->endpoint = optarg; break;
        case O_REPO:
            if (o->nrepos == 255) { /* one kept for --repo-at */
                fprintf(stderr, "zestfs: at most 255 --repo\n");
                return 2;
            }
            a->repos[o->nrepos++] = optarg;
            break;
        case O_REPO_AT: a->repo_at = optarg; break;
        case O_STORE: a->store_opt = optarg; break;
        case O_STORE_SIZE:
            if (zf_parse_size(optarg, &o->store_size) != 0 || o->store_size == 0) {
                fprintf(stderr, "zestfs: --store-size %s: not a size\n", optarg);
                return 2;
            }
            a->size_set = true;
            break;
        case O_TOKEN:
            /* keep a copy; blank the argument so /proc/PID/cmdline and ps
             * do not show the token (HF_TOKEN or the token file are better) */
            free(token_copy);
            a->token_opt = token_copy = strdup(optarg);
            memset(optarg, '*', strlen(optarg));
            break;
        case O_CACERT: o->cacert = optarg; break;
        case O_OFFLINE: o->offline = true; break;
        case O_REFS_TTL: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v > 86400u * 365) {
                fprintf(stderr, "zestfs: --refs-ttl %s: not a number of seconds\n", optarg);
                return 2;
            }
            a->refs_ttl = (unsigned)v;
            break;
        }
        case O_NO_PT: a->passthrough = false; break;
        case O_READAHEAD: {
            uint64_t v;
            if (zf_parse_size(optarg, &v) != 0 || v > (1ull << 30)) {
                fprintf(stderr, "zestfs: --read-ahead %s: not a size\n", optarg);
                return 2;
            }
            a->readahead_kb = (int)(v / 1024);
            break;
        }
        case O_HTTP: a->http_opt = optarg; break;
        case O_HTTP_TOKEN:
        case O_HTTP_TOKEN_FILE:
            /* as --token: a copy, the argument blanked (ps, /proc/PID/cmdline) */
            free(http_token_copy);
            http_token_copy = c == O_HTTP_TOKEN ? strdup(optarg) : read_token_file(optarg);
            if (c == O_HTTP_TOKEN)
                memset(optarg, '*', strlen(optarg));
            if (!http_token_copy || !http_token_copy[0]) {
                fprintf(stderr, "zestfs: --%s: no token\n", opts[li].name);
                return 2;
            }
            a->http_token = http_token_copy;
            break;
        case O_HTTP_HOST:
            if (a->nhttp_hosts == 16) {
                fprintf(stderr, "zestfs: at most 16 --http-host\n");
                return 2;
            }
            a->http_hosts[a->nhttp_hosts++] = optarg;
            break;
        case O_METRICS: a->metrics_opt = optarg; break;
        case O_P2P:
            if (zf_p2p_opt(&a->po, opts[li].name, optarg) < 0)
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    a->mnt = argv[optind];
    if (a->repo_at) { /* resolved and presented like a --repo; the root shows it */
        if (zf_at_parse(a->repo_at, &a->at_folder, &a->at_rev) != 0) {
            fprintf(stderr, "zestfs: --repo-at %s: not [datasets/]org/name[@rev]\n", a->repo_at);
            return 2;
        }
        a->repos[o->nrepos++] = a->repo_at;
    }
    const char *ht_env = getenv("ZESTFS_HTTP_TOKEN");
    if (!a->http_token && ht_env && ht_env[0])
        a->http_token = http_token_copy = strdup(ht_env);
    return MOUNT_GO_ON;
}

/* The token, the store (flock'd: one zestfs per store), the mountpoint's
 * directory and the file system state.  A repo-at mount whose store is
 * held asks the zestfs holding it to serve the mountpoint (view.h). */
static int mount_store(zf_mount *m, mount_args *a)
{
    zf_opts *o = &a->o;
    if (!(a->ep = zf_endpoint(a->endpoint)))
        return 2;
    zf_log_init();
    a->token = zf_find_token(a->token_opt);
    zf_log_secret(a->token);
    zf_log_secret(a->http_token);
    a->store_dir = a->store_opt ? strdup(a->store_opt) : zf_default_store();
    if (!a->store_dir) {
        fprintf(stderr, "zestfs: no --store and no $HOME\n");
        return 1;
    }
    o->endpoint = a->ep;
    o->token = a->token;
    o->store_dir = a->store_dir;
    a->po.state_dir = a->store_dir;
    if (o->offline)
        a->po.disabled = true;
    /* libuv's pool does store reads, decoding and hashing: one thread per core */
    if (!getenv("UV_THREADPOOL_SIZE")) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        char nb[16];
        snprintf(nb, sizeof nb, "%ld", ncpu < 4 ? 4 : ncpu > 64 ? 64 : ncpu);
        setenv("UV_THREADPOOL_SIZE", nb, 0);
    }
    a->rootfd = open(a->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (a->rootfd < 0) {
        fprintf(stderr, "zestfs: %s: %s\n", a->mnt, strerror(errno));
        return 1;
    }
    if (zf_fs_init(&m->fs, a->rootfd) != 0) {
        free(m->fs.nodes);
        return 1;
    }
    a->fs_init = true;
    int err = zc_open(a->store_dir, a->size_set ? o->store_size : UINT64_MAX / 2, &a->store);
    if (err == -EBUSY && a->repo_at)
        return zf_view_attach(a->store_dir, a->repo_at, a->mnt, a->allow_other);
    if (err) {
        fprintf(stderr, "zestfs: store %s: %s%s\n", a->store_dir, strerror(-err),
                err == -EBUSY ? " (another zestfs uses it)" : "");
        return 1;
    }
    if (!a->size_set) {
        o->store_size = zf_default_cap(a->store_dir);
        zc_set_cap(a->store, o->store_size);
    }
    return MOUNT_GO_ON;
}

/* The repo models (persisted ones, --repo from the Hub on a private loop,
 * --repo-json), the repo-at root, the listeners bound (errors before the
 * mount; the port is printed while stderr is still ours) and the swarm's
 * port reserved. */
static int mount_models(zf_mount *m, mount_args *a)
{
    if (zf_load_repos(&m->fs, &a->o, a->store) != 0)
        return 1;
    for (int i = 0; i < a->njson; i++) {
        int err = load_repo_json(&m->fs, a->jsons[i]);
        if (err) {
            fprintf(stderr, "zestfs: %s: %s\n", a->jsons[i], strerror(-err));
            return 1;
        }
    }
    if (a->repo_at) {
        m->fs.tree.at_folder = a->at_folder;
        m->fs.tree.at_rev = a->at_rev;
        if (!zv_at_commit(&m->fs.tree)) {
            fprintf(stderr, "zestfs: --repo-at %s: not presented\n", a->repo_at);
            return 1;
        }
    }
    static const char *const lname[2] = {"http", "metrics"};
    const char *lspec[2] = {a->http_opt, a->metrics_opt};
    zf_http **lh[2] = {&m->http, &m->metrics};
    for (int i = 0; i < 2; i++) {
        if (!lspec[i])
            continue;
        int err = zf_http_bind(lspec[i], lname[i], i == 1, a->http_token, lh[i]);
        if (err) {
            fprintf(stderr, "zestfs: --%s %s: %s\n", lname[i], lspec[i],
                    err == -EINVAL ? "not [ADDR:]PORT" : strerror(-err));
            return 1;
        }
        for (int k = 0; k < a->nhttp_hosts; k++)
            if (zf_http_allow_host(*lh[i], a->http_hosts[k]) != 0) {
                fprintf(stderr, "zestfs: --http-host %s: not a host name\n", a->http_hosts[k]);
                return 1;
            }
    }
    if (zf_p2p_reserve(&a->po) != 0)
        return 1;
    return MOUNT_GO_ON;
}

/* The FUSE session mounted (read-only for --repo-at), then daemon(). */
static int mount_session(zf_mount *m, mount_args *a)
{
    if (zf_registry_path(a->mnt, a->reg, sizeof a->reg, true) != 0)
        a->reg[0] = 0;
    char optstr[256], mr[32] = "";
    m->fs.max_read = splice_max_read();
    if (m->fs.max_read)
        snprintf(mr, sizeof mr, ",max_read=%u", m->fs.max_read);
    snprintf(optstr, sizeof optstr, "-ofsname=zestfs,subtype=zestfs,default_permissions%s%s%s",
             a->repo_at ? ",ro" : "", a->allow_other ? ",allow_other" : "", mr);
    char *fargv[] = {"zestfs", optstr, a->debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(a->debug ? 3 : 2, fargv);
    m->fs.se = fuse_session_new(&args, &zf_ops, sizeof zf_ops, &m->fs);
    fuse_opt_free_args(&args);
    if (!m->fs.se || fuse_session_mount(m->fs.se, a->mnt) != 0)
        return 1;
    a->mounted = true;
    if (a->readahead_kb < 0) /* 251 pages: a reply fits a 1 MiB pipe, as max_read would make it */
        a->readahead_kb = m->fs.max_read ? (int)(m->fs.max_read / 1024) : 1004;
    set_readahead(a->mnt, (unsigned)a->readahead_kb);
    m->fs.mountpoint = a->mnt;
    if (!a->foreground && daemon(0, 0) != 0) {
        fprintf(stderr, "zestfs: daemon: %s\n", strerror(errno));
        return 1;
    }
    int fd = fuse_session_fd(m->fs.se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return MOUNT_GO_ON;
}

/* A failure once the loop exists: what was started is stopped and the
 * loop run empty, so teardown frees a quiet state. */
static int run_fail(zf_mount *m)
{
    stop(m);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    return 1;
}

/* The loop: the read path's network clients, passthrough copies, the
 * swarm, repos on demand and the refs' TTL, the control socket, pins,
 * adoption, HTTP access; then FUSE requests until the unmount. */
static int mount_run(zf_mount *m, mount_args *a)
{
    zc_store *store = a->store;
    uv_loop_init(&m->loop);
    a->loop_init = true;
    uv_poll_init(&m->loop, &m->poll, fuse_session_fd(m->fs.se));
    uv_signal_init(&m->loop, &m->sigint);
    uv_signal_init(&m->loop, &m->sigterm);
    m->sigint.data = m->sigterm.data = m;
    m->poll.data = m;
    sched_threads(&m->loop);
    m->fs.loop = &m->loop;
    int err = zf_read_init(&m->fs, &a->o, store);
    if (err) {
        fprintf(stderr, "zestfs: read path: %s\n", strerror(-err));
        return run_fail(m);
    }
    err = zf_flat_init(&m->fs, store, a->store_dir, a->o.store_size, a->passthrough, &m->fs.flats);
    if (err)
        fprintf(stderr, "zestfs: whole copies for passthrough off: %s\n", strerror(-err));
    if ((err = zf_p2p_start(&m->loop, store, &a->po, &m->fs.p2p)) != 0)
        fprintf(stderr, "zestfs: peer swarm off: %s\n", strerror(-err)); /* CDN only */
    a->po.reserve_fd = -1; /* zf_p2p_start closed it */
    for (size_t i = 0; m->fs.p2p && i < m->fs.tree.nrepos; i++)
        zf_p2p_add_repo(m->fs.p2p, m->fs.tree.repos[i]);
    if (!a->o.offline && (err = zf_ondemand_init(&m->fs, store)) != 0) {
        fprintf(stderr, "zestfs: %s\n", strerror(-err));
        return run_fail(m);
    }
    if (a->repo_at) /* its root is a snapshot: no repos on demand there */
        m->fs.hooks.lookup_miss = NULL;
    zf_refs_ttl_start(&m->fs, a->refs_ttl); /* nothing offline (no on-demand context) */
    char sock[4200];
    snprintf(sock, sizeof sock, "%s/ctl.sock", a->store_dir);
    err = zf_ctl_start(&m->fs, store, sock, &m->ctl);
    if (err) /* the mount works without it; pull and status do not */
        fprintf(stderr, "zestfs: control socket %s: %s\n", sock, strerror(-err));
    else if (a->reg[0]) {
        FILE *rf = fopen(a->reg, "w");
        if (rf) {
            fprintf(rf, "%s\n", sock);
            fclose(rf);
        }
    }
    zf_pins_apply(&m->fs, store);
    /* earlier downloads under the mountpoint (an HF cache; not a repo-at root) */
    if (!a->repo_at && (err = zf_adopt_start(&m->fs, store)) != 0)
        fprintf(stderr, "zestfs: adopting earlier downloads: %s\n", strerror(-err));
    static const char *const lname[2] = {"http", "metrics"};
    zf_http *lh[2] = {m->http, m->metrics};
    for (int i = 0; i < 2; i++)
        if (lh[i] && (err = zf_http_start(lh[i], &m->fs, store)) != 0)
            fprintf(stderr, "zestfs: --%s: %s\n", lname[i], strerror(-err));
    uv_poll_start(&m->poll, UV_READABLE, on_fuse);
    uv_signal_start(&m->sigint, on_signal, SIGINT);
    uv_signal_start(&m->sigterm, on_signal, SIGTERM);

    uv_run(&m->loop, UV_RUN_DEFAULT);
    return m->exit_code;
}

/* Frees what the phases made, however far they got; rc is returned. */
static int mount_teardown(zf_mount *m, mount_args *a, int rc)
{
    if (m->fs.se) {
        if (a->mounted)
            fuse_session_unmount(m->fs.se);
        fuse_session_destroy(m->fs.se);
        m->fs.se = NULL;
    }
    if (a->reg[0] && a->loop_init)
        unlink(a->reg);
    zf_views_free(&m->fs);
    if (a->loop_init && uv_loop_close(&m->loop) != 0)
        zf_debug("zestfs: the loop still had handles at exit\n");
    free(m->buf.mem);
    zf_ondemand_free(&m->fs);
    zf_ctl_free(m->ctl);
    zf_http_free(m->http);
    zf_http_free(m->metrics);
    zf_read_free(&m->fs);
    zf_flat_free(m->fs.flats);
    zf_adopt_free(m->fs.adopt);
    m->fs.adopt = NULL;
    m->fs.flats = NULL;
    zf_p2p_free(m->fs.p2p);
    m->fs.p2p = NULL;
    if (a->po.reserve_fd >= 0)
        close(a->po.reserve_fd);
    if (a->store) {
        int err = zc_close(a->store);
        if (err)
            fprintf(stderr, "zestfs: closing the store: %s\n", strerror(-err));
    }
    if (a->fs_init)
        zf_fs_destroy(&m->fs);
    if (a->rootfd >= 0)
        close(a->rootfd);
    if (a->token) {
        memset(a->token, 0, strlen(a->token));
        free(a->token);
    }
    free(a->ep);
    free(a->store_dir);
    free(a->at_folder);
    free(a->at_rev);
    return rc;
}

int zestfs_cmd_mount(int argc, char **argv)
{
    static zf_mount m;
    mount_args a = {.refs_ttl = 60, .readahead_kb = -1, .passthrough = true, .rootfd = -1,
                    .po = {.reserve_fd = -1}};
    a.o.repos = a.repos;
    int rc = mount_options(argc, argv, &a);
    if (rc != MOUNT_GO_ON)
        return mount_teardown(&m, &a, rc);
    if ((rc = mount_store(&m, &a)) == MOUNT_GO_ON && (rc = mount_models(&m, &a)) == MOUNT_GO_ON &&
        (rc = mount_session(&m, &a)) == MOUNT_GO_ON)
        rc = mount_run(&m, &a);
    return mount_teardown(&m, &a, rc);
}
