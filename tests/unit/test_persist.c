/* SPDX-License-Identifier: MIT */
/* The persistent procs mode (procs-persistent): 1,000 maps in a row run on the same worker
 * processes; results equal seq's on many sizes as the arena grows under live workers; the
 * context travels as bytes and a context without its size is refused; a worker killed between
 * maps, or by a timeout, is replaced; max_tasks renews processes across maps; init and exit
 * callbacks run once per process, not per map; Ctrl-C from another thread ends the map and
 * every worker; a caller killed with SIGKILL leaves no worker; bg_pool_destroy reaps them all.
 * The planted-crash, breaker and retry maps run in this mode in test_procs. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

#define BACKEND "procs-persistent"

/* Lines of /proc/self/maps that are a memfd: how the data arena shows. */
static int memfd_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, "/memfd:") != NULL || strstr(line, "/dev/zero (deleted)") != NULL;
  fclose(f);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* A result: the worker's pid, and i * i plus the map's context (a uint64_t sent as bytes). */
typedef struct res {
  uint64_t pid, v;
} res;

static int pid_square(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  res *r = out;
  r->pid = (uint64_t)getpid();
  r->v = i * i + (ctx ? *(const uint64_t *)ctx : 0);
  return 0;
}

/* Adds the pids of out[0..n) to the set pids[0..*np), up to cap. */
static void add_pids(const res *out, size_t n, uint64_t *pids, size_t *np, size_t cap) {
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < *np && pids[j] != out[i].pid)
      j++;
    if (j == *np && *np < cap)
      pids[(*np)++] = out[i].pid;
  }
}

static bg_map_desc_t pid_desc(res *out, size_t n, uint64_t *ctx) {
  bg_map_desc_t d = tk_desc(pid_square, ctx, n, out, sizeof *out);
  d.ctx_size = ctx ? sizeof *ctx : 0;
  return d;
}

static void test_pids_reused(void **st) {
  (void)st;
  enum { MAPS = 1000, N = 100 };
  int maps = memfd_mappings();
  bg_pool_t *p = tk_pool(BACKEND, 2);
  res out[N];
  uint64_t pids[8];
  size_t np = 0, started = 0;
  for (uint64_t m = 0; m < MAPS; m++) {
    bg_map_desc_t d = pid_desc(out, N, &m);
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.n_ok, N);
    started += r.workers_started;
    for (size_t i = 0; i < N; i++)
      assert_int_equal(out[i].v, i * i + m);
    add_pids(out, N, pids, &np, 8);
  }
  /* Two processes ran every item of every map: started once, at the first map. */
  assert_true(np >= 1 && np <= 2);
  assert_int_equal(started, 2);
  bg_pool_destroy(p);
  tk_assert_no_children();
  assert_int_equal(memfd_mappings(), maps);
}

/* out = in * 3 + i + *ctx. */
static int triple(void *out, const void *in, size_t i, void *ctx) {
  *(uint64_t *)out = *(const uint64_t *)in * 3 + i + *(const uint64_t *)ctx;
  return 0;
}

/* Sizes that grow the arena twice under live workers, then shrink and grow within it. */
static void test_results_equal_seq(void **st) {
  (void)st;
  size_t sizes[] = {0, 1, 7, 1000, 100003, 7, 2, 300007, 64, 1000000, 3};
  bg_pool_t *p = tk_pool(BACKEND, 3), *seq = tk_pool("seq", 1);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    uint64_t *in = malloc((n + 1) * sizeof *in), *out = calloc(n + 1, sizeof *out);
    uint64_t *want = calloc(n + 1, sizeof *want), k = s * 1000003u;
    bg_item_status_t *status = malloc((n + 1) * sizeof *status);
    for (size_t i = 0; i < n; i++)
      in[i] = i * 7919u + s;
    bg_map_desc_t d = tk_desc(triple, &k, n, want, sizeof *want);
    d.ctx_size = sizeof k;
    d.in = in;
    d.in_size = sizeof *in;
    assert_int_equal(bg_map(seq, &d, NULL), 0);
    d.out = out;
    d.status = status;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.n_ok, n);
    assert_memory_equal(out, want, n * sizeof *out);
    for (size_t i = 0; i < n; i++)
      assert_int_equal(status[i].state, BG_ITEM_OK);
    free(status);
    free(want);
    free(in);
    free(out);
  }
  bg_pool_destroy(seq);
  bg_pool_destroy(p);
  tk_assert_no_children();
}

static void test_ctx_refused(void **st) {
  (void)st;
  bg_pool_t *p = tk_pool(BACKEND, 2);
  res out[4];
  uint64_t k = 5;
  bg_map_desc_t d = pid_desc(out, 4, &k);
  d.ctx_size = 0;
  /* A pointer the workers would read as it was at their fork. */
  assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  /* A description from before ctx_size (version 4) cannot give its size either. */
  d.version = 4;
  assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  d.version = BG_MAP_DESC_VERSION;
  d.ctx = NULL;
  d.ctx_size = 8;
  assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  d.ctx = &k;
  assert_int_equal(bg_map(p, &d, NULL), 0);
  assert_int_equal(out[3].v, 14);
  bg_pool_destroy(p);
  /* Elsewhere ctx_size is ignored and a bare ctx is fine. */
  p = tk_pool("threads", 2);
  d.ctx_size = 0;
  assert_int_equal(bg_map(p, &d, NULL), 0);
  bg_pool_destroy(p);
  tk_assert_no_children();
}

/* Item 0 hangs when the context says so; the others square their index. */
static int hang_at_0(void *out, const void *in, size_t i, void *ctx) {
  if (i == 0 && *(const int *)ctx)
    for (;;)
      pause();
  return pid_square(out, in, i, NULL);
}

/* A worker killed between maps, and one killed by a timeout, are replaced; the maps after them
 * lose nothing. */
static void test_replaced(void **st) {
  (void)st;
  enum { N = 200 };
  bg_pool_t *p = tk_pool(BACKEND, 2);
  res out[N];
  bg_item_status_t status[N];
  bg_map_desc_t d = pid_desc(out, N, NULL);
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_int_equal(r.workers_started, 2);
  pid_t victim = (pid_t)out[0].pid;
  assert_int_equal(kill(victim, SIGKILL), 0);
  sleep_ms(50);
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_int_equal(r.n_ok, N);
  assert_int_equal(r.n_failed, 0);
  assert_int_equal(r.workers_started, 1);
  for (size_t i = 0; i < N; i++) {
    assert_true(out[i].pid != (uint64_t)victim);
    assert_int_equal(out[i].v, i * i);
  }
  int hang = 1;
  d = tk_desc(hang_at_0, &hang, N, out, sizeof *out);
  d.ctx_size = sizeof hang;
  d.status = status;
  d.timeout_ms = 1000; /* no ordinary item reaches it, even under TSan on a busy machine */
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  assert_int_equal(r.n_timeout, 1);
  assert_int_equal(status[0].state, BG_ITEM_TIMEOUT);
  assert_int_equal(r.n_ok, N - 1);
  hang = 0;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_int_equal(r.n_ok, N);
  bg_pool_destroy(p);
  tk_assert_no_children();
}

/* max_tasks counts a process's items across maps: none runs more than its quota. */
static void test_max_tasks(void **st) {
  (void)st;
  enum { MAPS = 6, N = 100, QUOTA = 150 };
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = BACKEND;
  o.workers = 2;
  o.max_tasks = QUOTA;
  bg_pool_t *p = NULL;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  static res out[MAPS][N];
  size_t started = 0;
  for (size_t m = 0; m < MAPS; m++) {
    bg_map_desc_t d = pid_desc(out[m], N, NULL);
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.n_ok, N);
    started += r.workers_started;
  }
  bg_pool_destroy(p);
  /* 600 items at most 150 per process: at least 4 processes. */
  assert_true(started >= (MAPS * N + QUOTA - 1) / QUOTA);
  uint64_t pids[64];
  size_t np = 0;
  add_pids(&out[0][0], MAPS * N, pids, &np, 64);
  assert_int_equal(np, started);
  for (size_t j = 0; j < np; j++) {
    size_t ran = 0;
    for (size_t i = 0; i < MAPS * N; i++)
      ran += (&out[0][0])[i].pid == pids[j];
    assert_true(ran <= QUOTA);
  }
  tk_assert_no_children();
}

/* The lifecycle callbacks write 'i' or 'e' to the pipe whose write end is *ctx. */
static int note_init(unsigned w, void *ctx, void **state) {
  (void)w, (void)state;
  return write(*(int *)ctx, "i", 1) == 1 ? 0 : 1;
}

static void note_exit(unsigned w, void *ctx, void *state) {
  (void)w, (void)state;
  if (write(*(int *)ctx, "e", 1) != 1)
    _exit(3);
}

static void test_lifecycle_once(void **st) {
  (void)st;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = BACKEND;
  o.workers = 2;
  o.worker_init = note_init;
  o.worker_exit = note_exit;
  o.worker_ctx = &fds[1];
  bg_pool_t *p = NULL;
  assert_int_equal(bg_pool_create(&o, &p), 0);
  res out[100];
  for (int m = 0; m < 50; m++) {
    bg_map_desc_t d = pid_desc(out, 100, NULL);
    assert_int_equal(bg_map(p, &d, NULL), 0);
  }
  bg_pool_destroy(p);
  close(fds[1]);
  char buf[64];
  size_t inits = 0, exits = 0;
  ssize_t k;
  while ((k = read(fds[0], buf, sizeof buf)) > 0)
    for (ssize_t j = 0; j < k; j++)
      inits += buf[j] == 'i', exits += buf[j] == 'e';
  close(fds[0]);
  assert_int_equal(inits, 2);
  assert_int_equal(exits, 2);
  tk_assert_no_children();
}

static int sleepy(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  sleep_ms(2);
  *(size_t *)out = i + 1;
  return 0;
}

static void *raise_later(void *arg) {
  sleep_ms(150);
  raise(*(int *)arg);
  return NULL;
}

static volatile sig_atomic_t app_saw;

static void app_handler(int sig) {
  (void)sig;
  app_saw = 1;
}

/* Ctrl-C (SIGINT, then SIGTERM) raised by another thread during a map of warm workers: the map
 * returns BG_ECANCELED with no worker and no arena left; the next map starts afresh. */
static void test_sigint_from_thread(void **st) {
  (void)st;
  int sigs[] = {SIGINT, SIGTERM};
  for (size_t s = 0; s < 2; s++) {
    int maps = memfd_mappings();
    struct sigaction sa = {.sa_handler = app_handler}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[s], &sa, &old);
    app_saw = 0;
    bg_pool_t *p = tk_pool(BACKEND, 2);
    enum { N = 2000 };
    size_t *out = calloc(N, sizeof *out);
    bg_item_status_t *status = malloc(N * sizeof *status);
    bg_map_desc_t d = tk_desc(sleepy, NULL, 10, out, sizeof *out);
    assert_int_equal(bg_map(p, &d, NULL), 0);
    d.n = N;
    d.status = status;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, raise_later, &sigs[s]), 0);
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), BG_ECANCELED);
    pthread_join(t, NULL);
    assert_int_equal(r.interrupted, 1);
    assert_int_equal(app_saw, 1);
    assert_true(r.n_skipped > 0);
    for (size_t i = 0; i < N; i++)
      if (status[i].state == BG_ITEM_OK)
        assert_int_equal(out[i], i + 1);
      else
        assert_int_equal(status[i].state, BG_ITEM_PENDING);
    /* Before bg_pool_destroy: the map itself left nothing behind. */
    tk_assert_no_children();
    assert_int_equal(memfd_mappings(), maps);
    d.n = 50;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.workers_started, 2);
    bg_pool_destroy(p);
    sigaction(sigs[s], &old, NULL);
    free(out);
    free(status);
    tk_assert_no_children();
    assert_int_equal(memfd_mappings(), maps);
  }
}

static void *map_on_thread(void *pool) {
  res out[100];
  bg_map_desc_t d = pid_desc(out, 100, NULL);
  return (void *)(intptr_t)bg_map(pool, &d, NULL);
}

/* Workers forked by a thread that has ended since are replaced, not found dead mid-map. */
static void test_other_thread(void **st) {
  (void)st;
  bg_pool_t *p = tk_pool(BACKEND, 2);
  pthread_t t;
  void *rc;
  assert_int_equal(pthread_create(&t, NULL, map_on_thread, p), 0);
  pthread_join(t, &rc);
  assert_int_equal((intptr_t)rc, 0);
  res out[1000];
  bg_map_desc_t d = pid_desc(out, 1000, NULL);
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), 0);
  assert_int_equal(r.n_ok, 1000);
  assert_int_equal(r.workers_started, 2);
  bg_pool_destroy(p);
  tk_assert_no_children();
}

/* Writes the worker's pid to the pipe *ctx, then waits for a signal when the index is odd. */
static int tell_pid(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  pid_t me = getpid();
  if (write(*(const int *)ctx, &me, sizeof me) != (ssize_t)sizeof me)
    return 1;
  if (i % 2)
    for (;;)
      pause();
  return 0;
}

/* Reaps whatever orphans were handed to this process, then says whether @pid is gone. */
static int gone(pid_t pid) {
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  return kill(pid, 0) == -1 && errno == ESRCH;
}

/* The caller is killed with SIGKILL while its workers are idle between maps (busy 0) or run a
 * task that never returns (busy 1): no worker outlives it. */
static void run_caller_killed(int busy) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t caller = fork();
  assert_true(caller >= 0);
  if (caller == 0) {
    /* A fork of the test: it reports failure by its exit status, never through cmocka. */
    close(p[0]);
    bg_pool_opts_t o;
    bg_pool_opts_init(&o);
    o.backend = BACKEND;
    o.workers = 2;
    o.schedule = BG_SCHED_STATIC;
    bg_pool_t *pool = NULL;
    if (bg_pool_create(&o, &pool) != 0)
      _exit(1);
    /* One block per worker (static): with busy, items 1 and 3 never return, one on each. */
    bg_map_desc_t d = tk_desc(tell_pid, &p[1], busy ? 4 : 2, NULL, 0);
    d.ctx_size = sizeof p[1];
    bg_map(pool, &d, NULL);
    for (;;)
      pause();
  }
  close(p[1]);
  pid_t pids[4] = {0, 0, 0, 0};
  size_t want = (busy ? 4 : 2) * sizeof(pid_t), have = 0;
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  while (have < want && poll(&pf, 1, 30000) == 1) {
    ssize_t k = read(p[0], (char *)pids + have, want - have);
    if (k <= 0)
      break;
    have += (size_t)k;
  }
  close(p[0]);
  /* Give the idle workers time to be idle: their replies sent, waiting for a command. */
  sleep_ms(50);
  kill(caller, SIGKILL);
  int status = 0;
  assert_int_equal(waitpid(caller, &status, 0), caller);
  int all_gone = 1;
  for (size_t j = 0; j < have / sizeof(pid_t); j++) {
    for (int tries = 0; tries < 1000 && !gone(pids[j]); tries++)
      sleep_ms(10);
    if (!gone(pids[j])) {
      kill(pids[j], SIGKILL);
      all_gone = 0;
    }
  }
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
  assert_int_equal(have, want);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_true(all_gone);
  tk_assert_no_children();
}

static void test_caller_killed(void **st) {
  (void)st;
  run_caller_killed(0);
  run_caller_killed(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pids_reused),        cmocka_unit_test(test_results_equal_seq),
      cmocka_unit_test(test_ctx_refused),        cmocka_unit_test(test_replaced),
      cmocka_unit_test(test_max_tasks),          cmocka_unit_test(test_lifecycle_once),
      cmocka_unit_test(test_sigint_from_thread), cmocka_unit_test(test_other_thread),
      cmocka_unit_test(test_caller_killed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
