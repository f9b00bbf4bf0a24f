/* SPDX-License-Identifier: MIT */
/* Built without CUDA: the knn suite has no cuBLAS reference and says so. */
#include "cublas_sgemm.h"

#include <stdio.h>

int bench_cublas_sgemm(const float *db, size_t nb_txt, const float *q, size_t nb_new, size_t dim,
                       uint64_t block_bytes, bench_cublas_times *out, char *why, size_t cap) {
  (void)db, (void)nb_txt, (void)q, (void)nb_new, (void)dim, (void)block_bytes, (void)out;
  snprintf(why, cap, "not built: this build has no CUDA (nvcc or cuBLAS not found at configure)");
  return -1;
}
