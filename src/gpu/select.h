/* SPDX-License-Identifier: MIT */
/* The cuda backend's top-k selection, the parts that are the same on the host and the device:
 * included by src/gpu/knn.cu (where each function is __host__ __device__) and by the CPU
 * reference in tests/unit/test_gpu_plan.c, which runs the same passes one element at a time and
 * is checked against bg_knn's CPU answers.
 *
 * The selection, for one query row: the running top-k (up to k entries, in increasing database
 * index) followed by the tile's keys (in increasing index) form a list U; the best
 * m = min(k, |U|) of U by (key descending, position ascending) become the new running top-k,
 * again in increasing index. Position order is index order, so ties go to the lowest index as on
 * the CPU, and no k is too large: there is no per-thread queue to overflow.
 *
 * How: keys map to unsigned integers of the same order (ukey), and a radix select finds the m-th
 * largest one digit of 8 bits at a time, from the top: a histogram of the digit over the elements
 * that still share the prefix chosen so far, then the bin where the count from the top reaches
 * what is still wanted (pick). It stops early when a bin holds exactly what is wanted. Then one
 * ordered pass keeps every element above the prefix and the first `remaining` equal to it. */
#ifndef BRIGADE_GPU_SELECT_H
#define BRIGADE_GPU_SELECT_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define BG_HD __host__ __device__ inline
#else
#define BG_HD static inline
#endif

/* Ranking keys, exactly as the CPU kernels form them (src/knn/kernel_t.h, key_of): metric is a
 * bg_knn_metric_t; norm is |x| (cosine) or |x|^2 (L2) of the database row. */
BG_HD float bg__sel_key_f32(int metric, float dot, float norm) {
  return metric == 1 ? (norm > 0 ? dot / norm : 0.0f) : metric == 2 ? 2 * dot - norm : dot;
}

BG_HD double bg__sel_key_f64(int metric, double dot, double norm) {
  return metric == 1 ? (norm > 0 ? dot / norm : 0.0) : metric == 2 ? 2 * dot - norm : dot;
}

/* Order-preserving maps: a < b as floats iff ukey(a) < ukey(b) (finite keys and -inf; NaN never
 * reaches here). -0 is first made +0, because the two compare equal and so must tie. */
BG_HD uint64_t bg__sel_ukey_f32(float key) {
  float k = key + 0.0f;
  uint32_t b;
  memcpy(&b, &k, sizeof b);
  return (b >> 31) ? ~b : b | 0x80000000u;
}

BG_HD uint64_t bg__sel_ukey_f64(double key) {
  double k = key + 0.0;
  uint64_t b;
  memcpy(&b, &k, sizeof b);
  return (b >> 63) ? ~b : b | 0x8000000000000000ull;
}

/* Passes of 8 bits over keys of @bits (32 or 64), the top digit first. */
BG_HD unsigned bg__sel_shift(unsigned pass, unsigned bits) {
  return bits - 8 * (pass + 1);
}

BG_HD unsigned bg__sel_digit(uint64_t u, unsigned shift) {
  return (unsigned)(u >> shift) & 0xffu;
}

/* The bin holding the @*remaining-th largest element, counting from bin 255 down; subtracts
 * the counts of the bins above it from @*remaining, and sets @*done when the bin holds exactly
 * what is still wanted (then every element sharing the new prefix is taken, and no further
 * digit is needed). hist's counts add up to at least @*remaining. */
BG_HD unsigned bg__sel_pick(const uint32_t *hist, uint32_t *remaining, int *done) {
  for (unsigned b = 255; b > 0; b--) {
    if (hist[b] >= *remaining) {
      *done = hist[b] == *remaining;
      return b;
    }
    *remaining -= hist[b];
  }
  *done = hist[0] == *remaining;
  return 0;
}

/* The element at position p of U: the running top-k first, then the tile. */
#define BG__SEL_ELEMENT(T, SFX)                                                                    \
  BG_HD T bg__sel_at_##SFX(uint32_t p, uint32_t have, const T *run_keys, const int64_t *run_idx,   \
                           const T *scores, const T *norm, int metric, int64_t x0, int64_t *idx) { \
    if (p < have) {                                                                                \
      *idx = run_idx[p];                                                                           \
      return run_keys[p];                                                                          \
    }                                                                                              \
    uint32_t j = p - have;                                                                         \
    *idx = x0 + (int64_t)j;                                                                        \
    return bg__sel_key_##SFX(metric, scores[j], norm ? norm[j] : (T)0);                            \
  }
BG__SEL_ELEMENT(float, f32)
BG__SEL_ELEMENT(double, f64)
#undef BG__SEL_ELEMENT

#endif
