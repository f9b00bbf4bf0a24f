/* SPDX-License-Identifier: MIT */
/* The overhead suite. Every case gets its own pool (a pool has one schedule), one untimed
 * warm-up map, which also lets auto learn the task's cost as it would in any program that maps
 * more than once, and then `repeat` timed maps. Output buffers are touched before timing: on
 * this virtual machine first-touching memory costs about 20 us per page and would drown what
 * is being measured. */
#include "overhead.h"
#include "comforts.h"
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
  int shared;        /* results in a shared array (bg_shared_create) */
} bcase;

static const bcase overhead_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0},           {"threads", BG_SCHED_AUTO, 0, NULL, 0},
    {"threads", BG_SCHED_STATIC, 0, NULL, 0},       {"threads", BG_SCHED_DYNAMIC, 0, NULL, 0},
    {"threads", BG_SCHED_GUIDED, 0, NULL, 0},       {"threads", BG_SCHED_STEAL, 0, NULL, 0},
    {"openmp", BG_SCHED_AUTO, 0, NULL, 0},          {"openmp", BG_SCHED_STATIC, 0, NULL, 0},
    {"openmp", BG_SCHED_DYNAMIC, 0, NULL, 0},       {"openmp", BG_SCHED_GUIDED, 0, NULL, 0},
    {"openmp", BG_SCHED_STEAL, 0, NULL, 0},         {"procs", BG_SCHED_AUTO, 0, NULL, 0},
    {"procs", BG_SCHED_AUTO, 0, "procs+shared", 1}, {"procs-persistent", BG_SCHED_AUTO, 0, NULL, 0},
};

/* What one small map costs, fixed cost against fixed cost: threads, procs forking its workers
 * at each map (snapshot) and procs-persistent keeping them. */
static const bcase map_cost_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0},
    {"threads", BG_SCHED_AUTO, 0, NULL, 0},
    {"procs", BG_SCHED_AUTO, 0, NULL, 0},
    {"procs-persistent", BG_SCHED_AUTO, 0, NULL, 0},
};

/* What an item costs in one large map on each procs mode. */
static const bcase procs_items_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0},
    {"procs", BG_SCHED_AUTO, 0, NULL, 0},
    {"procs-persistent", BG_SCHED_AUTO, 0, NULL, 0},
};

/* What one chunk costs a procs worker: the same trivial items as two chunks (static) and as one
 * message each (dynamic, chunk 1). */
static const bcase message_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0},
    {"procs", BG_SCHED_STATIC, 0, NULL, 0},
    {"procs", BG_SCHED_DYNAMIC, 1, NULL, 0},
};

static const bcase speedup_cases[] = {
    {"seq", BG_SCHED_STATIC, 0, NULL, 0},         {"threads", BG_SCHED_AUTO, 0, NULL, 0},
    {"threads", BG_SCHED_STATIC, 0, NULL, 0},     {"threads", BG_SCHED_GUIDED, 0, NULL, 0},
    {"threads", BG_SCHED_STEAL, 0, NULL, 0},      {"threads", BG_SCHED_DYNAMIC, 1, NULL, 0},
    {"threads", BG_SCHED_DYNAMIC, 16, NULL, 0},   {"threads", BG_SCHED_DYNAMIC, 256, NULL, 0},
    {"threads", BG_SCHED_DYNAMIC, 4096, NULL, 0}, {"openmp", BG_SCHED_AUTO, 0, NULL, 0},
    {"openmp", BG_SCHED_STATIC, 0, NULL, 0},      {"openmp", BG_SCHED_DYNAMIC, 1, NULL, 0},
    {"openmp", BG_SCHED_GUIDED, 0, NULL, 0},
};

static int usable(const char *backend) {
  for (size_t i = 0; i < bg_backend_count(); i++) {
    bg_backend_info_t b;
    if (bg_backend_info(i, &b) == 0 && strcmp(b.name, backend) == 0)
      return b.usable;
  }
  return 0;
}

/* Times @runs maps (after the warm-up) on a fresh pool: the row's figures are per map. */
static int time_case(const bcase *c, unsigned workers, unsigned runs, const bg_map_desc_t *d,
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
  double *t = malloc(runs * sizeof *t);
  if (!t)
    rc = BG_ENOMEM;
  for (unsigned r = 0; r <= runs && rc == 0; r++) {
    double t0 = bench_now();
    rc = bg_map(pool, &dd, NULL);
    if (r > 0)
      t[r - 1] = bench_now() - t0;
  }
  bg_shared_destroy(sh);
  row->backend = c->label ? c->label : c->backend;
  row->schedule = bg_schedule_name(c->schedule);
  row->chunk = c->chunk;
  row->workers = bg_pool_workers(pool);
  row->n = d->n;
  bg_pool_destroy(pool);
  if (rc == 0)
    row->wall = bench_summarise(t, runs);
  free(t);
  return rc;
}

static void progress(const bench_overhead_opts *o, const char *section, const bcase *c) {
  if (o->progress)
    fprintf(stderr, "\r\033[Krunning %s: %s/%s ...", section, c->backend,
            bg_schedule_name(c->schedule));
}

/* Runs every usable case on one workload, each @runs times; the first case must be seq, the
 * baseline. */
static int run_section(const bench_overhead_opts *o, const char *section, const bcase *cases,
                       size_t ncases, unsigned runs, const bg_map_desc_t *d, bench_result *res,
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
    int rc = time_case(&cases[i], o->workers, runs, d, row);
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

/* What a progress bar costs: maps with and without one, alternating on one pool so both see the
 * machine in the same state, compared by their medians (separate rows, run a second apart,
 * differed by up to 17% on this shared machine, far beyond the effect). */
#define BAR_PAIRS 15

static void note_bar(bench_result *res, const bench_overhead_opts *o, const bg_map_desc_t *d) {
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = "threads";
  po.workers = o->workers;
  bg_pool_t *pool;
  int fd = open("/dev/null", O_WRONLY);
  bg_progress_bar_t *bar = NULL;
  if (fd < 0 || bg_pool_create(&po, &pool) != 0) {
    if (fd >= 0)
      close(fd);
    return;
  }
  bg_map_desc_t with = *d;
  if (bg_progress_bar_create("overhead", fd, BG_PROGRESS_FORCE, &bar) == 0) {
    with.progress = bg_progress_bar_update;
    with.progress_ud = bar;
    double t[2][BAR_PAIRS];
    bg_map(pool, d, NULL); /* warm-up: auto learns the item cost */
    for (int k = 0; k < BAR_PAIRS; k++)
      for (int b = 0; b < 2; b++) {
        double t0 = bench_now();
        bg_map(pool, b ? &with : d, NULL);
        t[b][k] = bench_now() - t0;
      }
    double bare = bench_summarise(t[0], BAR_PAIRS).median;
    double drawn = bench_summarise(t[1], BAR_PAIRS).median;
    bench_note_add(res, "",
                   "progress: %zu trivial items on threads/auto, %d maps each way alternating: "
                   "%.3f ms bare, %.3f ms with a progress bar (%+.2f%%; target <= 1%%)",
                   d->n, BAR_PAIRS, bare * 1e3, drawn * 1e3, 100 * (drawn / bare - 1));
  }
  bg_progress_bar_destroy(bar);
  bg_pool_destroy(pool);
  close(fd);
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

/* The peer's map-cost row: Python's multiprocessing.Pool, created once, timed per map. */
static void peer_map_cost(const bench_overhead_opts *o, unsigned workers, bench_result *res) {
  bench_peers_cmd cmd;
  if (bench_peers_cmd_init(&cmd, o->peers, "mapcost.py", "map-cost", res) != 0)
    return;
  res->peers = 1;
  bench_peers_cmd_arg(&cmd, "--n", "%zu", o->n_small);
  bench_peers_cmd_arg(&cmd, "--maps", "%u", o->maps);
  bench_peers_cmd_arg(&cmd, "--workers", "%u", workers);
  bench_peers_run_script(o->peers, &cmd, "the Python peer process", "map-cost", "map-cost",
                         o->n_small, res);
  const bench_row *py = bench_find_row(res, "map-cost", "py:multiprocessing", "-");
  const bench_row *pp = bench_find_row(res, "map-cost", "procs-persistent", "auto");
  if (py && pp && !py->failed)
    bench_note_add(res, "",
                   "vs Python: multiprocessing.Pool(%u) created once took %.1f us per map of the "
                   "same %zu items, procs-persistent %.1f us: %.1fx (target >= 4x)",
                   py->workers, py->wall.median * 1e6, o->n_small, pp->wall.median * 1e6,
                   py->wall.median / pp->wall.median);
}

/* What the map-cost and procs-items rows say about the two procs modes, against the targets of
 * issue 23. */
static void note_map_cost(bench_result *res, const bench_overhead_opts *o) {
  static const char *const modes[] = {"threads", "procs", "procs-persistent"};
  double us[3], ns[3] = {0, 0, 0};
  unsigned workers = 0;
  for (size_t i = 0; i < 3; i++) {
    const bench_row *r = bench_find_row(res, "map-cost", modes[i], "auto");
    const bench_row *big = bench_find_row(res, "procs-items", modes[i], "auto");
    if (!r || (i > 0 && !big))
      return;
    us[i] = r->wall.median * 1e6;
    ns[i] = big ? big->ns_per_item : 0;
    workers = r->workers;
  }
  bench_note_add(res, "",
                 "map cost: %u maps of %zu trivial items on %u workers, median per map: threads "
                 "%.1f us, procs (snapshot: a fork per worker per map) %.1f us, procs-persistent "
                 "%.1f us (target <= 100 us), %.1fx faster than snapshot; one map of %zu items: "
                 "procs %.1f ns per item, procs-persistent %.1f ns (target: no worse)",
                 o->maps, o->n_small, workers, us[0], us[1], us[2], us[1] / us[2], o->n_items,
                 ns[1], ns[2]);
}

/* The map-cost section (o->maps maps of o->n_small trivial items, each timed: the rows' times
 * are per map) and the procs-items section (one map of o->n_items, o->repeat times), and what
 * they say about the two procs modes. @d: the trivial map, whose results buffer holds at
 * least o->n_items. */
static int run_map_cost(const bench_overhead_opts *o, bg_map_desc_t *d, bench_result *res,
                        const char **what) {
  d->n = o->n_small;
  int rc = run_section(o, "map-cost", map_cost_cases,
                       sizeof map_cost_cases / sizeof map_cost_cases[0], o->maps, d, res, what);
  if (rc != 0)
    return rc;
  const bench_row *pp = bench_find_row(res, "map-cost", "procs-persistent", "auto");
  if (o->peers && pp)
    peer_map_cost(o, pp->workers, res);
  d->n = o->n_items;
  rc = run_section(o, "procs-items", procs_items_cases,
                   sizeof procs_items_cases / sizeof procs_items_cases[0], o->repeat, d, res, what);
  if (rc != 0)
    return rc;
  note_map_cost(res, o);
  return 0;
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
                   o->repeat, &d, res, what);
  if (rc != 0)
    goto done;
  const bench_row *ta = bench_find_row(res, "overhead", "threads", "auto");
  if (ta)
    bench_note_add(res, "",
                   "overhead: threads/auto %.1f ns per item beyond the work (target <= 50)",
                   ta->overhead_ns);
  note_bar(res, o, &d);
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
                   sizeof message_cases / sizeof message_cases[0], o->repeat, &d, res, what);
  if (rc != 0)
    goto done;
  note_messages(res, o->n_messages);
  rc = run_map_cost(o, &d, res, what);
  if (rc != 0)
    goto done;
  bench_note_futures(res, o->workers, o->n_messages);
  bench_note_cache(res, o->workers, o->n_cache);
  d.fn = bench_prime_fixed;
  d.ctx = &fixed_number;
  d.n = o->n_fixed;
  d.out = flags;
  d.out_size = 1;
  rc = run_section(o, "prime-fixed", speedup_cases, sizeof speedup_cases / sizeof speedup_cases[0],
                   o->repeat, &d, res, what);
  if (rc != 0)
    goto done;
  add_notes(res, "prime-fixed");
  d.fn = bench_prime_range;
  d.ctx = NULL;
  d.n = o->n_range;
  rc = run_section(o, "prime-range", speedup_cases, sizeof speedup_cases / sizeof speedup_cases[0],
                   o->repeat, &d, res, what);
  if (rc != 0)
    goto done;
  add_notes(res, "prime-range");
done:
  free(flags);
  free(out);
  return rc;
}
