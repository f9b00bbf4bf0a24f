/* SPDX-License-Identifier: MIT */
/* The knn kernels for float32 inputs. */
#include "internal/knn.h"

#define T float
#define IT int32_t
#define SFX f32
#define BLAS_GEMM bg__blas_gemm_f32
#include "knn/kernel_t.h"
