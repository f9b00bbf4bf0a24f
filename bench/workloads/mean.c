/* SPDX-License-Identifier: MIT */
/* Means of a big array of doubles. In the lecture these show what serialization costs: Python
 * pickles every chunk to a worker process. Here threads read the array in place, so what is
 * left is memory bandwidth. Both use one vectorisable kernel (eight independent sums), as the
 * lecture's Python does with NumPy's mean; they differ in what an item is:
 *  - chunk-mean: the mean of each of n chunks (chunk.mean() per chunk in the lecture). The
 *    chunks are the map's items, so the procs-copy backend sends them to its workers as the
 *    lecture's Python pools do;
 *  - vector-mean: the same array in n blocks, NumPy's single-pass a.mean() split over workers.
 * (chunk-mean once summed with one dependent addition per element: four cycles each, a
 * quarter of what a core can stream, which kept its rows far below the bandwidth for a reason
 * that was not the one the workload is there to show.) */
#include "workload.h"
#include "workloads/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct mean_state {
  double *a;
  size_t len;
  size_t n;
} mean_state;

static int mean_setup(const bench_case *c, void **state, char *err, size_t cap) {
  mean_state *s = malloc(sizeof *s);
  size_t len = (size_t)c->param;
  double *a = malloc(len * sizeof *a);
  if (!s || !a) {
    free(s);
    free(a);
    snprintf(err, cap, "cannot allocate %.0f MiB for the array", (double)len * 8 / 1048576);
    return -1;
  }
  uint64_t seed = bench_rng_seed(42);
  for (size_t k = 0; k < len; k++)
    a[k] = bench_rng_double(&seed);
  *s = (mean_state){a, len, c->n};
  *state = s;
  return 0;
}

static void mean_teardown(void *state) {
  mean_state *s = state;
  free(s->a);
  free(s);
}

static void block(const mean_state *s, size_t i, size_t *off, size_t *len) {
  size_t q = s->len / s->n, r = s->len % s->n;
  *off = i * q + (i < r ? i : r);
  *len = q + (i < r);
}

/* The chunks as items: equal records when the length divides evenly (every built-in case). */
static const void *chunk_items(void *state, const bench_case *c, size_t *in_size) {
  (void)c;
  const mean_state *s = state;
  if (s->len % s->n != 0)
    return NULL;
  *in_size = s->len / s->n * sizeof(double);
  return s->a;
}

/* The mean of a[0..len): eight independent sums, so that the additions keep up with memory
 * (one running sum waits four cycles per element on its own additions). */
static double mean_of(const double *a, size_t len) {
  double acc[8] = {0};
  size_t k = 0;
  for (; k + 8 <= len; k += 8)
    for (int j = 0; j < 8; j++)
      acc[j] += a[k + j];
  double sum = 0;
  for (; k < len; k++)
    sum += a[k];
  for (int j = 0; j < 8; j++)
    sum += acc[j];
  return len ? sum / (double)len : 0;
}

static int chunk_mean_task(void *out, const void *in, size_t i, void *ctx) {
  const mean_state *s = ctx;
  size_t off, len;
  block(s, i, &off, &len);
  *(double *)out = mean_of(in ? in : s->a + off, len);
  return 0;
}

static int vector_mean_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  const mean_state *s = ctx;
  size_t off, len;
  block(s, i, &off, &len);
  *(double *)out = mean_of(s->a + off, len);
  return 0;
}

/* Recombines the block means into the array's mean and compares with a direct sum. */
static int mean_check(void *state, const bench_case *c, const void *out, char *err, size_t cap) {
  const mean_state *s = state;
  const double *m = out;
  double total = 0, direct = 0;
  for (size_t i = 0; i < c->n; i++) {
    size_t off, len;
    block(s, i, &off, &len);
    total += m[i] * (double)len;
  }
  for (size_t k = 0; k < s->len; k++)
    direct += s->a[k];
  double got = total / (double)s->len, want = direct / (double)s->len;
  if (fabs(got - want) > 1e-9 * fabs(want)) {
    snprintf(err, cap, "mean from the chunks is %.12f, a direct sum gives %.12f", got, want);
    return -1;
  }
  return 0;
}

static uint64_t mean_setup_bytes(const bench_case *c) {
  return (uint64_t)c->param * sizeof(double);
}

static double mean_bytes_read(const bench_case *c) {
  return c->param * sizeof(double);
}

const bench_workload bench_wl_chunk_mean = {
    .name = "chunk-mean",
    .bound = BENCH_BOUND_MEMORY,
    .simulates = "per-chunk means of one big array (the lecture's serialization test)",
    .param_fmt = "array of %.0f doubles",
    .quick = {1000, 1e7},
    .lecture = {{1000, 1e8}, {100000, 1e8}},
    .nlecture = 2,
    .out_size = sizeof(double),
    .setup = mean_setup,
    .teardown = mean_teardown,
    .fn = chunk_mean_task,
    .items = chunk_items,
    .check = mean_check,
    .setup_bytes = mean_setup_bytes,
    .bytes_read = mean_bytes_read,
};

const bench_workload bench_wl_vector_mean = {
    .name = "vector-mean",
    .bound = BENCH_BOUND_MEMORY,
    .simulates = "the same mean in one vectorised pass, split in blocks over the workers",
    .param_fmt = "array of %.0f doubles",
    .quick = {16, 1e7},
    .lecture = {{100, 1e8}},
    .nlecture = 1,
    .out_size = sizeof(double),
    .setup = mean_setup,
    .teardown = mean_teardown,
    .fn = vector_mean_task,
    .check = mean_check,
    .setup_bytes = mean_setup_bytes,
    .bytes_read = mean_bytes_read,
};
