/* SPDX-License-Identifier: MIT */
/* What a benchmark run produces: one row per (workload case, approach, worker count), and the
 * explanations computed for each case. Every suite fills one of these; the report formats
 * print it. */
#ifndef BRIGADE_BENCH_RESULT_H
#define BRIGADE_BENCH_RESULT_H

#include <stddef.h>

#include "stats.h"

#define BENCH_MAX_ROWS 512
#define BENCH_MAX_NOTES 128
#define BENCH_NOTE_LEN 640
#define BENCH_SECTION_LEN 64

/* A row whose runs spread by more than this fraction of their median is called noisy. */
#define BENCH_NOISY 0.30

/* Above this efficiency a speedup exceeds its workers: possible (caches), but never shown
 * without a cause. */
#define BENCH_SUPERLINEAR 1.05

typedef struct bench_row {
  char section[BENCH_SECTION_LEN]; /* the case: "prime-range, 1000000 items" */
  const char *workload;            /* "prime-range" */
  const char *backend;             /* "seq", "threads", "openmp" */
  const char *schedule;            /* "auto", "static", ... */
  size_t chunk;                    /* 0: the schedule's default */
  unsigned workers;
  size_t n;           /* items per map */
  bench_summary wall; /* seconds */
  double cpu_s;       /* median CPU time (user + system) of the process per run */
  double sys_share;   /* system time / CPU time */
  double peak_mib;    /* peak resident memory during the case's runs */
  double ns_per_item; /* median wall / n */
  double overhead_ns; /* (workers * wall - seq wall) / n: worker time not spent on items */
  double speedup;     /* seq median / this median */
  double efficiency;  /* speedup / workers */
  size_t chunks;      /* chunks the schedule handed out in the last run */
  int ran_inline;     /* the last run ran on the calling thread only */
  int failed;         /* the map reported failures or its check failed */
  int external;       /* measured by a peer process (--peers): no CPU time or chunks */
  int reference;      /* a ceiling, not an approach (knn's bare sgemms): never 'best' */
  double vs_peer;     /* the best peer's median / this median; 0 without peers */
  double imbalance;   /* the busiest worker's busy time over the mean, minus 1 (last run) */
  unsigned restarts;  /* procs: worker processes started beyond one per worker (last run) */
  /* Trust in the figures (catalogue rows; 0 elsewhere). */
  int others_measured; /* others_cpu could be told (long enough, /proc/stat readable) */
  double others_cpu;   /* share of the machine's CPU other processes took during the timed runs */
  int noisy;           /* the runs spread widely: (max - min) / median above BENCH_NOISY */
  int cpu_unknown;     /* cpu_s cannot be this row's: too short, or above its workers' */
  int suspect;         /* efficiency above BENCH_SUPERLINEAR: a note gives the cause */
  double floor_s;      /* the time this machine's measured limit allows the row; 0: unknown */
  /* A --task row's items that did not succeed, by what became of them (0 elsewhere, where a
   * failure is the check's or Ctrl-C's); first_failed is the lowest such index, -1 if none. */
  size_t n_failed, n_crashed, n_exited, n_timeout, n_overflow, n_not_run;
  long long first_failed;
  /* knn suite only (0 / "" elsewhere). */
  double gflops;   /* 2 nb_txt dim nb_new / median */
  double vs_sgemm; /* gflops / the bare sgemm's on the same product */
  char plan[64];   /* the tile plan: "blocked 504x128, 2 workers, 3.9 MiB" */
  /* A GPU row that cannot run here (no GPU, no CUDA in the build): no figures, a note says
   * why, and unlike a failure it leaves the exit status alone. */
  int unavailable;
  /* GPU rows: seconds per timed run (the mean) of each activity, from the device's events;
   * cuda fills all four, cublas-sgemm gemm_s and h2d_s (0 elsewhere). */
  double h2d_s, gemm_s, select_s, d2h_s;
} bench_row;

typedef struct bench_note {
  char section[BENCH_SECTION_LEN]; /* the case it explains, "" for the whole run */
  char text[BENCH_NOTE_LEN];
} bench_note;

typedef struct bench_result {
  const char *suite;
  int peers; /* peer rows were asked for: the reports add the "vs peer" column */
  bench_row rows[BENCH_MAX_ROWS];
  size_t nrows;
  bench_note notes[BENCH_MAX_NOTES];
  size_t nnotes;
} bench_result;

/* Adds a note to a section (printf-style). Silently drops notes past BENCH_MAX_NOTES. */
void bench_note_add(bench_result *r, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The row of a section with that backend and schedule (and chunk, when nonzero), or NULL. */
const bench_row *bench_find_row(const bench_result *r, const char *section, const char *backend,
                                const char *schedule);

#endif
