/* SPDX-License-Identifier: MIT */
/* Supervised children. The bench polls rather than blocks: every 10 ms it looks at the child,
 * at the watchdog's view of the items in flight and at the SIGINT/SIGTERM flag, so a hang in a
 * user's function never makes the bench itself deaf to signals. */
#define _GNU_SOURCE
#include "supervise.h"
#include "stats.h"
#include "workload.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_NS 10000000L

pid_t bench_child_fork(void) {
  pid_t parent = getpid();
  /* Buffered output would otherwise be written twice: once by the child, if it exits. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid != 0) {
    /* Both sides set the group, so it exists before either goes on (no race with a kill). */
    if (pid > 0)
      setpgid(pid, pid);
    return pid;
  }
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* The bench may have died between the fork and the prctl: then nobody would kill us. */
  if (getppid() != parent)
    _exit(125);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  return 0;
}

static void nap(void) {
  struct timespec ts = {0, POLL_NS};
  nanosleep(&ts, NULL);
}

/* Killing first, while the leader is a zombie that is not yet reaped, keeps its pid (and so the
 * group's id) from being reused by a stranger. */
void bench_child_kill(pid_t pid, int *status) {
  kill(-pid, SIGKILL);
  while (waitpid(pid, status, 0) < 0 && errno == EINTR)
    ;
}

/* 1 when the child has ended (not reaped yet), 0 while it runs. */
static int ended(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno != EINTR;
  return si.si_pid == pid;
}

int bench_child_wait(pid_t pid, double seconds, int *status) {
  double until = seconds >= 0 ? bench_now() + seconds : 0;
  for (;;) {
    if (ended(pid)) {
      bench_child_kill(pid, status);
      return 1;
    }
    if (seconds >= 0 && bench_now() >= until)
      return 0;
    nap();
  }
}

bench_sup_share *bench_sup_share_create(void) {
  void *m = mmap(NULL, sizeof(bench_sup_share), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  return m == MAP_FAILED ? NULL : m;
}

void bench_sup_share_destroy(bench_sup_share *s) {
  if (s)
    munmap(s, sizeof *s);
}

enum watched { ENDED, TIMED_OUT, CANCELED };

/* Watches one child to its end: its death, an item past the timeout (marked, then the child
 * killed; *item says which), or a signal to the bench (the child killed). The child is reaped
 * in every case. */
static enum watched watch(pid_t pid, bench_foreign *f, double timeout, int *status, size_t *item) {
  for (;;) {
    if (ended(pid)) {
      bench_child_kill(pid, status);
      return ENDED;
    }
    if (bench_interrupted) {
      bench_child_kill(pid, status);
      return CANCELED;
    }
    if (bench_foreign_stuck(f, bench_now(), timeout, item)) {
      bench_foreign_mark(f, *item, BG_ITEM_TIMEOUT, (int)(timeout * 1000));
      bench_child_kill(pid, status);
      return TIMED_OUT;
    }
    nap();
  }
}

/* Marks the item a child died in with how it died (*state, *code, *item say it). 0 when no
 * item was in flight: the process died between items, and no item can be blamed. */
static int blame(bench_foreign *f, int status, size_t *item, int *state, int *code) {
  if (!bench_foreign_in_flight(f, item))
    return 0;
  *state = WIFSIGNALED(status) ? BG_ITEM_CRASHED : BG_ITEM_EXITED;
  *code = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
  bench_foreign_mark(f, *item, *state, *code);
  return 1;
}

int bench_supervise_count(bench_foreign *f, double timeout, size_t *children) {
  bench_foreign_reset(f);
  size_t at = 0, streak = 0;
  int last_state = 0, last_code = 0;
  for (;;) {
    /* Each child runs the items in order from the first pending one, so the items before the
     * one it died in are done: the next child starts after it (linear in the items overall). */
    if ((at = bench_foreign_next_pending(f, at)) >= bench_foreign_items(f))
      return 0;
    bench_foreign_idle(f);
    pid_t pid = bench_child_fork();
    if (pid < 0)
      return BG_ESYS;
    if (pid == 0) {
      bench_foreign_run_pending(f, at);
      _exit(0);
    }
    (*children)++;
    int status = 0, state = BG_ITEM_TIMEOUT, code = (int)(timeout * 1000);
    size_t item = 0;
    enum watched w = watch(pid, f, timeout, &status, &item);
    if (w == CANCELED)
      return BG_ECANCELED;
    /* Ended between items: normally because everything ran; if the child was killed from
     * outside, the items left stay "never ran" rather than loop forever. */
    if (w == ENDED && !blame(f, status, &item, &state, &code))
      return 0;
    /* The breaker, as the procs backend's: a child that died in its very first item, the same
     * way as the one before, made no progress; after BENCH_SUP_BREAKER of those in a row the
     * rest is not run (a million items that all crash would otherwise be a million forks). */
    int same = item == at && state == last_state && code == last_code;
    streak = same ? streak + 1 : item == at ? 1 : 0;
    last_state = state, last_code = code;
    if (streak >= BENCH_SUP_BREAKER) {
      bench_foreign_trip(f, item + 1, state, code);
      return 0;
    }
    at = item + 1;
  }
}

int bench_supervise_row(bench_foreign *f, double timeout, void (*run)(void *, bench_sup_share *),
                        void *arg, bench_sup_share *sh, bench_sup_outcome *out) {
  memset(out, 0, sizeof *out);
  out->died_exit = -1;
  memset(sh, 0, sizeof *sh);
  bench_foreign_idle(f);
  double t0 = bench_now();
  pid_t pid = bench_child_fork();
  if (pid < 0)
    return BG_ESYS;
  if (pid == 0) {
    sh->started = bench_now();
    run(arg, sh);
    sh->done = 1;
    _exit(0);
  }
  out->children = 1;
  int status = 0;
  size_t stuck;
  enum watched w = watch(pid, f, timeout, &status, &stuck);
  out->fork_s = sh->started > t0 ? sh->started - t0 : 0;
  if (w == CANCELED)
    return BG_ECANCELED;
  out->done = w == ENDED && sh->done && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (out->done)
    return 0;
  out->timed_out = w == TIMED_OUT;
  if (w == ENDED && WIFSIGNALED(status))
    out->died_signal = WTERMSIG(status);
  else if (w == ENDED)
    out->died_exit = WEXITSTATUS(status);
  return 0;
}
