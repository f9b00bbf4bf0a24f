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
#include "internal/journal.h"
#include "internal/sched.h"

/* Per-worker outcome, on its own cache line. O: written by its worker only, read by the caller
 * after the backend has joined every worker. */
typedef struct bg__wstat {
  _Alignas(BG_CACHELINE) size_t ok; /* O */
  size_t failed;                    /* O */
  size_t first_failed;              /* O: lowest failed index seen by this worker */
  int first_code;                   /* O */
  int first_state;                  /* O: bg_item_state_t of first_failed */
  size_t retries;                   /* O: extra attempts under desc->retries */
  size_t crashed;                   /* O: procs: items whose worker process died */
  size_t exited;                    /* O: procs: of those, the ones whose worker exited */
  size_t timeouts;                  /* O: procs: items killed by the timeout */
  unsigned started;                 /* O: procs: worker processes started */
  uint64_t startup_ns;              /* O: from the map's start to the worker's first chunk */
  uint64_t busy_ns;                 /* O: from its first chunk to running out of work */
} bg__wstat;

/* The pool's worker lifecycle (bg_pool_opts_t version 2). I: immutable; O: entry w is used by
 * worker w only. */
typedef struct bg__life {
  bg_worker_init_fn init; /* I */
  bg_worker_exit_fn exit; /* I */
  void *ctx;              /* I */
  size_t max_tasks;       /* I: 0 = never recycle */
  void **state;           /* O: per worker */
  size_t *tasks;          /* O: per worker, items run since its state was made */
} bg__life;

/* Progress reporting shared by the workers of one map. A: atomic. */
typedef struct bg__progress {
  bg_progress_fn fn;
  void *ud;
  size_t total;
  uint64_t interval_ns;
  _Alignas(BG_CACHELINE) _Atomic size_t done; /* A */
  _Atomic uint64_t next_ns;                   /* A: when the next call is due */
  _Atomic int busy;                           /* A: 1 while one worker calls fn */
} bg__progress;

typedef struct bg__job {
  const bg_map_desc_t *d;   /* I: a version-2 copy of the caller's description */
  bg__sched *sched;         /* I */
  bg__wstat *stats;         /* I: one per worker */
  unsigned workers;         /* I */
  bool halt_on_error;       /* I */
  size_t halt_after;        /* I: under halt_on_error, halt at this many failures (<= 1: the
                               first) */
  _Atomic size_t failures;  /* A: failures seen, counted only when halt_after > 1 */
  uint32_t retries_crash;   /* I: desc->retries for a death of the worker, per retry_on */
  uint32_t retries_timeout; /* I: desc->retries for a timeout, per retry_on */
  bg_item_status_t *status; /* I: where per-item outcomes go, or NULL */
  bg__life *life;           /* I: NULL when the pool has no lifecycle */
  bg__progress *progress;   /* I: NULL when nobody listens */
  bg_trace_t *trace;        /* I: desc->trace: where spans go, or NULL */
  bg_journal_t *journal;    /* I: desc->journal: told of every item that settles, or NULL */
  uint64_t t0_ns;           /* I: when the map started, for start-up times */
  int rc;                   /* set by a backend that could not run the map (BG_ENOMEM ...) */
  int refuse;               /* I: a collective backend's rank that must fail the map on every
                               rank instead of leaving the others waiting (its journal) */
  const bg_item_status_t *replayed; /* I: rank 0 of a collective map: the outcomes its journal
                                       replayed (n, by item), counted in every rank's report */
  int interrupted;                  /* set by a backend stopped by SIGINT or SIGTERM */
  int tripped;                      /* set by a backend whose circuit breaker tripped (procs) */
  size_t n_tripped;                 /* items that breaker failed without running them */
  int shrunk; /* set when a file behind desc->in or desc->out shrank (procs) */
} bg__job;

/* Counts @nfail failures under halt_on_error; true when the map must halt. */
static inline bool bg__job_halt_due(bg__job *j, size_t nfail) {
  if (!j->halt_on_error || nfail == 0)
    return false;
  if (j->halt_after <= 1)
    return true;
  return bg_atomic_add_relaxed(&j->failures, nfail) + nfail >= j->halt_after;
}

/* Counts a failure of item i in @state with @code, keeping the lowest failed index. */
static inline void bg__wstat_fail(bg__wstat *st, size_t i, int state, int code) {
  st->failed++;
  if (i < st->first_failed) {
    st->first_failed = i;
    st->first_code = code;
    st->first_state = state;
  }
}

/* Records item i's outcome after @attempts runs that ended in @rc. */
static inline void bg__job_record(bg__job *j, bg__wstat *st, size_t i, int rc, uint32_t attempts) {
  st->retries += attempts - 1;
  if (j->status)
    j->status[i] = (bg_item_status_t){rc ? BG_ITEM_FAILED : BG_ITEM_OK, rc, attempts};
  if (rc == 0)
    st->ok++;
  else
    bg__wstat_fail(st, i, BG_ITEM_FAILED, rc);
}

/* Runs item i once, and again while it fails and retries are left. */
static inline int bg__job_call(const bg_map_desc_t *d, void *out, const void *in, size_t i,
                               uint32_t *attempts) {
  int rc = d->fn(out, in, i, d->ctx);
  uint32_t a = 1;
  while (rc != 0 && a <= d->retries) {
    rc = d->fn(out, in, i, d->ctx);
    a++;
  }
  *attempts = a;
  return rc;
}

/* Runs items [b, e) as worker w and records their outcomes. Inline, because OpenMP's native
 * loops call it once per item. The caller must be between bg__task_enter() and
 * bg__task_leave(). */
static inline void bg__job_run_range(bg__job *j, unsigned w, size_t b, size_t e) {
  const bg_map_desc_t *d = j->d;
  bg__wstat *st = &j->stats[w];
  const char *in = d->in;
  char *out = d->out;
  size_t i;
  for (i = b; i < e; i++) {
    void *o = out ? out + i * d->out_size : NULL;
    const void *x = in ? in + i * d->in_size : NULL;
    int rc = d->fn(o, x, i, d->ctx);
    if (rc == 0 && !j->status) {
      st->ok++;
      continue;
    }
    uint32_t attempts = 1;
    while (rc != 0 && attempts <= d->retries) {
      rc = d->fn(o, x, i, d->ctx);
      attempts++;
    }
    bg__job_record(j, st, i, rc, attempts);
    if (rc != 0 && bg__job_halt_due(j, 1)) {
      bg__sched_halt(j->sched);
      i++;
      break;
    }
  }
  if (j->journal)
    bg__journal_settled(j->journal, b, i);
}

/* Mark the calling thread as running tasks (so a nested bg_map runs inline) and unmark it. A
 * worker marks itself once around all its chunks, not per item: the thread-local access goes
 * through __tls_get_addr in position-independent code. */
void bg__task_enter(void);
void bg__task_leave(void);

/* Asks the scheduler for chunks as worker w and runs them until none is left, recycling the
 * worker's state under max_tasks and reporting progress between chunks. */
void bg__job_work(bg__job *j, unsigned w);

/* Runs one chunk as worker w: recycling its state under max_tasks, then reporting progress. */
void bg__job_run_chunk(bg__job *j, unsigned w, size_t b, size_t e);

/* Makes the calling thread worker w of the job for bg_worker_id() and bg_worker_state();
 * returns the previous id (and state through @old_state) for bg__worker_set to restore. */
int bg__job_as_worker(const bg__job *j, unsigned w, void **old_state);

/* Adds @n finished items to the map's progress and calls the listener when one is due. */
void bg__progress_add(bg__progress *p, size_t n);

/* Gives worker w fresh state: its exit callback, then its init callback again. A failed init
 * leaves it without state (NULL), which its tasks can see. */
void bg__life_recycle(bg__life *l, unsigned w);

/* Sets what bg_worker_id() and bg_worker_state() say on this thread; returns the old id. */
int bg__worker_set(int w, void *state, void **old_state);

/* True while the calling thread is inside a task of any pool; bg_map then runs inline. */
bool bg__in_task(void);

/* Clears a worker's statistics before a map. */
void bg__wstat_reset(bg__wstat *s);

#endif
