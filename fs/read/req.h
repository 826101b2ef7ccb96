/* req.h — a request and its life.  One record (rd_read, read_int.h) for
 * every kind: a FUSE read, an internal read (the HTTP access server; stored
 * only; a check that walks the store), a label or a listing of a file's
 * xorbs (pin, evict), a piece of a fill.  What differs is the kind's rd_ops:
 * what a store read does with the bytes, whether a missing byte is fetched,
 * whether a deadline applies, who waits (want) and how it is answered
 * (answer, xorbs).  The rooms that serve requests ask the ops and end a
 * request with rd_read_end / rd_read_fail; none knows the kinds.  A kind
 * that needs more (a callback, its fill) embeds rd_read first in its own
 * record, allocated by rd_read_new and freed by rd_read_free.
 *
 * Also here: pins (store segments held for the reads woken by a fetch, so a
 * small store cap cannot evict them in between) and the read metrics. */
#ifndef ZESTFS_FS_READ_REQ_H
#define ZESTFS_FS_READ_REQ_H

#include "read_int.h"

enum { RD_STORE_WALK, RD_STORE_COPY, RD_STORE_REPLY }; /* what a store read does */
enum { RD_WANT_FG, RD_WANT_FILL, RD_WANT_PULL };      /* who waits for the bytes */

struct rd_ops {
    const char *name;
    int store;                 /* RD_STORE_*: walk only, copy into out, reply from the pool */
    bool nofetch;              /* -ENOENT rather than fetch */
    bool deadline;             /* fails with EIO after READ_DEADLINE_MS of waiting */
    bool seq;                  /* seen by sequential prefetch */
    bool early;                /* may be answered from a run in memory (r->req) */
    bool stored_enough;        /* done once its extents are stored (nothing read) */
    bool bg;                   /* background: gives way to the others */
    bool http;                 /* counted as an HTTP read */
    int (*want)(const rd_read *r); /* RD_WANT_*; NULL: RD_WANT_FG */
    /* answer (err, or the bytes: data NULL when they went out from the pool);
     * the request is freed after */
    void (*answer)(rd_read *r, int err, const uint8_t *data, size_t len);
    /* label kinds: the xorbs of the file (whole: its map covers it) */
    void (*xorbs)(rd_read *r, int err, const xet_hash *v, size_t n, bool whole);
};

rd_read *rd_read_new(size_t size, const rd_ops *ops, rd_ctx *c, rd_file *f, uint64_t off,
                     uint64_t len);
void rd_read_end(rd_read *r, int err, const uint8_t *data, size_t len);
int rd_read_want(const rd_read *r);

rd_pin *rd_pin_new(const zc_ref *ref);
void rd_pin_put(rd_pin *p);
int rd_pins_add(rd_pins *s, rd_pin *p);
void rd_pins_clear(rd_pins *s);
void rd_read_free(rd_read *r);
void rd_read_fail(rd_read *r, int err);
void rd_note_read(rd_read *r, int err);
void rd_read_answered_early(rd_read *r);

#endif
