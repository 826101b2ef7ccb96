/* fuzz_tensors.c — the safetensors and GGUF header parser (fs/tensors.c):
 * the first bytes of model files, which come from the Hub, are parsed at
 * open to plan the prefetch.  Input: 8 bytes little-endian file size (the
 * file may be longer than the bytes given), then the file's first bytes. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "tensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t fsize = 0;
    for (int i = 7; i >= 0; i--)
        fsize = fsize << 8 | data[i];
    size_t n = size - 8;
    if (fsize < n)
        fsize = n + (fsize & 0xffff);
    uint8_t *p = malloc(n ? n : 1); /* exactly n bytes: overreads show */
    if (!p)
        abort();
    memcpy(p, data + 8, n);
    zf_tensor_map m;
    memset(&m, 0, sizeof m);
    int rc = zf_tensor_map_parse(p, n, fsize, &m);
    FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EFBIG || rc == -ENOMEM);
    if (rc == -EAGAIN)
        FZ_CHECK(m.need > n);
    if (rc == 0) {
        FZ_CHECK(m.format == ZF_SAFETENSORS || m.format == ZF_GGUF);
        FZ_CHECK(m.header_len <= fsize);
        FZ_CHECK(m.nranges == 0 || m.ranges);
        for (size_t i = 0; i < m.nranges; i++) {
            FZ_CHECK(m.ranges[2 * i] < m.ranges[2 * i + 1]);        /* non-empty */
            FZ_CHECK(m.ranges[2 * i + 1] <= fsize);                  /* inside the file */
            if (i)
                FZ_CHECK(m.ranges[2 * i - 1] < m.ranges[2 * i]);     /* sorted, merged */
        }
        zf_tensor_map_free(&m);
    }
    free(p);
    return 0;
}
