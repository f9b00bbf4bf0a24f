/* SPDX-License-Identifier: MIT */
/* Child processes of the bench: each in a process group of its own (so one kill ends whatever
 * it started too) and dying with the bench (a parent-death signal), and rows of a foreign task
 * run in such a child under a watchdog, so that a crash, exit() or hang ends only that row. */
#ifndef BRIGADE_BENCH_SUPERVISE_H
#define BRIGADE_BENCH_SUPERVISE_H

#include <sys/types.h>

#include "foreign.h"
#include "result.h"

/* Forks after flushing stdio. In the child (0 returned): its own process group, SIGKILL when
 * the bench dies, SIGINT and SIGTERM back to their default (the bench stops it). In the
 * parent: the child's pid, or -1 with errno. */
pid_t bench_child_fork(void);

/* Kills the child's process group, then reaps the child; *status gets its wait status. */
void bench_child_kill(pid_t pid, int *status);

/* Waits for the child for at most `seconds` (< 0: no limit). Returns 1 and reaps it (killing
 * what it left in its group) when it ended, 0 when it still runs. */
int bench_child_wait(pid_t pid, double seconds, int *status);

/* The counting pass stops starting children after this many in a row died in their first item
 * the same way (BG_MAP_BREAKER_DEFAULT, the procs backend's default, so rows agree). */
#define BENCH_SUP_BREAKER 16

/* What a supervised row's child sends back, in a MAP_SHARED page. */
#define BENCH_SUP_NOTES 6
typedef struct bench_sup_share {
  int done;       /* the child ran the row to its end (the task did not end the process) */
  double started; /* the child's first moment, on the monotonic clock */
  int rcode;      /* what the row's runs returned */
  bench_row row;
  unsigned nnotes;
  char notes[BENCH_SUP_NOTES][BENCH_NOTE_LEN];
} bench_sup_share;

/* Maps and unmaps the share. */
bench_sup_share *bench_sup_share_create(void);
void bench_sup_share_destroy(bench_sup_share *s);

typedef struct bench_sup_outcome {
  int done;        /* the timed runs finished: sh->row holds them */
  double fork_s;   /* from the fork to the child's first moment */
  int died_signal; /* the timed child's death: its signal, or 0 */
  int died_exit;   /* or its exit status when a task called exit(); -1 if it did not */
  int timed_out;   /* the watchdog killed it: an item outlived --timeout */
  size_t children; /* processes started for the row, the timed one included */
} bench_sup_outcome;

/* Runs run(arg, sh) (a row's warm-up and timed runs over f's task) in a supervised child. An
 * item running longer than timeout seconds (0: no limit) has that child killed. Returns 0 (out
 * says whether the runs finished or how the child died), BG_ECANCELED after SIGINT/SIGTERM
 * (the child killed and reaped), or BG_ESYS when no process could be started. */
int bench_supervise_row(bench_foreign *f, double timeout, void (*run)(void *, bench_sup_share *),
                        void *arg, bench_sup_share *sh, bench_sup_outcome *out);

/* The counting pass of a row that failed: every item run again, one at a time, in a
 * supervised child; when a child dies in an item (or the watchdog kills it there) that item is
 * marked with how, and a new child goes on from the next. One item in flight at a time is what
 * makes the blame exact. After BENCH_SUP_BREAKER children in a row die the same way in their
 * first item, the rest fail unrun (bench_foreign_trip). Adds the children it started to
 * *children. Returns 0, BG_ECANCELED or BG_ESYS, as above. */
int bench_supervise_count(bench_foreign *f, double timeout, size_t *children);

#endif
