/* fuzz_bencode.c — strict BEP 3 bencode (net/bencode.c), the framing of
 * every BT extension message and tracker / DHT answer.  Input: the bytes.
 * A decoded value re-encodes to exactly the bytes it consumed (strict mode:
 * canonical input only). */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "bencode.h"

static void encode(zb_buf *b, const zb_val *v)
{
    switch (v->type) {
    case ZB_INT: zb_int(b, v->i); break;
    case ZB_STR: zb_str(b, v->s, v->len); break;
    case ZB_LIST:
        zb_list(b);
        for (size_t i = 0; i < v->len; i++)
            encode(b, &v->items[i]);
        zb_end(b);
        break;
    case ZB_DICT:
        zb_dict(b);
        for (size_t i = 0; i < 2 * v->len; i++)
            encode(b, &v->items[i]);
        zb_end(b);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_dup(data, size);
    for (unsigned flags = 0; flags <= ZB_LENIENT_ORDER; flags++) {
        zb_val *v = NULL;
        size_t used = 0;
        int rc = zb_decode(buf, size, flags, &v, &used);
        if (rc == 0) {
            FZ_CHECK(v && used > 0 && used <= size);
            if (v->type == ZB_DICT) {
                for (size_t i = 0; i < v->len; i++)
                    FZ_CHECK(v->items[2 * i].type == ZB_STR);
                (void)zb_get(v, "m");
                int64_t x;
                (void)zb_get_int(v, "p", &x);
                const uint8_t *s;
                size_t l;
                (void)zb_get_str(v, "v", &s, &l);
            }
            zb_buf b = {0};
            encode(&b, v);
            FZ_CHECK(b.err == 0);
            if (flags == 0)
                FZ_CHECK(b.len == used && memcmp(b.p, buf, used) == 0);
            free(b.p);
            zb_free(v);
        } else {
            FZ_CHECK(rc == -EBADMSG || rc == -ENOMEM);
        }
    }
    free(buf);
    return 0;
}
