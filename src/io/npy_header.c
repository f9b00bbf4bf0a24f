/* SPDX-License-Identifier: MIT */
/* The .npy header: magic "\x93NUMPY", a version byte pair, a little-endian header length (2
 * bytes in 1.0, 4 in 2.0 and 3.0), then a Python dict literal with 'descr', 'fortran_order' and
 * 'shape', padded so the data starts on a 64-byte boundary. This file parses and formats the
 * dict; npy_read.c and npy_write.c move the bytes. Only what brigade needs is parsed, and
 * everything else is refused by name. */
#include "internal/npy.h"

#include "brigade/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What NumPy calls each dtype, for the header and for the advice in a refusal. */
static const struct {
  const char *descr, *numpy, *name;
  size_t size;
} types[BG_NPY_DTYPE_COUNT_] = {
    [BG_NPY_F32] = {"<f4", "float32", "f32", 4},
    [BG_NPY_F64] = {"<f8", "float64", "f64", 8},
    [BG_NPY_I64] = {"<i8", "int64", "i64", 8},
};

size_t bg__npy_elem_size(bg_npy_dtype_t t) {
  return (unsigned)t < BG_NPY_DTYPE_COUNT_ ? types[t].size : 0;
}

const char *bg_npy_dtype_name(bg_npy_dtype_t t) {
  return (unsigned)t < BG_NPY_DTYPE_COUNT_ ? types[t].name : "?";
}

int bg__npy_fail(bg_npy_error_t *err, bg_npy_fault_t fault, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->fault = fault;
  }
  return code;
}

int bg__npy_bytes(int ndim, const size_t *shape, size_t elem, size_t *bytes) {
  size_t n = elem;
  for (int i = 0; i < ndim; i++)
    if (__builtin_mul_overflow(n, shape[i], &n))
      return -1;
  *bytes = n;
  return 0;
}

/* The header is a Python dict literal, parsed as NumPy's reader does (ast.literal_eval, then
 * exactly the keys descr, fortran_order and shape), not searched for substrings: a crafted
 * header must not be able to show brigade one dtype and NumPy another. */
typedef struct hdr {
  const char *p;
  char descr[32];
  int fortran, have; /* have: bit 0 descr, 1 fortran_order, 2 shape */
  long long dims[BG_NPY_MAX_DIMS];
  int ndims, too_many;
  int bad_value; /* a known key's value could not be read (not an unknown or repeated key) */
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

/* A tuple of integers: (), (5,), (2, 3). Negative values are kept, to be named; dimensions
 * past BG_NPY_MAX_DIMS are counted, not kept. */
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
    if (end == h->p || errno || !(*h->p == '-' || (*h->p >= '0' && *h->p <= '9')))
      return -1;
    if (h->ndims < BG_NPY_MAX_DIMS)
      h->dims[h->ndims++] = v;
    else
      h->too_many = 1;
    h->p = end;
    ws(h);
    if (*h->p == ',')
      h->p++;
    else if (*h->p != ')')
      return -1;
  }
}

static int value(hdr *h, const char *key) {
  int rc = -1;
  if (!strcmp(key, "descr") && !(h->have & 1)) {
    h->have |= 1;
    rc = string(h, h->descr, sizeof h->descr);
  } else if (!strcmp(key, "fortran_order") && !(h->have & 2)) {
    h->have |= 2;
    if (!strncmp(h->p, "False", 5) || !strncmp(h->p, "True", 4)) {
      h->fortran = *h->p == 'T';
      h->p += h->fortran ? 4 : 5;
      rc = 0;
    }
  } else if (!strcmp(key, "shape") && !(h->have & 4)) {
    h->have |= 4;
    rc = tuple(h);
  } else {
    return -1; /* an unknown or repeated key */
  }
  h->bad_value = rc != 0;
  return rc;
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

/* Refuses a dtype outside the accepted ones, naming those that are and the conversion to the
 * first: "float32 '<f4' or float64 '<f8'; convert with arr.astype(np.float32)". */
static int refuse_dtype(const char *path, const char *descr, unsigned accepted,
                        bg_npy_error_t *err) {
  char list[160] = "";
  const char *first = NULL;
  int n = 0, left = __builtin_popcount(accepted);
  for (int t = 0; t < BG_NPY_DTYPE_COUNT_; t++) {
    if (!(accepted & 1u << t))
      continue;
    size_t len = strlen(list);
    snprintf(list + len, sizeof list - len, "%s%s '%s'", n == 0 ? "" : (left == 1 ? " or " : ", "),
             types[t].numpy, types[t].descr);
    first = first ? first : types[t].numpy;
    n++, left--;
  }
  return bg__npy_fail(err, BG_NPY_DTYPE, BG_EFORMAT,
                      "%s: unsupported dtype '%s' (brigade reads little-endian %s; convert with "
                      "arr.astype(np.%s))",
                      path, descr, list, first);
}

int bg__npy_parse_header(const char *text, const char *path, unsigned accepted,
                         bg_npy_dtype_t *dtype, int *ndim, size_t shape[BG_NPY_MAX_DIMS],
                         bg_npy_error_t *err) {
  hdr h = {.p = text};
  char key[32] = "";
  if (dict(&h, key, sizeof key) != 0) {
    if (key[0] && h.bad_value)
      return bg__npy_fail(err, BG_NPY_HEADER, BG_EFORMAT,
                          "%s: the .npy header's value of key '%s' is not what NumPy writes (%s)",
                          path, key,
                          !strcmp(key, "shape")           ? "a tuple of whole numbers below 2^63"
                          : !strcmp(key, "fortran_order") ? "True or False"
                                                          : "a quoted type such as '<f4'");
    if (key[0])
      return bg__npy_fail(err, BG_NPY_HEADER, BG_EFORMAT,
                          "%s: the .npy header has an unexpected or repeated key '%s'", path, key);
    return bg__npy_fail(err, BG_NPY_HEADER, BG_EFORMAT,
                        "%s: the .npy header is not the dict NumPy writes ({'descr': ..., "
                        "'fortran_order': ..., 'shape': (...)})",
                        path);
  }
  int t = 0;
  while (t < BG_NPY_DTYPE_COUNT_ && strcmp(h.descr, types[t].descr))
    t++;
  if (t == BG_NPY_DTYPE_COUNT_ || !(accepted & 1u << t))
    return refuse_dtype(path, h.descr, accepted, err);
  if (h.fortran)
    return bg__npy_fail(err, BG_NPY_ORDER, BG_EFORMAT,
                        "%s: Fortran-ordered array; save np.ascontiguousarray(arr)", path);
  if (h.too_many)
    return bg__npy_fail(err, BG_NPY_SHAPE, BG_EFORMAT, "%s: the shape has more than %d dimensions",
                        path, BG_NPY_MAX_DIMS);
  for (int i = 0; i < h.ndims; i++) {
    if (h.dims[i] < 0)
      return bg__npy_fail(err, BG_NPY_SHAPE, BG_EFORMAT,
                          "%s: the shape has a negative dimension (%lld)", path, h.dims[i]);
    shape[i] = (size_t)h.dims[i];
  }
  *dtype = (bg_npy_dtype_t)t;
  *ndim = h.ndims;
  return 0;
}

size_t bg__npy_format_header(char *buf, size_t cap, bg_npy_dtype_t dtype, int ndim,
                             const size_t *shape) {
  /* Built after the 10-byte preamble, which is filled in once the length is known. */
  if (cap < 64)
    return 0;
  size_t len = 10;
  len += (size_t)snprintf(buf + len, cap - len,
                          "{'descr': '%s', 'fortran_order': False, 'shape': (", types[dtype].descr);
  for (int i = 0; i < ndim && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%zu", i ? ", " : "", shape[i]);
  if (len < cap)
    len += (size_t)snprintf(buf + len, cap - len, "%s), }", ndim == 1 ? "," : "");
  /* Spaces and a newline so the data starts on a 64-byte boundary, as NumPy pads. */
  size_t total = (len + 1 + 63) / 64 * 64;
  if (total > cap || total - 10 > 0xffff)
    return 0;
  memset(buf + len, ' ', total - 1 - len);
  buf[total - 1] = '\n';
  size_t hlen = total - 10;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)(hlen & 0xff);
  buf[9] = (char)(hlen >> 8);
  return total;
}
