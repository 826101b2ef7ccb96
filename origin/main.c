/* zestfs-origin — a local Hugging Face Hub + Xet CAS + CDN.
 *
 *   zestfs-origin ingest DATA [datasets/|spaces/]ORG/NAME [options] DIR
 *   zestfs-origin serve  DATA --listen ADDR:PORT [options]
 *   zestfs-origin commit DATA [datasets/|spaces/]ORG/NAME [options] PATH=FILEHASH...
 *   zestfs-origin ls     DATA [datasets/|spaces/]ORG/NAME [--revision REV]
 *
 * Design (details in origin/README.md):
 *
 * - Data directory (layout in origin.h): xorbs are stored content-addressed
 *   as their serialized chunk records (no footer) next to a small binary
 *   index (record end offsets, decoded lengths, chunk hashes), so a byte
 *   range of a file maps to exact xorb byte ranges without reading the
 *   xorb.  A file's reconstruction (terms: xorb, chunk range, unpacked
 *   length) is a JSON record named by its Xet file hash; regular files are
 *   blobs named by git blob sha1.  Repos hold refs (branch -> 40-hex commit)
 *   and commits (the whole tree: path, size, kind, git oid, sha256, Xet
 *   hash, last commit).  Every write is temp file + rename; a xorb is only
 *   referenced after it is on disk, a file record only after its xorbs, a
 *   commit only after its files.
 * - ingest: chunk (xet/ chunker), dedup against every stored chunk (an
 *   in-memory chunk-hash index rebuilt from the xorb indexes), pack new
 *   chunks into xorbs (<= 64 MiB / 8192 chunks), compute SHA-256 and the
 *   file hash, record the commit (sha1 over the tree text, parent, date,
 *   message), move the branch.  Unchanged trees do not make a new commit.
 * - serve: libmicrohttpd, thread per connection; Hub API, resolve with the
 *   Hub's headers (302 to a same-origin "bridge" URL for Xet files, which
 *   also serves the decoded bytes), xet tokens (HMAC-signed, scoped to
 *   repo + revision, expiring), CAS reconstructions v1/v2 with Range,
 *   uploads (every chunk decoded and every hash re-derived), xorb bytes at
 *   HMAC-signed expiring URLs through sendfile, fault knobs and egress
 *   counters under /_origin/.
 *
 * Errors are negative errno values internally; the process exits 1 on error.
 */
#include "origin.h"
#include "hubreal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(void)
{
    fputs("usage:\n"
          "  zestfs-origin ingest DATA [datasets/|spaces/]ORG/NAME [--type model|dataset|space]\n"
          "        [--revision BRANCH] [--private] [--gated] [--message MSG] [--xet-threshold BYTES]\n"
          "        [--all-xet] [--scheme auto|none|lz4|bg4] [-q] DIR\n"
          "  zestfs-origin serve DATA [--listen ADDR:PORT] [--tls-cert PEM --tls-key PEM]\n"
          "        [--token T]... [--auth-required] [--public-url URL] [--port-file FILE]\n"
          "        [--latency-ms N] [--conn-bps N] [--total-bps N] [--fail-every N]\n"
          "        [--truncate-every N] [--flip-every N] [--token-ttl S] [--url-ttl S] [-q]\n"
          "        [--gated REPO[=TOKEN,...]]... [--gated-redact-all 1] [--alias OLD=NEW]...\n"
          "        [--revoked-token T]... [--rate-limit-s S] [--rate-limit-tree-s S]\n"
          "        [--rate-limit-resolve-s S] [--rate-limit-q N] [--tree-fail-next N]\n"
          "        [--tree-fail-status 5XX] [--tree-latency-ms N]\n"
          "  zestfs-origin commit DATA [datasets/|spaces/]ORG/NAME [--revision BRANCH]\n"
          "        [--private] [--message MSG] PATH=FILEHASH[:SIZE[:SHA256]]|PATH=sha256:HEX ...\n"
          "  zestfs-origin ls DATA [datasets/|spaces/]ORG/NAME [--revision REV]\n"
          "  zestfs-origin tag DATA [datasets/|spaces/]ORG/NAME TAG REV\n",
          stderr);
}

/* split "datasets/org/name" into type + id */
static int parse_repo(const char *arg, const char *type_opt, char type[16], char id[256])
{
    const char *t = type_opt ? type_opt : "model";
    const char *p = arg;
    if (!strncmp(p, "datasets/", 9)) {
        t = "dataset";
        p += 9;
    } else if (!strncmp(p, "spaces/", 7)) {
        t = "space";
        p += 7;
    } else if (!strncmp(p, "models/", 7)) {
        t = "model";
        p += 7;
    }
    if (strcmp(t, "model") && strcmp(t, "dataset") && strcmp(t, "space"))
        return -EINVAL;
    snprintf(type, 16, "%s", t);
    if (strlen(p) >= 256 || !strchr(p, '/'))
        return -EINVAL;
    snprintf(id, 256, "%s", p);
    return 0;
}

static unsigned long long num(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end == 'k' || *end == 'K')
        v <<= 10;
    else if (*end == 'm' || *end == 'M')
        v <<= 20;
    else if (*end == 'g' || *end == 'G')
        v <<= 30;
    return v;
}

static int cmd_ingest(int argc, char **argv)
{
    o_ingest_opts o = {.branch = "main", .xet_threshold = 10000000, .scheme = -1};
    const char *type = NULL, *data = NULL, *repo = NULL, *dir = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--type") && i + 1 < argc)
            type = argv[++i];
        else if (!strcmp(a, "--revision") && i + 1 < argc)
            o.branch = argv[++i];
        else if (!strcmp(a, "--private"))
            o.private_ = true;
        else if (!strcmp(a, "--gated"))
            o.gated = true;
        else if (!strcmp(a, "--message") && i + 1 < argc)
            o.message = argv[++i];
        else if (!strcmp(a, "--xet-threshold") && i + 1 < argc)
            o.xet_threshold = num(argv[++i]);
        else if (!strcmp(a, "--all-xet"))
            o.all_xet = true;
        else if (!strcmp(a, "--scheme") && i + 1 < argc) {
            const char *s = argv[++i];
            o.scheme = !strcmp(s, "none") ? 0 : !strcmp(s, "lz4") ? 1 : !strcmp(s, "bg4") ? 2 : -1;
        } else if (!strcmp(a, "-q"))
            o.quiet = true;
        else if (a[0] == '-' && a[1]) {
            usage();
            return 2;
        } else if (!data)
            data = a;
        else if (!repo)
            repo = a;
        else if (!dir)
            dir = a;
        else {
            usage();
            return 2;
        }
    }
    if (!data || !repo || !dir) {
        usage();
        return 2;
    }
    char t[16], id[256];
    if (parse_repo(repo, type, t, id) != 0 || !o_valid_branch(o.branch)) {
        fprintf(stderr, "zestfs-origin: bad repo id or branch\n");
        return 2;
    }
    o.type = t;
    o.repo = id;
    o_store s;
    int e = o_store_open(&s, data, true);
    char cid[41] = "";
    if (!e)
        e = o_ingest(&s, &o, dir, cid);
    o_store_close(&s);
    if (e) {
        fprintf(stderr, "zestfs-origin: ingest failed: %s\n", strerror(-e));
        return 1;
    }
    printf("%s\n", cid);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    o_serve_opts o = {.listen = "127.0.0.1:8080"};
    const char *data = NULL;
    const char **tokens = calloc((size_t)argc + 1, sizeof *tokens);
    const char **hrf = calloc((size_t)argc + 1, sizeof *hrf);
    if (!tokens || !hrf) {
        free(tokens);
        free(hrf);
        return 1;
    }
    o.hr_flags = hrf;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--listen") && more)
            o.listen = argv[++i];
        else if (!strcmp(a, "--tls-cert") && more)
            o.tls_cert = argv[++i];
        else if (!strcmp(a, "--tls-key") && more)
            o.tls_key = argv[++i];
        else if (!strcmp(a, "--token") && more)
            tokens[o.ntokens++] = argv[++i];
        else if (!strcmp(a, "--auth-required"))
            o.auth_required = true;
        else if (!strcmp(a, "--public-url") && more)
            o.public_url = argv[++i];
        else if (!strcmp(a, "--port-file") && more)
            o.port_file = argv[++i];
        else if (!strcmp(a, "--latency-ms") && more)
            o.latency_ms = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--conn-bps") && more)
            o.conn_bps = num(argv[++i]);
        else if (!strcmp(a, "--total-bps") && more)
            o.total_bps = num(argv[++i]);
        else if (!strcmp(a, "--fail-every") && more)
            o.fail_every = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--truncate-every") && more)
            o.truncate_every = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--flip-every") && more)
            o.flip_every = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--token-ttl") && more)
            o.token_ttl = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "--url-ttl") && more)
            o.url_ttl = (unsigned)num(argv[++i]);
        else if (!strcmp(a, "-q"))
            o.quiet = true;
        else if (o_hr_is_flag(a) && more) {
            hrf[o.nhr_flags++] = a;
            hrf[o.nhr_flags++] = argv[++i];
        } else if (a[0] == '-' || data) {
            usage();
            free(tokens);
            free(hrf);
            return 2;
        } else
            data = a;
    }
    if (!data) {
        usage();
        free(tokens);
        return 2;
    }
    o.tokens = tokens;
    o_store s;
    int e = o_store_open(&s, data, true);
    if (!e)
        e = o_serve(&s, &o);
    o_store_close(&s);
    free(tokens);
    free(hrf);
    if (e) {
        fprintf(stderr, "zestfs-origin: serve failed: %s\n", strerror(-e));
        return 1;
    }
    return 0;
}

static int cmd_commit(int argc, char **argv)
{
    const char *type = NULL, *data = NULL, *repo = NULL, *branch = "main", *msg = "upload";
    bool priv = false;
    char **specs = calloc((size_t)argc + 1, sizeof *specs);
    size_t nspecs = 0;
    if (!specs)
        return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--type") && i + 1 < argc)
            type = argv[++i];
        else if (!strcmp(a, "--revision") && i + 1 < argc)
            branch = argv[++i];
        else if (!strcmp(a, "--message") && i + 1 < argc)
            msg = argv[++i];
        else if (!strcmp(a, "--private"))
            priv = true;
        else if (a[0] == '-') {
            usage();
            free(specs);
            return 2;
        } else if (!data)
            data = a;
        else if (!repo)
            repo = a;
        else
            specs[nspecs++] = argv[i];
    }
    char t[16], id[256];
    if (!data || !repo || !nspecs || parse_repo(repo, type, t, id) != 0 || !o_valid_branch(branch)) {
        usage();
        free(specs);
        return 2;
    }
    o_store s;
    int e = o_store_open(&s, data, true);
    o_entry *ents = calloc(nspecs, sizeof *ents);
    if (!ents)
        e = -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nspecs && !e; i++) {
        char *spec = specs[i];
        char *eq = strchr(spec, '=');
        if (!eq) {
            fprintf(stderr, "zestfs-origin: %s: expected PATH=FILEHASH\n", spec);
            e = -EINVAL;
            break;
        }
        *eq = 0;
        const char *path = spec, *val = eq + 1;
        if (!o_valid_relpath(path)) {
            fprintf(stderr, "zestfs-origin: %s: bad path\n", path);
            e = -EINVAL;
            break;
        }
        xet_hash fh;
        if (!strncmp(val, "sha256:", 7)) {
            e = o_file_by_sha(&s, val + 7, &fh);
        } else {
            e = strlen(val) >= 64 ? xet_hash_from_string(val, &fh) : -EINVAL;
        }
        o_file f;
        if (!e)
            e = o_file_load(&s, &fh, &f);
        if (e) {
            fprintf(stderr, "zestfs-origin: %s: no such uploaded file (%s)\n", val, strerror(-e));
            break;
        }
        /* optional :SIZE[:SHA256] must agree with what was uploaded */
        const char *c1 = strlen(val) > 64 && val[64] == ':' ? val + 65 : NULL;
        if (c1) {
            unsigned long long sz = strtoull(c1, NULL, 10);
            const char *c2 = strchr(c1, ':');
            if (sz != f.size || (c2 && f.sha256[0] && strcmp(c2 + 1, f.sha256))) {
                fprintf(stderr, "zestfs-origin: %s: size/sha256 do not match the upload\n", path);
                e = -EINVAL;
            }
        }
        if (!e && !f.sha256[0]) {
            e = o_file_sha256(&s, &f, f.sha256);
            if (!e)
                e = o_file_save(&s, &f);
        }
        if (!e)
            e = o_file_index_sha(&s, f.sha256, &fh);
        if (!e) {
            o_entry *en = &ents[n++];
            en->path = strdup(path);
            en->xet = true;
            en->size = f.size;
            memcpy(en->sha256, f.sha256, 65);
            xet_hash_to_string(&fh, en->xet_hash);
            char ptr[256];
            int pl = o_lfs_pointer(en->sha256, f.size, ptr, sizeof ptr);
            en->pointer_size = (uint32_t)pl;
            o_git_blob_sha1(ptr, (size_t)pl, en->oid);
        }
        o_file_free(&f);
    }
    char cid[41] = "";
    if (!e)
        e = o_repo_create(&s, t, id, priv);
    o_repo r;
    if (!e)
        e = o_repo_load(&s, t, id, &r);
    if (!e)
        e = o_commit_entries(&s, &r, branch, ents, n, false, msg, cid);
    for (size_t i = 0; i < n; i++)
        free(ents[i].path);
    free(ents);
    free(specs);
    o_store_close(&s);
    if (e) {
        fprintf(stderr, "zestfs-origin: commit failed: %s\n", strerror(-e));
        return 1;
    }
    printf("%s\n", cid);
    return 0;
}

static int cmd_ls(int argc, char **argv)
{
    const char *data = NULL, *repo = NULL, *rev = "main", *type = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--revision") && i + 1 < argc)
            rev = argv[++i];
        else if (!strcmp(argv[i], "--type") && i + 1 < argc)
            type = argv[++i];
        else if (!data)
            data = argv[i];
        else if (!repo)
            repo = argv[i];
    }
    char t[16], id[256];
    if (!data || !repo || parse_repo(repo, type, t, id) != 0) {
        usage();
        return 2;
    }
    o_store s;
    o_repo r;
    o_commit c;
    int e = o_store_open(&s, data, false);
    if (!e)
        e = o_repo_load(&s, t, id, &r);
    if (!e)
        e = o_resolve_rev(&s, &r, rev, &c);
    if (e) {
        fprintf(stderr, "zestfs-origin: %s\n", strerror(-e));
        o_store_close(&s);
        return 1;
    }
    printf("commit %s\n", c.id);
    for (size_t i = 0; i < c.n; i++)
        printf("%-7s %12llu %s %s\n", c.e[i].xet ? "xet" : "regular", (unsigned long long)c.e[i].size,
               c.e[i].xet ? c.e[i].xet_hash : c.e[i].oid, c.e[i].path);
    o_commit_free(&c);
    o_store_close(&s);
    return 0;
}

/* `tag DATA REPO TAG REV`: a ref TAG naming REV's commit, which no ingest
 * or commit moves (they move branches by name); the revision API resolves
 * it as the Hub resolves a tag. */
static int cmd_tag(int argc, char **argv)
{
    if (argc != 4) {
        usage();
        return 2;
    }
    char t[16], id[256];
    if (parse_repo(argv[1], NULL, t, id) != 0) {
        usage();
        return 2;
    }
    o_store s;
    o_repo r;
    o_commit c;
    int e = o_store_open(&s, argv[0], false);
    if (!e)
        e = o_repo_load(&s, t, id, &r);
    if (!e)
        e = o_resolve_rev(&s, &r, argv[3], &c);
    if (!e) {
        e = o_ref_write(&s, &r, argv[2], c.id);
        if (!e)
            printf("%s\n", c.id);
        o_commit_free(&c);
    }
    if (e)
        fprintf(stderr, "zestfs-origin: tag %s: %s\n", argv[2], strerror(-e));
    o_store_close(&s);
    return e ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "ingest"))
        return cmd_ingest(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "commit"))
        return cmd_commit(argc - 2, argv + 2);
    if (!strcmp(cmd, "ls"))
        return cmd_ls(argc - 2, argv + 2);
    if (!strcmp(cmd, "tag"))
        return cmd_tag(argc - 2, argv + 2);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage();
        return 0;
    }
    usage();
    return 2;
}
