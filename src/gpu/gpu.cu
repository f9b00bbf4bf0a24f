/* SPDX-License-Identifier: MIT */
/* Device discovery through the CUDA runtime. Every call that can fail without a driver is
 * checked: on a machine with the toolkit but no GPU, cudaGetDeviceCount fails with
 * cudaErrorNoDevice or cudaErrorInsufficientDriver and brigade falls back to the CPU. */
#include "brigade/error.h"
#include "brigade/gpu.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What bg_gpu_bandwidth() copies: large enough that the copy's fixed cost (some microseconds)
 * is below 1% of it on a 60 GB/s link, small enough to pin on any machine with a GPU. */
#define BW_BYTES ((size_t)64 << 20)
/* Timed copies each way; the best is kept, since a slower one was slowed by something else. */
#define BW_TIMED 3

extern "C" int bg_gpu_query(bg_gpu_info_t *out) {
  if (!out)
    return BG_EINVAL;
  memset(out, 0, sizeof *out);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    /* Without any NVIDIA driver the runtime says its driver is "insufficient", which reads as
     * advice to upgrade one: name the absence instead. */
    if (e == cudaErrorInsufficientDriver && access("/dev/nvidiactl", F_OK) != 0)
      snprintf(out->why, sizeof out->why,
               "no NVIDIA driver on this machine (no /dev/nvidiactl; the CUDA runtime says: %s)",
               cudaGetErrorString(e));
    else
      snprintf(out->why, sizeof out->why, "%s",
               e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
    /* A failed runtime call leaves a sticky error for the next one; clear it. */
    cudaGetLastError();
    return BG_EUNAVAIL;
  }
  cudaDeviceProp p;
  size_t free_b = 0, total_b = 0;
  int sms = 0;
  /* CUDA 13 dropped some cudaDeviceProp fields (clockRate among them); attributes are the
   * interface that stays, so the SM count is asked for as one. */
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess || cudaSetDevice(0) != cudaSuccess ||
      cudaMemGetInfo(&free_b, &total_b) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) {
    snprintf(out->why, sizeof out->why, "%s", cudaGetErrorString(cudaGetLastError()));
    return BG_EUNAVAIL;
  }
  out->devices = n;
  snprintf(out->name, sizeof out->name, "%s", p.name);
  out->cc_major = p.major;
  out->cc_minor = p.minor;
  out->total_bytes = total_b;
  out->free_bytes = free_b;
  out->sm_count = sms;
  return BG_OK;
}

/* A failed CUDA call as a brigade code: an allocation that could not be had is BG_ENOMEM, any
 * other failure means the device cannot be used here. The sticky error is cleared so that the
 * caller's next CUDA call does not inherit it. */
static int bw_error(cudaError_t e) {
  cudaGetLastError();
  return e == cudaErrorMemoryAllocation ? BG_ENOMEM : BG_EUNAVAIL;
}

/* The best of BW_TIMED copies of BW_BYTES, after one untimed copy, in seconds. */
static cudaError_t best_copy(void *dst, const void *src, cudaMemcpyKind kind, cudaEvent_t a,
                             cudaEvent_t b, double *best) {
  cudaError_t e = cudaMemcpy(dst, src, BW_BYTES, kind);
  for (int i = 0; i < BW_TIMED && e == cudaSuccess; i++) {
    float ms = 0;
    if ((e = cudaEventRecord(a, 0)) != cudaSuccess ||
        (e = cudaMemcpyAsync(dst, src, BW_BYTES, kind, 0)) != cudaSuccess ||
        (e = cudaEventRecord(b, 0)) != cudaSuccess ||
        (e = cudaEventSynchronize(b)) != cudaSuccess ||
        (e = cudaEventElapsedTime(&ms, a, b)) != cudaSuccess)
      break;
    if (i == 0 || ms * 1e-3 < *best)
      *best = ms * 1e-3;
  }
  return e;
}

extern "C" int bg_gpu_bandwidth(double *h2d_gbps, double *d2h_gbps) {
  if (!h2d_gbps || !d2h_gbps)
    return BG_EINVAL;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    return BG_EUNAVAIL;
  }
  void *host = NULL, *dev = NULL;
  cudaEvent_t a = NULL, b = NULL;
  double h2d = 0, d2h = 0;
  int rc = BG_OK;
  if ((e = cudaSetDevice(0)) != cudaSuccess) {
    rc = bw_error(e);
    goto done;
  }
  if ((e = cudaMallocHost(&host, BW_BYTES)) != cudaSuccess) {
    rc = bw_error(e);
    goto done;
  }
  /* Pinned pages are resident already; the fill only gives the copies defined bytes. */
  memset(host, 1, BW_BYTES);
  if ((e = cudaMalloc(&dev, BW_BYTES)) != cudaSuccess) {
    rc = bw_error(e);
    goto fail_dev;
  }
  if ((e = cudaEventCreate(&a)) != cudaSuccess) {
    rc = bw_error(e);
    goto fail_a;
  }
  if ((e = cudaEventCreate(&b)) != cudaSuccess) {
    rc = bw_error(e);
    goto fail_b;
  }
  if ((e = best_copy(dev, host, cudaMemcpyHostToDevice, a, b, &h2d)) != cudaSuccess ||
      (e = best_copy(host, dev, cudaMemcpyDeviceToHost, a, b, &d2h)) != cudaSuccess)
    rc = bw_error(e);
  else if (h2d <= 0 || d2h <= 0)
    rc = BG_EUNAVAIL; /* an event pair that measured nothing: no figure to give */
  cudaEventDestroy(b);
fail_b:
  cudaEventDestroy(a);
fail_a:
  cudaFree(dev);
fail_dev:
  cudaFreeHost(host);
done:
  if (rc != BG_OK)
    return rc;
  *h2d_gbps = (double)BW_BYTES / h2d / 1e9;
  *d2h_gbps = (double)BW_BYTES / d2h / 1e9;
  return BG_OK;
}
