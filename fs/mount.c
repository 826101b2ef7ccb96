/* mount.c — `zestfs [options] MOUNTPOINT`: opens the mountpoint directory
 * (kept as the overlay's real side), mounts the FUSE session over it, and
 * runs everything on one libuv loop: the FUSE fd is polled with uv_poll_t and
 * requests are dispatched there; SIGINT/SIGTERM unmount cleanly; an external
 * `fusermount3 -u` ends the session the same way.
 *
 * Startup order: options; the store (flock'd: one zestfs per store); the
 * repo models (persisted ones, then --repo from the Hub on a private loop,
 * then --repo-json); the FUSE mount; daemon(); then the mount's loop with
 * the read path's network clients.  Nothing created before daemon() runs
 * threads or keeps sockets. */
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

int zestfs_cmd_mount(int argc, char **argv)
{
    enum { O_ALLOW = 256, O_JSON, O_ENDPOINT, O_REPO, O_STORE, O_STORE_SIZE, O_TOKEN, O_CACERT,
           O_OFFLINE, O_READAHEAD, O_HTTP, O_HTTP_TOKEN, O_METRICS, O_P2P, O_LOGLEVEL, O_NO_PT,
           O_HTTP_HOST, O_HTTP_TOKEN_FILE, O_REFS_TTL };
    static const struct option opts[] = {
        {"foreground", no_argument, NULL, 'f'},
        {"allow-other", no_argument, NULL, O_ALLOW},
        {"repo-json", required_argument, NULL, O_JSON},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"repo", required_argument, NULL, O_REPO},
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
    int foreground = 0, allow_other = 0, debug = 0;
    unsigned refs_ttl = 60; /* --refs-ttl */
    int readahead_kb = -1; /* default: one largest request (see splice_max_read) */
    bool passthrough = true; /* --no-passthrough */
    const char *jsons[64], *repos[256];
    int njson = 0;
    const char *endpoint = NULL, *token_opt = NULL, *store_opt = NULL;
    static char *token_copy; /* reachable for the process's life */
    const char *http_opt = NULL, *http_token = NULL, *metrics_opt = NULL;
    static char *http_token_copy; /* reachable for the process's life */
    const char *http_hosts[16];
    int nhttp_hosts = 0;
    zf_opts o = {.repos = repos};
    bool size_set = false;
    zf_p2p_opts po = {.reserve_fd = -1};
    int c, li = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fdhvq", opts, &li)) != -1) {
        switch (c) {
        case 'f': foreground = 1; break;
        case 'v': zf_log_level = zf_log_level < ZF_LOG_DEBUG ? zf_log_level + 1 : ZF_LOG_DEBUG; break;
        case 'q': zf_log_level = ZF_LOG_WARN; break;
        case O_LOGLEVEL:
            if ((zf_log_level = zf_log_parse_level(optarg)) < 0) {
                fprintf(stderr, "zestfs: --log-level %s: not err, warn, info or debug\n", optarg);
                return 2;
            }
            break;
        case O_ALLOW: allow_other = 1; break;
        case 'd': debug = 1; break;
        case O_JSON:
            if (njson == 64) {
                fprintf(stderr, "zestfs: at most 64 --repo-json\n");
                return 2;
            }
            jsons[njson++] = optarg;
            break;
        case O_ENDPOINT: endpoint = optarg; break;
        case O_REPO:
            if (o.nrepos == 256) {
                fprintf(stderr, "zestfs: at most 256 --repo\n");
                return 2;
            }
            repos[o.nrepos++] = optarg;
            break;
        case O_STORE: store_opt = optarg; break;
        case O_STORE_SIZE:
            if (zf_parse_size(optarg, &o.store_size) != 0 || o.store_size == 0) {
                fprintf(stderr, "zestfs: --store-size %s: not a size\n", optarg);
                return 2;
            }
            size_set = true;
            break;
        case O_TOKEN:
            /* keep a copy; blank the argument so /proc/PID/cmdline and ps
             * do not show the token (HF_TOKEN or the token file are better) */
            free(token_copy);
            token_opt = token_copy = strdup(optarg);
            memset(optarg, '*', strlen(optarg));
            break;
        case O_CACERT: o.cacert = optarg; break;
        case O_OFFLINE: o.offline = true; break;
        case O_REFS_TTL: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v > 86400u * 365) {
                fprintf(stderr, "zestfs: --refs-ttl %s: not a number of seconds\n", optarg);
                return 2;
            }
            refs_ttl = (unsigned)v;
            break;
        }
        case O_NO_PT: passthrough = false; break;
        case O_READAHEAD: {
            uint64_t v;
            if (zf_parse_size(optarg, &v) != 0 || v > (1ull << 30)) {
                fprintf(stderr, "zestfs: --read-ahead %s: not a size\n", optarg);
                return 2;
            }
            readahead_kb = (int)(v / 1024);
            break;
        }
        case O_HTTP: http_opt = optarg; break;
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
            http_token = http_token_copy;
            break;
        case O_HTTP_HOST:
            if (nhttp_hosts == 16) {
                fprintf(stderr, "zestfs: at most 16 --http-host\n");
                return 2;
            }
            http_hosts[nhttp_hosts++] = optarg;
            break;
        case O_METRICS: metrics_opt = optarg; break;
        case O_P2P:
            if (zf_p2p_opt(&po, opts[li].name, optarg) < 0)
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
    const char *mnt = argv[optind];
    char *ep = zf_endpoint(endpoint);
    if (!ep)
        return 2;
    zf_log_init();
    char *token = zf_find_token(token_opt);
    zf_log_secret(token);
    const char *ht_env = getenv("ZESTFS_HTTP_TOKEN");
    if (!http_token && ht_env && ht_env[0])
        http_token = http_token_copy = strdup(ht_env);
    zf_log_secret(http_token);
    char *store_dir = store_opt ? strdup(store_opt) : zf_default_store();
    if (!store_dir) {
        fprintf(stderr, "zestfs: no --store and no $HOME\n");
        return 1;
    }
    o.endpoint = ep;
    o.token = token;
    o.store_dir = store_dir;
    po.state_dir = store_dir;
    if (o.offline)
        po.disabled = true;
    /* libuv's pool does store reads, decoding and hashing: one thread per core */
    if (!getenv("UV_THREADPOOL_SIZE")) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        char nb[16];
        snprintf(nb, sizeof nb, "%ld", ncpu < 4 ? 4 : ncpu > 64 ? 64 : ncpu);
        setenv("UV_THREADPOOL_SIZE", nb, 0);
    }

    static zf_mount m;
    int rootfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        fprintf(stderr, "zestfs: %s: %s\n", mnt, strerror(errno));
        return 1;
    }
    if (zf_fs_init(&m.fs, rootfd) != 0)
        return 1;
    zc_store *store = NULL;
    int err = zc_open(store_dir, size_set ? o.store_size : UINT64_MAX / 2, &store);
    if (err) {
        fprintf(stderr, "zestfs: store %s: %s%s\n", store_dir, strerror(-err),
                err == -EBUSY ? " (another zestfs uses it)" : "");
        return 1;
    }
    if (!size_set) {
        o.store_size = zf_default_cap(store_dir);
        zc_set_cap(store, o.store_size);
    }
    if (zf_load_repos(&m.fs, &o, store) != 0)
        return 1;
    for (int i = 0; i < njson; i++) {
        err = load_repo_json(&m.fs, jsons[i]);
        if (err) {
            fprintf(stderr, "zestfs: %s: %s\n", jsons[i], strerror(-err));
            return 1;
        }
    }

    /* listeners bound now (errors before the mount; the port is printed
     * while stderr is still ours), served after daemon() */
    static const char *const lname[2] = {"http", "metrics"};
    const char *lspec[2] = {http_opt, metrics_opt};
    zf_http **lh[2] = {&m.http, &m.metrics};
    for (int i = 0; i < 2; i++) {
        if (!lspec[i])
            continue;
        err = zf_http_bind(lspec[i], lname[i], i == 1, http_token, lh[i]);
        if (err) {
            fprintf(stderr, "zestfs: --%s %s: %s\n", lname[i], lspec[i],
                    err == -EINVAL ? "not [ADDR:]PORT" : strerror(-err));
            return 1;
        }
        for (int k = 0; k < nhttp_hosts; k++)
            if (zf_http_allow_host(*lh[i], http_hosts[k]) != 0) {
                fprintf(stderr, "zestfs: --http-host %s: not a host name\n", http_hosts[k]);
                return 1;
            }
    }

    if (zf_p2p_reserve(&po) != 0)
        return 1;

    char reg[4200];
    if (zf_registry_path(mnt, reg, sizeof reg, true) != 0)
        reg[0] = 0;
    char optstr[256], mr[32] = "";
    m.fs.max_read = splice_max_read();
    if (m.fs.max_read)
        snprintf(mr, sizeof mr, ",max_read=%u", m.fs.max_read);
    snprintf(optstr, sizeof optstr, "-ofsname=zestfs,subtype=zestfs,default_permissions%s%s",
             allow_other ? ",allow_other" : "", mr);
    char *fargv[] = {"zestfs", optstr, debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 3 : 2, fargv);
    m.fs.se = fuse_session_new(&args, &zf_ops, sizeof zf_ops, &m.fs);
    fuse_opt_free_args(&args);
    if (!m.fs.se)
        return 1;
    if (fuse_session_mount(m.fs.se, mnt) != 0) {
        fuse_session_destroy(m.fs.se);
        return 1;
    }
    if (readahead_kb < 0) /* 251 pages: a reply fits a 1 MiB pipe, as max_read would make it */
        readahead_kb = m.fs.max_read ? (int)(m.fs.max_read / 1024) : 1004;
    set_readahead(mnt, (unsigned)readahead_kb);
    m.fs.mountpoint = mnt;
    if (!foreground && daemon(0, 0) != 0) {
        fprintf(stderr, "zestfs: daemon: %s\n", strerror(errno));
        fuse_session_unmount(m.fs.se);
        return 1;
    }
    int fd = fuse_session_fd(m.fs.se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    uv_loop_init(&m.loop);
    sched_threads(&m.loop);
    m.fs.loop = &m.loop;
    err = zf_read_init(&m.fs, &o, store);
    if (err) {
        fprintf(stderr, "zestfs: read path: %s\n", strerror(-err));
        fuse_session_unmount(m.fs.se);
        return 1;
    }
    if ((err = zf_flat_init(&m.fs, store, store_dir, o.store_size, passthrough, &m.fs.flats)) != 0)
        fprintf(stderr, "zestfs: whole copies for passthrough off: %s\n", strerror(-err));
    if ((err = zf_p2p_start(&m.loop, store, &po, &m.fs.p2p)) != 0)
        fprintf(stderr, "zestfs: peer swarm off: %s\n", strerror(-err)); /* CDN only */
    for (size_t i = 0; m.fs.p2p && i < m.fs.tree.nrepos; i++)
        zf_p2p_add_repo(m.fs.p2p, m.fs.tree.repos[i]);
    if (!o.offline && (err = zf_ondemand_init(&m.fs, store)) != 0) {
        fprintf(stderr, "zestfs: %s\n", strerror(-err));
        fuse_session_unmount(m.fs.se);
        return 1;
    }
    zf_refs_ttl_start(&m.fs, refs_ttl); /* nothing offline (no on-demand context) */
    char sock[4200];
    snprintf(sock, sizeof sock, "%s/ctl.sock", store_dir);
    err = zf_ctl_start(&m.fs, store, sock, &m.ctl);
    if (err) /* the mount works without it; pull and status do not */
        fprintf(stderr, "zestfs: control socket %s: %s\n", sock, strerror(-err));
    else if (reg[0]) {
        FILE *rf = fopen(reg, "w");
        if (rf) {
            fprintf(rf, "%s\n", sock);
            fclose(rf);
        }
    }
    zf_pins_apply(&m.fs, store);
    if ((err = zf_adopt_start(&m.fs, store)) != 0) /* earlier downloads under the mountpoint */
        fprintf(stderr, "zestfs: adopting earlier downloads: %s\n", strerror(-err));
    for (int i = 0; i < 2; i++)
        if (*lh[i] && (err = zf_http_start(*lh[i], &m.fs, store)) != 0)
            fprintf(stderr, "zestfs: --%s: %s\n", lname[i], strerror(-err));
    uv_poll_init(&m.loop, &m.poll, fd);
    m.poll.data = &m;
    uv_poll_start(&m.poll, UV_READABLE, on_fuse);
    uv_signal_init(&m.loop, &m.sigint);
    uv_signal_init(&m.loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);

    uv_run(&m.loop, UV_RUN_DEFAULT);

    fuse_session_unmount(m.fs.se);
    fuse_session_destroy(m.fs.se);
    if (reg[0])
        unlink(reg);
    uv_loop_close(&m.loop);
    free(m.buf.mem);
    zf_ondemand_free(&m.fs);
    zf_ctl_free(m.ctl);
    zf_http_free(m.http);
    zf_http_free(m.metrics);
    zf_read_free(&m.fs);
    zf_flat_free(m.fs.flats);
    zf_adopt_free(m.fs.adopt);
    m.fs.adopt = NULL;
    m.fs.flats = NULL;
    zf_p2p_free(m.fs.p2p);
    m.fs.p2p = NULL;
    err = zc_close(store);
    if (err)
        fprintf(stderr, "zestfs: closing the store: %s\n", strerror(-err));
    zf_fs_destroy(&m.fs);
    close(rootfd);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    free(ep);
    free(store_dir);
    return m.exit_code;
}
