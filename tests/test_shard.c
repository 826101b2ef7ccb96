/* test_shard.c — shards (spec/xet.md §4): the upload shard written by
 * @huggingface/hub parsed field by field against upload.json and the vector
 * inputs; verification hashes and file hashes recomputed from the decoded
 * xorb; the four input files rebuilt from their terms; the shard written
 * back byte-exactly; malformed and damaged shards rejected without crashing
 * (run under -fsanitize=address,undefined). */
#include <cjson/cJSON.h>

#include "gen.h"
#include "t.h"
#include "xet.h"

#define SHARD_NAME "shard-upload-0.bin"
#define SHARD_SHA256 "f8b0ecb53272b3130629e9351647327c073b444a790162d8542f1cc767271af1"
#define XORB_NAME "xorb-028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b.bin"
#define XORB_HASH "028b671524f068a6be7db3e369083a69916cb373667836a8e9f1a2ceaf0e4a6b"
#define CREATED 1767225600u

/* The four uploaded files, their SHA-256 (vectors README) and Xet hashes. */
static const struct {
    const char *name, *sha256, *xet;
    size_t size;
} FILES[4] = {
    {"input-a_random.bin", "c1b6891456530b4f7081fb25e039bd3e1453df9a07960777149086036b5670c2",
     "3d96c786f6a5ccca39cd64ff8fde9c92885e35ddc22d372aafabc92a5ff3584d", 150000},
    {"input-b_text.txt", "25cb0fc6900316db430d0405101685790bf80db7ce64003899db8f20e15bcaee",
     "5611f55c20b186f216e222557de5617a0c6a01e57a4b40efe133a9aba5c99fc4", 100000},
    {"input-c_floats.f32", "4b8768c682ca0caeed1e818cab02cd374efb2dde088778d247b230338871eff5",
     "50682bcc4d6d3de9da0e4aa8beac1f4365cb3120e952f14139d491bacc6d4981", 120000},
    {"input-d_concat.bin", "637fd87afa008227cc0108055e2ac61e36cc4f9e620b55ef3279a5ebd6184ad5",
     "e0957be4ed871fe383fe47f3c7e65f883f1ba1b8e27a80d1c40aa5509e49ba39", 250000},
};

static char *str(const xet_hash *h)
{
    static char buf[4][XET_HASH_STR_LEN + 1];
    static int k;
    k = (k + 1) & 3;
    xet_hash_to_string(h, buf[k]);
    return buf[k];
}

static char *hex32(const uint8_t *p)
{
    static char buf[2][65];
    static int k;
    k = (k + 1) & 1;
    xet_hex(p, 32, buf[k]);
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

/* Field-by-field equality of two parsed shards. */
static void shard_eq(const xet_shard *a, const xet_shard *b)
{
    T_EQ_INT(a->nfiles, b->nfiles);
    for (size_t i = 0; i < a->nfiles && i < b->nfiles; i++) {
        const xet_shard_file *x = &a->files[i], *y = &b->files[i];
        T_EQ_STR(str(&x->file_hash), str(&y->file_hash));
        T_EQ_INT(x->flags, y->flags);
        T_EQ_INT(x->nterms, y->nterms);
        T_EQ_INT(x->verification != NULL, y->verification != NULL);
        T_EQ_INT(x->has_sha256, y->has_sha256);
        if (x->has_sha256 && y->has_sha256)
            T_EQ_MEM(x->sha256, y->sha256, 32);
        for (size_t k = 0; k < x->nterms && k < y->nterms; k++) {
            T_EQ_MEM(&x->terms[k], &y->terms[k], sizeof x->terms[k]);
            if (x->verification && y->verification)
                T_EQ_STR(str(&x->verification[k]), str(&y->verification[k]));
        }
    }
    T_EQ_INT(a->nxorbs, b->nxorbs);
    for (size_t i = 0; i < a->nxorbs && i < b->nxorbs; i++) {
        const xet_shard_xorb *x = &a->xorbs[i], *y = &b->xorbs[i];
        T_EQ_STR(str(&x->hash), str(&y->hash));
        T_EQ_INT(x->flags, y->flags);
        T_EQ_INT(x->bytes_in_xorb, y->bytes_in_xorb);
        T_EQ_INT(x->bytes_on_disk, y->bytes_on_disk);
        T_EQ_INT(x->nchunks, y->nchunks);
        for (size_t k = 0; k < x->nchunks && k < y->nchunks; k++)
            T_EQ_MEM(&x->chunks[k], &y->chunks[k], sizeof x->chunks[k]);
    }
    T_EQ_INT(a->has_footer, b->has_footer);
    T_EQ_INT(a->created, b->created);
    T_EQ_INT(a->key_expiry, b->key_expiry);
    T_EQ_MEM(a->hmac_key, b->hmac_key, 32);
}

/* ---- the hub's upload shard --------------------------------------------- */

static void test_parse_vector(void)
{
    size_t len;
    uint8_t *buf = t_read_file(SHARD_NAME, &len);
    char sha[65];
    sha256_hex(buf, len, sha);
    T_EQ_STR(sha, SHARD_SHA256);
    T_EQ_INT(len, 1736);
    cJSON *j = load_json("upload.json");
    cJSON *s0 = cJSON_GetObjectItem(j, "shard0");

    xet_shard s;
    T_EQ_INT(xet_shard_parse(buf, len, &s), 0);
    T_EQ_INT(s.nfiles, 4);
    T_EQ_INT(s.nxorbs, 1);
    T_TRUE(s.has_footer);
    T_EQ_INT(s.created, CREATED);
    T_EQ_INT(s.key_expiry, 0);
    static const uint8_t zero[32];
    T_EQ_MEM(s.hmac_key, zero, 32);

    /* files: hash, flags, terms, verification hashes, SHA-256 */
    cJSON *jf = cJSON_GetObjectItem(s0, "file_info");
    T_EQ_INT(cJSON_GetArraySize(jf), 4);
    for (size_t i = 0; i < s.nfiles && i < 4; i++) {
        const xet_shard_file *f = &s.files[i];
        cJSON *o = cJSON_GetArrayItem(jf, (int)i);
        T_EQ_STR(str(&f->file_hash), jstr(o, "file_hash"));
        T_EQ_STR(str(&f->file_hash), FILES[i].xet);
        T_EQ_INT(f->flags, 0xc0000000u);
        T_EQ_INT(f->flags, strtoul(jstr(o, "flags"), NULL, 16));
        T_TRUE(f->verification != NULL);
        T_TRUE(f->has_sha256);
        T_EQ_STR(hex32(f->sha256), FILES[i].sha256);
        T_EQ_STR(hex32(f->sha256), jstr(o, "sha256_field_as_hash_string"));
        cJSON *jt = cJSON_GetObjectItem(o, "terms");
        T_EQ_INT(f->nterms, cJSON_GetArraySize(jt));
        uint64_t size = 0;
        for (size_t k = 0; k < f->nterms; k++) {
            cJSON *t = cJSON_GetArrayItem(jt, (int)k);
            T_EQ_STR(str(&f->terms[k].xorb), jstr(t, "xorb_hash"));
            T_EQ_INT(f->terms[k].flags, jint(t, "flags"));
            T_EQ_INT(f->terms[k].unpacked_bytes, jint(t, "unpacked_bytes"));
            T_EQ_INT(f->terms[k].chunk_start, jint(t, "chunk_start"));
            T_EQ_INT(f->terms[k].chunk_end, jint(t, "chunk_end"));
            if (f->verification)
                T_EQ_STR(str(&f->verification[k]), jstr(t, "range_hash"));
            size += f->terms[k].unpacked_bytes;
        }
        T_EQ_INT(size, FILES[i].size);
    }
    /* d_concat: [0,2), [7,8), [4,6) of the one xorb (§7 trap 13) */
    if (s.nfiles == 4 && s.files[3].nterms == 3) {
        const xet_term *t = s.files[3].terms;
        T_EQ_INT(t[0].chunk_start, 0);
        T_EQ_INT(t[0].chunk_end, 2);
        T_EQ_INT(t[1].chunk_start, 7);
        T_EQ_INT(t[1].chunk_end, 8);
        T_EQ_INT(t[2].chunk_start, 4);
        T_EQ_INT(t[2].chunk_end, 6);
        T_TRUE(xet_hash_eq(&t[0].xorb, &t[1].xorb) && xet_hash_eq(&t[1].xorb, &t[2].xorb));
    } else {
        T_TRUE(!"d_concat has three terms");
    }

    /* xorb block */
    cJSON *jx = cJSON_GetArrayItem(cJSON_GetObjectItem(s0, "xorb_info"), 0);
    if (s.nxorbs == 1) {
        const xet_shard_xorb *x = &s.xorbs[0];
        T_EQ_STR(str(&x->hash), XORB_HASH);
        T_EQ_INT(x->flags, 0);
        T_EQ_INT(x->nchunks, 8);
        T_EQ_INT(x->nchunks, jint(jx, "num_chunks"));
        T_EQ_INT(x->bytes_in_xorb, 495882);
        T_EQ_INT(x->bytes_in_xorb, jint(jx, "num_bytes_in_xorb"));
        T_EQ_INT(x->bytes_on_disk, 285431);
        T_EQ_INT(x->bytes_on_disk, jint(jx, "num_bytes_on_disk"));
        uint32_t off = 0;
        for (size_t k = 0; k < x->nchunks; k++) {
            cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(jx, "chunks"), (int)k);
            T_EQ_STR(str(&x->chunks[k].hash), jstr(c, "chunk_hash"));
            T_EQ_INT(x->chunks[k].offset, off); /* cumulative uncompressed offset */
            T_EQ_INT(x->chunks[k].offset, jint(c, "chunk_byte_range_start"));
            T_EQ_INT(x->chunks[k].len, jint(c, "unpacked_segment_bytes"));
            T_EQ_INT(x->chunks[k].flags, jint(c, "flags"));
            off += x->chunks[k].len;
        }
        T_EQ_INT(off, x->bytes_in_xorb);
    }

    /* lookups */
    xet_hash h;
    xet_hash_from_string(XORB_HASH, &h);
    T_TRUE(xet_shard_find_xorb(&s, &h) == &s.xorbs[0]);
    xet_hash_from_string(FILES[2].xet, &h);
    T_TRUE(xet_shard_find_file(&s, &h) == &s.files[2]);
    T_TRUE(xet_shard_find_file(&s, &xet_zero_hash) == NULL);
    T_TRUE(xet_shard_find_xorb(&s, &xet_zero_hash) == NULL);
    xet_hash_from_string(XORB_HASH, &h);
    T_TRUE(xet_shard_find_file(&s, &h) == NULL);

    xet_shard_free(&s);
    T_EQ_INT(s.nfiles, 0);
    cJSON_Delete(j);
    free(buf);
}

/* Terms + decoded xorb -> the four files; verification and file hashes. */
static void test_rebuild_files(void)
{
    size_t slen, xlen;
    uint8_t *sb = t_read_file(SHARD_NAME, &slen);
    uint8_t *xb = t_read_file(XORB_NAME, &xlen);
    xet_shard s;
    xet_xorb_decoded d;
    T_EQ_INT(xet_shard_parse(sb, slen, &s), 0);
    T_EQ_INT(xet_xorb_decode_all(xb, xlen, &d), 0);
    if (s.nxorbs != 1 || d.nchunks != 8) {
        T_TRUE(!"shard and xorb parsed");
        return;
    }
    const xet_shard_xorb *x = &s.xorbs[0];
    T_TRUE(xet_hash_eq(&x->hash, &d.xorb_hash));
    /* the shard's chunk list describes the decoded xorb exactly */
    for (size_t k = 0; k < 8; k++) {
        T_EQ_STR(str(&x->chunks[k].hash), str(&d.chunk_hash[k]));
        T_EQ_INT(x->chunks[k].len, d.chunk_len[k]);
    }
    T_EQ_INT(x->bytes_in_xorb, d.len);
    T_EQ_INT(x->bytes_on_disk, xlen);

    for (size_t i = 0; i < s.nfiles && i < 4; i++) {
        const xet_shard_file *f = &s.files[i];
        size_t flen;
        uint8_t *want = t_read_file(FILES[i].name, &flen);
        T_EQ_INT(flen, FILES[i].size);
        char sha[65];
        sha256_hex(want, flen, sha);
        T_EQ_STR(sha, FILES[i].sha256);
        T_EQ_STR(hex32(f->sha256), sha);

        uint8_t *got = malloc(flen);
        size_t pos = 0;
        xet_merkle m;
        xet_merkle_init(&m);
        uint64_t nchunks = 0;
        for (size_t k = 0; k < f->nterms; k++) {
            const xet_term *t = &f->terms[k];
            const xet_shard_xorb *tx = xet_shard_find_xorb(&s, &t->xorb);
            T_TRUE(tx == x);
            if (tx != x || t->chunk_end > d.nchunks || t->chunk_start >= t->chunk_end)
                continue;
            /* verification entry = keyed hash of the term's raw chunk hashes */
            xet_hash v;
            xet_verification_hash(&d.chunk_hash[t->chunk_start], t->chunk_end - t->chunk_start, &v);
            T_EQ_STR(str(&f->verification[k]), str(&v));
            /* the term's decoded bytes, chunk by chunk, feeding the file's tree */
            uint32_t tl = 0;
            for (uint32_t c = t->chunk_start; c < t->chunk_end; c++) {
                uint32_t co = x->chunks[c].offset, cl = d.chunk_len[c];
                T_TRUE(pos + cl <= flen);
                if (pos + cl > flen)
                    break;
                memcpy(got + pos, d.data + co, cl);
                xet_hash ch;
                xet_chunk_hash(got + pos, cl, &ch);
                xet_merkle_add(&m, &ch, cl);
                nchunks++;
                pos += cl;
                tl += cl;
            }
            T_EQ_INT(tl, t->unpacked_bytes);
        }
        T_EQ_INT(pos, flen);
        if (pos == flen)
            T_EQ_MEM(got, want, flen);
        xet_hash root, fh;
        xet_merkle_final(&m, &root, NULL);
        xet_file_hash_from_root(&root, nchunks, NULL, &fh);
        T_EQ_STR(str(&fh), FILES[i].xet);
        T_EQ_STR(str(&fh), str(&f->file_hash));
        free(got);
        free(want);
    }
    xet_xorb_decoded_free(&d);
    xet_shard_free(&s);
    free(xb);
    free(sb);
}

/* Parsed shard -> bytes: identical to what the hub sent. */
static void test_write_back(void)
{
    size_t len;
    uint8_t *buf = t_read_file(SHARD_NAME, &len);
    xet_shard s, s2;
    T_EQ_INT(xet_shard_parse(buf, len, &s), 0);
    uint8_t *out;
    size_t olen;
    s.created = CREATED;
    T_EQ_INT(xet_shard_write(&s, true, &out, &olen), 0);
    T_EQ_INT(olen, len);
    T_EQ_MEM(out, buf, olen < len ? olen : len);
    T_EQ_INT(xet_shard_parse(out, olen, &s2), 0);
    shard_eq(&s, &s2);
    xet_shard_free(&s2);
    free(out);

    /* without footer: footer_size 0, sections unchanged */
    T_EQ_INT(xet_shard_write(&s, false, &out, &olen), 0);
    T_EQ_INT(olen, len - XET_SHARD_FOOTER_LEN);
    T_EQ_MEM(out, buf, 40);
    T_EQ_INT(out[40], 0);
    T_EQ_MEM(out + 48, buf + 48, olen - 48);
    T_EQ_INT(xet_shard_parse(out, olen, &s2), 0);
    T_TRUE(!s2.has_footer);
    T_EQ_INT(s2.created, 0);
    s2.has_footer = true;
    s2.created = s.created;
    shard_eq(&s, &s2);
    xet_shard_free(&s2);
    free(out);

    /* a shard built by hand: flags follow the data that is present */
    xet_shard h = {0};
    xet_term terms[2] = {{.unpacked_bytes = 10, .chunk_start = 0, .chunk_end = 1},
                         {.unpacked_bytes = 20, .chunk_start = 3, .chunk_end = 5}};
    xet_hash ver[2];
    memset(ver, 0x11, sizeof ver);
    xet_shard_file files[2] = {
        {.flags = XET_SHARD_FLAG_VERIFICATION | XET_SHARD_FLAG_METADATA_EXT, .nterms = 2,
         .terms = terms}, /* claims both, carries neither */
        {.flags = 0, .nterms = 2, .terms = terms, .verification = ver, .has_sha256 = true},
    };
    memset(files[1].sha256, 0xAB, 32);
    files[1].sha256[0] = 1;
    h.files = files;
    h.nfiles = 2;
    h.hmac_key[5] = 9;
    h.key_expiry = 77;
    h.created = 5;
    T_EQ_INT(xet_shard_write(&h, true, &out, &olen), 0);
    T_EQ_INT(olen, 48 + 48 * (3 + 6 + 2) + 200);
    T_EQ_INT(xet_shard_parse(out, olen, &s2), 0);
    T_EQ_INT(s2.nfiles, 2);
    T_EQ_INT(s2.nxorbs, 0);
    if (s2.nfiles == 2) {
        T_EQ_INT(s2.files[0].flags, 0);
        T_TRUE(s2.files[0].verification == NULL && !s2.files[0].has_sha256);
        T_EQ_INT(s2.files[1].flags, 0xc0000000u);
        T_EQ_MEM(s2.files[1].sha256, files[1].sha256, 32);
        /* stored group-reversed: byte 0 of the digest is byte 7 on disk */
        T_EQ_INT(out[48 + 48 * 3 + 48 * 5 + 7], 1);
    }
    T_EQ_INT(s2.key_expiry, 77);
    T_EQ_INT(s2.created, 5);
    T_EQ_INT(s2.hmac_key[5], 9);
    xet_shard_free(&s2);
    free(out);
    xet_shard_free(&s);
    free(buf);
}

/* ---- malformed input ---------------------------------------------------- */

/* Parse a copy in an exact-size buffer. */
static int parse_copy(const uint8_t *src, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    memcpy(b, src, len);
    xet_shard s;
    int err = xet_shard_parse(b, len, &s);
    if (err == 0)
        xet_shard_free(&s);
    else
        T_TRUE(s.files == NULL && s.xorbs == NULL && s.nfiles == 0);
    free(b);
    return err;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_malformed(void)
{
    size_t len;
    uint8_t *orig = t_read_file(SHARD_NAME, &len);
    uint8_t *b = malloc(len);
    T_EQ_INT(parse_copy(orig, len), 0);

    /* header */
    memcpy(b, orig, len);
    b[0] ^= 1;
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    memcpy(b, orig, len);
    b[31] ^= 1;
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    memcpy(b, orig, len);
    b[32] = 3;
    T_EQ_INT(parse_copy(b, len), -EPROTONOSUPPORT);
    b[32] = 1;
    T_EQ_INT(parse_copy(b, len), -EPROTONOSUPPORT);
    memcpy(b, orig, len);
    b[40] = 100; /* footer size neither 0 nor 200 */
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    memcpy(b, orig, len);
    b[47] = 1; /* footer size 2^56 + 200 */
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    memcpy(b, orig, len);
    b[1536] = 2; /* footer version */
    T_EQ_INT(parse_copy(b, len), -EPROTONOSUPPORT);

    /* truncation anywhere: header, file section, xorb section, footer */
    int bad = 0;
    for (size_t l = 0; l < len; l++) {
        int err = parse_copy(orig, l);
        if (err != -EBADMSG && err != -EPROTONOSUPPORT) {
            bad++;
            fprintf(stderr, "  truncated to %zu: %d\n", l, err);
        }
    }
    T_EQ_INT(bad, 0);
    /* without a footer (footer_size 0): truncation inside each section */
    memcpy(b, orig, len);
    b[40] = 0;
    T_EQ_INT(parse_copy(b, 1536), 0);
    static const size_t cuts[] = {48, 60, 96, 500, 1007, 1008, 1055, 1056, 1100, 1487, 1535};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        T_EQ_INT(parse_copy(b, cuts[i]), -EBADMSG);

    /* num_entries huge, in a file block and in the xorb block */
    memcpy(b, orig, len);
    put32(b + 48 + 36, 0xFFFFFFFFu);
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    put32(b + 48 + 36, 0x40000000u);
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    memcpy(b, orig, len);
    put32(b + 1056 + 36, 0xFFFFFFFFu);
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    put32(b + 1056 + 36, 10); /* 2 more than there are: runs into the bookend and footer */
    T_EQ_INT(parse_copy(b, len), -EBADMSG);

    /* missing bookends: each one overwritten, without footer so nothing
     * after the sections can stand in for them */
    memcpy(b, orig, len);
    b[40] = 0;
    b[1488] = 0; /* xorb bookend */
    T_EQ_INT(parse_copy(b, 1536), -EBADMSG);
    memcpy(b, orig, len);
    b[40] = 0;
    memset(b + 1008, 0, 48); /* file bookend -> an empty file block, then garbage */
    T_TRUE(parse_copy(b, 1536) < 0);

    /* a term whose chunk range is empty or reversed */
    memcpy(b, orig, len);
    put32(b + 96 + 40, 3); /* file 0, term 0: [3,3) */
    T_EQ_INT(parse_copy(b, len), -EBADMSG);
    put32(b + 96 + 40, 4); /* [4,3) */
    T_EQ_INT(parse_copy(b, len), -EBADMSG);

    /* flags claiming blocks that are not there */
    memcpy(b, orig, len);
    b[48 + 32 + 3] = 0;    /* file 0 loses its flags: its verification records
                                    and SHA-256 record then read as file headers */
    T_TRUE(parse_copy(b, len) <= 0);
    free(b);
    free(orig);
}

/* Damage every byte in a few ways; only known errors or success. */
static void test_corruption(void)
{
    size_t len;
    uint8_t *orig = t_read_file(SHARD_NAME, &len);
    uint8_t *b = malloc(len);
    static const uint8_t flips[] = {0xFF, 0x01, 0x80, 0x40};
    int odd = 0;
    for (size_t pos = 0; pos < len; pos++)
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(b, orig, len);
            b[pos] ^= flips[f];
            int err = parse_copy(b, len);
            if (err != 0 && err != -EBADMSG && err != -EPROTONOSUPPORT)
                odd++;
        }
    /* random records of random junk */
    uint64_t rng = 99;
    for (int it = 0; it < 5000; it++) {
        memcpy(b, orig, len);
        for (int k = 0; k < 1 + it % 6; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = 48 + (rng >> 33) % (len - 48);
            b[pos] = (uint8_t)(rng >> 20);
        }
        int err = parse_copy(b, len);
        if (err != 0 && err != -EBADMSG && err != -EPROTONOSUPPORT)
            odd++;
    }
    T_EQ_INT(odd, 0);
    free(b);
    free(orig);
}

int main(void)
{
    T_RUN(test_parse_vector);
    T_RUN(test_rebuild_files);
    T_RUN(test_write_back);
    T_RUN(test_malformed);
    T_RUN(test_corruption);
    return t_done();
}
