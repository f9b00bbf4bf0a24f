/* SPDX-License-Identifier: MIT */
/* Reading and writing NumPy .npy files (format versions 1 to 3), so a NumPy user can hand
 * brigade their arrays and check its answers: 2-D little-endian float32/float64 in C order in,
 * int64 indices out. Raw files (no header) are read given the row length. */
#ifndef BRIGADE_CLI_NPY_H
#define BRIGADE_CLI_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "brigade.h"

typedef struct npy_array {
  void *data; /* malloc'ed rows x cols of dtype */
  size_t rows, cols;
  bg_dtype_t dtype;
} npy_array;

/* npy_read's return when the file is not what brigade reads (a usage error, exit 2); -1 is a
 * failure to read it (missing, unreadable, truncated, too big for memory: exit 1). */
#define NPY_EFORMAT (-2)

/* Reads a .npy file, or a raw one when raw_cols > 0 (then raw_dtype gives the type). max_bytes
 * bounds the data it may allocate. Returns 0, NPY_EFORMAT (not .npy, an unknown version, an
 * unsupported dtype named, Fortran order, not 2-D, a negative dimension) or -1 (cannot open,
 * truncated, too big), with a message naming the file and the problem. */
int npy_read(const char *path, size_t raw_cols, bg_dtype_t raw_dtype, uint64_t max_bytes,
             npy_array *out, char *err, size_t cap);

/* Writes rows x cols int64 values as a version 1.0 .npy file. Returns 0 or -1 with a message. */
int npy_write_i64(const char *path, const int64_t *v, size_t rows, size_t cols, char *err,
                  size_t cap);

#endif
