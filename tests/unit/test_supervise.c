/* SPDX-License-Identifier: MIT */
/* The bench's protections for a foreign task: the guarded wrapper (result overruns caught,
 * statuses shared with children), the supervised row (a child's death reported, never the
 * bench's), the counting pass (exact blame, one item at a time) and the watchdog. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "foreign.h"
#include "supervise.h"
#include "testkit.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Items 3 and 5 write 12 bytes into their 8; item 7 returns 7; the rest succeed. */
static int mostly_fine(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  memset(out, 1, i == 3 || i == 5 ? 12 : 8);
  return i == 7 ? 7 : 0;
}

static void wrapper_counts_failures_and_overruns(void **st) {
  (void)st;
  bench_foreign *f;
  assert_int_equal(bench_foreign_create(mostly_fine, 64, 8, 4, &f), 0);
  bg_pool_t *pool = tk_pool("threads", 3);
  uint64_t out[64];
  bg_map_desc_t d = tk_desc(bench_foreign_task, f, 64, out, 8);
  d.status = bench_foreign_status(f);
  bg_map_report_t r;
  assert_int_equal(bg_map(pool, &d, &r), BG_ETASK);
  bg_pool_destroy(pool);
  bench_foreign_counts c;
  bench_foreign_count(f, &c);
  assert_int_equal(c.ok, 61);
  assert_int_equal(c.overflow, 2);
  assert_int_equal(c.first_overflow, 3);
  assert_int_equal(c.failed, 1);
  assert_int_equal(c.first_failed, 7);
  assert_int_equal(c.first_code, 7);
  assert_int_equal(out[0], 0x0101010101010101ull);
  char text[512];
  bench_foreign_describe(f, &c, 0, text, sizeof text);
  assert_non_null(strstr(text, "3 of 64 items failed: 1 returned non-zero (the first, item 7, "
                               "returned 7); 2 wrote past their 8-byte result (the first, item 3"));
  bench_foreign_destroy(f);
}

/* Item 11 crashes, item 20 ends its process with status 4 (_exit: exit() would run the
 * sanitizers' leak check in the child, which changes the status), item 30 hangs. */
static int hostile(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 11)
    raise(SIGSEGV);
  if (i == 20)
    _exit(4);
  if (i == 30)
    for (;;)
      pause();
  memset(out, 0, 8);
  return 0;
}

/* A timed row's runs, as the runner does them: one map over every item. */
static void run_threads(void *arg, bench_sup_share *sh) {
  bench_foreign *f = arg;
  bg_pool_t *pool = tk_pool("threads", 2);
  uint64_t *out = calloc(40, 8);
  bg_map_desc_t d = tk_desc(bench_foreign_task, f, 40, out, 8);
  bg_map_report_t r;
  sh->rcode = bg_map(pool, &d, &r);
  free(out);
  bg_pool_destroy(pool);
}

static void supervised_row_dies_and_is_counted_exactly(void **st) {
  (void)st;
  bench_foreign *f;
  assert_int_equal(bench_foreign_create(hostile, 40, 8, 4, &f), 0);
  bench_sup_share *sh = bench_sup_share_create();
  assert_non_null(sh);
  bench_sup_outcome oc;
  assert_int_equal(bench_supervise_row(f, 0.2, run_threads, f, sh, &oc), 0);
  /* The timed child died (a crash, the exit or the watchdog, whichever came first): no row. */
  assert_false(oc.done);
  assert_true(oc.died_signal != 0 || oc.died_exit >= 0 || oc.timed_out);
  size_t children = 0;
  assert_int_equal(bench_supervise_count(f, 0.2, &children), 0);
  bench_foreign_counts c;
  bench_foreign_count(f, &c);
  assert_int_equal(c.ok, 37);
  assert_int_equal(c.crashed, 1);
  assert_int_equal(c.first_crashed, 11);
  assert_int_equal(c.crash_signal, SIGSEGV);
  assert_int_equal(c.exited, 1);
  assert_int_equal(c.first_exited, 20);
  assert_int_equal(c.exit_status, 4);
  assert_int_equal(c.timeout, 1);
  assert_int_equal(c.first_timeout, 30);
  assert_int_equal(c.pending, 0);
  /* One child to start, one more after each of the three deaths. */
  assert_int_equal(children, 4);
  tk_assert_no_children();
  bench_sup_share_destroy(sh);
  bench_foreign_destroy(f);
}

static int always_crashes(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  raise(SIGSEGV);
  return 0;
}

/* Every item kills its process: the count stops after BENCH_SUP_BREAKER children, the rest
 * failed unrun, and nothing is forked per remaining item. */
static void counting_pass_has_a_circuit_breaker(void **st) {
  (void)st;
  bench_foreign *f;
  assert_int_equal(bench_foreign_create(always_crashes, 5000, 8, 1, &f), 0);
  size_t children = 0;
  assert_int_equal(bench_supervise_count(f, 0, &children), 0);
  assert_int_equal(children, BENCH_SUP_BREAKER);
  bench_foreign_counts c;
  bench_foreign_count(f, &c);
  assert_int_equal(c.crashed, BENCH_SUP_BREAKER);
  assert_int_equal(c.not_run, 5000 - BENCH_SUP_BREAKER);
  assert_int_equal(c.pending, 0);
  bench_foreign_destroy(f);
}

static void run_clean(void *arg, bench_sup_share *sh) {
  (void)arg;
  sh->rcode = 0;
  sh->row.workers = 9;
}

static void supervised_row_that_finishes_sends_its_row(void **st) {
  (void)st;
  bench_foreign *f;
  assert_int_equal(bench_foreign_create(mostly_fine, 4, 8, 1, &f), 0);
  bench_sup_share *sh = bench_sup_share_create();
  bench_sup_outcome oc;
  assert_int_equal(bench_supervise_row(f, 0, run_clean, NULL, sh, &oc), 0);
  assert_true(oc.done);
  assert_int_equal(oc.children, 1);
  assert_int_equal(sh->row.workers, 9);
  assert_true(oc.fork_s >= 0);
  bench_sup_share_destroy(sh);
  bench_foreign_destroy(f);
}

static void child_in_own_group_is_killed_with_its_group(void **st) {
  (void)st;
  /* The grandchild, orphaned by the kill, comes to this process to be reaped (not to an init
   * that may never reap it in a container). */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  pid_t pid = bench_child_fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* A grandchild in the same group: it must go with the child. */
    if (fork() == 0)
      for (;;)
        pause();
    for (;;)
      pause();
  }
  assert_int_equal(getpgid(pid), pid);
  int status = 0;
  assert_int_equal(bench_child_wait(pid, 0.05, &status), 0);
  bench_child_kill(pid, &status);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  /* The group is empty: no member is left to signal. */
  for (int tries = 0; tries < 500 && kill(-pid, 0) == 0; tries++) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    usleep(10000);
  }
  assert_int_equal(kill(-pid, 0), -1);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(wrapper_counts_failures_and_overruns),
      cmocka_unit_test(supervised_row_dies_and_is_counted_exactly),
      cmocka_unit_test(supervised_row_that_finishes_sends_its_row),
      cmocka_unit_test(counting_pass_has_a_circuit_breaker),
      cmocka_unit_test(child_in_own_group_is_killed_with_its_group),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
