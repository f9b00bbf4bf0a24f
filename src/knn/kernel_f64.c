/* SPDX-License-Identifier: MIT */
/* The knn kernels for float64 inputs. */
#include "internal/knn.h"

#define T double
#define IT int64_t
#define SFX f64
#define BLAS_GEMM bg__blas_gemm_f64
#include "knn/kernel_t.h"
