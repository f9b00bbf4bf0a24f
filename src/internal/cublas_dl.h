/* SPDX-License-Identifier: MIT */
/* cuBLAS, loaded when the first GPU product needs it. Linked directly, libcublas and the
 * libcublasLt it needs (about 600 MB of mappings) would load with every program that links
 * brigade, GPU or not, and a program under `ulimit -v` of a few hundred MB would fail before
 * main. Loaded on demand, only a GPU search pays for it, and one that cannot load it gets an
 * error that says why. */
#ifndef BRIGADE_INTERNAL_CUBLAS_DL_H
#define BRIGADE_INTERNAL_CUBLAS_DL_H

#include <cublas_v2.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The calls brigade makes, with cuBLAS's own signatures. */
typedef struct bg__cublas {
  cublasStatus_t (*create)(cublasHandle_t *h);
  cublasStatus_t (*destroy)(cublasHandle_t h);
  cublasStatus_t (*set_stream)(cublasHandle_t h, cudaStream_t s);
  cublasStatus_t (*set_math_mode)(cublasHandle_t h, cublasMath_t mode);
  cublasStatus_t (*sgemm)(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                          int n, int k, const float *alpha, const float *a, int lda, const float *b,
                          int ldb, const float *beta, float *c, int ldc);
  cublasStatus_t (*dgemm)(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                          int n, int k, const double *alpha, const double *a, int lda,
                          const double *b, int ldb, const double *beta, double *c, int ldc);
  const char *(*status_string)(cublasStatus_t s);
} bg__cublas;

/* cuBLAS's calls, loaded once per process (thread-safe); NULL when it cannot be loaded, with
 * *why naming the library and the loader's message (a static buffer, set once). */
const bg__cublas *bg__cublas_get(const char **why);

#ifdef __cplusplus
}
#endif
#endif
