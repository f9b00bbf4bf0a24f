/* SPDX-License-Identifier: MIT */
/* The catalogue, in the lecture's order: waiting, equal CPU, unequal CPU, small and large
 * files, big allocations, serialization-sized reads; each of the two kernel-bound kinds of work
 * followed by its way out (a folder per worker, huge pages). */
#include "workload.h"

#include <string.h>

volatile sig_atomic_t bench_interrupted;

static const bench_workload *const table[] = {
    &bench_wl_sleep,      &bench_wl_prime_fixed, &bench_wl_prime_range, &bench_wl_disk_small,
    &bench_wl_disk_dirs,  &bench_wl_disk_large,  &bench_wl_alloc,       &bench_wl_alloc_huge,
    &bench_wl_chunk_mean, &bench_wl_vector_mean,
};

size_t bench_workload_count(void) {
  return sizeof table / sizeof table[0];
}

const bench_workload *bench_workload_at(size_t i) {
  return i < bench_workload_count() ? table[i] : NULL;
}

const bench_workload *bench_workload_find(const char *name) {
  for (size_t i = 0; i < bench_workload_count(); i++)
    if (strcmp(table[i]->name, name) == 0)
      return table[i];
  return NULL;
}
