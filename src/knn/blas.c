/* SPDX-License-Identifier: MIT */
/* Tile products through OpenBLAS: the only file that includes cblas.h. Each brigade worker
 * multiplies its own tile, so OpenBLAS must not start threads of its own inside: bg_knn sets
 * it to one thread for the duration of a search (bg__blas_threads) and restores it after. */
#include "internal/knn.h"

#include <cblas.h>

int bg__blas_available(void) {
  return 1;
}

int bg__blas_threads(int n) {
  int old = openblas_get_num_threads();
  openblas_set_num_threads(n);
  return old;
}

int bg__blas_gemm_f32(const float *q, size_t nq, const float *x, size_t nx, size_t dim, float *s) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nx, (int)dim, 1.0f, q,
              (int)dim, x, (int)dim, 0.0f, s, (int)nx);
  return 0;
}

int bg__blas_gemm_f64(const double *q, size_t nq, const double *x, size_t nx, size_t dim,
                      double *s) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nx, (int)dim, 1.0, q, (int)dim,
              x, (int)dim, 0.0, s, (int)nx);
  return 0;
}

const char *bg__blas_corename(void) {
  return openblas_get_corename();
}
