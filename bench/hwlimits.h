/* SPDX-License-Identifier: MIT */
/* The machine's own limits, measured: what bounds each kind of work the catalogue runs (memory
 * bandwidth, first-touch page faults, file creation, fork, waking threads, sgemm). A row's time
 * means something only beside what this machine can do at best. Measured in a few seconds and
 * cached per machine, since they change with the hardware, not from run to run. */
#ifndef BRIGADE_BENCH_HWLIMITS_H
#define BRIGADE_BENCH_HWLIMITS_H

#include <stdio.h>

/* Every figure is > 0 when measured, 0 when it could not be (the reason is in `skipped`). */
typedef struct bench_limits {
  char machine[256];      /* what the cache is keyed by: host, CPU model, CPUs, memory */
  double measured_at;     /* seconds since the epoch */
  unsigned workers;       /* threads of the "all" figures: the default worker count */
  double read_gbs_1;      /* memory read bandwidth, GB/s, one thread */
  double read_gbs_all;    /* ... all workers */
  double write_gbs_1;     /* memory write bandwidth, GB/s, one thread */
  double write_gbs_all;   /* ... all workers */
  double fault_us_4k;     /* first touch of fresh memory, per 4 KiB page */
  double fault_us_4k_thp; /* the same per 4 KiB with MADV_HUGEPAGE (2 MiB pages) */
  double file_us_1;       /* create + write 200 B + close + unlink, one thread */
  double file_us_shared;  /* per file per worker, all workers in one folder */
  double file_us_private; /* per file per worker, one folder per worker */
  double fork_us;         /* fork + _exit + waitpid of a child */
  double wake_us;         /* waking parked pool threads and waiting for them */
  double sgemm_gflops;    /* OpenBLAS sgemm, 1024^3, all workers */
  double others_cpu;      /* share of the CPU other processes took while measuring; -1: unknown */
  char skipped[256];      /* the probes that could not run, and why */
} bench_limits;

/* Measures everything (a few seconds; uses at most a quarter of the memory available). Returns
 * 0, or -1 with the reason in err when nothing could be measured. */
int bench_limits_measure(bench_limits *l, char *err, size_t cap);

/* This machine's key, as measure writes into l->machine. */
void bench_limits_machine(char *buf, size_t cap);

/* The cache file: $XDG_CACHE_HOME/brigade/limits.json or ~/.cache/brigade/limits.json. Returns
 * 0, or -1 when neither variable is set. */
int bench_limits_cache_path(char *buf, size_t cap);

/* Reads a cache written by bench_limits_save for this machine. Returns 0, or -1 when the file
 * is missing, damaged, of another machine or of another schema (then: measure again). */
int bench_limits_load(const char *path, bench_limits *l);

/* Writes the cache atomically, creating its folder. Returns 0 or -1 with the reason in err. */
int bench_limits_save(const char *path, const bench_limits *l, char *err, size_t cap);

/* This machine's limits for a command: from the cache unless @remeasure; else, when @measure,
 * measured now (telling @say, a stream such as stderr, that it takes a few seconds) and cached.
 * Returns 0 with *cached set; 1 when there are none (no cache and !measure); -1 when measuring
 * failed, with the reason in err. A cache that cannot be written is not a failure: its reason
 * goes to @say. */
int bench_limits_get(bench_limits *l, int measure, int remeasure, int *cached, FILE *say, char *err,
                     size_t cap);

/* The figures as the members of a JSON object (no braces), as the cache and --json write them. */
void bench_limits_json(FILE *f, const bench_limits *l);

/* The figures as text, one per line, each with what it bounds. */
void bench_limits_text(FILE *f, const bench_limits *l);

#endif
