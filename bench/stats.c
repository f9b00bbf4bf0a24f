/* SPDX-License-Identifier: MIT */
/* Median, min and max of a handful of timings. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_summary bench_summarise(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  bench_summary s = {.min = v[0], .max = v[n - 1]};
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return s;
}

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* This process and its reaped children: a procs map reaps its workers before it returns, so
 * their CPU time falls inside the map that used them. */
bench_cpu bench_cpu_now(void) {
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  double u = (double)(self.ru_utime.tv_sec + kids.ru_utime.tv_sec) +
             (double)(self.ru_utime.tv_usec + kids.ru_utime.tv_usec) * 1e-6;
  double s = (double)(self.ru_stime.tv_sec + kids.ru_stime.tv_sec) +
             (double)(self.ru_stime.tv_usec + kids.ru_stime.tv_usec) * 1e-6;
  return (bench_cpu){u, s};
}

void bench_peak_reset(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (f) {
    fputs("5", f);
    fclose(f);
  }
}

double bench_peak_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %lf kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  if (kib == 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    kib = (double)ru.ru_maxrss;
  }
  return kib / 1024;
}
