/* SPDX-License-Identifier: MIT */
/* Traces (brigade/trace.h): on every in-process and procs backend a traced map's chunk spans
 * cover each item exactly once, lie within the map's time and name real workers, and each
 * worker that ran has its start-up; openmp's own schedules give one span per thread; a crashed
 * procs worker's chunk shows as died; a full trace counts what it drops; an older caller's
 * description has no trace field and none is read; bad arguments are refused. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

enum { N = 5000, W = 2 };

static int square(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (out)
    *(uint64_t *)out = (uint64_t)i * i;
  return 0;
}

/* Checks the spans of one map of N items on @w workers that ran between @t0 and @t1. */
static void check_spans(const char *backend, const bg_trace_t *t, uint64_t t0, uint64_t t1,
                        int chunks_seen, int startup) {
  const bg_span_t *s = bg_trace_spans(t);
  size_t n = bg_trace_count(t);
  unsigned char *seen = calloc(N, 1);
  int startups[W] = {0}, ran[W] = {0}, loops = 0;
  assert_true(n > 0);
  assert_int_equal(bg_trace_dropped(t), 0);
  for (size_t k = 0; k < n; k++) {
    if (s[k].worker >= W || s[k].t0_ns > s[k].t1_ns || s[k].t0_ns < t0 || s[k].t1_ns > t1)
      fail_msg("%s: span %zu (%s, worker %u) lies outside the map or names no worker", backend, k,
               bg_span_kind_name((int)s[k].kind), (unsigned)s[k].worker);
    switch (s[k].kind) {
    case BG_SPAN_STARTUP:
      startups[s[k].worker]++;
      break;
    case BG_SPAN_CHUNK:
      assert_true(s[k].begin < s[k].end && s[k].end <= N);
      for (size_t i = s[k].begin; i < s[k].end; i++) {
        if (seen[i])
          fail_msg("%s: item %zu in two chunk spans", backend, i);
        seen[i] = 1;
      }
      ran[s[k].worker] = 1;
      break;
    case BG_SPAN_LOOP:
      loops++;
      break;
    default:
      fail_msg("%s: unexpected span kind %u", backend, (unsigned)s[k].kind);
    }
  }
  if (chunks_seen) {
    for (size_t i = 0; i < N; i++)
      if (!seen[i])
        fail_msg("%s: item %zu in no chunk span", backend, i);
    for (unsigned w = 0; w < W; w++)
      if (ran[w] && startups[w] < 1 && startup)
        fail_msg("%s: worker %u ran chunks without a start-up span", backend, w);
  } else {
    assert_true(loops >= 1 && loops <= W);
  }
  free(seen);
}

static void traced_map(const char *backend, bg_schedule_t schedule, int chunks_seen) {
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = backend;
  o.workers = W;
  o.schedule = schedule;
  bg_pool_t *p = NULL;
  int rc = bg_pool_create(&o, &p);
  if (rc == BG_ENOTSUP || rc == BG_ENOENT)
    return; /* this build lacks the backend */
  assert_int_equal(rc, 0);
  uint64_t *out = calloc(N, sizeof *out);
  bg_trace_t *t = NULL;
  assert_int_equal(bg_trace_create(2 * N + 64, &t), 0);
  bg_map_desc_t d = tk_desc(square, NULL, N, out, sizeof *out);
  d.trace = t;
  for (int m = 0; m < 3; m++) {
    bg_trace_clear(t);
    assert_int_equal(bg_trace_count(t), 0);
    uint64_t t0 = bg_trace_now_ns();
    assert_int_equal(bg_map(p, &d, NULL), 0);
    uint64_t t1 = bg_trace_now_ns();
    /* A process's start-up is drawn when it was forked for this map. (A thread that began
     * the map inline, on the caller, had none.) */
    int forked = !strncmp(backend, "procs", 5) && (m == 0 || strcmp(backend, "procs-persistent"));
    check_spans(backend, t, t0, t1, chunks_seen, forked);
  }
  for (size_t i = 0; i < N; i++)
    assert_int_equal(out[i], (uint64_t)i * i);
  bg_trace_destroy(t);
  bg_pool_destroy(p);
  free(out);
  tk_assert_no_children();
}

static void test_backends(void **st) {
  (void)st;
  const char *const all[] = {"seq", "threads", "procs", "procs-copy", "procs-persistent"};
  for (size_t b = 0; b < sizeof all / sizeof all[0]; b++) {
    traced_map(all[b], BG_SCHED_AUTO, 1);
    traced_map(all[b], BG_SCHED_DYNAMIC, 1);
  }
  traced_map("openmp", BG_SCHED_AUTO, 1);
  traced_map("openmp", BG_SCHED_STATIC, 0);
}

static int segv_at_100(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 100)
    raise(SIGSEGV);
  *(uint64_t *)out = i;
  return 0;
}

/* A worker that dies: its chunk shows as died from the item that killed it, what it finished
 * before as a chunk, so every item that succeeded lies in exactly one chunk span. */
static void test_died(void **st) {
  (void)st;
  const char *const all[] = {"procs", "procs-copy", "procs-persistent"};
  for (size_t b = 0; b < 3; b++) {
    bg_pool_t *p = tk_pool(all[b], W);
    uint64_t *out = calloc(N, sizeof *out);
    bg_item_status_t *status = calloc(N, sizeof *status);
    unsigned char *seen = calloc(N, 1);
    bg_trace_t *t = NULL;
    assert_int_equal(bg_trace_create(2 * N + 64, &t), 0);
    bg_map_desc_t d = tk_desc(segv_at_100, NULL, N, out, sizeof *out);
    d.trace = t;
    d.status = status;
    assert_int_equal(bg_map(p, &d, NULL), BG_ETASK);
    int died = 0;
    for (size_t k = 0; k < bg_trace_count(t); k++) {
      const bg_span_t *s = &bg_trace_spans(t)[k];
      if (s->kind == BG_SPAN_DIED && s->begin <= 100 && 100 < s->end)
        died++;
      if (s->kind == BG_SPAN_CHUNK)
        for (size_t i = s->begin; i < s->end; i++)
          seen[i]++;
    }
    assert_int_equal(died, 1);
    for (size_t i = 0; i < N; i++)
      if (status[i].state == BG_ITEM_OK && seen[i] != 1)
        fail_msg("%s: item %zu succeeded but lies in %d chunk spans", all[b], i, seen[i]);
    bg_trace_destroy(t);
    bg_pool_destroy(p);
    free(out);
    free(status);
    free(seen);
  }
  tk_assert_no_children();
}

static void test_dropped(void **st) {
  (void)st;
  bg_trace_t *t = NULL;
  assert_int_equal(bg_trace_create(3, &t), 0);
  /* Chunks of one item: far more spans than three. */
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = "threads";
  o.workers = W;
  o.schedule = BG_SCHED_DYNAMIC;
  o.chunk = 1;
  bg_pool_t *p = NULL;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  bg_map_desc_t d = tk_desc(square, NULL, N, NULL, 0);
  d.trace = t;
  assert_int_equal(bg_map(p, &d, NULL), 0);
  assert_int_equal(bg_trace_count(t), 3);
  assert_true(bg_trace_dropped(t) >= N - 3);
  bg_trace_clear(t);
  assert_int_equal(bg_trace_count(t), 0);
  assert_int_equal(bg_trace_dropped(t), 0);
  bg_trace_destroy(t);
  bg_pool_destroy(p);
}

static void test_old_caller(void **st) {
  (void)st;
  bg_pool_t *p = tk_pool("threads", W);
  /* A version-5 caller's struct ends before trace: whatever lies there is not read. */
  bg_map_desc_t d = tk_desc(square, NULL, N, NULL, 0);
  d.version = 5;
  d.trace = (bg_trace_t *)(uintptr_t)0x10; /* would crash if used */
  assert_int_equal(bg_map(p, &d, NULL), 0);
  bg_pool_destroy(p);
}

static void test_refusals(void **st) {
  (void)st;
  bg_trace_t *t = (bg_trace_t *)(uintptr_t)1;
  assert_int_equal(bg_trace_create(10, NULL), BG_EINVAL);
  assert_int_equal(bg_trace_create(0, &t), BG_EINVAL);
  assert_int_equal(bg_trace_create(SIZE_MAX, &t), BG_EINVAL);
  assert_ptr_equal(t, (bg_trace_t *)(uintptr_t)1); /* untouched on failure */
  bg_trace_destroy(NULL);
  bg_trace_clear(NULL);
  assert_int_equal(bg_trace_count(NULL), 0);
  assert_int_equal(bg_trace_dropped(NULL), 0);
  assert_null(bg_trace_spans(NULL));
  assert_string_equal(bg_span_kind_name(BG_SPAN_STARTUP), "startup");
  assert_string_equal(bg_span_kind_name(BG_SPAN_CHUNK), "chunk");
  assert_string_equal(bg_span_kind_name(BG_SPAN_LOOP), "loop");
  assert_string_equal(bg_span_kind_name(BG_SPAN_DIED), "died");
  assert_string_equal(bg_span_kind_name(99), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backends), cmocka_unit_test(test_died),
      cmocka_unit_test(test_dropped),  cmocka_unit_test(test_old_caller),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
