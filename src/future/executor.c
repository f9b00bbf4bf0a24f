/* SPDX-License-Identifier: MIT */
/* The executor: its queue of submitted tasks, and its life from create to destroy. The workers
 * (threads or processes) only pop tasks and finish them; everything about references and
 * waiting is here and in future.c. */
#include "brigade/error.h"
#include "brigade/topo.h"
#include "internal/future.h"
#include "internal/pool_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void bg_executor_opts_init(bg_executor_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->version = BG_EXECUTOR_OPTS_VERSION;
  o->backend = "threads";
}

static int pick_ops(const char *name, const bg__exec_ops **ops) {
  if (!name || strcmp(name, "threads") == 0)
    *ops = &bg__exec_threads;
  else if (strcmp(name, "procs") == 0)
    *ops = &bg__exec_procs;
  else
    return BG_ENOENT;
  return BG_OK;
}

static int init_sync(bg_executor_t *ex) {
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0)
    return BG_ESYS;
  int ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
  int have_mu = ok && pthread_mutex_init(&ex->mu, NULL) == 0;
  int have_done = have_mu && pthread_cond_init(&ex->done_cv, &ca) == 0;
  int have_work = have_done && pthread_cond_init(&ex->work_cv, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (have_work)
    return BG_OK;
  if (have_done)
    pthread_cond_destroy(&ex->done_cv);
  if (have_mu)
    pthread_mutex_destroy(&ex->mu);
  return BG_ESYS;
}

int bg_executor_create(const bg_executor_opts_t *o, bg_executor_t **out) {
  if (!out)
    return BG_EINVAL;
  *out = NULL;
  bg_executor_opts_t opts;
  bg_executor_opts_init(&opts);
  if (o) {
    if (o->version != BG_EXECUTOR_OPTS_VERSION)
      return BG_EINVAL;
    opts = *o;
  }
  const bg__exec_ops *ops;
  int rc = pick_ops(opts.backend, &ops);
  if (rc != 0)
    return rc;
  if (opts.timeout_ms && ops == &bg__exec_threads)
    return BG_EBACKEND;
  if (opts.workers > BG__MAX_WORKERS)
    return BG_ERANGE;
  unsigned workers = opts.workers;
  if (!workers) {
    bg_topo_t *t;
    if ((rc = bg_topo_create(&t)) != 0)
      return rc;
    workers = bg_topo_default_workers(t);
    bg_topo_destroy(t);
  }
  bg_executor_t *ex = calloc(1, sizeof *ex);
  if (!ex)
    return BG_ENOMEM;
  if ((rc = init_sync(ex)) != 0) {
    free(ex);
    return rc;
  }
  ex->refs = 1;
  ex->workers = workers;
  ex->timeout_ms = opts.timeout_ms;
  ex->ops = ops;
  if ((rc = ops->start(ex, &opts)) != 0) {
    bg__exec_free(ex);
    return rc;
  }
  *out = ex;
  return BG_OK;
}

void bg__exec_free(bg_executor_t *ex) {
  pthread_cond_destroy(&ex->work_cv);
  pthread_cond_destroy(&ex->done_cv);
  pthread_mutex_destroy(&ex->mu);
  free(ex);
}

void bg_executor_destroy(bg_executor_t *ex, unsigned flags) {
  if (!ex)
    return;
  pthread_mutex_lock(&ex->mu);
  ex->stopping = true;
  if (flags & BG_EXECUTOR_CANCEL_PENDING) {
    for (bg_future_t *f = ex->head; f; f = f->next)
      if (f->state == BG_FUTURE_PENDING)
        f->state = BG_FUTURE_CANCELLED;
    pthread_cond_broadcast(&ex->done_cv);
  }
  ex->ops->wake(ex, true);
  pthread_mutex_unlock(&ex->mu);
  /* The workers leave only once the queue is empty (procs: or fail what is left when no
   * worker can start), so every future has finished or been dropped by now. */
  ex->ops->stop(ex);
  pthread_mutex_lock(&ex->mu);
  bool last = --ex->refs == 0;
  pthread_mutex_unlock(&ex->mu);
  if (last)
    bg__exec_free(ex);
}

unsigned bg_executor_workers(const bg_executor_t *ex) {
  return ex ? ex->workers : 0;
}

int bg_submit(bg_executor_t *ex, bg_task_fn fn, void *ctx, const void *in, size_t in_size,
              size_t out_size, bg_future_t **f) {
  if (f)
    *f = NULL;
  if (!ex || !fn || !f || (!in && in_size))
    return BG_EINVAL;
  if (in_size > SIZE_MAX / 2 - sizeof(bg_future_t) || out_size > SIZE_MAX / 2)
    return BG_ERANGE;
  bg_future_t *x = malloc(sizeof *x + in_size + out_size);
  if (!x)
    return BG_ENOMEM;
  char *mem = (char *)(x + 1);
  *x = (bg_future_t){.ex = ex,
                     .fn = fn,
                     .ctx = ctx,
                     .in_size = in_size,
                     .out_size = out_size,
                     .in = in_size ? mem : NULL,
                     .out = out_size ? mem + in_size : NULL,
                     .refs = 2,
                     .state = BG_FUTURE_PENDING};
  if (in_size)
    memcpy(x->in, in, in_size);
  /* A task that fails without writing leaves zeros, not whatever malloc returned. */
  if (out_size)
    memset(x->out, 0, out_size);
  pthread_mutex_lock(&ex->mu);
  if (ex->stopping) {
    pthread_mutex_unlock(&ex->mu);
    free(x);
    return BG_ECANCELED;
  }
  x->index = ex->submitted++;
  ex->refs++;
  if (ex->tail)
    ex->tail->next = x;
  else
    ex->head = x;
  ex->tail = x;
  ex->ops->wake(ex, false);
  pthread_mutex_unlock(&ex->mu);
  *f = x;
  return BG_OK;
}

bg_future_t *bg__exec_pop(bg_executor_t *ex) {
  while (ex->head) {
    bg_future_t *f = ex->head;
    ex->head = f->next;
    if (!ex->head)
      ex->tail = NULL;
    f->next = NULL;
    if (f->state == BG_FUTURE_PENDING) {
      f->state = BG_FUTURE_RUNNING;
      return f;
    }
    /* Cancelled: the queue's reference goes. The owner still holds the executor's, so this
     * cannot free it. */
    bg__future_unref(f);
  }
  return NULL;
}

void bg__exec_finish(bg_executor_t *ex, bg_future_t *f, bg_item_status_t st) {
  f->st = st;
  f->state = BG_FUTURE_DONE;
  pthread_cond_broadcast(&ex->done_cv);
  bg__future_unref(f);
}
