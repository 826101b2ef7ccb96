/* memfs.c — the baseline of the mount benchmark: a bare FUSE file system
 * (low-level API, libfuse's multithreaded loop) presenting one read-only
 * file, /big, whose bytes live in memory.  Nothing is fetched, verified or
 * stored: the distance between it and zestfs reading from its store is what
 * zestfs's read path costs.
 *
 *   memfs MOUNTPOINT SOURCE_FILE     (loads SOURCE_FILE into memory; -f implied)
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *data;
static size_t size;

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == 1) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)size;
    }
}

static void op_init(void *ud, struct fuse_conn_info *conn)
{
    conn->max_write = 1u << 20;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (parent != 1 || strcmp(name, "big") != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e = {.ino = 2, .attr_timeout = 60, .entry_timeout = 60};
    fill_attr(2, &e.attr);
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    if (ino != 1 && ino != 2) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_attr(ino, &st);
    fuse_reply_attr(req, &st, 60);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != 2) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t n, off_t off, struct fuse_file_info *fi)
{
    if ((size_t)off >= size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (n > size - (size_t)off)
        n = size - (size_t)off;
    fuse_reply_buf(req, data + off, n);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init, .lookup = op_lookup, .getattr = op_getattr, .open = op_open, .read = op_read,
};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: memfs MOUNTPOINT SOURCE_FILE\n");
        return 2;
    }
    int fd = open(argv[2], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !(data = malloc((size_t)st.st_size + 1))) {
        perror(argv[2]);
        return 1;
    }
    size = (size_t)st.st_size;
    for (size_t got = 0; got < size;) {
        ssize_t r = read(fd, data + got, size - got);
        if (r <= 0) {
            perror("read");
            return 1;
        }
        got += (size_t)r;
    }
    close(fd);
    char *fargv[] = {"memfs", "-ofsname=memfs,subtype=memfs", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(2, fargv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[1]) != 0)
        return 1;
    struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 10};
    int rc = fuse_session_loop_mt(se, &cfg);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    free(data);
    return rc ? 1 : 0;
}
