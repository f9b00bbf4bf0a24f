/* SPDX-License-Identifier: MIT */
/* A foreign task (a --task plug-in) as the bench runs it: every call goes through a wrapper that
 * gives the function a guarded result buffer (a write past --out-size is caught, never lands in
 * the heap), says which item each thread is running (so a supervisor can name a hung or
 * crashing item), and records what became of every item in memory shared with any process the
 * row forks. */
#ifndef BRIGADE_BENCH_FOREIGN_H
#define BRIGADE_BENCH_FOREIGN_H

#include <stddef.h>
#include <stdint.h>

#include "brigade.h"

typedef struct bench_foreign bench_foreign;

/* The code an item's wrapper returns when the function wrote past its result. */
#define BENCH_EOVERFLOW (-0x0BE0F)

/* Maps the shared record for n items of out_size bytes, run by at most `threads` threads at
 * once (more are run but not watched). Returns 0, BG_ENOMEM or BG_ESYS. */
int bench_foreign_create(bg_task_fn fn, size_t n, size_t out_size, unsigned threads,
                         bench_foreign **out);
void bench_foreign_destroy(bench_foreign *f);

/* Forgets every item's status (before each run of a row). */
void bench_foreign_reset(bench_foreign *f);

/* Forgets the slots only: before a new process takes over from a dead one, whose threads'
 * slots would otherwise still read as running. */
void bench_foreign_idle(bench_foreign *f);

/* The per-item statuses, in shared memory: a map's desc.status. */
bg_item_status_t *bench_foreign_status(bench_foreign *f);

/* The task to map, with the bench_foreign as its ctx: calls the plug-in with ctx NULL. The
 * first call on a thread also installs, for its process, the SIGSEGV/SIGBUS handler that tells
 * a write into a result's guard page from any other crash (and then dies of it all the same). */
int bench_foreign_task(void *out, const void *in, size_t i, void *ctx);

/* Runs every item still pending from index `from` on, in order, on this thread, recording each
 * status: a supervised child's way of counting a row one item at a time. */
void bench_foreign_run_pending(bench_foreign *f, size_t from);

/* The number of items. */
size_t bench_foreign_items(const bench_foreign *f);

/* The first pending item at or after `from`, or the item count when none is left. */
size_t bench_foreign_next_pending(const bench_foreign *f, size_t from);

/* The circuit breaker's verdict: every item still pending from `from` on fails unrun (attempts
 * 0) with the state and code of the death that kept repeating, as the procs backend marks the
 * items its own breaker leaves. */
void bench_foreign_trip(bench_foreign *f, size_t from, int state, int code);

/* The watchdog's view. Each call compares what every watched thread runs now with what it ran
 * at the previous call, `now` seconds on a monotonic clock; returns 1 and the item when one
 * thread has been in the same item for over `timeout` seconds, else 0. */
int bench_foreign_stuck(bench_foreign *f, double now, double timeout, size_t *item);

/* An item some thread is in now (the one a dead process was running), or 0 when none. */
int bench_foreign_in_flight(const bench_foreign *f, size_t *item);

/* Marks an item's fate when its process died in it. */
void bench_foreign_mark(bench_foreign *f, size_t i, int state, int code);

typedef struct bench_foreign_counts {
  size_t ok, failed, crashed, exited, timeout, overflow, pending;
  size_t not_run; /* failed unrun by a circuit breaker (attempts 0) */
  size_t first_failed, first_crashed, first_exited, first_timeout, first_overflow;
  int first_code, crash_signal, exit_status;
} bench_foreign_counts;

/* Counts the statuses of the last run (SIZE_MAX for a class with no item). */
void bench_foreign_count(const bench_foreign *f, bench_foreign_counts *c);

/* "10 of 100 items failed: 10 returned non-zero (the first, item 7, returned 7); ..." into buf
 * (with the --timeout in seconds, 0 if none). */
void bench_foreign_describe(const bench_foreign *f, const bench_foreign_counts *c, double timeout,
                            char *buf, size_t cap);

/* "SEGV" for SIGSEGV: a signal's name without its prefix, or "?". */
const char *bench_sigabbrev(int sig);

#endif
