/* test_tensors.c — fs/tensors.c: tensor ranges of safetensors and GGUF
 * headers built here byte by byte; truncated prefixes ask for more; bad
 * headers are refused with their errno; every prefix and every corruption
 * of a header is survived. */
#include "../fs/tensors.h"
#include "t.h"

static size_t put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return 8;
}

static size_t put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return 4;
}

static size_t putstr(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    put64(p, n);
    memcpy(p + 8, s, n);
    return 8 + n;
}

static size_t safetensors_hdr(uint8_t *buf, const char *json)
{
    size_t n = strlen(json);
    put64(buf, n);
    memcpy(buf + 8, json, n);
    return 8 + n;
}

static void test_safetensors(void)
{
    uint8_t buf[4096];
    /* b after a in the file although listed first; c empty; metadata skipped */
    const char *js = "{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[100,116]},"
                     "\"__metadata__\":{\"format\":\"pt\"},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[25],\"data_offsets\":[0,100]},"
                     "\"c\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[116,116]},"
                     "\"d\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[200,204]}}";
    size_t h = safetensors_hdr(buf, js);
    uint64_t fsize = h + 204;
    zf_tensor_map m;
    T_EQ_INT(zf_tensor_map_parse(buf, h, fsize, &m), 0);
    T_EQ_INT(m.format, ZF_SAFETENSORS);
    T_EQ_INT(m.header_len, h);
    T_EQ_INT(m.ntensors, 3);
    T_EQ_INT(m.nranges, 2);
    T_EQ_INT(m.ranges[0], h);
    T_EQ_INT(m.ranges[1], h + 116);
    T_EQ_INT(m.ranges[2], h + 200);
    T_EQ_INT(m.ranges[3], h + 204);
    /* one entry per tensor with bytes, in file order; who holds a byte */
    T_EQ_INT(m.ntens, 3);
    T_EQ_INT(m.tens[0], h);
    T_EQ_INT(m.tens[1], h + 100);
    T_EQ_INT(m.tens[2], h + 100);
    T_EQ_INT(m.tens[3], h + 116);
    T_EQ_INT(m.tens[4], h + 200);
    T_EQ_INT(zf_tensor_at(&m, 0), -1);
    T_EQ_INT(zf_tensor_at(&m, h), 0);
    T_EQ_INT(zf_tensor_at(&m, h + 99), 0);
    T_EQ_INT(zf_tensor_at(&m, h + 100), 1);
    T_EQ_INT(zf_tensor_at(&m, h + 150), -1); /* a gap */
    T_EQ_INT(zf_tensor_at(&m, h + 203), 2);
    T_EQ_INT(zf_tensor_at(&m, h + 204), -1);
    T_EQ_INT(zf_tensor_from(&m, 0), 0);
    T_EQ_INT(zf_tensor_from(&m, h + 1), 1);
    T_EQ_INT(zf_tensor_from(&m, h + 150), 2);
    T_EQ_INT(zf_tensor_from(&m, h + 201), 3);
    /* clip: a read inside tensor 1 -> tensor 1; one from the header into a, or from a
     * into b -> what it asked */
    uint64_t lo = 0, hi = fsize;
    zf_tensor_clip(&m, h + 104, h + 108, &lo, &hi);
    T_EQ_INT(lo, h + 100);
    T_EQ_INT(hi, h + 116);
    lo = 0, hi = fsize;
    zf_tensor_clip(&m, 2, h + 50, &lo, &hi);
    T_EQ_INT(lo, 2);
    T_EQ_INT(hi, h + 50);
    lo = 0, hi = fsize;
    zf_tensor_clip(&m, h + 90, h + 110, &lo, &hi);
    T_EQ_INT(lo, h + 90);
    T_EQ_INT(hi, h + 110);
    lo = h + 102, hi = h + 110; /* never wider than it was */
    zf_tensor_clip(&m, h + 104, h + 108, &lo, &hi);
    T_EQ_INT(lo, h + 102);
    T_EQ_INT(hi, h + 110);
    zf_tensor_map_free(&m);
    /* no table yet (format NONE): the MiB around the bytes, within the bounds */
    zf_tensor_map none = {0};
    lo = 0, hi = 64ull << 20;
    zf_tensor_clip(&none, (3ull << 20) + 5, (3ull << 20) + 4096, &lo, &hi);
    T_EQ_INT(lo, 3ull << 20);
    T_EQ_INT(hi, 4ull << 20);
    lo = (3ull << 20) + 7, hi = (3ull << 20) + 9000;
    zf_tensor_clip(&none, (3ull << 20) + 8, (3ull << 20) + 4096, &lo, &hi);
    T_EQ_INT(lo, (3ull << 20) + 7);
    T_EQ_INT(hi, (3ull << 20) + 9000);
    /* overlapping tensors: the later one is cut, so the table stays disjoint */
    const char *ov = "{\"a\":{\"data_offsets\":[0,100]},\"b\":{\"data_offsets\":[50,150]},"
                     "\"c\":{\"data_offsets\":[60,90]}}";
    h = safetensors_hdr(buf, ov);
    T_EQ_INT(zf_tensor_map_parse(buf, h, h + 150, &m), 0);
    T_EQ_INT(m.ntens, 2);
    T_EQ_INT(m.tens[1], h + 100);
    T_EQ_INT(m.tens[2], h + 100);
    T_EQ_INT(m.tens[3], h + 150);
    zf_tensor_map_free(&m);
    h = safetensors_hdr(buf, js);
    /* prefixes: -EAGAIN with the exact need */
    T_EQ_INT(zf_tensor_map_parse(buf, 3, fsize, &m), -EAGAIN);
    T_EQ_INT(m.need, 4);
    T_EQ_INT(zf_tensor_map_parse(buf, 6, fsize, &m), -EAGAIN);
    T_EQ_INT(m.need, 8);
    T_EQ_INT(zf_tensor_map_parse(buf, 20, fsize, &m), -EAGAIN);
    T_EQ_INT(m.need, h);
    /* offsets past the end of the file */
    T_EQ_INT(zf_tensor_map_parse(buf, h, h + 203, &m), -EBADMSG);
    /* header length past the file / over the cap */
    put64(buf, 1ull << 40);
    T_EQ_INT(zf_tensor_map_parse(buf, h, fsize, &m), -EBADMSG);
    /* not JSON, reversed offsets, wrong types */
    const char *bad[] = {"[1,2]", "{\"a\":{\"data_offsets\":[5,4]}}",
                         "{\"a\":{\"data_offsets\":[\"0\",4]}}", "{\"a\":{\"data_offsets\":[0]}}",
                         "{\"a\":{}}", "{not json"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t hb = safetensors_hdr(buf, bad[i]);
        T_EQ_INT(zf_tensor_map_parse(buf, hb, hb + 64, &m), -EBADMSG);
    }
}

/* A GGUF v3 header: kv pairs of several types (array of strings included),
 * alignment 64, three tensors whose infos list them out of file order. */
static size_t gguf_hdr(uint8_t *b, uint32_t align, uint64_t *data_start)
{
    size_t p = 0;
    memcpy(b, "GGUF", 4);
    p += 4;
    p += put32(b + p, 3);
    p += put64(b + p, 3); /* tensors */
    p += put64(b + p, 4); /* kv */
    p += putstr(b + p, "general.name");
    p += put32(b + p, 8);
    p += putstr(b + p, "tiny");
    p += putstr(b + p, "tokenizer.ggml.tokens");
    p += put32(b + p, 9);
    p += put32(b + p, 8);
    p += put64(b + p, 3);
    p += putstr(b + p, "a");
    p += putstr(b + p, "bb");
    p += putstr(b + p, "ccc");
    p += putstr(b + p, "general.alignment");
    p += put32(b + p, 4);
    p += put32(b + p, align);
    p += putstr(b + p, "x.scores");
    p += put32(b + p, 9);
    p += put32(b + p, 6); /* f32 */
    p += put64(b + p, 5);
    memset(b + p, 0, 20);
    p += 20;
    const char *names[] = {"t1", "t0", "t2"};
    uint64_t offs[] = {128, 0, 640};
    for (int i = 0; i < 3; i++) {
        p += putstr(b + p, names[i]);
        p += put32(b + p, 2);
        p += put64(b + p, 4);
        p += put64(b + p, 8);
        p += put32(b + p, 0);
        p += put64(b + p, offs[i]);
    }
    *data_start = (p + align - 1) / align * align;
    return p;
}

static void test_gguf(void)
{
    uint8_t buf[4096];
    uint64_t ds;
    size_t h = gguf_hdr(buf, 64, &ds);
    uint64_t fsize = ds + 1000;
    zf_tensor_map m;
    T_EQ_INT(zf_tensor_map_parse(buf, h, fsize, &m), 0);
    T_EQ_INT(m.format, ZF_GGUF);
    T_EQ_INT(m.header_len, ds);
    T_EQ_INT(m.ntensors, 3);
    T_EQ_INT(m.nranges, 1); /* contiguous: one range to the end */
    T_EQ_INT(m.ranges[0], ds);
    T_EQ_INT(m.ranges[1], fsize);
    T_EQ_INT(m.ntens, 3); /* each to the next one's start, the last to the end */
    T_EQ_INT(m.tens[0], ds);
    T_EQ_INT(m.tens[1], ds + 128);
    T_EQ_INT(m.tens[3], ds + 640);
    T_EQ_INT(m.tens[5], fsize);
    T_EQ_INT(zf_tensor_at(&m, ds + 700), 2);
    zf_tensor_map_free(&m);
    /* every prefix: -EAGAIN asking for more than it had (never a crash) */
    for (size_t n = 4; n < h; n++) {
        int rc = zf_tensor_map_parse(buf, n, fsize, &m);
        T_EQ_INT(rc, -EAGAIN);
        T_TRUE(m.need > n);
        if (rc == 0)
            zf_tensor_map_free(&m);
    }
    /* bad alignment, bad version, offset past the end */
    uint64_t ds2;
    size_t h2 = gguf_hdr(buf, 48, &ds2);
    T_EQ_INT(zf_tensor_map_parse(buf, h2, ds2 + 1000, &m), -EBADMSG);
    h = gguf_hdr(buf, 64, &ds);
    T_EQ_INT(zf_tensor_map_parse(buf, h, ds + 100, &m), -EBADMSG);
    put32(buf + 4, 7);
    T_EQ_INT(zf_tensor_map_parse(buf, h, fsize, &m), -EBADMSG);
    /* every single-byte corruption is survived (result: any errno or 0) */
    h = gguf_hdr(buf, 64, &ds);
    for (size_t i = 0; i < h; i++) {
        for (int v = 0; v < 3; v++) {
            uint8_t save = buf[i];
            buf[i] = v == 0 ? 0xff : v == 1 ? 0 : (uint8_t)(save ^ 0x80);
            int rc = zf_tensor_map_parse(buf, h, fsize, &m);
            T_TRUE(rc == 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EFBIG);
            if (rc == 0) {
                for (size_t k = 0; k < m.nranges; k++)
                    T_TRUE(m.ranges[2 * k] < m.ranges[2 * k + 1] && m.ranges[2 * k + 1] <= fsize);
                for (size_t k = 0; k < m.ntens; k++)
                    T_TRUE(m.tens[2 * k] < m.tens[2 * k + 1] && m.tens[2 * k + 1] <= fsize &&
                           (k == 0 || m.tens[2 * k] >= m.tens[2 * k - 1]));
                zf_tensor_map_free(&m);
            }
            buf[i] = save;
        }
    }
}

int main(void)
{
    T_RUN(test_safetensors);
    T_RUN(test_gguf);
    return t_done();
}
