/* SPDX-License-Identifier: MIT */
/* The executor's private layout, shared by the futures (future.c), the queue and lifecycle
 * (executor.c) and the two kinds of workers (exec_threads.c, exec_procs.c). Field tags:
 * I: immutable after creation; M: guarded by the executor's mutex; W: the workers' own. */
#ifndef BRIGADE_INTERNAL_FUTURE_H
#define BRIGADE_INTERNAL_FUTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brigade/future.h"

struct bg_future {
  bg_executor_t *ex;   /* I */
  bg_task_fn fn;       /* I */
  void *ctx;           /* I */
  size_t index;        /* I: the submission's number */
  size_t in_size;      /* I */
  size_t out_size;     /* I */
  char *in;            /* I: the private copy of the input, in the same allocation */
  char *out;           /* W until done, then read-only: the result */
  unsigned refs;       /* M: the caller's, and the executor's until it finishes or is dropped */
  int state;           /* M: bg_future_state_t */
  bg_item_status_t st; /* M: written before state becomes DONE */
  bg_future_t *next;   /* M: the queue's link */
};

/* What a kind of worker does. */
typedef struct bg__exec_ops {
  /* Starts the workers; on failure everything it started is stopped again. */
  int (*start)(bg_executor_t *ex, const bg_executor_opts_t *o);
  /* Tells the workers the queue changed (@all: or that the executor stops). Called with the
   * mutex held. */
  void (*wake)(bg_executor_t *ex, bool all);
  /* Waits until the workers have drained the queue and stopped, and frees what start made. */
  void (*stop)(bg_executor_t *ex);
} bg__exec_ops;

extern const bg__exec_ops bg__exec_threads;
extern const bg__exec_ops bg__exec_procs;

struct bg_executor {
  pthread_mutex_t mu;
  pthread_cond_t done_cv;   /* broadcast whenever a future finishes or is cancelled */
  pthread_cond_t work_cv;   /* threads: idle workers wait here */
  bg_future_t *head, *tail; /* M: the queue, cancelled entries included until popped */
  size_t submitted;         /* M */
  bool stopping;            /* M: no more submissions; workers leave once the queue is empty */
  unsigned refs;            /* M: 1 for the owner until destroy, plus 1 per future */
  unsigned workers;         /* I */
  uint32_t timeout_ms;      /* I */
  const bg__exec_ops *ops;  /* I */
  void *impl;               /* the workers' own state */
};

/* The next queued task, now running, or NULL when the queue is empty. Cancelled entries on the
 * way are dropped. Called with the mutex held. */
bg_future_t *bg__exec_pop(bg_executor_t *ex);

/* Marks a running task done with @st and wakes its waiters. Called with the mutex held. */
void bg__exec_finish(bg_executor_t *ex, bg_future_t *f, bg_item_status_t st);

/* Drops one reference to @f; returns true when that freed the executor's last future after
 * bg_executor_destroy, so the caller must free the executor once it unlocked. Mutex held. */
bool bg__future_unref(bg_future_t *f);

/* Frees a stopped executor whose references are gone. */
void bg__exec_free(bg_executor_t *ex);

#endif
