/* SPDX-License-Identifier: MIT */
/* Trial division, the lecture's f(n): equal work per item (the fixed number 9999991, which is
 * prime, so every item does all ~1,580 divisions) and unequal work (each item tests its own
 * index). The fixed number is read through ctx so the compiler cannot fold the loop away. */
#include "prime.h"
#include "workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned long fixed_number = 9999991;

int bench_is_prime(unsigned long n) {
  if (n < 2)
    return 0;
  if (n == 2)
    return 1;
  if (n % 2 == 0)
    return 0;
  unsigned long r = (unsigned long)floor(sqrt((double)n));
  for (unsigned long d = 3; d <= r; d += 2)
    if (n % d == 0)
      return 0;
  return 1;
}

int bench_prime_fixed(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)i;
  int p = bench_is_prime(*(const volatile unsigned long *)ctx);
  if (out)
    *(uint8_t *)out = (uint8_t)p;
  return 0;
}

int bench_prime_range(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  int p = bench_is_prime((unsigned long)i);
  if (out)
    *(uint8_t *)out = (uint8_t)p;
  return 0;
}

static int fixed_setup(const bench_case *c, void **state, char *err, size_t cap) {
  (void)c, (void)err, (void)cap;
  *state = (void *)&fixed_number;
  return 0;
}

static int fixed_check(void *state, const bench_case *c, const void *out, char *err, size_t cap) {
  (void)state;
  const uint8_t *r = out;
  for (size_t i = 0; i < c->n; i++) {
    if (r[i] != 1) {
      snprintf(err, cap, "item %zu says 9999991 is not prime", i);
      return -1;
    }
  }
  return 0;
}

/* The check counts primes with a sieve of Eratosthenes, a method independent of the task's. */
static int range_check(void *state, const bench_case *c, const void *out, char *err, size_t cap) {
  (void)state;
  const uint8_t *r = out;
  uint8_t *composite = calloc(c->n + 1, 1);
  if (!composite) {
    snprintf(err, cap, "no memory for the sieve");
    return -1;
  }
  for (size_t p = 2; p * p < c->n; p++)
    if (!composite[p])
      for (size_t m = p * p; m < c->n; m += p)
        composite[m] = 1;
  int rc = 0;
  for (size_t i = 0; i < c->n && rc == 0; i++) {
    int want = i >= 2 && !composite[i];
    if (r[i] != want) {
      snprintf(err, cap, "item %zu: task says %s, the sieve says %s", i,
               r[i] ? "prime" : "composite", want ? "prime" : "composite");
      rc = -1;
    }
  }
  free(composite);
  return rc;
}

const bench_workload bench_wl_prime_fixed = {
    .name = "prime-fixed",
    .bound = BENCH_BOUND_CPU,
    .simulates = "equal CPU work: trial division of 9999991 in every item",
    .quick = {20000, 0},
    .lecture = {{1000, 0}, {100000, 0}},
    .nlecture = 2,
    .out_size = 1,
    .setup = fixed_setup,
    .fn = bench_prime_fixed,
    .check = fixed_check,
};

const bench_workload bench_wl_prime_range = {
    .name = "prime-range",
    .bound = BENCH_BOUND_CPU,
    .simulates = "unequal CPU work: trial division of each index, dearer as i grows",
    .quick = {200000, 0},
    .lecture = {{1000, 0}, {1000000, 0}},
    .nlecture = 2,
    .out_size = 1,
    .fn = bench_prime_range,
    .check = range_check,
};
