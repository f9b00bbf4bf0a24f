/* SPDX-License-Identifier: MIT */
/* bg_map: validate the description, pick inline or parallel execution, run it on the pool's
 * backend and summarise what happened. How the auto schedule decides is written up in
 * docs/SCHEDULING.md; the code below is that page's algorithm. */
#include "brigade/cache.h"
#include "brigade/error.h"
#include "internal/clock.h"
#include "brigade/dist.h"
#include "internal/journal_map.h"
#include "internal/memo.h"
#include "internal/pool_impl.h"
#include "internal/trace.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

void bg_map_desc_init(bg_map_desc_t *d) {
  memset(d, 0, sizeof *d);
  d->version = BG_MAP_DESC_VERSION;
  d->breaker = BG_MAP_BREAKER_DEFAULT;
}

/* Where each version of the description ends: a caller built against an older header passes a
 * shorter struct, and the fields it lacks read as zero. */
static size_t desc_size(uint32_t version) {
  switch (version) {
  case 1:
    return offsetof(bg_map_desc_t, status);
  case 2:
    return offsetof(bg_map_desc_t, breaker);
  case 3:
  case 4:
    return offsetof(bg_map_desc_t, ctx_size);
  case 5:
    return offsetof(bg_map_desc_t, trace);
  case 6:
    return offsetof(bg_map_desc_t, journal);
  default:
    return sizeof(bg_map_desc_t);
  }
}

/* Where the report of the version that goes with a description of @version ends: a caller
 * built against an older header allocated the shorter struct. */
static size_t report_size(uint32_t version) {
  switch (version) {
  case 1:
    return offsetof(bg_map_report_t, n_crashed);
  case 2:
    return offsetof(bg_map_report_t, n_tripped);
  case 3:
    return offsetof(bg_map_report_t, first_state);
  case 4:
  case 5:
  case 6:
    return offsetof(bg_map_report_t, n_replayed);
  default:
    return sizeof(bg_map_report_t);
  }
}

static const char *const state_names[] = {"pending", "ok",     "failed",
                                          "crashed", "exited", "timeout"};

const char *bg_item_state_name(int state) {
  return state >= 0 && (size_t)state < sizeof state_names / sizeof state_names[0]
             ? state_names[state]
             : "?";
}

/* Index ranges this large could wrap the shared counters (a worker may advance one by a
 * whole chunk past the end), and no machine holds that many results anyway. */
#define MAX_ITEMS (SIZE_MAX / 4)

static int check_desc(const bg_map_desc_t *d) {
  if (!d->fn)
    return BG_EINVAL;
  if ((d->in && d->in_size == 0) || (d->out && d->out_size == 0) || (d->ctx_size && !d->ctx))
    return BG_EINVAL;
  if (d->retry_on & ~(uint32_t)(BG_RETRY_FAILED | BG_RETRY_CRASHED | BG_RETRY_TIMEOUT))
    return BG_EINVAL;
  if (d->n > MAX_ITEMS)
    return BG_ERANGE;
  if (d->in && d->n > SIZE_MAX / d->in_size)
    return BG_ERANGE;
  if (d->out && d->n > SIZE_MAX / d->out_size)
    return BG_ERANGE;
  /* A memo repeats the map's sizes (cache.h): checked before any item runs. */
  if (d->fn == bg_memo_task)
    return bg__memo_check(d);
  return BG_OK;
}

static bg__cost *cost_find(bg_pool_t *p, bg_task_fn fn) {
  for (unsigned i = 0; i < BG_POOL_HISTORY; i++)
    if (p->history[i].fn == fn)
      return &p->history[i];
  return NULL;
}

static void cost_record(bg_pool_t *p, bg_task_fn fn, double ns_per_item) {
  bg__cost *c = cost_find(p, fn);
  if (!c) {
    c = &p->history[p->history_next];
    p->history_next = (p->history_next + 1) % BG_POOL_HISTORY;
    c->fn = fn;
  }
  c->ns_per_item = ns_per_item;
}

/* Whether the workers are still spinning after the last map (a dispatch then needs no system
 * call) or have parked. */
static int workers_warm(const bg_pool_t *p) {
  uint64_t spin = p->ops->spin_ns ? p->ops->spin_ns(p->bstate) : 0;
  return spin && bg__now_ns() - p->last_end_ns < spin / 2;
}

/* Learns what a parallel map really cost beyond its work: its wall time minus the busiest
 * worker's time in chunks. The busiest worker, not the average, so an uneven split of a few
 * long items is not mistaken for dispatch cost. Starts from the calibration at pool creation
 * (an empty map), which underestimates: real maps add chunk hand-outs and cache misses. */
static void learn_overhead(bg_pool_t *p, int warm, uint64_t wall_ns) {
  uint64_t busiest = 0;
  for (unsigned w = 0; w < p->workers; w++)
    busiest = p->slots[w].busy_ns > busiest ? p->slots[w].busy_ns : busiest;
  double seen = wall_ns > busiest ? (double)(wall_ns - busiest) : 0;
  p->overhead_ns[warm] = 0.75 * p->overhead_ns[warm] + 0.25 * seen;
}

/* Parallel execution pays off when the work it saves, work * (W - 1) / W on W workers,
 * exceeds twice the cost of a dispatch; twice, so a noisy estimate near the break-even point
 * does not flip to parallel for no gain. */
static int parallel_pays(const bg_pool_t *p, double work_ns, double dispatch_ns) {
  if (p->workers < 2)
    return 0;
  return work_ns * (double)(p->workers - 1) / (double)p->workers > 2.0 * dispatch_ns;
}

/* Runs items from 0 on the calling thread in doubling chunks while the estimated rest of the
 * work stays too small to repay a dispatch. Returns how many items it ran. */
static size_t run_inline_prefix(bg_pool_t *p, bg__job *job, double dispatch_ns, size_t *chunks,
                                double *ns_item) {
  size_t n = job->d->n, done = 0, c = 1;
  uint64_t t0 = bg__now_ns();
  void *old_state;
  int old_w = bg__job_as_worker(job, 0, &old_state);
  bg__task_enter();
  while (done < n) {
    size_t e = n - done < c ? n : done + c;
    bg__job_run_chunk(job, 0, done, e);
    done = e;
    (*chunks)++;
    if (bg_atomic_load_relaxed(&job->sched->halt))
      break;
    double per_item = (double)(bg__now_ns() - t0) / (double)done;
    *ns_item = per_item;
    if (parallel_pays(p, per_item * (double)(n - done), dispatch_ns))
      break;
    if (c < BG_SCHED_CHUNK_MAX)
      c *= 2;
  }
  bg__task_leave();
  bg__worker_set(old_w, old_state, NULL);
  return done;
}

/* Adds up the workers' statistics. The imbalance is how far the busiest worker's time lies
 * above the mean of the workers that ran: 0 for a perfect split. */
static void summarise(const bg__wstat *stats, unsigned workers, size_t n, bg_map_report_t *r) {
  memset(r, 0, sizeof *r);
  r->version = BG_MAP_REPORT_VERSION;
  r->first_failed = SIZE_MAX;
  uint64_t busiest = 0, busy = 0;
  for (unsigned w = 0; w < workers; w++) {
    const bg__wstat *s = &stats[w];
    r->n_ok += s->ok;
    r->n_failed += s->failed;
    r->n_crashed += s->crashed;
    r->n_exited += s->exited;
    r->n_timeout += s->timeouts;
    r->n_retries += s->retries;
    r->workers_started += s->started;
    r->workers += s->ok + s->failed > 0;
    if (s->ok + s->failed > 0) {
      busy += s->busy_ns;
      busiest = s->busy_ns > busiest ? s->busy_ns : busiest;
    }
    if (s->first_failed < r->first_failed) {
      r->first_failed = s->first_failed;
      r->first_code = s->first_code;
      r->first_state = s->first_state;
    }
  }
  r->n_skipped = n - r->n_ok - r->n_failed;
  if (r->workers > 1 && busy > 0)
    r->imbalance = (double)busiest * r->workers / (double)busy - 1.0;
}

/* The auto schedule: inline while the map looks too small to parallelise, then the adaptive
 * shared-counter policy on what is left. */
static void map_auto(bg_pool_t *p, bg__job *job, bg_map_report_t *r) {
  const bg_map_desc_t *d = job->d;
  int forget = (d->flags & BG_MAP_NO_HISTORY) != 0;
  const bg__cost *known = forget ? NULL : cost_find(p, d->fn);
  size_t done = 0, inline_chunks = 0;
  double ns_item = known ? known->ns_per_item : 0;
  uint64_t t_inline = bg__now_ns();
  bg__sched_init(&p->sched, BG_SCHED_AUTO, 0, d->n, p->workers, p->chunk, 0, p->slots);
  /* With no history a map is parallel from the start: probing on the caller first would cost
   * a whole item when items are long (a 1 s task would double a 25-item map's time). */
  int warm = workers_warm(p);
  double dispatch_ns = p->overhead_ns[warm];
  if (p->workers < 2 || d->n == 1 ||
      (known && !parallel_pays(p, ns_item * (double)d->n, dispatch_ns)))
    done = run_inline_prefix(p, job, dispatch_ns, &inline_chunks, &ns_item);
  job->stats[0].busy_ns = done ? bg__now_ns() - t_inline : 0;
  r->ran_inline = done == d->n;
  if (done < d->n && !bg_atomic_load_relaxed(&p->sched.halt)) {
    size_t chunk0 = ns_item > 0 ? (size_t)(BG_SCHED_TARGET_NS / ns_item) : 1;
    bg__sched_init(&p->sched, BG_SCHED_AUTO, done, d->n, p->workers, p->chunk, chunk0, p->slots);
    uint64_t t0 = bg__now_ns();
    p->ops->map(p->bstate, job);
    p->last_end_ns = bg__now_ns();
    learn_overhead(p, warm, p->last_end_ns - t0);
    uint64_t busy = 0;
    for (unsigned w = 0; w < p->workers; w++)
      busy += p->slots[w].busy_ns;
    ns_item = (double)busy / (double)(d->n - done);
  }
  if (ns_item > 0 && !forget)
    cost_record(p, d->fn, ns_item);
  r->chunks += inline_chunks;
}

/* auto on an isolated backend: guided, never below a chunk worth BG_SCHED_TARGET_NS at the cost
 * per item last measured for this function. Each chunk costs a message round trip there (tens
 * of microseconds), so a map of trivial items goes in one or two chunks, not in the dozen of
 * plain guided (the measured cost includes each chunk's message, so it shrinks toward the
 * items' own as chunks grow). With no history, or long items, it is plain guided. */
static size_t isolated_chunk(bg_pool_t *p, const bg_map_desc_t *d) {
  const bg__cost *c = d->flags & BG_MAP_NO_HISTORY ? NULL : cost_find(p, d->fn);
  if (p->chunk || p->schedule != BG_SCHED_AUTO || !c || c->ns_per_item <= 0)
    return p->chunk;
  double k = BG_SCHED_TARGET_NS / c->ns_per_item;
  return k < 1 ? 1 : k > (double)BG_SCHED_CHUNK_MAX ? BG_SCHED_CHUNK_MAX : (size_t)k;
}

/* Runs a map on an isolated backend and remembers what an item of its function cost: the
 * workers' time in chunks, messages included, per item. */
static void map_isolated(bg_pool_t *p, bg__job *job) {
  const bg_map_desc_t *d = job->d;
  bg_schedule_t k = p->schedule == BG_SCHED_AUTO ? BG_SCHED_GUIDED : p->schedule;
  bg__sched_init(&p->sched, k, 0, d->n, p->workers, isolated_chunk(p, d), 0, p->slots);
  p->ops->map(p->bstate, job);
  uint64_t busy = 0;
  for (unsigned w = 0; w < p->workers; w++)
    busy += job->stats[w].busy_ns;
  if (busy > 0 && !job->rc && !job->interrupted && !(d->flags & BG_MAP_NO_HISTORY))
    cost_record(p, d->fn, (double)busy / (double)d->n);
}

static void map_locked(bg_pool_t *p, bg__job *job, bg_map_report_t *r) {
  const bg_map_desc_t *d = job->d;
  for (unsigned w = 0; w < p->workers; w++)
    bg__wstat_reset(&p->stats[w]);
  bg_map_report_t partial = {0};
  if (p->ops->collective) {
    /* Every rank takes part, even in an empty map; the backend schedules across ranks. */
    p->ops->map(p->bstate, job);
  } else if (p->ops->isolated) {
    /* Tasks never run on the caller: a crash must not take the caller's process with it. Each
     * chunk costs the worker a message, so auto means guided: few, shrinking chunks. */
    if (d->n > 0)
      map_isolated(p, job);
  } else if (p->schedule == BG_SCHED_AUTO) {
    map_auto(p, job, &partial);
  } else if (d->n > 0) {
    bg__sched_init(&p->sched, p->schedule, 0, d->n, p->workers, p->chunk, 0, p->slots);
    p->ops->map(p->bstate, job);
  }
  p->last_end_ns = bg__now_ns();
  summarise(p->stats, p->workers, d->n, r);
  r->ran_inline =
      partial.ran_inline || (p->workers == 1 && !p->ops->collective && !p->ops->isolated);
  r->chunks = partial.chunks;
  /* An empty map schedules nothing: the slots still hold an earlier map's figures, or none. */
  if (d->n > 0) {
    for (unsigned w = 0; w < p->workers; w++)
      r->chunks += p->slots[w].chunks;
    r->chunk_last = p->slots[0].chunk;
  }
}

/* A map from inside a task: run everything on this thread with private bookkeeping, leaving
 * the pool (which may be the very one running the outer map) untouched. */
static void map_nested(bg__job *job, bg_map_report_t *r) {
  const bg_map_desc_t *d = job->d;
  bg__sched_slot slot;
  bg__sched s;
  bg__wstat st;
  bg__sched_init(&s, BG_SCHED_AUTO, 0, d->n, 1, 0, 0, &slot);
  bg__wstat_reset(&st);
  job->sched = &s;
  job->stats = &st;
  job->workers = 1;
  uint64_t t0 = job->trace ? bg__now_ns() : 0;
  bg__job_run_range(job, 0, 0, d->n);
  if (job->trace)
    bg__trace_add(job->trace, BG_SPAN_CHUNK, 0, 0, d->n, t0, bg__now_ns());
  summarise(&st, 1, d->n, r);
  r->ran_inline = 1;
  r->chunks = d->n > 0;
  r->chunk_last = d->n;
}

/* The listener hears of the map when its work starts, not at the first report 100 ms in: a rate
 * is a count over the time since the start, and a listener that starts its clock at its first
 * call would otherwise overstate it (or show 0/s for a map shorter than one interval). */
static void start_progress(const bg_map_desc_t *d) {
  if (d->progress)
    d->progress(0, d->n, d->progress_ud);
}

/* Replays @d's journal and rewrites @d to skip what it settled. On the mpi backend only rank
 * 0 does: its journal records the whole map (backend/mpi_map.c), and a journal on another rank
 * is refused. A collective map that cannot use its journal still runs, so that every rank fails
 * it together instead of waiting for this one (desc.journal is then dropped). */
static int begin_journal(bg_pool_t *pool, bg__jmap *jm, bg_map_desc_t *d) {
  int collective = pool->ops->collective && !bg__in_task();
  unsigned rank = 0, ranks = 1;
  int rc = collective && bg_dist_world(&rank, &ranks) != 0 ? BG_EBACKEND
           : rank != 0                                     ? BG_EINVAL
                       : bg__jmap_begin(jm, d, pool->ops->persistent);
  if (rc != 0 && collective)
    d->journal = NULL;
  return rc;
}

int bg_map(bg_pool_t *pool, const bg_map_desc_t *user, bg_map_report_t *report) {
  bg_map_desc_t desc;
  if (!pool || !user || user->version == 0 || user->version > BG_MAP_DESC_VERSION)
    return BG_EINVAL;
  /* Not bg__upgrade, which knows only version 1 and the latest: there are more. */
  memset(&desc, 0, sizeof desc);
  memcpy(&desc, user, desc_size(user->version));
  const bg_map_desc_t *d = &desc;
  int rc = check_desc(d);
  if (rc != 0)
    return rc;
  if ((d->timeout_ms || d->timeout_pct || (d->flags & BG_MAP_HALT_NOW)) && !pool->ops->isolated)
    return BG_EBACKEND;
  /* Workers forked maps ago would read whatever ctx pointed to then: stale data, silently. */
  if (pool->ops->persistent && d->ctx && !d->ctx_size)
    return BG_EINVAL;
  /* desc.retries becomes the retries of a non-zero return (the only cause the workers see
   * themselves); the parent of procs workers keeps those of the other causes. */
  uint32_t on = d->retry_on ? d->retry_on : BG_RETRY_FAILED | BG_RETRY_CRASHED | BG_RETRY_TIMEOUT;
  uint32_t retries = d->retries;
  desc.retries = on & BG_RETRY_FAILED ? retries : 0;
  uint64_t t0 = bg__now_ns();
  if (d->status)
    memset(d->status, 0, d->n * sizeof *d->status);
  bg__jmap jm = {0};
  int refuse = 0;
  if (d->journal && (refuse = begin_journal(pool, &jm, &desc)) != 0 &&
      !(pool->ops->collective && !bg__in_task()))
    return refuse;
  bg__progress prog = {.fn = d->progress,
                       .ud = d->progress_ud,
                       .total = d->n,
                       .interval_ns = (uint64_t)(d->progress_ms ? d->progress_ms : 100) * 1000000u};
  atomic_init(&prog.done, 0);
  atomic_init(&prog.next_ns, t0 + prog.interval_ns);
  atomic_init(&prog.busy, 0);
  bg__job job = {.d = d,
                 .sched = &pool->sched,
                 .stats = pool->stats,
                 .workers = pool->workers,
                 .halt_on_error = (d->flags & BG_MAP_HALT) != 0,
                 .halt_after = d->halt_after,
                 .retries_crash = on & BG_RETRY_CRASHED ? retries : 0,
                 .retries_timeout = on & BG_RETRY_TIMEOUT ? retries : 0,
                 .status = d->status,
                 .progress = d->progress ? &prog : NULL,
                 .trace = d->trace,
                 .journal = d->journal,
                 .t0_ns = t0,
                 .refuse = refuse,
                 .replayed = jm.n_skip ? jm.rec : NULL};
  bg_map_report_t r;
  if (bg__in_task()) {
    start_progress(d);
    map_nested(&job, &r);
  } else {
    if (d->flags & BG_MAP_NOWAIT) {
      if (pthread_mutex_trylock(&pool->map_lock) != 0) {
        if (d->journal)
          bg__jmap_abort(&jm);
        return BG_EBUSY;
      }
    } else {
      pthread_mutex_lock(&pool->map_lock);
    }
    start_progress(d);
    job.life = pool->life;
    map_locked(pool, &job, &r);
    pool->last_wall_ns = bg__now_ns() - t0;
    pthread_mutex_unlock(&pool->map_lock);
  }
  if (job.rc != 0 || refuse) {
    if (d->journal)
      bg__jmap_abort(&jm);
    return job.rc ? job.rc : refuse;
  }
  int jrc = d->journal ? bg__jmap_end(&jm, d->n, &r) : BG_OK;
  r.schedule = pool->schedule;
  r.wall_ns = bg__now_ns() - t0;
  r.interrupted = job.interrupted;
  r.tripped = job.tripped;
  r.n_tripped = job.n_tripped;
  r.shrunk = job.shrunk;
  if (d->progress)
    d->progress(r.n_ok + r.n_failed, d->n, d->progress_ud);
  if (report) {
    r.version = user->version < BG_MAP_REPORT_VERSION ? user->version : BG_MAP_REPORT_VERSION;
    memcpy(report, &r, report_size(user->version));
  }
  if (job.interrupted)
    return BG_ECANCELED;
  /* Records that could not be written are lost to a resume: the caller must know. */
  if (jrc != 0)
    return jrc;
  /* The results in the shrunk file are lost, and reading them would raise SIGBUS: this is not
   * the usual "some items failed" that a caller answers by reading the others. */
  if (job.shrunk)
    return BG_ERANGE;
  return r.n_failed ? BG_ETASK : BG_OK;
}

int bg_map_insights(bg_pool_t *pool, bg_worker_insight_t *out, unsigned cap) {
  if (!pool || (!out && cap))
    return BG_EINVAL;
  pthread_mutex_lock(&pool->map_lock);
  unsigned n = pool->workers < cap ? pool->workers : cap;
  for (unsigned w = 0; w < n; w++) {
    const bg__wstat *s = &pool->stats[w];
    uint64_t used = s->startup_ns + s->busy_ns;
    out[w] =
        (bg_worker_insight_t){.items = s->ok + s->failed,
                              .failed = s->failed,
                              .startup_ns = s->startup_ns,
                              .busy_ns = s->busy_ns,
                              .idle_ns = pool->last_wall_ns > used ? pool->last_wall_ns - used : 0,
                              .started = s->started};
  }
  pthread_mutex_unlock(&pool->map_lock);
  return (int)pool->workers;
}
