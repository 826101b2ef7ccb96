/* seed.c — `zestfs seed --store DIR [peer options]`: serve a store to the
 * peer swarm without mounting (a cluster's seed box).
 *
 * The repo models persisted in the store ("repo/<type>/<id>", written by
 * mounts and pulls) say which swarms to join: those whose stored visibility
 * verdict is public, plus --seed-private ones (fs/p2p.c); nothing is fetched
 * (the Hub is not asked: offline load).  The peer node (fs/p2p.c) serves what the store
 * holds, announces it, and builds missing manifests at start.  SIGINT or
 * SIGTERM: close the node, print what was served, exit 0.
 *
 * --adopt DIR: DIR is a plain HF cache (not mounted).  Each repo folder in
 * it is resolved on the Hub (--endpoint, the token) like a mount's --repo,
 * and its earlier downloads are adopted into the store (adopt.c: verified,
 * imported, announced), then seeded with the rest. */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adopt.h"
#include "cli.h"
#include "p2p.h"
#include "hubload.h"
#include "ops.h"
#include "options.h"
#include "read.h"
#include "zfs.h"

typedef struct seed {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    zf_p2p *p2p;
    zf_p2p_stats last;
    zf_fs *fs;
    bool reading;
} seed;

static void on_signal(uv_signal_t *s, int signum)
{
    seed *sd = s->data;
    (void)signum;
    zf_p2p_get_stats(sd->p2p, &sd->last);
    zf_adopt_stop(sd->fs->adopt);
    if (sd->reading)
        zf_read_stop(sd->fs);
    zf_p2p_stop(sd->p2p);
    uv_close((uv_handle_t *)&sd->sigint, NULL);
    uv_close((uv_handle_t *)&sd->sigterm, NULL);
}

static void seed_usage(FILE *f)
{
    fprintf(f,
            "usage: zestfs seed [options]\n"
            "  serve a store's xorbs to the peer swarm without mounting; joins the swarms of\n"
            "  the repos persisted in the store (by mounts and pulls)\n"
            "      --store DIR         the chunk store (default ~/.cache/zestfs); not in use\n"
            "      --token TOKEN       ignored: a token changes nothing; only repos whose\n"
            "                          stored verdict is public (the Hub's repo info, asked\n"
            "                          without a token when a mount or pull resolved them)\n"
            "                          are served, plus --seed-private ones\n"
            "      --adopt DIR         DIR is an HF cache: resolve its repos on the Hub,\n"
            "                          verify its earlier downloads (Xet hash), import them\n"
            "                          into the store and seed them too\n"
            "      --endpoint URL      the Hub for --adopt (default $HF_ENDPOINT or\n"
            "                          https://huggingface.co)\n"
            "%s",
            zf_p2p_usage);
}

int zestfs_cmd_seed(int argc, char **argv)
{
    enum { O_STORE = 256, O_TOKEN, O_P2P, O_ADOPT, O_EP };
    static const struct option opts[] = {
        {"store", required_argument, NULL, O_STORE},
        {"token", required_argument, NULL, O_TOKEN},
        {"adopt", required_argument, NULL, O_ADOPT},
        {"endpoint", required_argument, NULL, O_EP},
        ZF_P2P_LONGOPTS(O_P2P),
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *store_opt = NULL, *token_opt = NULL, *adopt_dir = NULL, *ep_opt = NULL;
    zf_p2p_opts po = {.reserve_fd = -1};
    int c, li = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        switch (c) {
        case O_STORE: store_opt = optarg; break;
        case O_TOKEN: token_opt = optarg; break;
        case O_ADOPT: adopt_dir = optarg; break;
        case O_EP: ep_opt = optarg; break;
        case O_P2P:
            if (zf_p2p_opt(&po, opts[li].name, optarg) < 0)
                return 2;
            break;
        case 'h': seed_usage(stdout); return 0;
        default: seed_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        seed_usage(stderr);
        return 2;
    }
    (void)token_opt; /* accepted as before; what is served is each repo's stored verdict */
    char *store_dir = store_opt ? strdup(store_opt) : zf_default_store();
    if (!store_dir) {
        fprintf(stderr, "zestfs seed: no --store and no $HOME\n");
        return 1;
    }
    zc_store *store = NULL;
    int err = zc_open(store_dir, UINT64_MAX / 2, &store);
    if (err) {
        fprintf(stderr, "zestfs seed: store %s: %s%s\n", store_dir, strerror(-err),
                err == -EBUSY ? " (another zestfs uses it)" : "");
        free(store_dir);
        return 1;
    }
    zc_set_cap(store, zf_default_cap(store_dir));
    po.state_dir = store_dir;
    zf_fs fs;
    zf_opts o = {.endpoint = "http://offline.invalid", .store_dir = store_dir, .offline = true};
    /* --adopt: the cache's repo folders become --repo specs, resolved online */
    int rootfd = -1;
    char *ep = NULL, *token = NULL, *specs[256];
    const char *cspecs[256];
    size_t nspecs = 0;
    if (adopt_dir) {
        DIR *d = opendir(adopt_dir);
        rootfd = open(adopt_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        ep = zf_endpoint(ep_opt);
        token = zf_find_token(token_opt);
        struct dirent *de;
        while (d && ep && (de = readdir(d)) != NULL && nspecs < 256) {
            enum zf_repo_type t;
            char *id = NULL;
            if (de->d_name[0] == '.' || zf_repo_parse_folder(de->d_name, &t, &id) != 0)
                continue;
            size_t l = strlen(id) + 16;
            if ((specs[nspecs] = malloc(l)) != NULL) {
                snprintf(specs[nspecs], l, "%s/%s", zf_type_plural(t), id);
                cspecs[nspecs] = specs[nspecs];
                nspecs++;
            }
            free(id);
        }
        if (d)
            closedir(d);
        if (!d || rootfd < 0 || !ep) {
            fprintf(stderr, "zestfs seed: --adopt %s: %s\n", adopt_dir,
                    ep ? strerror(errno) : "bad --endpoint");
            err = -EINVAL;
        }
        o = (zf_opts){.endpoint = ep, .token = token, .store_dir = store_dir, .repos = cspecs,
                      .nrepos = nspecs};
    }
    if (err || zf_fs_init(&fs, rootfd) != 0 || zf_load_repos(&fs, &o, store) != 0) {
        zc_close(store);
        free(store_dir);
        if (rootfd >= 0)
            close(rootfd);
        for (size_t i = 0; i < nspecs; i++)
            free(specs[i]);
        free(ep);
        free(token);
        return 1;
    }
    if (zf_p2p_reserve(&po) != 0) {
        zf_fs_destroy(&fs);
        zc_close(store);
        free(store_dir);
        return 1;
    }
    static seed sd;
    uv_loop_init(&sd.loop);
    err = zf_p2p_start(&sd.loop, store, &po, &sd.p2p);
    if (err || !sd.p2p) {
        fprintf(stderr, "zestfs seed: %s\n", err ? strerror(-err) : "peer swarm disabled");
        uv_loop_close(&sd.loop);
        zf_fs_destroy(&fs);
        zc_close(store);
        free(store_dir);
        return 1;
    }
    size_t nserved = 0;
    for (size_t i = 0; i < fs.tree.nrepos; i++) {
        const zf_repo *r = fs.tree.repos[i];
        zf_p2p_add_repo(sd.p2p, r);
        bool served = zf_p2p_repo_served(sd.p2p, zf_p2p_type_name(r->type), r->id);
        nserved += served;
        if (!served)
            fprintf(stderr, "zestfs seed: %s/%s: %s: not served%s\n", zf_type_plural(r->type), r->id,
                    zf_vis_name(r->vis),
                    r->vis == ZF_VIS_UNKNOWN ? " (resolve it once online: zestfs pull)" : "");
    }
    fprintf(stderr, "zestfs seed: %zu repos from %s, %zu served\n", fs.tree.nrepos, store_dir,
            nserved);
    sd.fs = &fs;
    if (adopt_dir) {
        fs.loop = &sd.loop;
        fs.p2p = sd.p2p; /* adopted xorbs are announced on their repos' swarms */
        if ((err = zf_read_init(&fs, &o, store)) == 0) {
            sd.reading = true;
            err = zf_adopt_start(&fs, store);
        }
        if (err)
            fprintf(stderr, "zestfs seed: --adopt %s: %s\n", adopt_dir, strerror(-err));
    }
    uv_signal_init(&sd.loop, &sd.sigint);
    uv_signal_init(&sd.loop, &sd.sigterm);
    sd.sigint.data = sd.sigterm.data = &sd;
    uv_signal_start(&sd.sigint, on_signal, SIGINT);
    uv_signal_start(&sd.sigterm, on_signal, SIGTERM);
    uv_run(&sd.loop, UV_RUN_DEFAULT);
    uv_loop_close(&sd.loop);
    fprintf(stderr,
            "zestfs seed: served %" PRIu64 " chunk bytes (%" PRIu64 " requests, %" PRIu64
            " refused), %" PRIu64 " manifests built, %" PRIu64 " peers banned\n",
            sd.last.node.data_up, sd.last.node.requests_served, sd.last.node.requests_refused,
            sd.last.manifests_built, sd.last.node.bans);
    zf_p2p_free(sd.p2p);
    if (sd.reading)
        zf_read_free(&fs);
    zf_adopt_free(fs.adopt);
    fs.adopt = NULL;
    fs.p2p = NULL;
    zf_fs_destroy(&fs);
    if (rootfd >= 0)
        close(rootfd);
    for (size_t i = 0; i < nspecs; i++)
        free(specs[i]);
    free(ep);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    err = zc_close(store);
    free(store_dir);
    return err ? 1 : 0;
}
