/* SPDX-License-Identifier: MIT */
/* The catalogue runner: workload cases x backends x worker counts, with a warm-up, repeated
 * timed runs, CPU time and peak memory, checks of every result, and memory admission before
 * anything big is allocated. */
#ifndef BRIGADE_BENCH_RUNNER_H
#define BRIGADE_BENCH_RUNNER_H

#include "hwlimits.h"
#include "peers.h"
#include "result.h"
#include "trace.h"
#include "workload.h"

#define BENCH_MAX_BACKENDS 8
#define BENCH_MAX_WORKER_COUNTS 16
/* Runs shorter than this (seconds) are too short for their CPU time to say whether the items
 * compute or wait: no explanation or worker count is drawn from it. */
#define BENCH_CPU_MIN_WALL 2e-3

/* Upper bound on workers when auto raises them for blocked items. */
#define BENCH_BLOCKING_MAX_WORKERS 256u

typedef struct bench_run_opts {
  const char *backends[BENCH_MAX_BACKENDS]; /* parallel approaches; seq always runs first */
  size_t nbackends;
  unsigned workers[BENCH_MAX_WORKER_COUNTS]; /* 0 = auto */
  size_t nworkers;
  unsigned repeat;
  int lecture;                /* the lecture's sizes instead of the quick ones */
  size_t n_override;          /* 0: the workload's own item counts */
  double param;               /* < 0: the workload's own knob (seconds, bytes, MiB, doubles) */
  int progress;               /* a progress bar on stderr */
  int insights;               /* a note per row with each worker's items, busy, idle, start-up */
  unsigned cores;             /* workers one per core means; 0: read from the topology */
  double timeout;             /* --task: seconds an item may run before it is killed; 0: none */
  const bench_peers *peers;   /* run the Python frameworks on each case too; NULL: no */
  const bench_limits *limits; /* this machine's limits, to compare rows with; NULL: unknown */
  bench_trace *trace;         /* --trace: each row's last timed run goes here; NULL: none */
  /* --quiet-wait: a row that other processes contended is run again once they have stopped,
   * waiting at most this many seconds for that (0: never). The re-run is kept when it was
   * the less contended of the two; it is not traced. */
  double quiet_wait;
  /* Under mpirun: this process's rank and the number of ranks (0 and 1 otherwise). Every
   * rank runs the mpi rows together; only rank 0 runs seq and the other backends, and only
   * its result is complete. */
  unsigned rank, ranks;
} bench_run_opts;

/* Runs every case of one workload and appends rows and explanations to res. Returns 0;
 * BG_ENOMEM when memory available cannot hold even one item or the set-up (err says how much
 * is needed); BG_ECANCELED after a Ctrl-C (set-up's files are removed first); another BG_E*
 * when a pool cannot be created. A failing item or check is not an error: the row is marked
 * failed and a note says why. */
int bench_run_workload(const bench_run_opts *o, const bench_workload *w, bench_result *res,
                       char *err, size_t cap);

/* Appends the explanations of one case, computed from its rows and, where @lim is not NULL,
 * this machine's measured limits. */
void bench_explain(bench_result *res, const bench_workload *w, const bench_case *c,
                   const char *section, unsigned cores, const bench_limits *lim);

#endif
