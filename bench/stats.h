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

/* Resets the process's peak resident size (Linux: writing 5 to /proc/self/clear_refs), so a
 * later bench_peak_mib() reports the peak since then. */
void bench_peak_reset(void);

/* Peak resident size in MiB (VmHWM; the lifetime ru_maxrss where that is unavailable). */
double bench_peak_mib(void);

/* User and system CPU time of this process and its reaped children, in seconds. */
typedef struct bench_cpu {
  double user, sys;
} bench_cpu;
bench_cpu bench_cpu_now(void);

/* Seconds on the monotonic clock. */
double bench_now(void);

#endif
