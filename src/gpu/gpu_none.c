/* SPDX-License-Identifier: MIT */
/* A build without CUDA (no nvcc, or -DBRIGADE_WITH_CUDA=OFF): no GPU can be used. */
#include "brigade/error.h"
#include "brigade/gpu.h"

#include <stdio.h>
#include <string.h>

int bg_gpu_query(bg_gpu_info_t *out) {
  if (!out)
    return BG_EINVAL;
  memset(out, 0, sizeof *out);
  snprintf(out->why, sizeof out->why,
           "this build has no CUDA (nvcc or cuBLAS not found at configure, or "
           "BRIGADE_WITH_CUDA=OFF, as in the Python wheel)");
  return BG_ENOTSUP;
}

int bg_gpu_bandwidth(double *h2d_gbps, double *d2h_gbps) {
  if (!h2d_gbps || !d2h_gbps)
    return BG_EINVAL;
  return BG_ENOTSUP;
}
