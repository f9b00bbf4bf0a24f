/* SPDX-License-Identifier: MIT */
/* The knn suite's GPU ceiling: cuBLAS's bare sgemm on the search's product, on device 0, as the
 * sgemm row is OpenBLAS's on the CPU. cublas_sgemm.cu implements it in a CUDA build and
 * cublas_sgemm_none.c otherwise; nvcc compiles the former as C++, hence the guards. */
#ifndef BRIGADE_BENCH_CUBLAS_SGEMM_H
#define BRIGADE_BENCH_CUBLAS_SGEMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where one run's time went, measured on the device with CUDA events. */
typedef struct bench_cublas_times {
  double gemm_s;     /* the products, every block */
  double h2d_s;      /* uploading the database and the queries (from pageable memory) */
  size_t block_rows; /* queries per block of scores */
} bench_cublas_times;

/* Uploads db (nb_txt x dim) and q (nb_new x dim), row-major float32, and computes S = Q X^T
 * with cublasSgemm in blocks of queries whose scores fit in block_bytes, in plain FP32
 * (CUBLAS_DEFAULT_MATH: no TF32, so its figures compare with brigade's FP32 search). The scores
 * stay on the device and are dropped, as OpenBLAS's are in bench_sgemm_seconds: it is the
 * product alone. One untimed block first loads cuBLAS's kernels. Everything is freed on every
 * path. cuBLAS is loaded on first use by the library's loader (src/gpu/cublas_dl.c), never
 * linked. Returns 0 and fills out; -1 with why (the failing call and CUDA's or cuBLAS's message,
 * that cuBLAS cannot be loaded, or that the build has no CUDA) otherwise. */
int bench_cublas_sgemm(const float *db, size_t nb_txt, const float *q, size_t nb_new, size_t dim,
                       uint64_t block_bytes, bench_cublas_times *out, char *why, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
