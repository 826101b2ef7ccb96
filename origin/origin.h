/* origin.h — internal interfaces of zestfs-origin (see main.c for the design
 * notes and origin/README.md for the user documentation). */
#ifndef ZESTFS_ORIGIN_H
#define ZESTFS_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "xet.h"

/* ---- util.c -------------------------------------------------------------- */
int o_mkdirs(const char *path, int mode);          /* mkdir -p */
int o_mkdirs_parent(const char *path);             /* mkdir -p dirname(path) */
/* Atomic write: DATA/tmp/<random> then rename onto path (parents created). */
int o_write_atomic(const char *data_dir, const char *path, const void *buf, size_t len);
int o_read_file(const char *path, uint8_t **buf, size_t *len, size_t max);
cJSON *o_read_json(const char *path);
int o_write_json(const char *data_dir, const char *path, const cJSON *j);
void o_sha256(const void *p, size_t n, uint8_t out[32]);
void o_hmac_sha256(const uint8_t *key, size_t klen, const void *p, size_t n, uint8_t out[32]);
void o_hex(const uint8_t *p, size_t n, char *out);
bool o_is_hex(const char *s, size_t n);
/* git blob sha1 of content: sha1("blob <n>\0" + content). */
void o_git_blob_sha1(const void *p, size_t n, char out[41]);
/* LFS pointer text for (sha256 hex, size); returns its length. */
int o_lfs_pointer(const char *sha256hex, uint64_t size, char *out, size_t cap);
char *o_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int o_random(void *buf, size_t n);
bool o_valid_name(const char *s);                  /* repo ns/name component */
bool o_valid_relpath(const char *s);               /* repo-relative file path */
bool o_valid_branch(const char *s);
/* "models" -> "model", "datasets", "spaces"; NULL for anything else */
const char *o_type_from_plural(const char *p);

/* ---- store.c: the data directory ------------------------------------------ */
/*
 * DATA/secret                       32 random bytes, HMAC key (0600)
 * DATA/xorbs/<h>                    serialized xorb records (no footer)
 * DATA/xorbs/<h>.idx                "ZOXIDX01", u32 n, u32 0, n × {u32 rec_end,
 *                                   u32 ulen, 32-byte chunk hash}
 * DATA/shards/<sha256>.shard        shards written by ingest / uploaded
 * DATA/files/<h>.json               reconstruction: size, sha256, terms
 * DATA/blobs/<gitsha1>              regular (non-Xet) file contents
 * DATA/repos/<type>s/<ns>/<name>/   repo.json {private}, refs/<branch>,
 *                                   commits/<id>.json
 * DATA/tmp/                         temp files (same fs: atomic rename)
 */
typedef struct o_xorb_idx {
    uint32_t n;
    uint32_t *rec_end;      /* end offset of record i (serialized) */
    uint32_t *ulen;         /* decoded length of chunk i */
    xet_hash *hash;         /* chunk hashes */
} o_xorb_idx;

typedef struct o_term {
    xet_hash xorb;
    uint32_t start, end;    /* chunk range [start, end) */
    uint32_t unpacked;
} o_term;

typedef struct o_file {
    xet_hash hash;
    uint64_t size;
    char sha256[65];
    size_t nterms;
    o_term *terms;
} o_file;

typedef struct o_entry {      /* one file of a commit tree */
    char *path;
    uint64_t size;
    bool xet;
    char oid[41];             /* git blob sha1 (of the pointer for xet files) */
    char sha256[65];          /* xet files */
    char xet_hash[65];        /* xet files */
    uint32_t pointer_size;
    char last_commit[41];     /* commit that last changed this entry */
} o_entry;

typedef struct o_commit {
    char id[41];
    char parent[41];          /* "" for none */
    char *message;
    int64_t date;
    size_t n;
    o_entry *e;               /* sorted by path */
} o_commit;

typedef struct o_store {
    char *dir;
    uint8_t secret[32];
} o_store;

int o_store_open(o_store *s, const char *dir, bool create);
void o_store_close(o_store *s);
char *o_path(const o_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int o_xorb_idx_load(const o_store *s, const xet_hash *h, o_xorb_idx *x);
void o_xorb_idx_free(o_xorb_idx *x);
/* Store a serialized xorb whose records were already validated; writes the
 * bytes and the index.  idx arrays give the per-chunk data. */
int o_xorb_store(const o_store *s, const xet_hash *h, const uint8_t *buf, size_t len,
                 const o_xorb_idx *idx);
bool o_xorb_exists(const o_store *s, const xet_hash *h, uint64_t *size);

int o_file_load(const o_store *s, const xet_hash *h, o_file *f);
int o_file_save(const o_store *s, const o_file *f);
void o_file_free(o_file *f);
bool o_file_exists(const o_store *s, const xet_hash *h);
int o_file_index_sha(const o_store *s, const char *sha, const xet_hash *fh);
int o_file_by_sha(const o_store *s, const char *sha, xet_hash *fh);
/* SHA-256 of a stored file by decoding its chunks (each chunk hash checked) */
int o_file_sha256(const o_store *s, const o_file *f, char out[65]);

/* repo ids: type is "model" | "dataset" | "space"; id "ns/name" */
typedef struct o_repo {
    char type[16];
    char id[256];
    bool private_;
    char gated[16];     /* "" (not gated) or the Hub's mode: "manual", "auto" */
} o_repo;
int o_repo_load(const o_store *s, const char *type, const char *id, o_repo *r);
int o_repo_create(const o_store *s, const char *type, const char *id, bool priv);
/* Record the repo as gated ("manual", "auto") in repo.json: its repo info
 * says so (nothing else is enforced). */
int o_repo_set_gated(const o_store *s, const char *type, const char *id, const char *mode);
int o_ref_read(const o_store *s, const o_repo *r, const char *branch, char out[41]);
int o_ref_write(const o_store *s, const o_repo *r, const char *branch, const char *commit);
/* All branch names (malloc'd array of malloc'd strings). */
int o_refs_list(const o_store *s, const o_repo *r, char ***names, size_t *n);
/* Resolve a revision (branch or 40-hex commit id) to a commit. */
int o_resolve_rev(const o_store *s, const o_repo *r, const char *rev, o_commit *c);
int o_commit_load(const o_store *s, const o_repo *r, const char *id, o_commit *c);
/* Compute the id (sha1 of the canonical tree text, parent, date, message),
 * fill last_commit of changed entries, save it. */
int o_commit_save(const o_store *s, const o_repo *r, o_commit *c);
void o_commit_free(o_commit *c);
const o_entry *o_commit_find(const o_commit *c, const char *path);
/* Build a new commit on `branch` from entries (replacing those paths, or
 * replacing the whole tree when `replace_all`), move the branch.  If nothing
 * changed the branch stays and out_id gets the current head. */
int o_commit_entries(const o_store *s, const o_repo *r, const char *branch, o_entry *e, size_t n,
                     bool replace_all, const char *message, char out_id[41]);

/* ---- chunk index (dedup) ---------------------------------------------------- */
typedef struct o_chunk_loc {
    xet_hash chunk;
    uint32_t xorb;      /* index into o_cindex.xorbs */
    uint32_t index;     /* chunk index inside the xorb */
} o_chunk_loc;
typedef struct o_cindex {
    o_chunk_loc *tab;   /* open addressing, cap power of two */
    size_t cap, n;
    xet_hash *xorbs;
    size_t nxorbs, xcap;
    pthread_mutex_t mu;
} o_cindex;
int o_cindex_init(o_cindex *ci);
void o_cindex_free(o_cindex *ci);
int o_cindex_load(o_cindex *ci, const o_store *s);   /* scan every xorb index */
int o_cindex_add_xorb(o_cindex *ci, const xet_hash *xorb, const o_xorb_idx *idx);
/* returns xorb slot (and *index) or -ENOENT */
long o_cindex_find(o_cindex *ci, const xet_hash *chunk, uint32_t *index, xet_hash *xorb);

/* ---- ingest.c ------------------------------------------------------------- */
typedef struct o_ingest_opts {
    const char *type;        /* model | dataset | space */
    const char *repo;        /* ns/name */
    const char *branch;
    const char *message;
    bool private_;
    bool gated;              /* --gated: repo info "gated": "manual" */
    uint64_t xet_threshold;  /* files >= this are Xet (default 10 MB) */
    bool all_xet;
    int scheme;              /* chunk compression: -1 auto */
    bool quiet;
} o_ingest_opts;
int o_ingest(const o_store *s, const o_ingest_opts *o, const char *dir, char out_id[41]);
/* Hub rule: a path the default .gitattributes sends to LFS/Xet */
bool o_is_xet_name(const char *path);

/* ---- shard checks shared by upload and the commit command ------------------- */
int o_shard_accept(const o_store *s, o_cindex *ci, const uint8_t *buf, size_t len, char *err,
                   size_t errlen);

/* ---- server.c -------------------------------------------------------------- */
typedef struct o_serve_opts {
    const char *listen;      /* ADDR:PORT */
    const char *tls_cert, *tls_key;
    const char **tokens;
    size_t ntokens;
    bool auth_required;      /* every Hub call needs a valid token */
    const char *public_url;  /* base URL override (else from Host) */
    const char *port_file;   /* write the bound port here */
    /* fault knobs */
    unsigned latency_ms;
    uint64_t conn_bps, total_bps;
    unsigned fail_every;
    unsigned truncate_every;
    unsigned flip_every;
    unsigned token_ttl, url_ttl;
    unsigned threads;
    bool quiet;
    /* the real Hub's answers (hubreal.h): flag, value pairs */
    const char **hr_flags;
    size_t nhr_flags;
} o_serve_opts;
int o_serve(o_store *s, const o_serve_opts *o);
/* The server without o_serve's wait: started on o->listen, or with no
 * listening socket (no_listen; fuzzing) and connections handed in by
 * o_server_add (MHD_add_connection: the server owns fd from then on). */
typedef struct o_server o_server;
int o_server_start(o_store *s, const o_serve_opts *o, bool no_listen, o_server **out);
unsigned o_server_port(o_server *srv);
int o_server_add(o_server *srv, int fd, const struct sockaddr *addr, socklen_t len);
void o_server_stop(o_server *srv);

#endif
