/* fuzz_peer.c — the peer wire codecs (net/peer_wire.c): BT handshake, BEP 10
 * extension handshake, zfs_xet and zest ut_xet messages, and the record
 * verification a peer's DATA goes through.  Peers are strangers.
 * Input: byte 0 picks the parser, the rest is the payload. */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "peer.h"

static void records(const uint8_t *p, size_t n)
{
    /* expected chunks: lengths and hashes from the first record headers,
     * so the fuzzer can reach the hash comparison */
    if (n < 1)
        return;
    uint32_t cnt = 1 + p[0] % 4;
    p++, n--;
    uint32_t lens[4];
    xet_hash hashes[4];
    uint64_t total = 0;
    size_t off = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        xet_chunk_header h;
        if (xet_chunk_header_parse(p + off, n - off, &h) == 0 && h.ulen > 0) {
            lens[i] = h.ulen;
            off += XET_CHUNK_HEADER_LEN + h.clen;
            if (off > n)
                off = n;
        } else {
            lens[i] = 1 + (uint32_t)(i * 977);
        }
        memset(hashes[i].b, (int)i, sizeof hashes[i].b);
        total += lens[i];
    }
    uint8_t *out = malloc(total);
    if (!out)
        abort();
    for (int trailing = 0; trailing < 2; trailing++) {
        int rc = zp_records_verify(p, n, lens, hashes, cnt, out, trailing);
        FZ_CHECK(rc == -EBADMSG || rc == -EFBIG || rc == -EPROTONOSUPPORT || rc == -EILSEQ ||
                 rc == -ENOMEM);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t *p = fz_dup(data + 1, size - 1);
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: {
        zp_zfs_msg m;
        if (zp_zfs_parse(p, n, &m) == 0) {
            FZ_CHECK(!m.body_len || (m.body >= p && m.body + m.body_len <= p + n));
            if (m.type == ZP_HAVE || m.type == ZP_PENDING)
                FZ_CHECK(m.body_len == 8ull * m.n && m.n <= ZP_MAX_HAVE_RUNS &&
                         (m.n > 0 || m.type == ZP_PENDING));
            if (m.type == ZP_MANIFEST) {
                FZ_CHECK(m.body_len == 36ull * m.n);
                if (m.n && m.n <= XET_XORB_MAX_CHUNKS) {
                    xet_hash *h = malloc(m.n * sizeof *h);
                    uint32_t *l = malloc(m.n * sizeof *l);
                    if (!h || !l)
                        abort();
                    for (uint32_t i = 0; i < m.n; i++) {
                        memcpy(h[i].b, m.body + 36 * i, 32);
                        const uint8_t *q = m.body + 36 * i + 32;
                        l[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                               (uint32_t)q[3] << 24;
                    }
                    xet_hash x;
                    memset(x.b, 0x33, 32);
                    int rc = zp_manifest_verify(&x, h, l, m.n);
                    /* a one-chunk xorb's hash is its chunk's hash: that one may match */
                    bool one = m.n == 1 && memcmp(h[0].b, x.b, 32) == 0;
                    FZ_CHECK(rc == -EBADMSG || rc == -EILSEQ || (rc == 0 && one));
                    free(h);
                    free(l);
                }
            }
        }
        break;
    }
    case 1: {
        zp_ut_msg m;
        if (zp_ut_parse(p, n, &m) == 0)
            FZ_CHECK(!m.data_len || (m.data >= p && m.data + m.data_len <= p + n));
        break;
    }
    case 2: {
        if (n >= 68) {
            uint8_t ih[20], id[20];
            bool ext;
            (void)zp_handshake_parse(p, ih, id, &ext);
        }
        break;
    }
    case 3: {
        uint8_t ut = 0, zfs = 0;
        uint16_t port = 0;
        (void)zp_ext_handshake_parse(p, n, &ut, &zfs, &port);
        zp_ext_info ei;
        if (zp_ext_handshake_info(p, n, &ei) == 0)
            FZ_CHECK(ei.ut_xet == ut && ei.zfs_xet == zfs && ei.port == port);
        break;
    }
    case 4: records(p, n); break;
    }
    free(p);
    return 0;
}
