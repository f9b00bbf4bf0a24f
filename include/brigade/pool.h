/* SPDX-License-Identifier: MIT */
/* A pool is an executor: one backend, a fixed number of workers and a schedule, created once
 * and reused by many maps. Creating workers is the expensive part (threads, processes), so
 * reuse is the point. */
#ifndef BRIGADE_POOL_H
#define BRIGADE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/topo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_pool bg_pool_t;

/* How a map's index range is cut into chunks. docs/SCHEDULING.md explains each one. */
typedef enum bg_schedule {
  BG_SCHED_AUTO = 0, /* adaptive chunks from measured item times; inline when too small */
  BG_SCHED_STATIC,   /* contiguous blocks, one per worker (block-cyclic with a chunk) */
  BG_SCHED_DYNAMIC,  /* chunks of `chunk` items (default 1) from a shared counter */
  BG_SCHED_GUIDED,   /* chunks of remaining/workers, shrinking, at least `chunk` */
  BG_SCHED_STEAL,    /* each worker owns a range; idle workers split a victim's remainder */
  BG_SCHED_COUNT_
} bg_schedule_t;

/* A caller-supplied allocator for everything a pool allocates (zstd's customMem). */
typedef struct bg_allocator {
  void *(*alloc)(size_t size, void *ud); /* returns NULL on failure */
  void (*free)(void *ptr, void *ud);     /* accepts NULL */
  void *ud;
} bg_allocator_t;

/**
 * bg_worker_init_fn - runs once in each worker before its first task (multiprocessing's
 * initializer, mpire's worker_init): on the worker's own thread, or in the worker process.
 * @w: the worker's index, 0 .. workers-1.
 * @ctx: opts->worker_ctx.
 * @state: OUT: the worker's state; tasks read it with bg_worker_state().
 *
 * Return: 0; anything else stops the worker (threads: bg_pool_create fails with BG_ETASK;
 * procs: the items it would have run fail with BG_ITEM_EXITED).
 */
typedef int (*bg_worker_init_fn)(unsigned w, void *ctx, void **state);

/** bg_worker_exit_fn - runs once in each worker after its last task, with its state. */
typedef void (*bg_worker_exit_fn)(unsigned w, void *ctx, void *state);

#define BG_POOL_OPTS_VERSION 2u

typedef struct bg_pool_opts {
  uint32_t version; /* BG_POOL_OPTS_VERSION, set by bg_pool_opts_init() */
  /* "seq" "threads" "procs" "procs-copy" "procs-persistent" "openmp" "mpi" "auto". The two
   * procs modes differ in when workers are forked, and so in what memory they see:
   *  - procs (and procs-copy), "snapshot": at each map. Tasks see the caller's memory as it is
   *    at the map's start, copy-on-write (items and ctx are never copied), at a fork per
   *    worker per map (about 1.6 ms for 2 workers).
   *  - procs-persistent: at the pool's first map, and kept until bg_pool_destroy (a worker
   *    that dies or reaches max_tasks is replaced, as on procs). Tasks see the caller's memory
   *    as of their worker's fork, which is not the same moment for a replacement: everything
   *    a map gives them comes through shared memory, copied at each map: the items (in), the
   *    results (out) and the context as bytes (bg_map_desc_t.ctx_size; a ctx without it is
   *    refused with BG_EINVAL, since it would be read as it was at the fork). Pointers inside
   *    items or ctx, globals changed since the fork, memory mapped or code loaded since (a
   *    dlopen'ed task) are not seen as they are now: pass values. A map of small items then
   *    costs tens of microseconds rather than a fork. The shared arena keeps the size of the
   *    largest map's items, results and statuses until bg_pool_destroy (or a Ctrl-C); results
   *    in a bg_shared_create array are copied through it too, not written in place.
   * A backend name rather than a flag, because the mode changes what a task may read: it is
   * named wherever the backend is (reports, bench rows, --backend, bg_backend_info), and
   * "auto" never picks it. Snapshot stays the default procs mode: it is the one whose tasks
   * read the caller's memory without the caller having to think about it. */
  const char *backend;
  unsigned workers;                /* 0: bg_topo_default_workers() (physical cores) */
  bg_schedule_t schedule;          /* default BG_SCHED_AUTO */
  size_t chunk;                    /* 0: the schedule's own default */
  int pin;                         /* nonzero: pin worker w >= 1 to core w (the caller is not) */
  const bg_topo_t *topo;           /* optional, borrowed during bg_pool_create() only */
  const bg_allocator_t *allocator; /* optional; copied; NULL means malloc and free */
  /* Version 2: the worker lifecycle (seq, threads, procs; openmp and mpi say BG_EBACKEND). */
  bg_worker_init_fn worker_init; /* optional */
  bg_worker_exit_fn worker_exit; /* optional */
  void *worker_ctx;
  /* A worker that has run this many items is replaced (procs: a new process; threads: its
   * exit and init callbacks run again, giving it fresh state). 0: never. */
  size_t max_tasks;
} bg_pool_opts_t;

/** bg_pool_opts_init - fill @o with the defaults listed above. */
void bg_pool_opts_init(bg_pool_opts_t *o);

/**
 * bg_pool_create - start a pool.
 * @o: options; NULL means all defaults.
 * @out: OUT: the pool, written only on success.
 *
 * The procs backends fork their worker processes at each map, so that they see the caller's
 * memory as it is then (copy-on-write, nothing serialised): creating such a pool is cheap.
 * procs-persistent forks them at the first map, on the thread that runs it (a later map on
 * another thread replaces them: a worker's parent-death signal follows the forking thread).
 *
 * Return: 0; BG_EINVAL (NULL @out, unknown version or schedule, workers > 4096); BG_EBACKEND
 * (a lifecycle callback or max_tasks on openmp or mpi); BG_ETASK (a worker's init callback failed);
 * BG_ENOENT (no backend of that name); BG_ENOTSUP (backend not compiled in); BG_EUNAVAIL
 * (backend cannot run here); BG_ENOMEM; BG_ESYS (threads could not be started).
 * The caller destroys the pool with bg_pool_destroy(). Thread-safe.
 */
int bg_pool_create(const bg_pool_opts_t *o, bg_pool_t **out);

/**
 * bg_pool_destroy - stop the workers and free the pool; NULL is a no-op.
 *
 * procs-persistent's workers are told to quit (their exit callbacks run, up to 5 s each),
 * then killed with their process groups and reaped, and the shared memory is unmapped.
 * Must not be called while a map is running on the pool or from inside one of its tasks.
 */
void bg_pool_destroy(bg_pool_t *p);

/**
 * bg_pool_default - the process-wide pool: threads, one per physical core (what
 * bg_pool_create(NULL) makes), created at the first call and kept until the process ends.
 * @out: OUT: the pool, written only on success.
 *
 * bg_map_simple() runs on it; any bg_map may. It belongs to the library: never pass it to
 * bg_pool_destroy(). After fork() the child gets a pool of its own at its first call.
 * Thread-safe.
 *
 * Return: 0; BG_EINVAL (NULL @out); or what bg_pool_create() returns (BG_ESYS, BG_ENOMEM).
 */
int bg_pool_default(bg_pool_t **out);

/**
 * bg_worker_state - the state the calling worker's init callback returned; NULL outside a
 * task or when the pool has no init callback.
 */
void *bg_worker_state(void);

/** bg_worker_id - the calling worker's index inside a task; -1 outside any task. */
int bg_worker_id(void);

/** bg_pool_workers - the number of workers, the calling thread counted as worker 0. */
unsigned bg_pool_workers(const bg_pool_t *p);

/** bg_pool_backend - the name of the backend in use (a static string). */
const char *bg_pool_backend(const bg_pool_t *p);

/** bg_pool_schedule - the pool's schedule. */
bg_schedule_t bg_pool_schedule(const bg_pool_t *p);

/**
 * bg_pool_dispatch_ns - the measured cost, in nanoseconds, of one parallel dispatch to idle
 * (parked) workers: waking them and waiting for them. 0 for a one-worker pool. BG_SCHED_AUTO
 * runs a map inline when its predicted work would not repay the dispatch.
 */
uint64_t bg_pool_dispatch_ns(const bg_pool_t *p);

/**
 * bg_pool_dispatch_warm_ns - the same cost right after another map, while the workers are still
 * spinning and need no system call to start (a loop of small maps pays this one).
 */
uint64_t bg_pool_dispatch_warm_ns(const bg_pool_t *p);

/** bg_schedule_name - "auto", "static", ...; "?" for a value outside the enum. */
const char *bg_schedule_name(bg_schedule_t s);

/**
 * bg_schedule_parse - the schedule named @name.
 * @out: OUT: written only on success.
 * Return: 0, or BG_EINVAL for a NULL argument or an unknown name.
 */
int bg_schedule_parse(const char *name, bg_schedule_t *out);

/* What the build knows about one backend. */
typedef struct bg_backend_info {
  const char *name; /* static string */
  int compiled;     /* 1 if this build contains it */
  int usable;       /* 1 if it probes usable on this machine now */
  int priority;     /* "auto" takes the usable one with the highest priority */
} bg_backend_info_t;

/** bg_backend_count - how many backends brigade knows, compiled in or not. */
size_t bg_backend_count(void);

/**
 * bg_backend_info - describe backend number @i (0 <= i < bg_backend_count()).
 * @out: OUT: written only on success.
 * Return: 0, or BG_EINVAL for a NULL @out or @i out of range.
 */
int bg_backend_info(size_t i, bg_backend_info_t *out);

#ifdef __cplusplus
}
#endif
#endif
