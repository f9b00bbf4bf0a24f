/* SPDX-License-Identifier: MIT */
/* The GPU as brigade sees it: whether this build has CUDA, whether a device and driver are
 * present at run time, and how much memory the device has free (what the cuda knn backend
 * plans its tiles against). */
#ifndef BRIGADE_GPU_H
#define BRIGADE_GPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_gpu_info {
  int devices;    /* CUDA devices visible to this process */
  char name[256]; /* device 0's name */
  int cc_major;   /* device 0's compute capability */
  int cc_minor;
  uint64_t total_bytes; /* device 0's memory */
  uint64_t free_bytes;  /* free now */
  char why[160];        /* when there is none: what the CUDA runtime said */
  int sm_count;         /* device 0's streaming multiprocessors */
} bg_gpu_info_t;

/**
 * bg_gpu_query - look for a CUDA device.
 * Return: 0 (a device: @out describes device 0); BG_EUNAVAIL (built with CUDA, but no device
 * or no driver here: out->why says which); BG_ENOTSUP (built without CUDA); BG_EINVAL.
 */
int bg_gpu_query(bg_gpu_info_t *out);

/**
 * bg_gpu_bandwidth - measure pinned host-to-device and device-to-host copies on device 0.
 * @h2d_gbps: OUT: host-to-device GB/s (1e9 bytes per second).
 * @d2h_gbps: OUT: device-to-host GB/s.
 *
 * Copies 64 MiB between page-locked host memory (cudaMallocHost) and device memory: one
 * untimed copy each way first (it pays the driver's first-use costs), then the best of three
 * timed with CUDA events, which is what a search that streams pinned tiles can reach. Takes
 * some tens of milliseconds on a PCIe 4 or 5 GPU, more on the first CUDA call of a process
 * (the context is created then). Device 0 becomes the calling thread's current device, as with
 * bg_gpu_query(). Everything allocated is freed before it returns, on every path.
 *
 * Thread-safety: safe to call from any thread; copies of other threads on the same GPU share
 * its bus and lower the figures.
 *
 * Return: 0 (both written); BG_EINVAL (a NULL pointer); BG_ENOTSUP (built without CUDA);
 * BG_EUNAVAIL (no device or driver here, or a CUDA call failed); BG_ENOMEM (the pinned or the
 * device buffer could not be allocated). Nothing is written unless it returns 0.
 */
int bg_gpu_bandwidth(double *h2d_gbps, double *d2h_gbps);

#ifdef __cplusplus
}
#endif

#endif
