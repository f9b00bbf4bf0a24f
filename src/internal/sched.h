/* SPDX-License-Identifier: MIT */
/* The scheduler: plain data and functions shared by every CPU backend. A worker asks "next
 * chunk for worker w" until told there is none; the policy decides how big each chunk is and
 * where it comes from. Adaptive sizing measures the time between two requests of one worker,
 * which is the time its last chunk took. */
#ifndef BRIGADE_INTERNAL_SCHED_H
#define BRIGADE_INTERNAL_SCHED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brigade/pool.h"
#include "internal/atomic.h"

/* Adaptive chunks aim at this duration: the ~60 ns a chunk costs (a contended fetch-add and
 * two clock reads) is then about 0.1% of the work, and the tail imbalance at most one such
 * chunk per worker. */
#define BG_SCHED_TARGET_NS 50000u
#define BG_SCHED_CHUNK_MAX ((size_t)1 << 20)

/* One per worker, on its own cache line so workers never share one. Field tags: O: the owning
 * worker only; L: under the slot's lock; A: atomic. */
typedef struct bg__sched_slot {
  _Alignas(BG_CACHELINE) pthread_mutex_t lock; /* steal: guards begin/end writes */
  _Atomic size_t begin;                        /* L (writes), A (thieves peek) */
  _Atomic size_t end;                          /* L (writes), A (thieves peek) */
  size_t k;                                    /* O: static block-cyclic round */
  size_t chunk;                                /* O: adaptive chunk size */
  size_t last_len;                             /* O: length of the last chunk handed out */
  uint64_t t_last;                             /* O: when it was handed out */
  size_t chunks;                               /* O: chunks handed out to this worker */
  uint64_t busy_ns;                            /* O: adaptive policies: time in chunks */
} bg__sched_slot;

typedef struct bg__sched {
  bg_schedule_t kind; /* I */
  size_t begin, end;  /* I: the range being scheduled */
  unsigned workers;   /* I */
  size_t chunk;       /* I: user chunk, 0 = policy default */
  size_t chunk0;      /* I: first adaptive chunk (from the pool's history) */
  bool adaptive;      /* I: chunk sizes measured from item times */
  _Alignas(BG_CACHELINE) _Atomic size_t next; /* A: dynamic, guided, auto */
  _Alignas(BG_CACHELINE) _Atomic int halt;    /* A: set once to stop handing out work */
  bg__sched_slot *slots; /* I: array of @workers, slot locks already initialised */
} bg__sched;

typedef struct bg__range {
  size_t begin, end;
} bg__range;

/* Initialises the slots' locks (once per pool) and destroys them. */
int bg__sched_slots_init(bg__sched_slot *slots, unsigned workers);
void bg__sched_slots_fini(bg__sched_slot *slots, unsigned workers);

/* Prepares @s to hand out [begin, end) to @workers workers. @chunk0 seeds adaptive sizing
 * (0 = start at 1 and double). Not thread-safe: call before any worker starts. */
void bg__sched_init(bg__sched *s, bg_schedule_t kind, size_t begin, size_t end, unsigned workers,
                    size_t chunk, size_t chunk0, bg__sched_slot *slots);

/* Hands worker @w its next chunk. Returns false when there is no work left for it (or the map
 * was halted). Thread-safe for distinct @w; each w must be used by one thread at a time. */
bool bg__sched_next(bg__sched *s, unsigned w, bg__range *r);

/* Stops every worker at its next request. Thread-safe. */
static inline void bg__sched_halt(bg__sched *s) {
  bg_atomic_store_relaxed(&s->halt, 1);
}

#endif
