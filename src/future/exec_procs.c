/* SPDX-License-Identifier: MIT */
/* Executor workers as processes. One manager thread in the caller's process hands each idle
 * worker the next task over its socket, waits (poll) for results, for deaths and for timeouts,
 * and replaces a worker that died, timed out or reached max_tasks. A death fails only the
 * task that worker was running: every other future goes on. Workers are forked by the fork
 * server (forkserver.c), never by this multi-threaded process. */
#define _GNU_SOURCE
#include "brigade/error.h"
#include "internal/clock.h"
#include "internal/exec_procs.h"
#include "internal/future.h"
#include "internal/procs.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* A worker whose processes die this many times in a row before they are ready (a failing init
 * callback, fork failing) is given up rather than forked forever. */
#define START_FAILURES_MAX 3

typedef struct xkid {
  pid_t pid;         /* -1: no process */
  int fd;            /* the manager's end of its socket, -1 without a process */
  bg_future_t *f;    /* the task it runs, or NULL when idle */
  uint64_t deadline; /* when that task times out; 0: never */
  size_t tasks;      /* tasks run by this process */
  bool gone;         /* given up: its starts kept failing */
  int last_status;   /* how its last failed start ended (a wait status) */
} xkid;

typedef struct pstate {
  bg_executor_t *ex;
  xkid *kids;
  bool *fresh;       /* the manager's: workers just given a task */
  unsigned *who;     /* the manager's: which worker each poll entry is */
  struct pollfd *pf; /* the manager's: one entry for the eventfd, one per worker */
  int evfd;          /* wakes the manager: submissions, cancels, stop */
  pthread_t manager;
  bg__forkserver server;
  bool have_server;
  size_t max_tasks;
} pstate;

static int reap(pstate *ps, xkid *k) {
  close(k->fd);
  int status = bg__forkserver_reap(&ps->server, k->pid);
  k->fd = -1;
  k->pid = -1;
  return status;
}

/* Has worker w forked and waits until its init callback has run. Return: 0; BG_ETASK (it died
 * first: its wait status in last_status); BG_ESYS. */
static int spawn(pstate *ps, unsigned w) {
  xkid *k = &ps->kids[w];
  long pid;
  int fd;
  if (bg__forkserver_spawn(&ps->server, w, &pid, &fd) != 0)
    return BG_ESYS;
  *k = (xkid){.pid = (pid_t)pid, .fd = fd, .gone = k->gone};
  bg__xreply r;
  if (bg__sock_recv(k->fd, &r, sizeof r) != 0 || !r.ready) {
    k->last_status = reap(ps, k);
    return BG_ETASK;
  }
  return BG_OK;
}

/* Starts worker w again, up to START_FAILURES_MAX times, else gives it up. */
static void respawn(pstate *ps, unsigned w) {
  for (int i = 0; i < START_FAILURES_MAX; i++)
    if (spawn(ps, w) == 0)
      return;
  ps->kids[w].gone = true;
}

static void finish(pstate *ps, bg_future_t *f, bg_item_status_t st) {
  pthread_mutex_lock(&ps->ex->mu);
  bg__exec_finish(ps->ex, f, st);
  pthread_mutex_unlock(&ps->ex->mu);
}

/* What a wait status means for the task; -1 (the fork server could not say: it is gone)
 * reads as an exit with status -1, not as a signal. */
static bg_item_status_t death_status(int status) {
  if (status != -1 && WIFSIGNALED(status))
    return (bg_item_status_t){BG_ITEM_CRASHED, WTERMSIG(status), 1};
  return (bg_item_status_t){BG_ITEM_EXITED, WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1};
}

/* Worker w's process died (or its socket broke): its task fails with the cause. */
static void on_death(pstate *ps, unsigned w) {
  xkid *k = &ps->kids[w];
  kill(-k->pid, SIGKILL);
  bg_item_status_t st = death_status(reap(ps, k));
  if (k->f)
    finish(ps, k->f, st);
  k->f = NULL;
  respawn(ps, w);
}

static void on_timeout(pstate *ps, unsigned w) {
  xkid *k = &ps->kids[w];
  /* The whole group: what the task started dies with it. */
  kill(-k->pid, SIGKILL);
  reap(ps, k);
  finish(ps, k->f, (bg_item_status_t){BG_ITEM_TIMEOUT, (int32_t)ps->ex->timeout_ms, 1});
  k->f = NULL;
  respawn(ps, w);
}

static void quit(pstate *ps, xkid *k) {
  bg__xcmd m = {.op = BG__XCMD_QUIT};
  if (bg__sock_send(k->fd, &m, sizeof m) != 0)
    kill(-k->pid, SIGKILL);
  reap(ps, k);
}

static void on_reply(pstate *ps, unsigned w) {
  xkid *k = &ps->kids[w];
  bg_future_t *f = k->f;
  bg__xreply r;
  if (bg__sock_recv(k->fd, &r, sizeof r) != 0 ||
      (f->out_size && bg__sock_recv(k->fd, f->out, f->out_size) != 0)) {
    on_death(ps, w);
    return;
  }
  k->f = NULL;
  finish(ps, f, (bg_item_status_t){r.code ? BG_ITEM_FAILED : BG_ITEM_OK, r.code, 1});
  if (ps->max_tasks && ++k->tasks >= ps->max_tasks) {
    quit(ps, k);
    respawn(ps, w);
  }
}

static int send_task(pstate *ps, unsigned w) {
  xkid *k = &ps->kids[w];
  bg_future_t *f = k->f;
  bg__xcmd m = {BG__XCMD_RUN,
                f->index,
                f->in_size,
                f->out_size,
                (uint64_t)(uintptr_t)f->fn,
                (uint64_t)(uintptr_t)f->ctx};
  k->deadline = ps->ex->timeout_ms ? bg__now_ns() + ps->ex->timeout_ms * 1000000ull : 0;
  if (bg__sock_send(k->fd, &m, sizeof m) != 0 ||
      (f->in_size && bg__sock_send(k->fd, f->in, f->in_size) != 0))
    return -1;
  return 0;
}

/* With the mutex held: gives each idle worker a task (marked in @fresh), fails the queue when
 * every worker is gone, and says whether the manager may leave. */
static bool assign(pstate *ps, bool *fresh) {
  bg_executor_t *ex = ps->ex;
  unsigned busy = 0, alive = 0;
  for (unsigned w = 0; w < ex->workers; w++) {
    xkid *k = &ps->kids[w];
    fresh[w] = false;
    if (k->gone)
      continue;
    alive++;
    if (!k->f && (k->f = bg__exec_pop(ex)) != NULL)
      fresh[w] = true;
    busy += k->f != NULL;
  }
  if (alive == 0) {
    /* No worker can start: every task fails the way the last start did. */
    bg_item_status_t st = death_status(ps->kids[0].last_status);
    for (bg_future_t *f; (f = bg__exec_pop(ex)) != NULL;)
      bg__exec_finish(ex, f, st);
  }
  return ex->stopping && busy == 0 && !ex->head;
}

/* Waits for results, deaths, submissions or the next deadline, and handles them. */
static void wait_events(pstate *ps) {
  struct pollfd *pf = ps->pf;
  unsigned *who = ps->who, n = 0;
  uint64_t now = bg__now_ns(), next = UINT64_MAX;
  pf[n++] = (struct pollfd){.fd = ps->evfd, .events = POLLIN};
  for (unsigned w = 0; w < ps->ex->workers; w++) {
    xkid *k = &ps->kids[w];
    if (!k->f)
      continue;
    who[n] = w;
    pf[n++] = (struct pollfd){.fd = k->fd, .events = POLLIN};
    if (k->deadline && k->deadline < next)
      next = k->deadline;
  }
  int ms = next == UINT64_MAX ? -1 : next <= now ? 0 : (int)((next - now) / 1000000u + 1);
  if (poll(pf, n, ms) < 0)
    return;
  /* Drain the wake-ups; the queue itself is read under the mutex in assign(). */
  uint64_t v;
  ssize_t drained = pf[0].revents ? read(ps->evfd, &v, sizeof v) : 0;
  (void)drained;
  now = bg__now_ns();
  for (unsigned i = 1; i < n; i++) {
    xkid *k = &ps->kids[who[i]];
    if (pf[i].revents)
      on_reply(ps, who[i]);
    else if (k->deadline && now >= k->deadline)
      on_timeout(ps, who[i]);
  }
}

static void *manager(void *arg) {
  pstate *ps = arg;
  bg_executor_t *ex = ps->ex;
  unsigned n = ex->workers;
  bool *fresh = ps->fresh;
  pthread_mutex_lock(&ex->mu);
  while (!assign(ps, fresh)) {
    pthread_mutex_unlock(&ex->mu);
    for (unsigned w = 0; w < n; w++)
      if (fresh[w] && send_task(ps, w) != 0)
        on_death(ps, w);
    wait_events(ps);
    pthread_mutex_lock(&ex->mu);
  }
  pthread_mutex_unlock(&ex->mu);
  for (unsigned w = 0; w < n; w++)
    if (ps->kids[w].pid > 0)
      quit(ps, &ps->kids[w]);
  return NULL;
}

static void free_state(pstate *ps) {
  if (ps->have_server)
    bg__forkserver_stop(&ps->server);
  if (ps->evfd >= 0)
    close(ps->evfd);
  free(ps->pf);
  free(ps->who);
  free(ps->fresh);
  free(ps->kids);
  free(ps);
}

static int procs_start(bg_executor_t *ex, const bg_executor_opts_t *o) {
  pstate *ps = calloc(1, sizeof *ps);
  if (!ps)
    return BG_ENOMEM;
  unsigned n = ex->workers;
  *ps = (pstate){.ex = ex,
                 .kids = calloc(n, sizeof(xkid)),
                 .fresh = calloc(n, sizeof(bool)),
                 .who = calloc(n + 1, sizeof(unsigned)),
                 .pf = calloc(n + 1, sizeof(struct pollfd)),
                 .evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
                 .max_tasks = o->max_tasks};
  bool have = ps->kids && ps->fresh && ps->who && ps->pf;
  int rc = !have ? BG_ENOMEM : ps->evfd < 0 ? BG_ESYS : BG_OK;
  for (unsigned w = 0; w < n && ps->kids; w++)
    ps->kids[w] = (xkid){.pid = -1, .fd = -1};
  bg__xchild tmpl = {.init = o->worker_init, .exit = o->worker_exit, .ctx = o->worker_ctx};
  if (rc == 0 && (rc = bg__forkserver_start(&ps->server, &tmpl)) == 0)
    ps->have_server = true;
  /* A failing start here is the caller's to see (as a thread pool's init failure is), not a
   * worker to give up on. */
  unsigned started = 0;
  while (rc == 0 && started < n && (rc = spawn(ps, started)) == 0)
    started++;
  ex->impl = ps;
  if (rc == 0 && pthread_create(&ps->manager, NULL, manager, ps) != 0)
    rc = BG_ESYS;
  if (rc != 0) {
    for (unsigned w = 0; w < started; w++)
      quit(ps, &ps->kids[w]);
    free_state(ps);
    ex->impl = NULL;
  }
  return rc;
}

static void procs_wake(bg_executor_t *ex, bool all) {
  (void)all;
  pstate *ps = ex->impl;
  uint64_t one = 1;
  /* A failed write means a full counter, which already wakes the manager. */
  ssize_t written = write(ps->evfd, &one, sizeof one);
  (void)written;
}

static void procs_stop(bg_executor_t *ex) {
  pstate *ps = ex->impl;
  pthread_join(ps->manager, NULL);
  free_state(ps);
  ex->impl = NULL;
}

const bg__exec_ops bg__exec_procs = {procs_start, procs_wake, procs_stop};
