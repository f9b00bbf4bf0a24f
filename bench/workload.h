/* SPDX-License-Identifier: MIT */
/* The lecture's catalogue of workloads. Each says what it simulates, carries the lecture's sizes
 * and a quick size, prepares and removes what it needs, provides the task and checks the
 * results, so the runner can treat them all alike. */
#ifndef BRIGADE_BENCH_WORKLOAD_H
#define BRIGADE_BENCH_WORKLOAD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "brigade.h"

typedef struct bench_case {
  size_t n;     /* items */
  double param; /* the workload's knob: seconds, bytes, MiB, doubles (see param_fmt) */
} bench_case;

/* What bounds a workload's time on a given machine: the ceiling its rows are compared with
 * (brigade info --limits). */
typedef enum bench_bound {
  BENCH_BOUND_NONE = 0, /* unknown (a user's --task) */
  BENCH_BOUND_CPU,      /* instructions: the ceiling is the cores */
  BENCH_BOUND_LATENCY,  /* waiting: no hardware ceiling, only how many wait at once */
  BENCH_BOUND_FILES,    /* the kernel's file creation and removal */
  BENCH_BOUND_FAULTS,   /* first touch of fresh memory (page faults), then writing it */
  BENCH_BOUND_MEMORY,   /* reading memory: the read bandwidth */
} bench_bound;

typedef struct bench_workload {
  const char *name;
  const char *simulates; /* one line */
  const char *param_fmt; /* printf format for param in case labels, NULL if none */
  bench_case quick;
  bench_case lecture[2];
  size_t nlecture;
  size_t out_size; /* bytes per result */
  /* Prepares a case; *state becomes the task's ctx. NULL: nothing to prepare (ctx = case). */
  int (*setup)(const bench_case *c, void **state, char *err, size_t cap);
  void (*teardown)(void *state);
  bg_task_fn fn;
  /* The items as one array of equal records, passed as the map's `in` (so the procs-copy
   * transport has to send them, as Python's pools pickle them); NULL, or a NULL return: the
   * items are the indices and the task finds its data through the context. */
  const void *(*items)(void *state, const bench_case *c, size_t *in_size);
  /* Checks the results of a complete map; 0, or -1 with a reason. NULL: nothing to check. */
  int (*check)(void *state, const bench_case *c, const void *out, char *err, size_t cap);
  uint64_t (*item_bytes)(const bench_case *c);  /* memory one running item needs, or NULL */
  uint64_t (*setup_bytes)(const bench_case *c); /* memory setup needs, or NULL */
  double (*bytes_read)(const bench_case *c);    /* bytes the map streams from memory, or NULL */
  int blocking;                                 /* items wait (sleep, I/O) rather than compute */
  bench_bound bound;                            /* what limits it (BENCH_BOUND_NONE: unknown) */
  int huge_pages; /* its memory comes on huge pages (MADV_HUGEPAGE): their fault cost applies */
  int foreign;    /* a user's --task: untrusted, so its rows run guarded and supervised */
} bench_workload;

/* All built-in workloads, in the lecture's order. */
size_t bench_workload_count(void);
const bench_workload *bench_workload_at(size_t i);
const bench_workload *bench_workload_find(const char *name);

/* Set by the CLI's SIGINT handler. Tasks that may take long (sleeps, file writes, big fills)
 * check it and fail, so a Ctrl-C ends the map in moments and set-up's files are removed. The
 * one mutable global of the benchmark: a signal handler can reach nothing else. */
extern volatile sig_atomic_t bench_interrupted;

/* Task status for an item abandoned because of Ctrl-C. */
#define BENCH_EINTR 130

extern const bench_workload bench_wl_sleep, bench_wl_prime_fixed, bench_wl_prime_range,
    bench_wl_disk_small, bench_wl_disk_dirs, bench_wl_disk_large, bench_wl_alloc,
    bench_wl_alloc_huge, bench_wl_chunk_mean, bench_wl_vector_mean;

#endif
