/* SPDX-License-Identifier: MIT */
/* The knn kernels for float32 inputs, and precision bf16's, which reuses their fp32 parts. */
#include "internal/knn.h"

#define T float
#define IT int32_t
#define SFX f32
#define BLAS_GEMM bg__blas_gemm_f32
#include "knn/kernel_t.h"
#include "knn/kernel_bf16.h"
