/* SPDX-License-Identifier: MIT */
/* Reading the machine's CPU time and telling this process's share of it from everyone else's. */
#define _GNU_SOURCE
#include "contention.h"
#include "stats.h"
#include "workload.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bench_machine_cpu_parse(const char *stat, double hz, bench_machine_cpu *out) {
  memset(out, 0, sizeof *out);
  /* The first line is the sum over CPUs: "cpu  user nice system idle iowait irq softirq steal
   * guest guest_nice". Kernels before 2.6.33 stop earlier: missing fields read as 0. */
  const char *p = strstr(stat, "cpu ");
  if (!p || (p != stat && p[-1] != '\n'))
    return -1;
  unsigned long long v[8] = {0};
  int got = sscanf(p + 3, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
  if (got < 4 || hz <= 0)
    return -1;
  out->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
  out->steal = (double)v[7] / hz;
  out->total = (double)(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / hz;
  /* One "cpuN" line per CPU follows. */
  unsigned ncpu = 0;
  for (const char *q = strstr(p, "\ncpu"); q; q = strstr(q + 1, "\ncpu"))
    ncpu += q[4] >= '0' && q[4] <= '9';
  out->grain = (double)(ncpu ? ncpu : 1) / hz;
  out->ok = 1;
  return 0;
}

bench_machine_cpu bench_machine_cpu_now(void) {
  bench_machine_cpu m = {0};
  /* Big enough for the per-CPU lines of a large machine: they give the CPU count. */
  static _Thread_local char buf[1 << 16];
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return m;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  long hz = sysconf(_SC_CLK_TCK);
  if (bench_machine_cpu_parse(buf, hz > 0 ? (double)hz : 100.0, &m) != 0)
    m.ok = 0;
  return m;
}

void bench_machine_cpu_add(bench_machine_cpu *sum, const bench_machine_cpu *a,
                           const bench_machine_cpu *b) {
  if (!a->ok || !b->ok) {
    sum->ok = 0;
    return;
  }
  sum->busy += b->busy - a->busy;
  sum->steal += b->steal - a->steal;
  sum->total += b->total - a->total;
  sum->grain += a->grain + b->grain;
}

double bench_others_share(const bench_machine_cpu *d, double own_cpu_s) {
  if (!d->ok || d->total < BENCH_OTHERS_MIN_CAPACITY)
    return -1;
  /* The machine's busy time less this process's is everyone else's; ticks and rusage round
   * differently, so a small negative difference is zero. */
  double others = d->busy - own_cpu_s + d->steal - d->grain;
  double share = others / d->total;
  return share < 0 ? 0 : share > 1 ? 1 : share;
}

double bench_wait_quiet(double max_s) {
  double start = bench_now();
  for (;;) {
    bench_machine_cpu m0 = bench_machine_cpu_now(), d = {.ok = 1};
    bench_cpu c0 = bench_cpu_now();
    double t0 = bench_now();
    /* In steps of 50 ms, so that a Ctrl-C ends the wait at once. */
    while (bench_now() - t0 < BENCH_QUIET_WINDOW && !bench_interrupted)
      nanosleep(&(struct timespec){0, 50000000}, NULL);
    if (bench_interrupted)
      return -1;
    bench_machine_cpu m1 = bench_machine_cpu_now();
    bench_cpu c1 = bench_cpu_now();
    bench_machine_cpu_add(&d, &m0, &m1);
    /* The bench's own threads count as its own: an OpenMP runtime's workers may still spin
     * after the row that started them. */
    double share = bench_others_share(&d, c1.user + c1.sys - c0.user - c0.sys);
    if (share < 0)
      return -1;
    double waited = bench_now() - start;
    if (share < BENCH_OTHERS_NOTICEABLE)
      return waited;
    if (waited + BENCH_QUIET_WINDOW > max_s)
      return -1;
  }
}
