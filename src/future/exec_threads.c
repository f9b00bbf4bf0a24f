/* SPDX-License-Identifier: MIT */
/* Executor workers as threads: each pops the next task under the executor's mutex, runs it
 * unlocked and finishes it. A task cannot be stopped once running, which is why a timeout is
 * refused at create. */
#include "brigade/error.h"
#include "internal/future.h"
#include "internal/job.h"

#include <stdlib.h>

typedef struct tstate {
  bg_executor_t *ex;
  pthread_t *tids;
  struct targ *args;
  bg__life life;    /* its state and tasks arrays: entry w is worker w's (W) */
  unsigned inited;  /* M: workers whose init callback has run */
  bool init_failed; /* M */
} tstate;

typedef struct targ {
  tstate *ts;
  unsigned w;
} targ;

static void *worker(void *arg) {
  targ *a = arg;
  tstate *ts = a->ts;
  bg_executor_t *ex = ts->ex;
  bg__life *l = &ts->life;
  unsigned w = a->w;
  int rc = l->init ? l->init(w, l->ctx, &l->state[w]) : 0;
  pthread_mutex_lock(&ex->mu);
  ts->inited++;
  if (rc != 0) {
    ts->init_failed = true;
    l->state[w] = NULL;
  }
  pthread_cond_broadcast(&ex->done_cv);
  /* Wait for the verdict on the others: one failed init stops every worker. */
  while (ts->inited < ex->workers && !ts->init_failed)
    pthread_cond_wait(&ex->done_cv, &ex->mu);
  bool run = !ts->init_failed;
  pthread_mutex_unlock(&ex->mu);
  if (run) {
    bg__worker_set((int)w, l->state[w], NULL);
    bg__task_enter();
    pthread_mutex_lock(&ex->mu);
    for (;;) {
      bg_future_t *f = bg__exec_pop(ex);
      if (!f) {
        if (ex->stopping)
          break;
        pthread_cond_wait(&ex->work_cv, &ex->mu);
        continue;
      }
      pthread_mutex_unlock(&ex->mu);
      if (l->max_tasks && l->tasks[w]++ >= l->max_tasks) {
        bg__life_recycle(l, w);
        l->tasks[w] = 1;
      }
      int code = f->fn(f->out, f->in, f->index, f->ctx);
      pthread_mutex_lock(&ex->mu);
      bg__exec_finish(ex, f, (bg_item_status_t){code ? BG_ITEM_FAILED : BG_ITEM_OK, code, 1});
    }
    pthread_mutex_unlock(&ex->mu);
    bg__task_leave();
    bg__worker_set(-1, NULL, NULL);
  }
  if (rc == 0 && l->exit)
    l->exit(w, l->ctx, l->state[w]);
  return NULL;
}

static void free_state(tstate *ts) {
  free(ts->life.tasks);
  free(ts->life.state);
  free(ts->args);
  free(ts->tids);
  free(ts);
}

static void join(tstate *ts, unsigned n) {
  for (unsigned w = 0; w < n; w++)
    pthread_join(ts->tids[w], NULL);
}

static int threads_start(bg_executor_t *ex, const bg_executor_opts_t *o) {
  unsigned n = ex->workers;
  tstate *ts = calloc(1, sizeof *ts);
  if (!ts)
    return BG_ENOMEM;
  ts->ex = ex;
  ts->tids = calloc(n, sizeof *ts->tids);
  ts->args = calloc(n, sizeof *ts->args);
  ts->life = (bg__life){.init = o->worker_init,
                        .exit = o->worker_exit,
                        .ctx = o->worker_ctx,
                        .max_tasks = o->max_tasks,
                        .state = calloc(n, sizeof(void *)),
                        .tasks = calloc(n, sizeof(size_t))};
  if (!ts->tids || !ts->args || !ts->life.state || !ts->life.tasks) {
    free_state(ts);
    return BG_ENOMEM;
  }
  ex->impl = ts;
  for (unsigned w = 0; w < n; w++) {
    targ *a = &ts->args[w];
    *a = (targ){ts, w};
    if (pthread_create(&ts->tids[w], NULL, worker, a) != 0) {
      /* The ones started are told to stop as if an init had failed. */
      pthread_mutex_lock(&ex->mu);
      ts->init_failed = true;
      pthread_cond_broadcast(&ex->done_cv);
      pthread_mutex_unlock(&ex->mu);
      join(ts, w);
      free_state(ts);
      return BG_ESYS;
    }
  }
  pthread_mutex_lock(&ex->mu);
  while (ts->inited < n && !ts->init_failed)
    pthread_cond_wait(&ex->done_cv, &ex->mu);
  bool failed = ts->init_failed;
  pthread_mutex_unlock(&ex->mu);
  if (failed) {
    join(ts, n);
    free_state(ts);
    return BG_ETASK;
  }
  return BG_OK;
}

static void threads_wake(bg_executor_t *ex, bool all) {
  if (all)
    pthread_cond_broadcast(&ex->work_cv);
  else
    pthread_cond_signal(&ex->work_cv);
}

static void threads_stop(bg_executor_t *ex) {
  tstate *ts = ex->impl;
  join(ts, ex->workers);
  free_state(ts);
  ex->impl = NULL;
}

const bg__exec_ops bg__exec_threads = {threads_start, threads_wake, threads_stop};
