/* SPDX-License-Identifier: MIT */
/* A build without CUDA: the cuda knn backend is refused before it gets here (bg_gpu_query says
 * BG_ENOTSUP), so these only keep the link whole. */
#include "brigade/error.h"
#include "internal/gpu_knn.h"

int bg__gpu_knn(const bg_knn_desc_t *d, const bg__gpu_plan *p, const void *norm, void *keys,
                bg_knn_times_t *times, const char **why) {
  (void)d, (void)p, (void)norm, (void)keys, (void)times;
  *why = "this build has no CUDA";
  return BG_ENOTSUP;
}

int bg__gpu_blas_loads(const char **why) {
  if (why)
    *why = "this build has no CUDA";
  return 0;
}

int bg__gpu_device(int f64, uint64_t *free_bytes, bg__gpu_rates *r) {
  (void)f64, (void)free_bytes, (void)r;
  return BG_ENOTSUP;
}
