/* SPDX-License-Identifier: MIT */
/* The .npy format: magic "\x93NUMPY", a version byte pair, a little-endian header length (2
 * bytes in 1.0, 4 in 2.0 and 3.0), then a Python dict literal with 'descr', 'fortran_order' and
 * 'shape', padded so the data starts on a 64-byte boundary. Only what brigade needs is parsed,
 * and everything else is refused by name. */
#include "npy.h"
#include "outfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(char *err, size_t cap, const char *path, const char *what) {
  snprintf(err, cap, "%s: %s", path, what);
  return -1;
}

/* The value text after 'key': in the header dict, or NULL. */
static const char *dict_value(const char *h, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "'%s'", key);
  const char *p = strstr(h, pat);
  if (!p)
    return NULL;
  p = strchr(p + strlen(pat), ':');
  if (!p)
    return NULL;
  p++;
  while (*p == ' ')
    p++;
  return p;
}

static int parse_header(const char *h, const char *path, npy_array *a, char *err, size_t cap) {
  const char *descr = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"),
             *shape = dict_value(h, "shape");
  if (!descr || !fo || !shape)
    return fail(err, cap, path, "the .npy header lacks descr, fortran_order or shape");
  if (!strncmp(descr, "'<f4'", 5))
    a->dtype = BG_F32;
  else if (!strncmp(descr, "'<f8'", 5))
    a->dtype = BG_F64;
  else
    return fail(err, cap, path,
                "unsupported dtype (brigade reads little-endian float32 '<f4' or float64 '<f8'; "
                "convert with arr.astype(np.float32))");
  if (strncmp(fo, "False", 5))
    return fail(err, cap, path, "Fortran-ordered array; save np.ascontiguousarray(arr)");
  unsigned long long r, c;
  char close;
  if (sscanf(shape, "(%llu, %llu%c", &r, &c, &close) != 3 || close != ')')
    return fail(err, cap, path, "expected a 2-D array (rows, dim)");
  a->rows = (size_t)r;
  a->cols = (size_t)c;
  if (a->rows == 0 || a->cols == 0)
    return fail(err, cap, path, "the array is empty");
  return 0;
}

static int read_data(FILE *f, const char *path, npy_array *a, uint64_t max_bytes, long offset,
                     char *err, size_t cap) {
  size_t e = a->dtype == BG_F64 ? 8 : 4, n;
  if (__builtin_mul_overflow(a->rows, a->cols, &n) || __builtin_mul_overflow(n, e, &n))
    return fail(err, cap, path, "the shape overflows");
  if (n > max_bytes) {
    snprintf(err, cap, "%s: %zu bytes of data do not fit in the %" PRIu64 " bytes available", path,
             n, max_bytes);
    return -1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size < (uint64_t)offset + n) {
    snprintf(err, cap, "%s: truncated: the header promises %zu bytes of data, the file has %lld",
             path, n, (long long)st.st_size - offset);
    return -1;
  }
  a->data = malloc(n ? n : 1);
  if (!a->data)
    return fail(err, cap, path, "out of memory");
  if (fread(a->data, 1, n, f) != n) {
    free(a->data);
    a->data = NULL;
    return fail(err, cap, path, "read failed or the file is truncated");
  }
  return 0;
}

int npy_read(const char *path, size_t raw_cols, bg_dtype_t raw_dtype, uint64_t max_bytes,
             npy_array *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, cap, "%s: %s", path, strerror(errno));
    return -1;
  }
  int rc = -1;
  npy_array a = {0};
  long offset = 0;
  if (raw_cols) {
    struct stat st;
    size_t e = raw_dtype == BG_F64 ? 8 : 4;
    if (fstat(fileno(f), &st) != 0 || st.st_size == 0 || (uint64_t)st.st_size % (raw_cols * e)) {
      snprintf(err, cap,
               "%s: a raw file of %s rows with dim %zu must be a non-zero multiple of "
               "%zu bytes",
               path, bg_dtype_name(raw_dtype), raw_cols, raw_cols * e);
      goto done;
    }
    a = (npy_array){
        .rows = (size_t)st.st_size / (raw_cols * e), .cols = raw_cols, .dtype = raw_dtype};
  } else {
    unsigned char magic[10];
    if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) {
      fail(err, cap, path, "not a .npy file (no \\x93NUMPY magic); for raw data give --raw");
      goto done;
    }
    size_t hlen = magic[8] | (size_t)magic[9] << 8;
    offset = 10;
    if (magic[6] >= 2) {
      unsigned char more[2];
      if (fread(more, 1, 2, f) != 2) {
        fail(err, cap, path, "truncated header");
        goto done;
      }
      hlen |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
      offset = 12;
    }
    char *h = hlen < (1u << 20) ? malloc(hlen + 1) : NULL;
    if (!h || fread(h, 1, hlen, f) != hlen) {
      free(h);
      fail(err, cap, path, "truncated or oversized header");
      goto done;
    }
    h[hlen] = '\0';
    offset += (long)hlen;
    int bad = parse_header(h, path, &a, err, cap);
    free(h);
    if (bad)
      goto done;
  }
  if (read_data(f, path, &a, max_bytes, offset, err, cap) == 0) {
    *out = a;
    rc = 0;
  }
done:
  fclose(f);
  return rc;
}

int npy_write_i64(const char *path, const int64_t *v, size_t rows, size_t cols, char *err,
                  size_t cap) {
  char dict[128];
  int len = snprintf(dict, sizeof dict,
                     "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
  /* Pad with spaces and a newline so magic + 4 + header is a multiple of 64. */
  size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64;
  /* Written whole or not at all: an interrupted or failed write leaves no truncated .npy
   * whose header promises data it does not hold. */
  bench_outfile o;
  if (bench_outfile_open(&o, path, err, cap) != 0)
    return -1;
  FILE *f = o.f;
  size_t hlen = (size_t)len + pad + 1;
  unsigned char pre[10] = {0x93,
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           (unsigned char)(hlen & 0xff),
                           (unsigned char)(hlen >> 8)};
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)len, f) == (size_t)len;
  for (size_t i = 0; i < pad && ok; i++)
    ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF && fwrite(v, sizeof *v, rows * cols, f) == rows * cols;
  if (!ok) {
    snprintf(err, cap, "'%s': write failed: %s; the previous file, if any, is unchanged", path,
             strerror(errno));
    bench_outfile_discard(&o);
    return -1;
  }
  return bench_outfile_commit(&o, err, cap);
}
