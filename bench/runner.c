/* SPDX-License-Identifier: MIT */
/* Runs the catalogue. For each case: admission (memory for set-up and for the items that run
 * at once), set-up, the sequential baseline, then every backend at every worker count; each
 * with one warm-up (skipped when a run takes over a second: it then teaches nothing) and
 * `repeat` timed runs. Results are checked after the first timed run of every row. */
#include "runner.h"
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Memory brigade lets the benchmark plan for: the rest is left to the system and to error. */
#define MEM_SAFETY 0.8

typedef struct run_case {
  const bench_workload *w;
  bench_case c;
  void *state;
  void *out;
  char section[BENCH_SECTION_LEN];
  double seq_s;    /* median of the seq row */
  double seq_util; /* CPU time / wall time of the seq row */
} run_case;

/* One note per row: what each worker of the last run did, and how uneven that was. */
static void insights_note(bench_result *res, const run_case *rc, const char *backend,
                          bg_pool_t *pool, const bg_map_report_t *rep) {
  bg_worker_insight_t in[16];
  int n = bg_map_insights(pool, in, 16);
  if (n <= 0)
    return;
  char text[BENCH_NOTE_LEN];
  size_t len = (size_t)snprintf(text, sizeof text, "insights, %s x%d (imbalance %.1f%%):", backend,
                                n, rep->imbalance * 100);
  for (int w = 0; w < n && w < 16 && len < sizeof text; w++)
    len += (size_t)snprintf(
        text + len, sizeof text - len, " w%d %zu items, start %.2f ms, busy %.3f s, idle %.3f s%s",
        w, in[w].items, (double)in[w].startup_ns * 1e-6, (double)in[w].busy_ns * 1e-9,
        (double)in[w].idle_ns * 1e-9, w + 1 < n ? ";" : "");
  if (n > 16 && len < sizeof text)
    snprintf(text + len, sizeof text - len, " (first 16 of %d)", n);
  bench_note_add(res, rc->section, "%s", text);
}

/* Times one (backend, workers) row. Returns 0 or a BG_E* from pool creation. */
static int time_row(const bench_run_opts *o, run_case *rc, const char *backend, unsigned workers,
                    bench_row *row, bench_result *res) {
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = backend;
  po.workers = workers;
  bg_pool_t *pool;
  int err = bg_pool_create(&po, &pool);
  if (err != 0)
    return err;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = rc->w->fn;
  d.ctx = rc->w->setup ? rc->state : &rc->c;
  d.n = rc->c.n;
  d.out = rc->out;
  d.out_size = rc->w->out_size;
  d.flags = BG_MAP_HALT;
  bg_progress_bar_t *bar = NULL;
  if (o->progress && o->rank == 0) {
    char label[BENCH_SECTION_LEN + 48];
    snprintf(label, sizeof label, "%s: %s x%u", rc->section, backend, bg_pool_workers(pool));
    if (bg_progress_bar_create(label, -1, BG_PROGRESS_CLEAR, &bar) == 0) {
      d.progress = bg_progress_bar_update;
      d.progress_ud = bar;
    }
  }
  if (rc->w->items && rc->w->setup)
    d.in = rc->w->items(rc->state, &rc->c, &d.in_size);
  double t[64], cpu[64], sys = 0, user = 0;
  unsigned reps = o->repeat;
  double estimate = rc->seq_s > 0 ? rc->seq_s / workers : 0;
  /* Ranks must run the same number of maps: under mpirun every row has its warm-up run. */
  int warm = estimate < 1.0 || o->ranks > 1;
  bg_map_report_t rep = {0};
  int rcode = 0;
  bench_peak_reset();
  for (unsigned r = 0; r < reps + (unsigned)warm && !bench_interrupted; r++) {
    memset(rc->out, 0, rc->c.n * rc->w->out_size);
    bench_cpu c0 = bench_cpu_now();
    double t0 = bench_now();
    rcode = bg_map(pool, &d, &rep);
    double dt = bench_now() - t0;
    bench_cpu c1 = bench_cpu_now();
    double du = c1.user - c0.user, ds = c1.sys - c0.sys;
    if (warm && r == 0)
      continue;
    unsigned k = r - (unsigned)warm;
    t[k] = dt;
    cpu[k] = du + ds;
    user += du;
    sys += ds;
    if (k == 0 && rcode == 0 && rc->w->check && o->rank == 0) {
      char why[256];
      if (rc->w->check(rc->state, &rc->c, rc->out, why, sizeof why) != 0) {
        row->failed = 1;
        bench_note_add(res, rc->section, "CHECK FAILED on %s: %s", backend, why);
      }
    }
    if (rcode != 0)
      break;
  }
  row->peak_mib = bench_peak_mib();
  row->workers = bg_pool_workers(pool) * (strcmp(backend, "mpi") ? 1 : (o->ranks ? o->ranks : 1));
  row->imbalance = rep.imbalance;
  row->restarts = rep.workers_started > bg_pool_workers(pool)
                      ? (unsigned)(rep.workers_started - bg_pool_workers(pool))
                      : 0;
  if (o->insights && o->rank == 0 && !bench_interrupted)
    insights_note(res, rc, backend, pool, &rep);
  bg_progress_bar_destroy(bar);
  bg_pool_destroy(pool);
  if (bench_interrupted)
    return BG_ECANCELED;
  unsigned got = rcode == 0 ? reps : 1;
  if (rcode != 0) {
    row->failed = 1;
    bench_note_add(res, rc->section,
                   "%s: %zu of %zu items failed; the first, item %zu, returned %d", backend,
                   rep.n_failed, rc->c.n, rep.first_failed, rep.first_code);
  }
  row->wall = bench_summarise(t, got);
  row->cpu_s = bench_summarise(cpu, got).median;
  row->sys_share = user + sys > 0 ? sys / (user + sys) : 0;
  row->chunks = rep.chunks;
  row->ran_inline = rep.ran_inline;
  return 0;
}

static bench_row *new_row(bench_result *res, const run_case *rc, const char *backend) {
  if (res->nrows == BENCH_MAX_ROWS)
    return NULL;
  bench_row *row = &res->rows[res->nrows];
  memset(row, 0, sizeof *row);
  snprintf(row->section, sizeof row->section, "%s", rc->section);
  row->workload = rc->w->name;
  row->backend = backend;
  row->schedule = "auto";
  row->n = rc->c.n;
  return row;
}

static void finish_row(bench_result *res, bench_row *row, const run_case *rc) {
  row->ns_per_item = row->wall.median * 1e9 / (double)(rc->c.n ? rc->c.n : 1);
  double seq = rc->seq_s > 0 ? rc->seq_s : row->wall.median;
  row->speedup = row->wall.median > 0 ? seq / row->wall.median : 0;
  row->efficiency = row->speedup / row->workers;
  row->overhead_ns =
      ((double)row->workers * row->wall.median - seq) * 1e9 / (double)(rc->c.n ? rc->c.n : 1);
  res->nrows++;
}

/* How many workers "auto" means for this case: the default, raised when the sequential run
 * shows the items mostly blocked (their CPU time far below their wall time), because workers
 * beyond the cores then overlap waits instead of competing for cores. */
static unsigned auto_workers(const run_case *rc, unsigned def, bench_result *res) {
  if (rc->seq_util >= 0.5 || rc->c.n <= def)
    return def;
  double want = ceil((double)def / (rc->seq_util > 1e-3 ? rc->seq_util : 1e-3));
  unsigned w = want > BENCH_BLOCKING_MAX_WORKERS ? BENCH_BLOCKING_MAX_WORKERS : (unsigned)want;
  if (w > rc->c.n)
    w = (unsigned)rc->c.n;
  if (w > def)
    bench_note_add(res, rc->section,
                   "auto workers: the sequential run kept the CPU busy %.1f%% of the time (items "
                   "blocked), so %u workers were used instead of %u (one per core), to overlap the "
                   "waits; the bound is %u",
                   100 * rc->seq_util, w, def, BENCH_BLOCKING_MAX_WORKERS);
  return w;
}

/* Lowers workers so that the items running at once fit in memory; 0 when not even one fits. */
static unsigned admit(const run_case *rc, unsigned workers, uint64_t avail, bench_result *res) {
  if (!rc->w->item_bytes)
    return workers;
  uint64_t per = rc->w->item_bytes(&rc->c), budget = (uint64_t)((double)avail * MEM_SAFETY);
  uint64_t fit = per ? budget / per : workers;
  if (fit >= workers)
    return workers;
  if (fit > 0)
    bench_note_add(res, rc->section,
                   "memory: %u workers would hold %.0f MiB at once but %.0f MiB are available, so "
                   "%u workers ran",
                   workers, (double)per * workers / 1048576, (double)avail / 1048576,
                   (unsigned)fit);
  return (unsigned)fit;
}

static int refuse(const run_case *rc, uint64_t avail, char *err, size_t cap) {
  snprintf(err, cap,
           "%s: one item needs %.0f MiB but only %.0f MiB are available; use a smaller size "
           "(--size quick, --param) or free memory",
           rc->section, (double)rc->w->item_bytes(&rc->c) / 1048576, (double)avail / 1048576);
  return BG_ENOMEM;
}

static int run_rows(const bench_run_opts *o, run_case *rc, uint64_t avail, bench_result *res,
                    char *err, size_t cap) {
  /* Even the sequential loop holds one item's memory. */
  if (admit(rc, 1, avail, res) == 0)
    return refuse(rc, avail, err, cap);
  bench_row *row;
  int e;
  if (o->rank == 0) {
    if (!(row = new_row(res, rc, "seq")))
      return 0;
    if ((e = time_row(o, rc, "seq", 1, row, res)) != 0)
      return e;
    rc->seq_s = row->wall.median;
    rc->seq_util = row->wall.median > 0 ? row->cpu_s / row->wall.median : 1;
    finish_row(res, row, rc);
  }
  /* The mpi backend's threads per rank: the cores shared among the ranks (all on this
   * machine is the common case), never auto's blocking boost, which only rank 0 could judge. */
  unsigned ranks = o->ranks ? o->ranks : 1;
  unsigned per_rank = o->cores / ranks ? o->cores / ranks : 1;
  for (size_t wi = 0; wi < o->nworkers; wi++) {
    unsigned local = 0;
    if (o->rank == 0) {
      local = o->workers[wi] ? o->workers[wi] : auto_workers(rc, o->cores, res);
      if ((local = admit(rc, local, avail, res)) == 0)
        return refuse(rc, avail, err, cap);
    }
    for (size_t b = 0; b < o->nbackends; b++) {
      int mpi = !strcmp(o->backends[b], "mpi");
      if (o->rank != 0 && !mpi)
        continue;
      unsigned workers = !mpi ? local : o->workers[wi] ? o->workers[wi] : per_rank;
      /* Each rank holds its own threads' items: the same memory check, per rank. */
      if (mpi && (workers = admit(rc, workers, avail, res)) == 0)
        return refuse(rc, avail, err, cap);
      row = new_row(res, rc, o->backends[b]);
      if (!row)
        return 0;
      e = time_row(o, rc, o->backends[b], workers, row, res);
      if (e != 0) {
        snprintf(err, cap, "%s: backend %s: %s", rc->section, o->backends[b], bg_strerror(e));
        return e;
      }
      finish_row(res, row, rc);
    }
  }
  return 0;
}

static void label(run_case *rc) {
  int len = snprintf(rc->section, sizeof rc->section, "%s: %zu items", rc->w->name, rc->c.n);
  if (rc->w->param_fmt && len > 0 && (size_t)len < sizeof rc->section) {
    char p[48];
    snprintf(p, sizeof p, rc->w->param_fmt, rc->c.param);
    snprintf(rc->section + len, sizeof rc->section - (size_t)len, ", %s", p);
  }
}

static int run_case_once(const bench_run_opts *o, const bench_workload *w, bench_case c,
                         bench_result *res, char *err, size_t cap) {
  run_case rc = {.w = w, .c = c};
  label(&rc);
  uint64_t avail = 0;
  bg_mem_available(&avail);
  uint64_t need = (w->setup_bytes ? w->setup_bytes(&c) : 0) + c.n * w->out_size;
  if (avail && (double)need > (double)avail * MEM_SAFETY) {
    snprintf(err, cap,
             "%s needs %.0f MiB for its inputs and results but only %.0f MiB are available; use "
             "--size quick or a smaller --n",
             rc.section, (double)need / 1048576, (double)avail / 1048576);
    return BG_ENOMEM;
  }
  rc.out = calloc(c.n ? c.n : 1, w->out_size);
  if (!rc.out) {
    snprintf(err, cap, "%s: cannot allocate the results", rc.section);
    return BG_ENOMEM;
  }
  char why[256] = "";
  if (w->setup && w->setup(&c, &rc.state, why, sizeof why) != 0) {
    snprintf(err, cap, "%s: set-up failed: %s", rc.section, why);
    free(rc.out);
    return BG_ESYS;
  }
  size_t first_row = res->nrows;
  int e = run_rows(o, &rc, avail - (avail > need ? need : avail), res, err, cap);
  if (w->teardown)
    w->teardown(rc.state);
  free(rc.out);
  if (e == 0 && res->nrows > first_row)
    bench_explain(res, w, &c, rc.section, o->cores);
  if (e == 0 && o->peers && res->nrows > first_row) {
    if (bench_workload_find(w->name) != w)
      bench_note_add(res, rc.section, "Python peers not run: they cannot call a C plug-in");
    else
      e = bench_peers_case(o->peers, w->name, &c, o->repeat, rc.section, res);
  }
  return e;
}

int bench_run_workload(const bench_run_opts *opts, const bench_workload *w, bench_result *res,
                       char *err, size_t cap) {
  /* The core count, read once here rather than once per row: hwloc loads take milliseconds. */
  bench_run_opts local = *opts;
  const bench_run_opts *o = &local;
  if (local.cores == 0) {
    bg_topo_t *t;
    local.cores = 1;
    if (bg_topo_create(&t) == 0) {
      local.cores = bg_topo_default_workers(t);
      bg_topo_destroy(t);
    }
  }
  const bench_case *cases = o->lecture ? w->lecture : &w->quick;
  size_t ncases = o->lecture ? w->nlecture : 1;
  for (size_t i = 0; i < ncases; i++) {
    bench_case c = cases[i];
    if (o->n_override)
      c.n = o->n_override;
    if (o->param >= 0)
      c.param = o->param;
    int e = run_case_once(o, w, c, res, err, cap);
    if (e != 0)
      return e;
    if (o->n_override || o->param >= 0)
      break;
  }
  return 0;
}
