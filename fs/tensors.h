/* tensors.h — tensor layout of safetensors and GGUF files (tensors.c). */
#ifndef ZESTFS_FS_TENSORS_H
#define ZESTFS_FS_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ZF_TENSOR_HEADER_MAX (100ull << 20) /* larger headers are refused */
#define ZF_TENSOR_UNKNOWN_GRAIN (1ull << 20)  /* zf_tensor_clip before the table is known */

enum zf_tensor_format { ZF_TENSORS_NONE = 0, ZF_SAFETENSORS, ZF_GGUF };

typedef struct zf_tensor_map {
    enum zf_tensor_format format;
    uint64_t header_len;  /* bytes before the first tensor's data */
    uint64_t ntensors;
    uint64_t *ranges;     /* nranges [start, end) pairs of file offsets, sorted, merged */
    size_t nranges;
    uint64_t *tens;       /* ntens [start, end) pairs, one per tensor with bytes: sorted,
                             disjoint (an overlap is cut off the later one), none empty */
    size_t ntens;
    uint64_t need;        /* after -EAGAIN: parse again with at least this many bytes */
} zf_tensor_map;

/* Parse the first len bytes of a file of fsize bytes.  0: m filled (free it
 * with zf_tensor_map_free); -EAGAIN: more bytes needed (m->need); -EBADMSG:
 * not a well-formed safetensors/GGUF file; -EFBIG: header over
 * ZF_TENSOR_HEADER_MAX; -ENOMEM. */
int zf_tensor_map_parse(const uint8_t *buf, size_t len, uint64_t fsize, zf_tensor_map *m);
void zf_tensor_map_free(zf_tensor_map *m);

/* The index in m->tens of the tensor holding byte off, or -1 (the header, a
 * gap, past the last tensor). */
long zf_tensor_at(const zf_tensor_map *m, uint64_t off);

/* The index of the first tensor that starts at or after off (m->ntens if none). */
size_t zf_tensor_from(const zf_tensor_map *m, uint64_t off);

/* Narrow [*lo, *hi) for a miss of bytes [s, e): to the tensor holding them
 * when [s, e) lies within one tensor, else (across a boundary, in the
 * header or a gap) to [s, e) itself.  Never wider than it was.  A map of
 * format ZF_TENSORS_NONE (a header not parsed yet): [s, e) rounded out to
 * ZF_TENSOR_UNKNOWN_GRAIN.  (A reader's miss is fetched no wider than its
 * tensor: fs/read/tspan.c.) */
void zf_tensor_clip(const zf_tensor_map *m, uint64_t s, uint64_t e, uint64_t *lo, uint64_t *hi);

#endif
