/* upload.c — accepting shards (POST /v1/shards, /v2/shards) and the
 * `commit` of uploaded files.
 *
 * A shard is accepted only when everything it claims is re-derived from
 * stored data: every xorb block must name a stored xorb whose chunk hashes
 * and lengths match; every file's terms must name stored xorbs and valid
 * chunk ranges, unpacked lengths must add up, verification (range) hashes
 * must match, and the file hash recomputed from the chunk hashes must equal
 * the file id.  Files without a SHA-256 metadata extension get theirs by
 * decoding the chunks (verifying each chunk hash on the way).
 */
#include "origin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

/* Decode a file's chunks in order and hash them (SHA-256 over the bytes);
 * every chunk is checked against its stored chunk hash. */
int o_file_sha256(const o_store *s, const o_file *f, char out[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *rec = malloc(XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN);
    uint8_t *dec = malloc(XET_CHUNK_MAX);
    int e = (md && rec && dec) ? 0 : -ENOMEM;
    if (!e)
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    o_xorb_idx idx;
    memset(&idx, 0, sizeof idx);
    xet_hash cur;
    int fd = -1;
    for (size_t i = 0; i < f->nterms && !e; i++) {
        const o_term *t = &f->terms[i];
        if (fd < 0 || !xet_hash_eq(&cur, &t->xorb)) {
            if (fd >= 0)
                close(fd);
            o_xorb_idx_free(&idx);
            e = o_xorb_idx_load(s, &t->xorb, &idx);
            if (e)
                break;
            char hs[65];
            xet_hash_to_string(&t->xorb, hs);
            char *p = o_path(s, "xorbs/%s", hs);
            fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
            free(p);
            if (fd < 0) {
                e = -EIO;
                break;
            }
            cur = t->xorb;
        }
        for (uint32_t c = t->start; c < t->end && !e; c++) {
            uint64_t ro = c ? idx.rec_end[c - 1] : 0, rl = idx.rec_end[c] - ro;
            xet_chunk_header h;
            if (rl > XET_CHUNK_HEADER_LEN + XET_MAX_COMPRESSED_LEN ||
                pread(fd, rec, rl, (off_t)ro) != (ssize_t)rl) {
                e = -EIO;
                break;
            }
            e = xet_chunk_header_parse(rec, rl, &h);
            if (!e)
                e = xet_chunk_decode(&h, rec + XET_CHUNK_HEADER_LEN, dec);
            if (e)
                break;
            xet_hash ch;
            xet_chunk_hash(dec, h.ulen, &ch);
            if (!xet_hash_eq(&ch, &idx.hash[c])) {
                e = -EILSEQ;
                break;
            }
            EVP_DigestUpdate(md, dec, h.ulen);
        }
    }
    if (fd >= 0)
        close(fd);
    o_xorb_idx_free(&idx);
    if (!e) {
        uint8_t d[32];
        unsigned dl = 32;
        EVP_DigestFinal_ex(md, d, &dl);
        o_hex(d, 32, out);
    }
    EVP_MD_CTX_free(md);
    free(rec);
    free(dec);
    return e;
}

int o_shard_accept(const o_store *s, o_cindex *ci, const uint8_t *buf, size_t len, char *err,
                   size_t errlen)
{
    xet_shard sh;
    int e = xet_shard_parse(buf, len, &sh);
    if (e) {
        snprintf(err, errlen, "shard does not parse (%s)", strerror(-e));
        return -EBADMSG;
    }
    int result = 0;
    o_xorb_idx idx;
    memset(&idx, 0, sizeof idx);
    xet_hash loaded;
    bool have = false;
#define LOAD(h)                                                                                    \
    do {                                                                                           \
        if (!have || !xet_hash_eq(&loaded, (h))) {                                                 \
            o_xorb_idx_free(&idx);                                                                 \
            have = false;                                                                          \
            e = o_xorb_idx_load(s, (h), &idx);                                                     \
            if (e) {                                                                               \
                char hs_[65];                                                                      \
                xet_hash_to_string((h), hs_);                                                      \
                snprintf(err, errlen, "xorb %s is not stored", hs_);                               \
                e = -ENOENT;                                                                       \
                goto out;                                                                          \
            }                                                                                      \
            loaded = *(h);                                                                         \
            have = true;                                                                           \
        }                                                                                          \
    } while (0)

    for (size_t i = 0; i < sh.nxorbs; i++) {
        const xet_shard_xorb *x = &sh.xorbs[i];
        LOAD(&x->hash);
        if (x->nchunks != idx.n) {
            snprintf(err, errlen, "xorb block %zu: %zu chunks, stored xorb has %u", i, x->nchunks, idx.n);
            e = -EBADMSG;
            goto out;
        }
        uint32_t off = 0;
        for (size_t k = 0; k < x->nchunks; k++) {
            const xet_shard_chunk *c = &x->chunks[k];
            if (!xet_hash_eq(&c->hash, &idx.hash[k]) || c->len != idx.ulen[k] || c->offset != off) {
                snprintf(err, errlen, "xorb block %zu chunk %zu does not match the stored xorb", i, k);
                e = -EBADMSG;
                goto out;
            }
            off += c->len;
        }
    }
    for (size_t i = 0; i < sh.nfiles; i++) {
        const xet_shard_file *f = &sh.files[i];
        xet_merkle *m = malloc(sizeof *m);
        if (!m) {
            e = -ENOMEM;
            goto out;
        }
        xet_merkle_init(m);
        uint64_t size = 0, nchunks = 0;
        for (size_t t = 0; t < f->nterms; t++) {
            const xet_term *tm = &f->terms[t];
            LOAD(&tm->xorb);
            if (tm->chunk_start >= tm->chunk_end || tm->chunk_end > idx.n) {
                snprintf(err, errlen, "file %zu term %zu: chunk range outside the xorb", i, t);
                e = -EBADMSG;
                free(m);
                goto out;
            }
            uint64_t un = 0;
            for (uint32_t c = tm->chunk_start; c < tm->chunk_end; c++) {
                xet_merkle_add(m, &idx.hash[c], idx.ulen[c]);
                un += idx.ulen[c];
                nchunks++;
            }
            if (un != tm->unpacked_bytes) {
                snprintf(err, errlen, "file %zu term %zu: unpacked length %u, chunks give %llu", i, t,
                         tm->unpacked_bytes, (unsigned long long)un);
                e = -EBADMSG;
                free(m);
                goto out;
            }
            if (f->verification) {
                xet_hash vh;
                xet_verification_hash(&idx.hash[tm->chunk_start], tm->chunk_end - tm->chunk_start, &vh);
                if (!xet_hash_eq(&vh, &f->verification[t])) {
                    snprintf(err, errlen, "file %zu term %zu: range hash mismatch", i, t);
                    e = -EBADMSG;
                    free(m);
                    goto out;
                }
            }
            size += un;
        }
        xet_hash root, fh;
        xet_merkle_final(m, &root, NULL);
        free(m);
        xet_file_hash_from_root(&root, nchunks, NULL, &fh);
        if (!xet_hash_eq(&fh, &f->file_hash)) {
            snprintf(err, errlen, "file %zu: file hash mismatch", i);
            e = -EBADMSG;
            goto out;
        }
    }
    /* all verified: record the files */
    for (size_t i = 0; i < sh.nfiles; i++) {
        const xet_shard_file *f = &sh.files[i];
        if (o_file_exists(s, &f->file_hash))
            continue;
        o_file of;
        memset(&of, 0, sizeof of);
        of.hash = f->file_hash;
        of.nterms = f->nterms;
        of.terms = calloc(f->nterms ? f->nterms : 1, sizeof *of.terms);
        if (!of.terms) {
            e = -ENOMEM;
            goto out;
        }
        for (size_t t = 0; t < f->nterms; t++) {
            of.terms[t].xorb = f->terms[t].xorb;
            of.terms[t].start = f->terms[t].chunk_start;
            of.terms[t].end = f->terms[t].chunk_end;
            of.terms[t].unpacked = f->terms[t].unpacked_bytes;
            of.size += f->terms[t].unpacked_bytes;
        }
        if (f->has_sha256)
            o_hex(f->sha256, 32, of.sha256);
        else
            e = o_file_sha256(s, &of, of.sha256);
        if (!e)
            e = o_file_save(s, &of);
        if (!e)
            e = o_file_index_sha(s, of.sha256, &of.hash);
        free(of.terms);
        if (e) {
            snprintf(err, errlen, "storing file %zu failed: %s", i, strerror(-e));
            goto out;
        }
        result = 1;
    }
    /* keep the shard itself */
    {
        uint8_t d[32];
        char hex[65];
        o_sha256(buf, len, d);
        o_hex(d, 32, hex);
        char *p = o_path(s, "shards/%s.shard", hex);
        if (p && access(p, F_OK) != 0) {
            e = o_write_atomic(s->dir, p, buf, len);
            result = 1;
        }
        free(p);
        if (e)
            goto out;
    }
    (void)ci;
out:
#undef LOAD
    o_xorb_idx_free(&idx);
    xet_shard_free(&sh);
    if (e == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    return e ? (e == -ENOMEM ? e : -EBADMSG) : result;
}
