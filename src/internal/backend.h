/* SPDX-License-Identifier: MIT */
/* The backend method table (SQLite's versioned xMethods, hwloc's component priorities). A
 * backend runs a job on its workers; the scheduler and the accounting are shared. */
#ifndef BRIGADE_INTERNAL_BACKEND_H
#define BRIGADE_INTERNAL_BACKEND_H

#include <stdint.h>

#include "brigade/pool.h"
#include "internal/job.h"

#define BG_BACKEND_ABI 1u

/* What a backend needs to start its workers. Borrowed for the duration of init(). */
typedef struct bg__backend_cfg {
  unsigned workers;      /* including the calling thread as worker 0 */
  int pin;               /* pin worker w >= 1 to core w */
  const bg_topo_t *topo; /* non-NULL when pin is set */
  const bg_allocator_t *alloc;
  bg__life *life; /* NULL without lifecycle callbacks; the backend runs them for workers >= 1
                   * (all of them when isolated), the pool for worker 0 */
} bg__backend_cfg;

typedef struct bg__backend_ops {
  uint32_t abi;         /* BG_BACKEND_ABI */
  const char *name;     /* "seq" "threads" "procs" "procs-copy" "procs-persistent" "openmp" "mpi" */
  int priority;         /* "auto" takes the highest whose probe() succeeds */
  unsigned max_workers; /* 0: any number; the sequential backend has exactly 1 */
  /* Every process of a job runs each map together (mpi): map() is called for every bg_map,
   * empty ones included, never skipped for an inline run, and bg_knn goes to bg__knn_mpi. */
  int collective;
  /* Tasks run in separate processes (procs): map() is called for every non-empty map and never
   * inline on the caller, there is no dispatch to calibrate, timeouts can be enforced, and the
   * backend runs every worker's lifecycle callbacks itself. */
  int isolated;
  int lifecycle; /* 1 if the backend supports bg_pool_opts_t's worker callbacks */
  /* Its worker processes outlive the map (procs-persistent): they see the caller's memory as
   * of their fork, so a context must come as bytes (desc->ctx_size), which bg_map checks. */
  int persistent;
  /* How long idle workers stay awake after a map, in ns; NULL or 0: they do not spin, or the
   * backend cannot say (OpenMP's runtime decides for itself). */
  uint64_t (*spin_ns)(void *state);
  int (*probe)(void);
  int (*init)(const bg__backend_cfg *cfg, void **state);
  /* Runs the job on job->workers workers and returns when every one has finished. The calling
   * thread is worker 0 (isolated backends: it only supervises). A backend that cannot run the
   * map sets job->rc. */
  void (*map)(void *state, bg__job *job);
  void (*fini)(void *state);
} bg__backend_ops;

/* Looks a backend up by name ("auto" picks by priority). Return: 0, BG_ENOENT for an unknown
 * name, BG_ENOTSUP for one not compiled in, BG_EUNAVAIL when its probe fails. */
int bg__backend_find(const char *name, const bg__backend_ops **out);

extern const bg__backend_ops bg__backend_seq;
extern const bg__backend_ops bg__backend_threads;
extern const bg__backend_ops bg__backend_openmp;
extern const bg__backend_ops bg__backend_mpi;
extern const bg__backend_ops bg__backend_procs;
extern const bg__backend_ops bg__backend_procs_copy;
extern const bg__backend_ops bg__backend_procs_persistent;

#endif
