/* SPDX-License-Identifier: MIT */
/* One running map as the backends see it: the user's description, the scheduler, and one
 * statistics slot per worker. Backends only call bg__job_work() (or bg__job_run_range() when
 * they schedule items themselves, as OpenMP's native schedules do). */
#ifndef BRIGADE_INTERNAL_JOB_H
#define BRIGADE_INTERNAL_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brigade/map.h"
#include "internal/atomic.h"
#include "internal/sched.h"

/* Per-worker outcome, on its own cache line. O: written by its worker only, read by the caller
 * after the backend has joined every worker. */
typedef struct bg__wstat {
  _Alignas(BG_CACHELINE) size_t ok; /* O */
  size_t failed;                    /* O */
  size_t first_failed;              /* O: lowest failed index seen by this worker */
  int first_code;                   /* O */
} bg__wstat;

typedef struct bg__job {
  const bg_map_desc_t *d; /* I */
  bg__sched *sched;       /* I */
  bg__wstat *stats;       /* I: one per worker */
  unsigned workers;       /* I */
  bool halt_on_error;     /* I */
} bg__job;

/* Runs items [b, e) as worker w and records their outcomes. Inline, because OpenMP's native
 * loops call it once per item. The caller must be between bg__task_enter() and
 * bg__task_leave(). */
static inline void bg__job_run_range(bg__job *j, unsigned w, size_t b, size_t e) {
  const bg_map_desc_t *d = j->d;
  bg__wstat *st = &j->stats[w];
  const char *in = d->in;
  char *out = d->out;
  for (size_t i = b; i < e; i++) {
    int rc = d->fn(out ? out + i * d->out_size : NULL, in ? in + i * d->in_size : NULL, i, d->ctx);
    if (rc == 0) {
      st->ok++;
      continue;
    }
    st->failed++;
    if (i < st->first_failed) {
      st->first_failed = i;
      st->first_code = rc;
    }
    if (j->halt_on_error) {
      bg__sched_halt(j->sched);
      break;
    }
  }
}

/* Mark the calling thread as running tasks (so a nested bg_map runs inline) and unmark it. A
 * worker marks itself once around all its chunks, not per item: the thread-local access goes
 * through __tls_get_addr in position-independent code. */
void bg__task_enter(void);
void bg__task_leave(void);

/* Asks the scheduler for chunks as worker w and runs them until none is left. */
void bg__job_work(bg__job *j, unsigned w);

/* True while the calling thread is inside a task of any pool; bg_map then runs inline. */
bool bg__in_task(void);

/* Clears a worker's statistics before a map. */
void bg__wstat_reset(bg__wstat *s);

#endif
