/* pull.c — the pull engine (pull.h): make every file of a repo revision
 * (or those matching a glob) stored.  The command (`zestfs pull`: options,
 * progress, the control socket client, seeding afterwards) is pull_cli.c.
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
 * and each file's bytes are rotated by a random offset (each file its own;
 * in 64 MiB steps, in 8 MiB steps for a file under 128 MiB, where 64 MiB
 * steps would start every node at 0), so nodes pulling one model at once
 * fetch different parts from the CDN first and trade them (plus PENDING,
 * fs/read/source.c), instead of all asking the CDN for the same bytes.
 * Resolving the revision joins its
 * swarm (zf_fs_add_repo) and dials the static peers; zf_pull_wait_peers
 * holds the first fill until they are connected (bounded), so the first
 * fetches already see what the peers hold.
 * Bytes by source: the read path's bytes_by_src (peer, CDN) at the start
 * is kept; each stat carries what was fetched since. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "flat.h"
#include "hubload.h"
#include "log.h"
#include "p2p.h"
#include "pull.h"
#include "read.h"
#include "zfs.h"

#define PULL_FILES 4
#define ROTATE_STEP (64ull << 20) /* a file's bytes are rotated in these steps */
#define ROTATE_SMALL (8ull << 20) /* ... a file under 2 steps in these (a read window) */
#define WAIT_TICK_MS 50           /* zf_pull_wait_peers polls the peer count */

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
    uint64_t src0[ZF_NSRC];    /* the read path's bytes_by_src at the start */
    unsigned wait_n, wait_ms;  /* zf_pull_wait_peers */
    uv_timer_t wait;           /* polls the peer count (wait_on: initialised) */
    bool wait_on;
    uint64_t wait_t0;
};

/* What the read path fetched since the pull started, by source. */
static void src_stat(zf_pull *p)
{
    const zf_metrics *m = zf_read_metrics(p->fs);
    if (!m)
        return;
    p->st.peer_bytes = m->bytes_by_src[ZF_SRC_PEER] - p->src0[ZF_SRC_PEER];
    p->st.cdn_bytes = m->bytes_by_src[ZF_SRC_CDN] - p->src0[ZF_SRC_CDN];
}

static void wait_closed(uv_handle_t *h)
{
    free(h->data);
}

static void pull_end(zf_pull *p)
{
    if (p->ended)
        return;
    p->ended = true;
    if (!p->st.err && p->cancelled)
        p->st.err = -ECANCELED;
    src_stat(p);
    p->cb(p->ud, &p->st, true);
    for (size_t i = 0; i < p->ninc; i++)
        free(p->inc[i]);
    free(p->inc);
    free(p->sel);
    if (p->wait_on) /* freed by the close callback */
        uv_close((uv_handle_t *)&p->wait, wait_closed);
    else
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
        src_stat(p);
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
    src_stat(p);
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
        uint64_t step = file->size >= 2 * ROTATE_STEP ? ROTATE_STEP : ROTATE_SMALL;
        uint64_t steps = file->size / step;
        if (p->rnd && steps > 0) { /* [r, size) then [0, r) */
            uint64_t h = p->rnd ^ (p->next * 0x9e3779b97f4a7c15ull); /* each file its own */
            h ^= h >> 31;
            h *= 0xbf58476d1ce4e5b9ull;
            h ^= h >> 29;
            uint64_t r = (h % (steps + 1)) * step;
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

/* zf_pull_wait_peers: the first fills start once n peers are connected,
 * or max_ms after the resolve, or at a cancel. */
static void wait_tick(uv_timer_t *t)
{
    zf_pull *p = t->data;
    zf_p2p_stats ps;
    zf_p2p_get_stats(p->fs->p2p, &ps);
    if (!p->cancelled && ps.node.peers < p->wait_n &&
        uv_now(p->fs->loop) - p->wait_t0 < p->wait_ms)
        return;
    uv_timer_stop(t);
    zf_debug("zestfs: pull: %u peers connected after %" PRIu64 " ms: the fills start\n",
             ps.node.peers, uv_now(p->fs->loop) - p->wait_t0);
    p->wait_n = 0;
    pull_next(p); /* at a cancel: ends the pull */
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
    if (p->wait_n && p->fs->p2p && !p->cancelled && uv_timer_init(p->fs->loop, &p->wait) == 0) {
        p->wait_on = true;
        p->wait.data = p;
        p->wait_t0 = uv_now(p->fs->loop);
        uv_timer_start(&p->wait, wait_tick, 0, WAIT_TICK_MS);
        return;
    }
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
    const zf_metrics *m = zf_read_metrics(fs);
    if (m)
        memcpy(p->src0, m->bytes_by_src, sizeof p->src0);
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

void zf_pull_wait_peers(zf_pull *p, unsigned n, unsigned max_ms)
{
    if (p && p->resolving) {
        p->wait_n = n;
        p->wait_ms = max_ms;
    }
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
