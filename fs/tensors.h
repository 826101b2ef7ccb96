/* tensors.h — tensor layout of safetensors and GGUF files (tensors.c). */
#ifndef ZESTFS_FS_TENSORS_H
#define ZESTFS_FS_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ZF_TENSOR_HEADER_MAX (100ull << 20) /* larger headers are refused */

enum zf_tensor_format { ZF_TENSORS_NONE = 0, ZF_SAFETENSORS, ZF_GGUF };

typedef struct zf_tensor_map {
    enum zf_tensor_format format;
    uint64_t header_len;  /* bytes before the first tensor's data */
    uint64_t ntensors;
    uint64_t *ranges;     /* nranges [start, end) pairs of file offsets, sorted, merged */
    size_t nranges;
    uint64_t need;        /* after -EAGAIN: parse again with at least this many bytes */
} zf_tensor_map;

/* Parse the first len bytes of a file of fsize bytes.  0: m filled (free it
 * with zf_tensor_map_free); -EAGAIN: more bytes needed (m->need); -EBADMSG:
 * not a well-formed safetensors/GGUF file; -EFBIG: header over
 * ZF_TENSOR_HEADER_MAX; -ENOMEM. */
int zf_tensor_map_parse(const uint8_t *buf, size_t len, uint64_t fsize, zf_tensor_map *m);
void zf_tensor_map_free(zf_tensor_map *m);

#endif
