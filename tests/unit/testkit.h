/* SPDX-License-Identifier: MIT */
/* What the unit tests of pools, processes and caches share: a pool in one call, a map
 * description in one call, the check that no child process was left behind, the address
 * space mapped, a scratch folder and a clock. Static inline,
 * so a test that uses some of them is not warned about the others. Include after cmocka.h. */
#ifndef BRIGADE_TESTKIT_H
#define BRIGADE_TESTKIT_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "brigade.h"

/* 1 in a ThreadSanitizer build (gcc says so with __SANITIZE_THREAD__, clang with
 * __has_feature), which cannot follow threads started in a child forked from a multi-threaded
 * process. */
#if defined(__SANITIZE_THREAD__)
#define TK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TK_TSAN 1
#endif
#endif
#ifndef TK_TSAN
#define TK_TSAN 0
#endif

/* A monotonic clock in nanoseconds, for tasks that must take a while (never to time a test). */
static inline uint64_t tk_now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* An allocator for a pool (bg_allocator_t{tk_count_alloc, tk_count_free, &counting}) that
 * counts the bytes it has out and their peak, to hold a plan to its budget. */
typedef struct tk_counting {
  size_t live, peak;
} tk_counting;

static inline void *tk_count_alloc(size_t n, void *ud) {
  tk_counting *c = ud;
  size_t *p = malloc(n + 16);
  if (!p)
    return NULL;
  p[0] = n;
  c->live += n;
  c->peak = c->live > c->peak ? c->live : c->peak;
  return p + 2;
}

static inline void tk_count_free(void *p, void *ud) {
  tk_counting *c = ud;
  if (!p)
    return;
  size_t *h = (size_t *)p - 2;
  c->live -= h[0];
  free(h);
}

static inline bg_pool_t *tk_pool(const char *backend, unsigned workers) {
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = backend;
  o.workers = workers;
  bg_pool_t *p = NULL;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  return p;
}

/* A map of @n items (indices; set in and in_size for records) with results of @out_size
 * bytes at @out, or none when @out is NULL. */
static inline bg_map_desc_t tk_desc(bg_task_fn fn, void *ctx, size_t n, void *out,
                                    size_t out_size) {
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = fn;
  d.ctx = ctx;
  d.n = n;
  d.out = out;
  d.out_size = out ? out_size : 0;
  return d;
}

/* No child of this process is left, running or zombie. */
static inline void tk_assert_no_children(void) {
  errno = 0;
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* The address space this process has mapped now (VmSize), in bytes: what RLIMIT_AS counts. */
static inline uint64_t tk_vm_size(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  assert_non_null(f);
  unsigned long long pages = 0;
  assert_int_equal(fscanf(f, "%llu", &pages), 1);
  fclose(f);
  return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Creates a fresh folder $TMPDIR/<prefix>-XXXXXX (or under /tmp) into dir; 0 or -1, for a
 * cmocka group setup. */
static inline int tk_mkdtemp(char *dir, size_t cap, const char *prefix) {
  snprintf(dir, cap, "%s/%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", prefix);
  return mkdtemp(dir) ? 0 : -1;
}

/* Removes dir and everything in it, read-only folders too; 0 or -1, for a group teardown. */
static inline int tk_rmtree(const char *dir) {
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", dir, dir);
  return system(cmd) == 0 ? 0 : -1;
}

#endif
