/* SPDX-License-Identifier: MIT */
/* Summaries of repeated timings: this machine is shared and noisy, so a run is reported as
 * its median with the min and max beside it, never as one number. */
#ifndef BRIGADE_BENCH_STATS_H
#define BRIGADE_BENCH_STATS_H

#include <stddef.h>

typedef struct bench_summary {
  double median, min, max;
} bench_summary;

/* Summarises v[0..n) (n >= 1); reorders v. */
bench_summary bench_summarise(double *v, size_t n);

/* Seconds on the monotonic clock. */
double bench_now(void);

#endif
