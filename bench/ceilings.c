/* SPDX-License-Identifier: MIT */
/* Rows against ceilings. Each sentence is computed from the case's rows and the figures of
 * brigade info --limits, never written in advance: the same workload is bandwidth-bound on one
 * machine and fault-bound on another. */
#include "ceilings.h"

#include <string.h>

/* The ceiling is considered reached above this share of it. */
#define NEAR_CEILING 0.8

static double per_item(const bench_row *r, const bench_case *c) {
  return r->wall.median / (double)(c->n ? c->n : 1);
}

static void memory(bench_result *res, const bench_workload *w, const bench_case *c,
                   const char *section, const bench_row *seq, const bench_row *best,
                   const bench_limits *lim) {
  if (!w->bytes_read || lim->read_gbs_all <= 0 || lim->read_gbs_1 <= 0)
    return;
  double bytes = w->bytes_read(c), gbs = bytes / best->wall.median / 1e9;
  double gbs1 = bytes / seq->wall.median / 1e9, share = gbs / lim->read_gbs_all;
  bench_note_add(res, section,
                 "Against this machine's limits: %s read %.1f GB/s with %u workers, %.0f%% of the "
                 "%.1f GB/s that all its cores read here, and the sequential loop %.1f GB/s, "
                 "%.0f%% of one thread's %.1f GB/s. %s",
                 best->backend, gbs, best->workers, 100 * share, lim->read_gbs_all, gbs1,
                 100 * gbs1 / lim->read_gbs_1, lim->read_gbs_1,
                 share >= NEAR_CEILING
                     ? "The memory bandwidth is the limit: more workers would not read faster."
                     : "Not the bandwidth: the time per hand-out or the loop's own speed limits "
                       "it; bigger items (fewer hand-outs) or a vectorised loop would lift it.");
}

static void files(bench_result *res, const bench_case *c, const char *section, const bench_row *seq,
                  const bench_row *best, const bench_limits *lim) {
  if (lim->file_us_1 <= 0 || lim->file_us_shared <= 0 || lim->file_us_private <= 0)
    return;
  double us1 = per_item(seq, c) * 1e6, usw = per_item(best, c) * best->workers * 1e6;
  int lock = lim->file_us_shared > 1.3 * lim->file_us_private;
  bench_note_add(res, section,
                 "Against this machine's limits: the sequential loop spent %.1f us per file, "
                 "where the kernel's create+write+unlink of a 200 B file alone takes %.1f us "
                 "here; with %u workers each file took %.1f us of a worker's time, against the "
                 "kernel's %.1f us per worker when %u workers create in one folder and %.1f us "
                 "in one folder each. %s",
                 us1, lim->file_us_1, best->workers, usw, lim->file_us_shared, lim->workers,
                 lim->file_us_private,
                 lock ? "The shared folder is the limit: its lock serialises creation and "
                        "removal; one folder per worker would lift it."
                      : "The folder is not contended here: the kernel's own file work is the "
                        "limit, and it scales with the cores.");
}

static void faults(bench_result *res, const bench_case *c, const char *section,
                   const bench_row *seq, const bench_limits *lim) {
  if (lim->fault_us_4k <= 0 || c->param <= 0)
    return;
  double pages = c->param * 256, ms = pages * lim->fault_us_4k / 1e3;
  double item_ms = per_item(seq, c) * 1e3;
  char huge[160] = "";
  if (lim->fault_us_4k_thp > 0)
    snprintf(huge, sizeof huge,
             " With huge pages (MADV_HUGEPAGE) first touch costs %.2f us per 4 KiB here: %.1f ms "
             "per item.",
             lim->fault_us_4k_thp, pages * lim->fault_us_4k_thp / 1e3);
  bench_note_add(res, section,
                 "Against this machine's limits: first touch of fresh memory costs %.2f us per "
                 "4 KiB page here, so each item's %g MiB costs %.1f ms in page faults alone, "
                 "%.0f%% of the sequential loop's %.1f ms per item.%s",
                 lim->fault_us_4k, c->param, ms, item_ms > 0 ? 100 * ms / item_ms : 0, item_ms,
                 huge);
}

/* What a procs map pays before its first item: a fork per worker. */
static void forks(bench_result *res, const char *section, const bench_limits *lim) {
  if (lim->fork_us <= 0)
    return;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    if (strcmp(r->section, section) || strncmp(r->backend, "procs", 5) || r->failed)
      continue;
    bench_note_add(res, section,
                   "Each procs map forks its %u workers; fork + wait costs %.0f us per process "
                   "here, %.1f%% of the procs row's %.3g s.",
                   r->workers, lim->fork_us, 100 * r->workers * lim->fork_us / 1e6 / r->wall.median,
                   r->wall.median);
    return;
  }
}

/* The time the measured limit allows a row of @workers: the bytes at the read bandwidth, the
 * files at the kernel's cost per file (the faster of one folder and a folder each), the pages
 * at their first-touch cost, shared among as many workers as the limits were measured with.
 * 0 where the workload's bound has no measured ceiling. */
static double floor_time(const bench_workload *w, const bench_case *c, const bench_limits *lim,
                         unsigned workers) {
  unsigned k = workers < lim->workers ? workers : lim->workers;
  k = k ? k : 1;
  switch (w->bound) {
  case BENCH_BOUND_MEMORY: {
    double gbs = workers > 1 ? lim->read_gbs_all : lim->read_gbs_1;
    return w->bytes_read && gbs > 0 ? w->bytes_read(c) / (gbs * 1e9) : 0;
  }
  case BENCH_BOUND_FILES: {
    double us = workers > 1 ? (lim->file_us_private < lim->file_us_shared ? lim->file_us_private
                                                                          : lim->file_us_shared)
                            : lim->file_us_1;
    return us > 0 ? (double)c->n * us * 1e-6 / k : 0;
  }
  case BENCH_BOUND_FAULTS: {
    double us = w->huge_pages ? lim->fault_us_4k_thp : lim->fault_us_4k;
    return us > 0 && c->param > 0 ? (double)c->n * c->param * 256 * us * 1e-6 / k : 0;
  }
  default:
    return 0;
  }
}

void bench_explain_ceilings(bench_result *res, const bench_workload *w, const bench_case *c,
                            const char *section, const bench_row *seq, const bench_row *best,
                            const bench_limits *lim) {
  if (!lim || seq->wall.median <= 0 || best->wall.median <= 0)
    return;
  for (size_t i = 0; i < res->nrows; i++)
    if (!strcmp(res->rows[i].section, section) && !res->rows[i].external)
      res->rows[i].floor_s = floor_time(w, c, lim, res->rows[i].workers);
  switch (w->bound) {
  case BENCH_BOUND_MEMORY:
    memory(res, w, c, section, seq, best, lim);
    break;
  case BENCH_BOUND_FILES:
    files(res, c, section, seq, best, lim);
    break;
  case BENCH_BOUND_FAULTS:
    faults(res, c, section, seq, lim);
    break;
  default:
    break;
  }
  forks(res, section, lim);
}
