/* SPDX-License-Identifier: MIT */
/* Futures on threads and procs: results and indices; a wait that times out; cancel of a task
 * not started (it never runs) and of one running (refused); wait-any and as-completed return
 * futures in the order they finish; on procs a task that segfaults, aborts, exits or hangs
 * fails only its own future and the executor goes on; worker state and max_tasks; init
 * failures; destroy runs or cancels what is pending; no child process is left behind, not
 * even when the executor's caller is killed or a task leaves a process of its own running. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

static const char *const backends[] = {"threads", "procs"};

static bg_executor_t *make(const char *backend, unsigned workers, uint32_t timeout_ms) {
  bg_executor_opts_t o;
  bg_executor_opts_init(&o);
  o.backend = backend;
  o.workers = workers;
  o.timeout_ms = timeout_ms;
  bg_executor_t *ex = NULL;
  assert_int_equal(bg_executor_create(&o, &ex), 0);
  assert_int_equal(bg_executor_workers(ex), workers);
  return ex;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* out = in * 3 + index: checks the copied input and the submission number. */
static int triple(void *out, const void *in, size_t i, void *ctx) {
  (void)ctx;
  *(uint64_t *)out = *(const uint64_t *)in * 3 + i;
  return 0;
}

/* Sleeps for the number of milliseconds it is given, then returns it as its result. */
static int nap(void *out, const void *in, size_t i, void *ctx) {
  (void)i, (void)ctx;
  int64_t ms = *(const int64_t *)in;
  sleep_ms((long)ms);
  if (out)
    *(int64_t *)out = ms;
  return 0;
}

static bg_future_t *submit_nap(bg_executor_t *ex, int64_t ms) {
  bg_future_t *f = NULL;
  assert_int_equal(bg_submit(ex, nap, NULL, &ms, sizeof ms, sizeof ms, &f), 0);
  return f;
}

enum { N_MANY = 300 };

static void test_results(void **st) {
  (void)st;
  for (size_t b = 0; b < 2; b++) {
    bg_executor_t *ex = make(backends[b], 2, 0);
    bg_future_t *fs[N_MANY];
    for (uint64_t i = 0; i < N_MANY; i++) {
      uint64_t x = i + 1000; /* the buffer is reused: the executor keeps its own copy */
      assert_int_equal(bg_submit(ex, triple, NULL, &x, sizeof x, sizeof x, &fs[i]), 0);
    }
    assert_int_equal(bg_future_wait_all(fs, N_MANY, BG_WAIT_FOREVER), 0);
    for (uint64_t i = 0; i < N_MANY; i++) {
      const void *out = NULL;
      bg_item_status_t s;
      assert_int_equal(bg_future_state(fs[i]), BG_FUTURE_DONE);
      assert_int_equal(bg_future_result(fs[i], &out, &s), 0);
      assert_int_equal(s.state, BG_ITEM_OK);
      assert_int_equal(*(const uint64_t *)out, (i + 1000) * 3 + i);
      bg_future_release(fs[i]);
    }
    bg_executor_destroy(ex, 0);
    tk_assert_no_children();
  }
}

static void test_wait_timeout(void **st) {
  (void)st;
  for (size_t b = 0; b < 2; b++) {
    bg_executor_t *ex = make(backends[b], 1, 0);
    bg_future_t *f = submit_nap(ex, 400);
    assert_int_equal(bg_future_wait(f, 50), BG_ETIMEDOUT);
    assert_int_equal(bg_future_result(f, NULL, NULL), BG_EBUSY);
    assert_int_equal(bg_future_wait(f, 0), BG_ETIMEDOUT);
    assert_int_equal(bg_future_wait(f, BG_WAIT_FOREVER), 0);
    const void *out = NULL;
    assert_int_equal(bg_future_result(f, &out, NULL), 0);
    assert_int_equal(*(const int64_t *)out, 400);
    bg_future_release(f);
    bg_executor_destroy(ex, 0);
  }
}

static atomic_int ran_marker;

static int mark(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  atomic_fetch_add(&ran_marker, 1);
  return 0;
}

static void test_cancel(void **st) {
  (void)st;
  atomic_store(&ran_marker, 0);
  bg_executor_t *ex = make("threads", 1, 0);
  bg_future_t *busy = submit_nap(ex, 300);
  bg_future_t *later = NULL, *kept = NULL;
  assert_int_equal(bg_submit(ex, mark, NULL, NULL, 0, 0, &later), 0);
  assert_int_equal(bg_submit(ex, mark, NULL, NULL, 0, 0, &kept), 0);
  /* The one worker is inside the first task by now or soon: either way it is not the second. */
  while (bg_future_state(busy) != BG_FUTURE_RUNNING)
    sleep_ms(1);
  assert_int_equal(bg_future_cancel(later), 0);
  assert_int_equal(bg_future_cancel(later), 0);
  assert_int_equal(bg_future_state(later), BG_FUTURE_CANCELLED);
  assert_int_equal(bg_future_cancel(busy), BG_EBUSY);
  assert_int_equal(bg_future_wait(later, 0), 0);
  bg_item_status_t s = {BG_ITEM_OK, 1, 1};
  assert_int_equal(bg_future_result(later, NULL, &s), BG_ECANCELED);
  assert_int_equal(s.state, BG_ITEM_PENDING);
  assert_int_equal(bg_future_wait(kept, BG_WAIT_FOREVER), 0);
  assert_int_equal(bg_future_cancel(kept), BG_EBUSY);
  assert_int_equal(atomic_load(&ran_marker), 1); /* kept ran, later never did */
  bg_future_release(busy);
  bg_future_release(later);
  bg_future_release(kept);
  bg_executor_destroy(ex, 0);
  assert_int_equal(atomic_load(&ran_marker), 1);
}

/* Three tasks that finish in the order 1, 2, 0 whatever order they were submitted in. */
static void test_wait_any_and_as_completed(void **st) {
  (void)st;
  static const int64_t ms[3] = {600, 50, 300};
  for (size_t b = 0; b < 2; b++) {
    bg_executor_t *ex = make(backends[b], 3, 0);
    bg_future_t *fs[3];
    for (int i = 0; i < 3; i++)
      fs[i] = submit_nap(ex, ms[i]);
    size_t idx = 99;
    assert_int_equal(bg_future_wait_any(fs, 3, 20, &idx), BG_ETIMEDOUT);
    assert_int_equal(bg_future_wait_any(fs, 3, BG_WAIT_FOREVER, &idx), 0);
    assert_int_equal(idx, 1);
    bg_completion_t *c = NULL;
    assert_int_equal(bg_completion_create(fs, 3, &c), 0);
    size_t order[3];
    for (int k = 0; k < 3; k++)
      assert_int_equal(bg_completion_next(c, BG_WAIT_FOREVER, &order[k]), 0);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 0);
    assert_int_equal(bg_completion_next(c, BG_WAIT_FOREVER, &idx), BG_ENOENT);
    bg_completion_destroy(c);
    for (int i = 0; i < 3; i++)
      bg_future_release(fs[i]);
    bg_executor_destroy(ex, 0);
  }
}

/* The timeout that ends the hanging item: long enough that no ordinary item reaches it on a
 * loaded machine under ThreadSanitizer. */
enum { HANG_TIMEOUT_MS = 1000 };

enum { T_SEGV = 3, T_ABORT = 7, T_EXIT = 11, T_HANG = 13, T_FAIL = 17, N_BAD = 24 };

static int misbehave(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  switch (i) {
  case T_SEGV:
    raise(SIGSEGV);
    break;
  case T_ABORT:
    abort();
  case T_EXIT:
    exit(9);
  case T_HANG:
    for (;;)
      pause();
  case T_FAIL:
    return 42;
  default:
    break;
  }
  *(uint64_t *)out = i * i;
  return 0;
}

static void test_procs_isolation(void **st) {
  (void)st;
  bg_executor_t *ex = make("procs", 2, HANG_TIMEOUT_MS);
  bg_future_t *fs[N_BAD];
  for (int i = 0; i < N_BAD; i++)
    assert_int_equal(bg_submit(ex, misbehave, NULL, NULL, 0, sizeof(uint64_t), &fs[i]), 0);
  assert_int_equal(bg_future_wait_all(fs, N_BAD, BG_WAIT_FOREVER), 0);
  for (int i = 0; i < N_BAD; i++) {
    const void *out = NULL;
    bg_item_status_t s;
    int rc = bg_future_result(fs[i], &out, &s);
    switch (i) {
    case T_SEGV:
      assert_int_equal(rc, BG_ECRASH);
      assert_int_equal(s.state, BG_ITEM_CRASHED);
      assert_int_equal(s.code, SIGSEGV);
      break;
    case T_ABORT:
      assert_int_equal(rc, BG_ECRASH);
      assert_int_equal(s.state, BG_ITEM_CRASHED);
      assert_int_equal(s.code, SIGABRT);
      break;
    case T_EXIT:
      assert_int_equal(rc, BG_ECRASH);
      assert_int_equal(s.state, BG_ITEM_EXITED);
      assert_int_equal(s.code, 9);
      break;
    case T_HANG:
      assert_int_equal(rc, BG_ETIMEDOUT);
      assert_int_equal(s.state, BG_ITEM_TIMEOUT);
      assert_int_equal(s.code, HANG_TIMEOUT_MS);
      break;
    case T_FAIL:
      assert_int_equal(rc, BG_ETASK);
      assert_int_equal(s.state, BG_ITEM_FAILED);
      assert_int_equal(s.code, 42);
      break;
    default:
      assert_int_equal(rc, 0);
      assert_int_equal(*(const uint64_t *)out, (uint64_t)i * i);
    }
    bg_future_release(fs[i]);
  }
  /* Every worker was replaced as it died: the executor still has its two. */
  bg_future_t *a = submit_nap(ex, 1), *b = submit_nap(ex, 1);
  bg_future_t *pair[2] = {a, b};
  assert_int_equal(bg_future_wait_all(pair, 2, BG_WAIT_FOREVER), 0);
  assert_int_equal(bg_future_result(a, NULL, NULL), 0);
  assert_int_equal(bg_future_result(b, NULL, NULL), 0);
  bg_future_release(a);
  bg_future_release(b);
  bg_executor_destroy(ex, 0);
  tk_assert_no_children();
}

/* Worker state: init gives each worker a counter; each task returns its worker, the counter's
 * value and its process id. */
typedef struct wstate {
  int w;
  int count;
} wstate;

static int init_state(unsigned w, void *ctx, void **state) {
  (void)ctx;
  wstate *s = calloc(1, sizeof *s);
  if (!s)
    return -1;
  s->w = (int)w;
  *state = s;
  return 0;
}

static void exit_state(unsigned w, void *ctx, void *state) {
  (void)w, (void)ctx;
  free(state);
}

static int count_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)i, (void)ctx;
  wstate *s = bg_worker_state();
  if (!s || s->w != bg_worker_id())
    return 1;
  int64_t *o = out;
  o[0] = s->w;
  o[1] = ++s->count;
  o[2] = getpid();
  return 0;
}

static void run_counted(const char *backend, size_t max_tasks, int n, int64_t (*res)[3]) {
  bg_executor_opts_t o;
  bg_executor_opts_init(&o);
  o.backend = backend;
  o.workers = 1;
  o.worker_init = init_state;
  o.worker_exit = exit_state;
  o.max_tasks = max_tasks;
  bg_executor_t *ex = NULL;
  assert_int_equal(bg_executor_create(&o, &ex), 0);
  for (int i = 0; i < n; i++) {
    bg_future_t *f = NULL;
    assert_int_equal(bg_submit(ex, count_task, NULL, NULL, 0, 3 * sizeof(int64_t), &f), 0);
    const void *out = NULL;
    assert_int_equal(bg_future_wait(f, BG_WAIT_FOREVER), 0);
    assert_int_equal(bg_future_result(f, &out, NULL), 0);
    memcpy(res[i], out, sizeof res[i]);
    bg_future_release(f);
  }
  bg_executor_destroy(ex, 0);
}

static void test_worker_state(void **st) {
  (void)st;
  int64_t res[6][3];
  for (size_t b = 0; b < 2; b++) {
    run_counted(backends[b], 0, 6, res);
    for (int i = 0; i < 6; i++) {
      assert_int_equal(res[i][0], 0);
      assert_int_equal(res[i][1], i + 1); /* the state persists across tasks */
      assert_int_equal(res[i][2], res[0][2]);
    }
    assert_true(b == 0 ? res[0][2] == getpid() : res[0][2] != getpid());
    run_counted(backends[b], 2, 6, res);
    for (int i = 0; i < 6; i++) {
      assert_int_equal(res[i][1], i % 2 + 1); /* renewed every two tasks */
      /* threads: the same thread renews its state; procs: a new process each time. */
      assert_int_equal(res[i][2], res[i - i % 2][2]);
      if (b == 0)
        assert_int_equal(res[i][2], getpid());
      else if (i >= 2)
        assert_int_not_equal(res[i][2], res[i - 2][2]);
    }
  }
  tk_assert_no_children();
}

static int init_fails_on_1(unsigned w, void *ctx, void **state) {
  (void)ctx;
  *state = NULL;
  return w == 1 ? -1 : 0;
}

static void test_init_failure(void **st) {
  (void)st;
  for (size_t b = 0; b < 2; b++) {
    bg_executor_opts_t o;
    bg_executor_opts_init(&o);
    o.backend = backends[b];
    o.workers = 2;
    o.worker_init = init_fails_on_1;
    bg_executor_t *ex = (bg_executor_t *)&o;
    assert_int_equal(bg_executor_create(&o, &ex), BG_ETASK);
    assert_null(ex);
  }
  tk_assert_no_children();
}

/* Init succeeds until the marker file exists: a worker that dies after that cannot be
 * replaced. */
static int init_until_marked(unsigned w, void *ctx, void **state) {
  (void)w;
  *state = NULL;
  return access((const char *)ctx, F_OK) == 0 ? -1 : 0;
}

static int crash(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  raise(SIGSEGV);
  return 0;
}

/* The last worker dies and no replacement can start: the queued tasks fail the way the
 * replacements did (exit 125), they do not wait forever, and destroy still returns. */
static void test_no_worker_left(void **st) {
  (void)st;
  char marker[] = "/tmp/bg-future-marker-XXXXXX";
  int fd = mkstemp(marker);
  assert_true(fd >= 0);
  close(fd);
  unlink(marker);
  bg_executor_opts_t o;
  bg_executor_opts_init(&o);
  o.backend = "procs";
  o.workers = 1;
  o.worker_init = init_until_marked;
  o.worker_ctx = marker;
  bg_executor_t *ex = NULL;
  assert_int_equal(bg_executor_create(&o, &ex), 0);
  fd = open(marker, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  bg_future_t *f = NULL, *later[2];
  bg_item_status_t s;
  assert_int_equal(bg_submit(ex, crash, NULL, NULL, 0, 0, &f), 0);
  assert_int_equal(bg_future_wait(f, BG_WAIT_FOREVER), 0);
  assert_int_equal(bg_future_result(f, NULL, &s), BG_ECRASH);
  assert_int_equal(s.state, BG_ITEM_CRASHED);
  assert_int_equal(s.code, SIGSEGV);
  for (int i = 0; i < 2; i++)
    assert_int_equal(bg_submit(ex, mark, NULL, NULL, 0, 0, &later[i]), 0);
  assert_int_equal(bg_future_wait_all(later, 2, BG_WAIT_FOREVER), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(bg_future_result(later[i], NULL, &s), BG_ECRASH);
    assert_int_equal(s.state, BG_ITEM_EXITED);
    assert_int_equal(s.code, 125);
    bg_future_release(later[i]);
  }
  bg_future_release(f);
  bg_executor_destroy(ex, 0);
  unlink(marker);
  tk_assert_no_children();
}

static void test_destroy_pending(void **st) {
  (void)st;
  for (size_t b = 0; b < 2; b++) {
    for (int cancel = 0; cancel < 2; cancel++) {
      bg_executor_t *ex = make(backends[b], 1, 0);
      bg_future_t *fs[4];
      for (int i = 0; i < 4; i++)
        fs[i] = submit_nap(ex, 60);
      /* One released while still queued: it runs (or is cancelled) and is freed. */
      bg_future_release(fs[3]);
      while (bg_future_state(fs[0]) != BG_FUTURE_RUNNING)
        sleep_ms(1);
      bg_executor_destroy(ex, cancel ? BG_EXECUTOR_CANCEL_PENDING : 0);
      /* The futures outlive their executor; the running one finished either way. */
      assert_int_equal(bg_future_result(fs[0], NULL, NULL), 0);
      for (int i = 1; i < 3; i++)
        assert_int_equal(bg_future_result(fs[i], NULL, NULL), cancel ? BG_ECANCELED : 0);
      for (int i = 0; i < 3; i++)
        bg_future_release(fs[i]);
    }
  }
  tk_assert_no_children();
}

/* Starts `sleep <secs>` as a child of the calling process. Return: its pid, or -1. */
static pid_t start_sleep(const char *secs) {
  pid_t kid = fork();
  if (kid == 0) {
    execlp("sleep", "sleep", secs, (char *)NULL);
    _exit(127);
  }
  return kid;
}

/* Waits up to @ms for every process in @pids to be gone, reaping the orphans handed to this
 * process (it is a child subreaper in the tests below, so orphans of its descendants come
 * here rather than to an init that may never reap them, and a zombie cannot pass for a live
 * process). Return: whether all are gone. */
static bool all_gone(const pid_t *pids, int n, long ms) {
  for (long t = 0;; t += 10) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    int left = 0;
    for (int i = 0; i < n; i++)
      left += !(kill(pids[i], 0) != 0 && errno == ESRCH);
    if (left == 0)
      return true;
    if (t >= ms)
      return false;
    sleep_ms(10);
  }
}

/* Kills what is left (each pid with its group) and reaps every child, so that a regression
 * fails the test rather than leaving sleeps behind. */
static void kill_all(const pid_t *pids, int n) {
  for (int i = 0; i < n; i++)
    if (pids[i] > 0) {
      kill(-pids[i], SIGKILL);
      kill(pids[i], SIGKILL);
    }
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
    ;
}

/* Writes its worker's pid, the fork server's (its parent) and that of a `sleep 300` it starts
 * to the pipe whose write end is its input, then sleeps as long as the child does. */
static int linger(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)i, (void)ctx;
  int fd = *(const int *)in;
  pid_t pids[3] = {getpid(), getppid(), start_sleep("300")};
  if (pids[2] < 0 || write(fd, pids, sizeof pids) != (ssize_t)sizeof pids)
    return 1;
  sleep_ms(300000);
  return 0;
}

/* The process that created a procs executor is killed (SIGKILL: nothing of it runs) while a
 * task runs for 300 s: the fork server, the worker and the task's own child are gone within
 * seconds, not when the task ends, even though a process the caller forked (and left
 * running) still holds the caller's end of the fork server's control socket. */
static void test_no_orphan_when_caller_killed(void **st) {
  (void)st;
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t caller = fork();
  assert_true(caller >= 0);
  if (caller == 0) {
    /* The caller is a fork of the test: it reports failure by its exit status (and by never
     * writing to the pipe), never through cmocka. */
    close(p[0]);
    bg_executor_opts_t o;
    bg_executor_opts_init(&o);
    o.backend = "procs";
    o.workers = 1;
    bg_executor_t *ex = NULL;
    bg_future_t *f = NULL;
    if (bg_executor_create(&o, &ex) != 0)
      _exit(1);
    /* A fork that does not exec keeps every descriptor, the control socket's included. */
    pid_t holder = fork();
    if (holder == 0) {
      sleep_ms(300000);
      _exit(0);
    }
    if (holder < 0 || write(p[1], &holder, sizeof holder) != (ssize_t)sizeof holder ||
        bg_submit(ex, linger, NULL, &p[1], sizeof p[1], 0, &f) != 0)
      _exit(1);
    bg_future_wait(f, BG_WAIT_FOREVER);
    _exit(2);
  }
  close(p[1]);
  /* The holder's pid, then the worker's, the server's and the task's child's. */
  pid_t pids[4] = {0, 0, 0, 0};
  size_t have = 0;
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  while (have < sizeof pids && poll(&pf, 1, 10000) == 1) {
    ssize_t k = read(p[0], (char *)pids + have, sizeof pids - have);
    if (k <= 0)
      break;
    have += (size_t)k;
  }
  close(p[0]);
  kill(caller, SIGKILL);
  int status = 0;
  assert_int_equal(waitpid(caller, &status, 0), caller);
  bool got = have == sizeof pids;
  bool gone = got && all_gone(pids + 1, 3, 5000);
  kill_all(pids, gone ? 1 : 4);
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
  assert_true(got);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_true(gone);
  tk_assert_no_children();
}

/* Starts `sleep 373` and returns its pid without waiting for it. */
static int leave_child(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)i, (void)ctx;
  pid_t kid = start_sleep("373");
  *(pid_t *)out = kid;
  return kid < 0;
}

/* A process a procs task starts and leaves running is killed with its worker's process group
 * when the executor is destroyed. */
static void test_no_task_child_after_destroy(void **st) {
  (void)st;
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  bg_executor_t *ex = make("procs", 1, 0);
  bg_future_t *f = NULL;
  assert_int_equal(bg_submit(ex, leave_child, NULL, NULL, 0, sizeof(pid_t), &f), 0);
  assert_int_equal(bg_future_wait(f, BG_WAIT_FOREVER), 0);
  const void *out = NULL;
  assert_int_equal(bg_future_result(f, &out, NULL), 0);
  pid_t kid = *(const pid_t *)out;
  bg_future_release(f);
  bg_executor_destroy(ex, 0);
  bool gone = all_gone(&kid, 1, 5000);
  if (!gone)
    kill_all(&kid, 1);
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
  assert_true(kid > 0);
  assert_true(gone);
  tk_assert_no_children();
}

/* out = in * 1000 + i + *ctx: checks the item's bytes, its index in the batch and the ctx. */
static int batch_fn(void *out, const void *in, size_t i, void *ctx) {
  *(uint64_t *)out = *(const uint64_t *)in * 1000 + i + *(const uint64_t *)ctx;
  return 0;
}

static void test_executor_map(void **st) {
  (void)st;
  enum { N = 500 };
  static uint64_t in[N], out[N];
  static bg_item_status_t status[N];
  uint64_t ctx = 7;
  for (size_t i = 0; i < N; i++)
    in[i] = i + 1;
  for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) {
    bg_executor_t *ex = make(backends[b], 2, 0);
    /* The executor's own submission counter has moved: the batch still numbers from 0. */
    bg_future_release(submit_nap(ex, 0));
    memset(out, 0, sizeof out);
    assert_int_equal(
        bg_executor_map(ex, batch_fn, &ctx, in, sizeof in[0], out, sizeof out[0], N, status), 0);
    for (size_t i = 0; i < N; i++) {
      assert_int_equal(out[i], (i + 1) * 1000 + i + 7);
      assert_int_equal(status[i].state, BG_ITEM_OK);
      assert_int_equal(status[i].attempts, 1);
    }
    assert_int_equal(bg_executor_map(ex, batch_fn, &ctx, in, sizeof in[0], out, 8, 0, NULL), 0);
    assert_int_equal(bg_executor_map(NULL, batch_fn, &ctx, in, 8, out, 8, N, NULL), BG_EINVAL);
    assert_int_equal(bg_executor_map(ex, NULL, &ctx, in, 8, out, 8, N, NULL), BG_EINVAL);
    assert_int_equal(bg_executor_map(ex, batch_fn, &ctx, in, 0, out, 8, N, NULL), BG_EINVAL);
    assert_int_equal(bg_executor_map(ex, batch_fn, &ctx, in, 8, out, 0, N, NULL), BG_EINVAL);
    assert_int_equal(bg_executor_map(ex, batch_fn, &ctx, in, SIZE_MAX / 2, out, 8, N, NULL),
                     BG_ERANGE);
    bg_executor_destroy(ex, 0);
  }
  /* On processes a crash, an exit and a timeout fail only their items; failed entries of out
   * keep what they held. */
  bg_executor_t *ex = make("procs", 2, HANG_TIMEOUT_MS);
  uint64_t res[N_BAD];
  for (int i = 0; i < N_BAD; i++)
    res[i] = 12345;
  assert_int_equal(bg_executor_map(ex, misbehave, NULL, NULL, 0, res, sizeof res[0], N_BAD, status),
                   BG_ETASK);
  for (int i = 0; i < N_BAD; i++) {
    int want = i == T_SEGV || i == T_ABORT ? BG_ITEM_CRASHED
               : i == T_EXIT               ? BG_ITEM_EXITED
               : i == T_HANG               ? BG_ITEM_TIMEOUT
               : i == T_FAIL               ? BG_ITEM_FAILED
                                           : BG_ITEM_OK;
    assert_int_equal(status[i].state, want);
    assert_int_equal(res[i], want == BG_ITEM_OK ? (uint64_t)i * i : 12345);
  }
  bg_executor_destroy(ex, 0);
  tk_assert_no_children();
}

static void test_refusals(void **st) {
  (void)st;
  bg_executor_opts_t o;
  bg_executor_opts_init(&o);
  bg_executor_t *ex = NULL;
  assert_int_equal(bg_executor_create(&o, NULL), BG_EINVAL);
  o.timeout_ms = 10;
  assert_int_equal(bg_executor_create(&o, &ex), BG_EBACKEND);
  o.timeout_ms = 0;
  o.backend = "openmp";
  assert_int_equal(bg_executor_create(&o, &ex), BG_ENOENT);
  o.backend = "threads";
  o.workers = 5000;
  assert_int_equal(bg_executor_create(&o, &ex), BG_ERANGE);
  o.workers = 1;
  o.version = 99;
  assert_int_equal(bg_executor_create(&o, &ex), BG_EINVAL);
  assert_null(ex);

  ex = make("threads", 1, 0);
  bg_executor_t *other = make("threads", 1, 0);
  bg_future_t *f = NULL, *g = NULL;
  assert_int_equal(bg_submit(ex, NULL, NULL, NULL, 0, 0, &f), BG_EINVAL);
  assert_int_equal(bg_submit(ex, mark, NULL, NULL, 4, 0, &f), BG_EINVAL);
  assert_int_equal(bg_submit(NULL, mark, NULL, NULL, 0, 0, &f), BG_EINVAL);
  assert_int_equal(bg_submit(ex, mark, NULL, NULL, 0, 0, NULL), BG_EINVAL);
  assert_int_equal(bg_submit(ex, mark, NULL, NULL, 0, 0, &f), 0);
  assert_int_equal(bg_submit(other, mark, NULL, NULL, 0, 0, &g), 0);
  bg_future_t *mixed[2] = {f, g};
  size_t idx;
  bg_completion_t *c = NULL;
  assert_int_equal(bg_future_wait_any(mixed, 2, 0, &idx), BG_EINVAL);
  assert_int_equal(bg_future_wait_all(mixed, 0, 0), BG_EINVAL);
  assert_int_equal(bg_completion_create(mixed, 2, &c), BG_EINVAL);
  assert_int_equal(bg_future_wait(NULL, 0), BG_EINVAL);
  assert_int_equal(bg_future_cancel(NULL), BG_EINVAL);
  assert_int_equal(bg_future_result(NULL, NULL, NULL), BG_EINVAL);
  assert_int_equal(bg_future_state(NULL), BG_EINVAL);
  assert_int_equal(bg_completion_next(NULL, 0, &idx), BG_EINVAL);
  bg_future_release(f);
  bg_future_release(g);
  bg_future_release(NULL);
  bg_completion_destroy(NULL);
  bg_executor_destroy(ex, 0);
  bg_executor_destroy(other, 0);
  bg_executor_destroy(NULL, 0);
  assert_int_equal(bg_executor_workers(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_results),
      cmocka_unit_test(test_wait_timeout),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_wait_any_and_as_completed),
      cmocka_unit_test(test_procs_isolation),
      cmocka_unit_test(test_worker_state),
      cmocka_unit_test(test_init_failure),
      cmocka_unit_test(test_no_worker_left),
      cmocka_unit_test(test_destroy_pending),
      cmocka_unit_test(test_no_orphan_when_caller_killed),
      cmocka_unit_test(test_no_task_child_after_destroy),
      cmocka_unit_test(test_executor_map),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
