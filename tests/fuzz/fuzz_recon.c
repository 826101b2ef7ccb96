/* fuzz_recon.c — reconstruction JSON, v1 (`fetch_info`) and v2 (`xorbs`)
 * shapes (xet/recon.c): the CAS answer the read path trusts for offsets.
 * Input: the JSON body.  On success every term must point at a descriptor,
 * and xet_recon_map over the whole file and a few sub-ranges must tile the
 * requested bytes exactly. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "xet.h"

static void check_map(const xet_recon *r, uint64_t off, uint64_t len)
{
    xet_piece *p = NULL;
    long n = xet_recon_map(r, off, len, &p);
    if (n < 0) {
        FZ_CHECK(n == -ERANGE || n == -ENOMEM || n == -EINVAL);
        free(p);
        return;
    }
    uint64_t at = 0;
    for (long i = 0; i < n; i++) {
        FZ_CHECK(p[i].term < r->nterms);
        FZ_CHECK(p[i].out_off == at);
        FZ_CHECK(p[i].skip + p[i].take <= r->terms[p[i].term].unpacked_length);
        at += p[i].take;
    }
    FZ_CHECK(at == len);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the parser gets a buffer of exactly `size` bytes, not NUL-terminated */
    char *json = (char *)fz_dup(data, size);
    xet_recon r;
    memset(&r, 0xa5, sizeof r);
    int rc = xet_recon_parse(json, size, 0, &r);
    if (rc == 0) {
        uint64_t total = 0;
        for (size_t i = 0; i < r.nterms; i++) {
            const xet_recon_term *t = &r.terms[i];
            FZ_CHECK(t->fetch != NULL);
            FZ_CHECK(t->fetch >= r.fetch && t->fetch < r.fetch + r.nfetch);
            FZ_CHECK(t->chunk_start < t->chunk_end);
            FZ_CHECK(t->fetch->chunk_start <= t->chunk_start &&
                     t->chunk_end <= t->fetch->chunk_end);
            FZ_CHECK(t->fetch->byte_start <= t->fetch->byte_end);
            total += t->unpacked_length;
        }
        uint64_t first = r.offset_into_first_range;
        if (total > first) {
            uint64_t len = total - first;
            check_map(&r, r.base, len);
            check_map(&r, r.base + len / 2, len - len / 2);
            check_map(&r, r.base + len / 3, 1);
        }
        xet_recon_free(&r);
    } else {
        FZ_CHECK(rc == -EBADMSG || rc == -ENOMEM || rc == -EFBIG || rc == -EINVAL ||
                 rc == -EPROTONOSUPPORT);
    }
    free(json);
    return 0;
}
