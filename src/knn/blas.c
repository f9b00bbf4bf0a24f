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

/* OpenBLAS gives every thread that enters a product a work buffer of BUFFER_SIZE plus a page,
 * mapped with mmap on first use and kept in a process-wide table for reuse; its own pool threads
 * take one each when they start. BUFFER_SIZE is 32 << 22 = 128 MiB on x86-64 since 0.3.x
 * (Debian's 0.3.21 pthread build: VmSize grows by exactly 128 MiB around a thread's first
 * sgemm, measured). When that mmap fails, blas_memory_alloc retries it forever, so a caller
 * must know the size before it multiplies: the planner counts one per product at once. The
 * page rounds up to 64 KiB for other page sizes. */
uint64_t bg__blas_buffer_bytes(void) {
  return ((uint64_t)128 << 20) + ((uint64_t)64 << 10);
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
