/* SPDX-License-Identifier: MIT */
/* Centred copies for L2 searches on vectors far from the origin.
 *
 * The kernels rank L2 by 2 q.x - |x|^2 (then |q|^2 - key), which is a product and a norm of the
 * vectors' full size, while the distances are of the size of their spread: vectors around
 * 1000 +- 0.01 make |x|^2 ~ 6e7 in 64 dimensions, where f32 resolves steps of 4 and the
 * distances (~1e-2) vanish in the rounding; the search then returns wrong neighbours and
 * negative squared distances (found by a stranger's trial from Python). The expansion loses
 * about log2(1 + |mean|^2 / spread) bits to that cancellation; the distances themselves do not
 * depend on where the origin is. So when the database's mean dominates its spread, the search
 * runs on copies of both arrays shifted by that mean (rounded to the dtype, the same shift for
 * both), and the expansion works at the size of the spread again. */
#include "brigade/error.h"
#include "internal/knn.h"
#include "internal/pool_impl.h"

#include <math.h>
#include <string.h>

/* Centre when |mean|^2 exceeds this many times the mean squared distance to the mean: then the
 * expansion has lost more than 4 of the dtype's bits. Below it the copies (and their memory)
 * are not worth what they save; the lecture's uniform [0, 1) data has a ratio of 3. */
#define CENTRE_RATIO 16.0

/* Rows the offset and spread are measured on. */
#define SAMPLE 4096u

/* When the copies do not fit the budget: refuse if the expansion would lose more than half of
 * the dtype's significand (the ranking is then not to be trusted), else search uncentred. */
static double refuse_ratio(bg_dtype_t t) {
  return t == BG_F64 ? 0x1p26 : 0x1p12;
}

static double value(const bg_knn_desc_t *d, const void *rows, size_t at) {
  return d->dtype == BG_F64 ? ((const double *)rows)[at] : (double)((const float *)rows)[at];
}

void bg__knn_shift_rows(const bg_knn_desc_t *d, const void *src, size_t rows, const double *shift,
                        void *dst) {
  size_t dim = d->dim;
  for (size_t i = 0; i < rows; i++)
    for (size_t t = 0; t < dim; t++) {
      double v = value(d, src, i * dim + t) - shift[t];
      if (d->dtype == BG_F64)
        ((double *)dst)[i * dim + t] = v;
      else
        ((float *)dst)[i * dim + t] = (float)v;
    }
}

int bg__knn_centre_shift(const bg_knn_desc_t *d, double *shift, int *must) {
  size_t dim = d->dim;
  memset(shift, 0, dim * sizeof *shift);
  *must = 0;
  /* Measured on a sample of rows, evenly spaced: any shift near the data's centre serves (the
   * distances do not depend on it), and the search is not made to read the database twice. */
  size_t rows = d->nb_txt < SAMPLE ? d->nb_txt : SAMPLE, step = d->nb_txt / rows;
  for (size_t r = 0; r < rows; r++)
    for (size_t t = 0; t < dim; t++)
      shift[t] += value(d, d->db, r * step * dim + t);
  double mm = 0;
  for (size_t t = 0; t < dim; t++) {
    shift[t] /= (double)rows;
    /* The shift is a value of the dtype, so that q - shift and x - shift are shifted alike. */
    if (d->dtype == BG_F32)
      shift[t] = (double)(float)shift[t];
    mm += shift[t] * shift[t];
  }
  /* The spread in a second pass: E|x|^2 - |mean|^2 would itself cancel to nothing here. */
  double spread = 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t t = 0; t < dim; t++) {
      double v = value(d, d->db, r * step * dim + t) - shift[t];
      spread += v * v;
    }
  spread /= (double)rows;
  *must = mm > refuse_ratio(d->dtype) * spread && d->nb_txt > 1;
  return mm > CENTRE_RATIO * spread;
}

int bg__knn_centre(const bg_knn_desc_t *d, const bg_allocator_t *a, uint64_t room,
                   bg_knn_desc_t *out, void **copy) {
  *out = *d;
  *copy = NULL;
  if (d->metric != BG_KNN_L2)
    return BG_OK;
  size_t dim = d->dim, e = d->dtype == BG_F64 ? 8 : 4;
  double *mean = bg__pool_alloc(a, dim * sizeof *mean);
  if (!mean)
    return BG_ENOMEM;
  int must, rc = BG_OK;
  if (bg__knn_centre_shift(d, mean, &must)) {
    uint64_t bytes = (uint64_t)(d->nb_txt + d->nb_new) * dim * e;
    char *c = bytes <= room ? bg__pool_alloc(a, (size_t)bytes) : NULL;
    if (!c) {
      rc = must ? BG_ENOMEM : BG_OK;
    } else {
      bg__knn_shift_rows(d, d->db, d->nb_txt, mean, c);
      bg__knn_shift_rows(d, d->queries, d->nb_new, mean, c + d->nb_txt * dim * e);
      out->db = c;
      out->queries = c + d->nb_txt * dim * e;
      *copy = c;
    }
  }
  bg__pool_free(a, mean);
  return rc;
}
