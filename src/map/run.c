/* SPDX-License-Identifier: MIT */
/* The worker loop every backend shares: ask the scheduler for chunks and run them, with the
 * thread marked as "inside a task" so a nested bg_map can tell. */
#include "internal/job.h"

#include <stdint.h>

/* Depth of task nesting on this thread. A plain thread-local: only its own thread touches it. */
static _Thread_local unsigned task_depth;

bool bg__in_task(void) {
  return task_depth != 0;
}

void bg__wstat_reset(bg__wstat *s) {
  s->ok = 0;
  s->failed = 0;
  s->first_failed = SIZE_MAX;
  s->first_code = 0;
}

void bg__task_enter(void) {
  task_depth++;
}

void bg__task_leave(void) {
  task_depth--;
}

void bg__job_work(bg__job *j, unsigned w) {
  bg__range r;
  task_depth++;
  while (bg__sched_next(j->sched, w, &r))
    bg__job_run_range(j, w, r.begin, r.end);
  task_depth--;
}
