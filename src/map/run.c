/* SPDX-License-Identifier: MIT */
/* The inner loop every backend shares: call the user's function on a range of items, keep
 * each worker's count of successes and failures, and mark the thread as "inside a task" so a
 * nested bg_map can tell. */
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

void bg__job_run_range(bg__job *j, unsigned w, size_t b, size_t e) {
  const bg_map_desc_t *d = j->d;
  bg__wstat *st = &j->stats[w];
  const char *in = d->in;
  char *out = d->out;
  task_depth++;
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
  task_depth--;
}

void bg__job_work(bg__job *j, unsigned w) {
  bg__range r;
  while (bg__sched_next(j->sched, w, &r))
    bg__job_run_range(j, w, r.begin, r.end);
}
