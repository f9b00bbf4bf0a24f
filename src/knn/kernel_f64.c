/* SPDX-License-Identifier: MIT */
/* The knn kernels for float64 inputs. */
#include "internal/knn.h"

#include <immintrin.h>
#include <math.h>

#define T double
#define IT int64_t
#define SFX f64
#define FMA_S fma
#define FMA512 _mm512_fmadd_pd
#define SET512 _mm512_set1_pd
#define V512 __m512d
#define FMA256 _mm256_fmadd_pd
#define SET256 _mm256_set1_pd
#define V256 __m256d
#define BLAS_GEMM bg__blas_gemm_f64
#include "knn/kernel_t.h"
