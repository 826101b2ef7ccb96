/* cache.h — the zestfs store: content-addressed runs of decoded Xet chunks,
 * plus small metadata blobs, on local disk (issue #4).
 *
 * LAYOUT  (dir = --store)
 *   LOCK                       flock'd by the one process that has it open
 *   FORMAT                     "zestfs-store 1"
 *   tmp/                       temp files; everything here is garbage at zc_open
 *   xorbs/<2 hex>/<xorb>.<start>-<end>.<gen>
 *                              a SEGMENT: decoded chunks [start, end) of xorb
 *                              <xorb> (Xet hash string; <2 hex> = its first two
 *                              chars); <gen> makes every file name unique, so
 *                              a name is never reused while a reader holds it.
 *   meta/<64 hex>              a metadata blob; name = keyed BLAKE3 of its key
 *   flat/                      not this library's: whole copies of blobs for
 *                              FUSE passthrough, kept by fs/flat.c
 * Segment file (little endian): "ZESTSEG1", u32 version=1, u32 header_len,
 * xorb hash[32], u32 start, u32 end, u64 data_len, u32 flags, u32 0, then per
 * chunk {u32 decoded_len, chunk_hash[32]}, then a keyed-BLAKE3 checksum[32]
 * of all the above; the decoded bytes follow (header_len = 104 + 36 n).
 * Meta file: "ZESTMET1", u32 1, u32 keylen, u64 datalen, key, data, checksum.
 *
 * TRANSACTIONS  A put writes tmp/<gen>.tmp completely, optionally fsyncs it,
 * and renames it to its final name; only complete files ever carry a final
 * name, so kill -9 at any instant leaves at worst a temp file (deleted at the
 * next zc_open).  A power loss without ZC_PUT_FSYNC may leave a final name
 * with bad contents: hence VERIFICATION — a segment found at zc_open is
 * "unverified" until its first use re-reads it, checks the header checksum,
 * the name, the size, and the BLAKE3 chunk hash of every chunk.  A segment
 * that fails is deleted and from then on reported missing; the caller
 * refetches.  Segments written by this process are trusted (their hashes
 * are computed from the bytes at store time unless the caller gives them).
 *
 * INDEX  In memory only, rebuilt at zc_open from file names and sizes (no
 * file is read at open).  A hash table of xorbs; each holds its segments
 * sorted by start.  No indexed segment is contained in another (a put that
 * covers existing segments replaces them; a put already covered is a no-op),
 * so starts and ends are both strictly increasing and a lookup is one binary
 * search; partial overlaps are fine (chunks are content-addressed, any copy
 * serves).  Neighbouring runs are NOT rewritten into one file: a reader
 * follows ref.seg_end into the next segment with another zc_lookup.
 *
 * EVICTION  Accounting is per file, rounded up to 4 KiB.  Unpinned segments
 * sit on an LRU list (touched at lookup/unpin); a segment is pinned while a
 * zc_ref holds it, or forever while its xorb carries a label (zc_label_pin).
 * The cap is enforced when a put reserves space, after it commits and at
 * unpin: used + in-flight puts never exceed cap except by bytes that are
 * pinned or in flight.  ENOSPC/EDQUOT while writing evicts (LRU) at least
 * the size of the failing file and retries; -ENOSPC only when nothing is
 * evictable.  Metadata blobs are not counted against the cap.
 * File descriptors: a pinned segment has its file open; unpinned ones keep
 * theirs in an LRU of at most zc_set_fd_limit() (default 256) open files.
 *
 * THREADS  Every function is thread-safe.  One internal mutex guards the
 * index; it is held for memory work and the open(2) of a segment file
 * (close(2) too, when out of descriptors), never across data reads/writes,
 * fsync, hashing or unlink: closes and unlinks decided under it run after.
 * Intended placement with libuv: zc_lookup, zc_unpin, zc_missing,
 * zc_label_pin, zc_get_stats on the loop (cheap; zc_unpin may unlink(2)
 * evicted files); zc_put, zc_read, zc_verify_segment and zc_meta_* on the
 * thread pool (they do data I/O and hashing); zc_open/zc_close outside.
 * zc_put is one call rather than a write/commit pair so that, on ENOSPC, it
 * can evict and retry from the worker it runs on.
 *
 * ERRORS  Negative errno everywhere.  -ENOENT not stored, -EAGAIN stored but
 * not yet verified, -EBADMSG failed verification (already deleted), -EBUSY
 * store already open / refs outstanding, -EINVAL bad argument, -ENOSPC.
 */
#ifndef ZESTFS_CACHE_H
#define ZESTFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zc_store zc_store;
typedef struct zc_seg zc_seg;

/* A pinned segment and one chunk in it.  While pinned, the segment is never
 * evicted and `fd` stays open (read it with pread or splice if you like; do
 * not close it).  off/len/run_bytes are valid only when `ready`. */
typedef struct zc_ref {
    zc_store *store;
    zc_seg *seg;                 /* NULL when nothing is pinned */
    int fd;                      /* the segment file */
    bool ready;                  /* verified: the fields below are valid */
    uint32_t chunk;              /* the chunk asked for */
    uint32_t seg_start, seg_end; /* this segment holds chunks [seg_start, seg_end) */
    uint64_t off;                /* file offset of `chunk`'s first decoded byte */
    uint32_t len;                /* decoded length of `chunk` */
    uint64_t run_bytes;          /* decoded bytes of chunks [chunk, seg_end), from off */
} zc_ref;

typedef struct zc_range {
    uint32_t start, end; /* chunks [start, end) */
} zc_range;

typedef struct zc_stats {
    uint64_t cap;          /* bytes */
    uint64_t used;         /* bytes of indexed segments */
    uint64_t pinned;       /* of which not evictable (pinned or labelled) */
    uint64_t inflight;     /* reserved by puts being written */
    uint64_t doomed;       /* removed from the index, still open by a reader */
    uint64_t segments, xorbs, open_fds;
    uint64_t puts, put_bytes;          /* decoded bytes stored */
    uint64_t evictions, evicted_bytes;
    uint64_t corrupt;      /* segments that failed verification */
    uint64_t enospc_retries;
} zc_stats;

/* Open (creating the layout) or recover a store.  Deletes temp files and
 * invalid segment names, rebuilds the index from names and sizes, drops
 * segments contained in others, evicts down to cap_bytes.  -EBUSY if another
 * process (or another zc_open in this one) has it open. */
int zc_open(const char *dir, uint64_t cap_bytes, zc_store **out);
/* Close and free.  -EBUSY (and nothing is closed) while refs are pinned. */
int zc_close(zc_store *s);
/* Bound on open files kept for unpinned segments (≥ 1). */
void zc_set_fd_limit(zc_store *s, unsigned n);
void zc_set_cap(zc_store *s, uint64_t cap_bytes); /* evicts if needed */

#define ZC_PUT_FSYNC 1u  /* fsync the file before the rename and its directory after */
#define ZC_PUT_VERIFY 2u /* hash data and compare with hashes[]: -EBADMSG on mismatch */
/* write around the page cache (O_DIRECT through a bounce buffer, where the
 * fs allows it; buffered otherwise): for runs nobody reads soon (a pull).
 * Nothing of a big pull lingers in memory, and on a VM that hands freed
 * memory back to its host, no page is touched for the first time */
#define ZC_PUT_NOCACHE 4u

/* Store chunks [start, end) of xorb: lens[i] = decoded length of chunk
 * start+i (1..XET_CHUNK_MAX), data = their concatenation (len = sum), hashes
 * = their chunk hashes, or NULL to compute them here.  end - start ≤
 * XET_XORB_MAX_CHUNKS.  Returns 0 also when the run was already stored.
 * With `pin`, it is returned pinned and ready on chunk `start` (the
 * segment may be an existing one; chunks past pin->seg_end need zc_lookup).
 * Worker thread: writes, maybe fsyncs, hashes. */
int zc_put(zc_store *s, const xet_hash *xorb, uint32_t start, uint32_t end,
           const uint32_t *lens, const xet_hash *hashes, const void *data, size_t len,
           unsigned flags, zc_ref *pin);

/* Find and pin the segment holding chunk `chunk` of xorb (the one with the
 * longest run after it).  0: ref ready.  -EAGAIN: ref pinned but the segment
 * is unverified: call zc_verify_segment (or zc_read, which does it) on a
 * worker.  -ENOENT: not stored (ref->seg = NULL).  Every ref returned with 0
 * or -EAGAIN must be released with zc_unpin. */
int zc_lookup(zc_store *s, const xet_hash *xorb, uint32_t chunk, zc_ref *ref);
void zc_unpin(zc_ref *ref);

/* Verify the pinned segment once (waits if another thread is verifying it):
 * 0 and ref made ready, or -EBADMSG (or -EIO): the segment is deleted and
 * reported missing; zc_unpin the ref and refetch.  Worker thread. */
int zc_verify_segment(zc_ref *ref);

/* Copy up to len decoded bytes starting `skip` bytes into chunk `chunk`
 * (seg_start ≤ chunk < seg_end), continuing through the following chunks of
 * the segment; stops at the segment's end.  Verifies first if !ready.
 * Returns bytes copied (0 if skip is past the end) or negative errno. */
ssize_t zc_read(zc_ref *ref, uint32_t chunk, uint64_t skip, void *out, size_t len);
/* zc_read, but pages it brings into the page cache are dropped after
 * (RWF_DONTCACHE, Linux >= 6.14; a plain read elsewhere): for bytes served
 * to others (peers), which this host will not read again soon. */
ssize_t zc_read_nocache(zc_ref *ref, uint32_t chunk, uint64_t skip, void *out, size_t len);
/* File offset and decoded length of another chunk of a ready ref's segment. */
int zc_chunk_span(const zc_ref *ref, uint32_t chunk, uint64_t *off, uint32_t *len);

/* The sub-ranges of [start, end) of xorb that are not stored, in order.
 * Writes up to max of them to out; returns how many there are in all. */
long zc_missing(zc_store *s, const xet_hash *xorb, uint32_t start, uint32_t end,
                zc_range *out, size_t max);

/* Stored chunk runs of xorb, in order, neighbouring and overlapping
 * segments merged into one run.  Writes up to max of them to out; returns
 * how many there are in all.  Memory only (cheap: fine on the loop). */
long zc_runs(zc_store *s, const xet_hash *xorb, zc_range *out, size_t max);

/* Decoded lengths (lens may be NULL) and chunk hashes of chunks
 * [start, end) of a ready ref's segment, from its header (checked when
 * the segment was verified).  -ERANGE outside [seg_start, seg_end).
 * Worker thread (reads the file). */
int zc_chunk_hashes(const zc_ref *ref, uint32_t start, uint32_t end, uint32_t *lens,
                    xet_hash *hashes);

/* Label: while on, no segment of xorb is evicted (present or stored later).
 * Held in memory only; the owner re-applies labels after zc_open. */
int zc_label_pin(zc_store *s, const xet_hash *xorb, bool on);

/* Drop every stored segment of xorb (an explicit eviction, `zestfs evict`):
 * segments a reader holds are unlinked now and freed at their last unpin.
 * 0 (*freed = accounted bytes dropped, 0 when nothing was stored), or
 * -EBUSY when the xorb carries a label (pinned). */
int zc_drop_xorb(zc_store *s, const xet_hash *xorb, uint64_t *freed);

void zc_get_stats(zc_store *s, zc_stats *st);

/* Metadata blobs keyed by a string (1..4096 bytes): atomic replace, checksum
 * verified on read (a corrupt blob is deleted and reads as -ENOENT).
 * zc_meta_get returns a malloc'd buffer (NUL-terminated past len).  flags:
 * ZC_PUT_FSYNC.  zc_meta_list calls cb for each key that starts with
 * prefix, in no order; a non-zero return from cb stops it and is returned.
 * Worker thread. */
int zc_meta_put(zc_store *s, const char *key, const void *data, size_t len, unsigned flags);
int zc_meta_get(zc_store *s, const char *key, void **data, size_t *len);
int zc_meta_delete(zc_store *s, const char *key);
int zc_meta_list(zc_store *s, const char *prefix, int (*cb)(void *ud, const char *key),
                 void *ud);

#ifdef __cplusplus
}
#endif
#endif
