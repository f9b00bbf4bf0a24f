/* SPDX-License-Identifier: MIT */
/* bg_map: apply a function to n items in parallel and write n results in order. The items are
 * either the index range [0, n) (Python's range(n)) or an array of fixed-size records. */
#ifndef BRIGADE_MAP_H
#define BRIGADE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/pool.h"
#include "brigade/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * bg_task_fn - the user's function, called once per item.
 * @out: where to write result i (desc->out + i * out_size), or NULL when results are not kept.
 * @in: item i (desc->in + i * in_size), or NULL for an index range.
 * @i: the item's index.
 * @ctx: desc->ctx, shared by every call: the function must make its own use of it thread-safe.
 *
 * Return: 0 on success; any other value marks item i as failed and is reported as its code.
 */
typedef int (*bg_task_fn)(void *out, const void *in, size_t i, void *ctx);

enum bg_map_flags {
  BG_MAP_NOWAIT = 1u << 0, /* fail with BG_EBUSY instead of waiting for a busy pool */
  BG_MAP_HALT = 1u << 1,   /* stop handing out work after the first failure (or after
                            * desc->halt_after failures) */
  /* The mpi backend: results on every rank, not only on rank 0. Every rank passes out; one
   * that does not fails the map on every rank (first_code BG_EINVAL). */
  BG_MAP_ALL_RANKS = 1u << 2,
  /* With BG_MAP_HALT, on the procs backends: when the map halts, the items still running stop
   * too (their workers are killed) and stay pending, as GNU parallel's --halt now. Backends
   * that run tasks in-process cannot stop one: they refuse it (BG_EBACKEND). */
  BG_MAP_HALT_NOW = 1u << 3,
  /* The auto schedule without its memory: every item goes to the workers from the start, and
   * the time this map's items take is not kept for the next map of the same function. For a
   * function whose items cost very different times from one map to the next (bg_knn's tiles,
   * whose size follows the search's shape), where a cheap earlier map would make the next one
   * run its first item on the caller, alone (a big search then took twice as long). */
  BG_MAP_NO_HISTORY = 1u << 4,
};

/* Which failures desc->retries applies to (desc->retry_on); 0 means all of them. */
enum bg_retry_on {
  BG_RETRY_FAILED = 1u << 0,  /* the function returned non-zero */
  BG_RETRY_CRASHED = 1u << 1, /* its worker process died of a signal or called exit() (procs) */
  BG_RETRY_TIMEOUT = 1u << 2, /* it ran past desc->timeout_ms (procs) */
};

/* What became of one item. A map fills an array of these when the description asks for it.
 *
 * A CRASHED or EXITED item with attempts 0 never ran: the procs backend failed it with the cause
 * that stopped the map from starting workers. Either no worker process could be started or made
 * ready (a fork that fails: EXITED, code -1; an init callback that fails: EXITED, code 125), or
 * the circuit breaker tripped (desc->breaker: the signal or exit status that kept killing the
 * workers, such as CRASHED with SIGSEGV, or SIGBUS when the file behind a shared array shrank).
 * An item that had already run and was waiting for a retry keeps its count of attempts. */
typedef enum bg_item_state {
  BG_ITEM_PENDING = 0, /* not run: BG_MAP_HALT, Ctrl-C, or the map stopped before it */
  BG_ITEM_OK,          /* the function returned 0 */
  BG_ITEM_FAILED,      /* the function returned a non-zero code (code: that value) */
  BG_ITEM_CRASHED,     /* its worker process died of a signal (code: the signal number) */
  BG_ITEM_EXITED,      /* its worker process called exit() (code: the exit status) */
  BG_ITEM_TIMEOUT,     /* it ran past desc->timeout_ms and its worker was killed (code: the
                        * timeout in milliseconds) */
} bg_item_state_t;

typedef struct bg_item_status {
  int32_t state;     /* bg_item_state_t */
  int32_t code;      /* see the states above; 0 for BG_ITEM_OK and BG_ITEM_PENDING */
  uint32_t attempts; /* how many times the item ran (1 + retries used); 0: never (see above) */
} bg_item_status_t;

/** bg_item_state_name - "ok", "failed", "crashed", ...; "?" for a value outside the enum. */
const char *bg_item_state_name(int state);

/**
 * bg_progress_fn - called while a map runs, at most every desc->progress_ms.
 * @done: items finished so far (succeeded or failed).
 * @total: desc->n.
 *
 * Called once with done == 0 when the map's work starts (after any wait for a busy pool), then
 * from one worker or the supervising parent at a time, never concurrently, and once more with
 * done == total (or the final count) when the map ends. Must be quick: it runs between chunks.
 */
typedef void (*bg_progress_fn)(size_t done, size_t total, void *ud);

/* A journal (brigade/journal.h): declared here so that map.h needs not include it. */
typedef struct bg_journal bg_journal_t;

/* Version 4 adds no field: it says the caller's report (bg_map_report_t) is of version 4.
 * Version 5 adds ctx_size, version 6 trace (their report is still of version 4); version 7
 * adds journal, and its report is of version 5. */
#define BG_MAP_DESC_VERSION 7u

/* The circuit breaker's threshold that bg_map_desc_init() sets: high enough that a few bad
 * items in a row do not stop a map, low enough that a map whose every item crashes costs a few
 * dozen forks instead of one per item. */
#define BG_MAP_BREAKER_DEFAULT 16u

typedef struct bg_map_desc {
  uint32_t version; /* BG_MAP_DESC_VERSION, set by bg_map_desc_init() */
  bg_task_fn fn;
  void *ctx;
  size_t n;        /* number of items */
  const void *in;  /* NULL: the items are the indices 0..n-1 */
  size_t in_size;  /* bytes per item when @in is set */
  void *out;       /* NULL: results are not kept (mpi: a result that a failed item left
                     unwritten on another rank arrives as zeros) */
  size_t out_size; /* bytes per result when @out is set */
  unsigned flags;  /* enum bg_map_flags */
  /* Version 2. */
  bg_item_status_t *status; /* optional: n entries, what became of each item (mpi: filled
                               on rank 0, whichever rank ran the item) */
  uint32_t timeout_ms;      /* per item; 0: none. Only backends that isolate tasks (procs) */
  uint32_t retries;         /* run a failed item again, up to this many times */
  bg_progress_fn progress;  /* optional */
  void *progress_ud;
  uint32_t progress_ms; /* 0: 100 ms */
  /* Version 3. The circuit breaker (procs): after this many worker deaths in a row with the
   * same cause, the map stops starting workers and fails the items left (see bg_map). 0: never,
   * which is also what a description of version 1 or 2 gets; bg_map_desc_init() sets
   * BG_MAP_BREAKER_DEFAULT. Backends that run tasks in-process ignore it. */
  uint32_t breaker;
  /* Version 5. The context as bytes: ctx points to ctx_size bytes that are copied to the
   * workers at each map, and each task gets a pointer to its worker's copy. The procs-persistent
   * backend needs it: its workers were forked before this map and cannot read the caller's
   * memory as it is now, so there a non-NULL ctx without ctx_size is refused (BG_EINVAL)
   * rather than read stale. Other backends pass ctx as it is and ignore ctx_size. */
  size_t ctx_size;
  /* Version 6. Optional: a trace (brigade/trace.h) to which the map appends each worker's
   * start-up, its chunks and, on procs, the deaths of its processes. */
  bg_trace_t *trace;
  /* Version 7. Optional: a journal (brigade/journal.h) opened for this map's n, in_size and
   * out_size. The map first takes from it what earlier runs finished: their results go into
   * out and their outcomes into status, and those items are not run again (failed ones are,
   * under BG_JOURNAL_RERUN_FAILED). Every item that settles during the map is then appended to
   * it, with its outcome and result, in group commits under the journal's sync policy. The
   * report counts the whole job, replayed items included (n_replayed says how many). On the
   * mpi backend only rank 0 passes a journal, which then records every rank's items (a journal
   * on another rank fails the map on every rank, BG_EINVAL there): see docs/JOURNAL.md. */
  bg_journal_t *journal;
  /* Version 7. Under BG_MAP_HALT: the number of failed items after which the map hands out
   * no more work (GNU parallel's --halt soon,fail=N). 0 and 1 mean the first failure. */
  uint32_t halt_after;
  /* Version 7. The causes of failure that retries applies to: BG_RETRY_* bits; 0: all. */
  uint32_t retry_on;
  /* Version 7. Procs backends, when timeout_ms is 0: an item running longer than this
   * percentage of the median time per item of the chunks finished so far is killed as timed
   * out (GNU parallel's --timeout P%); no limit until BG_MAP_TIMEOUT_PCT_MIN items have
   * finished. The item's code is the limit in force, in milliseconds. 0: none. */
  uint32_t timeout_pct;
} bg_map_desc_t;

/* Items that must finish before desc->timeout_pct sets a limit. */
#define BG_MAP_TIMEOUT_PCT_MIN 3u

/** bg_map_desc_init - zero @d, set its version and the default breaker. */
void bg_map_desc_init(bg_map_desc_t *d);

#define BG_MAP_REPORT_VERSION 5u

/* What happened during one map. Written by bg_map() whenever the map ran (see its @report), up
 * to the fields of the report version that goes with the description's version, so a program
 * built against an older header gets the shorter struct it allocated.
 *
 * first_code by the state of the first failed item (first_state):
 *   BG_ITEM_FAILED   what the function returned (any non-zero int, -11 and -12 included)
 *   BG_ITEM_CRASHED  BG_ECRASH; status[first_failed].code has the signal number
 *   BG_ITEM_EXITED   BG_ECRASH; status[first_failed].code has the exit status (125: its
 *                    worker's init callback failed; -1: no worker could be forked)
 *   BG_ITEM_TIMEOUT  BG_ETIMEDOUT; status[first_failed].code has the limit in milliseconds
 * Read first_state before first_code: a function may itself return -11. The mpi backend's own
 * failures (a rank without out under BG_MAP_ALL_RANKS, no memory to gather) fail every item as
 * BG_ITEM_FAILED with BG_EINVAL or BG_ENOMEM. */
typedef struct bg_map_report {
  uint32_t version;       /* BG_MAP_REPORT_VERSION */
  size_t n_ok;            /* items whose function returned 0 */
  size_t n_failed;        /* items that failed, however (crashes and timeouts included) */
  size_t n_skipped;       /* items not run because BG_MAP_HALT stopped the map */
  size_t first_failed;    /* lowest failed index, SIZE_MAX when none failed */
  int first_code;         /* see above: depends on first_state */
  uint64_t wall_ns;       /* time spent inside bg_map */
  unsigned workers;       /* workers that ran at least one item */
  int ran_inline;         /* 1 if the whole map ran on the calling thread */
  bg_schedule_t schedule; /* the schedule used */
  size_t chunks;          /* chunks handed out */
  size_t chunk_last;      /* the last chunk size auto, steal or guided chose */
  /* Version 2. */
  size_t n_crashed;       /* failed items whose worker process died (signal or exit: n_exited
                           * says how many exited), and items failed because no worker could
                           * start; not n_tripped */
  size_t n_timeout;       /* failed items that ran past the timeout */
  size_t n_retries;       /* extra attempts made under desc->retries */
  size_t workers_started; /* worker processes started (procs: replacements included;
                           * procs-persistent: during this map, 0 when all were reused) */
  int interrupted;        /* 1 if SIGINT or SIGTERM stopped the map (procs) */
  double imbalance;       /* the busiest worker's busy time over the mean, minus 1 */
  /* Version 3. */
  size_t n_tripped; /* failed items the circuit breaker failed without running them */
  int tripped;      /* 1 if the circuit breaker tripped (procs; at most once per map) */
  int shrunk;       /* 1 if a file behind in or out shrank during the map (then BG_ERANGE) */
  /* Version 4. */
  int first_state; /* bg_item_state_t of first_failed; BG_ITEM_PENDING when none failed */
  size_t n_exited; /* of n_crashed, the items whose worker process called exit() */
  /* Version 5. */
  size_t n_replayed; /* items taken from desc->journal instead of being run (their outcomes
                        are counted in n_ok and n_failed like the others) */
} bg_map_report_t;

/**
 * bg_map - run desc->fn on every item and wait for all of them.
 * @pool: the pool to run on.
 * @d: what to run; borrowed for the duration of the call, as are its buffers.
 * @report: OUT: optional; written whenever the map ran: 0, BG_ETASK, BG_ECANCELED, and
 *          BG_ERANGE for a shrunk file. Its version follows d->version (see bg_map_report_t).
 *
 * Every item whose function returns 0 has its result written, whatever happens to the others.
 * Called from inside a task of any pool, the map runs inline on the calling thread (nested
 * parallelism would only oversubscribe the cores, and waiting on a busy pool would deadlock).
 * Two threads may call bg_map on one pool at once: the second waits for the first to finish,
 * or fails with BG_EBUSY under BG_MAP_NOWAIT.
 *
 * On the procs backend each task runs in a forked worker process: a task that crashes, exits or
 * runs past desc->timeout_ms kills only its worker, which is replaced; the item is reported
 * (BG_ITEM_CRASHED, _EXITED, _TIMEOUT) and every other item still runs. SIGINT or SIGTERM
 * during such a map stops it: the workers are killed and reaped, the shared memory unmapped,
 * the results finished so far delivered, and bg_map returns BG_ECANCELED.
 *
 * Each procs worker leads its own process group, and the group is killed (SIGKILL) whenever
 * the worker is reaped, at the map's end included: processes a task starts in the background
 * (system("cmd &"), fork) do not outlive the map unless they leave the group (setsid, setpgid).
 *
 * The circuit breaker (procs) stops a storm of forks when every fresh worker dies the same way:
 * once desc->breaker worker processes in a row have died of the same signal, or by exit() with
 * the same status, each without finishing an item successfully, and no item has succeeded
 * meanwhile, the map starts no more workers. Each item not yet handed out then fails without
 * running, with the state and code of those deaths and attempts 0 (see bg_item_state_t), and
 * is counted in n_tripped (and n_failed, not n_crashed); items already running on live workers
 * finish; bg_map returns BG_ETASK with tripped set. A success, a timeout or a death of another
 * cause starts the count again; processes that die before being ready (a failing init
 * callback) have their own limit and do not count. A map whose items crash now and then, with
 * successes between them, never trips.
 *
 * A file-backed shared array (bg_shared_create) holding in or out must not be shrunk during a
 * map: its pages past the new end raise SIGBUS in whoever touches them. A procs map notices:
 * at its start, or at the first worker death after the shrink, it trips the breaker (the items
 * left fail as BG_ITEM_CRASHED with SIGBUS, attempts 0), and it returns BG_ERANGE with shrunk
 * set, so that the caller knows the results in that array are lost and must not read them (it
 * would die of SIGBUS). Other backends run tasks in the caller's process, which SIGBUS kills.
 *
 * On procs-persistent the worker processes are forked at the pool's first map and kept until
 * bg_pool_destroy (see bg_pool_opts_t's backend): the items, d->ctx's ctx_size bytes and the
 * results travel through shared memory, and the guarantees above are the same. A worker that
 * died between maps, or that another thread's map forked, is replaced before the map; Ctrl-C
 * ends every worker, and the next map forks new ones.
 *
 * Return: 0; BG_ETASK if any item failed (see @report); BG_ECANCELED (interrupted; @report
 * says what finished); BG_EINVAL (NULL pool, desc or fn, wrong version, in without in_size,
 * out without out_size, ctx_size without ctx; on procs-persistent a ctx without ctx_size);
 * BG_ERANGE (n * size overflows; or, with @report written, the procs map found the file behind in
 * or out shrunk); BG_EBUSY (BG_MAP_NOWAIT and the pool is in use); BG_EBACKEND (timeout_ms on a
 * backend that cannot stop a running task: procs can); BG_ENOMEM (procs: no memory for the shared
 * results); BG_ESYS (procs-persistent: no memfd for its arena). Workers that cannot be forked or
 * whose init callback fails make their items fail (BG_ITEM_EXITED), not the call.
 */
int bg_map(bg_pool_t *pool, const bg_map_desc_t *d, bg_map_report_t *report);

/**
 * bg_map_simple - the common case in one call: fn on n items, results in order, on the
 * process-wide pool of bg_pool_default().
 * @in: NULL for the indices 0..n-1, else n records of @in_size bytes.
 * @out: NULL when results are not kept, else n results of @out_size bytes.
 *
 *   uint64_t sq[1000];
 *   int rc = bg_map_simple(square, NULL, NULL, 0, sq, sizeof sq[0], 1000);
 *
 * The same as bg_map with a description of those fields and the defaults (auto schedule, no
 * status array, no timeout). Called from several threads at once, the maps take turns on the
 * pool; called from inside a task, it runs inline. For a report, per-item statuses, progress or
 * another backend, use bg_map.
 *
 * Return: as bg_map: 0; BG_ETASK (an item's fn returned non-zero: every other result is
 * written); BG_EINVAL (NULL fn, in without in_size, out without out_size); BG_ERANGE; or what
 * bg_pool_default returned.
 */
int bg_map_simple(bg_task_fn fn, void *ctx, const void *in, size_t in_size, void *out,
                  size_t out_size, size_t n);

/* What one worker did during the last map (joblib's verbose output, mpire's insights). */
typedef struct bg_worker_insight {
  size_t items;        /* items it finished, failed ones included */
  size_t failed;       /* of which failed */
  uint64_t startup_ns; /* from the map's start to its first chunk (procs: the fork included) */
  uint64_t busy_ns;    /* from its first chunk until it found no more work */
  uint64_t idle_ns;    /* the rest of the map's wall time: waiting for the slowest worker */
  unsigned started;    /* procs: processes started for it, replacements included */
} bg_worker_insight_t;

/**
 * bg_map_insights - per-worker figures of the pool's last map.
 * @out: @cap entries; worker w goes to out[w].
 *
 * Waits for a map running on the pool to finish. The openmp and mpi backends run their own
 * loops and leave start-up and busy times at 0.
 * Return: the pool's worker count (entries beyond @cap are not written), or BG_EINVAL.
 */
int bg_map_insights(bg_pool_t *pool, bg_worker_insight_t *out, unsigned cap);

#ifdef __cplusplus
}
#endif
#endif
