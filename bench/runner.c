/* SPDX-License-Identifier: MIT */
/* Runs the catalogue. For each case: admission (memory for set-up and for the items that run
 * at once), set-up, the sequential baseline, then every backend at every worker count; each
 * with one warm-up (skipped when a run takes over a second: it then teaches nothing) and
 * `repeat` timed runs. Results are checked after the first timed run of every row. */
#include "runner.h"
#include "contention.h"
#include "foreign.h"
#include "stats.h"
#include "supervise.h"

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
  double seq_s;    /* median of the seq row; 0 when it failed */
  double seq_util; /* CPU time / wall time of the seq row, over the CPU it could have had */
  int seq_failed;  /* no row has a speedup: nothing to compare with */
  /* A foreign task's (--task) rows: the guarded wrapper's shared record, the supervised
   * children's share, and what supervision cost (for the case's note). */
  bench_foreign *foreign;
  bench_sup_share *share;
  double fork_s;
  size_t children;
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

/* Backends that run tasks inside the bench's own process (or, for mpi, inside the ranks, which
 * cannot fork a row away): a foreign task's rows on them run supervised, except mpi's. */
static int in_process(const char *backend) {
  return strcmp(backend, "procs") && strcmp(backend, "procs-copy") &&
         strcmp(backend, "procs-persistent");
}

/* The pool and map description of one row. Every item runs, failed or not: a row reports how
 * many failed, not just the first. */
static int open_row(const bench_run_opts *o, run_case *rc, const char *backend, unsigned workers,
                    bg_pool_t **pool, bg_map_desc_t *d) {
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = backend;
  po.workers = workers;
  int err = bg_pool_create(&po, pool);
  if (err != 0)
    return err;
  bg_map_desc_init(d);
  d->fn = rc->foreign ? bench_foreign_task : rc->w->fn;
  d->ctx = rc->foreign ? (void *)rc->foreign : rc->w->setup ? rc->state : (void *)&rc->c;
  d->n = rc->c.n;
  d->out = rc->out;
  d->out_size = rc->w->out_size;
  /* Worker processes can be killed per item; in-process rows have a watchdog instead. */
  if (rc->foreign && o->timeout > 0 && !in_process(backend))
    d->timeout_ms = o->timeout * 1000 < 1 ? 1 : (unsigned)(o->timeout * 1000);
  return 0;
}

/* Adds a row to --trace's collection; @tr NULL (with @why) for a row whose spans cannot be had
 * here. A row that does not fit is left out: the trace is an aid, not the result. */
static void trace_row(const bench_run_opts *o, const run_case *rc, const char *backend,
                      unsigned workers, uint64_t t0, uint64_t t1, const bg_trace_t *tr) {
  char name[BENCH_SECTION_LEN + 64];
  snprintf(name, sizeof name, "%s: %s x%u", rc->section, backend, workers);
  const char *why = !strcmp(backend, "mpi") ? "mpi ranks run their own loops"
                    : !tr ? "a --task row on an in-process backend runs in a supervised child"
                          : NULL;
  bench_trace_add_row(o->trace, name, workers, t0, t1, tr, why);
}

/* Times one (backend, workers) row. Returns 0 or a BG_E* from pool creation. A foreign task's
 * timed runs keep no per-item statuses (on procs they cost an arena of n of them per map): a
 * row that fails is run once more, untimed, to count (foreign_row). */
static int time_row(const bench_run_opts *o, run_case *rc, const char *backend, unsigned workers,
                    bench_row *row, bench_result *res) {
  bg_pool_t *pool;
  bg_map_desc_t d;
  int err = open_row(o, rc, backend, workers, &pool, &d);
  if (err != 0)
    return err;
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
  /* --trace: every run is traced (two clock reads per chunk), the last one kept. */
  bg_trace_t *tr = NULL;
  uint64_t tr0 = 0, tr1 = 0;
  if (o->trace && o->rank == 0 && bg_trace_create(BENCH_TRACE_ROW_SPANS, &tr) == 0)
    d.trace = tr;
  /* The machine's CPU time over the timed runs, to tell what other processes took. */
  bench_machine_cpu machine = {.ok = 1};
  for (unsigned r = 0; r < reps + (unsigned)warm && !bench_interrupted; r++) {
    memset(rc->out, 0, rc->c.n * rc->w->out_size);
    bg_trace_clear(tr);
    bench_machine_cpu m0 = bench_machine_cpu_now();
    bench_cpu c0 = bench_cpu_now();
    double t0 = bench_now();
    tr0 = bg_trace_now_ns();
    rcode = bg_map(pool, &d, &rep);
    tr1 = bg_trace_now_ns();
    double dt = bench_now() - t0;
    bench_cpu c1 = bench_cpu_now();
    bench_machine_cpu m1 = bench_machine_cpu_now();
    double du = c1.user - c0.user, ds = c1.sys - c0.sys;
    if (warm && r == 0)
      continue;
    bench_machine_cpu_add(&machine, &m0, &m1);
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
  double others = bench_others_share(&machine, user + sys);
  row->others_measured = others >= 0;
  row->others_cpu = others >= 0 ? others : 0;
  row->workers = bg_pool_workers(pool) * (strcmp(backend, "mpi") ? 1 : (o->ranks ? o->ranks : 1));
  row->imbalance = rep.imbalance;
  row->restarts = rep.workers_started > bg_pool_workers(pool)
                      ? (unsigned)(rep.workers_started - bg_pool_workers(pool))
                      : 0;
  if (o->insights && o->rank == 0 && !bench_interrupted)
    insights_note(res, rc, backend, pool, &rep);
  if (tr && !bench_interrupted)
    trace_row(o, rc, backend, row->workers, tr0, tr1, tr); /* mpi: every rank's workers */
  bg_trace_destroy(tr);
  bg_progress_bar_destroy(bar);
  bg_pool_destroy(pool);
  if (bench_interrupted)
    return BG_ECANCELED;
  unsigned got = rcode == 0 ? reps : 1;
  if (rcode == BG_ECANCELED)
    return BG_ECANCELED;
  /* A foreign task's failures are counted and described by the caller, from every item (but
   * an mpi row's only by its report: every rank would have to take part in a count). */
  if (rcode != 0)
    row->failed = 1;
  if (rcode != 0 && (!rc->foreign || !strcmp(backend, "mpi"))) {
    /* The library's codes for a dead or killed worker are not the task's return value: the
     * state says which it is (a task may itself return -11, BG_ECRASH's value). */
    char what[64];
    if (rep.first_state == BG_ITEM_CRASHED)
      snprintf(what, sizeof what, "died with its worker process (a signal: a crash, or a kill)");
    else if (rep.first_state == BG_ITEM_EXITED)
      snprintf(what, sizeof what, "ended its worker process (exit() or a failed start)");
    else if (rep.first_state == BG_ITEM_TIMEOUT)
      snprintf(what, sizeof what, "ran past its timeout");
    else
      snprintf(what, sizeof what, "returned %d", rep.first_code);
    bench_note_add(res, rc->section, "%s: %zu of %zu items failed; the first, item %zu, %s",
                   backend, rep.n_failed, rc->c.n, rep.first_failed, what);
  }
  row->wall = bench_summarise(t, got);
  row->cpu_s = bench_summarise(cpu, got).median;
  row->sys_share = user + sys > 0 ? sys / (user + sys) : 0;
  row->chunks = rep.chunks;
  row->ran_inline = rep.ran_inline;
  return 0;
}

/* A supervised row: the arguments of time_row, carried into the child. */
typedef struct row_job {
  const bench_run_opts *o;
  run_case *rc;
  const char *backend;
  unsigned workers;
  bench_row *row;
  bench_result *res;
} row_job;

/* In the child: the row's runs, then the row and its notes copied where the bench reads them. */
static void row_in_child(void *arg, bench_sup_share *sh) {
  row_job *j = arg;
  size_t first = j->res->nnotes;
  /* What the child would trace stays in the child. */
  bench_run_opts o = *j->o;
  o.trace = NULL;
  sh->rcode = time_row(&o, j->rc, j->backend, j->workers, j->row, j->res);
  sh->row = *j->row;
  for (size_t k = first; k < j->res->nnotes && sh->nnotes < BENCH_SUP_NOTES; k++)
    memcpy(sh->notes[sh->nnotes++], j->res->notes[k].text, BENCH_NOTE_LEN);
}

/* "died of SIGSEGV", "called exit(3)", "was killed by the --timeout watchdog". */
static void death_text(const bench_sup_outcome *oc, char *buf, size_t cap) {
  if (oc->timed_out)
    snprintf(buf, cap, "was killed when an item outlived --timeout");
  else if (oc->died_signal)
    snprintf(buf, cap, "died of SIG%s", bench_sigabbrev(oc->died_signal));
  else
    snprintf(buf, cap, "ended with exit(%d) from the task", oc->died_exit);
}

/* The counting pass of a procs row that failed: one more map, untimed, with every item's
 * status (the library isolates each item there already). */
static int count_in_pool(const bench_run_opts *o, run_case *rc, const char *backend,
                         unsigned workers) {
  bg_pool_t *pool;
  bg_map_desc_t d;
  int e = open_row(o, rc, backend, workers, &pool, &d);
  if (e != 0)
    return e;
  bench_foreign_reset(rc->foreign);
  d.status = bench_foreign_status(rc->foreign);
  bg_map_report_t rep;
  e = bg_map(pool, &d, &rep);
  bg_pool_destroy(pool);
  return e == BG_ECANCELED ? e : 0;
}

/* The row's counts, and its FAILED note: what each kind of failure did to how many items. */
static void foreign_verdict(const bench_run_opts *o, run_case *rc, const char *backend,
                            const bench_sup_outcome *oc, size_t children, bench_row *row,
                            bench_result *res) {
  bench_foreign_counts c;
  bench_foreign_count(rc->foreign, &c);
  row->n_failed = rc->c.n - c.ok;
  row->n_crashed = c.crashed, row->n_exited = c.exited, row->n_timeout = c.timeout;
  row->n_overflow = c.overflow;
  row->n_not_run = c.not_run + c.pending;
  size_t firsts[] = {c.first_failed, c.first_crashed, c.first_exited, c.first_timeout,
                     c.first_overflow};
  row->first_failed = -1;
  for (size_t k = 0; k < sizeof firsts / sizeof firsts[0]; k++)
    if (firsts[k] != SIZE_MAX &&
        (row->first_failed < 0 || (long long)firsts[k] < row->first_failed))
      row->first_failed = (long long)firsts[k];
  char what[BENCH_NOTE_LEN], died[160] = "", how[64];
  bench_foreign_describe(rc->foreign, &c, o->timeout, what, sizeof what);
  if (!oc->done) {
    death_text(oc, how, sizeof how);
    snprintf(died, sizeof died,
             "its process %s, so it has no timing; counted one item at a time "
             "(%zu processes): ",
             how, children);
  } else if (children) {
    snprintf(died, sizeof died, "counted again one item at a time (%zu processes): ", children);
  }
  /* A failure in the timed runs that the count did not see again (a task that fails at
   * random) still fails the row. */
  row->failed = 1;
  row->wall = (bench_summary){0};
  row->cpu_s = 0;
  bench_note_add(res, rc->section, "%s: %s%s", backend, died, what);
}

/* A row of a foreign task: its timed runs supervised in a child unless the backend isolates
 * items itself; a row whose runs failed or died is run once more, untimed, to count what
 * became of every item, and shown as FAILED with the counts, never with a timing. */
static int foreign_row(const bench_run_opts *o, run_case *rc, const char *backend, unsigned workers,
                       bench_row *row, bench_result *res) {
  bench_sup_outcome oc = {.done = 1, .died_exit = -1};
  size_t children = 0;
  int e;
  if (!in_process(backend) || !strcmp(backend, "mpi")) {
    if ((e = time_row(o, rc, backend, workers, row, res)) != 0)
      return e;
    /* mpi keeps its report's note: a count would need every rank. */
    if (!row->failed || !strcmp(backend, "mpi"))
      return 0;
    if ((e = count_in_pool(o, rc, backend, workers)) != 0)
      return e;
    foreign_verdict(o, rc, backend, &oc, 0, row, res);
    return 0;
  }
  row_job j = {o, rc, backend, workers, row, res};
  if ((e = bench_supervise_row(rc->foreign, o->timeout, row_in_child, &j, rc->share, &oc)) != 0)
    return e;
  if (o->trace)
    trace_row(o, rc, backend, workers, 0, 0, NULL);
  rc->fork_s = oc.fork_s > rc->fork_s ? oc.fork_s : rc->fork_s;
  if (oc.done && rc->share->rcode != 0)
    return rc->share->rcode;
  if (oc.done) {
    *row = rc->share->row;
    for (unsigned k = 0; k < rc->share->nnotes; k++)
      bench_note_add(res, rc->section, "%s", rc->share->notes[k]);
    if (!row->failed) {
      rc->children += oc.children;
      return 0;
    }
  }
  row->workers = workers;
  e = bench_supervise_count(rc->foreign, o->timeout, &children);
  rc->children += oc.children + children;
  if (e != 0)
    return e;
  foreign_verdict(o, rc, backend, &oc, children, row, res);
  return 0;
}

/* A row of the case and backend with nothing measured yet. */
static void init_row(bench_row *row, const run_case *rc, const char *backend) {
  memset(row, 0, sizeof *row);
  snprintf(row->section, sizeof row->section, "%s", rc->section);
  row->workload = rc->w->name;
  row->backend = backend;
  row->schedule = "auto";
  row->n = rc->c.n;
  row->first_failed = -1;
}

static int run_once(const bench_run_opts *o, run_case *rc, const char *backend, unsigned workers,
                    bench_row *row, bench_result *res) {
  return rc->foreign ? foreign_row(o, rc, backend, workers, row, res)
                     : time_row(o, rc, backend, workers, row, res);
}

/* Keeps the notes of one of two runs of a row: the first run's are [from, mid), the second's
 * [mid, nnotes). */
static void keep_notes(bench_result *res, size_t from, size_t mid, int second) {
  if (!second) {
    res->nnotes = mid;
    return;
  }
  memmove(&res->notes[from], &res->notes[mid], (res->nnotes - mid) * sizeof res->notes[0]);
  res->nnotes = from + (res->nnotes - mid);
}

/* --quiet-wait: a contended row run again once the machine is quiet, the less contended run
 * kept. An mpi row is not: every rank would have to run it again with rank 0. */
static int run_row(const bench_run_opts *o, run_case *rc, const char *backend, unsigned workers,
                   bench_row *row, bench_result *res) {
  size_t notes0 = res->nnotes;
  int e = run_once(o, rc, backend, workers, row, res);
  if (e != 0 || o->quiet_wait <= 0 || o->rank != 0 || !strcmp(backend, "mpi") || row->failed ||
      !row->others_measured || row->others_cpu < BENCH_OTHERS_NOTICEABLE)
    return e;
  /* A Ctrl-C during the wait or the second run leaves the first run as the row: it finished,
   * and the rows that finished are printed. The next row sees the interrupt. */
  double busy = row->others_cpu, waited = bench_wait_quiet(o->quiet_wait);
  if (waited < 0 && bench_interrupted)
    return 0;
  if (waited < 0) {
    bench_note_add(res, rc->section,
                   "%s: other processes used %.0f%% of the CPU during its run and kept using "
                   "more than %.0f%% for --quiet-wait's %g s, so it was not run again",
                   backend, 100 * busy, 100 * BENCH_OTHERS_NOTICEABLE, o->quiet_wait);
    return 0;
  }
  bench_row first = *row;
  init_row(row, rc, backend);
  bench_run_opts again = *o;
  again.trace = NULL;
  size_t mid = res->nnotes;
  if ((e = run_once(&again, rc, backend, workers, row, res)) != 0) {
    *row = first;
    keep_notes(res, notes0, mid, 0);
    return e == BG_ECANCELED ? 0 : e;
  }
  /* A failure in the second run is kept: a wrong answer outweighs any timing. */
  int second = row->failed || !row->others_measured || row->others_cpu < busy;
  keep_notes(res, notes0, mid, second);
  if (!second) {
    double busy2 = row->others_cpu;
    *row = first;
    bench_note_add(res, rc->section,
                   "%s: other processes used %.0f%% of the CPU during its run; run again after "
                   "%.1f s of quiet wait, they used %.0f%%, so the first run is shown",
                   backend, 100 * busy, waited, 100 * busy2);
  } else {
    bench_note_add(res, rc->section,
                   "%s: run again after waiting %.1f s for a quiet machine (other processes had "
                   "used %.0f%% of the CPU during its first run; %.0f%% during this one)",
                   backend, waited, 100 * busy, 100 * row->others_cpu);
  }
  return 0;
}

static bench_row *new_row(bench_result *res, const run_case *rc, const char *backend) {
  if (res->nrows == BENCH_MAX_ROWS)
    return NULL;
  bench_row *row = &res->rows[res->nrows];
  init_row(row, rc, backend);
  return row;
}

static void finish_row(bench_result *res, bench_row *row, const run_case *rc) {
  res->nrows++;
  /* A failed row has no timing, and nothing has a speedup over a failed sequential row. */
  if (row->failed || row->wall.median <= 0 || rc->seq_failed)
    return;
  row->ns_per_item = row->wall.median * 1e9 / (double)(rc->c.n ? rc->c.n : 1);
  double seq = rc->seq_s > 0 ? rc->seq_s : row->wall.median;
  row->speedup = seq / row->wall.median;
  row->efficiency = row->speedup / row->workers;
  row->suspect = row->efficiency > BENCH_SUPERLINEAR;
  row->noisy = (row->wall.max - row->wall.min) > BENCH_NOISY * row->wall.median;
  /* CPU time of a run shorter than the clock's grain, or more than its workers could burn
   * (another row's OpenMP threads still spinning, say), is not this row's. */
  row->cpu_unknown = row->wall.median < BENCH_CPU_MIN_WALL ||
                     row->cpu_s > BENCH_SUPERLINEAR * row->workers * row->wall.median;
  row->overhead_ns =
      ((double)row->workers * row->wall.median - seq) * 1e9 / (double)(rc->c.n ? rc->c.n : 1);
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
    if ((e = run_row(o, rc, "seq", 1, row, res)) != 0)
      return e;
    rc->seq_failed = row->failed;
    rc->seq_s = row->failed ? 0 : row->wall.median;
    /* CPU time is read in microseconds and charged by the kernel in coarser steps: below
     * BENCH_CPU_MIN_WALL the ratio says nothing, and a 46 ns task must not look blocked. */
    rc->seq_util =
        !row->failed && row->wall.median >= BENCH_CPU_MIN_WALL ? row->cpu_s / row->wall.median : 1;
    /* A loop that had a core only part of the time because other processes held the cores
     * waited for the CPU, not on its items: its share is taken of what was left to it, or auto
     * would take contention for blocking and start more workers than cores. */
    if (row->others_measured && row->others_cpu >= BENCH_OTHERS_NOTICEABLE) {
      double left = (double)o->cores * (1 - row->others_cpu);
      if (left > 0 && left < 1)
        rc->seq_util /= left;
    }
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
      e = run_row(o, rc, o->backends[b], workers, row, res);
      if (e == BG_ECANCELED)
        return e;
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

/* A foreign task's shared record and supervision page, sized for the most threads any row
 * may run. */
static int foreign_open(const bench_run_opts *o, run_case *rc, char *err, size_t cap) {
  unsigned threads = BENCH_BLOCKING_MAX_WORKERS > o->cores ? BENCH_BLOCKING_MAX_WORKERS : o->cores;
  for (size_t i = 0; i < o->nworkers; i++)
    threads = o->workers[i] > threads ? o->workers[i] : threads;
  int e = bench_foreign_create(rc->w->fn, rc->c.n, rc->w->out_size, threads, &rc->foreign);
  if (e == 0 && !(rc->share = bench_sup_share_create()))
    e = BG_ENOMEM;
  if (e != 0)
    snprintf(err, cap, "%s: cannot map the shared record of %zu items: %s", rc->section, rc->c.n,
             bg_strerror(e));
  return e;
}

static void foreign_close(const bench_run_opts *o, run_case *rc, bench_result *res) {
  if (rc->children && o->rank == 0)
    bench_note_add(res, rc->section,
                   "Supervised: the in-process rows (seq, threads, openmp) each ran in a child "
                   "process of their own (start-up up to %.2f ms, outside the timings; %zu "
                   "processes in all), so a crash, exit() or hang in the task ends only its row.",
                   rc->fork_s * 1e3, rc->children);
  bench_sup_share_destroy(rc->share);
  bench_foreign_destroy(rc->foreign);
}

static int run_case_once(const bench_run_opts *o, const bench_workload *w, bench_case c,
                         bench_result *res, char *err, size_t cap) {
  run_case rc = {.w = w, .c = c};
  label(&rc);
  uint64_t avail = 0;
  bg_mem_available(&avail);
  uint64_t need = (w->setup_bytes ? w->setup_bytes(&c) : 0) + c.n * w->out_size;
  if (w->foreign)
    need += c.n * (sizeof(bg_item_status_t) + 1);
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
  int e = w->foreign ? foreign_open(o, &rc, err, cap) : 0;
  if (e == 0)
    e = run_rows(o, &rc, avail - (avail > need ? need : avail), res, err, cap);
  if (w->foreign)
    foreign_close(o, &rc, res);
  if (w->teardown)
    w->teardown(rc.state);
  free(rc.out);
  if (e == 0 && res->nrows > first_row)
    bench_explain(res, w, &c, rc.section, o->cores, o->limits);
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
