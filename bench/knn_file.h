/* SPDX-License-Identifier: MIT */
/* The knn suite's out-of-core row ("file"): the case's database written once to a .npy file in
 * TMPDIR and searched from it in pieces (bg_knn's db_view, as brigade knn --db does) within a
 * budget smaller than the database, to show what reading a database larger than memory costs
 * against searching it in memory. */
#ifndef BENCH_KNN_FILE_H
#define BENCH_KNN_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/npy.h"

typedef struct bench_knn_file {
  bg_npy_t *npy; /* the file, open for reading in pieces; already unlinked */
  uint64_t bytes;
  bg_npy_view_t views[2]; /* the pieces bg_knn reads in place (bench_knn_file_view) */
  unsigned nviews;
} bench_knn_file;

/**
 * bench_knn_file_open - write rows x dim float32 to a temporary .npy file in TMPDIR (or /tmp),
 * unlinked as soon as it is created (so that nothing is left behind however the run ends), and
 * open it to be read in pieces. Return: 0; -1 with @why ("needs 0.40 GiB in /tmp, which has 0.10
 * GiB free (set TMPDIR)", a write's error).
 */
int bench_knn_file_open(bench_knn_file *f, const float *db, size_t rows, size_t dim, char *why,
                        size_t cap);

/* bg_knn_desc_t.db_read over the file (ctx: the bench_knn_file). */
int bench_knn_file_read(void *ctx, size_t row0, size_t rows, void *dst);

/* bg_knn_desc_t.db_view over the file, as brigade knn's: each piece mapped where it lies, the
 * view of two calls before released; NULL (a copy through bench_knn_file_read) where mapping
 * fails. No other process can cut the file short: it has no name. */
const void *bench_knn_file_view(void *ctx, size_t row0, size_t rows);

/* Releases the views of the last search. */
void bench_knn_file_unview(bench_knn_file *f);

/* Closes the file (its space returns to the disk). Accepts a file never opened. */
void bench_knn_file_close(bench_knn_file *f);

#endif
