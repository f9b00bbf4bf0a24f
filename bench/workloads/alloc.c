/* SPDX-License-Identifier: MIT */
/* Memory-hungry work: each item allocates X MiB, fills it with random doubles and returns their
 * mean. Every running item holds X MiB, so the runner checks workers x X against the memory
 * available before it starts (the lecture's "Killed: 9" must not happen). The fill is mostly
 * the kernel handing out fresh pages, which is why this workload's time is system time. */
#include "workload.h"
#include "workloads/rng.h"

#include <stdio.h>
#include <stdlib.h>

/* Fills @count fresh doubles at @a with item i's random numbers; writes their mean. Four
 * generators and four sums, interleaved, because one xorshift's state is a chain of six
 * dependent operations a number (and one sum a chain of additions): 1.7 ns a double against
 * 2.9 on prefaulted memory here, so the item's time is the kernel's page faults, the limit this
 * workload is about, and not a generator's latency. */
#define STREAMS 4
static int fill(double *a, size_t count, size_t i, void *out) {
  uint64_t seed[STREAMS];
  double sum[STREAMS] = {0};
  for (size_t j = 0; j < STREAMS; j++)
    seed[j] = bench_rng_mix(bench_rng_seed(i) + j) | 1; /* xorshift needs a nonzero state */
  for (size_t k = 0; k < count; k++) {
    if (k % (1u << 20) == 0 && bench_interrupted)
      return BENCH_EINTR;
    a[k] = bench_rng_double(&seed[k % STREAMS]);
    sum[k % STREAMS] += a[k];
  }
  double all = 0;
  for (size_t j = 0; j < STREAMS; j++)
    all += sum[j];
  *(double *)out = count ? all / (double)count : 0;
  return 0;
}
#undef STREAMS

static size_t doubles(const bench_case *c) {
  return (size_t)(c->param * 1024 * 1024 / sizeof(double));
}

static int alloc_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  size_t count = doubles(ctx);
  double *a = malloc(count * sizeof *a);
  if (!a)
    return 12; /* ENOMEM, as the item's code */
  int rc = fill(a, count, i, out);
  free(a);
  return rc;
}

/* The same work on huge pages (bg_big_alloc): one fault per 2 MiB instead of per 4 KiB. */
static int alloc_huge_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  size_t count = doubles(ctx);
  void *a;
  if (!count || bg_big_alloc(count * sizeof(double), &a) != 0)
    return count ? 12 : fill(NULL, 0, i, out);
  int rc = fill(a, count, i, out);
  bg_big_free(a, count * sizeof(double));
  return rc;
}

static int alloc_check(void *state, const bench_case *c, const void *out, char *err, size_t cap) {
  (void)state;
  const double *r = out;
  for (size_t i = 0; i < c->n; i++) {
    if (!(r[i] > 0.49 && r[i] < 0.51)) {
      snprintf(err, cap, "item %zu: mean of uniform [0,1) doubles is %g", i, r[i]);
      return -1;
    }
  }
  return 0;
}

static uint64_t alloc_item_bytes(const bench_case *c) {
  return (uint64_t)(c->param * 1024 * 1024);
}

const bench_workload bench_wl_alloc = {
    .name = "alloc",
    .bound = BENCH_BOUND_FAULTS,
    .simulates = "memory-intensive work: each item allocates and fills X MiB of random doubles",
    .param_fmt = "%g MiB each",
    .quick = {8, 16},
    .lecture = {{100, 500}, {10, 5000}},
    .nlecture = 2,
    .out_size = sizeof(double),
    .fn = alloc_task,
    .check = alloc_check,
    .item_bytes = alloc_item_bytes,
};

const bench_workload bench_wl_alloc_huge = {
    .name = "alloc-huge",
    .bound = BENCH_BOUND_FAULTS,
    .huge_pages = 1,
    .simulates = "alloc on huge pages (bg_big_alloc): the way out of alloc's page faults",
    .param_fmt = "%g MiB each",
    .quick = {8, 16},
    .lecture = {{100, 500}, {10, 5000}},
    .nlecture = 2,
    .out_size = sizeof(double),
    .fn = alloc_huge_task,
    .check = alloc_check,
    .item_bytes = alloc_item_bytes,
};
