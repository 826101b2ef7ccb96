/* mount.c — `zestfs [options] MOUNTPOINT`: opens the mountpoint directory
 * (kept as the overlay's real side), mounts the FUSE session over it, and
 * runs everything on one libuv loop: the FUSE fd is polled with uv_poll_t and
 * requests are dispatched there; SIGINT/SIGTERM unmount cleanly; an external
 * `fusermount3 -u` ends the session the same way. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "zfs.h"

typedef struct zf_mount {
    zf_fs fs;
    uv_loop_t loop;
    uv_poll_t poll;
    uv_signal_t sigint, sigterm;
    struct fuse_buf buf;
    int exit_code;
} zf_mount;

static void stop(zf_mount *m)
{
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
    char *buf = malloc((size_t)n + 1);
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
    zf_repo **nr = realloc(fs->tree.repos, (fs->tree.nrepos + 1) * sizeof *nr);
    if (!nr) {
        zf_repo_free(r);
        return -ENOMEM;
    }
    fs->tree.repos = nr;
    fs->tree.repos[fs->tree.nrepos++] = r;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: zestfs [options] MOUNTPOINT\n"
               "  -f, --foreground        stay in the foreground\n"
               "      --allow-other       let other users access the mount\n"
               "      --repo-json FILE    present the repo described by FILE (repeatable)\n"
               "  -d, --debug             FUSE debug output\n");
}

int zestfs_cmd_mount(int argc, char **argv)
{
    static const struct option opts[] = {
        {"foreground", no_argument, NULL, 'f'},
        {"allow-other", no_argument, NULL, 'A'},
        {"repo-json", required_argument, NULL, 'J'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int foreground = 0, allow_other = 0, debug = 0;
    const char *jsons[64];
    int njson = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fdh", opts, NULL)) != -1) {
        switch (c) {
        case 'f': foreground = 1; break;
        case 'A': allow_other = 1; break;
        case 'd': debug = 1; break;
        case 'J':
            if (njson < 64)
                jsons[njson++] = optarg;
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

    static zf_mount m;
    int rootfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        fprintf(stderr, "zestfs: %s: %s\n", mnt, strerror(errno));
        return 1;
    }
    if (zf_fs_init(&m.fs, rootfd) != 0)
        return 1;
    for (int i = 0; i < njson; i++) {
        int err = load_repo_json(&m.fs, jsons[i]);
        if (err) {
            fprintf(stderr, "zestfs: %s: %s\n", jsons[i], strerror(-err));
            return 1;
        }
    }

    char optstr[256];
    snprintf(optstr, sizeof optstr, "-ofsname=zestfs,subtype=zestfs,default_permissions%s",
             allow_other ? ",allow_other" : "");
    char *fargv[] = {"zestfs", optstr, debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 3 : 2, fargv);
    m.fs.se = fuse_session_new(&args, &zf_ops, sizeof zf_ops, &m.fs);
    if (!m.fs.se)
        return 1;
    if (fuse_session_mount(m.fs.se, mnt) != 0) {
        fuse_session_destroy(m.fs.se);
        return 1;
    }
    if (!foreground && daemon(0, 0) != 0) {
        fprintf(stderr, "zestfs: daemon: %s\n", strerror(errno));
        fuse_session_unmount(m.fs.se);
        return 1;
    }
    int fd = fuse_session_fd(m.fs.se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    uv_loop_init(&m.loop);
    m.fs.loop = &m.loop;
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
    uv_loop_close(&m.loop);
    free(m.buf.mem);
    zf_fs_destroy(&m.fs);
    close(rootfd);
    return m.exit_code;
}
