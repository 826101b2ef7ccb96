/* pex.c — compact peer lists (BEP 23, BEP 7, BEP 5), the ut_pex message
 * (BEP 11) codec, and the peer node's PEX: what it tells each connection of
 * the others, and whom it dials of what a peer tells it.  The peer node
 * (peer.c) owns connections. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "disc.h"
#include "peer_int.h"

int zn_compact_parse(const uint8_t *p, size_t len, int family, struct sockaddr_storage *out,
                     size_t max)
{
    size_t es = family == AF_INET6 ? 18 : 6, n = 0;
    if (family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    if (len % es)
        return -EBADMSG;
    for (size_t off = 0; off < len && n < max; off += es, n++) {
        memset(&out[n], 0, sizeof out[n]);
        if (family == AF_INET) {
            struct sockaddr_in *s = (struct sockaddr_in *)&out[n];
            s->sin_family = AF_INET;
            memcpy(&s->sin_addr, p + off, 4);
            memcpy(&s->sin_port, p + off + 4, 2);
        } else {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out[n];
            s->sin6_family = AF_INET6;
            memcpy(&s->sin6_addr, p + off, 16);
            memcpy(&s->sin6_port, p + off + 16, 2);
        }
    }
    return (int)n;
}

int zn_compact_put(const struct sockaddr *sa, uint8_t out[18])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        memcpy(out, &s->sin_addr, 4);
        memcpy(out + 4, &s->sin_port, 2);
        return 6;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        memcpy(out, &s->sin6_addr, 16);
        memcpy(out + 16, &s->sin6_port, 2);
        return 18;
    }
    return -EAFNOSUPPORT;
}

/* compact string of the entries of family fam; flags of those into fl */
static int pex_list(const struct sockaddr_storage *a, const uint8_t *flags, size_t n, int fam,
                    uint8_t **buf, size_t *blen, uint8_t **fl, size_t *flen)
{
    size_t es = fam == AF_INET6 ? 18 : 6;
    *buf = malloc(n * es + 1);
    if (fl)
        *fl = malloc(n + 1);
    if (!*buf || (fl && !*fl))
        return -ENOMEM;
    *blen = 0;
    if (flen)
        *flen = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i].ss_family != fam)
            continue;
        zn_compact_put((const struct sockaddr *)&a[i], *buf + *blen);
        *blen += es;
        if (fl)
            (*fl)[(*flen)++] = flags ? flags[i] : 0;
    }
    return 0;
}

int zn_pex_encode(const struct sockaddr_storage *added, const uint8_t *flags, size_t nadded,
                  const struct sockaddr_storage *dropped, size_t ndropped, zb_buf *out)
{
    for (size_t i = 0; i < nadded; i++)
        if (added[i].ss_family != AF_INET && added[i].ss_family != AF_INET6)
            return -EAFNOSUPPORT;
    for (size_t i = 0; i < ndropped; i++)
        if (dropped[i].ss_family != AF_INET && dropped[i].ss_family != AF_INET6)
            return -EAFNOSUPPORT;
    uint8_t *a4 = NULL, *f4 = NULL, *a6 = NULL, *f6 = NULL, *d4 = NULL, *d6 = NULL;
    size_t la4, lf4, la6, lf6, ld4, ld6;
    int rc = pex_list(added, flags, nadded, AF_INET, &a4, &la4, &f4, &lf4);
    if (!rc)
        rc = pex_list(added, flags, nadded, AF_INET6, &a6, &la6, &f6, &lf6);
    if (!rc)
        rc = pex_list(dropped, NULL, ndropped, AF_INET, &d4, &ld4, NULL, NULL);
    if (!rc)
        rc = pex_list(dropped, NULL, ndropped, AF_INET6, &d6, &ld6, NULL, NULL);
    if (!rc) {
        zb_dict(out);
        zb_cstr(out, "added");
        zb_str(out, a4, la4);
        zb_cstr(out, "added.f");
        zb_str(out, f4, lf4);
        zb_cstr(out, "added6");
        zb_str(out, a6, la6);
        zb_cstr(out, "added6.f");
        zb_str(out, f6, lf6);
        zb_cstr(out, "dropped");
        zb_str(out, d4, ld4);
        zb_cstr(out, "dropped6");
        zb_str(out, d6, ld6);
        zb_end(out);
        rc = out->err;
    }
    free(a4), free(f4), free(a6), free(f6), free(d4), free(d6);
    return rc;
}

void zn_pex_free(zn_pex *p)
{
    free(p->added);
    free(p->added_flags);
    free(p->dropped);
    memset(p, 0, sizeof *p);
}

static int pex_get(const zb_val *d, const char *k, const uint8_t **s, size_t *len)
{
    const zb_val *v = zb_get(d, k);
    *s = NULL;
    *len = 0;
    if (!v)
        return 0;
    if (v->type != ZB_STR)
        return -EBADMSG;
    *s = v->s;
    *len = v->len;
    return 0;
}

int zn_pex_parse(const uint8_t *buf, size_t len, zn_pex *out)
{
    zb_val *root = NULL;
    size_t used = 0;
    memset(out, 0, sizeof *out);
    int rc = zb_decode(buf, len, ZB_LENIENT_ORDER, &root, &used);
    if (rc < 0)
        return rc == -ENOMEM ? rc : -EBADMSG;
    const uint8_t *a4, *f4, *a6, *f6, *d4, *d6;
    size_t la4, lf4, la6, lf6, ld4, ld6;
    if (used != len || root->type != ZB_DICT || pex_get(root, "added", &a4, &la4) ||
        pex_get(root, "added.f", &f4, &lf4) || pex_get(root, "added6", &a6, &la6) ||
        pex_get(root, "added6.f", &f6, &lf6) || pex_get(root, "dropped", &d4, &ld4) ||
        pex_get(root, "dropped6", &d6, &ld6) || la4 % 6 || la6 % 18 || ld4 % 6 || ld6 % 18 ||
        (f4 && lf4 != la4 / 6) || (f6 && lf6 != la6 / 18)) {
        zb_free(root);
        return -EBADMSG;
    }
    size_t na = la4 / 6 + la6 / 18, nd = ld4 / 6 + ld6 / 18;
    out->added = calloc(na + 1, sizeof *out->added);
    out->added_flags = calloc(na + 1, 1);
    out->dropped = calloc(nd + 1, sizeof *out->dropped);
    if (!out->added || !out->added_flags || !out->dropped) {
        zn_pex_free(out);
        zb_free(root);
        return -ENOMEM;
    }
    zn_compact_parse(a4, la4, AF_INET, out->added, la4 / 6);
    zn_compact_parse(a6, la6, AF_INET6, out->added + la4 / 6, la6 / 18);
    if (f4)
        memcpy(out->added_flags, f4, lf4);
    if (f6)
        memcpy(out->added_flags + la4 / 6, f6, lf6);
    zn_compact_parse(d4, ld4, AF_INET, out->dropped, ld4 / 6);
    zn_compact_parse(d6, ld6, AF_INET6, out->dropped + ld4 / 6, ld6 / 18);
    out->nadded = na;
    out->ndropped = nd;
    zb_free(root);
    return 0;
}

/* ---- PEX (BEP 11) ---------------------------------------------------------------- */

/* The address c's peer listens on, if known. */
bool zp__listen_addr(const zp_conn *c, struct sockaddr_storage *out)
{
    if (c->outgoing) {
        *out = c->addr;
        return true;
    }
    if (!c->their_port)
        return false;
    *out = c->addr;
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons(c->their_port);
    else if (out->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_port = htons(c->their_port);
    else
        return false;
    return true;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    uint8_t ia[16], ib[16];
    uint16_t pa, pb;
    zp__ip_key(a, ia, &pa);
    zp__ip_key(b, ib, &pb);
    return pa == pb && !memcmp(ia, ib, 16);
}

static bool addr_in(const struct sockaddr_storage *v, size_t n, const struct sockaddr_storage *a)
{
    for (size_t k = 0; k < n; k++)
        if (same_addr(&v[k], a))
            return true;
    return false;
}

/* Tell c's peer about the other peers of its swarm (added/dropped against
 * what it was told).  Nothing is sent when nothing changed. */
void zp__pex_send(zp_conn *c)
{
    zn_peer_node *n = c->n;
    struct sockaddr_storage cur[MAX_PEX_SENT], added[ZP_MAX_PEX_ADDED], dropped[MAX_PEX_SENT];
    size_t ncur = 0, na = 0, nd = 0;
    for (zp_conn *o = n->conns; o && ncur < MAX_PEX_SENT; o = o->next) {
        struct sockaddr_storage a;
        if (o == c || o->state != C_OPEN || !o->got_ext || memcmp(o->ih, c->ih, 20) ||
            !zp__listen_addr(o, &a) || addr_in(cur, ncur, &a))
            continue;
        cur[ncur++] = a;
    }
    for (size_t k = 0; k < ncur && na < ZP_MAX_PEX_ADDED; k++)
        if (!addr_in(c->pex_told, c->npex_told, &cur[k]))
            added[na++] = cur[k];
    for (size_t k = 0; k < c->npex_told; k++)
        if (!addr_in(cur, ncur, &c->pex_told[k]))
            dropped[nd++] = c->pex_told[k];
    if (!na && !nd)
        return;
    zb_buf b = {0};
    if (zn_pex_encode(added, NULL, na, dropped, nd, &b) != 0 || b.err) {
        free(b.p);
        return;
    }
    zp__send_ext(c, c->their_pex, b.p, b.len);
    free(b.p);
    n->st.pex_out++;
    c->pex_sent_msgs++;
    /* told = told - dropped + added */
    size_t k2 = 0;
    for (size_t k = 0; k < c->npex_told; k++)
        if (!addr_in(dropped, nd, &c->pex_told[k]))
            c->pex_told[k2++] = c->pex_told[k];
    c->npex_told = k2;
    if (na) {
        struct sockaddr_storage *t =
            realloc(c->pex_told, (c->npex_told + na) * sizeof *t);
        if (!t)
            return;
        c->pex_told = t;
        memcpy(t + c->npex_told, added, na * sizeof *added);
        c->npex_told += na;
    }
}

void zp__handle_pex(zp_conn *c, const uint8_t *p, size_t len)
{
    zn_peer_node *n = c->n;
    zn_pex x;
    if (zn_pex_parse(p, len, &x) != 0) {
        zp__conn_ban(c);
        return;
    }
    uint64_t now = uv_now(n->loop);
    unsigned quarter = n->o.pex_interval_ms / 4;
    if (c->pex_rx_msgs && now - c->pex_last_rx < quarter) {
        zn_pex_free(&x); /* too often: ignored */
        return;
    }
    c->pex_rx_msgs++;
    c->pex_last_rx = now;
    n->st.pex_in++;
    uint8_t ih[20];
    memcpy(ih, c->ih, 20);
    for (size_t k = 0; k < x.nadded && k < ZP_MAX_PEX_ADDED; k++) {
        struct sockaddr_storage *a = &x.added[k];
        uint8_t ip[16];
        uint16_t port;
        zp__ip_key(a, ip, &port);
        if (!port || zp__slow_listed(n, a))
            continue;
        bool known = false; /* connected already, either way */
        for (zp_conn *o = n->conns; o && !known; o = o->next) {
            struct sockaddr_storage l;
            known = !memcmp(o->ih, ih, 20) && zp__listen_addr(o, &l) && same_addr(&l, a);
        }
        if (!known && zn_peer_add(n, ih, (struct sockaddr *)a) == 0)
            n->st.pex_dialled++;
    }
    zn_pex_free(&x);
}
