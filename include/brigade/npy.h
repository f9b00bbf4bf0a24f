/* SPDX-License-Identifier: MIT */
/* NumPy .npy files: read (memory-mapped where possible, so a 20 GB database costs no heap) and
 * written atomically, so a C program hands bg_knn the arrays a Python user saved with np.save
 * and returns answers np.load reads. Formats 1.0, 2.0 and 3.0; C order; little-endian float32,
 * float64 and int64; 0 to BG_NPY_MAX_DIMS dimensions. Anything else is refused by name. */
#ifndef BRIGADE_NPY_H
#define BRIGADE_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/knn.h"
#include "brigade/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The element types read and written. F32 and F64 have the values of BG_F32 and BG_F64, so
 * bg_npy_dtype() of a float file is the bg_knn_desc_t dtype as it is. */
typedef enum bg_npy_dtype {
  BG_NPY_F32 = BG_F32, /* '<f4' */
  BG_NPY_F64 = BG_F64, /* '<f8' */
  BG_NPY_I64,          /* '<i8' (bg_knn's indices) */
  BG_NPY_DTYPE_COUNT_
} bg_npy_dtype_t;

/* NumPy before 2.0 allowed 32 dimensions; a header with more is refused. */
#define BG_NPY_MAX_DIMS 32

/* What went wrong, finer than the status code: the format problems all return BG_EFORMAT, and a
 * caller that adds its own advice (the CLI's "give --raw" after BG_NPY_MAGIC) tells them apart
 * here. */
typedef enum bg_npy_fault {
  BG_NPY_NONE = 0,  /* no problem */
  BG_NPY_ARG,       /* a NULL, unknown or inconsistent argument (BG_EINVAL) */
  BG_NPY_OPEN,      /* the file cannot be opened (BG_ENOENT, BG_ESYS) */
  BG_NPY_MAGIC,     /* no \x93NUMPY magic: not a .npy file (BG_EFORMAT) */
  BG_NPY_VERSION,   /* a format version other than 1.0, 2.0 and 3.0 (BG_EFORMAT) */
  BG_NPY_HEADER,    /* truncated, over 1 MiB, or not the dict NumPy writes (BG_EFORMAT) */
  BG_NPY_DTYPE,     /* big-endian, another type, or one outside opts.dtypes (BG_EFORMAT) */
  BG_NPY_ORDER,     /* Fortran order (BG_EFORMAT) */
  BG_NPY_SHAPE,     /* a negative dimension, too many, or more bytes than memory can address
                       (BG_EFORMAT when reading; BG_EINVAL for bg_npy_write's arguments) */
  BG_NPY_RAW,       /* a raw file that is not a non-zero multiple of its row (BG_EFORMAT) */
  BG_NPY_TOO_BIG,   /* more data than opts.max_bytes (BG_ERANGE) */
  BG_NPY_TRUNCATED, /* less data in the file than its header promises (BG_ERANGE) */
  BG_NPY_NOMEM,     /* the copy or the handle could not be allocated (BG_ENOMEM) */
  BG_NPY_IO         /* a read, map, write, sync or rename failed (BG_ESYS) */
} bg_npy_fault_t;

/* Filled by every call that takes one (NULL is allowed): the fault and a sentence naming the
 * file, the problem and, where there is one, the fix. */
typedef struct bg_npy_error {
  bg_npy_fault_t fault; /* BG_NPY_NONE after success */
  char msg[512];        /* "" after success */
} bg_npy_error_t;

#define BG_NPY_OPTS_VERSION 2u

typedef struct bg_npy_opts {
  uint32_t version;   /* BG_NPY_OPTS_VERSION, set by bg_npy_opts_init() */
  unsigned dtypes;    /* accepted dtypes, bits 1u << BG_NPY_*; default all. bg_knn callers
                         give the floats, so an int64 file is refused before it is read */
  uint64_t max_bytes; /* the most data bytes a read may take, mapped or copied; default
                         UINT64_MAX. A stream (raw rows from a pipe) is read through a buffer
                         that grows: the old and the grown buffer together stay within it */
  int copy;           /* nonzero: read into memory (never mapped), for a file that someone may
                         rewrite in place or truncate while it is in use */
  size_t raw_cols;    /* > 0: the file is raw rows of raw_cols values of raw_dtype, no header;
                         its shape is (size / row bytes, raw_cols) */
  bg_npy_dtype_t raw_dtype;
  const bg_allocator_t *allocator; /* optional, for the handle and a copy; NULL: malloc */
  /* Version 2. Nonzero: neither map nor read the data; keep the file open and read rows on
   * demand with bg_npy_read_rows(), so a file larger than memory can be searched (bg_knn's
   * db_read). bg_npy_data() is then NULL. Regular files only; max_bytes does not apply. */
  int stream;
} bg_npy_opts_t;

/* An array read from a file: its shape, dtype and data, which it owns. */
typedef struct bg_npy bg_npy_t;

/** bg_npy_opts_init - zero @o, set its version and defaults. */
void bg_npy_opts_init(bg_npy_opts_t *o);

/**
 * bg_npy_open - read the array in a .npy (or raw) file.
 * @path: the file.
 * @o: options, or NULL for the defaults.
 * @out: OUT: the array; close it with bg_npy_close().
 * @err: OUT, optional: the fault and its message, on failure and success alike.
 *
 * The header is checked as NumPy's own reader does (the dict's three keys exactly, nothing
 * else). The data is mapped read-only (MAP_PRIVATE) when the file is a regular file, opts.copy
 * is 0 and the data starts on a 16-byte boundary (NumPy pads the header to 64 bytes); else it
 * is read into memory from @o's allocator. Either way the data is aligned to 16 bytes, and
 * mapping costs address space, not heap: pages are read as they are touched. A mapped file that
 * another process truncates raises SIGBUS when the lost pages are read; opts.copy avoids it.
 *
 * Return: 0; BG_EINVAL (@path or @out NULL, @o of another version); BG_EFORMAT (a format
 * problem: err->fault says which); BG_ENOENT (no such file); BG_ESYS (cannot open, read or map it);
 * BG_ERANGE (more than opts.max_bytes, or truncated); BG_ENOMEM.
 * Thread-safe: concurrent calls share nothing.
 */
int bg_npy_open(const char *path, const bg_npy_opts_t *o, bg_npy_t **out, bg_npy_error_t *err);

/** bg_npy_close - unmap or free the data and the handle. Accepts NULL. */
void bg_npy_close(bg_npy_t *a);

/**
 * bg_npy_data - the elements, in C order; valid until bg_npy_close(). NULL when the array
 * holds no bytes (a dimension of 0). Read-only: a mapped page is shared with the page cache.
 */
const void *bg_npy_data(const bg_npy_t *a);

/** bg_npy_dtype - the element type. */
bg_npy_dtype_t bg_npy_dtype(const bg_npy_t *a);

/** bg_npy_ndim - the number of dimensions, 0 (a scalar) to BG_NPY_MAX_DIMS. */
int bg_npy_ndim(const bg_npy_t *a);

/** bg_npy_shape - bg_npy_ndim() dimensions, outermost first; valid until bg_npy_close(). */
const size_t *bg_npy_shape(const bg_npy_t *a);

/** bg_npy_bytes - the size of the data: the product of the shape times the element size. */
size_t bg_npy_bytes(const bg_npy_t *a);

/** bg_npy_mapped - 1 when the data is mapped from the file, 0 when it was copied. */
int bg_npy_mapped(const bg_npy_t *a);

/**
 * bg_npy_read_rows - copy rows [row0, row0 + rows) of the array's first dimension into @dst.
 * @a: any array (streamed, mapped or read); a row is bg_npy_bytes() / shape[0] bytes.
 * @err: OUT, optional.
 *
 * A streamed array is read from the file with pread, so concurrent calls on one array are
 * safe; a file cut short since it was opened gives BG_ERANGE (BG_NPY_TRUNCATED), never SIGBUS.
 *
 * Return: 0; BG_EINVAL (a NULL argument, no dimensions, rows past the end); BG_ERANGE
 * (truncated); BG_ESYS (a read failed: err->msg has the system's reason).
 */
int bg_npy_read_rows(const bg_npy_t *a, size_t row0, size_t rows, void *dst, bg_npy_error_t *err);

/* Rows of a streamed array mapped where they lie in the file (bg_npy_view_rows). */
typedef struct bg_npy_view {
  const void *rows; /* the first row's first byte; NULL when nothing is mapped */
  void *map;        /* the mapping, from the page holding rows */
  size_t map_len;
} bg_npy_view_t;

/**
 * bg_npy_view_rows - map rows [row0, row0 + rows) of a streamed array read-only, without a copy
 * (bg_knn_desc_t.db_view's rows), and ask the system to read them ahead.
 * @a: a streamed array (bg_npy_opts_t.stream); a mapped or read one is already in memory.
 * @v: OUT: the view; release it with bg_npy_unview().
 *
 * The pages are the page cache's: reading them costs no copy, and they are dropped from the
 * process when unviewed. A file that another process truncates while a view's rows are read
 * raises SIGBUS in the reader (bg_npy_read_rows, which copies, reports it instead): only for
 * callers that catch it.
 *
 * Return: 0; BG_EINVAL (a NULL argument, an array not streamed, rows past the end, or none);
 * BG_ESYS (the mapping failed: err->msg has the system's reason).
 */
int bg_npy_view_rows(const bg_npy_t *a, size_t row0, size_t rows, bg_npy_view_t *v,
                     bg_npy_error_t *err);

/** bg_npy_unview - unmap a view and zero it. Accepts NULL and a zeroed view. */
void bg_npy_unview(bg_npy_view_t *v);

/** bg_npy_dtype_name - "f32", "f64", "i64"; "?" otherwise. */
const char *bg_npy_dtype_name(bg_npy_dtype_t t);

/**
 * bg_npy_write - write an array as a .npy file (format 1.0, C order), whole or not at all.
 * @path: the destination. A symlink's target is replaced (the link stays); an existing file
 * keeps its permission bits, a new one gets 0666 less the umask; a device or a FIFO is written
 * in place.
 * @dtype, @ndim, @shape: the array (@shape may be NULL when @ndim is 0).
 * @data: the elements in C order (may be NULL when they are 0 bytes).
 * @err: OUT, optional: the fault and its message.
 *
 * The file is written to a temporary beside @path (".NAME.XXXXXX"), synced and renamed over
 * it: a failed write removes the temporary and leaves the previous file as it was. The library
 * installs no signal handler: a process killed during the call leaves the temporary behind
 * (the brigade CLI removes it on SIGINT, SIGTERM and SIGHUP).
 *
 * Return: 0; BG_EINVAL (a NULL argument, an unknown dtype, @ndim out of range, a shape whose
 * bytes overflow); BG_ERANGE (the name is too long); BG_ESYS (cannot create, write, sync or
 * rename: err->msg has the system's reason, e.g. "No space left on device").
 * Thread-safe for distinct paths.
 */
int bg_npy_write(const char *path, bg_npy_dtype_t dtype, int ndim, const size_t *shape,
                 const void *data, bg_npy_error_t *err);

/**
 * bg_npy_write_fd - write the same bytes to an open descriptor, from its current offset: for a
 * pipe, a socket, or a file the caller writes atomically its own way.
 * @fd: the descriptor; neither synced nor closed.
 * Return: 0; BG_EINVAL as bg_npy_write(), or @fd negative; BG_ESYS (a write failed: err->msg
 * is "write failed: <the system's reason>", and part of the array may have been written).
 */
int bg_npy_write_fd(int fd, bg_npy_dtype_t dtype, int ndim, const size_t *shape, const void *data,
                    bg_npy_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
