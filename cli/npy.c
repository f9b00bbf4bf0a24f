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

/* The header is a Python dict literal, parsed as NumPy's reader does (ast.literal_eval, then
 * exactly the keys descr, fortran_order and shape), not searched for substrings: a crafted
 * header must not be able to show brigade one dtype and NumPy another. */
typedef struct hdr {
  const char *p;
  char descr[32];
  int fortran, have; /* have: bit 0 descr, 1 fortran_order, 2 shape */
  long long dims[8];
  int ndims;
} hdr;

static void ws(hdr *h) {
  while (*h->p == ' ' || *h->p == '\t')
    h->p++;
}

/* A quoted string without escapes (NumPy never writes any in these values). */
static int string(hdr *h, char *out, size_t cap) {
  char q = *h->p;
  if (q != '\'' && q != '"')
    return -1;
  const char *e = strchr(h->p + 1, q);
  if (!e || (size_t)(e - h->p - 1) >= cap || memchr(h->p + 1, '\\', (size_t)(e - h->p - 1)))
    return -1;
  memcpy(out, h->p + 1, (size_t)(e - h->p - 1));
  out[e - h->p - 1] = '\0';
  h->p = e + 1;
  return 0;
}

/* A tuple of integers: (), (5,), (2, 3). Negative values are kept, to be named. */
static int tuple(hdr *h) {
  if (*h->p++ != '(')
    return -1;
  h->ndims = 0;
  for (;;) {
    ws(h);
    if (*h->p == ')') {
      h->p++;
      return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(h->p, &end, 10);
    if (end == h->p || errno || h->ndims == 8 || !(*h->p == '-' || (*h->p >= '0' && *h->p <= '9')))
      return -1;
    h->dims[h->ndims++] = v;
    h->p = end;
    ws(h);
    if (*h->p == ',')
      h->p++;
    else if (*h->p != ')')
      return -1;
  }
}

static int value(hdr *h, const char *key) {
  if (!strcmp(key, "descr") && !(h->have & 1)) {
    h->have |= 1;
    return string(h, h->descr, sizeof h->descr);
  }
  if (!strcmp(key, "fortran_order") && !(h->have & 2)) {
    h->have |= 2;
    if (!strncmp(h->p, "False", 5) || !strncmp(h->p, "True", 4)) {
      h->fortran = *h->p == 'T';
      h->p += h->fortran ? 4 : 5;
      return 0;
    }
    return -1;
  }
  if (!strcmp(key, "shape") && !(h->have & 4)) {
    h->have |= 4;
    return tuple(h);
  }
  return -1; /* an unknown or repeated key */
}

/* The dict; then only the padding (spaces, a final newline) may follow. */
static int dict(hdr *h, char *bad, size_t cap) {
  ws(h);
  if (*h->p++ != '{')
    return -1;
  for (;;) {
    ws(h);
    if (*h->p == '}')
      break;
    char key[32];
    if (string(h, key, sizeof key) != 0)
      return -1;
    ws(h);
    if (*h->p++ != ':')
      return -1;
    ws(h);
    if (value(h, key) != 0) {
      snprintf(bad, cap, "%s", key);
      return -1;
    }
    ws(h);
    if (*h->p == ',')
      h->p++;
    else if (*h->p != '}')
      return -1;
  }
  h->p++;
  while (*h->p == ' ' || *h->p == '\n')
    h->p++;
  return *h->p == '\0' && h->have == 7 ? 0 : -1;
}

static int parse_header(const char *text, const char *path, npy_array *a, char *err, size_t cap) {
  hdr h = {.p = text};
  char key[32] = "";
  if (dict(&h, key, sizeof key) != 0) {
    if (key[0])
      snprintf(err, cap, "%s: the .npy header has an unexpected or repeated key '%s'", path, key);
    else
      snprintf(err, cap,
               "%s: the .npy header is not the dict NumPy writes ({'descr': ..., "
               "'fortran_order': ..., 'shape': (...)})",
               path);
    return -1;
  }
  if (!strcmp(h.descr, "<f4"))
    a->dtype = BG_F32;
  else if (!strcmp(h.descr, "<f8"))
    a->dtype = BG_F64;
  else {
    snprintf(err, cap,
             "%s: unsupported dtype '%s' (brigade reads little-endian float32 '<f4' or float64 "
             "'<f8'; convert with arr.astype(np.float32))",
             path, h.descr);
    return -1;
  }
  if (h.fortran)
    return fail(err, cap, path, "Fortran-ordered array; save np.ascontiguousarray(arr)");
  for (int i = 0; i < h.ndims; i++)
    if (h.dims[i] < 0) {
      snprintf(err, cap, "%s: the shape has a negative dimension (%lld)", path, h.dims[i]);
      return -1;
    }
  if (h.ndims != 2) {
    snprintf(err, cap, "%s: expected a 2-D array (rows, dim), found %d dimension%s", path, h.ndims,
             h.ndims == 1 ? "" : "s");
    return -1;
  }
  a->rows = (size_t)h.dims[0];
  a->cols = (size_t)h.dims[1];
  if (a->rows == 0 || a->cols == 0)
    return fail(err, cap, path, "the array is empty");
  return 0;
}

static int read_data(FILE *f, const char *path, npy_array *a, uint64_t max_bytes, long offset,
                     char *err, size_t cap) {
  size_t e = a->dtype == BG_F64 ? 8 : 4, n;
  if (__builtin_mul_overflow(a->rows, a->cols, &n) || __builtin_mul_overflow(n, e, &n)) {
    fail(err, cap, path, "the shape is too large to address");
    return NPY_EFORMAT;
  }
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
  /* Until the data is being read, what goes wrong is the file's format: a usage error. */
  int rc = NPY_EFORMAT;
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
    if (magic[6] < 1 || magic[6] > 3 || magic[7] != 0) {
      snprintf(err, cap, "%s: .npy format version %u.%u is not one brigade reads (1.0, 2.0, 3.0)",
               path, magic[6], magic[7]);
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
  rc = read_data(f, path, &a, max_bytes, offset, err, cap);
  if (rc == 0)
    *out = a;
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
