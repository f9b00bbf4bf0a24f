/* SPDX-License-Identifier: MIT */
/* Device discovery through the CUDA runtime. Every call that can fail without a driver is
 * checked: on a machine with the toolkit but no GPU, cudaGetDeviceCount fails with
 * cudaErrorNoDevice or cudaErrorInsufficientDriver and brigade falls back to the CPU. */
#include "brigade/error.h"
#include "brigade/gpu.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" int bg_gpu_query(bg_gpu_info_t *out) {
  if (!out)
    return BG_EINVAL;
  memset(out, 0, sizeof *out);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    snprintf(out->why, sizeof out->why, "%s",
             e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
    /* A failed runtime call leaves a sticky error for the next one; clear it. */
    cudaGetLastError();
    return BG_EUNAVAIL;
  }
  cudaDeviceProp p;
  size_t free_b = 0, total_b = 0;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess || cudaSetDevice(0) != cudaSuccess ||
      cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    snprintf(out->why, sizeof out->why, "%s", cudaGetErrorString(cudaGetLastError()));
    return BG_EUNAVAIL;
  }
  out->devices = n;
  snprintf(out->name, sizeof out->name, "%s", p.name);
  out->cc_major = p.major;
  out->cc_minor = p.minor;
  out->total_bytes = total_b;
  out->free_bytes = free_b;
  return BG_OK;
}
