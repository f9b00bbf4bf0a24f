/* SPDX-License-Identifier: MIT */
/* Shared arrays: procs workers write results into one in place (no arena, no copy back) and
 * read inputs from one; a file-backed array keeps what a run wrote for the next run; a file
 * shrunk under a map stops it with BG_ERANGE instead of a storm of SIGBUS deaths; sizes that
 * cannot fit and paths that cannot work are refused up front. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

static int cube(void *out, const void *in, size_t i, void *ctx) {
  (void)ctx;
  uint64_t x = in ? *(const uint64_t *)in : i;
  *(uint64_t *)out = x * x * x;
  return i == 77 ? 9 : 0; /* one failure: its result is still written, as on threads */
}

/* Runs fn on a two-worker pool of @backend over n items into out. */
static int map_with(const char *backend, bg_task_fn fn, void *ctx, const uint64_t *in,
                    uint64_t *out, size_t n, bg_map_report_t *r) {
  bg_pool_t *p = tk_pool(backend, 2);
  bg_map_desc_t d = tk_desc(fn, ctx, n, NULL, 0);
  d.in = in;
  d.in_size = in ? sizeof *in : 0;
  d.out = out;
  d.out_size = sizeof *out;
  int rc = bg_map(p, &d, r);
  bg_pool_destroy(p);
  return rc;
}

static void map_into(const char *backend, const uint64_t *in, uint64_t *out, size_t n) {
  bg_map_report_t r;
  assert_int_equal(map_with(backend, cube, NULL, in, out, n, &r), BG_ETASK);
  assert_int_equal(r.n_failed, 1);
  assert_int_equal(r.first_failed, 77);
}

/* Fails unless the worker writes item i at base + i: its results go where the caller put them. */
static int written_in_place(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  return out == (uint64_t *)ctx + i ? 0 : 1;
}

static int run_where(uint64_t *out, size_t n, uint64_t *base) {
  return map_with("procs", written_in_place, base, NULL, out, n, NULL);
}

static void test_anonymous(void **st) {
  (void)st;
  size_t n = 300000;
  bg_shared_t *in_s, *out_s;
  assert_int_equal(bg_shared_create(n * 8, NULL, &in_s), 0);
  assert_int_equal(bg_shared_create(n * 8, NULL, &out_s), 0);
  assert_true(bg_shared_size(out_s) == n * 8);
  uint64_t *in = bg_shared_data(in_s), *out = bg_shared_data(out_s);
  assert_true(((uintptr_t)out & 4095) == 0);
  for (size_t i = 0; i < n; i++)
    in[i] = i + 3;
  const char *backends[] = {"procs", "procs-copy", "threads"};
  for (size_t b = 0; b < 3; b++) {
    memset(out, 0, n * 8);
    map_into(backends[b], in, out, n);
    for (size_t i = 0; i < n; i++)
      if (out[i] != (i + 3) * (i + 3) * (i + 3))
        fail_msg("%s: item %zu is %llu", backends[b], i, (unsigned long long)out[i]);
  }
  /* A slice of a shared array is shared too. */
  memset(out, 0, n * 8);
  map_into("procs", NULL, out + 10, n - 10);
  assert_true(out[10 + 5] == 125 && out[9] == 0);
  /* In place means the workers' out pointers are the array's own addresses; results in
   * private memory go through the arena instead. */
  assert_int_equal(run_where(out, n, out), 0);
  uint64_t *priv = malloc(n * 8);
  assert_int_equal(run_where(priv, n, priv), BG_ETASK);
  free(priv);
  assert_int_equal(bg_shared_sync(out_s), 0);
  bg_shared_destroy(in_s);
  bg_shared_destroy(out_s);
  bg_shared_destroy(NULL);
  errno = 0;
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static void test_file_backed(void **st) {
  (void)st;
  char dir[] = "/tmp/bg-shared-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/results.bin", dir);
  size_t n = 5000;
  bg_shared_t *s;
  assert_int_equal(bg_shared_create(n * 8, path, &s), 0);
  map_into("procs", NULL, bg_shared_data(s), n);
  assert_int_equal(bg_shared_sync(s), 0);
  bg_shared_destroy(s);
  /* A later run maps the file as it is: the results are there without a load or a copy. */
  assert_int_equal(bg_shared_create(0, path, &s), 0);
  assert_true(bg_shared_size(s) == n * 8);
  const uint64_t *r = bg_shared_data(s);
  assert_true(r[20] == 8000 && r[n - 1] == (uint64_t)(n - 1) * (n - 1) * (n - 1));
  bg_shared_destroy(s);
  /* Asking for a larger size grows the file; the old bytes stay, the new ones read zero. */
  assert_int_equal(bg_shared_create(2 * n * 8, path, &s), 0);
  r = bg_shared_data(s);
  assert_true(r[20] == 8000 && r[n + 1] == 0);
  bg_shared_destroy(s);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_true((size_t)sb.st_size == 2 * n * 8);
  unlink(path);
  rmdir(dir);
}

/* Item 0 truncates the file behind the results (ctx: its path) and then writes its result:
 * from then on every touch of the array is a SIGBUS. */
static int truncate_first(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  if (i == 0 && truncate(ctx, 0) != 0)
    return 1;
  *(uint64_t *)out = i + 1;
  return 0;
}

/* What a map into a shrunk file must say: BG_ERANGE, shrunk, the breaker tripped after few
 * processes, and every item either done before the shrink or failed as crashed with SIGBUS. */
static void expect_shrunk(const char *backend, int rc, const bg_map_report_t *r,
                          const bg_item_status_t *status, size_t n) {
  assert_int_equal(rc, BG_ERANGE);
  assert_int_equal(r->shrunk, 1);
  assert_int_equal(r->tripped, 1);
  assert_int_equal(r->n_skipped, 0);
  assert_int_equal(r->n_ok + r->n_failed, n);
  assert_true(r->n_tripped > 0);
  assert_true(r->workers_started <= 4);
  for (size_t i = 0; i < n; i++) {
    if (status[i].state == BG_ITEM_OK)
      continue;
    if (status[i].state != BG_ITEM_CRASHED || status[i].code != SIGBUS)
      fail_msg("%s: item %zu: %s, code %d", backend, i, bg_item_state_name(status[i].state),
               status[i].code);
  }
}

static void test_file_shrunk(void **st) {
  (void)st;
  char dir[] = "/tmp/bg-shared-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/results.bin", dir);
  size_t n = 100000;
  bg_item_status_t *status = malloc(n * sizeof *status);
  const char *backends[] = {"procs", "procs-copy"};
  for (size_t b = 0; b < 2; b++) {
    bg_shared_t *s;
    assert_int_equal(bg_shared_create(n * 8, path, &s), 0);
    bg_pool_t *p = tk_pool(backends[b], 2);
    bg_map_desc_t d = tk_desc(truncate_first, path, n, bg_shared_data(s), 8);
    d.status = status;
    bg_map_report_t r;
    /* Shrunk by a task during the map. The results must not be read: they are gone. */
    int rc = bg_map(p, &d, &r);
    expect_shrunk(backends[b], rc, &r, status, n);
    /* A shm worker writes its result into the file itself: item 0's worker dies of the
     * SIGBUS, and says so. A copy worker's results reach the file through the caller. */
    if (b == 0) {
      assert_int_equal(status[0].state, BG_ITEM_CRASHED);
      assert_int_equal(status[0].code, SIGBUS);
      assert_int_equal(status[0].attempts, 1);
      assert_true(r.n_crashed >= 1);
    }
    /* Shrunk before the map: nothing runs, nothing is forked. */
    d.fn = cube;
    rc = bg_map(p, &d, &r);
    expect_shrunk(backends[b], rc, &r, status, n);
    assert_int_equal(r.n_tripped, n);
    assert_int_equal(r.workers_started, 0);
    assert_int_equal(status[n - 1].attempts, 0);
    bg_pool_destroy(p);
    bg_shared_destroy(s);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  }
  free(status);
  unlink(path);
  rmdir(dir);
}

static void test_refusals(void **st) {
  (void)st;
  bg_shared_t *s = NULL;
  assert_int_equal(bg_shared_create(8, NULL, NULL), BG_EINVAL);
  assert_int_equal(bg_shared_create(0, NULL, &s), BG_EINVAL);
  assert_int_equal(bg_shared_create(SIZE_MAX / 2, NULL, &s), BG_ENOMEM);
  assert_int_equal(bg_shared_create(8, "/nonexistent-dir/x.bin", &s), BG_ENOENT);
  /* Size 0 means an existing file: a missing one is not created empty. */
  assert_int_equal(bg_shared_create(0, "/tmp/bg-shared-missing.bin", &s), BG_ENOENT);
  assert_int_equal(access("/tmp/bg-shared-missing.bin", F_OK), -1);
  char dir[] = "/tmp/bg-shared-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/huge.bin", dir);
  assert_int_equal(bg_shared_create((size_t)1 << 52, path, &s), BG_ERANGE);
  unlink(path);
  rmdir(dir);
  assert_null(s);
  assert_null(bg_shared_data(NULL));
  assert_true(bg_shared_size(NULL) == 0);
  assert_int_equal(bg_shared_sync(NULL), BG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_anonymous),
      cmocka_unit_test(test_file_backed),
      cmocka_unit_test(test_file_shrunk),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
