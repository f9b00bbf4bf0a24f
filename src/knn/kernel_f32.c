/* SPDX-License-Identifier: MIT */
/* The knn kernels for float32 inputs, and precision bf16's, which reuses their fp32 parts. */
#include "internal/knn.h"

#include <immintrin.h>
#include <math.h>

#define T float
#define IT int32_t
#define SFX f32
#define FMA_S fmaf
#define FMA512 _mm512_fmadd_ps
#define SET512 _mm512_set1_ps
#define V512 __m512
#define FMA256 _mm256_fmadd_ps
#define SET256 _mm256_set1_ps
#define V256 __m256
#define BLAS_GEMM bg__blas_gemm_f32
#include "knn/kernel_t.h"
#include "knn/kernel_bf16.h"
