/* test_xorb.c — xorb records (spec/xet.md §3): the xorb written by
 * @huggingface/hub (schemes 0, 1, 2) decoded byte-exactly and checked
 * against upload.json, the shard's chunk hashes and the input files; round
 * trips of every scheme on several kinds of data and sizes; frames written
 * with other LZ4 options; BG4 grouping; the xorb writer and its caps; exact
 * errors for malformed records; and a corruption loop that must never
 * crash (run it under -fsanitize=address,undefined). */
#include <cjson/cJSON.h>
#include <lz4.h>
#include <lz4frame.h>

#include "gen.h"
#include "t.h"
#include "xet.h"

#define XORB_NAME "xorb-028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b.bin"
#define XORB_HASH "028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b"
#define XORB_SHA256 "4cf1ef2043a759569445c20dc1da1f3e173d2d75c969bd0d2ac554eeb9d9f8ba"

static char *str(const xet_hash *h)
{
    static char buf[4][XET_HASH_STR_LEN + 1];
    static int k;
    k = (k + 1) & 3;
    xet_hash_to_string(h, buf[k]);
    return buf[k];
}

static cJSON *load_json(const char *name)
{
    size_t len;
    char *text = (char *)t_read_file(name, &len);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) {
        fprintf(stderr, "bad json %s\n", name);
        exit(2);
    }
    return j;
}

static long jint(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(v)) {
        fprintf(stderr, "missing number %s\n", key);
        exit(2);
    }
    return (long)v->valuedouble;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsString(v)) {
        fprintf(stderr, "missing string %s\n", key);
        exit(2);
    }
    return v->valuestring;
}

/* ---- the hub-written vector xorb ---------------------------------------- */

static void test_vector_xorb(void)
{
    size_t len;
    uint8_t *x = t_read_file(XORB_NAME, &len);
    char sha[65];
    sha256_hex(x, len, sha);
    T_EQ_STR(sha, XORB_SHA256);
    T_EQ_INT(len, 285431);

    cJSON *j = load_json("upload.json");
    cJSON *jx = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "xorbs"), 0);
    cJSON *jchunks = cJSON_GetObjectItem(jx, "chunks");
    cJSON *shard_chunks = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "shard0"), "xorb_info"), 0),
        "chunks");
    T_EQ_STR(jstr(jx, "hash"), XORB_HASH);

    /* record walk: offsets, schemes, lengths, raw header bytes */
    xet_record *recs;
    long n = xet_xorb_index(x, len, &recs);
    T_EQ_INT(n, 8);
    T_EQ_INT(cJSON_GetArraySize(jchunks), 8);
    static const int schemes[8] = {0, 0, 0, 1, 1, 0, 2, 1};
    for (long i = 0; i < n && i < 8; i++) {
        cJSON *c = cJSON_GetArrayItem(jchunks, (int)i);
        T_EQ_INT(jint(c, "index"), i);
        T_EQ_INT(recs[i].offset, jint(c, "header_offset"));
        T_EQ_INT(recs[i].hdr.version, 0);
        T_EQ_INT(recs[i].hdr.scheme, schemes[i]);
        T_EQ_INT(recs[i].hdr.scheme, jint(c, "scheme"));
        T_EQ_INT(recs[i].hdr.clen, jint(c, "compressed_length"));
        T_EQ_INT(recs[i].hdr.ulen, jint(c, "uncompressed_length"));
        T_EQ_INT(recs[i].offset + 8 + recs[i].hdr.clen, jint(c, "byte_range_end_exclusive"));
        char hex[17];
        xet_hex(x + recs[i].offset, 8, hex);
        T_EQ_STR(hex, jstr(c, "header_hex"));
        /* the header writer gives the same 8 bytes back */
        uint8_t hb[8];
        xet_chunk_header_write(&recs[i].hdr, hb);
        T_EQ_MEM(hb, x + recs[i].offset, 8);
    }

    /* full decode: chunk hashes against the shard entries, xorb hash */
    xet_xorb_decoded d;
    T_EQ_INT(xet_xorb_decode_all(x, len, &d), 0);
    T_EQ_INT(d.nchunks, 8);
    T_EQ_INT(d.len, 495882);
    T_EQ_STR(str(&d.xorb_hash), XORB_HASH);
    uint64_t off = 0;
    for (size_t i = 0; i < d.nchunks && i < 8; i++) {
        cJSON *c = cJSON_GetArrayItem(jchunks, (int)i);
        cJSON *sc = cJSON_GetArrayItem(shard_chunks, (int)i);
        T_EQ_INT(off, jint(c, "unpacked_offset"));
        T_EQ_INT(off, jint(sc, "chunk_byte_range_start"));
        T_EQ_INT(d.chunk_len[i], jint(sc, "unpacked_segment_bytes"));
        T_EQ_STR(str(&d.chunk_hash[i]), jstr(sc, "chunk_hash"));
        /* re-hash the decoded bytes independently */
        xet_hash h;
        xet_chunk_hash(d.data + off, d.chunk_len[i], &h);
        T_EQ_STR(str(&h), jstr(sc, "chunk_hash"));
        /* one record decoded alone gives the same bytes */
        uint8_t *one = malloc(recs[i].hdr.ulen);
        T_EQ_INT(xet_chunk_decode(&recs[i].hdr, x + recs[i].offset + 8, one), 0);
        T_EQ_MEM(one, d.data + off, recs[i].hdr.ulen);
        free(one);
        off += d.chunk_len[i];
    }

    /* the decoded bytes rebuild every input file through its shard terms */
    static const char *inputs[4] = {"input-a_random.bin", "input-b_text.txt",
                                    "input-c_floats.f32", "input-d_concat.bin"};
    uint64_t starts[9] = {0};
    for (size_t i = 0; i < d.nchunks && i < 8; i++)
        starts[i + 1] = starts[i] + d.chunk_len[i];
    cJSON *files = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "shard0"), "file_info");
    T_EQ_INT(cJSON_GetArraySize(files), 4);
    for (int fi = 0; fi < 4; fi++) {
        size_t flen;
        uint8_t *want = t_read_file(inputs[fi], &flen);
        uint8_t *got = malloc(flen + 1);
        size_t pos = 0;
        cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(cJSON_GetArrayItem(files, fi), "terms"))
        {
            long a = jint(t, "chunk_start"), b = jint(t, "chunk_end");
            T_TRUE(a >= 0 && a < b && b <= 8);
            if (!(a >= 0 && a < b && b <= 8))
                continue;
            size_t tl = starts[b] - starts[a];
            T_EQ_INT(tl, jint(t, "unpacked_bytes"));
            T_TRUE(pos + tl <= flen);
            if (pos + tl <= flen)
                memcpy(got + pos, d.data + starts[a], tl);
            pos += tl;
        }
        T_EQ_INT(pos, flen);
        if (pos == flen)
            T_EQ_MEM(got, want, flen);
        free(got);
        free(want);
    }
    xet_xorb_decoded_free(&d);
    free(recs);
    cJSON_Delete(j);
    free(x);
}

/* ---- round trips ---------------------------------------------------------- */

enum kind { K_RANDOM, K_TEXT, K_FLOAT, K_ZERO };
static const char *KIND_NAME[] = {"random", "text", "float32", "zeros"};

static void fill(enum kind k, uint8_t *p, size_t n, uint64_t seed)
{
    switch (k) {
    case K_RANDOM: gen_splitmix64(seed, p, n); break;
    case K_TEXT: gen_text(p, n); break;
    case K_FLOAT: gen_float32(p, n); break;
    case K_ZERO: memset(p, 0, n); break;
    }
}

/* Encode with `scheme`, check the header, decode and compare.  Returns the
 * record's payload length (or -1). */
static long roundtrip(const uint8_t *data, size_t n, int scheme, const char *what)
{
    size_t bound = xet_chunk_record_bound(n);
    uint8_t *rec = malloc(bound);
    long rl = xet_chunk_encode(data, n, scheme, rec);
    T_TRUE(rl >= 8 && (size_t)rl <= bound);
    if (rl < 8 || (size_t)rl > bound) {
        fprintf(stderr, "  encode %s scheme %d n %zu -> %ld\n", what, scheme, n, rl);
        free(rec);
        return -1;
    }
    xet_chunk_header h;
    T_EQ_INT(xet_chunk_header_parse(rec, (size_t)rl, &h), 0);
    T_EQ_INT(h.ulen, n);
    T_EQ_INT(h.clen + 8, rl);
    if (scheme >= 0)
        T_EQ_INT(h.scheme, scheme);
    if (h.scheme != XET_SCHEME_NONE) {
        /* a standard frame: magic, version 01, no checksums or content size */
        T_EQ_INT(rec[8] | rec[9] << 8 | rec[10] << 16 | (uint32_t)rec[11] << 24, 0x184D2204);
        T_EQ_INT(rec[12] & 0xDF, 0x40);
        T_EQ_INT(rec[13], 0x40); /* 64 KiB blocks */
    }
    /* decode into a buffer of exactly n bytes (ASan catches any overrun) */
    uint8_t *out = malloc(n ? n : 1);
    int err = xet_chunk_decode(&h, rec + 8, out);
    T_EQ_INT(err, 0);
    T_EQ_MEM(out, data, n);

    /* liblz4's own frame decoder agrees (interoperability of what we write) */
    if (h.scheme != XET_SCHEME_NONE) {
        LZ4F_dctx *dc;
        LZ4F_createDecompressionContext(&dc, LZ4F_VERSION);
        uint8_t *ref = malloc(n + 16);
        size_t dst = n + 16, srcn = h.clen;
        size_t r = LZ4F_decompress(dc, ref, &dst, rec + 8, &srcn, NULL);
        T_EQ_INT(r, 0);
        T_EQ_INT(srcn, h.clen);
        T_EQ_INT(dst, n);
        if (dst == n) {
            if (h.scheme == XET_SCHEME_BG4_LZ4) {
                uint8_t *re = malloc(n ? n : 1);
                xet_bg4_regroup(ref, n, re);
                T_EQ_MEM(re, data, n);
                free(re);
            } else {
                T_EQ_MEM(ref, data, n);
            }
        }
        free(ref);
        LZ4F_freeDecompressionContext(dc);
    }
    free(out);
    free(rec);
    return (long)h.clen;
}

static void test_roundtrip(void)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 63, 64, 65, 1001, 8191, 8192, 65535, 65536,
                                   65537, 100003, 131069, 131070, 131071, 131072};
    uint8_t *buf = malloc(XET_CHUNK_MAX);
    for (int k = K_RANDOM; k <= K_ZERO; k++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            fill((enum kind)k, buf, n, 1000 + n);
            char what[64];
            snprintf(what, sizeof what, "%s/%zu", KIND_NAME[k], n);
            int before = t_fail;
            long c0 = roundtrip(buf, n, XET_SCHEME_NONE, what);
            long c1 = roundtrip(buf, n, XET_SCHEME_LZ4, what);
            long c2 = roundtrip(buf, n, XET_SCHEME_BG4_LZ4, what);
            long ca = roundtrip(buf, n, -1, what);
            T_EQ_INT(c0, n);
            /* auto = NONE unless LZ4 or BG4 is strictly smaller; then the smaller */
            long best = (long)n;
            if (c1 < best)
                best = c1;
            if (c2 < best)
                best = c2;
            T_EQ_INT(ca, best);
            if (t_fail != before)
                fprintf(stderr, "  in case %s (none %ld lz4 %ld bg4 %ld auto %ld)\n", what, c0,
                        c1, c2, ca);
        }

    /* which scheme auto picks, on full-size chunks */
    uint8_t *rec = malloc(xet_chunk_record_bound(XET_CHUNK_MAX));
    xet_chunk_header h;
    static const int want[] = {XET_SCHEME_NONE, XET_SCHEME_LZ4, XET_SCHEME_BG4_LZ4, -2};
    for (int k = K_RANDOM; k <= K_ZERO; k++) {
        fill((enum kind)k, buf, XET_CHUNK_MAX, 5);
        long rl = xet_chunk_encode(buf, XET_CHUNK_MAX, -1, rec);
        T_TRUE(rl > 0);
        xet_chunk_header_parse(rec, (size_t)rl, &h);
        if (want[k] >= 0)
            T_EQ_INT(h.scheme, want[k]);
        else
            T_TRUE(h.scheme != XET_SCHEME_NONE && h.clen < 1024); /* zeros: tiny either way */
        if (k == K_FLOAT) {
            /* BG4 must beat plain LZ4 clearly on float32 data */
            long l = xet_chunk_encode(buf, XET_CHUNK_MAX, XET_SCHEME_LZ4, rec);
            T_TRUE((long)h.clen + 8 < l);
        }
    }
    /* random bytes: the LZ4 frame is larger than the chunk, so auto stores it */
    gen_splitmix64(9, buf, 5);
    T_EQ_INT(xet_chunk_encode(buf, 5, -1, rec), 13);
    T_EQ_INT(rec[4], XET_SCHEME_NONE);
    T_EQ_MEM(rec + 8, buf, 5);
    /* arguments out of range */
    T_EQ_INT(xet_chunk_encode(buf, XET_CHUNK_MAX + 1, -1, rec), -EFBIG);
    T_EQ_INT(xet_chunk_encode(buf, 10, 3, rec), -EPROTONOSUPPORT);
    free(rec);
    free(buf);
}

/* Frames written with other options than ours decode too: hub style (4 MiB
 * blocks), content size, block and content checksums, independent blocks,
 * several linked 64 KiB blocks, stored (uncompressed) blocks. */
static void test_foreign_frames(void)
{
    uint8_t *data = malloc(XET_CHUNK_MAX);
    size_t cap = LZ4F_compressFrameBound(XET_CHUNK_MAX, NULL) + 64;
    uint8_t *frame = malloc(cap);
    uint8_t *out = malloc(XET_CHUNK_MAX);
    struct {
        LZ4F_blockSizeID_t bs;
        LZ4F_blockMode_t mode;
        int csize, cck, bck;
    } opts[] = {
        {LZ4F_max4MB, LZ4F_blockLinked, 0, 0, 0},     {LZ4F_max64KB, LZ4F_blockLinked, 1, 1, 1},
        {LZ4F_max64KB, LZ4F_blockIndependent, 0, 0, 0}, {LZ4F_max256KB, LZ4F_blockLinked, 1, 0, 1},
        {LZ4F_max1MB, LZ4F_blockIndependent, 0, 1, 0}, {LZ4F_max64KB, LZ4F_blockLinked, 0, 0, 1},
    };
    for (int k = K_RANDOM; k <= K_ZERO; k++)
        for (size_t oi = 0; oi < sizeof opts / sizeof opts[0]; oi++) {
            size_t n = k == K_RANDOM ? 131072 : 131071 - (size_t)k;
            fill((enum kind)k, data, n, 77);
            LZ4F_preferences_t p;
            memset(&p, 0, sizeof p);
            p.frameInfo.blockSizeID = opts[oi].bs;
            p.frameInfo.blockMode = opts[oi].mode;
            p.frameInfo.contentSize = opts[oi].csize ? n : 0;
            p.frameInfo.contentChecksumFlag = opts[oi].cck;
            p.frameInfo.blockChecksumFlag = opts[oi].bck;
            size_t fl = LZ4F_compressFrame(frame, cap, data, n, &p);
            T_TRUE(!LZ4F_isError(fl));
            if (LZ4F_isError(fl))
                continue;
            xet_chunk_header h = {0, XET_SCHEME_LZ4, (uint32_t)fl, (uint32_t)n};
            memset(out, 0xAA, XET_CHUNK_MAX);
            int err = xet_chunk_decode(&h, frame, out);
            T_EQ_INT(err, 0);
            T_EQ_MEM(out, data, n);
            if (err)
                fprintf(stderr, "  %s, option set %zu\n", KIND_NAME[k], oi);
            /* with a content size in the frame, it must match the header */
            if (opts[oi].csize) {
                h.ulen = (uint32_t)n - 1;
                T_EQ_INT(xet_chunk_decode(&h, frame, out), -EILSEQ);
            }
        }
    /* the hub's exact header bytes: FLG 0x40, BD 0x70 */
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof p);
    p.frameInfo.blockSizeID = LZ4F_max4MB;
    gen_text(data, 50000);
    size_t fl = LZ4F_compressFrame(frame, cap, data, 50000, &p);
    T_EQ_INT(frame[4], 0x60); /* one block: liblz4 marks it independent */
    frame[4] = 0x40;          /* as the hub writes it: linked */
    xet_chunk_header h = {0, XET_SCHEME_LZ4, (uint32_t)fl, 50000};
    T_EQ_INT(xet_chunk_decode(&h, frame, out), 0);
    T_EQ_MEM(out, data, 50000);
    free(out);
    free(frame);
    free(data);
}

/* ---- BG4 ---------------------------------------------------------------- */

static void test_bg4(void)
{
    uint8_t in[1100], g[1100], back[1100], naive[1100];
    for (size_t n = 0; n <= sizeof in; n = n < 64 ? n + 1 : n + 37) {
        int before = t_fail;
        gen_splitmix64(n, in, n);
        xet_bg4_group(in, n, g);
        /* grouping per §3.2: group k = bytes k, k+4, ...; sizes q+(r>=1), q+(r>=2), q+(r>=3), q */
        size_t pos = 0;
        for (size_t k = 0; k < 4; k++)
            for (size_t i = k; i < n; i += 4)
                naive[pos++] = in[i];
        T_EQ_INT(pos, n);
        T_EQ_MEM(g, naive, n);
        memset(back, 0xEE, sizeof back);
        xet_bg4_regroup(g, n, back);
        T_EQ_MEM(back, in, n);
        if (n < sizeof back)
            T_EQ_INT(back[n], 0xEE); /* nothing written past n */
        if (t_fail != before)
            fprintf(stderr, "  bg4 n=%zu\n", n);
    }
    /* a worked example: n = 7 -> groups [0 4] [1 5] [2 6] [3] */
    const uint8_t s[7] = {0, 1, 2, 3, 4, 5, 6}, gs[7] = {0, 4, 1, 5, 2, 6, 3};
    uint8_t o[7];
    xet_bg4_group(s, 7, o);
    T_EQ_MEM(o, gs, 7);
    xet_bg4_regroup(gs, 7, o);
    T_EQ_MEM(o, s, 7);
}

/* ---- writer ------------------------------------------------------------- */

static void test_writer(void)
{
    uint8_t *data = malloc(1 << 20);
    gen_text(data, 1 << 20);
    gen_splitmix64(3, data + 300000, 200000);
    uint64_t *bounds;
    long n = xet_chunk_buffer(data, 1 << 20, &bounds);
    T_TRUE(n > 4);
    xet_xorb_writer w;
    xet_xorb_writer_init(&w, -1);
    xet_merkle_node *nodes = malloc((size_t)n * sizeof *nodes);
    uint64_t start = 0;
    for (long i = 0; i < n; i++) {
        size_t cl = (size_t)(bounds[i] - start);
        xet_chunk_hash(data + start, cl, &nodes[i].hash);
        nodes[i].len = cl;
        /* every other chunk passes its hash in */
        long r = xet_xorb_writer_add(&w, data + start, cl, (i & 1) ? &nodes[i].hash : NULL);
        T_EQ_INT(r, i);
        T_EQ_INT(w.rec_end[i], w.len);
        start = bounds[i];
    }
    T_EQ_INT(w.nchunks, n);
    T_EQ_INT(w.unpacked, 1 << 20);
    xet_hash wh, root;
    xet_xorb_writer_hash(&w, &wh);
    xet_merkle_root(nodes, (size_t)n, &root);
    T_EQ_STR(str(&wh), str(&root));

    /* the serialized xorb decodes back to the input, same hash */
    xet_xorb_decoded d;
    T_EQ_INT(xet_xorb_decode_all(w.buf, w.len, &d), 0);
    T_EQ_INT(d.len, 1 << 20);
    T_EQ_MEM(d.data, data, 1 << 20);
    T_EQ_STR(str(&d.xorb_hash), str(&wh));
    xet_xorb_decoded_free(&d);
    xet_record *recs;
    T_EQ_INT(xet_xorb_index(w.buf, w.len, &recs), n);
    for (long i = 0; i < n; i++)
        T_EQ_INT(recs[i].offset + 8 + recs[i].hdr.clen, w.rec_end[i]);
    free(recs);

    /* reset keeps nothing of the previous xorb */
    xet_xorb_writer_reset(&w);
    T_EQ_INT(w.len, 0);
    T_EQ_INT(w.nchunks, 0);
    xet_xorb_writer_hash(&w, &wh);
    T_TRUE(xet_hash_is_zero(&wh));
    T_EQ_INT(xet_xorb_writer_add(&w, data, 100, NULL), 0);
    xet_xorb_writer_hash(&w, &wh);
    xet_chunk_hash(data, 100, &root);
    T_EQ_STR(str(&wh), str(&root)); /* one chunk: xorb hash = chunk hash */
    T_EQ_INT(xet_xorb_writer_add(&w, data, 0, NULL), -EINVAL);
    T_EQ_INT(xet_xorb_writer_add(&w, data, XET_CHUNK_MAX + 1, NULL), -EFBIG);
    T_EQ_INT(w.nchunks, 1);
    xet_xorb_writer_free(&w);
    free(nodes);
    free(bounds);
    free(data);
}

static void test_writer_caps(void)
{
    /* 8192 chunks, then -E2BIG with nothing changed */
    xet_xorb_writer w;
    xet_xorb_writer_init(&w, XET_SCHEME_NONE);
    uint8_t b[4];
    xet_merkle_node *nodes = malloc(XET_XORB_MAX_CHUNKS * sizeof *nodes);
    long last = 0;
    for (uint32_t i = 0; i < XET_XORB_MAX_CHUNKS; i++) {
        memcpy(b, &i, 4);
        last = xet_xorb_writer_add(&w, b, 4, NULL);
        if (last != (long)i)
            break;
        xet_chunk_hash(b, 4, &nodes[i].hash);
        nodes[i].len = 4;
    }
    T_EQ_INT(last, XET_XORB_MAX_CHUNKS - 1);
    size_t len = w.len;
    T_EQ_INT(len, XET_XORB_MAX_CHUNKS * 12);
    T_EQ_INT(xet_xorb_writer_add(&w, b, 4, NULL), -E2BIG);
    T_EQ_INT(w.nchunks, XET_XORB_MAX_CHUNKS);
    T_EQ_INT(w.len, len);
    xet_hash wh, root;
    xet_xorb_writer_hash(&w, &wh);
    xet_merkle_root(nodes, XET_XORB_MAX_CHUNKS, &root);
    T_EQ_STR(str(&wh), str(&root));
    /* the index of such a xorb is exactly at the cap; one more record is too many */
    xet_record *recs;
    T_EQ_INT(xet_xorb_index(w.buf, w.len, &recs), XET_XORB_MAX_CHUNKS);
    free(recs);
    uint8_t *more = malloc(w.len + 12);
    memcpy(more, w.buf, w.len);
    memcpy(more + w.len, w.buf, 12);
    T_EQ_INT(xet_xorb_index(more, w.len + 12, &recs), -EFBIG);
    T_TRUE(recs == NULL);
    free(more);
    xet_xorb_writer_free(&w);
    free(nodes);

    /* 64 MiB: stored 128 KiB chunks are 131080-byte records; 511 fit */
    uint8_t *chunk = malloc(XET_CHUNK_MAX);
    gen_splitmix64(11, chunk, XET_CHUNK_MAX);
    xet_xorb_writer_init(&w, XET_SCHEME_NONE);
    long r = 0;
    int i;
    for (i = 0; i < 600; i++) {
        chunk[0] = (uint8_t)i;
        chunk[1] = (uint8_t)(i >> 8);
        r = xet_xorb_writer_add(&w, chunk, XET_CHUNK_MAX, NULL);
        if (r < 0)
            break;
    }
    T_EQ_INT(r, -E2BIG);
    T_EQ_INT(i, XET_XORB_MAX_BYTES / (XET_CHUNK_MAX + 8));
    T_EQ_INT(w.nchunks, 511);
    T_EQ_INT(w.len, 511 * (XET_CHUNK_MAX + 8));
    /* a small chunk still fits after the refused one */
    T_EQ_INT(xet_xorb_writer_add(&w, chunk, 1000, NULL), 511);
    T_TRUE(w.len <= XET_XORB_MAX_BYTES);
    xet_xorb_writer_free(&w);
    free(chunk);
}

/* ---- malformed input ---------------------------------------------------- */

static void put_hdr(uint8_t *p, int version, uint32_t clen, int scheme, uint32_t ulen)
{
    xet_chunk_header h = {(uint8_t)version, (uint8_t)scheme, clen, ulen};
    xet_chunk_header_write(&h, p);
}

static void test_header_errors(void)
{
    uint8_t b[8];
    xet_chunk_header h;
    put_hdr(b, 0, 10, 0, 10);
    for (size_t n = 0; n < 8; n++)
        T_EQ_INT(xet_chunk_header_parse(b, n, &h), -EBADMSG);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), 0);
    T_EQ_INT(h.clen, 10);
    T_EQ_INT(h.ulen, 10);
    /* u24 fields: bytes 1-3 compressed, 5-7 uncompressed (§7 trap 9) */
    const uint8_t raw[8] = {0, 0x01, 0x02, 0x05, 1, 0x00, 0x00, 0x02};
    T_EQ_INT(xet_chunk_header_parse(raw, 8, &h), -EFBIG); /* clen 0x050201 > 262144 */
    const uint8_t raw2[8] = {0, 0x01, 0x02, 0x01, 2, 0x03, 0x00, 0x01};
    T_EQ_INT(xet_chunk_header_parse(raw2, 8, &h), 0);
    T_EQ_INT(h.clen, 0x010201);
    T_EQ_INT(h.scheme, 2);
    T_EQ_INT(h.ulen, 0x010003);

    put_hdr(b, 1, 10, 0, 10);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), -EPROTONOSUPPORT);
    put_hdr(b, 0, 10, 3, 10);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), -EPROTONOSUPPORT);
    put_hdr(b, 0, 10, 99, 10);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), -EPROTONOSUPPORT);
    put_hdr(b, 0, 10, 1, 131073);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), -EFBIG);
    put_hdr(b, 0, 262145, 1, 10);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), -EFBIG);
    put_hdr(b, 0, 262144, 1, 131072);
    T_EQ_INT(xet_chunk_header_parse(b, 8, &h), 0);
    /* decode refuses the same headers even when not parsed first */
    uint8_t out[16];
    xet_chunk_header bad = {0, 3, 4, 4};
    T_EQ_INT(xet_chunk_decode(&bad, b, out), -EPROTONOSUPPORT);
    bad = (xet_chunk_header){1, 0, 4, 4};
    T_EQ_INT(xet_chunk_decode(&bad, b, out), -EPROTONOSUPPORT);
    bad = (xet_chunk_header){0, 0, 4, 5};
    T_EQ_INT(xet_chunk_decode(&bad, b, out), -EILSEQ); /* stored: clen != ulen */
}

static void test_index_errors(void)
{
    uint8_t buf[64];
    xet_record *recs;
    memset(buf, 0x5A, sizeof buf);
    /* two stored records of 10 and 6 bytes */
    put_hdr(buf, 0, 10, 0, 10);
    put_hdr(buf + 18, 0, 6, 0, 6);
    T_EQ_INT(xet_xorb_index(buf, 32, &recs), 2);
    T_EQ_INT(recs[1].offset, 18);
    free(recs);
    T_EQ_INT(xet_xorb_index(buf, 0, &recs), 0);
    T_TRUE(recs == NULL);
    /* payload running past the end */
    for (size_t n = 1; n < 32; n++) {
        if (n == 18)
            continue;
        long r = xet_xorb_index(buf, n, &recs);
        T_EQ_INT(r, -EBADMSG);
        T_TRUE(recs == NULL);
    }
    /* a footer stops the walk */
    memcpy(buf + 32, "XETBLOB\x01", 8);
    T_EQ_INT(xet_xorb_index(buf, 64, &recs), 2);
    free(recs);
    T_EQ_INT(xet_xorb_index(buf, 39, &recs), 2); /* "XETBLOB" with nothing after */
    free(recs);
    T_EQ_INT(xet_xorb_index(buf, 38, &recs), -EBADMSG); /* "XETBLO" is no footer */
    memcpy(buf + 32, "XETBLOC\x01", 8);
    T_EQ_INT(xet_xorb_index(buf, 64, &recs), -EPROTONOSUPPORT); /* version 'X' */
    /* record header errors come through */
    put_hdr(buf + 18, 0, 6, 7, 6);
    T_EQ_INT(xet_xorb_index(buf, 32, &recs), -EPROTONOSUPPORT);
    put_hdr(buf + 18, 0, 6, 0, 200000);
    T_EQ_INT(xet_xorb_index(buf, 32, &recs), -EFBIG);
    xet_xorb_decoded d;
    T_EQ_INT(xet_xorb_decode_all(buf, 32, &d), -EFBIG);
    T_TRUE(d.data == NULL && d.nchunks == 0);
    /* empty xorb: no chunks, zero hash */
    T_EQ_INT(xet_xorb_decode_all(buf, 0, &d), 0);
    T_EQ_INT(d.nchunks, 0);
    T_TRUE(xet_hash_is_zero(&d.xorb_hash));
    xet_xorb_decoded_free(&d);
}

/* Decode a payload copied into an exactly sized buffer; output exactly ulen. */
static int decode_exact(const xet_chunk_header *h, const uint8_t *payload)
{
    uint8_t *p = malloc(h->clen ? h->clen : 1);
    memcpy(p, payload, h->clen);
    uint8_t *o = malloc(h->ulen ? h->ulen : 1);
    int err = xet_chunk_decode(h, p, o);
    free(o);
    free(p);
    return err;
}

static void test_frame_errors(void)
{
    /* a valid two-block LZ4 record of text, and a one-block one */
    size_t n = 100000;
    uint8_t *data = malloc(n);
    gen_text(data, n);
    uint8_t *rec = malloc(xet_chunk_record_bound(n) + 16);
    long rl = xet_chunk_encode(data, n, XET_SCHEME_LZ4, rec);
    T_TRUE(rl > 20);
    xet_chunk_header h;
    T_EQ_INT(xet_chunk_header_parse(rec, (size_t)rl, &h), 0);
    uint8_t *fr = rec + 8;
    T_EQ_INT(decode_exact(&h, fr), 0);
    uint8_t save[16];
    memcpy(save, fr, 16);

    /* bad magic */
    fr[0] ^= 1;
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    memcpy(fr, save, 16);
    /* FLG version bits 00 and 10; reserved bit; dictionary id */
    fr[4] = (uint8_t)((save[4] & 0x3F) | 0x00);
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[4] = (uint8_t)((save[4] & 0x3F) | 0x80);
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[4] = save[4] | 0x02;
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[4] = save[4] | 0x01;
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[4] = save[4];
    /* BD: reserved bits, block size ids below 4 */
    fr[5] = save[5] | 0x80;
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[5] = save[5] | 0x01;
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[5] = 0x30;
    T_EQ_INT(decode_exact(&h, fr), -EILSEQ);
    fr[5] = save[5];
    T_EQ_INT(decode_exact(&h, fr), 0);

    /* decoded size != ulen, both ways */
    xet_chunk_header h2 = h;
    h2.ulen = (uint32_t)n - 1;
    T_EQ_INT(decode_exact(&h2, fr), -EILSEQ);
    h2.ulen = (uint32_t)n + 1;
    T_EQ_INT(decode_exact(&h2, fr), -EILSEQ);
    h2.ulen = 0;
    T_EQ_INT(decode_exact(&h2, fr), -EILSEQ);

    /* truncated: every length inside the frame */
    int bad = 0;
    for (uint32_t c = 0; c < h.clen; c += (c < 64 || h.clen - c < 64) ? 1 : 251) {
        h2 = h;
        h2.clen = c;
        if (decode_exact(&h2, fr) != -EILSEQ)
            bad++;
    }
    T_EQ_INT(bad, 0);
    /* trailing bytes after the end mark */
    memcpy(fr + h.clen, "\0\0\0\0", 4);
    h2 = h;
    h2.clen = h.clen + 1;
    T_EQ_INT(decode_exact(&h2, fr), -EILSEQ);

    /* first block's size: past the payload, above the block maximum,
     * stored block that would overflow the output */
    uint32_t b0 = (uint32_t)fr[7] | (uint32_t)fr[8] << 8 | (uint32_t)fr[9] << 16 |
                  (uint32_t)fr[10] << 24;
    T_TRUE(b0 < 65536 && b0 > 0);
    uint32_t vals[] = {h.clen - 11 + 1, 65537, 0x7FFFFFFF, 0x80000000u | 65537,
                       0x80000000u | (h.clen - 11 - 4 - 1)};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint32_t v = vals[i];
        fr[7] = (uint8_t)v;
        fr[8] = (uint8_t)(v >> 8);
        fr[9] = (uint8_t)(v >> 16);
        fr[10] = (uint8_t)(v >> 24);
        int err = decode_exact(&h, fr);
        T_EQ_INT(err, -EILSEQ);
        if (err != -EILSEQ)
            fprintf(stderr, "  block size 0x%08x\n", v);
    }
    memcpy(fr, save, 16);
    T_EQ_INT(decode_exact(&h, fr), 0);

    /* BG4 records fail the same way */
    rl = xet_chunk_encode(data, n, XET_SCHEME_BG4_LZ4, rec);
    T_EQ_INT(xet_chunk_header_parse(rec, (size_t)rl, &h), 0);
    h2 = h;
    h2.ulen--;
    T_EQ_INT(decode_exact(&h2, rec + 8), -EILSEQ);
    h2 = h;
    h2.clen -= 5;
    T_EQ_INT(decode_exact(&h2, rec + 8), -EILSEQ);
    rec[8] = 0;
    T_EQ_INT(decode_exact(&h, rec + 8), -EILSEQ);

    /* a frame holding a raw LZ4 block instead (trap 8): not a frame */
    uint8_t blk[256];
    int bl = LZ4_compress_default((const char *)data, (char *)blk, 200, sizeof blk);
    h2 = (xet_chunk_header){0, XET_SCHEME_LZ4, (uint32_t)bl, 200};
    T_EQ_INT(decode_exact(&h2, blk), -EILSEQ);
    free(rec);
    free(data);
}

/* Decode every record of a (damaged) buffer without trusting anything:
 * the buffer is copied to an exact-size allocation, each output is exactly
 * ulen bytes.  Returns 0 or the first error. */
static int decode_buffer(const uint8_t *src, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    memcpy(b, src, len);
    xet_record *recs;
    long n = xet_xorb_index(b, len, &recs);
    int err = n < 0 ? (int)n : 0;
    for (long i = 0; i < n && !err; i++) {
        T_TRUE(recs[i].offset + 8 + recs[i].hdr.clen <= len);
        uint8_t *o = malloc(recs[i].hdr.ulen ? recs[i].hdr.ulen : 1);
        err = xet_chunk_decode(&recs[i].hdr, b + recs[i].offset + 8, o);
        free(o);
    }
    free(recs);
    free(b);
    return err;
}

static bool known_error(int err)
{
    return err == 0 || err == -EBADMSG || err == -EPROTONOSUPPORT || err == -EFBIG ||
           err == -EILSEQ;
}

static void test_corruption(void)
{
    size_t len;
    uint8_t *x = t_read_file(XORB_NAME, &len);
    uint8_t *m = malloc(len);
    int odd = 0, failed = 0, ok = 0;
    /* one flipped byte at every 97th position, three ways */
    static const uint8_t flips[] = {0xFF, 0x01, 0x80};
    for (size_t pos = 0; pos < len; pos += 97)
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(m, x, len);
            m[pos] ^= flips[f];
            int err = decode_buffer(m, len);
            odd += !known_error(err);
            failed += err != 0;
            ok += err == 0;
        }
    /* every byte of each record header and of each frame's first 64 bytes */
    xet_record *recs;
    long n = xet_xorb_index(x, len, &recs);
    for (long r = 0; r < n; r++)
        for (size_t k = 0; k < 8 + 64 && k < 8 + recs[r].hdr.clen; k++) {
            memcpy(m, x, len);
            m[recs[r].offset + k] ^= 0x55;
            int err = decode_buffer(m, len);
            odd += !known_error(err);
            failed += err != 0;
        }
    /* truncation at every 97th length, and around every record boundary */
    for (size_t l = 0; l <= len; l += 97) {
        int err = decode_buffer(x, l);
        odd += !known_error(err);
    }
    for (long r = 0; r < n; r++)
        for (long d = -9; d <= 9; d++) {
            long l = (long)recs[r].offset + d;
            if (l >= 0 && (size_t)l <= len) {
                int err = decode_buffer(x, (size_t)l);
                odd += !known_error(err);
                /* cutting exactly at a record boundary leaves a valid run */
                if (d == 0)
                    T_EQ_INT(err, 0);
            }
        }
    T_EQ_INT(decode_buffer(x, len), 0);
    /* random multi-byte damage inside compressed payloads */
    uint64_t rng = 12345;
    for (int it = 0; it < 3000; it++) {
        memcpy(m, x, len);
        long r = 3 + it % 5; /* records 3..7 hold LZ4/BG4 frames (and the 10-byte one) */
        size_t base = recs[r].offset + 8, span = recs[r].hdr.clen;
        for (int k = 0; k < 1 + it % 4; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            m[base + (rng >> 33) % span] = (uint8_t)(rng >> 24);
        }
        int err = decode_buffer(m, len);
        odd += !known_error(err);
    }
    free(recs);
    T_EQ_INT(odd, 0);
    T_TRUE(failed > 0); /* damage is noticed at least sometimes */
    T_TRUE(ok > 0);     /* and stored payload bytes do decode (hash checks catch them) */
    free(m);
    free(x);
}

int main(void)
{
    T_RUN(test_vector_xorb);
    T_RUN(test_roundtrip);
    T_RUN(test_foreign_frames);
    T_RUN(test_bg4);
    T_RUN(test_writer);
    T_RUN(test_writer_caps);
    T_RUN(test_header_errors);
    T_RUN(test_index_errors);
    T_RUN(test_frame_errors);
    T_RUN(test_corruption);
    return t_done();
}
