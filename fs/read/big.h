/* big.h — large non-Xet files (over BLOB_MAX), kept in the store as the
 * windows of synthetic xorbs, so the Xet serving path applies to them.
 * The first read downloads the whole file and serves nothing until its
 * digest matches; an evicted window is fetched again alone and checked
 * against its kept chunk hashes (details in big.c).  rd_big_cell_start is
 * rd_ctx.big_window. */
#ifndef ZESTFS_FS_READ_BIG_H
#define ZESTFS_FS_READ_BIG_H

#include "read_int.h"

void rd_big_cell_start(rd_cell *cl);
void rd_big_label(rd_read *r);
void rd_big_map(rd_file *f);
void rd_big_free(rd_file *f);

#endif
