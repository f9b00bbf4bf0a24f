/* SPDX-License-Identifier: MIT */
/* A procs executor's worker process: receives one task at a time, runs it, sends the result.
 * Like the procs backend's workers it never returns into the caller's code. */
#include "internal/exec_procs.h"
#include "internal/job.h"
#include "internal/procs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The task buffer lives at file scope so that a task that calls exit() leaves nothing a leak
 * checker could report: it is still reachable. */
static char *buf;
static size_t cap;

/* Serves tasks until told to quit or the manager is gone. */
static void serve(const bg__xchild *c) {
  bg__xcmd m;
  while (bg__sock_recv(c->fd, &m, sizeof m) == 0 && m.op == BG__XCMD_RUN) {
    size_t need = (size_t)(m.in_size + m.out_size);
    if (need > cap) {
      char *p = realloc(buf, need);
      if (!p)
        _exit(127);
      buf = p;
      cap = need;
    }
    char *in = m.in_size ? buf : NULL, *out = m.out_size ? buf + m.in_size : NULL;
    if (in && bg__sock_recv(c->fd, in, (size_t)m.in_size) != 0)
      break;
    /* The same starting point as on threads: a task that writes nothing returns zeros. */
    if (out)
      memset(out, 0, (size_t)m.out_size);
    bg_task_fn fn = (bg_task_fn)(uintptr_t)m.fn;
    bg__xreply r = {fn(out, in, (size_t)m.index, (void *)(uintptr_t)m.ctx), 0};
    if (bg__sock_send(c->fd, &r, sizeof r) != 0 ||
        (out && bg__sock_send(c->fd, out, (size_t)m.out_size) != 0))
      break;
  }
  free(buf);
  buf = NULL;
}

_Noreturn void bg__exec_child(const bg__xchild *c) {
  bg__procs_child_setup(c->parent);
  void *state = NULL;
  if (c->init && c->init(c->w, c->ctx, &state) != 0)
    _exit(BG__PROCS_INIT_FAILED);
  bg__worker_set((int)c->w, state, NULL);
  bg__task_enter();
  bg__xreply ready = {0, 1};
  if (bg__sock_send(c->fd, &ready, sizeof ready) == 0)
    serve(c);
  bg__task_leave();
  if (c->exit)
    c->exit(c->w, c->ctx, state);
  fflush(NULL);
  _exit(0);
}
