/* bufpool.h — big buffers kept resident for reuse (fs/ only).
 *
 * Fetch bodies and decoded runs are 1-64 MiB buffers.  A fresh one costs
 * a page fault per 4 KiB on first touch (about 1 ms per MiB on a VM whose
 * balloon hands freed memory back to the host at once: spec/limits.md),
 * and the first fetch of a mount, the one a loader waits for, pays it in
 * full.  This pool keeps up to ZF_BUF_KEEP bytes of freed big buffers,
 * already faulted in, and hands them out again; zf_buf_warm fills it at
 * startup.  Thread-safe (a mutex around a short list): buffers are taken
 * on the loop and on the pool and freed on either. */
#ifndef ZESTFS_FS_BUFPOOL_H
#define ZESTFS_FS_BUFPOOL_H

#include <stddef.h>

#define ZF_BUF_MIN (1u << 20)   /* smaller requests are plain malloc */
#define ZF_BUF_KEEP (64u << 20) /* freed big buffers kept, bytes at most */

/* A buffer of at least n bytes (n may be 0), or NULL.  Free with zf_buf_free. */
void *zf_buf_get(size_t n);
/* Give back p (from zf_buf_get; NULL is fine). */
void zf_buf_free(void *p);
/* Fill the pool with `count` faulted buffers of `size` bytes (within ZF_BUF_KEEP). */
void zf_buf_warm(size_t size, int count);
/* Free every kept buffer. */
void zf_buf_trim(void);
/* Bytes kept now (for status). */
size_t zf_buf_kept(void);

#endif
