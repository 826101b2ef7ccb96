/* ingest.c — `zestfs-origin ingest`: a directory becomes a commit.
 *
 * Each file is classified as the Hub would store it (spec/hf-cache.md §1.4):
 * small text-ish files are regular git blobs (etag = git blob sha1); files of
 * 10 MB or more, files with a model/archive/binary extension from the Hub's
 * default .gitattributes, and files with a NUL byte in their first 8000
 * bytes are Xet files (etag = sha256, id = Xet file hash).
 *
 * Xet files are chunked with xet/ (mmap'd, so memory stays bounded by the
 * page cache, not the heap); chunks already known to the store (any xorb of
 * any repo or revision, via the chunk index) are referenced, new ones packed
 * into xorbs of at most 64 MiB / 8192 chunks that may span several files.
 * File records are written after every xorb they reference is on disk, the
 * commit after every file record: a crash leaves garbage, never a dangling
 * reference.
 */
#include "origin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static const char *xet_patterns[] = {
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet",
    "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "*.tar", "*.tar.*",
    "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*", "*.gguf", "*.ggml",
    "*.lz4", "*.mp3", "*.wav", "*.flac", "*.ogg", "*.png", "*.jpg", "*.jpeg", "*.webp",
    "*.mp4", "*.avi", "*.mkv", "*.tfrecord", "*.db", "*.llamafile", "*.nemo", "*.pdf",
};

bool o_is_xet_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof xet_patterns / sizeof *xet_patterns; i++)
        if (fnmatch(xet_patterns[i], base, 0) == 0)
            return true;
    return false;
}

/* ---- pending xorb (chunks not yet on disk) ------------------------------- */

typedef struct pend_term {
    long seq;           /* >= 0: session xorb sequence number not yet known */
    o_term t;
} pend_term;

typedef struct pend_file {
    o_file f;
    pend_term *terms;
    size_t nterms, cap;
} pend_file;

typedef struct ingest {
    const o_store *s;
    const o_ingest_opts *o;
    o_cindex ci;
    xet_xorb_writer w;
    long seq;                 /* sequence number of the xorb being built */
    xet_hash *done;           /* hashes of flushed session xorbs by seq */
    size_t ndone, done_cap;
    /* chunk hash -> index in w, for chunks of the open xorb */
    struct {
        xet_hash h;
        uint32_t idx;
        bool used;
    } * ptab;
    size_t pcap;
    pend_file *files;
    size_t nfiles, fcap;
    o_entry *entries;
    size_t nentries, ecap;
    uint64_t new_bytes, dedup_bytes, nxorbs;
} ingest;

static long ptab_find(ingest *g, const xet_hash *h)
{
    if (!g->ptab)
        return -1;
    size_t i;
    memcpy(&i, h->b, sizeof i);
    i &= g->pcap - 1;
    while (g->ptab[i].used) {
        if (xet_hash_eq(&g->ptab[i].h, h))
            return g->ptab[i].idx;
        i = (i + 1) & (g->pcap - 1);
    }
    return -1;
}

static void ptab_put(ingest *g, const xet_hash *h, uint32_t idx)
{
    size_t i;
    memcpy(&i, h->b, sizeof i);
    i &= g->pcap - 1;
    while (g->ptab[i].used)
        i = (i + 1) & (g->pcap - 1);
    g->ptab[i].h = *h;
    g->ptab[i].idx = idx;
    g->ptab[i].used = true;
}

static int flush_xorb(ingest *g)
{
    if (g->w.nchunks == 0)
        return 0;
    xet_hash h;
    xet_xorb_writer_hash(&g->w, &h);
    o_xorb_idx idx = {.n = (uint32_t)g->w.nchunks};
    idx.rec_end = g->w.rec_end;
    idx.ulen = malloc(idx.n * sizeof *idx.ulen);
    idx.hash = malloc(idx.n * sizeof *idx.hash);
    int e = -ENOMEM;
    if (idx.ulen && idx.hash) {
        for (uint32_t i = 0; i < idx.n; i++) {
            idx.ulen[i] = (uint32_t)g->w.chunks[i].len;
            idx.hash[i] = g->w.chunks[i].hash;
        }
        e = 0;
        if (!o_xorb_exists(g->s, &h, NULL))
            e = o_xorb_store(g->s, &h, g->w.buf, g->w.len, &idx);
        if (!e)
            e = o_cindex_add_xorb(&g->ci, &h, &idx);
    }
    free(idx.ulen);
    free(idx.hash);
    if (e)
        return e;
    if (g->ndone == g->done_cap) {
        g->done_cap = g->done_cap ? g->done_cap * 2 : 16;
        xet_hash *d = realloc(g->done, g->done_cap * sizeof *d);
        if (!d)
            return -ENOMEM;
        g->done = d;
    }
    g->done[g->ndone++] = h;
    g->nxorbs++;
    g->seq++;
    xet_xorb_writer_reset(&g->w);
    memset(g->ptab, 0, g->pcap * sizeof *g->ptab);
    return 0;
}

static int add_term(pend_file *pf, long seq, const xet_hash *xorb, uint32_t idx, uint32_t len)
{
    if (pf->nterms) {
        pend_term *t = &pf->terms[pf->nterms - 1];
        bool same = seq >= 0 ? t->seq == seq : (t->seq < 0 && xet_hash_eq(&t->t.xorb, xorb));
        if (same && t->t.end == idx && (uint64_t)t->t.unpacked + len <= UINT32_MAX) {
            t->t.end++;
            t->t.unpacked += len;
            return 0;
        }
    }
    if (pf->nterms == pf->cap) {
        pf->cap = pf->cap ? pf->cap * 2 : 16;
        pend_term *n = realloc(pf->terms, pf->cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        pf->terms = n;
    }
    pend_term *t = &pf->terms[pf->nterms++];
    memset(t, 0, sizeof *t);
    t->seq = seq;
    if (seq < 0)
        t->t.xorb = *xorb;
    t->t.start = idx;
    t->t.end = idx + 1;
    t->t.unpacked = len;
    return 0;
}

static int add_entry(ingest *g, const o_entry *e)
{
    if (g->nentries == g->ecap) {
        g->ecap = g->ecap ? g->ecap * 2 : 32;
        o_entry *n = realloc(g->entries, g->ecap * sizeof *n);
        if (!n)
            return -ENOMEM;
        g->entries = n;
    }
    g->entries[g->nentries++] = *e;
    return 0;
}

static int ingest_regular(ingest *g, const char *rel, const uint8_t *data, size_t n)
{
    o_entry e;
    memset(&e, 0, sizeof e);
    o_git_blob_sha1(data, n, e.oid);
    char *bp = o_path(g->s, "blobs/%s", e.oid);
    if (!bp)
        return -ENOMEM;
    struct stat st;
    int err = 0;
    if (stat(bp, &st) != 0)
        err = o_write_atomic(g->s->dir, bp, data, n);
    free(bp);
    if (err)
        return err;
    e.path = strdup(rel);
    e.size = n;
    if (!e.path)
        return -ENOMEM;
    return add_entry(g, &e);
}

static int ingest_xet(ingest *g, const char *rel, const uint8_t *data, size_t n)
{
    if (g->nfiles == g->fcap) {
        g->fcap = g->fcap ? g->fcap * 2 : 16;
        pend_file *nf = realloc(g->files, g->fcap * sizeof *nf);
        if (!nf)
            return -ENOMEM;
        g->files = nf;
    }
    pend_file *pf = &g->files[g->nfiles++];
    memset(pf, 0, sizeof *pf);
    pf->f.size = n;

    uint8_t sha[32];
    o_sha256(data, n, sha);
    o_hex(sha, 32, pf->f.sha256);

    uint64_t *bounds = NULL;
    long nc = n ? xet_chunk_buffer(data, n, &bounds) : 0;
    if (nc < 0)
        return (int)nc;
    xet_merkle *m = malloc(sizeof *m);
    if (!m) {
        free(bounds);
        return -ENOMEM;
    }
    xet_merkle_init(m);
    int err = 0;
    uint64_t off = 0;
    for (long i = 0; i < nc && !err; i++) {
        uint32_t len = (uint32_t)(bounds[i] - off);
        const uint8_t *cd = data + off;
        off = bounds[i];
        xet_hash ch;
        xet_chunk_hash(cd, len, &ch);
        xet_merkle_add(m, &ch, len);
        uint32_t idx;
        xet_hash xh;
        if (o_cindex_find(&g->ci, &ch, &idx, &xh) >= 0) {
            g->dedup_bytes += len;
            err = add_term(pf, -1, &xh, idx, len);
            continue;
        }
        long pi = ptab_find(g, &ch);
        if (pi >= 0) {
            g->dedup_bytes += len;
            err = add_term(pf, g->seq, NULL, (uint32_t)pi, len);
            continue;
        }
        long r = xet_xorb_writer_add(&g->w, cd, len, &ch);
        if (r == -E2BIG) {
            err = flush_xorb(g);
            if (err)
                break;
            r = xet_xorb_writer_add(&g->w, cd, len, &ch);
        }
        if (r < 0) {
            err = (int)r;
            break;
        }
        ptab_put(g, &ch, (uint32_t)r);
        g->new_bytes += len;
        err = add_term(pf, g->seq, NULL, (uint32_t)r, len);
    }
    free(bounds);
    xet_hash root;
    xet_merkle_final(m, &root, NULL);
    free(m);
    if (err)
        return err;
    xet_file_hash_from_root(&root, (uint64_t)nc, NULL, &pf->f.hash);

    o_entry e;
    memset(&e, 0, sizeof e);
    e.xet = true;
    e.size = n;
    memcpy(e.sha256, pf->f.sha256, 65);
    xet_hash_to_string(&pf->f.hash, e.xet_hash);
    char ptr[256];
    int pl = o_lfs_pointer(e.sha256, n, ptr, sizeof ptr);
    e.pointer_size = (uint32_t)pl;
    o_git_blob_sha1(ptr, (size_t)pl, e.oid);
    e.path = strdup(rel);
    if (!e.path)
        return -ENOMEM;
    return add_entry(g, &e);
}

static int ingest_one(ingest *g, const char *full, const char *rel)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *data = NULL;
    if (n) {
        data = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            int e = -errno;
            close(fd);
            return e;
        }
        madvise(data, n, MADV_SEQUENTIAL);
    }
    close(fd);
    bool xet = g->o->all_xet || n >= g->o->xet_threshold || o_is_xet_name(rel) ||
               (n && memchr(data, 0, n < 8000 ? n : 8000) != NULL);
    int e = xet ? ingest_xet(g, rel, data, n) : ingest_regular(g, rel, data ? data : (uint8_t *)"", n);
    if (n)
        munmap(data, n);
    if (!e && !g->o->quiet)
        fprintf(stderr, "  %-8s %12zu  %s\n", xet ? "xet" : "regular", n, rel);
    return e;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(ingest *g, const char *root, const char *rel)
{
    char *dp = rel[0] ? o_strdup_printf("%s/%s", root, rel) : strdup(root);
    if (!dp)
        return -ENOMEM;
    DIR *d = opendir(dp);
    if (!d) {
        int e = -errno;
        free(dp);
        return e;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int err = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".git"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                err = -ENOMEM;
                break;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            err = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !err; i++) {
        char *r2 = rel[0] ? o_strdup_printf("%s/%s", rel, names[i]) : strdup(names[i]);
        char *full = r2 ? o_strdup_printf("%s/%s", root, r2) : NULL;
        struct stat st;
        if (!full) {
            err = -ENOMEM;
        } else if (stat(full, &st) != 0) {
            err = -errno;
        } else if (S_ISDIR(st.st_mode)) {
            err = walk(g, root, r2);
        } else if (S_ISREG(st.st_mode)) {
            if (!o_valid_relpath(r2))
                err = -EINVAL;
            else
                err = ingest_one(g, full, r2);
        }
        if (err && !g->o->quiet)
            fprintf(stderr, "zestfs-origin: %s: %s\n", r2 ? r2 : names[i], strerror(-err));
        free(r2);
        free(full);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dp);
    return err;
}

int o_ingest(const o_store *s, const o_ingest_opts *o, const char *dir, char out_id[41])
{
    ingest g;
    memset(&g, 0, sizeof g);
    g.s = s;
    g.o = o;
    int err = o_cindex_init(&g.ci);
    if (err)
        return err;
    xet_xorb_writer_init(&g.w, o->scheme);
    g.pcap = 16384; /* > 2 × 8192 chunks */
    g.ptab = calloc(g.pcap, sizeof *g.ptab);
    if (!g.ptab)
        err = -ENOMEM;
    if (!err)
        err = o_cindex_load(&g.ci, s);
    if (!err)
        err = walk(&g, dir, "");
    if (!err)
        err = flush_xorb(&g);
    /* resolve pending terms, write file records */
    for (size_t i = 0; i < g.nfiles && !err; i++) {
        pend_file *pf = &g.files[i];
        pf->f.terms = calloc(pf->nterms ? pf->nterms : 1, sizeof *pf->f.terms);
        if (!pf->f.terms) {
            err = -ENOMEM;
            break;
        }
        for (size_t k = 0; k < pf->nterms; k++) {
            pf->f.terms[k] = pf->terms[k].t;
            if (pf->terms[k].seq >= 0)
                pf->f.terms[k].xorb = g.done[pf->terms[k].seq];
        }
        pf->f.nterms = pf->nterms;
        if (!o_file_exists(s, &pf->f.hash))
            err = o_file_save(s, &pf->f);
        if (!err)
            err = o_file_index_sha(s, pf->f.sha256, &pf->f.hash);
    }
    if (!err)
        err = o_repo_create(s, o->type, o->repo, o->private_);
    if (!err && o->gated)
        err = o_repo_set_gated(s, o->type, o->repo, "manual");
    o_repo r;
    if (!err)
        err = o_repo_load(s, o->type, o->repo, &r);
    if (!err)
        err = o_commit_entries(s, &r, o->branch, g.entries, g.nentries, true,
                               o->message ? o->message : "zestfs-origin ingest", out_id);
    if (!err && !o->quiet)
        fprintf(stderr, "zestfs-origin: %zu files, %llu new bytes in %llu xorbs, %llu bytes deduplicated\n",
                g.nentries, (unsigned long long)g.new_bytes, (unsigned long long)g.nxorbs,
                (unsigned long long)g.dedup_bytes);
    for (size_t i = 0; i < g.nfiles; i++) {
        free(g.files[i].terms);
        free(g.files[i].f.terms);
    }
    free(g.files);
    for (size_t i = 0; i < g.nentries; i++)
        free(g.entries[i].path);
    free(g.entries);
    free(g.done);
    free(g.ptab);
    xet_xorb_writer_free(&g.w);
    o_cindex_free(&g.ci);
    return err;
}
