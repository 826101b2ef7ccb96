/* dht.c — Mainline DHT node (BEP 5, IPv4) on one uv_udp_t (disc.h).
 *
 * Layout.  Routing table: 160 buckets of K nodes indexed by the number of
 *   leading bits a node id shares with ours.  Outstanding queries ("txns")
 *   sit in a fixed array and are matched by 2-byte transaction id and
 *   source address.  Lookups ("searches") keep up to MAXC candidates sorted
 *   by XOR distance to the target (candidates of unknown id — bootstrap
 *   addresses — first).  One repeating timer expires queries and runs the
 *   periodic work (token secret, re-announces, peer store expiry, state).
 * Callbacks.  Completions go through d->finished and are delivered at the
 *   end of the libuv callback that caused them (never from inside a start
 *   call); peers of a get_peers arrive from the receive callback.  A user
 *   callback may free the node: entry points count d->busy and the memory
 *   goes only after the outermost one returned and the handles closed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/random.h>
#include <unistd.h>

#include "disc.h"

#define K 8
#define NBUCKETS 160
#define ALPHA 3
#define MAXC 128
#define MAXTXN 512
#define GOOD_MS (15 * 60 * 1000ULL)
#define PEER_TTL_MS (30 * 60 * 1000ULL)
#define MAX_BOOT 16
#define KRPC_MAX 2048
#define TOKEN_LEN 8
#define AMP 3          /* an answer to an unverified source: at most AMP × its query */
#define RL_SLOTS 1024  /* per-source rate limit table (bounded) */
#define RL_WAYS 8      /* slots probed per source; the least recently used is reused */
#define VER_SLOTS 1024 /* addresses that proved themselves (answered us / our token) */

enum { Q_PING = 1, Q_FIND, Q_GETPEERS, Q_ANNOUNCE };
enum { SK_PING = 1, SK_FIND, SK_PEERS, SK_ANNOUNCE };
enum { C_NEW = 0, C_SENT, C_OK, C_FAIL };

typedef struct dnode {
    uint8_t id[20];
    struct sockaddr_in addr;
    uint64_t last_reply, last_query, last_ping;
    int fails;
    bool replied;
} dnode;

typedef struct bucket {
    dnode n[K];
    int cnt;
} bucket;

typedef struct cand {
    uint8_t id[20];
    bool has_id;
    struct sockaddr_in addr;
    int state;
    uint8_t token[64];
    size_t toklen;
} cand;

typedef struct search {
    struct search *next;
    int kind;
    uint8_t target[20];
    cand c[MAXC];
    int nc, inflight, phase, acks, ann_pending;
    uint64_t t0;               /* started (uv_now): a lookup ends by t0 + search_max */
    uint16_t port;
    int err;
    zn_dht_peers_cb pcb;
    zn_dht_done_cb dcb;
    void *ud;
    struct sockaddr_storage *seen;
    size_t nseen, capseen;
} search;

typedef struct txn {
    bool used;
    uint16_t tid;
    int type;
    struct sockaddr_in to;
    search *s;
    uint64_t deadline;
} txn;

typedef struct speer {
    struct sockaddr_in addr;
    uint64_t at;
} speer;

typedef struct shash {
    uint8_t ih[20];
    speer *p;
    size_t n;
    uint64_t touched;
} shash;

typedef struct ann {
    struct ann *next;
    uint8_t ih[20];
    uint16_t port;
    uint64_t next_at;
} ann;

/* Token bucket of one source IPv4 address (issue #19). */
typedef struct rlimit {
    uint32_t ip;      /* network order; 0 = free */
    uint32_t tokens;  /* in 1/1000 of a query */
    uint64_t at;      /* uv_now of the last refill */
} rlimit;

/* An address that answered one of our queries or presented a valid token of
 * ours: it is not spoofed, so it may get answers larger than its query. */
typedef struct vaddr {
    struct sockaddr_in a;
    uint64_t at;
} vaddr;

typedef struct gai_req {
    uv_getaddrinfo_t g;
    zn_dht *d;
} gai_req;

struct zn_dht {
    uv_loop_t *loop;
    uv_udp_t sock;
    uv_timer_t timer;
    uint8_t id[20];
    bucket b[NBUCKETS];
    txn tx[MAXTXN];
    search *searches, *finished;
    struct sockaddr_in boot[MAX_BOOT];
    int nboot;
    shash *store;
    size_t nstore;
    ann *anns;
    uint8_t secret[16], prev_secret[16];
    uint64_t secret_at, last_maint;
    char *state_path;
    uint32_t qtimeout, rotate_ms, announce_ms;
    size_t max_hashes, max_peers;
    uint32_t rl_rate, rl_burst;
    uint8_t hkey[16]; /* keys the two tables' hashes (no crafted collisions) */
    rlimit rl[RL_SLOTS];
    vaddr ver[VER_SLOTS];
    zn_dht_stats st;
    int busy, open_handles, pending_gai;
    bool free_pending, closing;
};

/* ---- small helpers ---------------------------------------------------------- */

static void rnd(void *p, size_t n)
{
    if (getrandom(p, n, 0) != (ssize_t)n) {
        uint64_t x = uv_hrtime() ^ (uintptr_t)p;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ((uint8_t *)p)[i] = (uint8_t)x;
        }
    }
}

static int prefix_len(const uint8_t a[20], const uint8_t b[20])
{
    for (int i = 0; i < 20; i++) {
        uint8_t x = a[i] ^ b[i];
        if (x)
            return i * 8 + __builtin_clz((unsigned)x) - 24;
    }
    return 160;
}

/* <0 when a is closer to t than b */
static int dist_cmp(const uint8_t t[20], const uint8_t a[20], const uint8_t b[20])
{
    for (int i = 0; i < 20; i++) {
        uint8_t x = a[i] ^ t[i], y = b[i] ^ t[i];
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static bool addr_eq(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

static void send_buf(zn_dht *d, const struct sockaddr_in *to, zb_buf *b)
{
    if (b->err == 0 && b->len) {
        uv_buf_t u = uv_buf_init((char *)b->p, (unsigned)b->len);
        (void)uv_udp_try_send(&d->sock, &u, 1, (const struct sockaddr *)to); /* loss = timeout */
    }
    free(b->p);
}

static void compact_node(uint8_t out[26], const uint8_t id[20], const struct sockaddr_in *a)
{
    memcpy(out, id, 20);
    memcpy(out + 20, &a->sin_addr, 4);
    memcpy(out + 24, &a->sin_port, 2);
}

/* ---- tokens ----------------------------------------------------------------- */

static void make_token(const uint8_t secret[16], const struct sockaddr_in *a, uint8_t out[8])
{
    uint8_t buf[20], md[20];
    unsigned int ml = 20;
    memcpy(buf, secret, 16);
    memcpy(buf + 16, &a->sin_addr, 4);
    EVP_Digest(buf, sizeof buf, md, &ml, EVP_sha1(), NULL);
    memcpy(out, md, TOKEN_LEN);
}

void zn_dht_token_for(const zn_dht *d, const struct sockaddr *sa, uint8_t out[8])
{
    make_token(d->secret, (const struct sockaddr_in *)sa, out);
}

void zn_dht_rotate_secret(zn_dht *d)
{
    memcpy(d->prev_secret, d->secret, 16);
    rnd(d->secret, 16);
    d->secret_at = uv_now(d->loop);
}

static bool token_ok(const zn_dht *d, const struct sockaddr_in *a, const uint8_t *t, size_t n)
{
    uint8_t x[8];
    if (n != TOKEN_LEN)
        return false;
    make_token(d->secret, a, x);
    if (!memcmp(x, t, TOKEN_LEN))
        return true;
    make_token(d->prev_secret, a, x);
    return !memcmp(x, t, TOKEN_LEN);
}

/* ---- routing table ------------------------------------------------------------ */

static bool node_good(const dnode *n, uint64_t now)
{
    return n->replied && n->fails < 3 &&
           (now - n->last_reply < GOOD_MS || now - n->last_query < GOOD_MS);
}

static int send_query(zn_dht *d, const struct sockaddr_in *to, int type, const uint8_t *target,
                      search *s, const uint8_t *token, size_t toklen, uint16_t port);

/* Insert or refresh: replied = it answered one of our queries (sent to that
 * address, matched by transaction id).  Only such an answer may set the
 * address of a known id: a query claiming a known id from another address
 * (spoofable) changes nothing (issue #19).  Returns true when a node was
 * newly inserted without having answered (the caller may ping it). */
static bool table_seen(zn_dht *d, const uint8_t id[20], const struct sockaddr_in *a, bool replied)
{
    if (!memcmp(id, d->id, 20) || a->sin_port == 0)
        return false;
    uint64_t now = uv_now(d->loop);
    int pl = prefix_len(id, d->id);
    bucket *b = &d->b[pl >= NBUCKETS ? NBUCKETS - 1 : pl];
    for (int i = 0; i < b->cnt; i++) {
        dnode *n = &b->n[i];
        if (!memcmp(n->id, id, 20)) {
            if (replied) {
                n->addr = *a;
                n->replied = true;
                n->last_reply = now;
                n->fails = 0;
            } else if (addr_eq(&n->addr, a)) {
                n->last_query = now;
            } else {
                d->st.addr_kept++;
            }
            return false;
        }
    }
    dnode *slot = NULL;
    if (b->cnt < K) {
        slot = &b->n[b->cnt++];
    } else {
        dnode *stale = NULL;
        for (int i = 0; i < b->cnt; i++) {
            /* bad, or never answered and missed its ping */
            if (b->n[i].fails >= 3 || (!b->n[i].replied && b->n[i].fails >= 1)) {
                slot = &b->n[i];
                break;
            }
            if (!node_good(&b->n[i], now) &&
                (!stale || b->n[i].last_reply < stale->last_reply))
                stale = &b->n[i];
        }
        /* a node that answered us takes the place of one that never did
         * (queries, spoofed or not, cannot keep answering nodes out) */
        for (int i = 0; !slot && replied && i < b->cnt; i++)
            if (!b->n[i].replied)
                slot = &b->n[i];
        if (!slot) {
            if (stale && now - stale->last_ping > d->qtimeout) {
                stale->last_ping = now;
                send_query(d, &stale->addr, Q_PING, NULL, NULL, NULL, 0, 0);
            }
            return false;
        }
    }
    memset(slot, 0, sizeof *slot);
    memcpy(slot->id, id, 20);
    slot->addr = *a;
    slot->replied = replied;
    if (replied)
        slot->last_reply = now;
    else
        slot->last_query = now;
    return !replied;
}

static void table_failed(zn_dht *d, const struct sockaddr_in *a)
{
    for (int i = 0; i < NBUCKETS; i++)
        for (int j = 0; j < d->b[i].cnt; j++)
            if (addr_eq(&d->b[i].n[j].addr, a))
                d->b[i].n[j].fails++;
}

typedef struct nref {
    const dnode *n;
    const uint8_t *t;
} nref;

static const uint8_t *sort_target;
static int nref_cmp(const void *a, const void *b)
{
    return dist_cmp(sort_target, ((const nref *)a)->n->id, ((const nref *)b)->n->id);
}

/* closest usable nodes (fails < 3); answered: only those that answered one
 * of our queries (the ones we hand out to others, issue #19) */
static size_t closest_nodes(const zn_dht *d, const uint8_t t[20], const dnode **out, size_t max,
                            bool answered)
{
    static nref all[NBUCKETS * K];
    size_t n = 0;
    for (int i = 0; i < NBUCKETS; i++)
        for (int j = 0; j < d->b[i].cnt; j++)
            if (d->b[i].n[j].fails < 3 && (!answered || d->b[i].n[j].replied))
                all[n++] = (nref){&d->b[i].n[j], t};
    sort_target = t;
    qsort(all, n, sizeof *all, nref_cmp);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = all[i].n;
    return n;
}

size_t zn_dht_closest(const zn_dht *d, const uint8_t target[20], uint8_t (*ids)[20],
                      struct sockaddr_storage *addrs, size_t max)
{
    const dnode *ns[NBUCKETS * K];
    size_t n = closest_nodes(d, target, ns, max < NBUCKETS * K ? max : NBUCKETS * K, false);
    for (size_t i = 0; i < n; i++) {
        if (ids)
            memcpy(ids[i], ns[i]->id, 20);
        if (addrs) {
            memset(&addrs[i], 0, sizeof addrs[i]);
            memcpy(&addrs[i], &ns[i]->addr, sizeof ns[i]->addr);
        }
    }
    return n;
}

/* ---- peer store ----------------------------------------------------------------- */

static shash *store_find(const zn_dht *d, const uint8_t ih[20])
{
    for (size_t i = 0; i < d->nstore; i++)
        if (!memcmp(d->store[i].ih, ih, 20))
            return &d->store[i];
    return NULL;
}

static void store_add(zn_dht *d, const uint8_t ih[20], const struct sockaddr_in *a)
{
    uint64_t now = uv_now(d->loop);
    shash *h = store_find(d, ih);
    if (!h) {
        if (d->nstore == d->max_hashes) { /* evict the least recently announced */
            size_t old = 0;
            for (size_t i = 1; i < d->nstore; i++)
                if (d->store[i].touched < d->store[old].touched)
                    old = i;
            free(d->store[old].p);
            d->store[old] = d->store[--d->nstore];
        }
        h = &d->store[d->nstore++];
        memset(h, 0, sizeof *h);
        memcpy(h->ih, ih, 20);
        h->p = calloc(d->max_peers, sizeof *h->p);
        if (!h->p) {
            d->nstore--;
            return;
        }
    }
    h->touched = now;
    for (size_t i = 0; i < h->n; i++)
        if (addr_eq(&h->p[i].addr, a)) {
            h->p[i].at = now;
            return;
        }
    size_t slot = h->n;
    if (h->n == d->max_peers) { /* replace the oldest */
        slot = 0;
        for (size_t i = 1; i < h->n; i++)
            if (h->p[i].at < h->p[slot].at)
                slot = i;
    } else {
        h->n++;
    }
    h->p[slot].addr = *a;
    h->p[slot].at = now;
}

static void store_expire(zn_dht *d, uint64_t now)
{
    for (size_t i = 0; i < d->nstore;) {
        shash *h = &d->store[i];
        for (size_t j = 0; j < h->n;)
            if (now - h->p[j].at > PEER_TTL_MS)
                h->p[j] = h->p[--h->n];
            else
                j++;
        if (h->n == 0) {
            free(h->p);
            d->store[i] = d->store[--d->nstore];
        } else {
            i++;
        }
    }
}

size_t zn_dht_stored_peers(const zn_dht *d, const uint8_t ih[20], struct sockaddr_storage *out,
                           size_t max)
{
    const shash *h = store_find(d, ih);
    size_t n = 0;
    for (size_t i = 0; h && i < h->n && n < max; i++, n++) {
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], &h->p[i].addr, sizeof h->p[i].addr);
    }
    return n;
}

/* ---- KRPC parse --------------------------------------------------------------- */

int zn_krpc_parse(const uint8_t *buf, size_t len, zn_krpc *m)
{
    memset(m, 0, sizeof *m);
    if (len > KRPC_MAX)
        return -EMSGSIZE;
    size_t used = 0;
    int rc = zb_decode(buf, len, ZB_LENIENT_ORDER, &m->root, &used);
    if (rc < 0) {
        m->root = NULL;
        return rc == -ENOMEM ? rc : -EBADMSG;
    }
    const zb_val *r = m->root;
    const uint8_t *y;
    size_t ylen;
    if (used != len || r->type != ZB_DICT || !zb_get_str(r, "t", &m->t, &m->tlen) ||
        m->tlen == 0 || m->tlen > 32 || !zb_get_str(r, "y", &y, &ylen) || ylen != 1)
        goto bad;
    m->y = (char)y[0];
    const uint8_t *id;
    size_t idlen;
    if (m->y == 'q') {
        m->args = zb_get(r, "a");
        if (!zb_get_str(r, "q", &m->q, &m->qlen) || !m->args || m->args->type != ZB_DICT ||
            !zb_get_str(m->args, "id", &id, &idlen) || idlen != 20)
            goto bad;
        m->id = id;
    } else if (m->y == 'r') {
        m->args = zb_get(r, "r");
        if (!m->args || m->args->type != ZB_DICT || !zb_get_str(m->args, "id", &id, &idlen) ||
            idlen != 20)
            goto bad;
        m->id = id;
    } else if (m->y == 'e') {
        const zb_val *e = zb_get(r, "e");
        if (!e || e->type != ZB_LIST || e->len < 1 || e->items[0].type != ZB_INT)
            goto bad;
        m->ecode = e->items[0].i;
    } else {
        goto bad;
    }
    return 0;
bad:
    zb_free(m->root);
    m->root = NULL;
    return -EBADMSG;
}

/* ---- sending -------------------------------------------------------------------- */

static const char VERSION[4] = {'Z', 'F', 0, 1};

static txn *txn_new(zn_dht *d)
{
    for (;;) {
        uint16_t tid;
        rnd(&tid, sizeof tid);
        bool clash = false;
        txn *free_slot = NULL;
        for (int i = 0; i < MAXTXN; i++) {
            if (d->tx[i].used && d->tx[i].tid == tid)
                clash = true;
            else if (!d->tx[i].used && !free_slot)
                free_slot = &d->tx[i];
        }
        if (!free_slot)
            return NULL;
        if (clash)
            continue;
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->used = true;
        free_slot->tid = tid;
        return free_slot;
    }
}

static int send_query(zn_dht *d, const struct sockaddr_in *to, int type, const uint8_t *target,
                      search *s, const uint8_t *token, size_t toklen, uint16_t port)
{
    txn *x = txn_new(d);
    if (!x)
        return -ENOBUFS; /* too many queries in flight */
    x->type = type;
    x->to = *to;
    x->s = s;
    x->deadline = uv_now(d->loop) + d->qtimeout;
    if (s)
        s->inflight++;
    zb_buf b = {0};
    uint8_t t[2] = {(uint8_t)(x->tid >> 8), (uint8_t)x->tid};
    zb_dict(&b);
    zb_cstr(&b, "a");
    zb_dict(&b);
    zb_cstr(&b, "id");
    zb_str(&b, d->id, 20);
    if (type == Q_ANNOUNCE) {
        zb_cstr(&b, "implied_port");
        zb_int(&b, port == 0);
        zb_cstr(&b, "info_hash");
        zb_str(&b, target, 20);
        zb_cstr(&b, "port");
        zb_int(&b, port ? port : zn_dht_port(d));
        zb_cstr(&b, "token");
        zb_str(&b, token, toklen);
    } else if (type == Q_GETPEERS) {
        zb_cstr(&b, "info_hash");
        zb_str(&b, target, 20);
    } else if (type == Q_FIND) {
        zb_cstr(&b, "target");
        zb_str(&b, target, 20);
    }
    zb_end(&b);
    zb_cstr(&b, "q");
    zb_cstr(&b, type == Q_PING ? "ping" : type == Q_FIND ? "find_node"
                : type == Q_GETPEERS ? "get_peers" : "announce_peer");
    zb_cstr(&b, "t");
    zb_str(&b, t, 2);
    zb_cstr(&b, "v");
    zb_str(&b, VERSION, 4);
    zb_cstr(&b, "y");
    zb_cstr(&b, "q");
    zb_end(&b);
    d->st.queries_out++;
    send_buf(d, to, &b);
    return 0;
}

static void send_error(zn_dht *d, const struct sockaddr_in *to, const zn_krpc *m, int code,
                       const char *msg)
{
    zb_buf b = {0};
    zb_dict(&b);
    zb_cstr(&b, "e");
    zb_list(&b);
    zb_int(&b, code);
    zb_cstr(&b, msg);
    zb_end(&b);
    zb_cstr(&b, "t");
    zb_str(&b, m->t, m->tlen);
    zb_cstr(&b, "v");
    zb_str(&b, VERSION, 4);
    zb_cstr(&b, "y");
    zb_cstr(&b, "e");
    zb_end(&b);
    send_buf(d, to, &b);
}

/* ---- hostile sources (issue #19) ------------------------------------------------- */

static uint32_t hkey(const zn_dht *d, uint32_t ip, uint16_t port)
{
    uint8_t in[22], md[32];
    unsigned int ml = sizeof md;
    memcpy(in, d->hkey, 16);
    memcpy(in + 16, &ip, 4);
    memcpy(in + 20, &port, 2);
    /* one digest per datagram: cheap next to the bencode parse */
    EVP_Digest(in, sizeof in, md, &ml, EVP_sha256(), NULL);
    uint32_t h;
    memcpy(&h, md, 4);
    return h;
}

/* Token bucket per source IPv4 address: rl_burst queries, refilled at
 * rl_rate per second.  The table is bounded (RL_SLOTS); a source probes
 * RL_WAYS slots and takes the least recently refilled one when all are
 * used, so a flood from many addresses costs fixed memory and time. */
static bool rate_ok(zn_dht *d, const struct sockaddr_in *from)
{
    uint32_t ip = from->sin_addr.s_addr ? from->sin_addr.s_addr : 1;
    uint64_t now = uv_now(d->loop);
    uint32_t h = hkey(d, ip, 0);
    rlimit *e = NULL, *old = NULL;
    for (unsigned i = 0; i < RL_WAYS; i++) {
        rlimit *r = &d->rl[(h + i) % RL_SLOTS];
        if (r->ip == ip) {
            e = r;
            break;
        }
        if (!old || (old->ip && (r->ip == 0 || r->at < old->at)))
            old = r; /* a free slot, else the least recently used */
    }
    uint64_t full = (uint64_t)d->rl_burst * 1000;
    if (!e) {
        e = old;
        e->ip = ip;
        e->tokens = (uint32_t)full;
        e->at = now;
    }
    uint64_t t = e->tokens + (now - e->at) * d->rl_rate; /* ms × q/s = 1/1000 q */
    e->tokens = (uint32_t)(t > full ? full : t);
    e->at = now;
    if (e->tokens < 1000) {
        d->st.rate_limited++;
        return false;
    }
    e->tokens -= 1000;
    return true;
}

/* It answered one of our queries at this address: not spoofed. */
static void verified_add(zn_dht *d, const struct sockaddr_in *a)
{
    vaddr *v = &d->ver[hkey(d, a->sin_addr.s_addr, a->sin_port) % VER_SLOTS];
    v->a = *a;
    v->at = uv_now(d->loop);
}

static bool verified(const zn_dht *d, const struct sockaddr_in *a)
{
    const vaddr *v = &d->ver[hkey(d, a->sin_addr.s_addr, a->sin_port) % VER_SLOTS];
    return v->at && addr_eq(&v->a, a) && uv_now(d->loop) - v->at < GOOD_MS;
}

static size_t txn_used(const zn_dht *d)
{
    size_t n = 0;
    for (int i = 0; i < MAXTXN; i++)
        n += d->tx[i].used;
    return n;
}

/* ---- server ---------------------------------------------------------------------- */

/* The answer to a find_node / get_peers / ping / announce_peer with at most
 * nn nodes and nv values. */
static void build_answer(zn_dht *d, zb_buf *b, const zn_krpc *m, int type,
                         const struct sockaddr_in *from, const dnode *const *ns, size_t nn,
                         const shash *h, size_t nv)
{
    zb_dict(b);
    zb_cstr(b, "r");
    zb_dict(b);
    zb_cstr(b, "id");
    zb_str(b, d->id, 20);
    if (type == Q_FIND || type == Q_GETPEERS) {
        uint8_t nodes[K * 26];
        for (size_t i = 0; i < nn; i++)
            compact_node(nodes + 26 * i, ns[i]->id, &ns[i]->addr);
        zb_cstr(b, "nodes");
        zb_str(b, nodes, 26 * nn);
    }
    if (type == Q_GETPEERS) {
        uint8_t t[TOKEN_LEN];
        make_token(d->secret, from, t);
        zb_cstr(b, "token");
        zb_str(b, t, TOKEN_LEN);
        if (nv) {
            zb_cstr(b, "values");
            zb_list(b);
            for (size_t i = 0; i < nv; i++) {
                uint8_t c[6];
                memcpy(c, &h->p[i].addr.sin_addr, 4);
                memcpy(c + 4, &h->p[i].addr.sin_port, 2);
                zb_str(b, c, 6);
            }
            zb_end(b);
        }
    }
    zb_end(b);
    zb_cstr(b, "t");
    zb_str(b, m->t, m->tlen);
    zb_cstr(b, "v");
    zb_str(b, VERSION, 4);
    zb_cstr(b, "y");
    zb_cstr(b, "r");
    zb_end(b);
}

static void handle_query(zn_dht *d, const zn_krpc *m, const struct sockaddr_in *from,
                         size_t qlen)
{
    d->st.queries_in++;
    const uint8_t *target = NULL, *tok = NULL;
    size_t tlen = 0, toklen = 0;
    int type = 0;
    if (m->qlen == 4 && !memcmp(m->q, "ping", 4)) {
        type = Q_PING;
    } else if (m->qlen == 9 && !memcmp(m->q, "find_node", 9)) {
        type = Q_FIND;
        if (!zb_get_str(m->args, "target", &target, &tlen) || tlen != 20)
            goto malformed;
    } else if (m->qlen == 9 && !memcmp(m->q, "get_peers", 9)) {
        type = Q_GETPEERS;
        if (!zb_get_str(m->args, "info_hash", &target, &tlen) || tlen != 20)
            goto malformed;
    } else if (m->qlen == 13 && !memcmp(m->q, "announce_peer", 13)) {
        type = Q_ANNOUNCE;
        int64_t port = 0, implied = 0;
        if (!zb_get_str(m->args, "info_hash", &target, &tlen) || tlen != 20 ||
            !zb_get_str(m->args, "token", &tok, &toklen))
            goto malformed;
        zb_get_int(m->args, "implied_port", &implied);
        if (!implied && (!zb_get_int(m->args, "port", &port) || port <= 0 || port > 65535))
            goto malformed;
        if (!token_ok(d, from, tok, toklen)) {
            d->st.bad_tokens++;
            send_error(d, from, m, 203, "invalid token");
            return;
        }
        verified_add(d, from); /* our token came back to this address */
        struct sockaddr_in pa = *from;
        if (!implied)
            pa.sin_port = htons((uint16_t)port);
        store_add(d, target, &pa);
    } else {
        send_error(d, from, m, 204, "method unknown");
        table_seen(d, m->id, from, false);
        return;
    }
    /* a newcomer enters the table unverified (never handed out) and is
     * pinged; its answer, if any, confirms it.  Pings of newcomers take at
     * most half the transaction slots, so our own lookups keep theirs. */
    if (table_seen(d, m->id, from, false) && txn_used(d) < MAXTXN / 2)
        send_query(d, from, Q_PING, NULL, NULL, NULL, 0, 0);
    const dnode *ns[K];
    size_t nn = 0, nv = 0;
    const shash *h = NULL;
    if (type == Q_FIND || type == Q_GETPEERS)
        nn = closest_nodes(d, target, ns, K, true);
    if (type == Q_GETPEERS && (h = store_find(d, target)) != NULL)
        nv = h->n < 100 ? h->n : 100; /* keeps the answer < 1024 B */
    zb_buf b = {0};
    build_answer(d, &b, m, type, from, ns, nn, h, nv);
    /* An unverified source may be a spoofed victim: its answer is at most
     * AMP × the query (values dropped first, then nodes; the token stays,
     * so an honest node can still announce and get the rest once it has
     * answered us). */
    if (b.err == 0 && b.len > AMP * qlen && !verified(d, from)) {
        d->st.trimmed++;
        while (b.err == 0 && b.len > AMP * qlen && (nv || nn)) {
            size_t over = b.len - AMP * qlen;
            if (nv) {
                size_t drop = (over + 7) / 8; /* "6:" + 6 bytes each */
                nv = drop >= nv ? 0 : nv - drop;
            } else {
                size_t drop = (over + 25) / 26;
                nn = drop >= nn ? 0 : nn - drop;
            }
            free(b.p);
            b = (zb_buf){0};
            build_answer(d, &b, m, type, from, ns, nn, h, nv);
        }
        if (b.err == 0 && b.len > AMP * qlen) { /* even the bare answer is too big */
            free(b.p);
            return;
        }
    }
    send_buf(d, from, &b);
    return;
malformed:
    send_error(d, from, m, 203, "malformed query");
}

/* ---- searches -------------------------------------------------------------------- */

static void search_finish(zn_dht *d, search *s, int err)
{
    for (search **pp = &d->searches; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    for (int i = 0; i < MAXTXN; i++)
        if (d->tx[i].used && d->tx[i].s == s)
            d->tx[i].s = NULL;
    s->err = err;
    s->next = d->finished;
    d->finished = s;
}

static int cand_cmp_t(const uint8_t *t, const cand *a, const cand *b)
{
    if (a->has_id != b->has_id)
        return a->has_id ? 1 : -1;
    if (!a->has_id)
        return 0;
    return dist_cmp(t, a->id, b->id);
}

static void cand_add(search *s, const uint8_t *id, const struct sockaddr_in *a, const zn_dht *d)
{
    if (id && !memcmp(id, d->id, 20))
        return;
    for (int i = 0; i < s->nc; i++)
        if ((id && s->c[i].has_id && !memcmp(s->c[i].id, id, 20)) || addr_eq(&s->c[i].addr, a))
            return;
    cand c = {0};
    if (id) {
        memcpy(c.id, id, 20);
        c.has_id = true;
    }
    c.addr = *a;
    int pos = s->nc;
    while (pos > 0 && cand_cmp_t(s->target, &c, &s->c[pos - 1]) < 0)
        pos--;
    if (s->nc == MAXC) {
        if (pos == MAXC)
            return;
        /* drop the farthest entry that is not in flight */
        int drop = MAXC - 1;
        while (drop >= pos && s->c[drop].state == C_SENT)
            drop--;
        if (drop < pos)
            return;
        memmove(&s->c[drop], &s->c[drop + 1], (size_t)(s->nc - drop - 1) * sizeof c);
        s->nc--;
    }
    memmove(&s->c[pos + 1], &s->c[pos], (size_t)(s->nc - pos) * sizeof c);
    s->c[pos] = c;
    s->nc++;
}

static void search_step(zn_dht *d, search *s)
{
    if (s->phase == 1) { /* announces sent at t0: their answers or timeouts */
        if (s->ann_pending <= 0 || uv_now(d->loop) - s->t0 > 2ull * d->qtimeout + 1000)
            search_finish(d, s, 0);
        return;
    }
    int qtype = s->kind == SK_FIND ? Q_FIND : s->kind == SK_PING ? Q_PING : Q_GETPEERS;
    int seen = 0;
    bool open = false;
    /* however the network answers (peers that keep naming new nodes, or
     * never answer), a lookup ends in bounded time with what it found */
    uint64_t max = 10ull * d->qtimeout;
    if (uv_now(d->loop) - s->t0 > max) {
        for (int i = 0; i < MAXTXN; i++)
            if (d->tx[i].used && d->tx[i].s == s)
                d->tx[i].s = NULL;
        for (int i = 0; i < s->nc; i++)
            if (s->c[i].state == C_NEW || s->c[i].state == C_SENT)
                s->c[i].state = C_FAIL;
        s->inflight = 0;
        d->st.timeouts++;
    }
    for (int i = 0; i < s->nc && seen < K; i++) {
        cand *c = &s->c[i];
        if (c->state == C_FAIL)
            continue;
        seen++;
        if (c->state == C_NEW) {
            if (s->inflight < ALPHA)
                c->state = send_query(d, &c->addr, qtype, s->target, s, NULL, 0, 0) ? C_FAIL
                                                                                    : C_SENT;
            open |= c->state != C_FAIL;
        } else if (c->state == C_SENT) {
            open = true;
        }
    }
    if (open || s->inflight > 0)
        return;
    if (s->kind == SK_ANNOUNCE) {
        s->phase = 1;
        s->t0 = uv_now(d->loop);
        int sent = 0;
        for (int i = 0; i < s->nc && sent < K; i++) {
            cand *c = &s->c[i];
            if (c->state != C_OK || c->toklen == 0)
                continue;
            if (send_query(d, &c->addr, Q_ANNOUNCE, s->target, s, c->token, c->toklen,
                           s->port) == 0) {
                s->ann_pending++;
                sent++;
            }
        }
        if (s->ann_pending == 0)
            search_finish(d, s, 0);
        return;
    }
    if (s->kind == SK_PING) {
        s->acks = s->nc > 0 && s->c[0].state == C_OK;
        search_finish(d, s, s->acks ? 0 : -ETIMEDOUT);
        return;
    }
    search_finish(d, s, 0);
}

static size_t good_count(const zn_dht *d)
{
    uint64_t now = uv_now(d->loop);
    size_t n = 0;
    for (int i = 0; i < NBUCKETS; i++)
        for (int j = 0; j < d->b[i].cnt; j++)
            n += node_good(&d->b[i].n[j], now);
    return n;
}

static void deliver(zn_dht *d);

static int search_new(zn_dht *d, int kind, const uint8_t target[20], search **out)
{
    if (d->closing)
        return -EINVAL;
    search *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->kind = kind;
    s->t0 = uv_now(d->loop);
    memcpy(s->target, target, 20);
    if (kind != SK_PING) {
        const dnode *ns[2 * K];
        size_t n = closest_nodes(d, target, ns, 2 * K, false);
        for (size_t i = 0; i < n; i++)
            cand_add(s, ns[i]->id, &ns[i]->addr, d);
        if (good_count(d) < K)
            for (int i = 0; i < d->nboot; i++)
                cand_add(s, NULL, &d->boot[i], d);
    }
    s->next = d->searches;
    d->searches = s;
    *out = s;
    return 0;
}

/* sends go out now; completion (even of an empty lookup) only from the timer */
static void search_kick(zn_dht *d, search *s)
{
    int qtype = s->kind == SK_FIND ? Q_FIND : s->kind == SK_PING ? Q_PING : Q_GETPEERS;
    int seen = 0;
    for (int i = 0; i < s->nc && seen < K && s->inflight < ALPHA; i++, seen++)
        s->c[i].state = send_query(d, &s->c[i].addr, qtype, s->target, s, NULL, 0, 0) ? C_FAIL
                                                                                      : C_SENT;
}

static void search_on_response(zn_dht *d, txn *x, const zn_krpc *m)
{
    search *s = x->s;
    if (!s)
        return;
    s->inflight--;
    if (x->type == Q_ANNOUNCE) {
        s->ann_pending--;
        if (m->y == 'r')
            s->acks++;
        return;
    }
    cand *c = NULL;
    for (int i = 0; i < s->nc; i++)
        if (addr_eq(&s->c[i].addr, &x->to) && s->c[i].state == C_SENT) {
            c = &s->c[i];
            break;
        }
    if (!c)
        return;
    if (m->y != 'r') {
        c->state = C_FAIL;
        return;
    }
    c->state = C_OK;
    const uint8_t *tok;
    size_t tl;
    if (zb_get_str(m->args, "token", &tok, &tl) && tl <= sizeof c->token) {
        memcpy(c->token, tok, tl);
        c->toklen = tl;
    }
    if (!c->has_id) { /* a bootstrap address: now we know its id; re-sort */
        cand keep = *c;
        memcpy(keep.id, m->id, 20);
        keep.has_id = true;
        int idx = (int)(c - s->c);
        memmove(&s->c[idx], &s->c[idx + 1], (size_t)(s->nc - idx - 1) * sizeof keep);
        s->nc--;
        int pos = s->nc;
        while (pos > 0 && cand_cmp_t(s->target, &keep, &s->c[pos - 1]) < 0)
            pos--;
        memmove(&s->c[pos + 1], &s->c[pos], (size_t)(s->nc - pos) * sizeof keep);
        s->c[pos] = keep;
        s->nc++;
    }
    const uint8_t *nodes;
    size_t nl;
    if (zb_get_str(m->args, "nodes", &nodes, &nl))
        for (size_t off = 0; off + 26 <= nl; off += 26) {
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET;
            memcpy(&a.sin_addr, nodes + off + 20, 4);
            memcpy(&a.sin_port, nodes + off + 24, 2);
            if (a.sin_port)
                cand_add(s, nodes + off, &a, d);
        }
    const zb_val *vals = zb_get(m->args, "values");
    if (s->pcb && vals && vals->type == ZB_LIST) {
        struct sockaddr_storage got[64];
        size_t ng = 0;
        for (size_t i = 0; i < vals->len && ng < 64; i++) {
            const zb_val *v = &vals->items[i];
            if (v->type != ZB_STR || v->len != 6)
                continue;
            struct sockaddr_storage ss;
            zn_compact_parse(v->s, 6, AF_INET, &ss, 1);
            bool dup = false;
            for (size_t j = 0; j < s->nseen && !dup; j++)
                dup = !memcmp(&s->seen[j], &ss, sizeof(struct sockaddr_in));
            if (dup)
                continue;
            if (s->nseen == s->capseen) {
                size_t nc = s->capseen ? 2 * s->capseen : 16;
                void *p = realloc(s->seen, nc * sizeof *s->seen);
                if (!p)
                    break;
                s->seen = p;
                s->capseen = nc;
            }
            s->seen[s->nseen++] = ss;
            got[ng++] = ss;
        }
        if (ng) {
            d->busy++;
            s->pcb(s->ud, 0, got, ng, false);
            d->busy--;
        }
    }
}

/* ---- receive ----------------------------------------------------------------------- */

static void enter(zn_dht *d)
{
    d->busy++;
}

static void really_close(zn_dht *d);

static void leave(zn_dht *d)
{
    deliver(d);
    if (--d->busy == 0 && d->free_pending)
        really_close(d);
}

static void input(zn_dht *d, const uint8_t *buf, size_t len, const struct sockaddr *sa)
{
    if (!sa || sa->sa_family != AF_INET) {
        d->st.dropped++;
        return;
    }
    const struct sockaddr_in *from = (const struct sockaddr_in *)sa;
    zn_krpc m;
    if (zn_krpc_parse(buf, len, &m) < 0) {
        d->st.dropped++;
        return;
    }
    if (m.y == 'q') {
        if (rate_ok(d, from))
            handle_query(d, &m, from, len);
        zb_free(m.root);
        return;
    }
    txn *x = NULL;
    if (m.tlen == 2) {
        uint16_t tid = (uint16_t)(m.t[0] << 8 | m.t[1]);
        for (int i = 0; i < MAXTXN; i++)
            if (d->tx[i].used && d->tx[i].tid == tid && addr_eq(&d->tx[i].to, from)) {
                x = &d->tx[i];
                break;
            }
    }
    if (!x) {
        d->st.dropped++;
        zb_free(m.root);
        return;
    }
    txn xc = *x; /* the slot may be reused (table_seen can send a ping) */
    x->used = false;
    verified_add(d, from); /* it received our query at this address */
    if (m.y == 'r') {
        d->st.responses_in++;
        table_seen(d, m.id, from, true);
    } else {
        d->st.errors_in++;
    }
    search *s = xc.s;
    search_on_response(d, &xc, &m);
    zb_free(m.root);
    if (s && !d->free_pending && !d->closing)
        search_step(d, s);
}

void zn_dht_input(zn_dht *d, const uint8_t *buf, size_t len, const struct sockaddr *from)
{
    enter(d);
    input(d, buf, len, from);
    leave(d);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    static uint8_t rbuf[65536];
    (void)h, (void)sz;
    *b = uv_buf_init((char *)rbuf, sizeof rbuf);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
                    unsigned flags)
{
    zn_dht *d = h->data;
    (void)flags;
    if (nread <= 0 || d->closing)
        return;
    if (flags & UV_UDP_PARTIAL) {
        d->st.dropped++;
        return;
    }
    zn_dht_input(d, (const uint8_t *)buf->base, (size_t)nread, sa);
}

/* ---- completion --------------------------------------------------------------------- */

static void deliver(zn_dht *d)
{
    while (d->finished) {
        search *s = d->finished;
        d->finished = s->next;
        if (s->kind == SK_PEERS && s->pcb)
            s->pcb(s->ud, s->err, NULL, 0, true);
        else if (s->dcb)
            s->dcb(s->ud, s->err,
                   s->kind == SK_FIND ? (unsigned)good_count(d) : (unsigned)s->acks);
        free(s->seen);
        free(s);
    }
}

/* ---- state ------------------------------------------------------------------------ */

int zn_dht_save(zn_dht *d)
{
    if (!d->state_path)
        return -EINVAL;
    size_t pl = strlen(d->state_path);
    char *tmp = malloc(pl + 8);
    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, pl + 8, "%s.tmp", d->state_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = -errno;
        free(tmp);
        return e;
    }
    char hex[41];
    xet_hex(d->id, 20, hex);
    fprintf(f, "zestfs-dht 1\nid %s\n", hex);
    uint64_t now = uv_now(d->loop);
    for (int i = 0; i < NBUCKETS; i++)
        for (int j = 0; j < d->b[i].cnt; j++) {
            const dnode *n = &d->b[i].n[j];
            if (!node_good(n, now))
                continue;
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &n->addr.sin_addr, ip, sizeof ip);
            xet_hex(n->id, 20, hex);
            fprintf(f, "node %s %s %u\n", hex, ip, (unsigned)ntohs(n->addr.sin_port));
        }
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && rename(tmp, d->state_path) != 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* reads the id (when want_id) and queues the nodes to be pinged */
static void load_state(zn_dht *d, bool want_id)
{
    FILE *f = fopen(d->state_path, "r");
    if (!f)
        return;
    char line[256];
    int nodes = 0; /* an id line counts only before the nodes (their buckets depend on it) */
    if (!fgets(line, sizeof line, f) || strcmp(line, "zestfs-dht 1\n")) {
        fclose(f);
        return;
    }
    while (fgets(line, sizeof line, f)) {
        char hex[64], ip[64];
        unsigned port;
        uint8_t id[20];
        if (sscanf(line, "id %63s", hex) == 1) {
            if (want_id && !nodes && strlen(hex) == 40 && xet_unhex(hex, 20, id) == 0)
                memcpy(d->id, id, 20);
        } else if (sscanf(line, "node %63s %63s %u", hex, ip, &port) == 3) {
            struct sockaddr_in a;
            if (strlen(hex) == 40 && xet_unhex(hex, 20, id) == 0 && port > 0 && port < 65536 &&
                uv_ip4_addr(ip, (int)port, &a) == 0)
                table_seen(d, id, &a, false), nodes++; /* questionable until it answers */
        }
    }
    fclose(f);
}

/* ---- timer ------------------------------------------------------------------------ */

static int start_announce(zn_dht *d, const uint8_t ih[20], uint16_t port, zn_dht_done_cb cb,
                          void *ud);

static void on_tick(uv_timer_t *t)
{
    zn_dht *d = t->data;
    uint64_t now = uv_now(d->loop);
    enter(d);
    for (int i = 0; i < MAXTXN; i++) {
        txn *x = &d->tx[i];
        if (!x->used || x->deadline > now)
            continue;
        x->used = false;
        d->st.timeouts++;
        table_failed(d, &x->to);
        search *s = x->s;
        if (!s)
            continue;
        s->inflight--;
        if (x->type == Q_ANNOUNCE) {
            s->ann_pending--;
        } else {
            for (int j = 0; j < s->nc; j++)
                if (addr_eq(&s->c[j].addr, &x->to) && s->c[j].state == C_SENT) {
                    s->c[j].state = C_FAIL;
                    break;
                }
        }
    }
    /* step every search (also those that never had anyone to ask) */
    for (search *s = d->searches, *next; s; s = next) {
        next = s->next;
        search_step(d, s);
    }
    if (now - d->last_maint >= 1000) {
        d->last_maint = now;
        if (now - d->secret_at >= d->rotate_ms)
            zn_dht_rotate_secret(d);
        store_expire(d, now);
        for (ann *a = d->anns; a; a = a->next)
            if (now >= a->next_at) {
                a->next_at = now + d->announce_ms;
                start_announce(d, a->ih, a->port, NULL, NULL);
            }
    }
    leave(d);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    zn_dht *d = h->data;
    if (--d->open_handles == 0 && d->pending_gai == 0) {
        for (size_t i = 0; i < d->nstore; i++)
            free(d->store[i].p);
        free(d->store);
        free(d->state_path);
        free(d);
    }
}

static void on_boot_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    gai_req *r = (gai_req *)g;
    zn_dht *d = r->d;
    d->pending_gai--;
    if (status == 0 && !d->closing)
        for (struct addrinfo *a = res; a && d->nboot < MAX_BOOT; a = a->ai_next)
            if (a->ai_family == AF_INET) {
                memcpy(&d->boot[d->nboot++], a->ai_addr, sizeof(struct sockaddr_in));
                break;
            }
    uv_freeaddrinfo(res);
    free(r);
    if (d->closing && d->pending_gai == 0 && d->open_handles == 0) {
        for (size_t i = 0; i < d->nstore; i++)
            free(d->store[i].p);
        free(d->store);
        free(d->state_path);
        free(d);
    }
}

static void add_bootstrap(zn_dht *d, uv_loop_t *loop, const char *hp)
{
    const char *colon = strrchr(hp, ':');
    if (!colon || d->nboot >= MAX_BOOT)
        return;
    char host[256];
    size_t hl = (size_t)(colon - hp);
    if (hl == 0 || hl >= sizeof host)
        return;
    memcpy(host, hp, hl);
    host[hl] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return;
    if (uv_ip4_addr(host, port, &d->boot[d->nboot]) == 0) {
        d->nboot++;
        return;
    }
    gai_req *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->d = d;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
    if (uv_getaddrinfo(loop, &r->g, on_boot_resolved, host, colon + 1, &hints) == 0)
        d->pending_gai++;
    else
        free(r);
}

int zn_dht_new(uv_loop_t *loop, const zn_dht_opts *o, zn_dht **out)
{
    zn_dht_opts def = {0};
    if (!o)
        o = &def;
    zn_dht *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->loop = loop;
    d->qtimeout = o->query_timeout_ms ? o->query_timeout_ms : 2000;
    d->rotate_ms = o->token_rotate_ms ? o->token_rotate_ms : 300000;
    d->announce_ms = o->announce_interval_ms ? o->announce_interval_ms : 900000;
    d->max_hashes = o->max_hashes ? o->max_hashes : 2000;
    d->max_peers = o->max_peers ? o->max_peers : 500;
    d->rl_rate = o->rate_per_s ? o->rate_per_s : 50;
    d->rl_burst = o->rate_burst ? o->rate_burst : 100;
    d->store = calloc(d->max_hashes, sizeof *d->store);
    if (!d->store || (o->state_path && !(d->state_path = strdup(o->state_path)))) {
        free(d->store);
        free(d);
        return -ENOMEM;
    }
    rnd(d->id, 20);
    rnd(d->secret, 16);
    rnd(d->prev_secret, 16);
    rnd(d->hkey, sizeof d->hkey);
    d->secret_at = d->last_maint = uv_now(loop);
    if (o->node_id)
        memcpy(d->id, o->node_id, 20);
    struct sockaddr_in bind;
    int rc = uv_ip4_addr(o->bind_ip ? o->bind_ip : "0.0.0.0", o->port, &bind);
    if (rc == 0)
        rc = uv_udp_init(loop, &d->sock);
    if (rc < 0) {
        free(d->store);
        free(d->state_path);
        free(d);
        return rc;
    }
    d->sock.data = d;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->open_handles = 2;
    rc = uv_udp_bind(&d->sock, (const struct sockaddr *)&bind, 0);
    if (rc == 0)
        rc = uv_udp_recv_start(&d->sock, on_alloc, on_recv);
    if (rc < 0) {
        d->closing = true;
        uv_close((uv_handle_t *)&d->sock, on_closed);
        uv_close((uv_handle_t *)&d->timer, on_closed);
        return rc;
    }
    uint32_t tick = d->qtimeout / 4;
    if (tick > 250)
        tick = 250;
    if (tick < 10)
        tick = 10;
    uv_timer_start(&d->timer, on_tick, tick, tick);
    if (d->state_path) /* the id first, then nodes into its buckets (may send pings) */
        load_state(d, o->node_id == NULL);
    for (const char *const *b = o->bootstrap; b && *b; b++)
        add_bootstrap(d, loop, *b);
    /* ping the nodes remembered from last time */
    for (int i = 0; i < NBUCKETS; i++)
        for (int j = 0; j < d->b[i].cnt; j++)
            if (!d->b[i].n[j].replied)
                send_query(d, &d->b[i].n[j].addr, Q_PING, NULL, NULL, NULL, 0, 0);
    *out = d;
    return 0;
}

static void really_close(zn_dht *d)
{
    d->free_pending = false;
    uv_close((uv_handle_t *)&d->sock, on_closed);
    uv_close((uv_handle_t *)&d->timer, on_closed);
}

void zn_dht_free(zn_dht *d)
{
    if (!d || d->closing)
        return;
    if (d->state_path)
        zn_dht_save(d);
    d->closing = true;
    while (d->searches)
        search_finish(d, d->searches, -ECANCELED);
    while (d->anns) {
        ann *a = d->anns;
        d->anns = a->next;
        free(a);
    }
    d->busy++;
    deliver(d);
    d->busy--;
    if (d->busy)
        d->free_pending = true;
    else
        really_close(d);
}

int zn_dht_port(const zn_dht *d)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_udp_getsockname(&d->sock, (struct sockaddr *)&ss, &len) < 0)
        return -EBADF;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

const uint8_t *zn_dht_id(const zn_dht *d)
{
    return d->id;
}

zn_dht_stats zn_dht_get_stats(const zn_dht *d)
{
    zn_dht_stats s = d->st;
    s.good_nodes = good_count(d);
    s.nodes = 0;
    for (int i = 0; i < NBUCKETS; i++)
        s.nodes += (size_t)d->b[i].cnt;
    s.stored_hashes = d->nstore;
    s.stored_peers = 0;
    for (size_t i = 0; i < d->nstore; i++)
        s.stored_peers += d->store[i].n;
    return s;
}

/* ---- public starts ------------------------------------------------------------------- */

int zn_dht_bootstrap(zn_dht *d, zn_dht_done_cb cb, void *ud)
{
    search *s;
    int rc = search_new(d, SK_FIND, d->id, &s);
    if (rc < 0)
        return rc;
    s->dcb = cb;
    s->ud = ud;
    search_kick(d, s);
    return 0;
}

int zn_dht_ping(zn_dht *d, const struct sockaddr *sa, zn_dht_done_cb cb, void *ud)
{
    if (sa->sa_family != AF_INET)
        return -EAFNOSUPPORT;
    search *s;
    int rc = search_new(d, SK_PING, d->id, &s);
    if (rc < 0)
        return rc;
    s->dcb = cb;
    s->ud = ud;
    cand_add(s, NULL, (const struct sockaddr_in *)sa, d);
    search_kick(d, s);
    return 0;
}

int zn_dht_get_peers(zn_dht *d, const uint8_t ih[20], zn_dht_peers_cb cb, void *ud)
{
    if (!cb)
        return -EINVAL;
    search *s;
    int rc = search_new(d, SK_PEERS, ih, &s);
    if (rc < 0)
        return rc;
    s->pcb = cb;
    s->ud = ud;
    search_kick(d, s);
    return 0;
}

static int start_announce(zn_dht *d, const uint8_t ih[20], uint16_t port, zn_dht_done_cb cb,
                          void *ud)
{
    search *s;
    int rc = search_new(d, SK_ANNOUNCE, ih, &s);
    if (rc < 0)
        return rc;
    s->port = port;
    s->dcb = cb;
    s->ud = ud;
    search_kick(d, s);
    return 0;
}

int zn_dht_announce(zn_dht *d, const uint8_t ih[20], uint16_t port, zn_dht_done_cb cb, void *ud)
{
    if (d->closing)
        return -EINVAL;
    ann *a = NULL;
    for (a = d->anns; a; a = a->next)
        if (!memcmp(a->ih, ih, 20))
            break;
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a)
            return -ENOMEM;
        memcpy(a->ih, ih, 20);
        a->next = d->anns;
        d->anns = a;
    }
    a->port = port;
    a->next_at = uv_now(d->loop) + d->announce_ms;
    return start_announce(d, ih, port, cb, ud);
}

void zn_dht_unannounce(zn_dht *d, const uint8_t ih[20])
{
    for (ann **pp = &d->anns; *pp; pp = &(*pp)->next)
        if (!memcmp((*pp)->ih, ih, 20)) {
            ann *a = *pp;
            *pp = a->next;
            free(a);
            return;
        }
}
