/* SPDX-License-Identifier: MIT */
/* The overhead suite: what scheduling costs per item with trivial items, what one small map
 * costs on each kind of worker (map-cost), and what speedup each schedule gets on the lecture's
 * equal (prime-fixed) and unequal (prime-range) CPU work. */
#ifndef BRIGADE_BENCH_OVERHEAD_H
#define BRIGADE_BENCH_OVERHEAD_H

#include <stddef.h>

#include "peers.h"
#include "result.h"

typedef struct bench_overhead_opts {
  unsigned workers;  /* 0: the default worker count */
  unsigned repeat;   /* timed runs per case, after one warm-up */
  size_t n_trivial;  /* items in the overhead section */
  size_t n_fixed;    /* items of prime-fixed */
  size_t n_messages; /* items of the procs-messages section, one message each */
  size_t n_range;    /* items of prime-range */
  size_t n_cache;    /* items of the cache note (half a millisecond each) */
  size_t n_small;    /* items of each map of the map-cost section */
  unsigned maps;     /* maps in a row in the map-cost section, each timed */
  size_t n_items;    /* items of the procs-items section (both procs modes, one map) */
  int progress;      /* print a progress line on stderr */
  /* --peers python: Python's reused multiprocessing.Pool joins the map-cost section; or NULL */
  const bench_peers *peers;
} bench_overhead_opts;

/* Runs the suite. Returns 0, or a negative BG_E* when a pool cannot be created or a map fails
 * (the failing case is named in *what). */
int bench_overhead(const bench_overhead_opts *o, bench_result *res, const char **what);

#endif
