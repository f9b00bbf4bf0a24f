/* SPDX-License-Identifier: MIT */
/* Waiting work: each item sleeps, as a request to a network service or a database would. Its
 * time is latency, not CPU, so more workers than cores still help. The sleep is cut into
 * 10 ms slices so a Ctrl-C is noticed quickly. */
#include "workload.h"

#include <stdio.h>
#include <time.h>

static int sleep_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  const bench_case *c = ctx;
  double left = c->param;
  while (left > 0) {
    if (bench_interrupted)
      return BENCH_EINTR;
    double step = left < 0.01 ? left : 0.01;
    struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
    nanosleep(&ts, NULL);
    left -= step;
  }
  *(uint64_t *)out = i;
  return 0;
}

static int sleep_check(void *state, const bench_case *c, const void *out, char *err, size_t cap) {
  (void)state;
  const uint64_t *r = out;
  for (size_t i = 0; i < c->n; i++) {
    if (r[i] != i) {
      snprintf(err, cap, "item %zu returned %llu", i, (unsigned long long)r[i]);
      return -1;
    }
  }
  return 0;
}

const bench_workload bench_wl_sleep = {
    .name = "sleep",
    .bound = BENCH_BOUND_LATENCY,
    .simulates = "network or database latency: each item waits, using no CPU",
    .param_fmt = "%g s each",
    .quick = {50, 0.01},
    .lecture = {{25, 1.0}, {2500, 0.01}},
    .nlecture = 2,
    .out_size = sizeof(uint64_t),
    .fn = sleep_task,
    .check = sleep_check,
    .blocking = 1,
};
