/* SPDX-License-Identifier: MIT */
/* Pool lifecycle: choose the backend, size the pool from the topology, start the workers and
 * measure what one parallel dispatch costs, which the auto schedule weighs every map against. */
#include "brigade/error.h"
#include "internal/clock.h"
#include "internal/pool_impl.h"
#include "internal/upgrade.h"

#include <stddef.h>
#include <string.h>
#include <time.h>

#define CALIBRATION_RUNS 3

static const char *const sched_names[BG_SCHED_COUNT_] = {"auto", "static", "dynamic", "guided",
                                                         "steal"};

const char *bg_schedule_name(bg_schedule_t s) {
  return (unsigned)s < BG_SCHED_COUNT_ ? sched_names[s] : "?";
}

int bg_schedule_parse(const char *name, bg_schedule_t *out) {
  if (!name || !out)
    return BG_EINVAL;
  for (unsigned i = 0; i < BG_SCHED_COUNT_; i++) {
    if (strcmp(name, sched_names[i]) == 0) {
      *out = (bg_schedule_t)i;
      return BG_OK;
    }
  }
  return BG_EINVAL;
}

void bg_pool_opts_init(bg_pool_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->version = BG_POOL_OPTS_VERSION;
  o->backend = "auto";
  o->schedule = BG_SCHED_AUTO;
}

static int noop_task(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  return 0;
}

/* Sleeps long enough for idle workers to park. Backends that do not spin or cannot say how long
 * (OpenMP's runtime decides) get a millisecond. */
static void let_workers_park(const bg_pool_t *p) {
  uint64_t spin = p->ops->spin_ns ? p->ops->spin_ns(p->bstate) : 0;
  uint64_t ns = spin ? 2 * spin : 1000000u;
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* The cheapest of a few empty maps, one item per worker: wake-up plus join, nothing else;
 * with cold set, each after the workers have parked. */
static uint64_t calibrate(bg_pool_t *p, int cold) {
  /* A collective backend's dispatch is its ranks' messages: nothing a local probe measures. */
  if (p->workers < 2 || p->ops->collective || p->ops->isolated)
    return 0;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = noop_task;
  d.n = p->workers;
  bg__job job = {.d = &d, .sched = &p->sched, .stats = p->stats, .workers = p->workers};
  uint64_t best = UINT64_MAX;
  for (int r = 0; r < CALIBRATION_RUNS; r++) {
    bg__sched_init(&p->sched, BG_SCHED_STATIC, 0, d.n, p->workers, 0, 0, p->slots);
    if (cold)
      let_workers_park(p);
    uint64_t t0 = bg__now_ns();
    p->ops->map(p->bstate, &job);
    uint64_t dt = bg__now_ns() - t0;
    best = dt < best ? dt : best;
  }
  return best;
}

static int check_opts(const bg_pool_opts_t *o) {
  if ((unsigned)o->schedule >= BG_SCHED_COUNT_ || o->workers > BG__MAX_WORKERS)
    return BG_EINVAL;
  if (o->allocator && (!o->allocator->alloc || !o->allocator->free))
    return BG_EINVAL;
  return BG_OK;
}

/* Fills in the worker count from the topology when asked to, and keeps a topology for
 * pinning. *own receives a topology this call created and must destroy. */
static int size_pool(const bg_pool_opts_t *o, const bg__backend_ops *ops, unsigned *workers,
                     const bg_topo_t **topo, bg_topo_t **own) {
  *topo = o->topo;
  *own = NULL;
  if (!*topo && (o->workers == 0 || o->pin)) {
    int rc = bg_topo_create(own);
    if (rc != 0)
      return rc;
    *topo = *own;
  }
  *workers = o->workers ? o->workers : bg_topo_default_workers(*topo);
  if (ops->max_workers && *workers > ops->max_workers)
    *workers = ops->max_workers;
  return BG_OK;
}

/* The lifecycle block: callbacks, and per-worker state and task counts. NULL when the
 * options ask for none. */
static int life_create(const bg_pool_opts_t *o, const bg_allocator_t *a, unsigned workers,
                       bg__life **out) {
  *out = NULL;
  if (!o->worker_init && !o->worker_exit && !o->max_tasks)
    return BG_OK;
  bg__life *l = bg__pool_alloc(a, sizeof *l);
  void **state = bg__pool_alloc(a, workers * sizeof *state);
  size_t *tasks = bg__pool_alloc(a, workers * sizeof *tasks);
  if (!l || !state || !tasks) {
    bg__pool_free(a, tasks);
    bg__pool_free(a, state);
    bg__pool_free(a, l);
    return BG_ENOMEM;
  }
  memset(state, 0, workers * sizeof *state);
  memset(tasks, 0, workers * sizeof *tasks);
  *l = (bg__life){.init = o->worker_init,
                  .exit = o->worker_exit,
                  .ctx = o->worker_ctx,
                  .max_tasks = o->max_tasks,
                  .state = state,
                  .tasks = tasks};
  *out = l;
  return BG_OK;
}

static void life_destroy(const bg_allocator_t *a, bg__life *l) {
  if (!l)
    return;
  bg__pool_free(a, l->tasks);
  bg__pool_free(a, l->state);
  bg__pool_free(a, l);
}

/* Worker 0 of an in-process backend is whichever thread calls bg_map: its state is made here,
 * on the thread that creates the pool. */
static int life_start0(const bg_pool_t *p) {
  bg__life *l = p->life;
  if (!l || p->ops->isolated || !l->init)
    return BG_OK;
  return l->init(0, l->ctx, &l->state[0]) == 0 ? BG_OK : BG_ETASK;
}

static void life_stop0(const bg_pool_t *p) {
  bg__life *l = p->life;
  if (l && !p->ops->isolated && l->exit)
    l->exit(0, l->ctx, l->state[0]);
}

int bg_pool_create(const bg_pool_opts_t *user, bg_pool_t **out) {
  bg_pool_opts_t opts;
  if (!out)
    return BG_EINVAL;
  if (!user)
    bg_pool_opts_init(&opts);
  else if (bg__upgrade(&opts, user, user->version, BG_POOL_OPTS_VERSION,
                       offsetof(bg_pool_opts_t, worker_init), sizeof opts) != 0)
    return BG_EINVAL;
  const bg_pool_opts_t *o = &opts;
  int rc = check_opts(o);
  if (rc != 0)
    return rc;
  const bg__backend_ops *ops;
  rc = bg__backend_find(o->backend, &ops);
  if (rc != 0)
    return rc;
  if ((o->worker_init || o->worker_exit || o->max_tasks) && !ops->lifecycle)
    return BG_EBACKEND;
  const bg_allocator_t *a = o->allocator ? o->allocator : &bg__sys_allocator;
  unsigned workers;
  const bg_topo_t *topo;
  bg_topo_t *own_topo;
  rc = size_pool(o, ops, &workers, &topo, &own_topo);
  if (rc != 0)
    return rc;

  rc = BG_ENOMEM;
  bg_pool_t *p = bg__pool_alloc(a, sizeof *p);
  if (!p)
    goto fail_pool;
  memset(p, 0, sizeof *p);
  p->ops = ops;
  p->workers = workers;
  p->schedule = o->schedule;
  p->chunk = o->chunk;
  p->alloc = *a;
  p->slots = bg__pool_alloc(a, workers * sizeof *p->slots);
  p->stats = bg__pool_alloc(a, workers * sizeof *p->stats);
  if (!p->slots || !p->stats)
    goto fail_arrays;
  rc = life_create(o, a, workers, &p->life);
  if (rc != 0)
    goto fail_arrays;
  rc = bg__sched_slots_init(p->slots, workers);
  if (rc != 0)
    goto fail_slots;
  rc = BG_ESYS;
  if (pthread_mutex_init(&p->map_lock, NULL) != 0)
    goto fail_lock;
  rc = life_start0(p);
  if (rc != 0)
    goto fail_life0;
  bg__backend_cfg cfg = {
      .workers = workers, .pin = o->pin, .topo = topo, .alloc = &p->alloc, .life = p->life};
  rc = ops->init(&cfg, &p->bstate);
  if (rc != 0)
    goto fail_backend;
  p->dispatch_warm_ns = calibrate(p, 0);
  p->dispatch_cold_ns = calibrate(p, 1);
  p->overhead_ns[0] = (double)p->dispatch_cold_ns;
  p->overhead_ns[1] = (double)p->dispatch_warm_ns;
  bg_topo_destroy(own_topo);
  *out = p;
  return BG_OK;

fail_backend:
  life_stop0(p);
fail_life0:
  pthread_mutex_destroy(&p->map_lock);
fail_lock:
  bg__sched_slots_fini(p->slots, workers);
fail_slots:
  life_destroy(a, p->life);
fail_arrays:
  bg__pool_free(a, p->stats);
  bg__pool_free(a, p->slots);
  bg__pool_free(a, p);
fail_pool:
  bg_topo_destroy(own_topo);
  return rc;
}

void bg_pool_destroy(bg_pool_t *p) {
  if (!p)
    return;
  p->ops->fini(p->bstate);
  life_stop0(p);
  pthread_mutex_destroy(&p->map_lock);
  bg__sched_slots_fini(p->slots, p->workers);
  bg_allocator_t a = p->alloc;
  life_destroy(&a, p->life);
  bg__pool_free(&a, p->stats);
  bg__pool_free(&a, p->slots);
  bg__pool_free(&a, p);
}

unsigned bg_pool_workers(const bg_pool_t *p) {
  return p->workers;
}

const char *bg_pool_backend(const bg_pool_t *p) {
  return p->ops->name;
}

bg_schedule_t bg_pool_schedule(const bg_pool_t *p) {
  return p->schedule;
}

uint64_t bg_pool_dispatch_ns(const bg_pool_t *p) {
  return p->dispatch_cold_ns;
}

uint64_t bg_pool_dispatch_warm_ns(const bg_pool_t *p) {
  return p->dispatch_warm_ns;
}
