/* peer_wire.c — pure codecs of the peer wire (see peer.h): the BT handshake,
 * the BEP 10 handshake dict, zfs_xet and zest ut_xet messages, manifest and
 * record verification.  No I/O, no allocation (except bencode's tree), so
 * every parser here can be fed arbitrary bytes (fuzzing entry points). */
#include "peer.h"
#include "bencode.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

static const char pstr[20] = "\x13" "BitTorrent protocol";

/* ---- BT handshake ------------------------------------------------------------ */

void zp_handshake(uint8_t out[68], const uint8_t ih[20], const uint8_t peer_id[20])
{
    memcpy(out, pstr, 20);
    memset(out + 20, 0, 8);
    out[25] = 0x10; /* BEP 10 */
    memcpy(out + 28, ih, 20);
    memcpy(out + 48, peer_id, 20);
}

int zp_handshake_parse(const uint8_t p[68], uint8_t ih[20], uint8_t peer_id[20], bool *ext)
{
    if (memcmp(p, pstr, 20) != 0)
        return -EBADMSG;
    *ext = (p[25] & 0x10) != 0;
    memcpy(ih, p + 28, 20);
    memcpy(peer_id, p + 48, 20);
    return 0;
}

int zp_ext_handshake_parse(const uint8_t *p, size_t len, uint8_t *ut_xet, uint8_t *zfs_xet,
                           uint16_t *port)
{
    zp_ext_info i;
    int r = zp_ext_handshake_info(p, len, &i);
    *ut_xet = i.ut_xet;
    *zfs_xet = i.zfs_xet;
    *port = i.port;
    return r;
}

static int ext_id(const zb_val *m, const char *k, uint8_t *out)
{
    int64_t id;
    if (!zb_get_int(m, k, &id))
        return 0;
    if (id < 0 || id > 255)
        return -EBADMSG;
    *out = (uint8_t)id;
    return 0;
}

int zp_ext_handshake_info(const uint8_t *p, size_t len, zp_ext_info *out)
{
    zb_val *v;
    size_t used;
    memset(out, 0, sizeof *out);
    int r = zb_decode(p, len, ZB_LENIENT_ORDER, &v, &used);
    if (r)
        return r == -ENOMEM ? r : -EBADMSG;
    r = 0;
    if (used != len || v->type != ZB_DICT) {
        r = -EBADMSG;
        goto out;
    }
    const zb_val *m = zb_get(v, "m");
    if (m && m->type == ZB_DICT) {
        if ((r = ext_id(m, "ut_xet", &out->ut_xet)) || (r = ext_id(m, "zfs_xet", &out->zfs_xet)) ||
            (r = ext_id(m, "ut_pex", &out->ut_pex)))
            goto out;
    }
    int64_t pt;
    if (zb_get_int(v, "p", &pt) && pt > 0 && pt < 65536)
        out->port = (uint16_t)pt;
    if (zb_get_int(v, "zfs_caps", &pt) && pt >= 0 && pt <= 0xffffffffLL)
        out->caps = (uint32_t)pt;
out:
    zb_free(v);
    return r;
}

/* ---- zfs_xet ------------------------------------------------------------------ */

int zp_zfs_parse(const uint8_t *p, size_t len, zp_zfs_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len < 1)
        return -EBADMSG;
    m->type = p[0];
    switch (p[0]) {
    case ZP_HAVE:
    case ZP_PENDING:
        if (len < 37)
            return -EBADMSG;
        memcpy(m->xorb.b, p + 1, 32);
        m->n = xet_be32(p + 33);
        if ((m->n == 0 && p[0] == ZP_HAVE) || m->n > ZP_MAX_HAVE_RUNS ||
            len != 37 + 8 * (size_t)m->n)
            return -EBADMSG;
        m->body = p + 37;
        m->body_len = 8 * (size_t)m->n;
        for (uint32_t k = 0; k < m->n; k++) {
            uint32_t s = xet_be32(m->body + 8 * k), e = xet_be32(m->body + 8 * k + 4);
            if (s >= e || e > XET_XORB_MAX_CHUNKS)
                return -EBADMSG;
        }
        return 0;
    case ZP_REQUEST:
        if (len != 45)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        memcpy(m->xorb.b, p + 5, 32);
        m->start = xet_be32(p + 37);
        m->end = xet_be32(p + 41);
        if (m->start >= m->end || m->end - m->start > ZP_MAX_REQ_CHUNKS ||
            m->end > XET_XORB_MAX_CHUNKS)
            return -EBADMSG;
        return 0;
    case ZP_DATA:
        if (len < 9)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        m->start = xet_be32(p + 5);
        m->body = p + 9;
        m->body_len = len - 9;
        return 0;
    case ZP_MREQ:
        if (len != 37)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        memcpy(m->xorb.b, p + 5, 32);
        return 0;
    case ZP_MANIFEST:
        if (len < 9)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        m->n = xet_be32(p + 5);
        if (m->n == 0 || m->n > XET_XORB_MAX_CHUNKS || len != 9 + 36 * (size_t)m->n)
            return -EBADMSG;
        m->body = p + 9;
        m->body_len = 36 * (size_t)m->n;
        return 0;
    case ZP_MPART: {
        if (len < 9)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        m->n = xet_be32(p + 5);
        if (m->n == 0 || m->n > XET_XORB_MAX_CHUNKS || len != 9 + 40 * (size_t)m->n)
            return -EBADMSG;
        m->body = p + 9;
        m->body_len = 40 * (size_t)m->n;
        uint32_t prev = 0;
        for (uint32_t k = 0; k < m->n; k++) {
            uint32_t i = xet_be32(m->body + 40 * (size_t)k), l = xet_be32(m->body + 40 * (size_t)k + 36);
            if (i >= XET_XORB_MAX_CHUNKS || (k && i <= prev) || l == 0 || l > (128u << 10))
                return -EBADMSG;
            prev = i;
        }
        return 0;
    }
    case ZP_REFUSE:
        if (len != 9)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        m->code = xet_be32(p + 5);
        return 0;
    case ZP_CANCEL:
        if (len != 5)
            return -EBADMSG;
        m->req = xet_be32(p + 1);
        return 0;
    default:
        return -EBADMSG;
    }
}

size_t zp_zfs_have(uint8_t *out, const xet_hash *xorb, const zn_chunk_run *runs, uint32_t n)
{
    out[0] = ZP_HAVE;
    memcpy(out + 1, xorb->b, 32);
    xet_put_be32(out + 33, n);
    for (uint32_t k = 0; k < n; k++) {
        xet_put_be32(out + 37 + 8 * k, runs[k].start);
        xet_put_be32(out + 41 + 8 * k, runs[k].end);
    }
    return 37 + 8 * (size_t)n;
}

size_t zp_zfs_mpart(uint8_t *out, uint32_t req, const uint32_t *idx, const xet_hash *hashes,
                    const uint32_t *lens, uint32_t m)
{
    out[0] = ZP_MPART;
    xet_put_be32(out + 1, req);
    xet_put_be32(out + 5, m);
    for (uint32_t k = 0; k < m; k++) {
        uint8_t *q = out + 9 + 40 * (size_t)k;
        xet_put_be32(q, idx[k]);
        memcpy(q + 4, hashes[k].b, 32);
        xet_put_be32(q + 36, lens[k]);
    }
    return 9 + 40 * (size_t)m;
}

size_t zp_zfs_pending(uint8_t *out, const xet_hash *xorb, const zn_chunk_run *runs, uint32_t n)
{
    zp_zfs_have(out, xorb, runs, n);
    out[0] = ZP_PENDING;
    return 37 + 8 * (size_t)n;
}

size_t zp_zfs_request(uint8_t out[45], uint32_t req, const xet_hash *xorb, uint32_t start,
                      uint32_t end)
{
    out[0] = ZP_REQUEST;
    xet_put_be32(out + 1, req);
    memcpy(out + 5, xorb->b, 32);
    xet_put_be32(out + 37, start);
    xet_put_be32(out + 41, end);
    return 45;
}

size_t zp_zfs_data_hdr(uint8_t out[9], uint32_t req, uint32_t start)
{
    out[0] = ZP_DATA;
    xet_put_be32(out + 1, req);
    xet_put_be32(out + 5, start);
    return 9;
}

size_t zp_zfs_mreq(uint8_t out[37], uint32_t req, const xet_hash *xorb)
{
    out[0] = ZP_MREQ;
    xet_put_be32(out + 1, req);
    memcpy(out + 5, xorb->b, 32);
    return 37;
}

size_t zp_zfs_manifest(uint8_t *out, uint32_t req, const xet_hash *hashes, const uint32_t *lens,
                       uint32_t n)
{
    out[0] = ZP_MANIFEST;
    xet_put_be32(out + 1, req);
    xet_put_be32(out + 5, n);
    for (uint32_t k = 0; k < n; k++) {
        memcpy(out + 9 + 36 * (size_t)k, hashes[k].b, 32);
        xet_put_be32(out + 9 + 36 * (size_t)k + 32, lens[k]);
    }
    return 9 + 36 * (size_t)n;
}

size_t zp_zfs_refuse(uint8_t out[9], uint32_t req, uint32_t code)
{
    out[0] = ZP_REFUSE;
    xet_put_be32(out + 1, req);
    xet_put_be32(out + 5, code);
    return 9;
}

size_t zp_zfs_cancel(uint8_t out[5], uint32_t req)
{
    out[0] = ZP_CANCEL;
    xet_put_be32(out + 1, req);
    return 5;
}

/* ---- zest ut_xet (§2.2) ----------------------------------------------------------- */

int zp_ut_parse(const uint8_t *p, size_t len, zp_ut_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len < 5)
        return -EBADMSG;
    m->type = p[0];
    m->req = xet_be32(p + 1);
    switch (p[0]) {
    case ZP_UT_REQUEST:
        if (len != 45)
            return -EBADMSG;
        memcpy(m->hash.b, p + 5, 32);
        m->start = xet_be32(p + 37);
        m->end = xet_be32(p + 41);
        return 0;
    case ZP_UT_RESPONSE:
        if (len < 13)
            return -EBADMSG;
        m->chunk_offset = xet_be32(p + 5);
        m->data_len = xet_be32(p + 9);
        if (m->data_len != len - 13)
            return -EBADMSG;
        m->data = p + 13;
        return 0;
    case ZP_UT_NOT_FOUND:
        if (len != 37)
            return -EBADMSG;
        memcpy(m->hash.b, p + 5, 32);
        return 0;
    case ZP_UT_ERROR:
        if (len < 9)
            return -EBADMSG;
        m->code = xet_be32(p + 5);
        m->data = p + 9;
        m->data_len = len - 9;
        return 0;
    default:
        return -EBADMSG;
    }
}

size_t zp_ut_request(uint8_t out[45], uint32_t req, const xet_hash *xorb, uint32_t start,
                     uint32_t end)
{
    out[0] = ZP_UT_REQUEST;
    xet_put_be32(out + 1, req);
    memcpy(out + 5, xorb->b, 32);
    xet_put_be32(out + 37, start);
    xet_put_be32(out + 41, end);
    return 45;
}

size_t zp_ut_response_hdr(uint8_t out[13], uint32_t req, uint32_t chunk_offset,
                          uint32_t data_len)
{
    out[0] = ZP_UT_RESPONSE;
    xet_put_be32(out + 1, req);
    xet_put_be32(out + 5, chunk_offset);
    xet_put_be32(out + 9, data_len);
    return 13;
}

size_t zp_ut_not_found(uint8_t out[37], uint32_t req, const xet_hash *hash)
{
    out[0] = ZP_UT_NOT_FOUND;
    xet_put_be32(out + 1, req);
    memcpy(out + 5, hash->b, 32);
    return 37;
}

/* ---- verification --------------------------------------------------------------- */

int zp_manifest_verify(const xet_hash *xorb, const xet_hash *hashes, const uint32_t *lens,
                       uint32_t n)
{
    if (n == 0 || n > XET_XORB_MAX_CHUNKS)
        return -EBADMSG;
    xet_merkle m;
    xet_merkle_init(&m);
    for (uint32_t k = 0; k < n; k++) {
        if (lens[k] == 0 || lens[k] > XET_CHUNK_MAX)
            return -EBADMSG;
        xet_merkle_add(&m, &hashes[k], lens[k]);
    }
    xet_hash root;
    xet_merkle_final(&m, &root, NULL);
    return xet_hash_eq(&root, xorb) ? 0 : -EILSEQ;
}

int zp_records_verify(const uint8_t *recs, size_t len, const uint32_t *lens,
                      const xet_hash *hashes, uint32_t n, uint8_t *out, bool allow_trailing)
{
    size_t off = 0, o = 0;
    for (uint32_t k = 0; k < n; k++) {
        xet_chunk_header h;
        int r = xet_chunk_header_parse(recs + off, len - off, &h);
        if (r)
            return r;
        if (h.clen > len - off - XET_CHUNK_HEADER_LEN)
            return -EBADMSG;
        if (h.ulen != lens[k])
            return -EILSEQ;
        r = xet_chunk_decode(&h, recs + off + XET_CHUNK_HEADER_LEN, out + o);
        if (r)
            return r;
        xet_hash got;
        xet_chunk_hash(out + o, h.ulen, &got);
        if (!xet_hash_eq(&got, &hashes[k]))
            return -EILSEQ;
        off += XET_CHUNK_HEADER_LEN + h.clen;
        o += h.ulen;
    }
    if (off != len && !allow_trailing)
        return -EBADMSG;
    return 0;
}

void zn_peer_zest_info_hash(const xet_hash *xorb, uint8_t out[20])
{
    uint8_t buf[12 + 32];
    memcpy(buf, "zest-xet-v1:", 12);
    memcpy(buf + 12, xorb->b, 32);
    unsigned int olen = 20;
    EVP_Digest(buf, sizeof buf, out, &olen, EVP_sha1(), NULL);
}
