/* handle.h — the open file and directory handles of the FUSE operations
 * (ops.c; ref writes in refs.c): what fi->fh points to. */
#ifndef ZESTFS_FS_HANDLE_H
#define ZESTFS_FS_HANDLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vtree.h"

typedef struct zf_dirent {
    char *name;
    uint64_t ino;
    mode_t type;
} zf_dirent;

typedef struct zf_dir {
    zf_dirent *e;
    size_t n, cap;
} zf_dir;

typedef struct zf_handle {
    int fd;          /* real file, or -1 */
    bool ref_write;  /* a presented refs/<rev> opened for writing: content holds
                      * what is written (REF_WMAX bytes at most) */
    bool dirty;      /* ... changed since the last commit to the model */
    zf_dir *dir;     /* a directory's listing (opendir) */
    zv_ent ent;      /* virtual file */
    char *content;   /* generated content of small virtual files */
    size_t len;
    void *pf;        /* fs->hooks.blob_opened's token */
    bool pt;         /* opened with passthrough (flat.c) */
    struct zf_handle *prev, *next; /* fs->handles */
} zf_handle;

#define H(fi) ((zf_handle *)(uintptr_t)(fi)->fh)

#endif
