/* hub_routes.c — the Hub API of the origin: repo info, refs, tree,
 * paths-info, Xet tokens, resolve (with the whole-file bridge for Xet
 * files), repo creation and commits. */
#include "server_int.h"

/* Bridge: decode a Xet file's chunks on the fly (verifying each chunk hash
 * against the xorb index) for plain-HTTP downloads. */
typedef struct bridge {
    srv *S;
    o_file f;
    uint64_t base;         /* file offset of the requested range start */
    uint64_t len;
    size_t term;           /* current term */
    uint32_t chunk;        /* current chunk (absolute index in xorb) */
    uint64_t chunk_off;    /* file offset of the current chunk */
    int fd;                /* fd of the current term's xorb */
    xet_hash fd_xorb;
    o_xorb_idx idx;
    uint8_t *rec, *dec;    /* record buffer, decoded chunk */
    uint32_t dec_len;
    bool have;             /* dec holds chunk `chunk` */
    uint64_t start_ns, sent;
    char client[64];
} bridge;

static void bridge_free(void *cls)
{
    bridge *b = cls;
    if (b->fd >= 0)
        close(b->fd);
    o_xorb_idx_free(&b->idx);
    o_file_free(&b->f);
    free(b->rec);
    free(b->dec);
    free(b);
}

static int bridge_open_term(bridge *b)
{
    const o_term *t = &b->f.terms[b->term];
    if (b->fd >= 0 && xet_hash_eq(&b->fd_xorb, &t->xorb))
        return 0;
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    o_xorb_idx_free(&b->idx);
    int e = o_xorb_idx_load(b->S->s, &t->xorb, &b->idx);
    if (e)
        return e;
    if (t->end > b->idx.n || t->start >= t->end)
        return -EBADMSG;
    char hs[65];
    xet_hash_to_string(&t->xorb, hs);
    char *p = o_path(b->S->s, "xorbs/%s", hs);
    b->fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    free(p);
    if (b->fd < 0)
        return -EIO;
    b->fd_xorb = t->xorb;
    return 0;
}

static int bridge_decode(bridge *b)
{
    int e = bridge_open_term(b);
    if (e)
        return e;
    uint32_t i = b->chunk;
    uint64_t ro = i ? b->idx.rec_end[i - 1] : 0;
    uint64_t rl = b->idx.rec_end[i] - ro;
    if (rl < XET_CHUNK_HEADER_LEN || rl > XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN)
        return -EBADMSG;
    if (pread(b->fd, b->rec, rl, (off_t)ro) != (ssize_t)rl)
        return -EIO;
    xet_chunk_header h;
    e = xet_chunk_header_parse(b->rec, rl, &h);
    if (e)
        return e;
    if (h.clen + XET_CHUNK_HEADER_LEN != rl || h.ulen != b->idx.ulen[i])
        return -EBADMSG;
    e = xet_chunk_decode(&h, b->rec + XET_CHUNK_HEADER_LEN, b->dec);
    if (e)
        return e;
    xet_hash ch;
    xet_chunk_hash(b->dec, h.ulen, &ch);
    if (!xet_hash_eq(&ch, &b->idx.hash[i]))
        return -EILSEQ;
    b->dec_len = h.ulen;
    b->have = true;
    return 0;
}

/* advance to the chunk containing file offset `pos` (pos only grows) */
static int bridge_seek(bridge *b, uint64_t fpos)
{
    for (;;) {
        if (b->term >= b->f.nterms)
            return -ERANGE;
        int e = bridge_open_term(b);
        if (e)
            return e;
        uint32_t len = b->idx.ulen[b->chunk];
        if (fpos < b->chunk_off + len)
            return 0;
        b->chunk_off += len;
        b->have = false;
        b->chunk++;
        if (b->chunk >= b->f.terms[b->term].end) {
            b->term++;
            if (b->term < b->f.nterms)
                b->chunk = b->f.terms[b->term].start;
        }
    }
}

static ssize_t bridge_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    bridge *b = cls;
    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    uint64_t fpos = b->base + pos;
    if (bridge_seek(b, fpos) != 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (!b->have && bridge_decode(b) != 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    uint64_t in = fpos - b->chunk_off;
    uint64_t n = b->dec_len - in;
    if (n > max)
        n = max;
    if (n > b->len - pos)
        n = b->len - pos;
    os__throttle(b->S, b->start_ns, b->sent, (size_t)n);
    memcpy(buf, b->dec + in, (size_t)n);
    b->sent += n;
    os__account(b->S, b->client, NULL, n);
    return (ssize_t)n;
}

/* ---- JSON builders -------------------------------------------------------- */

static cJSON *entry_json(const o_entry *e, bool expand, const o_store *s, const o_repo *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "file");
    cJSON_AddStringToObject(j, "oid", e->oid);
    cJSON_AddNumberToObject(j, "size", (double)e->size);
    cJSON_AddStringToObject(j, "path", e->path);
    if (e->xet) {
        cJSON *l = cJSON_AddObjectToObject(j, "lfs");
        cJSON_AddStringToObject(l, "oid", e->sha256);
        cJSON_AddNumberToObject(l, "size", (double)e->size);
        cJSON_AddNumberToObject(l, "pointerSize", e->pointer_size);
        cJSON_AddStringToObject(j, "xetHash", e->xet_hash);
    }
    if (expand) {
        cJSON *lc = cJSON_AddObjectToObject(j, "lastCommit");
        cJSON_AddStringToObject(lc, "id", e->last_commit);
        o_commit c;
        char date[40] = "1970-01-01T00:00:00.000Z";
        const char *title = "";
        bool loaded = o_commit_load(s, r, e->last_commit, &c) == 0;
        if (loaded) {
            os__iso_date(c.date, date, sizeof date);
            title = c.message;
        }
        cJSON_AddStringToObject(lc, "title", title);
        cJSON_AddStringToObject(lc, "date", date);
        if (loaded)
            o_commit_free(&c);
        cJSON *sec = cJSON_AddObjectToObject(j, "securityFileStatus");
        cJSON_AddStringToObject(sec, "status", "safe");
    }
    return j;
}

static cJSON *dir_json(const char *path, const char *commit)
{
    uint8_t d[32];
    char *k = o_strdup_printf("tree %s %s", commit, path);
    o_sha256(k ? k : "", k ? strlen(k) : 0, d);
    free(k);
    char oid[41];
    o_hex(d, 20, oid);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "directory");
    cJSON_AddStringToObject(j, "oid", oid);
    cJSON_AddNumberToObject(j, "size", 0);
    cJSON_AddStringToObject(j, "path", path);
    return j;
}

static const char *type_plural(const char *t)
{
    return !strcmp(t, "model") ? "models" : !strcmp(t, "dataset") ? "datasets" : "spaces";
}

static cJSON *repo_info_json(const o_repo *r, const o_commit *c, bool blobs)
{
    cJSON *j = cJSON_CreateObject();
    char date[40];
    os__iso_date(c->date, date, sizeof date);
    cJSON_AddStringToObject(j, "_id", c->id);
    cJSON_AddStringToObject(j, "id", r->id);
    if (!strcmp(r->type, "model"))
        cJSON_AddStringToObject(j, "modelId", r->id);
    char author[256];
    snprintf(author, sizeof author, "%s", r->id);
    char *sl = strchr(author, '/');
    if (sl)
        *sl = 0;
    cJSON_AddStringToObject(j, "author", author);
    cJSON_AddStringToObject(j, "sha", c->id);
    cJSON_AddStringToObject(j, "lastModified", date);
    cJSON_AddStringToObject(j, "createdAt", date);
    cJSON_AddBoolToObject(j, "private", r->private_);
    cJSON_AddBoolToObject(j, "disabled", false);
    if (r->gated[0]) /* the Hub: false, or the mode ("auto", "manual") */
        cJSON_AddStringToObject(j, "gated", r->gated);
    else
        cJSON_AddBoolToObject(j, "gated", false);
    cJSON_AddNumberToObject(j, "downloads", 0);
    cJSON_AddNumberToObject(j, "likes", 0);
    cJSON_AddArrayToObject(j, "tags");
    cJSON *sib = cJSON_AddArrayToObject(j, "siblings");
    uint64_t used = 0;
    for (size_t i = 0; i < c->n; i++) {
        const o_entry *e = &c->e[i];
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "rfilename", e->path);
        if (blobs) {
            cJSON_AddNumberToObject(f, "size", (double)e->size);
            cJSON_AddStringToObject(f, "blobId", e->oid);
            if (e->xet) {
                cJSON *l = cJSON_AddObjectToObject(f, "lfs");
                cJSON_AddNumberToObject(l, "size", (double)e->size);
                cJSON_AddStringToObject(l, "sha256", e->sha256);
                cJSON_AddNumberToObject(l, "pointerSize", e->pointer_size);
            }
        }
        cJSON_AddItemToArray(sib, f);
        used += e->size;
    }
    cJSON_AddNumberToObject(j, "usedStorage", (double)used);
    return j;
}

/* ---- Hub API handlers -------------------------------------------------------- */

/* The request body; "" (never NULL) when none came. */
const char *os__body_of(const ctx *x)
{
    return x->rq->body ? (const char *)x->rq->body : "";
}

static enum MHD_Result rev_error(struct MHD_Connection *c, int e)
{
    if (e == -ENOENT)
        return os__send_err(c, 404, "RevisionNotFound", "Invalid rev id");
    return os__send_err(c, 500, NULL, strerror(-e));
}

enum MHD_Result os__h_repo_info(ctx *x, const o_repo *r, const char *rev)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    cJSON *j = repo_info_json(r, &c, os__query_true(x->c, "blobs"));
    o_commit_free(&c);
    o_hr_repo_info(x->S->hr, r->type, r->id, j);
    return os__send_json(x->c, 200, j, NULL);
}

enum MHD_Result os__h_refs(ctx *x, const o_repo *r)
{
    char **names;
    size_t n;
    o_refs_list(x->S->s, r, &names, &n);
    cJSON *j = cJSON_CreateObject();
    cJSON *br = cJSON_AddArrayToObject(j, "branches");
    for (size_t i = 0; i < n; i++) {
        char id[41];
        if (o_ref_read(x->S->s, r, names[i], id) == 0) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "name", names[i]);
            char *ref = o_strdup_printf("refs/heads/%s", names[i]);
            cJSON_AddStringToObject(b, "ref", ref ? ref : "");
            free(ref);
            cJSON_AddStringToObject(b, "targetCommit", id);
            cJSON_AddItemToArray(br, b);
        }
        free(names[i]);
    }
    free(names);
    cJSON_AddArrayToObject(j, "tags");
    cJSON_AddArrayToObject(j, "converts");
    return os__send_json(x->c, 200, j, NULL);
}

static bool under(const char *path, const char *dir)
{
    size_t l = strlen(dir);
    return l == 0 || (!strncmp(path, dir, l) && path[l] == '/');
}

enum MHD_Result os__h_tree(ctx *x, const o_repo *r, const char *rev, const char *dir)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    bool recursive = os__query_true(x->c, "recursive");
    bool expand = os__query_true(x->c, "expand");
    char *cur = os__query_arg(x->c, "cursor");
    char *lim = os__query_arg(x->c, "limit");
    size_t start = cur ? strtoul(cur, NULL, 10) : 0;
    size_t limit = lim ? strtoul(lim, NULL, 10) : (expand ? 50 : 1000);
    if (limit == 0 || limit > 10000)
        limit = 1000;
    free(cur);
    free(lim);
    /* is dir a file? a directory? */
    if (dir[0] && o_commit_find(&c, dir)) {
        /* the Hub answers the listing of a file path with that entry */
    }
    bool found = dir[0] == 0;
    for (size_t i = 0; i < c.n && !found; i++)
        if (under(c.e[i].path, dir))
            found = true;
    if (!found) {
        o_commit_free(&c);
        struct MHD_Response *rs = os__err_response("EntryNotFound", "Entry not found");
        return os__queue(x->c, 404, rs);
    }
    /* build the full listing (dirs first appear before their content) */
    cJSON *all = cJSON_CreateArray();
    size_t dl = strlen(dir);
    char **seen = NULL;
    size_t nseen = 0, capseen = 0;
    for (size_t i = 0; i < c.n; i++) {
        const o_entry *en = &c.e[i];
        if (!under(en->path, dir))
            continue;
        const char *rest = en->path + (dl ? dl + 1 : 0);
        /* directories between dir and the file */
        const char *p = rest;
        const char *sl;
        while ((sl = strchr(p, '/'))) {
            size_t plen = (size_t)(sl - en->path);
            char *dp = strndup(en->path, plen);
            bool dup = false;
            for (size_t k = 0; k < nseen && dp; k++)
                if (!strcmp(seen[k], dp))
                    dup = true;
            if (dp && !dup) {
                if (nseen == capseen) {
                    capseen = capseen ? capseen * 2 : 16;
                    char **ns = realloc(seen, capseen * sizeof *ns);
                    if (ns)
                        seen = ns;
                }
                if (nseen < capseen) {
                    seen[nseen++] = dp;
                    cJSON_AddItemToArray(all, dir_json(dp, c.id));
                    dp = NULL;
                }
            }
            free(dp);
            if (!recursive)
                break;
            p = sl + 1;
        }
        if (recursive || !strchr(rest, '/'))
            cJSON_AddItemToArray(all, entry_json(en, expand, x->S->s, r));
    }
    for (size_t k = 0; k < nseen; k++)
        free(seen[k]);
    free(seen);
    o_hr_redact(x->S->hr, x->c, r->type, r->id, all);
    /* page */
    size_t total = (size_t)cJSON_GetArraySize(all);
    cJSON *page = cJSON_CreateArray();
    for (size_t i = start; i < total && i < start + limit; i++)
        cJSON_AddItemReferenceToArray(page, cJSON_GetArrayItem(all, (int)i));
    char *s = cJSON_PrintUnformatted(page);
    cJSON_Delete(page);
    cJSON_Delete(all);
    struct MHD_Response *rs = s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!rs) {
        free(s);
        o_commit_free(&c);
        return MHD_NO;
    }
    MHD_add_response_header(rs, "Content-Type", JSON_CT);
    if (start + limit < total) {
        char *base = os__base_url(x->S, x->c);
        char erev[512], edir[2048];
        os__pct_encode(rev, false, erev, sizeof erev);
        os__pct_encode(dir, true, edir, sizeof edir);
        char *link = o_strdup_printf("<%s/api/%s/%s/tree/%s%s%s?recursive=%s&expand=%s&limit=%zu&cursor=%zu>; rel=\"next\"",
                                     base ? base : "", type_plural(r->type), r->id, erev,
                                     dir[0] ? "/" : "", edir, recursive ? "true" : "false",
                                     expand ? "true" : "false", limit, start + limit);
        if (link)
            MHD_add_response_header(rs, "Link", link);
        free(link);
        free(base);
    }
    o_commit_free(&c);
    return os__queue(x->c, 200, rs);
}

enum MHD_Result os__h_paths_info(ctx *x, const o_repo *r, const char *rev)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    /* collect paths: JSON {"paths":[...],"expand":b} or form paths=..&expand=.. */
    char **paths = NULL;
    size_t np = 0;
    bool expand = false;
    const char *ct = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Content-Type");
    if (ct && strstr(ct, "json")) {
        cJSON *j = cJSON_ParseWithLength(os__body_of(x), x->rq->len);
        cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "paths");
        int n = cJSON_GetArraySize(ps);
        paths = calloc(n > 0 ? (size_t)n : 1, sizeof *paths);
        const cJSON *p;
        cJSON_ArrayForEach(p, ps) if (cJSON_IsString(p) && paths) paths[np++] = strdup(p->valuestring);
        expand = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "expand"));
        cJSON_Delete(j);
    } else if (x->rq->len) {
        char *body = strndup(os__body_of(x), x->rq->len);
        size_t cap = 0;
        char *save = NULL;
        for (char *kv = body ? strtok_r(body, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq)
                continue;
            *eq = 0;
            char *k = os__pct_decode(kv, strlen(kv), true), *v = os__pct_decode(eq + 1, strlen(eq + 1), true);
            if (k && v && !strcmp(k, "paths")) {
                if (np == cap) {
                    cap = cap ? cap * 2 : 16;
                    char **nn = realloc(paths, cap * sizeof *nn);
                    if (nn)
                        paths = nn;
                }
                if (np < cap) {
                    paths[np++] = v;
                    v = NULL;
                }
            } else if (k && v && !strcmp(k, "expand")) {
                expand = !strcasecmp(v, "true") || !strcmp(v, "1");
            }
            free(k);
            free(v);
        }
        free(body);
    }
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < np; i++) {
        if (!paths[i])
            continue;
        const o_entry *en = o_commit_find(&c, paths[i]);
        if (en) {
            cJSON_AddItemToArray(arr, entry_json(en, expand, x->S->s, r));
        } else {
            for (size_t k = 0; k < c.n; k++)
                if (under(c.e[k].path, paths[i])) {
                    cJSON_AddItemToArray(arr, dir_json(paths[i], c.id));
                    break;
                }
        }
        free(paths[i]);
    }
    free(paths);
    o_commit_free(&c);
    o_hr_redact(x->S->hr, x->c, r->type, r->id, arr);
    return os__send_json(x->c, 200, arr, NULL);
}

enum MHD_Result os__h_token(ctx *x, const o_repo *r, const char *rev, bool write)
{
    /* with tokens configured, writes need one; without, the server is open */
    if (write && x->S->o->ntokens && os__hub_auth(x->S, x->c) != AUTH_VALID)
        return os__send_err(x->c, 401, NULL, "write access requires a valid token");
    pthread_mutex_lock(&x->S->stmu);
    x->S->tokens++; /* Xet tokens issued (stats: "xet_tokens") */
    pthread_mutex_unlock(&x->S->stmu);
    o_commit c;
    char commit[41] = "";
    if (o_resolve_rev(x->S->s, r, rev, &c) == 0) {
        memcpy(commit, c.id, 41);
        o_commit_free(&c);
    } else if (!write) {
        return rev_error(x->c, -ENOENT);
    }
    unsigned ttl = x->S->token_ttl ? x->S->token_ttl : 3600;
    int64_t exp = (int64_t)time(NULL) + ttl;
    char *tok = os__make_cas_token(x->S, write ? "write" : "read", r, commit[0] ? commit : rev, exp);
    char *base = os__base_url(x->S, x->c);
    if (!tok || !base) {
        free(tok);
        free(base);
        return MHD_NO;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "accessToken", tok);
    cJSON_AddNumberToObject(j, "exp", (double)exp);
    cJSON_AddStringToObject(j, "casUrl", base);
    struct MHD_Response *rs = NULL;
    os__send_json(x->c, 200, j, &rs);
    if (!rs) {
        free(tok);
        free(base);
        return MHD_NO;
    }
    char es[32];
    snprintf(es, sizeof es, "%lld", (long long)exp);
    MHD_add_response_header(rs, "X-Xet-Access-Token", tok);
    MHD_add_response_header(rs, "X-Xet-Cas-Url", base);
    MHD_add_response_header(rs, "X-Xet-Token-Expiration", es);
    free(tok);
    free(base);
    return os__queue(x->c, 200, rs);
}

/* resolve + bridge: headers shared by both */
static void meta_headers(ctx *x, struct MHD_Response *rs, const o_repo *r, const o_commit *c,
                         const o_entry *en)
{
    MHD_add_response_header(rs, "X-Repo-Commit", c->id);
    MHD_add_response_header(rs, "Accept-Ranges", "bytes");
    char et[80];
    if (en->xet) {
        snprintf(et, sizeof et, "\"%s\"", en->sha256);
        MHD_add_response_header(rs, "ETag", et);
        MHD_add_response_header(rs, "X-Linked-Etag", et);
        char sz[32];
        snprintf(sz, sizeof sz, "%" PRIu64, en->size);
        MHD_add_response_header(rs, "X-Linked-Size", sz);
        MHD_add_response_header(rs, "X-Xet-Hash", en->xet_hash);
        char *base = os__base_url(x->S, x->c);
        char *link = o_strdup_printf(
            "<%s/api/%s/%s/xet-read-token/%s>; rel=\"xet-auth\", <%s/v1/reconstructions/%s>; rel=\"xet-reconstruction-info\"",
            base, type_plural(r->type), r->id, c->id, base, en->xet_hash);
        if (link)
            MHD_add_response_header(rs, "Link", link);
        char *rr = o_strdup_printf("/api/%s/%s/xet-read-token/%s", type_plural(r->type), r->id, c->id);
        if (rr)
            MHD_add_response_header(rs, "X-Xet-Refresh-Route", rr);
        free(rr);
        free(link);
        free(base);
    } else {
        snprintf(et, sizeof et, "\"%s\"", en->oid);
        MHD_add_response_header(rs, "ETag", et);
    }
}

static enum MHD_Result serve_entry_bytes(ctx *x, const o_repo *r, const o_commit *c, const o_entry *en)
{
    uint64_t s = 0, e = en->size ? en->size - 1 : 0;
    const char *rh = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Range");
    int pr = os__parse_range(rh, en->size, &s, &e);
    if (pr == -2 || (pr == -1 && rh)) {
        struct MHD_Response *rs = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, en->size);
        MHD_add_response_header(rs, "Content-Range", cr);
        meta_headers(x, rs, r, c, en);
        return os__queue(x->c, 416, rs);
    }
    uint64_t len = en->size ? e - s + 1 : 0;
    struct MHD_Response *rs = NULL;
    if (!en->xet) {
        char *p = o_path(x->S->s, "blobs/%s", en->oid);
        int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        free(p);
        if (fd < 0)
            return os__send_err(x->c, 500, NULL, "blob missing");
        rs = os__fd_response(x->S, x->rq, fd, s, len, NULL, x->head);
    } else {
        xet_hash fh;
        if (xet_hash_from_string(en->xet_hash, &fh) != 0)
            return os__send_err(x->c, 500, NULL, "bad xet hash");
        bridge *b = calloc(1, sizeof *b);
        if (!b)
            return MHD_NO;
        b->S = x->S;
        b->fd = -1;
        b->rec = malloc(XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN);
        b->dec = malloc(XET_CHUNK_MAX);
        snprintf(b->client, sizeof b->client, "%s", x->rq->client);
        if (!b->rec || !b->dec || o_file_load(x->S->s, &fh, &b->f) != 0) {
            bridge_free(b);
            return os__send_err(x->c, 500, NULL, "file reconstruction missing");
        }
        b->base = s;
        b->len = len;
        b->start_ns = os__now_ns();
        if (b->f.nterms)
            b->chunk = b->f.terms[0].start;
        rs = MHD_create_response_from_callback(len, 256 * 1024, bridge_cb, b, bridge_free);
        if (!rs)
            bridge_free(b);
    }
    if (!rs)
        return MHD_NO;
    meta_headers(x, rs, r, c, en);
    MHD_add_response_header(rs, "Content-Type", "application/octet-stream");
    if (pr == 1) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, s, e, en->size);
        MHD_add_response_header(rs, "Content-Range", cr);
        return os__queue(x->c, 206, rs);
    }
    return os__queue(x->c, 200, rs);
}

enum MHD_Result os__h_resolve(ctx *x, const o_repo *r, const char *rev, const char *path, bool bridge_req)
{
    o_commit c;
    int e = o_resolve_rev(x->S->s, r, rev, &c);
    if (e)
        return rev_error(x->c, e);
    const o_entry *en = o_commit_find(&c, path);
    if (!en) {
        struct MHD_Response *rs = os__err_response("EntryNotFound", "Entry not found");
        if (rs)
            MHD_add_response_header(rs, "X-Repo-Commit", c.id);
        o_commit_free(&c);
        return rs ? os__queue(x->c, 404, rs) : MHD_NO;
    }
    enum MHD_Result ret;
    const char *accept = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Accept");
    if (en->xet && !bridge_req && accept && strstr(accept, "application/vnd.xet-fileinfo+json")) {
        /* @huggingface/hub: metadata as JSON, same headers */
        char *base = os__base_url(x->S, x->c);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "hash", en->xet_hash);
        cJSON_AddNumberToObject(j, "size", (double)en->size);
        cJSON_AddStringToObject(j, "etag", en->sha256);
        char *ru = o_strdup_printf("%s/api/%s/%s/xet-read-token/%s", base, type_plural(r->type), r->id, c.id);
        char *cu = o_strdup_printf("%s/v1/reconstructions/%s", base, en->xet_hash);
        cJSON_AddStringToObject(j, "refreshUrl", ru ? ru : "");
        cJSON_AddStringToObject(j, "reconstructionUrl", cu ? cu : "");
        free(ru);
        free(cu);
        free(base);
        struct MHD_Response *rs = NULL;
        os__send_json(x->c, 200, j, &rs);
        if (!rs) {
            o_commit_free(&c);
            return MHD_NO;
        }
        MHD_del_response_header(rs, "Content-Type", JSON_CT);
        MHD_add_response_header(rs, "Content-Type", "application/vnd.xet-fileinfo+json");
        meta_headers(x, rs, r, &c, en);
        ret = os__queue(x->c, 200, rs);
    } else if (en->xet && !bridge_req) {
        char *base = os__base_url(x->S, x->c);
        char ep[2048];
        os__pct_encode(en->path, true, ep, sizeof ep);
        char *loc = o_strdup_printf("%s/_bridge/%s/%s/%s/%s", base, r->type, r->id, c.id, ep);
        free(base);
        struct MHD_Response *rs = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!rs || !loc) {
            free(loc);
            o_commit_free(&c);
            return MHD_NO;
        }
        MHD_add_response_header(rs, "Location", loc);
        free(loc);
        meta_headers(x, rs, r, &c, en);
        ret = os__queue(x->c, 302, rs);
    } else {
        ret = serve_entry_bytes(x, r, &c, en);
    }
    o_commit_free(&c);
    return ret;
}

bool os__may_write(srv *S, struct MHD_Connection *c)
{
    return S->o->ntokens == 0 || os__hub_auth(S, c) == AUTH_VALID;
}

enum MHD_Result os__h_create_repo(ctx *x)
{
    srv *S = x->S;
    if (os__hub_auth(S, x->c) == AUTH_INVALID || !os__may_write(S, x->c))
        return os__send_err(x->c, 401, NULL, "creating a repo requires a valid token");
    cJSON *j = cJSON_ParseWithLength(os__body_of(x), x->rq->len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(j, "organization");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *priv = cJSON_GetObjectItemCaseSensitive(j, "private");
    char id[260] = "";
    if (cJSON_IsString(name) && cJSON_IsString(org))
        snprintf(id, sizeof id, "%s/%s", org->valuestring, name->valuestring);
    else if (cJSON_IsString(name))
        snprintf(id, sizeof id, "%s", name->valuestring);
    char t[16]; /* copied: j is freed before the answer is made */
    snprintf(t, sizeof t, "%s", cJSON_IsString(type) ? type->valuestring : "model");
    char err[256] = "";
    pthread_mutex_lock(&S->upmu);
    int e = id[0] ? o_hub_create_repo(S->s, t, id, cJSON_IsTrue(priv), err, sizeof err) : -EINVAL;
    pthread_mutex_unlock(&S->upmu);
    cJSON_Delete(j);
    if (e && e != -EEXIST)
        return os__send_err(x->c, 400, NULL, err[0] ? err : "invalid repo");
    char *base = os__base_url(S, x->c);
    cJSON *o = cJSON_CreateObject();
    if (e == -EEXIST)
        cJSON_AddStringToObject(o, "error", err); /* the Hub's 409 also carries the url */
    char *url = o_strdup_printf("%s/%s%s", base ? base : "",
                                !strcmp(t, "dataset") ? "datasets/" : !strcmp(t, "space") ? "spaces/" : "", id);
    cJSON_AddStringToObject(o, "url", url ? url : "");
    cJSON_AddStringToObject(o, "name", id);
    free(url);
    free(base);
    if (e == -EEXIST) {
        struct MHD_Response *rs = NULL;
        os__send_json(x->c, 409, o, &rs);
        if (!rs)
            return MHD_NO;
        MHD_add_response_header(rs, "X-Error-Message", err);
        return os__queue(x->c, 409, rs);
    }
    return os__send_json(x->c, 200, o, NULL);
}

enum MHD_Result os__h_commit(ctx *x, const o_repo *r, const char *rev)
{
    srv *S = x->S;
    if (!os__may_write(S, x->c))
        return os__send_err(x->c, 401, NULL, "committing requires a valid token");
    char id[41] = "", err[512] = "";
    pthread_mutex_lock(&S->upmu);
    int e = o_hub_commit(S->s, r, rev, os__body_of(x), x->rq->len, id, err, sizeof err);
    pthread_mutex_unlock(&S->upmu);
    if (e == -EAGAIN)
        return os__send_err(x->c, 412, NULL, err);
    if (e)
        return os__send_err(x->c, e == -ENOENT ? 404 : 400, e == -ENOENT ? "EntryNotFound" : NULL, err);
    char *base = os__base_url(S, x->c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "commitOid", id);
    char *url = o_strdup_printf("%s/%s%s/commit/%s", base ? base : "",
                                !strcmp(r->type, "dataset") ? "datasets/" : !strcmp(r->type, "space") ? "spaces/" : "",
                                r->id, id);
    cJSON_AddStringToObject(o, "commitUrl", url ? url : "");
    cJSON_AddNullToObject(o, "pullRequestUrl");
    cJSON_AddStringToObject(o, "hookOutput", "");
    free(url);
    free(base);
    return os__send_json(x->c, 200, o, NULL);
}
