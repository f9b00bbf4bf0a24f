/* SPDX-License-Identifier: MIT */
/* A persistent pthread pool. The calling thread is worker 0 and workers 1..W-1 are threads
 * started once. Between maps a worker spins briefly (a map that follows soon, as in a loop of
 * small maps, then starts without a system call) and then parks on a condition variable, so an
 * idle pool costs no CPU. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "brigade/error.h"
#include "internal/backend.h"
#include "internal/clock.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

/* How long a worker spins before it parks: longer than a typical gap between two maps in a
 * loop (so those start without a system call), short enough that an idle pool is asleep almost
 * at once. Waking a parked worker costs tens of microseconds on a virtual machine. A pool with
 * more workers than CPUs does not spin at all: a spinning worker would take a CPU from one
 * with work. */
#define SPIN_NS 50000u

/* Spins until done(arg) or spin_ns have passed; reads the clock every 64 rounds only. */
static int spin_until(uint64_t spin_ns, int (*done)(void *), void *arg) {
  uint64_t t0 = bg__now_ns();
  for (unsigned i = 1;; i++) {
    if (done(arg))
      return 1;
    if (i % 64 == 0 && bg__now_ns() - t0 > spin_ns)
      return 0;
    bg__cpu_relax();
  }
}

/* The CPUs this process may run on (its affinity mask: taskset, a container's cpuset); 0 when
 * the mask cannot be read, so that such a pool does not spin. */
static unsigned cpus_allowed(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 0;
}

typedef struct tpool tpool;

typedef struct targ {
  tpool *tp;  /* I */
  unsigned w; /* I */
} targ;

struct tpool {
  unsigned nthreads;     /* I: workers - 1 */
  pthread_t *threads;    /* I */
  targ *args;            /* I */
  bg_allocator_t alloc;  /* I */
  const bg_topo_t *topo; /* I: only during init, for pinning */
  int pin;               /* I */
  uint64_t spin_ns;      /* I: 0 when oversubscribed */
  pthread_mutex_t lock;
  pthread_cond_t work_cv;   /* signalled when gen moves or shutdown is set */
  pthread_cond_t done_cv;   /* signalled when pending reaches 0 */
  bg__job *job;             /* L: published before gen is bumped */
  _Atomic uint64_t gen;     /* A: bumped (release) under lock to post a job */
  _Atomic unsigned pending; /* A: workers that have not finished the current job */
  _Atomic int shutdown;     /* A: set under lock */
  _Atomic unsigned started; /* A: workers that finished start-up (pinning) */
  bg__life *life;           /* I: the pool's lifecycle, or NULL */
  _Atomic int init_failed;  /* A: a worker's init callback failed */
};

static void *tp_alloc(tpool *tp, size_t n) {
  return tp->alloc.alloc(n, tp->alloc.ud);
}

/* Last one out wakes the caller. Taking the lock before signalling pairs with the caller's
 * check of pending under the same lock, so the wake-up cannot fall between its check and its
 * wait. */
static void finish_one(tpool *tp) {
  if (bg_atomic_sub_acq_rel(&tp->pending, 1) == 1) {
    pthread_mutex_lock(&tp->lock);
    pthread_cond_signal(&tp->done_cv);
    pthread_mutex_unlock(&tp->lock);
  }
}

typedef struct gen_wait {
  tpool *tp;
  uint64_t seen;
} gen_wait;

static int gen_moved(void *arg) {
  gen_wait *g = arg;
  /* Acquire pairs with the release store of gen in threads_map: the job pointer written
   * before it is visible once the new gen is. */
  return bg_atomic_load_acq(&g->tp->gen) != g->seen || bg_atomic_load_relaxed(&g->tp->shutdown);
}

/* Waits until gen differs from seen, or shutdown; returns the new gen. */
static uint64_t wait_for_work(tpool *tp, uint64_t seen) {
  gen_wait gw = {tp, seen};
  if (spin_until(tp->spin_ns, gen_moved, &gw))
    return bg_atomic_load_acq(&tp->gen);
  pthread_mutex_lock(&tp->lock);
  uint64_t g;
  while ((g = bg_atomic_load_acq(&tp->gen)) == seen && !bg_atomic_load_relaxed(&tp->shutdown))
    pthread_cond_wait(&tp->work_cv, &tp->lock);
  pthread_mutex_unlock(&tp->lock);
  return g;
}

static void *worker_main(void *arg) {
  targ *a = arg;
  tpool *tp = a->tp;
  bg__life *l = tp->life;
  if (tp->pin)
    bg_topo_pin_thread(tp->topo, a->w);
  /* The init callback runs on the worker's own thread, so thread-local resources it makes
   * belong to the thread that will use them. */
  if (l && l->init && l->init(a->w, l->ctx, &l->state[a->w]) != 0)
    bg_atomic_store_relaxed(&tp->init_failed, 1);
  bg_atomic_add_relaxed(&tp->started, 1);
  finish_one(tp);
  uint64_t seen = 0;
  for (;;) {
    seen = wait_for_work(tp, seen);
    if (bg_atomic_load_relaxed(&tp->shutdown))
      break;
    bg__job_work(tp->job, a->w);
    finish_one(tp);
  }
  if (l && l->exit)
    l->exit(a->w, l->ctx, l->state[a->w]);
  return NULL;
}

static int all_done(void *arg) {
  tpool *tp = arg;
  /* Acquire pairs with the workers' acq_rel decrement: their writes to results and stats are
   * visible to the caller once pending reads 0. */
  return bg_atomic_load_acq(&tp->pending) == 0;
}

static void wait_done(tpool *tp) {
  if (spin_until(tp->spin_ns, all_done, tp))
    return;
  pthread_mutex_lock(&tp->lock);
  while (bg_atomic_load_acq(&tp->pending) != 0)
    pthread_cond_wait(&tp->done_cv, &tp->lock);
  pthread_mutex_unlock(&tp->lock);
}

static void stop_threads(tpool *tp, unsigned n) {
  pthread_mutex_lock(&tp->lock);
  bg_atomic_store_relaxed(&tp->shutdown, 1);
  pthread_cond_broadcast(&tp->work_cv);
  pthread_mutex_unlock(&tp->lock);
  for (unsigned i = 0; i < n; i++)
    pthread_join(tp->threads[i], NULL);
}

static void free_pool(tpool *tp) {
  pthread_cond_destroy(&tp->done_cv);
  pthread_cond_destroy(&tp->work_cv);
  pthread_mutex_destroy(&tp->lock);
  tp->alloc.free(tp->args, tp->alloc.ud);
  tp->alloc.free(tp->threads, tp->alloc.ud);
  tp->alloc.free(tp, tp->alloc.ud);
}

static int threads_probe(void) {
  return BG_OK;
}

static int threads_init(const bg__backend_cfg *cfg, void **state) {
  tpool *tp = cfg->alloc->alloc(sizeof *tp, cfg->alloc->ud);
  if (!tp)
    return BG_ENOMEM;
  *tp = (tpool){.nthreads = cfg->workers - 1,
                .alloc = *cfg->alloc,
                .pin = cfg->pin,
                .topo = cfg->topo,
                .life = cfg->life,
                .spin_ns = cfg->workers <= cpus_allowed() ? SPIN_NS : 0};
  atomic_init(&tp->gen, 0);
  atomic_init(&tp->pending, tp->nthreads);
  atomic_init(&tp->shutdown, 0);
  atomic_init(&tp->started, 0);
  atomic_init(&tp->init_failed, 0);
  int rc = BG_ESYS;
  if (pthread_mutex_init(&tp->lock, NULL) != 0)
    goto fail_lock;
  if (pthread_cond_init(&tp->work_cv, NULL) != 0)
    goto fail_work;
  if (pthread_cond_init(&tp->done_cv, NULL) != 0)
    goto fail_done;
  rc = BG_ENOMEM;
  size_t nt = tp->nthreads ? tp->nthreads : 1;
  tp->threads = tp_alloc(tp, nt * sizeof *tp->threads);
  tp->args = tp_alloc(tp, nt * sizeof *tp->args);
  if (!tp->threads || !tp->args)
    goto fail_arrays;
  rc = BG_ESYS;
  for (unsigned i = 0; i < tp->nthreads; i++) {
    tp->args[i] = (targ){.tp = tp, .w = i + 1};
    if (pthread_create(&tp->threads[i], NULL, worker_main, &tp->args[i]) != 0) {
      /* The threads already started will count themselves in; wait for them, then stop. */
      atomic_fetch_sub(&tp->pending, tp->nthreads - i);
      wait_done(tp);
      stop_threads(tp, i);
      goto fail_arrays;
    }
  }
  /* Every worker has pinned itself before init returns, so the borrowed topology may go. */
  wait_done(tp);
  tp->topo = NULL;
  if (bg_atomic_load_relaxed(&tp->init_failed)) {
    stop_threads(tp, tp->nthreads);
    rc = BG_ETASK;
    goto fail_arrays;
  }
  *state = tp;
  return BG_OK;

fail_arrays:
  tp->alloc.free(tp->args, tp->alloc.ud);
  tp->alloc.free(tp->threads, tp->alloc.ud);
  pthread_cond_destroy(&tp->done_cv);
fail_done:
  pthread_cond_destroy(&tp->work_cv);
fail_work:
  pthread_mutex_destroy(&tp->lock);
fail_lock:
  tp->alloc.free(tp, tp->alloc.ud);
  return rc;
}

static void threads_map(void *state, bg__job *job) {
  tpool *tp = state;
  if (tp->nthreads == 0) {
    bg__job_work(job, 0);
    return;
  }
  pthread_mutex_lock(&tp->lock);
  tp->job = job;
  bg_atomic_store_relaxed(&tp->pending, tp->nthreads);
  /* Release pairs with the workers' acquire load of gen in wait_for_work. */
  bg_atomic_store_rel(&tp->gen, bg_atomic_load_relaxed(&tp->gen) + 1);
  pthread_cond_broadcast(&tp->work_cv);
  pthread_mutex_unlock(&tp->lock);
  bg__job_work(job, 0);
  wait_done(tp);
}

static uint64_t threads_spin_ns(void *state) {
  return ((const tpool *)state)->spin_ns;
}

static void threads_fini(void *state) {
  tpool *tp = state;
  stop_threads(tp, tp->nthreads);
  free_pool(tp);
}

const bg__backend_ops bg__backend_threads = {
    .abi = BG_BACKEND_ABI,
    .name = "threads",
    .priority = 20,
    .lifecycle = 1,
    .max_workers = 0,
    .spin_ns = threads_spin_ns,
    .probe = threads_probe,
    .init = threads_init,
    .map = threads_map,
    .fini = threads_fini,
};
