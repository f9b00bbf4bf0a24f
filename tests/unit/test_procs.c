/* SPDX-License-Identifier: MIT */
/* The procs backends: results equal seq's on both transports and in the persistent mode; a
 * 10,000-item map in which chosen items segfault, abort, exit and hang delivers every other
 * result and names each failed item and its cause; retries; BG_MAP_HALT; Ctrl-C (SIGINT from a
 * timer) stops a map cleanly; the circuit breaker stops a map whose every worker dies the same way,
 * and only that; processes a task starts do not outlive the map; and after every map no child
 * process and no shared mapping is left behind. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"
#include "internal/procs.h"

/* Both transports of the snapshot mode, and the persistent mode: every guarantee holds on
 * each. */
static const char *const transports[] = {"procs", "procs-copy", "procs-persistent"};
enum { NT = sizeof transports / sizeof transports[0] };

/* Lines of /proc/self/maps that are shared anonymous memory or a memfd: how our arenas show. */
static int shared_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, "/dev/zero (deleted)") != NULL || strstr(line, "SYSV") != NULL ||
         strstr(line, "/memfd:") != NULL;
  fclose(f);
  return n;
}

/* out = in * 3 + i: checks both the item bytes and the index. */
static int triple(void *out, const void *in, size_t i, void *ctx) {
  (void)ctx;
  *(uint64_t *)out = *(const uint64_t *)in * 3 + i;
  return 0;
}

static void test_results_equal_seq(void **st) {
  (void)st;
  size_t sizes[] = {0, 1, 7, 1000, 100003};
  int maps = shared_mappings();
  for (size_t t = 0; t < NT; t++) {
    bg_pool_t *p = tk_pool(transports[t], 3);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t n = sizes[s];
      uint64_t *in = malloc((n + 1) * sizeof *in), *out = calloc(n + 1, sizeof *out);
      for (size_t i = 0; i < n; i++)
        in[i] = i * 7919u;
      bg_map_desc_t d = tk_desc(triple, NULL, n, NULL, 0);
      d.in = in;
      d.in_size = sizeof *in;
      d.out = out;
      d.out_size = sizeof *out;
      bg_map_report_t r;
      assert_int_equal(bg_map(p, &d, &r), 0);
      assert_int_equal(r.n_ok, n);
      assert_int_equal(r.ran_inline, 0);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i], in[i] * 3 + i);
      free(in);
      free(out);
    }
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
  assert_int_equal(shared_mappings(), maps);
}

/* The chosen culprits of the 10,000-item map. */
enum { N_BIG = 10000, I_SEGV = 17, I_ABORT = 4242, I_EXIT = 5000, I_HANG = 7777, I_FAIL = 9001 };
enum { TIMEOUT_MS = 1000 };

static int misbehave(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  switch (i) {
  case I_SEGV:
    raise(SIGSEGV);
    break;
  case I_ABORT:
    abort();
  case I_EXIT:
    exit(7);
  case I_HANG:
    for (;;)
      pause();
  case I_FAIL:
    return 42;
  default:
    break;
  }
  *(uint64_t *)out = i * i;
  return 0;
}

static void run_misbehaving(const char *backend) {
  int maps = shared_mappings();
  bg_pool_t *p = tk_pool(backend, 2);
  uint64_t *out = calloc(N_BIG, sizeof *out);
  bg_item_status_t *status = malloc(N_BIG * sizeof *status);
  bg_map_desc_t d = tk_desc(misbehave, NULL, N_BIG, out, sizeof *out);
  d.status = status;
  /* Long enough that no ordinary item reaches it on a loaded machine under ThreadSanitizer,
   * short enough to keep the case quick. (A sixth failed item seen there was a false timeout of
   * the parent's, since fixed: see test_time_left.) */
  d.timeout_ms = TIMEOUT_MS;
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  /* On a mismatch, say which items failed and how, before the assertion stops the case. */
  for (size_t i = 0; r.n_failed != 5 && i < N_BIG; i++)
    if (status[i].state != BG_ITEM_OK)
      printf("item %zu: %s, code %d, attempts %u\n", i, bg_item_state_name(status[i].state),
             (int)status[i].code, (unsigned)status[i].attempts);
  assert_int_equal(r.n_failed, 5);
  assert_int_equal(r.n_ok, N_BIG - 5);
  assert_int_equal(r.n_skipped, 0);
  assert_int_equal(r.n_crashed, 3); /* segfault, abort, exit */
  assert_int_equal(r.n_exited, 1);
  assert_int_equal(r.n_timeout, 1);
  assert_int_equal(r.first_failed, I_SEGV);
  assert_int_equal(r.first_state, BG_ITEM_CRASHED);
  assert_int_equal(r.first_code, BG_ECRASH);
  assert_int_equal(r.version, BG_MAP_REPORT_VERSION);
  /* Four workers died. Those that segfaulted, aborted and exited were replaced, with half the
   * map still to run; the one that hung may not be: by its timeout the other worker may have
   * run everything else, and a process is started only for work. */
  assert_true(r.workers_started >= 2 + 3);
  for (size_t i = 0; i < N_BIG; i++) {
    switch (i) {
    case I_SEGV:
      assert_int_equal(status[i].state, BG_ITEM_CRASHED);
      assert_int_equal(status[i].code, SIGSEGV);
      break;
    case I_ABORT:
      assert_int_equal(status[i].state, BG_ITEM_CRASHED);
      assert_int_equal(status[i].code, SIGABRT);
      break;
    case I_EXIT:
      assert_int_equal(status[i].state, BG_ITEM_EXITED);
      assert_int_equal(status[i].code, 7);
      break;
    case I_HANG:
      assert_int_equal(status[i].state, BG_ITEM_TIMEOUT);
      assert_int_equal(status[i].code, TIMEOUT_MS);
      break;
    case I_FAIL:
      assert_int_equal(status[i].state, BG_ITEM_FAILED);
      assert_int_equal(status[i].code, 42);
      break;
    default:
      if (status[i].state != BG_ITEM_OK || out[i] != (uint64_t)i * i)
        fail_msg("%s: item %zu: state %s, result %llu", backend, i,
                 bg_item_state_name(status[i].state), (unsigned long long)out[i]);
      assert_int_equal(status[i].attempts, 1);
    }
  }
  free(out);
  free(status);
  bg_pool_destroy(p);
  tk_assert_no_children();
  assert_int_equal(shared_mappings(), maps);
}

static void test_misbehaving_shm(void **st) {
  (void)st;
  run_misbehaving("procs");
}

static void test_misbehaving_copy(void **st) {
  (void)st;
  run_misbehaving("procs-copy");
}

static void test_misbehaving_persistent(void **st) {
  (void)st;
  run_misbehaving("procs-persistent");
}

/* Crashes the first time it runs an item whose marker file does not exist yet: a transient
 * fault, gone on the retry. The marker outlives the crashed process. */
static int crash_once(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  char path[256];
  snprintf(path, sizeof path, "%s/%zu", (const char *)ctx, i);
  if (i % 10 == 3) {
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd >= 0) {
      close(fd);
      raise(SIGKILL);
    }
  }
  *(size_t *)out = i + 1;
  return 0;
}

static void test_retries(void **st) {
  (void)st;
  for (size_t t = 0; t < NT; t++) {
    char dir[] = "/tmp/bg-retry-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bg_pool_t *p = tk_pool(transports[t], 2);
    size_t n = 40, out[40];
    bg_item_status_t status[40];
    bg_map_desc_t d = tk_desc(crash_once, dir, n, out, sizeof *out);
    d.ctx_size = sizeof dir;
    d.status = status;
    d.retries = 1;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.n_ok, n);
    assert_int_equal(r.n_retries, 4);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(out[i], i + 1);
      assert_int_equal(status[i].attempts, i % 10 == 3 ? 2 : 1);
      char path[300];
      snprintf(path, sizeof path, "%s/%zu", dir, i);
      unlink(path);
    }
    rmdir(dir);
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
}

/* Item 0 hangs; every other item is quick. */
static int hang_first(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 0)
    for (;;)
      pause();
  *(size_t *)out = i + 1;
  return 0;
}

/* The process that replaces a worker killed for its timeout inherits the slot in which the
 * hung item still shows as running since long ago: the parent must not take that for the new
 * process's first item running past the limit (it once killed the replacement and blamed an
 * item that had just started). One worker, so the replacement gets the rest of the map. */
static void test_timeout_replacement(void **st) {
  (void)st;
  for (size_t t = 0; t < NT; t++) {
    for (int round = 0; round < 3; round++) {
      bg_pool_t *p = tk_pool(transports[t], 1);
      enum { N_SMALL = 200 };
      size_t out[N_SMALL];
      bg_item_status_t status[N_SMALL];
      bg_map_desc_t d = tk_desc(hang_first, NULL, N_SMALL, out, sizeof *out);
      d.status = status;
      d.timeout_ms = 100;
      bg_map_report_t r;
      assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
      for (size_t i = 1; i < N_SMALL; i++)
        if (status[i].state != BG_ITEM_OK || out[i] != i + 1)
          fail_msg("%s: item %zu: %s (only item 0 hangs)", transports[t], i,
                   bg_item_state_name(status[i].state));
      assert_int_equal(status[0].state, BG_ITEM_TIMEOUT);
      assert_int_equal(r.n_failed, 1);
      assert_int_equal(r.n_timeout, 1);
      bg_pool_destroy(p);
    }
  }
  tk_assert_no_children();
}

/* The timeout's arithmetic: a worker's item start read after the parent's clock is an item
 * that has just begun, not one as old as unsigned wrap-around makes it. */
static void test_time_left(void **st) {
  (void)st;
  assert_int_equal(bg__time_left(1000, 1500, 100), 100);
  assert_int_equal(bg__time_left(1000, 1000, 100), 100);
  assert_int_equal(bg__time_left(1000, 950, 100), 50);
  assert_int_equal(bg__time_left(1000, 900, 100), 0);
  assert_int_equal(bg__time_left(1000, 0, 100), 0);
}

/* Maps of quick items under a generous timeout: no item times out and no worker is killed.
 * Items start all the time here, so the parent often reads a start newer than its clock. */
static void test_no_false_timeouts(void **st) {
  (void)st;
  enum { N_Q = 300000, MAPS = 10 };
  uint64_t *out = malloc(N_Q * sizeof *out);
  for (size_t t = 0; t < NT; t++) {
    bg_pool_t *p = tk_pool(transports[t], 2);
    bg_map_desc_t d = tk_desc(triple, NULL, N_Q, out, sizeof *out);
    uint64_t *in = calloc(N_Q, sizeof *in);
    d.in = in;
    d.in_size = sizeof *in;
    d.timeout_ms = 60000;
    size_t started = 0;
    for (int m = 0; m < MAPS; m++) {
      bg_map_report_t r;
      assert_int_equal(bg_map(p, &d, &r), 0);
      assert_int_equal(r.n_timeout, 0);
      started += r.workers_started;
    }
    /* Snapshot mode forks two per map; the persistent mode two in all. */
    assert_int_equal(started, strcmp(transports[t], "procs-persistent") ? 2 * MAPS : 2);
    free(in);
    bg_pool_destroy(p);
  }
  free(out);
  tk_assert_no_children();
}

/* Fails its first two calls, then succeeds: retries inside the worker. A procs worker counts
 * from the value the counter had when it was forked. */
static int flaky_calls;

static int flaky(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  int calls = ++flaky_calls;
  *(size_t *)out = i;
  return calls <= 2 ? 5 : 0;
}

static void test_retries_of_returned_failures(void **st) {
  (void)st;
  const char *backends[] = {"seq", "threads", "procs", "procs-copy", "procs-persistent"};
  for (size_t b = 0; b < 5; b++) {
    bg_pool_t *p = tk_pool(backends[b], 1);
    size_t out[4];
    bg_item_status_t status[4];
    bg_map_desc_t d = tk_desc(flaky, NULL, 4, out, sizeof *out);
    d.status = status;
    d.retries = 1;
    bg_map_report_t r;
    /* One worker: item 0 fails twice (attempts 2, failed), the others succeed at once. */
    flaky_calls = 0;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    assert_int_equal(status[0].state, BG_ITEM_FAILED);
    assert_int_equal(status[0].code, 5);
    assert_int_equal(status[0].attempts, 2);
    assert_int_equal(r.n_retries, 1);
    for (size_t i = 1; i < 4; i++)
      assert_int_equal(status[i].state, BG_ITEM_OK);
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
}

static int fail_at_100(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)ctx;
  if (i == 100)
    raise(SIGSEGV);
  return 0;
}

static void test_halt(void **st) {
  (void)st;
  for (size_t t = 0; t < NT; t++) {
    bg_pool_t *p = tk_pool(transports[t], 2);
    bg_map_desc_t d = tk_desc(fail_at_100, NULL, 1000000, NULL, 0);
    d.flags = BG_MAP_HALT;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    assert_int_equal(r.n_failed, 1);
    assert_int_equal(r.first_failed, 100);
    assert_true(r.n_skipped > 0);
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
}

static int sleepy(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  struct timespec ts = {0, 2000000};
  nanosleep(&ts, NULL);
  *(size_t *)out = i + 1;
  return 0;
}

/* Sends @sig to this process @ns nanoseconds from now (no thread: a POSIX timer). */
static timer_t signal_in(int sig, long ns) {
  timer_t timer;
  struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = sig};
  assert_int_equal(timer_create(CLOCK_MONOTONIC, &ev, &timer), 0);
  struct itimerspec when = {.it_value = {0, ns}};
  assert_int_equal(timer_settime(timer, 0, &when, NULL), 0);
  return timer;
}

static volatile sig_atomic_t app_saw_sigint;

static void app_handler(int sig) {
  (void)sig;
  app_saw_sigint = 1;
}

/* A timer sends SIGINT (procs) or SIGTERM (procs-copy, procs-persistent) to this process 150 ms
 * into a 2 s map. */
static void test_sigint(void **st) {
  (void)st;
  for (size_t t = 0; t < NT; t++) {
    int sig = t ? SIGTERM : SIGINT;
    int maps = shared_mappings();
    struct sigaction sa = {.sa_handler = app_handler}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &old);
    app_saw_sigint = 0;
    bg_pool_t *p = tk_pool(transports[t], 2);
    size_t n = 2000;
    size_t *out = calloc(n, sizeof *out);
    bg_item_status_t *status = malloc(n * sizeof *status);
    timer_t timer = signal_in(sig, 150000000);
    bg_map_desc_t d = tk_desc(sleepy, NULL, n, out, sizeof *out);
    d.status = status;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ECANCELED);
    timer_delete(timer);
    assert_int_equal(r.interrupted, 1);
    assert_true(r.n_skipped > 0);
    assert_true(r.n_ok + r.n_skipped == n);
    /* The application's own handler still heard the signal. */
    assert_int_equal(app_saw_sigint, 1);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
      if (status[i].state == BG_ITEM_OK) {
        assert_int_equal(out[i], i + 1);
        ok++;
      } else {
        assert_int_equal(status[i].state, BG_ITEM_PENDING);
      }
    }
    assert_int_equal(ok, r.n_ok);
    free(out);
    free(status);
    bg_pool_destroy(p);
    sigaction(sig, &old, NULL);
    tk_assert_no_children();
    assert_int_equal(shared_mappings(), maps);
  }
}

/* A background job starts with SIGINT ignored: a map there must not be stopped by one. */
static void test_sigint_ignored(void **st) {
  (void)st;
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  sigemptyset(&ign.sa_mask);
  sigaction(SIGINT, &ign, &old);
  bg_pool_t *p = tk_pool("procs", 2);
  size_t n = 200, out[200];
  timer_t timer = signal_in(SIGINT, 50000000);
  bg_map_desc_t d = tk_desc(sleepy, NULL, n, out, sizeof *out);
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), 0);
  timer_delete(timer);
  assert_int_equal(r.n_ok, n);
  assert_int_equal(r.interrupted, 0);
  struct sigaction now;
  sigaction(SIGINT, NULL, &now);
  assert_true(now.sa_handler == SIG_IGN);
  bg_pool_destroy(p);
  sigaction(SIGINT, &old, NULL);
  tk_assert_no_children();
}

static int inner_square(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(size_t *)out = i * i;
  return 0;
}

/* A bg_map inside a procs task runs inline in the worker process. */
static int outer(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  size_t sq[8];
  bg_map_desc_t d = tk_desc(inner_square, NULL, 8, sq, sizeof *sq);
  bg_map_report_t r;
  if (bg_map(ctx, &d, &r) != 0 || !r.ran_inline)
    return 1;
  *(size_t *)out = sq[7] + i;
  return 0;
}

static void test_nested(void **st) {
  (void)st;
  bg_pool_t *p = tk_pool("procs", 2);
  size_t out[10];
  bg_map_desc_t d = tk_desc(outer, p, 10, out, sizeof *out);
  assert_int_equal(bg_map(p, &d, NULL), 0);
  for (size_t i = 0; i < 10; i++)
    assert_int_equal(out[i], 49 + i);
  bg_pool_destroy(p);
}

/* Every item crashes (SIGSEGV), or calls exit() with the status *ctx when ctx is set. */
static int always_dies(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i;
  if (ctx)
    exit(*(const int *)ctx);
  raise(SIGSEGV);
  return 0;
}

/* The storm: without the breaker, 10,000 items that all crash fork 10,000 workers. With it,
 * BG_MAP_BREAKER_DEFAULT deaths in a row stop the map; the items left fail unrun. */
static void run_storm(const char *backend, int exits) {
  enum { N = 10000, W = 2 };
  bg_pool_t *p = tk_pool(backend, W);
  bg_item_status_t *status = malloc(N * sizeof *status);
  static int three = 3;
  bg_map_desc_t d = tk_desc(always_dies, exits ? &three : NULL, N, NULL, 0);
  d.ctx_size = exits ? sizeof three : 0;
  d.status = status;
  assert_int_equal(d.breaker, BG_MAP_BREAKER_DEFAULT);
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  assert_int_equal(r.tripped, 1);
  assert_int_equal(r.shrunk, 0);
  assert_int_equal(r.n_ok, 0);
  assert_int_equal(r.n_failed, N);
  assert_int_equal(r.n_skipped, 0);
  assert_int_equal(r.first_failed, 0);
  /* The 16th death trips it; a worker already running an item then may still die of it. */
  assert_true(r.n_crashed >= BG_MAP_BREAKER_DEFAULT);
  assert_true(r.n_crashed <= BG_MAP_BREAKER_DEFAULT + W - 1);
  assert_int_equal(r.n_crashed + r.n_tripped, N);
  assert_true(r.workers_started <= BG_MAP_BREAKER_DEFAULT + W);
  size_t unrun = 0;
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(status[i].state, exits ? BG_ITEM_EXITED : BG_ITEM_CRASHED);
    assert_int_equal(status[i].code, exits ? 3 : SIGSEGV);
    assert_true(status[i].attempts <= 1);
    unrun += status[i].attempts == 0;
  }
  assert_int_equal(unrun, r.n_tripped);
  free(status);
  bg_pool_destroy(p);
  tk_assert_no_children();
}

static void test_breaker_storm(void **st) {
  (void)st;
  run_storm("procs", 0);
  run_storm("procs-copy", 0);
  run_storm("procs", 1);
  run_storm("procs-persistent", 0);
  run_storm("procs-persistent", 1);
}

/* Breaker 0: the old behaviour, one worker per crashing item, every item run. */
static void test_breaker_off(void **st) {
  (void)st;
  for (size_t t = 0; t < NT; t++) {
    enum { N = 200 };
    bg_pool_t *p = tk_pool(transports[t], 2);
    bg_item_status_t status[N];
    bg_map_desc_t d = tk_desc(always_dies, NULL, N, NULL, 0);
    d.status = status;
    d.breaker = 0;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    assert_int_equal(r.tripped, 0);
    assert_int_equal(r.n_tripped, 0);
    assert_int_equal(r.n_failed, N);
    assert_int_equal(r.n_crashed, N);
    /* Each process dies on its first item: one process per item. */
    assert_int_equal(r.workers_started, N);
    for (size_t i = 0; i < N; i++) {
      assert_int_equal(status[i].state, BG_ITEM_CRASHED);
      assert_int_equal(status[i].code, SIGSEGV);
      assert_int_equal(status[i].attempts, 1);
    }
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
}

/* Every 10th item crashes: successes between the crashes keep the breaker closed. */
static int tenth_dies(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i % 10 == 9)
    raise(SIGSEGV);
  *(size_t *)out = i + 1;
  return 0;
}

static void test_breaker_interleaved(void **st) {
  (void)st;
  for (size_t t = 0; t < NT; t++) {
    enum { N = 2000 };
    bg_pool_t *p = tk_pool(transports[t], 2);
    size_t *out = calloc(N, sizeof *out);
    bg_item_status_t *status = malloc(N * sizeof *status);
    bg_map_desc_t d = tk_desc(tenth_dies, NULL, N, out, sizeof *out);
    d.status = status;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
    assert_int_equal(r.tripped, 0);
    assert_int_equal(r.n_tripped, 0);
    assert_int_equal(r.n_crashed, N / 10);
    assert_int_equal(r.n_ok, N - N / 10);
    for (size_t i = 0; i < N; i++) {
      if (i % 10 == 9) {
        assert_int_equal(status[i].state, BG_ITEM_CRASHED);
        assert_int_equal(status[i].attempts, 1);
      } else {
        assert_int_equal(status[i].state, BG_ITEM_OK);
        assert_int_equal(out[i], i + 1);
      }
    }
    free(out);
    free(status);
    bg_pool_destroy(p);
  }
  tk_assert_no_children();
}

/* Starts a `sleep 373` that outlives the task, and writes its pid as a line to the pipe whose
 * write end is *ctx: item 0 forks and execs it, item 1 asks a shell to start it in the
 * background, item 2 forks a child that only pauses (and so holds the worker's socket). None
 * keeps the test's output open: a survivor would hold up whoever reads it. */
static int leave_sleeper(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  int fd = *(const int *)ctx;
  if (i == 1) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "sleep 373 >/dev/null 2>&1 & echo $! >/dev/fd/%d", fd);
    return system(cmd) == 0 ? 0 : 1;
  }
  pid_t g = fork();
  if (g < 0)
    return 1;
  if (g == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    if (i == 0)
      execlp("sleep", "sleep", "373", (char *)NULL);
    for (;;)
      pause();
  }
  dprintf(fd, "%d\n", (int)g);
  return 0;
}

/* Reaps whatever orphans were handed to this process, then says whether @pid is gone. */
static int gone(pid_t pid) {
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  return kill(pid, 0) == -1 && errno == ESRCH;
}

static void test_task_children_killed(void **st) {
  (void)st;
  /* Orphans come to this process, not to init: it can reap them and see them go. */
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  for (size_t t = 0; t < NT; t++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    bg_pool_t *p = tk_pool(transports[t], 2);
    bg_map_desc_t d = tk_desc(leave_sleeper, &fds[1], 3, NULL, 0);
    d.ctx_size = sizeof fds[1];
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    bg_pool_destroy(p);
    close(fds[1]);
    /* Every task wrote its line before returning; the sleepers are gone, so EOF follows. */
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(f);
    int pids[3], n = 0;
    while (n < 3 && fscanf(f, "%d", &pids[n]) == 1)
      n++;
    fclose(f);
    assert_int_equal(n, 3);
    for (int j = 0; j < 3; j++) {
      assert_true(pids[j] > 1);
      struct timespec ts = {0, 10000000};
      for (int tries = 0; tries < 500 && !gone(pids[j]); tries++)
        nanosleep(&ts, NULL);
      if (!gone(pids[j])) {
        kill(pids[j], SIGKILL);
        fail_msg("%s: the task's child %d outlived the map", transports[t], pids[j]);
      }
    }
  }
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
  tk_assert_no_children();
}

static void test_refusals(void **st) {
  (void)st;
  bg_pool_t *p = tk_pool("threads", 2);
  bg_map_desc_t d = tk_desc(inner_square, NULL, 3, NULL, 0);
  d.timeout_ms = 10;
  assert_int_equal(bg_map(p, &d, NULL), BG_EBACKEND);
  bg_pool_destroy(p);
  /* A version-1 description (no status, timeout or retries fields) still works. */
  p = tk_pool("procs", 2);
  size_t out[3];
  d.timeout_ms = 0;
  d.out = out;
  d.out_size = sizeof *out;
  d.version = 1;
  /* A caller of version 1 allocated a version-1 report: nothing past it is written. */
  bg_map_report_t r;
  memset(&r, 0xab, sizeof r);
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_int_equal(out[2], 4);
  assert_int_equal(r.version, 1);
  assert_int_equal(r.n_ok, 3);
  unsigned char untouched[sizeof r - offsetof(bg_map_report_t, n_crashed)];
  memset(untouched, 0xab, sizeof untouched);
  assert_memory_equal((char *)&r + offsetof(bg_map_report_t, n_crashed), untouched,
                      sizeof untouched);
  /* A version-2 description (no breaker field) too: it runs without the breaker. */
  d.version = 2;
  assert_int_equal(bg_map(p, &d, NULL), 0);
  /* Version 3: the report stops before first_state. */
  d.version = 3;
  memset(&r, 0xab, sizeof r);
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_int_equal(r.version, 3);
  assert_int_equal(r.n_tripped, 0);
  assert_int_equal(r.first_state, (int)0xabababab);
  d.version = BG_MAP_DESC_VERSION + 1;
  assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  /* Shared memory for 32 TiB of results is refused before anything is mapped or copied. */
  d.version = BG_MAP_DESC_VERSION;
  d.n = (size_t)1 << 42;
  assert_int_equal(bg_map(p, &d, NULL), BG_ENOMEM);
  bg_pool_destroy(p);
  assert_string_equal(bg_item_state_name(BG_ITEM_TIMEOUT), "timeout");
  assert_string_equal(bg_item_state_name(99), "?");
  assert_string_equal(bg_errname(BG_ECRASH), "BG_ECRASH");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_results_equal_seq),
      cmocka_unit_test(test_misbehaving_shm),
      cmocka_unit_test(test_misbehaving_copy),
      cmocka_unit_test(test_misbehaving_persistent),
      cmocka_unit_test(test_retries),
      cmocka_unit_test(test_timeout_replacement),
      cmocka_unit_test(test_time_left),
      cmocka_unit_test(test_no_false_timeouts),
      cmocka_unit_test(test_retries_of_returned_failures),
      cmocka_unit_test(test_halt),
      cmocka_unit_test(test_sigint),
      cmocka_unit_test(test_sigint_ignored),
      cmocka_unit_test(test_nested),
      cmocka_unit_test(test_breaker_storm),
      cmocka_unit_test(test_breaker_off),
      cmocka_unit_test(test_breaker_interleaved),
      cmocka_unit_test(test_task_children_killed),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
