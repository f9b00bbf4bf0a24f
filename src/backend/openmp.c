/* SPDX-License-Identifier: MIT */
/* The OpenMP backend, the C reference row. Static, dynamic and guided run as OpenMP's own
 * `schedule(runtime)` loop, so the bench compares brigade's scheduler with the compiler
 * runtime's; steal and auto, which OpenMP lacks, run brigade's scheduler inside a parallel
 * region. The only file that includes omp.h. */
#include "brigade/error.h"
#include "internal/backend.h"
#include "internal/clock.h"
#include "internal/trace.h"

#include <omp.h>

typedef struct omp_state {
  unsigned workers;     /* I */
  bg_allocator_t alloc; /* I */
} omp_state;

static int omp_probe(void) {
  return omp_get_max_threads() >= 1 ? BG_OK : BG_EUNAVAIL;
}

static int omp_init(const bg__backend_cfg *cfg, void **state) {
  omp_state *s = cfg->alloc->alloc(sizeof *s, cfg->alloc->ud);
  if (!s)
    return BG_ENOMEM;
  s->workers = cfg->workers;
  s->alloc = *cfg->alloc;
  *state = s;
  return BG_OK;
}

static int native_kind(bg_schedule_t k, omp_sched_t *out) {
  switch (k) {
  case BG_SCHED_STATIC:
    *out = omp_sched_static;
    return 1;
  case BG_SCHED_DYNAMIC:
    *out = omp_sched_dynamic;
    return 1;
  case BG_SCHED_GUIDED:
    *out = omp_sched_guided;
    return 1;
  default:
    return 0;
  }
}

static void omp_map(void *state, bg__job *job) {
  omp_state *s = state;
  const bg__sched *sc = job->sched;
  omp_sched_t kind;
  if (!native_kind(sc->kind, &kind)) {
#pragma omp parallel num_threads(s->workers)
    bg__job_work(job, (unsigned)omp_get_thread_num());
    return;
  }
  /* OpenMP's chunk 0 means its own default: n/threads for static, 1 otherwise. */
  omp_set_schedule(kind, (int)(sc->chunk > 0x7fffffff ? 0x7fffffff : sc->chunk));
  long long b = (long long)sc->begin, e = (long long)sc->end;
#pragma omp parallel num_threads(s->workers)
  {
    unsigned w = (unsigned)omp_get_thread_num();
    uint64_t t0 = job->trace ? bg__now_ns() : 0;
    bg__task_enter();
#pragma omp for schedule(runtime) nowait
    for (long long i = b; i < e; i++) {
      if (!bg_atomic_load_relaxed(&job->sched->halt))
        bg__job_run_range(job, w, (size_t)i, (size_t)i + 1);
    }
    bg__task_leave();
    /* OpenMP hands out its own chunks unseen: the span is the thread's whole share. */
    if (job->trace)
      bg__trace_add(job->trace, BG_SPAN_LOOP, w, 0, 0, t0, bg__now_ns());
  }
}

static void omp_fini(void *state) {
  omp_state *s = state;
  s->alloc.free(s, s->alloc.ud);
}

const bg__backend_ops bg__backend_openmp = {
    .abi = BG_BACKEND_ABI,
    .name = "openmp",
    .priority = 10,
    .max_workers = 0,
    .probe = omp_probe,
    .init = omp_init,
    .map = omp_map,
    .fini = omp_fini,
};
