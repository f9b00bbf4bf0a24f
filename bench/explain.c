/* SPDX-License-Identifier: MIT */
/* The sentences under each table. Every one is computed from the case's rows: where the time
 * went (CPU or waiting, user or kernel), whether the map was too short for parallelism to pay,
 * what limited the speedup (cores, memory bandwidth, the kernel), and what auto did. */
#include "runner.h"
#include "ceilings.h"
#include "contention.h"

#include <stdio.h>
#include <string.h>

/* "850 ns", "12.3 us", "4.1 ms", "2.50 s". */
static const char *human(double seconds, char *buf, size_t cap) {
  if (seconds < 1e-6)
    snprintf(buf, cap, "%.0f ns", seconds * 1e9);
  else if (seconds < 1e-3)
    snprintf(buf, cap, "%.1f us", seconds * 1e6);
  else if (seconds < 1)
    snprintf(buf, cap, "%.1f ms", seconds * 1e3);
  else
    snprintf(buf, cap, "%.2f s", seconds);
  return buf;
}

static const bench_row *seq_row(const bench_result *res, const char *section) {
  return bench_find_row(res, section, "seq", "auto");
}

static const bench_row *best_row(const bench_result *res, const char *section) {
  const bench_row *best = NULL;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    if (strcmp(r->section, section) || !strcmp(r->backend, "seq") || r->failed)
      continue;
    if (!best || r->wall.median < best->wall.median)
      best = r;
  }
  return best;
}

/* Appends ", name N%" to @buf for a row that other processes contended. */
static void list_row(char *buf, size_t cap, const bench_row *r, double pct) {
  size_t len = strlen(buf);
  if (len + 1 < cap)
    snprintf(buf + len, cap - len, "%s%s %u wk %.0f%%", len ? ", " : "", r->backend, r->workers,
             pct);
}

static int contended(const bench_row *r) {
  return r && r->others_measured && r->others_cpu >= BENCH_OTHERS_NOTICEABLE;
}

/* Why a row's efficiency exceeds 100%: the reference was slowed, the runs disagree, or no cause
 * is known and the figure is suspect. */
static void explain_superlinear(bench_result *res, const char *section, const bench_row *seq,
                                const bench_row *r) {
  char why[256];
  if (contended(seq))
    snprintf(why, sizeof why,
             "the sequential reference ran while other processes took %.0f%% of the CPU, so it "
             "is slower than it should be",
             100 * seq->others_cpu);
  else if (seq->noisy || r->noisy)
    snprintf(why, sizeof why,
             "the runs are noisy (%s spread more than %.0f%% around its median): the ratio of "
             "two medians this uncertain can exceed the workers",
             seq->noisy ? "the sequential row's" : "this row's", 100 * BENCH_NOISY);
  else if (!seq->others_measured)
    snprintf(why, sizeof why,
             "the sequential reference was too short to tell whether other processes slowed it "
             "(/proc/stat counts in 10 ms ticks); if not, a cache effect is possible, otherwise "
             "the figure is suspicious: re-run with a larger --n or --repeat");
  else
    snprintf(why, sizeof why,
             "no cause was measured (no contention, runs that agree): a cache effect is possible "
             "when %u workers' caches together hold what one core's cannot, otherwise the "
             "figure is suspicious: re-run with a larger --repeat",
             r->workers);
  bench_note_add(
      res, section,
      "%s with %u workers shows %.2fx, more than its %u workers (%.0f%% efficiency): %s.",
      r->backend, r->workers, r->speedup, r->workers, 100 * r->efficiency, why);
}

/* Whether the figures can be trusted: rows run while other processes took the CPU, rows whose
 * runs disagree, and speedups above the worker count, each said with its cause. */
static void explain_trust(bench_result *res, const char *section, const bench_row *seq) {
  char busy[256] = "", noisy[256] = "";
  double worst = 0;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    if (strcmp(r->section, section) || r->failed || r->external)
      continue;
    if (contended(r)) {
      list_row(busy, sizeof busy, r, 100 * r->others_cpu);
      worst = r->others_cpu > worst ? r->others_cpu : worst;
    }
    if (r->noisy)
      list_row(noisy, sizeof noisy, r,
               100 * (r->wall.max - r->wall.min) / (r->wall.median > 0 ? r->wall.median : 1));
    if (r->suspect && seq && r != seq)
      explain_superlinear(res, section, seq, r);
  }
  if (busy[0])
    bench_note_add(res, section,
                   "Contended: other processes used at least %.0f%% of the machine's CPU during "
                   "these rows (%s): their times and speedups are not this code's alone; re-run "
                   "on a quieter machine to compare.",
                   100 * worst, busy);
  if (noisy[0])
    bench_note_add(res, section,
                   "Noisy: these rows' runs spread by more than %.0f%% of their median (%s of "
                   "it): compare their medians with care, or raise --repeat.",
                   100 * BENCH_NOISY, noisy);
}

static void explain_limits(bench_result *res, const bench_workload *w, const bench_case *c,
                           const char *section, const bench_row *seq, const bench_row *best) {
  /* Too short a run has no meaningful CPU share: then it is not called waiting. */
  double util_seq = !seq->cpu_unknown ? seq->cpu_s / seq->wall.median : 1;
  double util_best = !best->cpu_unknown ? best->cpu_s / (best->wall.median * best->workers) : 1;
  if (util_seq < 0.5) {
    bench_note_add(res, section,
                   "Waiting, not computing: the sequential run used the CPU %.0f%% of its time. "
                   "Latency is overlapped by more workers, not by more cores.",
                   100 * util_seq);
  } else if (best->sys_share > 0.5 && best->wall.median >= BENCH_CPU_MIN_WALL) {
    bench_note_add(res, section,
                   "The kernel did most of the work: %.0f%% of the CPU time was system time "
                   "(%s), which parallelises only as far as the kernel lets it.",
                   100 * best->sys_share,
                   w->item_bytes ? "page faults handing out fresh memory" : "file-system calls");
  }
  if (w->bytes_read) {
    double bytes = w->bytes_read(c);
    bench_note_add(res, section,
                   "Memory streaming: %.1f GB/s with one worker, %.1f GB/s with %u. No copy or "
                   "serialization happens on threads and openmp: they read the array in place.",
                   bytes / seq->wall.median / 1e9, bytes / best->wall.median / 1e9, best->workers);
  }
  /* Workers that had the CPU only part of the time waited for it, not for memory or each other,
   * when other processes held it meanwhile. */
  if (util_seq >= 0.5 && util_best < 0.7 && best->speedup < 0.8 * best->workers &&
      best->wall.median >= BENCH_CPU_MIN_WALL && contended(best))
    bench_note_add(res, section,
                   "The %u workers were busy %.0f%% of the time, and other processes used %.0f%%+ "
                   "of the machine's CPU meanwhile: they waited for cores that others held "
                   "(contention), not for memory or each other.",
                   best->workers, 100 * util_best, 100 * best->others_cpu);
  else if (util_seq >= 0.5 && util_best < 0.7 && best->speedup < 0.8 * best->workers &&
           best->wall.median >= BENCH_CPU_MIN_WALL)
    bench_note_add(res, section,
                   "The %u workers were busy %.0f%% of the time: the rest went to waiting (for "
                   "memory, the kernel or each other).",
                   best->workers, 100 * util_best);
}

/* What worker processes cost beside threads: the fork and a message per chunk (procs), and
 * on top of that sending every item and result through a socket (procs-copy), which is what
 * Python's process pools do with pickles. */
static void explain_processes(bench_result *res, const bench_workload *w, const bench_case *c,
                              const char *section) {
  const bench_row *th = bench_find_row(res, section, "threads", "auto");
  const bench_row *pr = bench_find_row(res, section, "procs", "auto");
  const bench_row *cp = bench_find_row(res, section, "procs-copy", "auto");
  char a[32], b[32];
  if (th && pr && !th->failed && !pr->failed && pr->wall.median > 1.1 * th->wall.median)
    bench_note_add(res, section,
                   "Processes cost %s more than threads here: every map forks %u workers (the "
                   "fork copies the caller's page tables: more memory, slower fork) and each "
                   "chunk is a message on a socket; in exchange a crashing item takes only its "
                   "worker.",
                   human(pr->wall.median - th->wall.median, a, sizeof a), pr->workers);
  if (!pr || !cp || pr->failed || cp->failed || !w->items || !w->bytes_read)
    return;
  double extra = cp->wall.median - pr->wall.median, bytes = w->bytes_read(c);
  /* The copy is always named: whether it showed depends on this run's noise, and a reader (or
   * a test) must not find the sentence missing because the machine was busy for a moment. */
  if (extra > 0)
    bench_note_add(res, section,
                   "Serialization: procs-copy sent the %.0f MB of items through sockets, %s "
                   "more than procs, whose workers read them copy-on-write (%.1f GB/s of "
                   "copying, %s in all): the price Python's pools pay by pickling every chunk.",
                   bytes / 1e6, human(extra, a, sizeof a), bytes / extra / 1e9,
                   human(cp->wall.median, b, sizeof b));
  else
    bench_note_add(res, section,
                   "Serialization: procs-copy sent the %.0f MB of items through sockets and was "
                   "still not slower than procs in this run (%s against %s): the copy cost less "
                   "than the run-to-run noise; repeat with a larger --repeat or --n to see it.",
                   bytes / 1e6, human(cp->wall.median, a, sizeof a),
                   human(pr->wall.median, b, sizeof b));
}

/* The fastest row among those whose backend is @prefix, or NULL. */
static const bench_row *fastest_of(const bench_result *res, const char *section,
                                   const char *prefix) {
  const bench_row *best = NULL;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    if (strcmp(r->section, section) || r->failed || r->external ||
        strncmp(r->backend, prefix, strlen(prefix)))
      continue;
    if (!best || r->wall.median < best->wall.median)
      best = r;
  }
  return best;
}

/* Processes share nothing the kernel keeps per process: work that is mostly the kernel's
 * (page faults, file creation) can go faster in processes than in one process's threads. When
 * this run shows it, the recommendation names processes, in C and in Python, with the figures
 * and what the kernel time was; when threads win, the Fastest line has said so already. */
static void explain_choice(bench_result *res, const bench_workload *w, const char *section) {
  const bench_row *th = fastest_of(res, section, "threads");
  const bench_row *pr = fastest_of(res, section, "procs");
  if (!th || !pr || pr->wall.median > 0.9 * th->wall.median)
    return;
  char a[32], b[32], kernel[256] = "";
  if (pr->sys_share > 0.3 || w->bound == BENCH_BOUND_FAULTS || w->bound == BENCH_BOUND_FILES)
    snprintf(kernel, sizeof kernel,
             " %.0f%% of the CPU time was the kernel's (%s), and processes do that in address "
             "spaces and file tables of their own, where one process's threads share one.",
             100 * (th->sys_share > pr->sys_share ? th->sys_share : pr->sys_share),
             w->bound == BENCH_BOUND_FILES ? "creating and removing files"
             : w->item_bytes               ? "page faults handing out fresh memory"
                                           : "system calls");
  bench_note_add(res, section,
                 "Choose processes for this work: %s took %s against threads' %s (%.0f%% "
                 "less).%s In C, brigade's procs backend (procs-persistent for many small "
                 "maps); in Python, a process pool (multiprocessing), not threads.",
                 pr->backend, human(pr->wall.median, a, sizeof a),
                 human(th->wall.median, b, sizeof b), 100 * (1 - pr->wall.median / th->wall.median),
                 kernel);
}

/* Rows with more CPU-bound workers than cores: the extra threads only take turns. */
static void explain_oversubscription(bench_result *res, const char *section, const bench_row *best,
                                     unsigned cores) {
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *r = &res->rows[i];
    double util = r->wall.median > 0 ? r->cpu_s / r->wall.median : 0;
    if (strcmp(r->section, section) || r->workers <= cores || util < 0.8 * cores ||
        r->wall.median <= best->wall.median * 1.05)
      continue;
    bench_note_add(res, section,
                   "%s with %u workers on %u cores was %.0f%% slower than the best: CPU-bound "
                   "workers beyond the cores only take turns, and a worker descheduled while "
                   "holding a chunk delays the end.",
                   r->backend, r->workers, cores, 100 * (r->wall.median / best->wall.median - 1));
    return;
  }
}

void bench_explain(bench_result *res, const bench_workload *w, const bench_case *c,
                   const char *section, unsigned cores, const bench_limits *lim) {
  const bench_row *seq = seq_row(res, section), *best = best_row(res, section);
  if (seq && seq->failed) {
    bench_note_add(res, section,
                   "No speedups: the sequential row failed, so no row has a reference to be "
                   "compared with, and none is called fastest.");
    return;
  }
  if (!seq || !best)
    return;
  char item[32], whole[32];
  human(seq->wall.median / (double)(c->n ? c->n : 1), item, sizeof item);
  human(seq->wall.median, whole, sizeof whole);
  bench_note_add(res, section,
                 "Fastest: %s with %u workers, %.2fx the sequential loop (%.0f%% efficiency); "
                 "one item takes %s sequentially.",
                 best->backend, best->workers, best->speedup, 100 * best->efficiency, item);
  explain_trust(res, section, seq);
  if (best->ran_inline) {
    bench_note_add(res, section,
                   "Too small to parallelise: the whole map takes %s, less than waking the "
                   "workers would repay, so auto ran it inline on the calling thread.",
                   whole);
  } else if (best->chunks >= c->n && c->n > 0) {
    bench_note_add(res, section,
                   "Items are long enough that auto handed them out one at a time (%zu chunks), "
                   "so no worker sat idle while another had work.",
                   best->chunks);
  } else if (best->chunks > 0) {
    char per[32];
    human(seq->wall.median / (double)best->chunks, per, sizeof per);
    bench_note_add(res, section,
                   "auto cut the %zu items into %zu chunks (about %.0f items, %s of work each, "
                   "shrinking toward the end) so hand-outs stay cheap and no worker sits idle at "
                   "the end.",
                   c->n, best->chunks, (double)c->n / (double)best->chunks, per);
  }
  if (best->speedup < 1.0)
    bench_note_add(res, section,
                   "Parallel was slower than sequential here: the coordination cost more than "
                   "the %s of work it could share.",
                   whole);
  explain_limits(res, w, c, section, seq, best);
  explain_processes(res, w, c, section);
  explain_choice(res, w, section);
  explain_oversubscription(res, section, best, cores);
  bench_explain_ceilings(res, w, c, section, seq, best, lim);
}
