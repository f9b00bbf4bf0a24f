/* SPDX-License-Identifier: MIT */
/* What the memo cache's store and lookup cost alone, with no task around them: N results of 8
 * bytes keyed by 8-byte items are stored into an empty folder, then all looked up again. It
 * prints wall time per store and per hit and what the folder takes on disk (st_blocks), for
 * docs/PERFORMANCE.md; run it under `valgrind --tool=callgrind` for instruction counts, which
 * hold still on a shared machine where times do not. */
#define _GNU_SOURCE
#include "brigade.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The bytes the folder's files occupy on disk: what a store really costs the disk. */
static unsigned long long disk_bytes(const char *dir) {
  DIR *d = opendir(dir);
  unsigned long long sum = 0;
  if (!d)
    return 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
      sum += (unsigned long long)st.st_blocks * 512;
  }
  closedir(d);
  return sum;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s EMPTY-OR-NEW-FOLDER N\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  uint64_t n = strtoull(argv[2], NULL, 10);
  bg_cache_t *c = NULL;
  int rc = bg_cache_open(dir, 0, &c);
  if (rc != 0) {
    fprintf(stderr, "bg_cache_open: %s\n", bg_strerror(rc));
    return 1;
  }
  double t0 = now_s();
  for (uint64_t k = 0; k < n && rc == 0; k++) {
    uint64_t v = k * 2654435761u;
    rc = bg_cache_put(c, "cost/v1", &k, sizeof k, &v, sizeof v);
  }
  double t1 = now_s();
  for (uint64_t k = 0; k < n && rc == 0; k++) {
    uint64_t v = 0;
    rc = bg_cache_get(c, "cost/v1", &k, sizeof k, &v, sizeof v);
    if (rc == 0 && v != k * 2654435761u)
      rc = BG_EINVAL;
  }
  double t2 = now_s();
  bg_cache_stats_t s;
  bg_cache_stats(c, &s);
  bg_cache_close(c);
  if (rc != 0) {
    fprintf(stderr, "cache: %s\n", bg_strerror(rc));
    return 1;
  }
  printf("%llu stores: %.2f us each; %llu hits: %.2f us each; on disk %llu bytes, "
         "stats.bytes %llu\n",
         (unsigned long long)n, (t1 - t0) / (double)n * 1e6, (unsigned long long)n,
         (t2 - t1) / (double)n * 1e6, disk_bytes(dir), (unsigned long long)s.bytes);
  return 0;
}
