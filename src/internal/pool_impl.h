/* SPDX-License-Identifier: MIT */
/* The pool's private layout, shared by pool.c (lifecycle) and map.c (running maps). Field tags:
 * I: immutable after creation; L: under map_lock, which every parallel map holds. */
#ifndef BRIGADE_INTERNAL_POOL_IMPL_H
#define BRIGADE_INTERNAL_POOL_IMPL_H

#include <pthread.h>

#include "brigade/map.h"
#include "internal/backend.h"
#include "internal/job.h"
#include "internal/sched.h"

/* How many task functions the auto schedule remembers the per-item cost of. */
/* The most workers a pool or an executor may ask for. */
#define BG__MAX_WORKERS 4096u

#define BG_POOL_HISTORY 8

typedef struct bg__cost {
  bg_task_fn fn;      /* L: NULL for an empty entry */
  double ns_per_item; /* L: measured on the last parallel map of fn */
} bg__cost;

struct bg_pool {
  const bg__backend_ops *ops;        /* I */
  void *bstate;                      /* I: the backend's own state */
  unsigned workers;                  /* I */
  bg_schedule_t schedule;            /* I */
  size_t chunk;                      /* I */
  bg_allocator_t alloc;              /* I */
  uint64_t dispatch_cold_ns;         /* I: cost of one parallel dispatch to parked workers */
  uint64_t dispatch_warm_ns;         /* I: the same while the workers still spin after a map */
  uint64_t last_end_ns;              /* L: when the last parallel map finished */
  double overhead_ns[2];             /* L: learned dispatch cost, [0] parked, [1] spinning */
  pthread_mutex_t map_lock;          /* one parallel map at a time */
  bg__sched sched;                   /* L */
  bg__sched_slot *slots;             /* L: workers entries */
  bg__wstat *stats;                  /* L: workers entries */
  bg__cost history[BG_POOL_HISTORY]; /* L */
  unsigned history_next;             /* L: round-robin replacement */
  bg__life *life;                    /* I: NULL without lifecycle callbacks */
  uint64_t last_wall_ns;             /* L: the last map's wall time, for bg_map_insights */
};

/* Allocation through the pool's allocator, aligned for the cache-line structs it holds. */
void *bg__pool_alloc(const bg_allocator_t *a, size_t size);
void bg__pool_free(const bg_allocator_t *a, void *p);

/* malloc and free, the allocator used when the options name none. */
extern const bg_allocator_t bg__sys_allocator;

#endif
