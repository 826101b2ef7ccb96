/* zfs.h — what every FUSE file of the mount (fs/) needs: the filesystem
 * state (zf_fs) shared by the FUSE operations (ops.c), the session driver
 * (mount.c) and the modules behind zf_fs_hooks, and the mount options.
 * Each module's API is in its own header beside it (read.h for fs/read/,
 * flat.h, hubload.h, ondemand.h, admin.h, evict.h, ctl.h, httpd.h, ops.h,
 * present.h, options.h, ctlwire.h, pull.h, cachedel.h, view.h).  Everything here is
 * owned by the loop thread. */
#ifndef ZESTFS_FS_ZFS_H
#define ZESTFS_FS_ZFS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "vtree.h"

struct zf_node;
struct zf_fs;
struct rd_ctx;   /* the read path's state (read/) */
struct od_ctx;   /* repos and revisions on demand (ondemand.c) */

/* The one seam from the FUSE operations (ops.c) up into the modules that
 * serve them: each module fills its members when it starts and clears them
 * when it goes, and ops.c reaches those modules through here only.  A NULL
 * member: that service is absent. */
typedef struct zf_fs_hooks {
    /* blob reads (read/, zf_read_init); NULL: blob reads fail with EIO */
    void (*read_blob)(struct zf_fs *fs, fuse_req_t req, const zv_ent *e, size_t size, off_t off);
    /* open/release of a virtual blob (read/: prefetch at open); NULL: none */
    void *(*blob_opened)(struct zf_fs *fs, const zv_ent *e);
    void (*blob_released)(struct zf_fs *fs, void *token);
    /* a repo about to be read (read/: its Xet read tokens fetched now) */
    void (*warm_repo)(struct zf_fs *fs, const zf_repo *r);
    /* a lookup that found nothing (hubload.c, zf_ondemand_init), at the
     * root, or inside a presented repo (path relative to the root): true
     * when it took the request (answered later with zf_lookup_reply) */
    bool (*lookup_miss)(struct zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
    bool (*lookup_rev)(struct zf_fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
                       const char *path);
} zf_fs_hooks;

typedef struct zf_fs {
    int rootfd;                 /* O_PATH handle on the mountpoint from before the mount */
    zv_tree tree;               /* presented repos */
    struct fuse_session *se;
    uv_loop_t *loop;
    uid_t uid;                  /* owner of the virtual entries */
    gid_t gid;
    /* inode table: open hashing on ino */
    struct zf_node **nodes;
    size_t nbuckets, nnodes;
    zf_fs_hooks hooks;          /* the modules above the FUSE operations */
    struct rd_ctx *read_ctx;    /* read/ (zf_read_init); NULL: none */
    struct od_ctx *ondemand;    /* hubload.c (zf_ondemand_init); NULL: none */
    /* models replaced while mounted: open handles and reads may still point
     * into them, so they live until zf_fs_destroy */
    zf_repo **retired;
    size_t nretired;
    const char *mountpoint;     /* as given; NULL when not mounted (pull, seed) */
    struct zf_p2p *p2p;         /* the peer swarm (p2p.h); NULL: CDN only */
    unsigned max_read;          /* largest read request (0: the kernel's, 1 MiB) */
    struct zf_flats *flats;     /* whole copies for passthrough (flat.c); NULL: none */
    uint64_t cur_unique;        /* the FUSE request being dispatched (flat.c) */
    uint64_t blob_read_ms;      /* loop ms of the last FUSE read of a blob (ops.c; a flat's
                                 * build waits for a quiet spell, flat.c) */
    /* open file handles (ops.c): the kernel drops RELEASEs still queued
     * when the mount goes away, so zf_fs_destroy frees what is left */
    struct zf_handle *handles;
    zc_store *store;            /* where ref writes are persisted (set by zf_load_repos) */
    struct zf_refq *refq;       /* ref models being persisted (ops.c), oldest first */
    char **kept_refs;           /* real refs/<rev> files taken into the model at startup:
                                 * kept as they are, hidden from the overlay (ops.c) */
    size_t nkept_refs;
    struct zf_adopt *adopt;     /* earlier downloads being adopted (adopt.h); NULL: none */
    struct zf_dels *dels;       /* blobs of revisions deleted through the tree, visible
                                 * until unlinked (cachedel.c); NULL: none */
    struct zf_views *views;     /* repo-at mounts attached to this one (view.h); NULL: none */
    struct zf_tokseed *tokseeds; /* Xet read tokens asked at startup (hubload.h), until
                                  * the read path's hub takes them; secrets */
} zf_fs;

/* Mount options (mount.c parses them; hubload.c and read.c use them). */
typedef struct zf_opts {
    const char *endpoint;       /* no trailing '/' */
    const char *token;          /* Hub token; NULL: anonymous */
    const char *cacert;         /* PEM bundle; NULL: the system's */
    const char *store_dir;
    uint64_t store_size;
    bool offline;               /* never touch the network */
    size_t nrepos;
    const char **repos;         /* "[models/|datasets/|spaces/]org/name[@rev]" */
} zf_opts;


#endif
