/* SPDX-License-Identifier: MIT */
/* bg_map on every backend x schedule gives what seq gives: for empty, tiny, odd and huge maps,
 * unequal items, failing items, array inputs, nested maps and busy pools; and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

static const char *const backends[] = {"seq", "threads", "openmp", "procs", "procs-copy"};
enum { NBACKENDS = 5 };

/* Calls fn(pool, ...) for every usable backend, schedule and a default and an odd chunk. */
typedef void (*matrix_fn)(bg_pool_t *p, const char *what);

static void for_each_pool(matrix_fn fn, unsigned workers) {
  for (size_t b = 0; b < NBACKENDS; b++) {
    for (int s = 0; s < BG_SCHED_COUNT_; s++) {
      for (size_t chunk = 0; chunk <= 3; chunk += 3) {
        /* One message per item is the procs backends' honest worst case, measured by the
         * bench; here it would only make the test slow. */
        if (b >= 3 && s == BG_SCHED_DYNAMIC && chunk == 0)
          continue;
        bg_pool_opts_t o;
        bg_pool_opts_init(&o);
        o.backend = backends[b];
        o.schedule = (bg_schedule_t)s;
        o.workers = workers;
        o.chunk = chunk;
        bg_pool_t *p;
        int rc = bg_pool_create(&o, &p);
        if (rc == BG_ENOTSUP)
          continue;
        assert_int_equal(rc, 0);
        char what[96];
        snprintf(what, sizeof what, "%s/%s/chunk %zu", backends[b],
                 bg_schedule_name((bg_schedule_t)s), chunk);
        fn(p, what);
        bg_pool_destroy(p);
      }
    }
  }
}

static int square_plus_one(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = (uint64_t)i * i + 1;
  return 0;
}

static uint64_t *big;
static const size_t big_n = 10000000;

static void check_sizes(bg_pool_t *p, const char *what) {
  static const size_t sizes[] = {0, 1, 7, 1000, 10000000};
  /* A worker process costs a message per chunk: ten million one-item chunks (dynamic, chunk 1)
   * would take minutes, which is the honest price and no news to a test. */
  int per_chunk_message = strncmp(bg_pool_backend(p), "procs", 5) == 0;
  for (size_t k = 0; k < 5; k++) {
    size_t n = sizes[k];
    if (per_chunk_message && n > 100000)
      n = 100003;
    memset(big, 0xff, (n ? n : 1) * sizeof *big);
    bg_map_desc_t d;
    bg_map_desc_init(&d);
    d.fn = square_plus_one;
    d.n = n;
    d.out = big;
    d.out_size = sizeof *big;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.n_ok, n);
    assert_int_equal(r.n_failed, 0);
    assert_int_equal(r.n_skipped, 0);
    assert_true(r.first_failed == SIZE_MAX);
    assert_int_equal(r.first_state, BG_ITEM_PENDING);
    assert_true(r.workers <= bg_pool_workers(p));
    for (size_t i = 0; i < n; i++) {
      if (big[i] != (uint64_t)i * i + 1)
        fail_msg("%s: n=%zu item %zu is %llu", what, n, i, (unsigned long long)big[i]);
    }
    if (n == 0)
      assert_true(big[0] == UINT64_MAX);
  }
}

static void every_size_matches_seq(void **state) {
  (void)state;
  big = malloc(big_n * sizeof *big);
  assert_non_null(big);
  for_each_pool(check_sizes, 3);
  free(big);
}

/* Every 100th item costs ~10,000 times more than the others. */
static int unequal(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  uint64_t x = i, loops = i % 100 == 0 ? 20000 : 2;
  for (uint64_t k = 0; k < loops; k++)
    x = x * 6364136223846793005u + 1442695040888963407u;
  *(uint64_t *)out = x;
  return 0;
}

static void check_unequal(bg_pool_t *p, const char *what) {
  enum { N = 20000 };
  static uint64_t want[N], got[N];
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = unequal;
  d.n = N;
  d.out = want;
  d.out_size = sizeof want[0];
  for (size_t i = 0; i < N; i++)
    unequal(&want[i], NULL, i, NULL);
  d.out = got;
  assert_int_equal(bg_map(p, &d, NULL), 0);
  if (memcmp(want, got, sizeof want) != 0)
    fail_msg("%s: unequal items differ from seq", what);
}

static void unequal_items_match_seq(void **state) {
  (void)state;
  for_each_pool(check_unequal, 2);
}

/* Fails items i % 97 == 5 with code 1 + i % 7, without writing their result. */
static int failing(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i % 97 == 5)
    return 1 + (int)(i % 7);
  *(uint64_t *)out = i;
  return 0;
}

static void check_failures(bg_pool_t *p, const char *what) {
  enum { N = 100000 };
  static uint64_t out[N];
  memset(out, 0xff, sizeof out);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = failing;
  d.n = N;
  d.out = out;
  d.out_size = sizeof out[0];
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  size_t want_failed = 0;
  for (size_t i = 0; i < N; i++) {
    if (i % 97 == 5) {
      want_failed++;
      assert_true(out[i] == UINT64_MAX);
    } else if (out[i] != i) {
      fail_msg("%s: item %zu lost", what, i);
    }
  }
  assert_int_equal(r.n_failed, want_failed);
  assert_int_equal(r.n_ok, N - want_failed);
  assert_int_equal(r.first_failed, 5);
  assert_int_equal(r.first_code, 1 + 5 % 7);
  assert_int_equal(r.first_state, BG_ITEM_FAILED);
  assert_int_equal(r.n_crashed + r.n_exited, 0);

  /* Halting stops handing out work; what ran is still accounted for. */
  d.flags = BG_MAP_HALT;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  assert_true(r.n_failed >= 1);
  assert_int_equal(r.n_ok + r.n_failed + r.n_skipped, N);
  assert_true(r.first_failed % 97 == 5);
}

static void failures_are_counted_and_others_kept(void **state) {
  (void)state;
  for_each_pool(check_failures, 2);
}

static int twice(void *out, const void *in, size_t i, void *ctx) {
  (void)i, (void)ctx;
  *(double *)out = 2 * *(const double *)in;
  return 0;
}

static void array_inputs_map_in_order(void **state) {
  (void)state;
  enum { N = 5001 };
  static double in[N], out[N];
  for (size_t i = 0; i < N; i++)
    in[i] = (double)i * 0.5;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(NULL, &p), 0);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = twice;
  d.n = N;
  d.in = in;
  d.in_size = sizeof in[0];
  d.out = out;
  d.out_size = sizeof out[0];
  assert_int_equal(bg_map(p, &d, NULL), 0);
  for (size_t i = 0; i < N; i++)
    assert_true(out[i] == (double)i);
  bg_pool_destroy(p);
}

/* Each outer item maps 50 inner items on the same pool and sums them. */
static int inner(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i;
  return 0;
}

static int outer(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  uint64_t parts[50];
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = inner;
  d.n = 50;
  d.out = parts;
  d.out_size = sizeof parts[0];
  bg_map_report_t r;
  int rc = bg_map(ctx, &d, &r);
  if (rc != 0 || !r.ran_inline)
    return 99;
  uint64_t s = 0;
  for (int k = 0; k < 50; k++)
    s += parts[k];
  *(uint64_t *)out = s + i;
  return 0;
}

static void check_nested(bg_pool_t *p, const char *what) {
  enum { N = 300 };
  uint64_t out[N];
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = outer;
  d.ctx = p;
  d.n = N;
  d.out = out;
  d.out_size = sizeof out[0];
  bg_map_report_t r;
  if (bg_map(p, &d, &r) != 0)
    fail_msg("%s: nested map failed (%zu failures)", what, r.n_failed);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(out[i], 1225 + i);
}

static void nested_maps_run_inline(void **state) {
  (void)state;
  for_each_pool(check_nested, 2);
}

static void many_maps_on_one_pool(void **state) {
  (void)state;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(NULL, &p), 0);
  uint64_t out[64];
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = square_plus_one;
  d.out = out;
  d.out_size = sizeof out[0];
  for (int m = 0; m < 10000; m++) {
    d.n = (size_t)(m % 64) + 1;
    assert_int_equal(bg_map(p, &d, NULL), 0);
    assert_int_equal(out[d.n - 1], (uint64_t)(d.n - 1) * (d.n - 1) + 1);
  }
  bg_pool_destroy(p);
}

/* A map expected to run inline waits until the workers have parked (auto counts them parked
 * 25 us after a map): right after a map they still spin, and a wake then costs so little
 * (0.2 us) that under ThreadSanitizer, where each item costs tens of ns, or on a busy machine,
 * going parallel can be the right call. Parked, a wake costs microseconds. */
static void let_workers_park(void) {
  struct timespec parked = {0, 2000000};
  nanosleep(&parked, NULL);
}

/* Once auto knows a task is trivial, a 7-item map runs on the caller; a big one does not. */
static void auto_runs_small_maps_inline(void **state) {
  (void)state;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.workers = 2;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  static uint64_t out[1000000];
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = square_plus_one;
  d.out = out;
  d.out_size = sizeof out[0];
  d.n = 1000000;
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_false(r.ran_inline);
  d.n = 7;
  let_workers_park();
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_true(r.ran_inline);
  assert_int_equal(r.workers, 1);
  assert_int_equal(r.schedule, BG_SCHED_AUTO);
  d.n = 1000000;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_false(r.ran_inline);
  assert_true(r.chunks > 2);
  bg_pool_destroy(p);
}

/* Items that spin for *ctx microseconds: the same function, cheap or dear by its context. */
static int spin_us(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i;
  uint64_t end = tk_now_ns() + *(const unsigned *)ctx * 1000ull;
  while (tk_now_ns() < end)
    ;
  return 0;
}

/* BG_MAP_NO_HISTORY: a map of a function auto knows as trivial still goes to the workers, and
 * what its items cost is not kept: after two 30 ms items under the flag, the next small map of
 * the same function, without it, is still run inline on what the cheap maps taught. */
static void no_history_maps_neither_use_nor_leave_a_cost(void **state) {
  (void)state;
  bg_pool_t *p = tk_pool("threads", 2);
  unsigned cheap = 0, dear = 30000;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = spin_us;
  d.ctx = &cheap;
  d.n = 100000;
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), 0);
  d.n = 7;
  let_workers_park();
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_true(r.ran_inline);
  d.flags = BG_MAP_NO_HISTORY;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_false(r.ran_inline);
  d.ctx = &dear, d.n = 2;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_false(r.ran_inline);
  d.ctx = &cheap, d.n = 7, d.flags = 0;
  let_workers_park();
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_true(r.ran_inline);
  bg_pool_destroy(p);
}

/* A pool held by one thread's map answers BG_EBUSY to BG_MAP_NOWAIT from another. */
typedef struct busy {
  bg_pool_t *p;
  _Atomic int started, release;
} busy;

static int hold(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i;
  busy *b = ctx;
  b->started = 1;
  while (!b->release)
    ;
  return 0;
}

static void *holder(void *arg) {
  busy *b = arg;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = hold;
  d.ctx = b;
  d.n = 1;
  return (void *)(intptr_t)bg_map(b->p, &d, NULL);
}

static void busy_pool_says_ebusy_under_nowait(void **state) {
  (void)state;
  busy b = {0};
  assert_int_equal(bg_pool_create(NULL, &b.p), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, holder, &b), 0);
  while (!b.started)
    ;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = square_plus_one;
  d.flags = BG_MAP_NOWAIT;
  assert_int_equal(bg_map(b.p, &d, NULL), BG_EBUSY);
  b.release = 1;
  void *rc;
  pthread_join(t, &rc);
  assert_int_equal((intptr_t)rc, 0);
  assert_int_equal(bg_map(b.p, &d, NULL), 0);
  bg_pool_destroy(b.p);
}

/* bg_map_simple inside a task of the default pool: it runs inline. */
static int outer_simple(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  uint64_t parts[50];
  if (bg_map_simple(inner, NULL, NULL, 0, parts, sizeof parts[0], 50) != 0)
    return 99;
  uint64_t s = 0;
  for (int k = 0; k < 50; k++)
    s += parts[k];
  *(uint64_t *)out = s + i;
  return 0;
}

static void *simple_from_thread(void *arg) {
  uint64_t *out = arg;
  intptr_t rc = bg_map_simple(square_plus_one, NULL, NULL, 0, out, sizeof *out, 20000);
  return (void *)rc;
}

static void the_one_call_map_runs_on_the_default_pool(void **state) {
  (void)state;
  enum { N = 20000 };
  static uint64_t a[N], b[N];
  static double in[N], dbl[N];
  assert_int_equal(bg_map_simple(square_plus_one, NULL, NULL, 0, a, sizeof a[0], N), 0);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(a[i], (uint64_t)i * i + 1);
  for (size_t i = 0; i < N; i++)
    in[i] = (double)i;
  assert_int_equal(bg_map_simple(twice, NULL, in, sizeof in[0], dbl, sizeof dbl[0], N), 0);
  for (size_t i = 0; i < N; i++)
    assert_true(dbl[i] == 2.0 * (double)i);
  /* One pool for the process, made once: threads, one worker per core. */
  bg_pool_t *p1 = NULL, *p2 = NULL;
  assert_int_equal(bg_pool_default(&p1), 0);
  assert_int_equal(bg_pool_default(&p2), 0);
  assert_ptr_equal(p1, p2);
  assert_string_equal(bg_pool_backend(p1), "threads");
  assert_int_equal(bg_pool_default(NULL), BG_EINVAL);
  /* Failures, refusals, a nested call and two threads at once. */
  assert_int_equal(bg_map_simple(failing, NULL, NULL, 0, a, sizeof a[0], N), BG_ETASK);
  assert_int_equal(bg_map_simple(NULL, NULL, NULL, 0, a, sizeof a[0], N), BG_EINVAL);
  assert_int_equal(bg_map_simple(twice, NULL, in, 0, dbl, sizeof dbl[0], N), BG_EINVAL);
  assert_int_equal(bg_map_simple(square_plus_one, NULL, NULL, 0, a, 0, N), BG_EINVAL);
  assert_int_equal(bg_map_simple(square_plus_one, NULL, NULL, 0, NULL, 0, 0), 0);
  assert_int_equal(bg_map_simple(outer_simple, NULL, NULL, 0, a, sizeof a[0], 300), 0);
  for (size_t i = 0; i < 300; i++)
    assert_int_equal(a[i], 1225 + i);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, simple_from_thread, b), 0);
  assert_int_equal(bg_map_simple(square_plus_one, NULL, NULL, 0, a, sizeof a[0], N), 0);
  void *trc;
  pthread_join(t, &trc);
  assert_int_equal((intptr_t)trc, 0);
  assert_memory_equal(a, b, sizeof a);
  /* A forked child has none of the parent's pool threads: it gets a pool of its own instead of
   * waiting forever on them (the alarm ends a child that would hang). Not under TSan, which
   * refuses to start threads in such a child. */
  if (TK_TSAN)
    return;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(60);
    bg_pool_t *c = NULL;
    int ok = bg_map_simple(square_plus_one, NULL, NULL, 0, b, sizeof b[0], N) == 0 &&
             b[N - 1] == (uint64_t)(N - 1) * (N - 1) + 1 && bg_pool_default(&c) == 0 && c != p1;
    _exit(ok ? 0 : 1);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void bad_descriptions_are_refused(void **state) {
  (void)state;
  bg_pool_t *p;
  assert_int_equal(bg_pool_create(NULL, &p), 0);
  bg_map_desc_t d;
  uint64_t buf[4];
  bg_map_report_t r = {.version = 77};
  assert_int_equal(bg_map(NULL, &d, &r), BG_EINVAL);
  assert_int_equal(bg_map(p, NULL, &r), BG_EINVAL);
  bg_map_desc_init(&d);
  assert_int_equal(bg_map(p, &d, &r), BG_EINVAL); /* no function */
  d.fn = square_plus_one;
  d.version = 0;
  assert_int_equal(bg_map(p, &d, &r), BG_EINVAL);
  bg_map_desc_init(&d);
  d.fn = square_plus_one;
  d.in = buf;
  assert_int_equal(bg_map(p, &d, &r), BG_EINVAL); /* in without in_size */
  bg_map_desc_init(&d);
  d.fn = square_plus_one;
  d.out = buf;
  assert_int_equal(bg_map(p, &d, &r), BG_EINVAL); /* out without out_size */
  d.out_size = 8;
  d.n = SIZE_MAX / 4;
  assert_int_equal(bg_map(p, &d, &r), BG_ERANGE); /* n * out_size overflows */
  bg_map_desc_init(&d);
  d.fn = square_plus_one;
  d.n = SIZE_MAX;
  assert_int_equal(bg_map(p, &d, &r), BG_ERANGE);
  assert_int_equal(r.version, 77); /* untouched on refusal */
  bg_pool_destroy(p);
}

/* An empty map reports no chunks, whatever an earlier map or an earlier pool in the same
 * memory left in the scheduler's slots (valgrind once saw the sum read uninitialised memory). */
static void empty_map_reports_no_chunks(void **st) {
  (void)st;
  const char *const all[] = {"seq", "threads", "procs", "openmp"};
  for (size_t b = 0; b < sizeof all / sizeof all[0]; b++) {
    for (int round = 0; round < 3; round++) {
      bg_pool_t *p = tk_pool(all[b], 2);
      uint64_t out[1000];
      bg_map_desc_t d = tk_desc(square_plus_one, NULL, 0, out, sizeof *out);
      bg_map_report_t r;
      assert_int_equal(bg_map(p, &d, &r), 0);
      assert_int_equal(r.chunks, 0);
      assert_int_equal(r.chunk_last, 0);
      d.n = 1000;
      assert_int_equal(bg_map(p, &d, &r), 0);
      d.n = 0;
      assert_int_equal(bg_map(p, &d, &r), 0);
      assert_int_equal(r.chunks, 0);
      bg_pool_destroy(p);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_size_matches_seq),
      cmocka_unit_test(empty_map_reports_no_chunks),
      cmocka_unit_test(unequal_items_match_seq),
      cmocka_unit_test(failures_are_counted_and_others_kept),
      cmocka_unit_test(array_inputs_map_in_order),
      cmocka_unit_test(nested_maps_run_inline),
      cmocka_unit_test(many_maps_on_one_pool),
      cmocka_unit_test(auto_runs_small_maps_inline),
      cmocka_unit_test(no_history_maps_neither_use_nor_leave_a_cost),
      cmocka_unit_test(busy_pool_says_ebusy_under_nowait),
      cmocka_unit_test(the_one_call_map_runs_on_the_default_pool),
      cmocka_unit_test(bad_descriptions_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
