/* SPDX-License-Identifier: MIT */
/* The worker loop every in-process backend shares: ask the scheduler for chunks and run them,
 * with the thread marked as "inside a task" (so a nested bg_map can tell) and as worker w (so
 * bg_worker_state() can answer). Between chunks it recycles the worker's state under
 * max_tasks and reports progress; it reads the clock twice per map, not per chunk, unless the
 * map is traced. */
#include "internal/clock.h"
#include "internal/job.h"
#include "internal/trace.h"

#include <stdint.h>

/* Depth of task nesting on this thread. Plain thread-locals: only their own thread touches
 * them. */
static _Thread_local unsigned task_depth;
static _Thread_local int cur_worker = -1;
static _Thread_local void *cur_state;

bool bg__in_task(void) {
  return task_depth != 0;
}

int bg_worker_id(void) {
  return cur_worker;
}

void *bg_worker_state(void) {
  return cur_state;
}

int bg__worker_set(int w, void *state, void **old_state) {
  int old = cur_worker;
  if (old_state)
    *old_state = cur_state;
  cur_worker = w;
  cur_state = state;
  return old;
}

void bg__wstat_reset(bg__wstat *s) {
  *s = (bg__wstat){.first_failed = SIZE_MAX};
}

void bg__task_enter(void) {
  task_depth++;
}

void bg__task_leave(void) {
  task_depth--;
}

void bg__progress_add(bg__progress *p, size_t n) {
  bg_atomic_add_relaxed(&p->done, n);
  uint64_t now = bg__now_ns();
  if (now < bg_atomic_load_relaxed(&p->next_ns))
    return;
  int idle = 0;
  /* One caller at a time; a worker that finds another one reporting just goes on. */
  if (!atomic_compare_exchange_strong(&p->busy, &idle, 1))
    return;
  bg_atomic_store_relaxed(&p->next_ns, now + p->interval_ns);
  /* Read now, not before the flag was taken: another worker may have reported a larger count
   * in between, and the listener must never see the count go back. */
  p->fn(bg_atomic_load_relaxed(&p->done), p->total, p->ud);
  atomic_store(&p->busy, 0);
}

void bg__life_recycle(bg__life *l, unsigned w) {
  if (l->exit)
    l->exit(w, l->ctx, l->state[w]);
  l->state[w] = NULL;
  if (l->init && l->init(w, l->ctx, &l->state[w]) != 0)
    l->state[w] = NULL;
  l->tasks[w] = 0;
  bg__worker_set((int)w, l->state[w], NULL);
}

/* Runs [b, e) in pieces that end where worker w's quota of tasks runs out. */
static void run_with_quota(bg__job *j, unsigned w, size_t b, size_t e) {
  bg__life *l = j->life;
  while (b < e) {
    if (l->tasks[w] >= l->max_tasks)
      bg__life_recycle(l, w);
    size_t take = l->max_tasks - l->tasks[w];
    size_t stop = e - b < take ? e : b + take;
    bg__job_run_range(j, w, b, stop);
    l->tasks[w] += stop - b;
    b = stop;
  }
}

void bg__job_run_chunk(bg__job *j, unsigned w, size_t b, size_t e) {
  uint64_t t0 = j->trace ? bg__now_ns() : 0;
  if (j->life && j->life->max_tasks)
    run_with_quota(j, w, b, e);
  else
    bg__job_run_range(j, w, b, e);
  if (j->trace)
    bg__trace_add(j->trace, BG_SPAN_CHUNK, w, b, e, t0, bg__now_ns());
  if (j->progress)
    bg__progress_add(j->progress, e - b);
}

int bg__job_as_worker(const bg__job *j, unsigned w, void **old_state) {
  return bg__worker_set((int)w, j->life ? j->life->state[w] : NULL, old_state);
}

void bg__job_work(bg__job *j, unsigned w) {
  bg__range r;
  void *old_state;
  int old_w = bg__job_as_worker(j, w, &old_state);
  bg__wstat *st = &j->stats[w];
  uint64_t t0 = bg__now_ns();
  /* A worker that already ran an inline prefix of this map started at once. */
  if (st->busy_ns == 0) {
    st->startup_ns = t0 > j->t0_ns ? t0 - j->t0_ns : 0;
    if (j->trace)
      bg__trace_add(j->trace, BG_SPAN_STARTUP, w, 0, 0, j->t0_ns, t0);
  }
  task_depth++;
  while (bg__sched_next(j->sched, w, &r))
    bg__job_run_chunk(j, w, r.begin, r.end);
  task_depth--;
  st->busy_ns += bg__now_ns() - t0;
  bg__worker_set(old_w, old_state, NULL);
}
