/* SPDX-License-Identifier: MIT */
/* Pool lifecycle: defaults, every refusal, the backend table, an allocator that fails the Nth
 * allocation (so every unwind path runs), pinning, and create/destroy in a loop. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "brigade.h"
#include "internal/pool_impl.h"

#include <sched.h>

static void *f_alloc(size_t n, void *ud);

static void defaults_are_documented_ones(void **state) {
  (void)state;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  assert_int_equal(o.version, BG_POOL_OPTS_VERSION);
  assert_string_equal(o.backend, "auto");
  assert_int_equal(o.workers, 0);
  assert_int_equal(o.schedule, BG_SCHED_AUTO);
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(NULL, &p), 0);
  bg_topo_t *t;
  assert_int_equal(bg_topo_create(&t), 0);
  assert_int_equal(bg_pool_workers(p), bg_topo_default_workers(t));
  assert_string_equal(bg_pool_backend(p), "threads");
  assert_int_equal(bg_pool_schedule(p), BG_SCHED_AUTO);
  if (bg_pool_workers(p) > 1)
    assert_true(bg_pool_dispatch_ns(p) > 0);
  bg_topo_destroy(t);
  bg_pool_destroy(p);
  bg_pool_destroy(NULL);
}

static void bad_options_are_refused(void **state) {
  (void)state;
  bg_pool_opts_t o;
  bg_pool_t *p = (bg_pool_t *)0x1;
  assert_int_equal(bg_pool_create(NULL, NULL), BG_EINVAL);
  bg_pool_opts_init(&o);
  o.version = 0;
  assert_int_equal(bg_pool_create(&o, &p), BG_EINVAL);
  bg_pool_opts_init(&o);
  o.version = BG_POOL_OPTS_VERSION + 1;
  assert_int_equal(bg_pool_create(&o, &p), BG_EINVAL);
  bg_pool_opts_init(&o);
  o.schedule = BG_SCHED_COUNT_;
  assert_int_equal(bg_pool_create(&o, &p), BG_EINVAL);
  bg_pool_opts_init(&o);
  o.workers = 5000;
  assert_int_equal(bg_pool_create(&o, &p), BG_EINVAL);
  bg_pool_opts_init(&o);
  o.backend = "fortran";
  assert_int_equal(bg_pool_create(&o, &p), BG_ENOENT);
  bg_allocator_t half = {f_alloc, NULL, NULL};
  bg_pool_opts_init(&o);
  o.allocator = &half;
  assert_int_equal(bg_pool_create(&o, &p), BG_EINVAL);
  assert_ptr_equal(p, (bg_pool_t *)0x1);
}

static void seq_has_exactly_one_worker(void **state) {
  (void)state;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = "seq";
  o.workers = 8;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  assert_int_equal(bg_pool_workers(p), 1);
  assert_int_equal(bg_pool_dispatch_ns(p), 0);
  bg_pool_destroy(p);
}

/* The threads backend's workers spin a while after each map (the next map of a loop then starts
 * without a system call, 190 -> 140 us a knn search of (1000, 100, 100) on 2 cores) unless the
 * pool has more workers than the process has CPUs. Read from the backend itself: a timing would
 * not hold on a busy machine. */
static void threads_spin_unless_oversubscribed(void **state) {
  (void)state;
  cpu_set_t set;
  CPU_ZERO(&set);
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  unsigned cpus = (unsigned)CPU_COUNT(&set);
  unsigned counts[2] = {cpus, cpus + 1};
  for (int i = 0; i < 2; i++) {
    bg_pool_opts_t o;
    bg_pool_opts_init(&o);
    o.backend = "threads";
    o.workers = counts[i];
    bg_pool_t *p;
    assert_int_equal(bg_pool_create(&o, &p), 0);
    uint64_t spin = p->ops->spin_ns(p->bstate);
    if (i == 0)
      assert_true(spin > 0);
    else
      assert_int_equal(spin, 0);
    bg_pool_destroy(p);
  }
}

static void backend_table_is_complete(void **state) {
  (void)state;
  bg_backend_info_t b;
  size_t n = bg_backend_count();
  assert_true(n >= 3);
  int saw_threads = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(bg_backend_info(i, &b), 0);
    assert_non_null(b.name);
    if (strcmp(b.name, "threads") == 0)
      saw_threads = b.compiled && b.usable;
    if (!b.compiled)
      assert_false(b.usable);
  }
  assert_true(saw_threads);
  assert_int_equal(bg_backend_info(n, &b), BG_EINVAL);
  assert_int_equal(bg_backend_info(0, NULL), BG_EINVAL);
}

static void schedule_names_round_trip(void **state) {
  (void)state;
  for (int s = 0; s < BG_SCHED_COUNT_; s++) {
    bg_schedule_t back;
    assert_int_equal(bg_schedule_parse(bg_schedule_name((bg_schedule_t)s), &back), 0);
    assert_int_equal(back, s);
  }
  bg_schedule_t x;
  assert_int_equal(bg_schedule_parse("fastest", &x), BG_EINVAL);
  assert_int_equal(bg_schedule_parse(NULL, &x), BG_EINVAL);
  assert_string_equal(bg_schedule_name(BG_SCHED_COUNT_), "?");
}

/* An allocator that fails the Nth call and counts what is still allocated. */
typedef struct failing {
  int fail_at, calls, live;
} failing;

static void *f_alloc(size_t n, void *ud) {
  failing *f = ud;
  if (f->calls++ == f->fail_at)
    return NULL;
  f->live++;
  return malloc(n);
}

static void f_free(void *p, void *ud) {
  failing *f = ud;
  if (p)
    f->live--;
  free(p);
}

static void every_allocation_failure_unwinds_cleanly(void **state) {
  (void)state;
  static const char *const backends[] = {"seq", "threads", "openmp"};
  for (size_t b = 0; b < 3; b++) {
    int succeeded = 0;
    for (int n = 0; n < 64 && !succeeded; n++) {
      failing f = {.fail_at = n};
      bg_allocator_t a = {f_alloc, f_free, &f};
      bg_pool_opts_t o;
      bg_pool_opts_init(&o);
      o.backend = backends[b];
      o.workers = 3;
      o.allocator = &a;
      bg_pool_t *p = NULL;
      int rc = bg_pool_create(&o, &p);
      if (rc == BG_ENOTSUP)
        break;
      if (rc == 0) {
        succeeded = 1;
        assert_true(f.live > 0);
        bg_pool_destroy(p);
      } else {
        assert_int_equal(rc, BG_ENOMEM);
        assert_null(p);
      }
      assert_int_equal(f.live, 0);
    }
    assert_true(succeeded || strcmp(backends[b], "openmp") == 0);
  }
}

static void pinned_pool_runs(void **state) {
  (void)state;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = "threads";
  o.workers = 2;
  o.pin = 1;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  bg_pool_destroy(p);
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int touch(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  return 0;
}

/* Idle workers must park, not spin: in the 500 ms after a map the whole process (main thread
 * asleep too) may use at most half of that in CPU, with room for a noisy machine and the
 * sanitizers' own threads. A spinning worker alone would use all 500 ms. */
static void idle_workers_sleep(void **state) {
  (void)state;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = "threads";
  o.workers = 2;
  o.schedule = BG_SCHED_STATIC;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = touch;
  d.n = 1000;
  assert_int_equal(bg_map(p, &d, NULL), 0);
  double c0 = cpu_seconds();
  struct timespec nap = {0, 500 * 1000 * 1000};
  nanosleep(&nap, NULL);
  double used = cpu_seconds() - c0;
  bg_pool_destroy(p);
  if (used >= 0.25)
    fail_msg("an idle pool used %.3f s of CPU in 0.5 s", used);
}

static void create_destroy_in_a_loop(void **state) {
  (void)state;
  for (int i = 0; i < 200; i++) {
    bg_pool_opts_t o;
    bg_pool_opts_init(&o);
    o.workers = 1 + (unsigned)(i % 4);
    o.backend = i % 3 == 0 ? "seq" : "threads";
    bg_pool_t *p;
    assert_int_equal(bg_pool_create(&o, &p), 0);
    bg_pool_destroy(p);
  }
}

int main(void) {
  /* idle_workers_sleep runs first: once an OpenMP pool has run, the OpenMP runtime's own idle
   * threads spin for a while (libomp's KMP_BLOCKTIME, libgomp's GOMP_SPINCOUNT) and would be
   * counted against brigade's. */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(idle_workers_sleep),
      cmocka_unit_test(defaults_are_documented_ones),
      cmocka_unit_test(bad_options_are_refused),
      cmocka_unit_test(seq_has_exactly_one_worker),
      cmocka_unit_test(backend_table_is_complete),
      cmocka_unit_test(schedule_names_round_trip),
      cmocka_unit_test(every_allocation_failure_unwinds_cleanly),
      cmocka_unit_test(pinned_pool_runs),
      cmocka_unit_test(threads_spin_unless_oversubscribed),
      cmocka_unit_test(create_destroy_in_a_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
