/* SPDX-License-Identifier: MIT */
/* The overhead suite. Every case gets its own pool (a pool has one schedule), one untimed
 * warm-up map, which also lets auto learn the task's cost as it would in any program that maps
 * more than once, and then `repeat` timed maps. Output buffers are touched before timing: on
 * this virtual machine first-touching memory costs about 20 us per page and would drown what
 * is being measured. */
#include "overhead.h"
#include "workloads/prime.h"

#include "brigade.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int trivial_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(size_t *)out = i;
  return 0;
}

typedef struct bcase {
  const char *backend;
  bg_schedule_t schedule;
  size_t chunk;
  const char *label; /* the row's name when it differs from the backend's */
  int bar;           /* draw a progress bar (forced, to /dev/null) */
  int shared;        /* results in a shared array (bg_shared_create) */
} bcase;

static const bcase overhead_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0, 0},
    {"threads", BG_SCHED_AUTO, 0, NULL, 0, 0},
    {"threads", BG_SCHED_STATIC, 0, NULL, 0, 0},
    {"threads", BG_SCHED_DYNAMIC, 0, NULL, 0, 0},
    {"threads", BG_SCHED_GUIDED, 0, NULL, 0, 0},
    {"threads", BG_SCHED_STEAL, 0, NULL, 0, 0},
    {"openmp", BG_SCHED_AUTO, 0, NULL, 0, 0},
    {"openmp", BG_SCHED_STATIC, 0, NULL, 0, 0},
    {"openmp", BG_SCHED_DYNAMIC, 0, NULL, 0, 0},
    {"openmp", BG_SCHED_GUIDED, 0, NULL, 0, 0},
    {"openmp", BG_SCHED_STEAL, 0, NULL, 0, 0},
    {"procs", BG_SCHED_AUTO, 0, NULL, 0, 0},
    {"procs", BG_SCHED_AUTO, 0, "procs+shared", 0, 1},
    {"threads", BG_SCHED_AUTO, 0, "threads+bar", 1, 0},
};

/* What one chunk costs a procs worker: the same trivial items as two chunks (static) and as one
 * message each (dynamic, chunk 1). */
static const bcase message_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0, 0},
    {"procs", BG_SCHED_STATIC, 0, NULL, 0, 0},
    {"procs", BG_SCHED_DYNAMIC, 1, NULL, 0, 0},
};

static const bcase speedup_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0, 0},         {"threads", BG_SCHED_AUTO, 0, NULL, 0, 0},
    {"threads", BG_SCHED_STATIC, 0, NULL, 0, 0},     {"threads", BG_SCHED_GUIDED, 0, NULL, 0, 0},
    {"threads", BG_SCHED_STEAL, 0, NULL, 0, 0},      {"threads", BG_SCHED_DYNAMIC, 1, NULL, 0, 0},
    {"threads", BG_SCHED_DYNAMIC, 16, NULL, 0, 0},   {"threads", BG_SCHED_DYNAMIC, 256, NULL, 0, 0},
    {"threads", BG_SCHED_DYNAMIC, 4096, NULL, 0, 0}, {"openmp", BG_SCHED_AUTO, 0, NULL, 0, 0},
    {"openmp", BG_SCHED_STATIC, 0, NULL, 0, 0},      {"openmp", BG_SCHED_DYNAMIC, 1, NULL, 0, 0},
    {"openmp", BG_SCHED_GUIDED, 0, NULL, 0, 0},
};

static int usable(const char *backend) {
  for (size_t i = 0; i < bg_backend_count(); i++) {
    bg_backend_info_t b;
    if (bg_backend_info(i, &b) == 0 && strcmp(b.name, backend) == 0)
      return b.usable;
  }
  return 0;
}

static int time_case(const bcase *c, unsigned workers, unsigned repeat, const bg_map_desc_t *d,
                     bench_row *row) {
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = c->backend;
  o.workers = workers;
  o.schedule = c->schedule;
  o.chunk = c->chunk;
  bg_pool_t *pool;
  int rc = bg_pool_create(&o, &pool);
  if (rc != 0)
    return rc;
  bg_map_desc_t dd = *d;
  bg_shared_t *sh = NULL;
  if (c->shared && (rc = bg_shared_create(d->n * d->out_size, NULL, &sh)) != 0) {
    bg_pool_destroy(pool);
    return rc;
  }
  if (sh)
    dd.out = bg_shared_data(sh);
  bg_progress_bar_t *bar = NULL;
  int null_fd = -1;
  if (c->bar && (null_fd = open("/dev/null", O_WRONLY)) >= 0 &&
      bg_progress_bar_create("overhead", null_fd, BG_PROGRESS_FORCE, &bar) == 0) {
    dd.progress = bg_progress_bar_update;
    dd.progress_ud = bar;
  }
  double t[64];
  for (unsigned r = 0; r <= repeat && rc == 0; r++) {
    double t0 = bench_now();
    rc = bg_map(pool, &dd, NULL);
    if (r > 0)
      t[r - 1] = bench_now() - t0;
  }
  bg_progress_bar_destroy(bar);
  bg_shared_destroy(sh);
  if (null_fd >= 0)
    close(null_fd);
  row->backend = c->label ? c->label : c->backend;
  row->schedule = bg_schedule_name(c->schedule);
  row->chunk = c->chunk;
  row->workers = bg_pool_workers(pool);
  row->n = d->n;
  bg_pool_destroy(pool);
  if (rc == 0)
    row->wall = bench_summarise(t, repeat);
  return rc;
}

static void progress(const bench_overhead_opts *o, const char *section, const bcase *c) {
  if (o->progress)
    fprintf(stderr, "\r\033[Krunning %s: %s/%s ...", section, c->backend,
            bg_schedule_name(c->schedule));
}

/* Runs every usable case on one workload; the first case must be seq, the baseline. */
static int run_section(const bench_overhead_opts *o, const char *section, const bcase *cases,
                       size_t ncases, const bg_map_desc_t *d, bench_result *res,
                       const char **what) {
  double seq = 0;
  for (size_t i = 0; i < ncases; i++) {
    if (!usable(cases[i].backend))
      continue;
    if (res->nrows == BENCH_MAX_ROWS)
      return 0;
    progress(o, section, &cases[i]);
    bench_row *row = &res->rows[res->nrows];
    memset(row, 0, sizeof *row);
    snprintf(row->section, sizeof row->section, "%s", section);
    row->workload = section;
    int rc = time_case(&cases[i], o->workers, o->repeat, d, row);
    if (rc != 0) {
      *what = section;
      return rc;
    }
    if (i == 0)
      seq = row->wall.median;
    row->ns_per_item = row->wall.median * 1e9 / (double)d->n;
    row->overhead_ns = ((double)row->workers * row->wall.median - seq) * 1e9 / (double)d->n;
    row->speedup = seq / row->wall.median;
    row->efficiency = row->speedup / row->workers;
    res->nrows++;
  }
  if (o->progress)
    fprintf(stderr, "\r\033[K");
  return 0;
}

/* The targets of the engine issue, read off this run's rows. */
static void add_notes(bench_result *res, const char *section) {
  const bench_row *a = bench_find_row(res, section, "threads", "auto");
  double best = 0;
  size_t best_chunk = 0;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    if (!strcmp(r->section, section) && !strcmp(r->backend, "threads") && r->chunk &&
        (best == 0 || r->wall.median < best)) {
      best = r->wall.median;
      best_chunk = r->chunk;
    }
  }
  if (!a || best == 0)
    return;
  bench_note_add(
      res, "",
      "%s: threads/auto speedup %.2fx (target >= 1.9 on 2 workers); %+.1f%% against the best "
      "fixed chunk, dynamic/%zu (target <= +5%%)",
      section, a->speedup, 100 * (a->wall.median / best - 1), best_chunk);
}

/* What waking the workers and waiting for them costs: auto weighs every map against it. */
static void note_dispatch(bench_result *res, unsigned workers) {
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = "threads";
  po.workers = workers;
  bg_pool_t *p;
  if (bg_pool_create(&po, &p) != 0)
    return;
  double w = bg_pool_workers(p), factor = w > 1 ? 2.0 * w / (w - 1) : 0;
  double cold = (double)bg_pool_dispatch_ns(p) / 1e3;
  double warm = (double)bg_pool_dispatch_warm_ns(p) / 1e3;
  bench_note_add(
      res, "",
      "dispatch: waking %u parked threads workers and joining them costs %.1f us, %.2f us "
      "while they still spin after a map; auto runs a map inline below ~%.0f / %.1f us of work",
      bg_pool_workers(p), cold, warm, cold * factor, warm * factor);
  bg_pool_destroy(p);
}

/* The parent's cost per chunk message, from the procs rows of the messages section. */
static void note_messages(bench_result *res, size_t n) {
  const bench_row *whole = NULL, *one = NULL;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    if (strcmp(r->section, "procs-messages") || strcmp(r->backend, "procs"))
      continue;
    if (r->chunk == 1)
      one = r;
    else
      whole = r;
  }
  if (whole && one && n)
    bench_note_add(res, "",
                   "messages: procs ran %zu trivial items in %.2f ms as one message each and "
                   "%.2f ms as two chunks: %.1f us of the parent's time per chunk message with "
                   "%u workers (why auto is guided on procs)",
                   n, one->wall.median * 1e3, whole->wall.median * 1e3,
                   (one->wall.median - whole->wall.median) / (double)n * 1e6, one->workers);
}

int bench_overhead(const bench_overhead_opts *o, bench_result *res, const char **what) {
  res->suite = "overhead";
  size_t *out = malloc(o->n_trivial * sizeof *out);
  uint8_t *flags = malloc(o->n_fixed > o->n_range ? o->n_fixed : o->n_range);
  unsigned long fixed_number = 9999991;
  int rc = BG_ENOMEM;
  *what = "allocating the output buffers";
  if (!out || !flags)
    goto done;
  memset(out, 0, o->n_trivial * sizeof *out);
  /* First, before OpenMP's idle threads (which spin for milliseconds after each parallel
   * region) can steal the second core from the measurement. */
  note_dispatch(res, o->workers);
  memset(flags, 0, o->n_fixed > o->n_range ? o->n_fixed : o->n_range);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = trivial_task;
  d.n = o->n_trivial;
  d.out = out;
  d.out_size = sizeof *out;
  rc = run_section(o, "overhead", overhead_cases, sizeof overhead_cases / sizeof overhead_cases[0],
                   &d, res, what);
  if (rc != 0)
    goto done;
  const bench_row *ta = bench_find_row(res, "overhead", "threads", "auto");
  if (ta)
    bench_note_add(res, "",
                   "overhead: threads/auto %.1f ns per item beyond the work (target <= 50)",
                   ta->overhead_ns);
  const bench_row *tb = bench_find_row(res, "overhead", "threads+bar", "auto");
  if (ta && tb)
    bench_note_add(res, "",
                   "progress: a progress bar on threads/auto costs %+.2f%% on %zu trivial items "
                   "(target <= 1%%): one atomic add and one clock read per chunk",
                   100 * (tb->wall.median / ta->wall.median - 1), o->n_trivial);
  const bench_row *pa = bench_find_row(res, "overhead", "procs", "auto");
  const bench_row *ps = bench_find_row(res, "overhead", "procs+shared", "auto");
  if (ta && pa && ps)
    bench_note_add(res, "",
                   "processes: procs/auto took %.2f ms for the same map, %.1fx threads/auto; "
                   "%.2f ms with the results in a shared array (no copy into and out of the "
                   "workers' arena): the rest is forking and first-touching shared pages",
                   pa->wall.median * 1e3, pa->wall.median / ta->wall.median, ps->wall.median * 1e3);
  d.n = o->n_messages;
  rc = run_section(o, "procs-messages", message_cases,
                   sizeof message_cases / sizeof message_cases[0], &d, res, what);
  if (rc != 0)
    goto done;
  note_messages(res, o->n_messages);
  d.fn = bench_prime_fixed;
  d.ctx = &fixed_number;
  d.n = o->n_fixed;
  d.out = flags;
  d.out_size = 1;
  rc = run_section(o, "prime-fixed", speedup_cases, sizeof speedup_cases / sizeof speedup_cases[0],
                   &d, res, what);
  if (rc != 0)
    goto done;
  add_notes(res, "prime-fixed");
  d.fn = bench_prime_range;
  d.ctx = NULL;
  d.n = o->n_range;
  rc = run_section(o, "prime-range", speedup_cases, sizeof speedup_cases / sizeof speedup_cases[0],
                   &d, res, what);
  if (rc != 0)
    goto done;
  add_notes(res, "prime-range");
done:
  free(flags);
  free(out);
  return rc;
}
