/* SPDX-License-Identifier: MIT */
/* The cuda knn backend's entry points between the C side (src/knn/knn_cuda.c) and the device
 * code (src/gpu/knn.cu, or src/gpu/knn_none.c in a build without CUDA). */
#ifndef BRIGADE_INTERNAL_GPU_KNN_H
#define BRIGADE_INTERNAL_GPU_KNN_H

#include "brigade/knn.h"
#include "internal/gpu_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * bg__gpu_knn - run a planned search on device 0.
 * @d: the search, checked (values included) by bg_knn.
 * @p: its plan (bg__gpu_plan_make).
 * @norm: nb_txt norms of the dtype (|x| for cosine, |x|^2 for L2), NULL for ip.
 * @keys: OUT nb_new x k ranking keys of the dtype; d->idx gets the indices. Each row comes back
 * in increasing database index, not sorted by key: the caller sorts.
 * @times: OUT, optional: device time per activity (wall_s is left to the caller).
 * @why: OUT on failure: the CUDA or cuBLAS call and its message, in a buffer of the calling
 * thread that the next failure overwrites.
 *
 * Return: 0; BG_ENOMEM (a device allocation failed); BG_EUNAVAIL (any other CUDA or cuBLAS
 * error: no device, a launch or a copy failed); BG_ENOTSUP without CUDA.
 */
int bg__gpu_knn(const bg_knn_desc_t *d, const bg__gpu_plan *p, const void *norm, void *keys,
                bg_knn_times_t *times, const char **why);

/* Device 0's free memory and the rates bg__gpu_predict_s needs for the dtype (f64 != 0): its
 * arithmetic from its SM count, clock and compute capability, the fixed cost of a search, and
 * h2d_gbps left for the caller to fill. Return: 0, BG_EUNAVAIL, BG_ENOTSUP. */
int bg__gpu_device(int f64, uint64_t *free_bytes, bg__gpu_rates *r);

/* Whether cuBLAS loads (it is opened on first use): 1, or 0 with @why set when not NULL. */
int bg__gpu_blas_loads(const char **why);

#ifdef __cplusplus
}
#endif
#endif
