/* SPDX-License-Identifier: MIT */
/* Reading a .npy (or raw) file: the preamble and header from the descriptor, then the data
 * mapped read-only from the file where it can be, else read into memory. */
#define _GNU_SOURCE
#include "internal/npy.h"
#include "internal/pool_impl.h"

#include "brigade/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct bg_npy {
  const bg_allocator_t *alloc; /* I: of the handle and the copy */
  bg_npy_dtype_t dtype;        /* I: */
  int ndim;                    /* I: */
  size_t shape[BG_NPY_MAX_DIMS];
  size_t bytes;     /* I: of the data */
  const void *data; /* I: into map or copy; NULL when bytes is 0 */
  void *map;        /* I: the mapping (page-aligned, from the page holding the data's start) */
  size_t map_len;   /* I: its length */
  void *copy;       /* I: the data read into memory */
  int fd;           /* I: a streamed array's file, -1 otherwise */
  size_t offset;    /* I: where a streamed array's data starts in it */
  char path[256];   /* I: for a streamed array's messages, cut to fit */
};

void bg_npy_opts_init(bg_npy_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->version = BG_NPY_OPTS_VERSION;
  o->dtypes = (1u << BG_NPY_DTYPE_COUNT_) - 1;
  o->max_bytes = UINT64_MAX;
}

/* Reads n bytes unless the file ends first; returns the count read, or -1 with errno. */
static ssize_t read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

/* The preamble and the header, up to the first data byte: fills a's dtype and shape and
 * *offset. */
static int read_header(int fd, const char *path, unsigned accepted, bg_npy_t *a, size_t *offset,
                       bg_npy_error_t *err) {
  unsigned char magic[12];
  if (read_full(fd, magic, 10) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0)
    return bg__npy_fail(err, BG_NPY_MAGIC, BG_EFORMAT, "%s: not a .npy file (no \\x93NUMPY magic)",
                        path);
  if (magic[6] < 1 || magic[6] > 3 || magic[7] != 0)
    return bg__npy_fail(err, BG_NPY_VERSION, BG_EFORMAT,
                        "%s: .npy format version %u.%u is not one brigade reads (1.0, 2.0, 3.0)",
                        path, magic[6], magic[7]);
  size_t hlen = magic[8] | (size_t)magic[9] << 8;
  *offset = 10;
  if (magic[6] >= 2) {
    if (read_full(fd, magic + 10, 2) != 2)
      return bg__npy_fail(err, BG_NPY_HEADER, BG_EFORMAT, "%s: truncated header", path);
    hlen |= (size_t)magic[10] << 16 | (size_t)magic[11] << 24;
    *offset = 12;
  }
  char *text = hlen < BG__NPY_MAX_HEADER ? malloc(hlen + 1) : NULL;
  if (!text || read_full(fd, text, hlen) != (ssize_t)hlen) {
    free(text);
    return bg__npy_fail(err, BG_NPY_HEADER, BG_EFORMAT, "%s: truncated or oversized header", path);
  }
  text[hlen] = '\0';
  *offset += hlen;
  /* Version 3.0 differs from 2.0 only in allowing UTF-8 in the dict, which only names could
   * hold: the parser compares bytes, so both are read the same way. */
  int rc = bg__npy_parse_header(text, path, accepted, &a->dtype, &a->ndim, a->shape, err);
  free(text);
  return rc;
}

/* A raw file: rows of raw_cols values, as many as the size holds. */
static int raw_shape(const struct stat *st, const char *path, const bg_npy_opts_t *o, bg_npy_t *a,
                     bg_npy_error_t *err) {
  size_t e = bg__npy_elem_size(o->raw_dtype), row;
  if (!S_ISREG(st->st_mode))
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL,
                        "%s: only a regular file can be streamed (read in pieces)", path);
  if (__builtin_mul_overflow(o->raw_cols, e, &row) || st->st_size == 0 ||
      (uint64_t)st->st_size % row)
    return bg__npy_fail(err, BG_NPY_RAW, BG_EFORMAT,
                        "%s: a raw file of %s rows with dim %zu must be a non-zero multiple of "
                        "%zu bytes",
                        path, bg_npy_dtype_name(o->raw_dtype), o->raw_cols, row);
  a->dtype = o->raw_dtype;
  a->ndim = 2;
  a->shape[0] = (size_t)((uint64_t)st->st_size / row);
  a->shape[1] = o->raw_cols;
  return 0;
}

/* A raw stream (a pipe, a terminal, /dev/stdin): its size is known only at its end, so it is
 * read whole, at most the bytes available, into buffers that double, and sized then. */
static int raw_stream(int fd, const char *path, const bg_npy_opts_t *o, bg_npy_t *a,
                      bg_npy_error_t *err) {
  size_t e = bg__npy_elem_size(o->raw_dtype), row, len = 0, cap = 0;
  if (__builtin_mul_overflow(o->raw_cols, e, &row))
    return bg__npy_fail(err, BG_NPY_RAW, BG_EFORMAT, "%s: dim %zu is too large", path, o->raw_cols);
  uint64_t most = o->max_bytes;
  char *buf = NULL;
  for (;;) {
    if (len == cap) {
      /* While the grown buffer is filled from the old one both are held: the two together stay
       * within max_bytes (one byte past it tells a stream that does not fit from one that
       * does). Doubling alone held three times a stream's size at its last step, and a stream
       * that never ends (/dev/zero) grew until the kernel killed the process. */
      uint64_t want = cap ? (uint64_t)cap * 2 : (uint64_t)1 << 20;
      if (most < UINT64_MAX)
        want = want < most + 1 - cap ? want : most + 1 - cap;
      if (want > SIZE_MAX / 2)
        want = SIZE_MAX / 2;
      if (want <= cap) {
        bg__pool_free(a->alloc, buf);
        return bg__npy_fail(err, BG_NPY_TOO_BIG, BG_ERANGE,
                            "%s: more than the %" PRIu64
                            " bytes available (a stream is read whole, through a buffer that "
                            "grows: %zu bytes read, the next buffer would pass them)",
                            path, most, len);
      }
      char *grown = bg__pool_alloc(a->alloc, (size_t)want);
      if (!grown) {
        bg__pool_free(a->alloc, buf);
        return bg__npy_fail(err, BG_NPY_NOMEM, BG_ENOMEM, "%s: out of memory after %zu bytes", path,
                            len);
      }
      if (len)
        memcpy(grown, buf, len);
      bg__pool_free(a->alloc, buf);
      buf = grown, cap = (size_t)want;
    }
    ssize_t got = read(fd, buf + len, cap - len);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int er = errno;
      bg__pool_free(a->alloc, buf);
      return bg__npy_fail(err, BG_NPY_IO, BG_ESYS, "%s: read failed: %s", path, strerror(er));
    }
    if (got == 0)
      break;
    len += (size_t)got;
    if (len > most) {
      bg__pool_free(a->alloc, buf);
      return bg__npy_fail(err, BG_NPY_TOO_BIG, BG_ERANGE,
                          "%s: more than the %" PRIu64 " bytes available", path, most);
    }
  }
  if (len == 0 || len % row) {
    bg__pool_free(a->alloc, buf);
    return bg__npy_fail(err, BG_NPY_RAW, BG_EFORMAT,
                        "%s: a raw stream of %s rows with dim %zu must be a non-zero multiple of "
                        "%zu bytes; it had %zu",
                        path, bg_npy_dtype_name(o->raw_dtype), o->raw_cols, row, len);
  }
  a->dtype = o->raw_dtype;
  a->ndim = 2;
  a->shape[0] = len / row;
  a->shape[1] = o->raw_cols;
  a->bytes = len;
  a->copy = buf;
  a->data = buf;
  return 0;
}

/* Maps the data read-only: from the page that holds its first byte, so the header's offset
 * need not be page-aligned. */
static int map_data(int fd, const char *path, size_t offset, bg_npy_t *a, bg_npy_error_t *err) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), start = offset / page * page;
  a->map_len = offset - start + a->bytes;
  a->map = mmap(NULL, a->map_len, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
  if (a->map == MAP_FAILED) {
    a->map = NULL;
    int e = errno;
    return bg__npy_fail(err, e == ENOMEM ? BG_NPY_NOMEM : BG_NPY_IO,
                        e == ENOMEM ? BG_ENOMEM : BG_ESYS, "%s: cannot map %zu bytes: %s", path,
                        a->bytes, strerror(e));
  }
  a->data = (const char *)a->map + (offset - start);
  return 0;
}

/* Reads the data into memory from the allocator (cache-line aligned), from the descriptor's
 * position, which is the first data byte. */
static int copy_data(int fd, const char *path, bg_npy_t *a, bg_npy_error_t *err) {
  a->copy = bg__pool_alloc(a->alloc, a->bytes);
  if (!a->copy)
    return bg__npy_fail(err, BG_NPY_NOMEM, BG_ENOMEM, "%s: out of memory", path);
  ssize_t got = read_full(fd, a->copy, a->bytes);
  if (got < 0)
    return bg__npy_fail(err, BG_NPY_IO, BG_ESYS, "%s: read failed: %s", path, strerror(errno));
  if ((size_t)got < a->bytes)
    return bg__npy_fail(err, BG_NPY_TRUNCATED, BG_ERANGE,
                        "%s: truncated: the header promises %zu bytes of data, the file has %zd",
                        path, a->bytes, got);
  a->data = a->copy;
  return 0;
}

/* Sizes the data, checks it against the bound and the file, and maps or reads it. */
static int load(int fd, const struct stat *st, const char *path, const bg_npy_opts_t *o,
                size_t offset, bg_npy_t *a, bg_npy_error_t *err) {
  if (bg__npy_bytes(a->ndim, a->shape, bg__npy_elem_size(a->dtype), &a->bytes) != 0 ||
      a->bytes > (uint64_t)INT64_MAX - offset)
    return bg__npy_fail(err, BG_NPY_SHAPE, BG_EFORMAT, "%s: the shape is too large to address",
                        path);
  int stream = o->version >= 2 && o->stream;
  if (a->bytes > o->max_bytes && !stream)
    return bg__npy_fail(err, BG_NPY_TOO_BIG, BG_ERANGE,
                        "%s: %zu bytes of data do not fit in the %" PRIu64 " bytes available", path,
                        a->bytes, o->max_bytes);
  int regular = S_ISREG(st->st_mode);
  if (regular && (uint64_t)st->st_size < (uint64_t)offset + a->bytes)
    return bg__npy_fail(err, BG_NPY_TRUNCATED, BG_ERANGE,
                        "%s: truncated: the header promises %zu bytes of data, the file has %lld",
                        path, a->bytes, (long long)st->st_size - (long long)offset);
  if (a->bytes == 0)
    return 0;
  if (stream) {
    if (!regular)
      return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL,
                          "%s: only a regular file can be streamed (read in pieces)", path);
    return 0;
  }
  if (regular && !o->copy && offset % 16 == 0)
    return map_data(fd, path, offset, a, err);
  /* A raw file is read from its start; a .npy file's descriptor is already past the header. */
  return copy_data(fd, path, a, err);
}

int bg_npy_open(const char *path, const bg_npy_opts_t *o, bg_npy_t **out, bg_npy_error_t *err) {
  bg_npy_opts_t defaults;
  if (!o) {
    bg_npy_opts_init(&defaults);
    o = &defaults;
  }
  if (err)
    *err = (bg_npy_error_t){0};
  unsigned known = (1u << BG_NPY_DTYPE_COUNT_) - 1;
  if (!path || !out || o->version == 0 || o->version > BG_NPY_OPTS_VERSION || !o->dtypes ||
      (o->dtypes & ~known) || (o->raw_cols && !bg__npy_elem_size(o->raw_dtype)))
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL,
                        "bg_npy_open: a NULL path or out, or options not from bg_npy_opts_init");
  const bg_allocator_t *alloc = o->allocator ? o->allocator : &bg__sys_allocator;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    return bg__npy_fail(err, BG_NPY_OPEN, e == ENOENT ? BG_ENOENT : BG_ESYS, "%s: %s", path,
                        strerror(e));
  }
  bg_npy_t *a = bg__pool_alloc(alloc, sizeof *a);
  if (!a) {
    close(fd);
    return bg__npy_fail(err, BG_NPY_NOMEM, BG_ENOMEM, "%s: out of memory", path);
  }
  *a = (bg_npy_t){.alloc = alloc, .fd = -1};
  struct stat st;
  size_t offset = 0;
  int rc;
  if (fstat(fd, &st) != 0)
    rc = bg__npy_fail(err, BG_NPY_IO, BG_ESYS, "%s: %s", path, strerror(errno));
  else if (o->raw_cols && !S_ISREG(st.st_mode) && !(o->version >= 2 && o->stream))
    rc = raw_stream(fd, path, o, a, err);
  else if (o->raw_cols)
    rc = raw_shape(&st, path, o, a, err);
  else
    rc = read_header(fd, path, o->dtypes, a, &offset, err);
  if (rc == 0 && !a->data)
    rc = load(fd, &st, path, o, offset, a, err);
  /* A mapping outlives the descriptor it was made from; a streamed array keeps it. */
  if (rc == 0 && o->version >= 2 && o->stream) {
    a->fd = fd, a->offset = offset;
    snprintf(a->path, sizeof a->path, "%s", path);
  } else {
    close(fd);
  }
  if (rc != 0) {
    bg_npy_close(a);
    return rc;
  }
  *out = a;
  return 0;
}

void bg_npy_close(bg_npy_t *a) {
  if (!a)
    return;
  if (a->map)
    munmap(a->map, a->map_len);
  if (a->fd >= 0)
    close(a->fd);
  bg__pool_free(a->alloc, a->copy);
  bg__pool_free(a->alloc, a);
}

int bg_npy_read_rows(const bg_npy_t *a, size_t row0, size_t rows, void *dst, bg_npy_error_t *err) {
  if (err)
    *err = (bg_npy_error_t){0};
  if (!a || (!dst && rows) || a->ndim < 1 || row0 > a->shape[0] || rows > a->shape[0] - row0)
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL,
                        "bg_npy_read_rows: a NULL argument, or rows past the array's end");
  size_t row = a->shape[0] ? a->bytes / a->shape[0] : 0, n = rows * row, got = 0;
  if (a->fd < 0) {
    memcpy(dst, (const char *)a->data + row0 * row, n);
    return 0;
  }
  off_t at = (off_t)(a->offset + row0 * row);
  while (got < n) {
    ssize_t r = pread(a->fd, (char *)dst + got, n - got, at + (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return bg__npy_fail(err, BG_NPY_IO, BG_ESYS, "%s: read failed: %s", a->path, strerror(errno));
    if (r == 0) /* the rows from the first one not wholly read */
      return bg__npy_fail(err, BG_NPY_TRUNCATED, BG_ERANGE,
                          "%s: truncated while in use: rows %zu to %zu are no longer in the file",
                          a->path, row0 + got / row, row0 + rows);
    got += (size_t)r;
  }
  return 0;
}

const void *bg_npy_data(const bg_npy_t *a) {
  return a->data;
}

bg_npy_dtype_t bg_npy_dtype(const bg_npy_t *a) {
  return a->dtype;
}

int bg_npy_ndim(const bg_npy_t *a) {
  return a->ndim;
}

const size_t *bg_npy_shape(const bg_npy_t *a) {
  return a->shape;
}

size_t bg_npy_bytes(const bg_npy_t *a) {
  return a->bytes;
}

int bg_npy_mapped(const bg_npy_t *a) {
  return a->map != NULL;
}

int bg_npy_view_rows(const bg_npy_t *a, size_t row0, size_t rows, bg_npy_view_t *v,
                     bg_npy_error_t *err) {
  if (err)
    *err = (bg_npy_error_t){0};
  if (v)
    *v = (bg_npy_view_t){0};
  if (!a || !v || a->fd < 0 || a->ndim < 1 || rows == 0 || row0 > a->shape[0] ||
      rows > a->shape[0] - row0)
    return bg__npy_fail(err, BG_NPY_ARG, BG_EINVAL,
                        "bg_npy_view_rows: a NULL argument, an array not streamed, or rows past "
                        "the array's end");
  size_t row = a->bytes / a->shape[0], at = a->offset + row0 * row;
  size_t page = (size_t)sysconf(_SC_PAGESIZE), start = at / page * page;
  size_t len = at - start + rows * row;
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, a->fd, (off_t)start);
  if (m == MAP_FAILED)
    return bg__npy_fail(err, BG_NPY_IO, BG_ESYS, "%s: cannot map rows %zu to %zu: %s", a->path,
                        row0, row0 + rows, strerror(errno));
  /* Read ahead now, on the caller's thread, rather than a page fault at a time later. */
  (void)madvise(m, len, MADV_WILLNEED);
  *v = (bg_npy_view_t){.rows = (const char *)m + (at - start), .map = m, .map_len = len};
  return 0;
}

void bg_npy_unview(bg_npy_view_t *v) {
  if (!v || !v->map)
    return;
  munmap(v->map, v->map_len);
  *v = (bg_npy_view_t){0};
}
