/* SPDX-License-Identifier: MIT */
/* The futures and cache notes of the overhead suite. Each measurement is the median of a few
 * runs taken in the same stretch of time, so the ratios hold on a noisy machine. */
#define _GNU_SOURCE
#include "comforts.h"
#include "stats.h"
#include "workloads/prime.h"

#include "brigade.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUNS 5
/* Each cache run maps half a millisecond per item three times. */
#define CACHE_RUNS 3

static int trivial(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i;
  return 0;
}

/* Seconds to submit @n trivial futures and wait for all of them; negative on failure. */
static double futures_once(const char *backend, unsigned workers, size_t n, bg_future_t **fs) {
  bg_executor_opts_t o;
  bg_executor_opts_init(&o);
  o.backend = backend;
  o.workers = workers;
  bg_executor_t *ex;
  if (bg_executor_create(&o, &ex) != 0)
    return -1;
  size_t made = 0;
  double t0 = bench_now();
  while (made < n && bg_submit(ex, trivial, NULL, NULL, 0, sizeof(uint64_t), &fs[made]) == 0)
    made++;
  int rc = made == n ? bg_future_wait_all(fs, n, BG_WAIT_FOREVER) : -1;
  double t = bench_now() - t0;
  for (size_t i = 0; i < made; i++)
    bg_future_release(fs[i]);
  bg_executor_destroy(ex, 0);
  return rc == 0 ? t : -1;
}

static double map_once(bg_pool_t *pool, const bg_map_desc_t *d) {
  double t0 = bench_now();
  int rc = bg_map(pool, d, NULL);
  return rc == 0 ? bench_now() - t0 : -1;
}

void bench_note_futures(bench_result *res, unsigned workers, size_t n) {
  bg_future_t **fs = malloc(n * sizeof *fs);
  uint64_t *out = calloc(n, sizeof *out);
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = "threads";
  po.workers = workers;
  bg_pool_t *pool = NULL;
  if (!fs || !out || bg_pool_create(&po, &pool) != 0)
    goto done;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = trivial;
  d.n = n;
  d.out = out;
  d.out_size = sizeof *out;
  double t[3][RUNS];
  static const char *const kinds[2] = {"threads", "procs"};
  for (int r = 0; r < RUNS; r++) {
    for (int k = 0; k < 2; k++)
      if ((t[k][r] = futures_once(kinds[k], workers, n, fs)) < 0)
        goto done;
    if ((t[2][r] = map_once(pool, &d)) < 0)
      goto done;
  }
  double med[3];
  for (int k = 0; k < 3; k++)
    med[k] = bench_summarise(t[k], RUNS).median / (double)n;
  bench_note_add(res, "",
                 "futures: %zu trivial tasks submitted one by one and waited for: %.2f us each on "
                 "threads, %.1f us on procs (a socket round trip each), against %.0f ns per item "
                 "of one bg_map: submit futures for tasks of a millisecond or more, map the rest",
                 n, med[0] * 1e6, med[1] * 1e6, med[2] * 1e9);
done:
  bg_pool_destroy(pool);
  free(out);
  free(fs);
}

void bench_note_cache(bench_result *res, unsigned workers, size_t n) {
  char dir[4096];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/brigade-cache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  uint8_t *flags = calloc(n, 1);
  /* A prime ten thousand times the lecture's: about half a millisecond of trial division per
   * item, the kind of task worth memoizing. */
  unsigned long number = 9999999967ul;
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = "threads";
  po.workers = workers;
  bg_pool_t *pool = NULL;
  bg_cache_t *cache = NULL;
  int made = flags && mkdtemp(dir) != NULL;
  if (!made)
    goto done;
  if (bg_pool_create(&po, &pool) != 0 || bg_cache_open(dir, 0, &cache) != 0)
    goto done;
  bg_memo_t memo = {.cache = cache,
                    .task = "prime-fixed/v1",
                    .fn = bench_prime_fixed,
                    .ctx = &number,
                    .out_size = 1};
  bg_map_desc_t bare, cached;
  bg_map_desc_init(&bare);
  bare.fn = bench_prime_fixed;
  bare.ctx = &number;
  bare.n = n;
  bare.out = flags;
  bare.out_size = 1;
  cached = bare;
  cached.fn = bg_memo_task;
  cached.ctx = &memo;
  double t[3][CACHE_RUNS];
  for (int r = 0; r < CACHE_RUNS; r++) {
    if (bg_cache_clear(cache) != 0 || (t[0][r] = map_once(pool, &bare)) < 0 ||
        (t[1][r] = map_once(pool, &cached)) < 0 || (t[2][r] = map_once(pool, &cached)) < 0)
      goto done;
  }
  double med[3];
  for (int k = 0; k < 3; k++)
    med[k] = bench_summarise(t[k], CACHE_RUNS).median / (double)n * 1e6;
  bench_note_add(res, "",
                 "cache: %zu trial divisions of %lu on %u threads workers, wall time per item: "
                 "%.1f us computed, %.1f us through an empty cache (miss, compute, store), "
                 "%.2f us from the cache (hit): %.0fx faster; a store costs %.0f us, so memoize "
                 "tasks that cost much more than that",
                 n, number, bg_pool_workers(pool), med[0], med[1], med[2], med[0] / med[2],
                 med[1] - med[0]);
done:
  bg_cache_close(cache);
  /* The folder is this run's alone: it goes entirely, lock file included. */
  if (made)
    bg_cache_remove(dir);
  bg_pool_destroy(pool);
  free(flags);
}
