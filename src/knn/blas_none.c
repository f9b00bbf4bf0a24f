/* SPDX-License-Identifier: MIT */
/* Built instead of blas.c when OpenBLAS was not found: the blas backend says BG_ENOTSUP. */
#include "brigade/error.h"
#include "internal/knn.h"

int bg__blas_available(void) {
  return 0;
}

int bg__blas_threads(int n) {
  return n;
}

uint64_t bg__blas_buffer_bytes(void) {
  return 0;
}

int bg__blas_gemm_f32(const float *q, size_t nq, const float *x, size_t nx, size_t dim, float *s) {
  (void)q, (void)nq, (void)x, (void)nx, (void)dim, (void)s;
  return BG_ENOTSUP;
}

int bg__blas_gemm_f64(const double *q, size_t nq, const double *x, size_t nx, size_t dim,
                      double *s) {
  (void)q, (void)nq, (void)x, (void)nx, (void)dim, (void)s;
  return BG_ENOTSUP;
}

const char *bg__blas_corename(void) {
  return NULL;
}
