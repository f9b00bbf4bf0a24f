/* SPDX-License-Identifier: MIT */
/* What the journal costs (issue 19's targets, for docs/PERFORMANCE.md), each figure a ratio or
 * a rate taken in one run:
 *   1. a map of 50 us items with and without a journal (no sync; a sync every 10 ms), the
 *      three interleaved and repeated, medians compared;
 *   2. records per second for 8-byte results of a trivial task, no sync;
 *   3. the cost per record of a sync after every group commit;
 *   4. the replay of a 1,000,000-item journal: bg_journal_open, then a map that takes every
 *      item from it.
 *   5. with BRIGADE and PLUGIN given: `brigade map --task PLUGIN:digit_sum --n 100M`, its map
 *      as it reports it and its whole process (start, plug-in, results allocated, exit), against
 *      bg_map of the same function through the library into a fresh array, interleaved.
 * usage: bench_journal [DIR] [REPEATS] [BRIGADE PLUGIN]   (DIR: where the journals go, default
 * "."; the disk there is what the sync figures measure) */
#define _GNU_SOURCE
#include "brigade.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Busy for ctx's nanoseconds: an item of a fixed duration, whatever the clock speed. */
static int busy(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  uint64_t end = now_ns() + *(const uint64_t *)ctx;
  while (now_ns() < end)
    ;
  *(uint64_t *)out = i;
  return 0;
}

static int trivial(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i * 3;
  return 0;
}

static const char *dir = ".";

/* One map of n items of fn over a fresh journal of @sync (-1: no journal); seconds. */
static double timed_map(bg_pool_t *p, bg_task_fn fn, void *ctx, size_t n, uint64_t *out, int sync,
                        bg_journal_info_t *info) {
  char path[4096];
  snprintf(path, sizeof path, "%s/bench.journal", dir);
  bg_journal_t *j = NULL;
  if (sync >= 0) {
    bg_journal_opts_t o;
    bg_journal_opts_init(&o);
    o.task = "bench";
    o.n = n;
    o.out_size = 8;
    o.sync = sync;
    o.flags = BG_JOURNAL_TRUNCATE;
    char msg[512];
    if (bg_journal_open(path, &o, &j, msg, sizeof msg) != 0) {
      fprintf(stderr, "bench_journal: %s\n", msg);
      exit(1);
    }
  }
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = fn;
  d.ctx = ctx;
  d.n = n;
  d.out = out;
  d.out_size = 8;
  d.journal = j;
  uint64_t t0 = now_ns();
  int rc = bg_map(p, &d, NULL);
  double s = (double)(now_ns() - t0) / 1e9;
  if (rc != 0) {
    fprintf(stderr, "bench_journal: the map failed: %s\n", bg_strerror(rc));
    exit(1);
  }
  if (j) {
    if (info)
      bg_journal_info(j, info);
    bg_journal_close(j);
  }
  return s;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 1 and 3: 50 us items, without a journal and with each sync policy, interleaved. */
static void item_overhead(bg_pool_t *p, int reps) {
  enum { N = 20000, POLICIES = 4 };
  static const char *const names[POLICIES] = {
      "no journal", "journal, no sync", "journal, sync every 10 ms", "journal, sync every commit"};
  static const int sync[POLICIES] = {-1, BG_JOURNAL_SYNC_NONE, BG_JOURNAL_SYNC_INTERVAL,
                                     BG_JOURNAL_SYNC_EVERY};
  uint64_t item_ns = 50000, *out = malloc(N * sizeof *out);
  double t[POLICIES][64];
  bg_journal_info_t info[POLICIES] = {0};
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < POLICIES; k++)
      t[k][r] = timed_map(p, busy, &item_ns, N, out, sync[k], &info[k]);
  printf("1. %d items of 50 us on %u threads, median of %d interleaved runs:\n", N,
         bg_pool_workers(p), reps);
  double base = median(t[0], reps);
  for (int k = 0; k < POLICIES; k++) {
    double m = median(t[k], reps);
    printf("   %-28s %8.4f s  %+6.2f%%", names[k], m, (m / base - 1) * 100);
    if (k > 0)
      printf("  (%llu commits, %llu syncs in the last run)", (unsigned long long)info[k].commits,
             (unsigned long long)info[k].syncs);
    printf("\n");
  }
  double every = median(t[3], reps);
  printf("3. a sync after every commit: %.1f us more per record than no journal\n",
         (every - base) / N * 1e6);
  free(out);
}

/* 2: records per second of a trivial task. */
static void throughput(bg_pool_t *p, int reps) {
  enum { N = 2000000 };
  uint64_t *out = malloc(N * sizeof *out);
  double with[64], without[64];
  for (int r = 0; r < reps; r++) {
    without[r] = timed_map(p, trivial, NULL, N, out, -1, NULL);
    with[r] = timed_map(p, trivial, NULL, N, out, BG_JOURNAL_SYNC_NONE, NULL);
  }
  double w = median(with, reps), wo = median(without, reps);
  printf("2. %d trivial items with 8-byte results: %.3f s with a journal (no sync), %.3f s "
         "without: %.2f million records/s\n",
         N, w, wo, N / w / 1e6);
  free(out);
}

/* 4: replaying a journal of 1,000,000 records. */
static void replay(bg_pool_t *p) {
  enum { N = 1000000 };
  uint64_t *out = malloc(N * sizeof *out);
  timed_map(p, trivial, NULL, N, out, BG_JOURNAL_SYNC_NONE, NULL);
  char path[4096], msg[512];
  snprintf(path, sizeof path, "%s/bench.journal", dir);
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.task = "bench";
  o.n = N;
  o.out_size = 8;
  bg_journal_t *j;
  uint64_t t0 = now_ns();
  if (bg_journal_open(path, &o, &j, msg, sizeof msg) != 0) {
    fprintf(stderr, "bench_journal: %s\n", msg);
    exit(1);
  }
  uint64_t t1 = now_ns();
  memset(out, 0, N * sizeof *out);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = trivial;
  d.n = N;
  d.out = out;
  d.out_size = 8;
  d.journal = j;
  bg_map_report_t r;
  int rc = bg_map(p, &d, &r);
  uint64_t t2 = now_ns();
  bg_journal_close(j);
  int right = rc == 0 && r.n_replayed == N && out[N - 1] == (uint64_t)(N - 1) * 3;
  printf("4. replay of a %d-record journal: open %.3f s, then a map taking every item from "
         "it %.3f s (total %.3f s)%s\n",
         N, (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9, (double)(t2 - t0) / 1e9,
         right ? "" : "  WRONG RESULT");
  unlink(path);
  free(out);
}

/* 5: the CLI against the library, the same function, the same pool size. */
static void cli_vs_library(bg_pool_t *p, int reps, const char *brigade, const char *plugin) {
  enum { N = 100000000 };
  void *h = dlopen(plugin, RTLD_NOW);
  bg_task_fn fn = h ? (bg_task_fn)(uintptr_t)dlsym(h, "digit_sum") : NULL;
  uint64_t *out = malloc((size_t)N * sizeof *out);
  if (!fn || !out) {
    fprintf(stderr, "bench_journal: cannot load digit_sum from '%s'\n", plugin);
    exit(1);
  }
  char task[4200], workers[16];
  snprintf(task, sizeof task, "%s:digit_sum", plugin);
  snprintf(workers, sizeof workers, "%u", bg_pool_workers(p));
  char *args[] = {(char *)brigade, "map",     "--task",    task,    "--n",           "100M",
                  "--backend",     "threads", "--workers", workers, "--no-progress", NULL};
  extern char **environ;
  char errpath[4200];
  snprintf(errpath, sizeof errpath, "%s/bench-map.err", dir);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  double lib[64], cli[64], cli_map[64];
  free(out);
  for (int r = 0; r < reps; r++) {
    /* A fresh array each time, as a program has: its page faults are part of the map. */
    out = malloc((size_t)N * sizeof *out);
    lib[r] = timed_map(p, fn, NULL, N, out, -1, NULL);
    free(out);
    uint64_t t0 = now_ns();
    pid_t pid;
    int st = 1;
    if (posix_spawn(&pid, brigade, &fa, NULL, args, environ) != 0 || waitpid(pid, &st, 0) != pid ||
        st != 0) {
      fprintf(stderr, "bench_journal: '%s map' failed\n", brigade);
      exit(1);
    }
    cli[r] = (double)(now_ns() - t0) / 1e9;
    /* "brigade map: N of N items ok; 1.234 s": the map's own time. */
    FILE *f = fopen(errpath, "r");
    char line[512] = "";
    const char *semi = f && fgets(line, sizeof line, f) ? strrchr(line, ';') : NULL;
    cli_map[r] = semi ? atof(semi + 1) : 0;
    if (f)
      fclose(f);
  }
  posix_spawn_file_actions_destroy(&fa);
  unlink(errpath);
  double l = median(lib, reps), c = median(cli, reps), cm = median(cli_map, reps);
  printf("5. digit_sum over %d items on %s threads, medians: library %.3f s; `brigade map`'s "
         "map %.3f s (%+.1f%%), its whole process %.3f s (%+.1f%%)\n",
         N, workers, l, cm, (cm / l - 1) * 100, c, (c / l - 1) * 100);
  dlclose(h);
}

int main(int argc, char **argv) {
  if (argc > 1)
    dir = argv[1];
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  if (reps < 1 || reps > 64 || argc == 4 || argc > 5) {
    fprintf(stderr, "usage: bench_journal [DIR] [REPEATS 1..64] [BRIGADE PLUGIN]\n");
    return 2;
  }
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = "threads";
  bg_pool_t *p;
  if (bg_pool_create(&po, &p) != 0)
    return 1;
  item_overhead(p, reps);
  throughput(p, reps);
  replay(p);
  if (argc == 5)
    cli_vs_library(p, reps, argv[3], argv[4]);
  bg_pool_destroy(p);
  return 0;
}
