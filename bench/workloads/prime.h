/* SPDX-License-Identifier: MIT */
/* The lecture's CPU-bound task: trial division, exactly as its Python f(n) does it. */
#ifndef BRIGADE_BENCH_PRIME_H
#define BRIGADE_BENCH_PRIME_H

#include <stddef.h>

/* 1 if n is prime, by trial division by odd numbers up to floor(sqrt(n)). */
int bench_is_prime(unsigned long n);

/* bg_task_fn: is_prime(*(unsigned long *)ctx) for every item: equal work per item. */
int bench_prime_fixed(void *out, const void *in, size_t i, void *ctx);

/* bg_task_fn: is_prime(i): unequal work, from nothing (even i) to sqrt(i) divisions. */
int bench_prime_range(void *out, const void *in, size_t i, void *ctx);

#endif
