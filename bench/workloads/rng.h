/* SPDX-License-Identifier: MIT */
/* A tiny seeded generator (xorshift64*) so every workload's data is reproducible per item and
 * costs a few cycles, not a library call, per number. */
#ifndef BRIGADE_BENCH_RNG_H
#define BRIGADE_BENCH_RNG_H

#include <stdint.h>

static inline uint64_t bench_rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1Du;
}

/* A nonzero seed derived from an index. */
static inline uint64_t bench_rng_seed(uint64_t i) {
  return (i + 1) * 0x9E3779B97F4A7C15u;
}

/* A well-mixed 64-bit value from any input (splitmix64's finaliser): nearby inputs give
 * unrelated seeds. */
static inline uint64_t bench_rng_mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15u;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double bench_rng_double(uint64_t *s) {
  return (double)(bench_rng_next(s) >> 11) * 0x1.0p-53;
}

#endif
