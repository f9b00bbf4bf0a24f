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
} bg_gpu_info_t;

/**
 * bg_gpu_query - look for a CUDA device.
 * Return: 0 (a device: @out describes device 0); BG_EUNAVAIL (built with CUDA, but no device
 * or no driver here: out->why says which); BG_ENOTSUP (built without CUDA); BG_EINVAL.
 */
int bg_gpu_query(bg_gpu_info_t *out);

#ifdef __cplusplus
}
#endif

#endif
