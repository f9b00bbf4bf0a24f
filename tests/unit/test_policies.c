/* SPDX-License-Identifier: MIT */
/* A map's failure policies (version 7 of the description): halting after N failures, retries
 * limited to some causes, and a timeout that is a percentage of the median item time. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include "testkit.h"

/* Shared with forked workers: how many times each item ran. */
enum { N = 400, HALT_N = 4000 };
typedef struct counts {
  _Atomic unsigned runs[HALT_N];
} counts;

static counts *shared_counts(void) {
  counts *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(c != MAP_FAILED);
  return c;
}

static int is_persistent(const char *backend) {
  return strcmp(backend, "procs-persistent") == 0;
}

/* The context: the counts' address travels as bytes (ctx_size), so that procs-persistent's
 * workers, which inherited the mapping, find it. */
typedef struct ctx {
  counts *c;
} ctx;

/* Odd items fail, after a millisecond: procs workers then send their outcomes in pieces of
 * a few items when the parent needs them soon (see the halt test). */
static int odd_fail(void *out, const void *in, size_t i, void *p) {
  (void)in;
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
  atomic_fetch_add(&((const ctx *)p)->c->runs[i], 1);
  *(uint64_t *)out = i;
  return i % 2 ? 7 : 0;
}

static bg_map_desc_t desc_for(bg_task_fn fn, ctx *c, uint64_t *out, const char *backend) {
  bg_map_desc_t d = tk_desc(fn, c, N, out, sizeof *out);
  if (is_persistent(backend))
    d.ctx_size = sizeof *c;
  return d;
}

/* BG_MAP_HALT with halt_after: no new work after that many failures (seq: exactly that many;
 * parallel backends: at least, with items left pending). */
static void halt_after_on(const char *backend) {
  ctx c = {shared_counts()};
  bg_pool_t *p = tk_pool(backend, 2);
  uint64_t out[HALT_N];
  bg_map_desc_t d = desc_for(odd_fail, &c, out, backend);
  d.n = HALT_N;
  d.flags = BG_MAP_HALT;
  d.halt_after = 5;
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  if (strcmp(backend, "seq") == 0)
    assert_int_equal(r.n_failed, 5);
  assert_true(r.n_failed >= 5);
  /* Procs workers send their outcomes in short pieces: the parent stops soon after the 5th
   * failure, not after their guided chunks (about 100 failures here without pieces). */
  if (r.n_failed > 40)
    fail_msg("%s: %zu failed", backend, r.n_failed);
  assert_true(r.n_skipped > 0);
  assert_int_equal(r.first_failed, 1);
  bg_pool_destroy(p);
  munmap(c.c, sizeof *c.c);
}

static void test_halt_after(void **state) {
  (void)state;
  halt_after_on("seq");
  halt_after_on("threads");
  if (!TK_TSAN) {
    halt_after_on("procs");
    halt_after_on("procs-copy");
    halt_after_on("procs-persistent");
  }
}

/* Item 0 runs for half a minute; every other item waits (up to 5 s) until item 0 has started,
 * then fails: the map halts while item 0 runs. */
static int long_first(void *out, const void *in, size_t i, void *p) {
  (void)in;
  counts *c = ((const ctx *)p)->c;
  struct timespec ms = {0, 1000000};
  if (i == 0) {
    atomic_store(&c->runs[0], 1);
    struct timespec half = {30, 0};
    nanosleep(&half, NULL);
    *(uint64_t *)out = 0;
    return 0;
  }
  for (int k = 0; k < 5000 && !atomic_load(&c->runs[0]); k++)
    nanosleep(&ms, NULL);
  return 9;
}

/* BG_MAP_HALT_NOW: the halt also stops the running items, which stay pending (not failed, not
 * crashed), on the three procs modes; in-process backends refuse it. */
static void test_halt_now(void **state) {
  (void)state;
  if (TK_TSAN)
    skip();
  const char *backends[] = {"procs", "procs-copy", "procs-persistent"};
  for (int b = 0; b < 3; b++) {
    ctx c = {shared_counts()};
    bg_pool_t *p = tk_pool(backends[b], 2);
    uint64_t out[N];
    bg_item_status_t st[N];
    bg_map_desc_t d = desc_for(odd_fail, &c, out, backends[b]);
    d.status = st;
    d.flags = BG_MAP_HALT | BG_MAP_HALT_NOW;
    d.halt_after = 3;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    assert_true(r.n_failed >= 3 && r.n_failed < 40);
    assert_int_equal(r.n_crashed, 0);
    assert_true(r.n_skipped > 0);
    for (size_t i = 0; i < N; i++)
      assert_true(st[i].state == BG_ITEM_OK || st[i].state == BG_ITEM_FAILED ||
                  st[i].state == BG_ITEM_PENDING);
    /* The half-minute item was running at the halt: stopped, pending, long before its end
     * (--halt soon would wait for it). */
    atomic_store(&c.c->runs[0], 0);
    d.fn = long_first;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 20);
    assert_int_equal(st[0].state, BG_ITEM_PENDING);
    assert_int_equal(r.n_crashed, 0);
    assert_true(r.n_failed >= 3);
    bg_pool_destroy(p);
    munmap(c.c, sizeof *c.c);
  }
  tk_assert_no_children();
  bg_pool_t *p = tk_pool("threads", 2);
  bg_map_desc_t d = tk_desc(odd_fail, NULL, 10, NULL, 0);
  d.flags = BG_MAP_HALT | BG_MAP_HALT_NOW;
  assert_int_equal(bg_map(p, &d, NULL), BG_EBACKEND);
  bg_pool_destroy(p);
}

/* Item 10 crashes the first time it runs; odd items return non-zero every time. */
static int crash_once(void *out, const void *in, size_t i, void *p) {
  (void)in;
  unsigned before = atomic_fetch_add(&((const ctx *)p)->c->runs[i], 1);
  if (i == 10 && before == 0)
    raise(SIGSEGV);
  *(uint64_t *)out = i;
  return i % 2 ? 7 : 0;
}

/* retry_on: retries of a crash only run the crashed item again, not those that returned
 * non-zero; and the other way round. */
static void retry_on_backend(const char *backend) {
  for (int which = 0; which < 2; which++) {
    ctx c = {shared_counts()};
    bg_pool_t *p = tk_pool(backend, 2);
    uint64_t out[N];
    bg_item_status_t st[N];
    bg_map_desc_t d = desc_for(crash_once, &c, out, backend);
    d.status = st;
    d.retries = 2;
    d.retry_on = which == 0 ? BG_RETRY_CRASHED : BG_RETRY_FAILED;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    if (which == 0) {
      assert_int_equal(st[10].state, BG_ITEM_OK); /* crashed once, retried */
      assert_int_equal(st[10].attempts, 2);
      assert_int_equal(atomic_load(&c.c->runs[11]), 1); /* non-zero: not retried */
      assert_int_equal(st[11].attempts, 1);
      assert_int_equal(r.n_failed, N / 2);
    } else {
      assert_int_equal(st[10].state, BG_ITEM_CRASHED); /* a crash: not retried */
      assert_int_equal(atomic_load(&c.c->runs[11]), 3);
      assert_int_equal(st[11].attempts, 3);
      assert_int_equal(r.n_failed, N / 2 + 1);
    }
    bg_pool_destroy(p);
    munmap(c.c, sizeof *c.c);
  }
  tk_assert_no_children();
}

static void test_retry_on(void **state) {
  (void)state;
  if (TK_TSAN)
    skip();
  retry_on_backend("procs");
  retry_on_backend("procs-copy");
  retry_on_backend("procs-persistent");
}

static void test_retry_on_in_process(void **state) {
  (void)state;
  ctx c = {shared_counts()};
  bg_pool_t *p = tk_pool("threads", 2);
  uint64_t out[N];
  bg_item_status_t st[N];
  bg_map_desc_t d = desc_for(odd_fail, &c, out, "threads");
  d.status = st;
  d.retries = 3;
  d.retry_on = BG_RETRY_TIMEOUT | BG_RETRY_CRASHED; /* nothing a thread can retry */
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  assert_int_equal(atomic_load(&c.c->runs[1]), 1);
  assert_int_equal(r.n_retries, 0);
  d.retry_on = 1u << 7;
  assert_int_equal(bg_map(p, &d, &r), BG_EINVAL);
  d.retry_on = 0;
  d.timeout_pct = 300;
  assert_int_equal(bg_map(p, &d, &r), BG_EBACKEND); /* threads cannot stop a running item */
  bg_pool_destroy(p);
  munmap(c.c, sizeof *c.c);
}

/* Items of about a millisecond; item 50 never returns. */
static int hang_50(void *out, const void *in, size_t i, void *p) {
  (void)in, (void)p;
  if (i == 50)
    for (;;)
      pause();
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
  *(uint64_t *)out = i;
  return 0;
}

/* timeout_pct: the hung item is killed once the median is known; its code is the limit in
 * milliseconds, a small multiple of the items' millisecond, not a fixed timeout. */
static void test_timeout_pct(void **state) {
  (void)state;
  if (TK_TSAN)
    skip();
  const char *backends[] = {"procs", "procs-copy", "procs-persistent"};
  for (int b = 0; b < 3; b++) {
    bg_pool_t *p = tk_pool(backends[b], 2);
    enum { M = 200 };
    uint64_t out[M];
    bg_item_status_t st[M];
    bg_map_desc_t d = tk_desc(hang_50, NULL, M, out, sizeof out[0]);
    d.status = st;
    /* 100 times the median: generous enough that a busy machine never stretches a 1 ms item
     * that far, tight enough to show that the limit follows the items, not a fixed time. */
    d.timeout_pct = 10000;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    assert_int_equal(r.n_failed, 1);
    assert_int_equal(r.n_timeout, 1);
    assert_int_equal(st[50].state, BG_ITEM_TIMEOUT);
    /* 100 x a median of a millisecond or more, far below the minute a fixed guess would be. */
    assert_true(st[50].code >= 100 && st[50].code < 60000);
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_halt_after),  cmocka_unit_test(test_halt_now),
      cmocka_unit_test(test_retry_on),    cmocka_unit_test(test_retry_on_in_process),
      cmocka_unit_test(test_timeout_pct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
