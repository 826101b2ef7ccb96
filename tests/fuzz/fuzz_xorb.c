/* fuzz_xorb.c — xorb records (xet/xorb.c): what the CDN (and peers) send.
 * Input: a buffer of chunk records (a whole xorb or a fetched run).  Runs
 * the record walker (xet_xorb_index), the whole-xorb decoder, one record
 * header + payload decode, and xet_fetch_extract over the buffer as if it
 * were one descriptor's body; the decoders must agree with each other. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "xet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);

    /* one record */
    xet_chunk_header h;
    if (xet_chunk_header_parse(buf, size, &h) == 0 && size - XET_CHUNK_HEADER_LEN >= h.clen) {
        uint8_t *out = malloc(h.ulen ? h.ulen : 1);
        if (!out)
            abort();
        int rc = xet_chunk_decode(&h, buf + XET_CHUNK_HEADER_LEN, out);
        FZ_CHECK(rc == 0 || rc == -EILSEQ || rc == -EPROTONOSUPPORT || rc == -EBADMSG ||
                 rc == -EFBIG || rc == -ENOMEM);
        free(out);
    }

    xet_record *recs = NULL;
    long n = xet_xorb_index(buf, size, &recs);
    if (n > 0) {
        uint64_t end = 0;
        for (long i = 0; i < n; i++) {
            FZ_CHECK(recs[i].offset == end); /* records are consecutive */
            end = recs[i].offset + XET_CHUNK_HEADER_LEN + recs[i].hdr.clen;
            FZ_CHECK(end <= size);
        }
    } else {
        FZ_CHECK(n == 0 || n == -EBADMSG || n == -EPROTONOSUPPORT || n == -EFBIG ||
                 n == -ENOMEM);
    }

    xet_xorb_decoded d;
    memset(&d, 0, sizeof d);
    int rc = xet_xorb_decode_all(buf, size, &d);
    if (rc == 0) {
        FZ_CHECK(n >= 0 && (size_t)n == d.nchunks);
        uint64_t sum = 0;
        for (size_t i = 0; i < d.nchunks; i++) {
            FZ_CHECK(d.chunk_len[i] == recs[i].hdr.ulen);
            sum += d.chunk_len[i];
        }
        FZ_CHECK(sum == d.len);
        /* the same bytes through the descriptor path, when the buffer is only records */
        if (n > 0 && (uint64_t)n <= XET_XORB_MAX_CHUNKS &&
            recs[n - 1].offset + XET_CHUNK_HEADER_LEN + recs[n - 1].hdr.clen == size) {
            xet_fetch f;
            memset(&f, 0, sizeof f);
            f.chunk_start = 7;
            f.chunk_end = 7 + (uint32_t)n;
            f.byte_start = 1000;
            f.byte_end = 1000 + size - 1;
            uint8_t *out = malloc(d.len ? d.len : 1);
            if (!out)
                abort();
            int er = xet_fetch_extract(&f, buf, size, f.chunk_start, f.chunk_end, 0, d.len, out);
            FZ_CHECK(er == 0);
            FZ_CHECK(d.len == 0 || memcmp(out, d.data, d.len) == 0);
            /* a middle slice */
            if (d.len > 2) {
                er = xet_fetch_extract(&f, buf, size, f.chunk_start, f.chunk_end, 1, d.len - 2,
                                       out);
                FZ_CHECK(er == 0 && memcmp(out, d.data + 1, d.len - 2) == 0);
            }
            free(out);
        }
        xet_xorb_decoded_free(&d);
    } else {
        FZ_CHECK(rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EFBIG || rc == -EILSEQ ||
                 rc == -ENOMEM);
    }
    free(recs);

    /* extract with a descriptor whose length does not match must refuse */
    if (size > 0) {
        xet_fetch f = {.chunk_start = 0, .chunk_end = 1, .byte_start = 0, .byte_end = size};
        uint8_t o[16];
        FZ_CHECK(xet_fetch_extract(&f, buf, size, 0, 1, 0, 1, o) == -EBADMSG);
    }
    free(buf);
    return 0;
}
