/* net_hub_int.c — net/hub.c compiled with fuzz entry points (fuzz_net.h).
 * The handlers run against a stand-in hub (no zn_http: nothing here may
 * start a request, so a tree page with a Link header is parsed the way
 * tree_done parses it, without fetching the next page). */
#include "hub.c"

#include "fuzz_net.h"

static zn_hub *fake_hub(void)
{
    zn_hub *h = calloc(1, sizeof *h);
    if (!h || !(h->endpoint = strdup("https://hub.example")))
        abort();
    return h;
}

static void fake_hub_free(zn_hub *h)
{
    if (h->ops || h->pending)
        abort(); /* an operation leaked */
    free(h->endpoint);
    free(h);
}

typedef struct res {
    int calls, err;
    zn_revision rev;
    zn_tree *tree;
    zn_resolve_info info;
    bool has_info;
} res;

static void rev_cb(void *ud, int err, const zn_revision *rv)
{
    res *r = ud;
    r->calls++;
    r->err = err;
    if (!err)
        r->rev = *rv;
}

static void tree_cb(void *ud, int err, zn_tree *t)
{
    res *r = ud;
    r->calls++;
    r->err = err;
    r->tree = t;
}

static void resolve_cb(void *ud, int err, const zn_resolve_info *in)
{
    res *r = ud;
    r->calls++;
    r->err = err;
    if (in) {
        r->info = *in;
        r->has_info = true;
    }
}

int zfz_hub_revision(const zn_resp *resp, zn_revision *out)
{
    zn_hub *h = fake_hub();
    res r = {0};
    zn_op *op = op_new(h, OP_REVISION, ZN_MODEL, "org/name", "main", &r);
    if (!op)
        abort();
    op->cb.rev = rev_cb;
    revision_done(op, 0, resp);
    if (r.calls != 1)
        abort();
    fake_hub_free(h);
    *out = r.rev;
    return r.err;
}

int zfz_hub_tree(const zn_resp *resp, zn_tree **tree, char **next)
{
    zn_hub *h = fake_hub();
    res r = {0};
    *tree = NULL;
    *next = NULL;
    zn_op *op = op_new(h, OP_TREE, ZN_MODEL, "org/name", "main", &r);
    if (!op || !(op->tree = calloc(1, sizeof *op->tree)) ||
        !(op->page_url = strdup("https://hub.example/api/models/org/name/tree/main"
                                "?recursive=true&expand=false")))
        abort();
    op->cb.tree = tree_cb;
    const char *link = zn_resp_header(resp, "Link");
    if (!link) {
        tree_done(op, 0, resp); /* the last page: completes */
        if (r.calls != 1)
            abort();
        *tree = r.tree;
    } else {
        /* tree_done's steps up to starting the next request */
        cJSON *j = parse_body(resp);
        int rc = j ? tree_add_page(op, j) : -EBADMSG;
        cJSON_Delete(j);
        char *nx = link_next(link);
        if (nx) {
            *next = zn__resolve_url(op->page_url, nx);
            free(nx);
        }
        r.err = rc;
        if (!rc) {
            op->tree->pages++;
            *tree = op->tree;
            op->tree = NULL;
        }
        op_end(op);
    }
    fake_hub_free(h);
    return r.err;
}

int zfz_hub_resolve(const zn_resp *resp, int err, zn_resolve_info *out)
{
    zn_hub *h = fake_hub();
    res r = {0};
    zn_op *op = op_new(h, OP_RESOLVE, ZN_MODEL, "org/name", "main", &r);
    if (!op)
        abort();
    op->cb.resolve = resolve_cb;
    resolve_done(op, err, resp);
    if (r.calls != 1 || !r.has_info)
        abort();
    fake_hub_free(h);
    *out = r.info;
    return r.err;
}

int zfz_hub_token(const zn_resp *resp, char **access, char **cas_url, int64_t *exp)
{
    tok t;
    memset(&t, 0, sizeof t);
    t.wtail = &t.waiters;
    tok_fetch_done(&t, 0, resp);
    *access = *cas_url = NULL;
    *exp = 0;
    if (!t.valid)
        return -EBADMSG; /* tok_fetch_done's verdict reaches waiters only */
    *access = t.access;
    *cas_url = t.cas_url;
    *exp = t.exp;
    return 0;
}

bool zfz_hub_valid_repo_id(const char *s)
{
    return valid_repo_id(s);
}

bool zfz_hub_valid_repo_path(const char *s)
{
    return valid_repo_path(s);
}
