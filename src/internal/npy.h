/* SPDX-License-Identifier: MIT */
/* What the .npy reader and writer share: the dtype table, the header's dict parsed and
 * formatted, and the error report. */
#ifndef BRIGADE_INTERNAL_NPY_H
#define BRIGADE_INTERNAL_NPY_H

#include <stddef.h>

#include "brigade/npy.h"

/* Headers longer than this are refused before they are read: NumPy writes under 1 kB for any
 * shape, and a length field of 4 GB must not become a 4 GB allocation. */
#define BG__NPY_MAX_HEADER (1u << 20)

/* The element size of a known dtype; 0 for another value. */
size_t bg__npy_elem_size(bg_npy_dtype_t t);

/* Parses the header's dict (text, NUL-terminated) and checks it against the accepted dtypes
 * (a mask of 1u << BG_NPY_*), in the order the problems are reported: the dict itself, the
 * dtype, Fortran order, the dimensions. Returns 0 with *dtype, *ndim and shape[] set, or
 * BG_EINVAL with err filled (its message starts with path). */
int bg__npy_parse_header(const char *text, const char *path, unsigned accepted,
                         bg_npy_dtype_t *dtype, int *ndim, size_t shape[BG_NPY_MAX_DIMS],
                         bg_npy_error_t *err);

/* Formats the whole preamble NumPy writes for format 1.0 (magic, version, length, dict padded
 * with spaces and a newline to a multiple of 64 bytes) into buf. Returns its length, or 0 when
 * cap is too small; 1024 bytes hold any shape of BG_NPY_MAX_DIMS dimensions. */
size_t bg__npy_format_header(char *buf, size_t cap, bg_npy_dtype_t dtype, int ndim,
                             const size_t *shape);

/* The bytes of ndim dimensions of elem bytes each, into *bytes; -1 when they overflow size_t. */
int bg__npy_bytes(int ndim, const size_t *shape, size_t elem, size_t *bytes);

/* Fills err (when not NULL) with fault and the formatted message; returns code. */
int bg__npy_fail(bg_npy_error_t *err, bg_npy_fault_t fault, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
