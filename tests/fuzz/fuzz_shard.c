/* fuzz_shard.c — shards (xet/shard.c): file reconstructions and xorb chunk
 * lists as the CAS and the upload path exchange them.  Input: a shard.  A
 * parsed shard must serialize and parse again to the same counts. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "xet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);
    xet_shard s;
    memset(&s, 0, sizeof s);
    int rc = xet_shard_parse(buf, size, &s);
    if (rc == 0) {
        for (size_t i = 0; i < s.nfiles; i++)
            FZ_CHECK(s.files[i].nterms == 0 || s.files[i].terms);
        for (size_t i = 0; i < s.nxorbs; i++)
            FZ_CHECK(s.xorbs[i].nchunks == 0 || s.xorbs[i].chunks);
        if (s.nfiles)
            FZ_CHECK(xet_shard_find_file(&s, &s.files[0].file_hash) != NULL);
        if (s.nxorbs)
            FZ_CHECK(xet_shard_find_xorb(&s, &s.xorbs[0].hash) != NULL);
        uint8_t *out = NULL;
        size_t outlen = 0;
        int wr = xet_shard_write(&s, s.has_footer, &out, &outlen);
        if (wr == 0) {
            xet_shard s2;
            memset(&s2, 0, sizeof s2);
            FZ_CHECK(xet_shard_parse(out, outlen, &s2) == 0);
            FZ_CHECK(s2.nfiles == s.nfiles && s2.nxorbs == s.nxorbs);
            for (size_t i = 0; i < s.nfiles; i++)
                FZ_CHECK(s2.files[i].nterms == s.files[i].nterms);
            for (size_t i = 0; i < s.nxorbs; i++)
                FZ_CHECK(s2.xorbs[i].nchunks == s.xorbs[i].nchunks);
            xet_shard_free(&s2);
            free(out);
        } else {
            FZ_CHECK(wr == -ENOMEM || wr == -EFBIG || wr == -EINVAL);
        }
        xet_shard_free(&s);
    } else {
        FZ_CHECK(rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EFBIG || rc == -ENOMEM);
    }
    free(buf);
    return 0;
}
