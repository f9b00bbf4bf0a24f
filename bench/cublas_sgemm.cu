/* SPDX-License-Identifier: MIT */
/* The cublas-sgemm reference of the knn suite: cuBLAS's FP32 product of the same queries and
 * database on the GPU, timed on the device, so the cuda row has a ceiling beside it as the CPU
 * rows have OpenBLAS's. Every CUDA and cuBLAS call is checked; a failure becomes a sentence for
 * the row's note, never an abort. cuBLAS comes through the library's loader
 * (internal/cublas_dl.h), not the link line: linked, its 600 MB of mappings would load with the
 * brigade command itself and stop it under `ulimit -v`, GPU or not. */
#include "cublas_sgemm.h"
#include "internal/cublas_dl.h"

#include <cuda_runtime.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* What one run holds on the device, released by release() from whatever state was reached. */
typedef struct gpu_run {
  const bg__cublas *cb;
  float *db, *q, *s;
  cublasHandle_t h;
  cudaEvent_t ev[4]; /* upload start and end, products start and end */
} gpu_run;

static void release(gpu_run *g) {
  if (g->h)
    g->cb->destroy(g->h);
  cudaFree(g->s);
  cudaFree(g->q);
  cudaFree(g->db);
  for (int i = 0; i < 4; i++)
    if (g->ev[i])
      cudaEventDestroy(g->ev[i]);
  /* A failed call leaves a sticky error that the next CUDA user (the cuda row) would read. */
  cudaGetLastError();
}

static int cuda_ok(cudaError_t e, const char *what, char *why, size_t cap) {
  if (e == cudaSuccess)
    return 1;
  snprintf(why, cap, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
  return 0;
}

static int cublas_ok(const gpu_run *g, cublasStatus_t st, const char *what, char *why, size_t cap) {
  if (st == CUBLAS_STATUS_SUCCESS)
    return 1;
  snprintf(why, cap, "%s: %s (status %d)", what, g->cb->status_string(st), (int)st);
  return 0;
}

/* Allocates, uploads between ev[0] and ev[1], and readies the handle. */
static int setup(gpu_run *g, const float *db, size_t nb_txt, const float *q, size_t nb_new,
                 size_t dim, size_t rows, char *why, size_t cap) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    snprintf(why, cap, "No GPU detected (%s)",
             e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
    return 0;
  }
  const char *no_cublas = NULL;
  if (!(g->cb = bg__cublas_get(&no_cublas))) {
    snprintf(why, cap, "%s", no_cublas ? no_cublas : "cuBLAS could not be loaded");
    return 0;
  }
  if (!cuda_ok(cudaSetDevice(0), "cudaSetDevice", why, cap))
    return 0;
  for (int i = 0; i < 4; i++)
    if (!cuda_ok(cudaEventCreate(&g->ev[i]), "cudaEventCreate", why, cap))
      return 0;
  return cuda_ok(cudaMalloc((void **)&g->db, nb_txt * dim * sizeof(float)), "cudaMalloc(db)", why,
                 cap) &&
         cuda_ok(cudaMalloc((void **)&g->q, nb_new * dim * sizeof(float)), "cudaMalloc(queries)",
                 why, cap) &&
         cuda_ok(cudaMalloc((void **)&g->s, rows * nb_txt * sizeof(float)), "cudaMalloc(scores)",
                 why, cap) &&
         cublas_ok(g, g->cb->create(&g->h), "cublasCreate", why, cap) &&
         cublas_ok(g, g->cb->set_math_mode(g->h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode", why,
                   cap) &&
         cuda_ok(cudaEventRecord(g->ev[0], 0), "cudaEventRecord", why, cap) &&
         cuda_ok(
             cudaMemcpyAsync(g->db, db, nb_txt * dim * sizeof(float), cudaMemcpyHostToDevice, 0),
             "cudaMemcpy(db)", why, cap) &&
         cuda_ok(cudaMemcpyAsync(g->q, q, nb_new * dim * sizeof(float), cudaMemcpyHostToDevice, 0),
                 "cudaMemcpy(queries)", why, cap) &&
         cuda_ok(cudaEventRecord(g->ev[1], 0), "cudaEventRecord", why, cap);
}

/* Scores of queries i0..i0+m-1 against the whole database into g->s. Row-major S = Q X^T is
 * column-major S^T = X Q^T, and a row-major X (nb_txt x dim) read column-major is X^T: hence
 * the transposed first operand and nb_txt as the leading dimension of the result. */
static int block(const gpu_run *g, size_t nb_txt, size_t dim, size_t i0, size_t m, char *why,
                 size_t cap) {
  const float one = 1.0f, zero = 0.0f;
  return cublas_ok(g,
                   g->cb->sgemm(g->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)nb_txt, (int)m, (int)dim, &one,
                                g->db, (int)dim, g->q + i0 * dim, (int)dim, &zero, g->s,
                                (int)nb_txt),
                   "cublasSgemm", why, cap);
}

static int elapsed(const gpu_run *g, int from, double *s, char *why, size_t cap) {
  float ms = 0;
  if (!cuda_ok(cudaEventElapsedTime(&ms, g->ev[from], g->ev[from + 1]), "cudaEventElapsedTime", why,
               cap))
    return 0;
  *s = ms * 1e-3;
  return 1;
}

extern "C" int bench_cublas_sgemm(const float *db, size_t nb_txt, const float *q, size_t nb_new,
                                  size_t dim, uint64_t block_bytes, bench_cublas_times *out,
                                  char *why, size_t cap) {
  size_t rows = (size_t)(block_bytes / (nb_txt * sizeof(float)));
  rows = rows == 0 ? 1 : rows > nb_new ? nb_new : rows;
  /* cuBLAS's dimensions are ints (its _64 calls are newer than some toolkits we build with). */
  if (nb_txt > INT_MAX || dim > INT_MAX || rows > INT_MAX) {
    snprintf(why, cap, "sizes beyond cuBLAS's int dimensions (nb_txt %zu, dim %zu)", nb_txt, dim);
    return -1;
  }
  gpu_run g;
  memset(&g, 0, sizeof g);
  bench_cublas_times t = {0, 0, rows};
  int ok = setup(&g, db, nb_txt, q, nb_new, dim, rows, why, cap) &&
           block(&g, nb_txt, dim, 0, rows, why, cap) &&
           cuda_ok(cudaEventRecord(g.ev[2], 0), "cudaEventRecord", why, cap);
  for (size_t i0 = 0; ok && i0 < nb_new; i0 += rows)
    ok = block(&g, nb_txt, dim, i0, nb_new - i0 < rows ? nb_new - i0 : rows, why, cap);
  /* Kernels fail asynchronously: their errors surface at the synchronisation. */
  ok = ok && cuda_ok(cudaEventRecord(g.ev[3], 0), "cudaEventRecord", why, cap) &&
       cuda_ok(cudaEventSynchronize(g.ev[3]), "the products", why, cap) &&
       elapsed(&g, 0, &t.h2d_s, why, cap) && elapsed(&g, 2, &t.gemm_s, why, cap);
  release(&g);
  if (!ok)
    return -1;
  *out = t;
  return 0;
}
