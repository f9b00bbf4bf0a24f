/* SPDX-License-Identifier: MIT */
/* Futures: submit one task at a time to an executor and collect its result later, in any order
 * (Python's concurrent.futures). An executor runs on threads or on worker processes; on
 * processes a task that crashes, exits or runs past its timeout fails only its own future, and
 * its worker is replaced: there is no BrokenProcessPool. */
#ifndef BRIGADE_FUTURE_H
#define BRIGADE_FUTURE_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/map.h"
#include "brigade/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_executor bg_executor_t;
typedef struct bg_future bg_future_t;
typedef struct bg_completion bg_completion_t;

/* A wait that never times out. */
#define BG_WAIT_FOREVER (-1)

#define BG_EXECUTOR_OPTS_VERSION 1u

typedef struct bg_executor_opts {
  uint32_t version;    /* BG_EXECUTOR_OPTS_VERSION, set by bg_executor_opts_init() */
  const char *backend; /* "threads" (the default) or "procs" */
  unsigned workers;    /* 0: bg_topo_default_workers() (physical cores) */
  /* procs: a task still running after this long has its worker killed and its future fails
   * with BG_ETIMEDOUT. 0: no limit. Threads cannot be stopped: BG_EBACKEND there. */
  uint32_t timeout_ms;
  bg_worker_init_fn worker_init; /* optional; as in bg_pool_opts_t */
  bg_worker_exit_fn worker_exit; /* optional */
  void *worker_ctx;
  size_t max_tasks; /* a worker that ran this many tasks is replaced (state renewed); 0: never */
} bg_executor_opts_t;

/** bg_executor_opts_init - fill @o with the defaults listed above. */
void bg_executor_opts_init(bg_executor_opts_t *o);

/**
 * bg_executor_create - start an executor's workers.
 * @o: NULL for the defaults.
 *
 * procs workers are forked here (and again when one is replaced): a task's ctx pointer is read
 * in the worker's copy-on-write view of the caller's memory as it was at that fork, while its
 * input bytes are copied at submission and sent to the worker.
 *
 * Return: 0; BG_EINVAL (NULL @out, wrong version); BG_ENOENT (another backend name);
 * BG_EBACKEND (timeout_ms on threads); BG_ERANGE (more than 4096 workers); BG_ETASK (a worker's
 * init callback failed); BG_ESYS (a thread, process or socket could not be made); BG_ENOMEM.
 */
int bg_executor_create(const bg_executor_opts_t *o, bg_executor_t **out);

enum bg_executor_flags {
  BG_EXECUTOR_CANCEL_PENDING = 1u << 0, /* cancel tasks not yet started instead of running them */
};

/**
 * bg_executor_destroy - run (or cancel) what was submitted, stop the workers, free the executor.
 * @flags: enum bg_executor_flags.
 *
 * Waits for running tasks (Python's shutdown(wait=True)); processes are reaped. Futures stay
 * valid until released. NULL is a no-op.
 */
void bg_executor_destroy(bg_executor_t *ex, unsigned flags);

/** bg_executor_workers - the executor's worker count. */
unsigned bg_executor_workers(const bg_executor_t *ex);

/**
 * bg_submit - queue one task: fn(out, in, index, ctx) with a private copy of @in.
 * @in: @in_size bytes copied now, so the caller may reuse the buffer; NULL when @in_size is 0.
 * @out_size: bytes of result the task writes; 0 for none.
 * @f: OUT: the task's future, released with bg_future_release().
 *
 * The index passed to fn counts the executor's submissions from 0. Thread-safe.
 * Return: 0; BG_EINVAL (NULL ex, fn or f; in NULL with in_size > 0); BG_ERANGE (sizes near
 * SIZE_MAX); BG_ECANCELED (the executor is being destroyed); BG_ENOMEM.
 */
int bg_submit(bg_executor_t *ex, bg_task_fn fn, void *ctx, const void *in, size_t in_size,
              size_t out_size, bg_future_t **f);

/**
 * bg_executor_map - a batch in one call (Python's executor.map): submit n tasks, wait for every
 * one, write their results in order, release their futures.
 * @in: NULL for no input, else n records of @in_size bytes, each copied at submission.
 * @out: NULL when results are not kept, else room for n results of @out_size bytes; a failed
 *       item's entry is left as it was.
 * @status: optional, n entries: what became of each item, as bg_map reports it.
 *
 * fn is called as fn(out, item, i, ctx) where i is the item's index in this batch, 0..n-1. On
 * a procs executor a crash, exit or timeout fails only its item. Thread-safe: batches from
 * several threads share the workers.
 *
 * Return: 0; BG_ETASK (some items failed: @status says which and how); BG_EINVAL (NULL ex or
 * fn, in without in_size, out without out_size); BG_ERANGE (sizes that overflow); BG_ENOMEM or
 * BG_ECANCELED (the batch could not be submitted whole, or the executor is being destroyed:
 * the part submitted is cancelled or waited for, and nothing is written).
 */
int bg_executor_map(bg_executor_t *ex, bg_task_fn fn, void *ctx, const void *in, size_t in_size,
                    void *out, size_t out_size, size_t n, bg_item_status_t *status);

typedef enum bg_future_state {
  BG_FUTURE_PENDING = 0, /* queued */
  BG_FUTURE_RUNNING,     /* a worker has it */
  BG_FUTURE_DONE,        /* finished: succeeded, failed, crashed or timed out */
  BG_FUTURE_CANCELLED,   /* cancelled before it started */
} bg_future_state_t;

/** bg_future_state - where the task is now (a bg_future_state_t), or BG_EINVAL for NULL. */
int bg_future_state(const bg_future_t *f);

/**
 * bg_future_wait - wait until the task is done or cancelled.
 * @timeout_ms: 0 only looks; BG_WAIT_FOREVER never gives up.
 * Return: 0; BG_ETIMEDOUT (still pending or running); BG_EINVAL.
 */
int bg_future_wait(bg_future_t *f, int64_t timeout_ms);

/**
 * bg_future_wait_any - wait until one of @n futures of one executor is done or cancelled.
 * @index: OUT: the lowest index of a finished future.
 * Return: 0; BG_ETIMEDOUT; BG_EINVAL (n == 0, a NULL entry, futures of two executors).
 */
int bg_future_wait_any(bg_future_t *const *fs, size_t n, int64_t timeout_ms, size_t *index);

/** bg_future_wait_all - wait until all @n futures of one executor are done or cancelled. */
int bg_future_wait_all(bg_future_t *const *fs, size_t n, int64_t timeout_ms);

/**
 * bg_future_cancel - cancel a task that has not started.
 * Return: 0 (it will never run; a second cancel is also 0); BG_EBUSY (running or done).
 */
int bg_future_cancel(bg_future_t *f);

/**
 * bg_future_result - the outcome of a finished task.
 * @out: OUT: optional; the task's out_size bytes of result (NULL when out_size is 0), valid until
 *       the future is released. Set only when the return is 0.
 * @st: OUT: optional; state, code and attempts, as bg_map reports an item.
 * Return: 0 (fn returned 0); BG_ETASK (fn returned non-zero: st->code); BG_ECRASH (its worker
 * died of a signal or exit: st->state and st->code say which); BG_ETIMEDOUT; BG_ECANCELED;
 * BG_EBUSY (not finished yet); BG_EINVAL.
 */
int bg_future_result(const bg_future_t *f, const void **out, bg_item_status_t *st);

/** bg_future_release - drop the caller's reference; a queued task still runs. NULL: no-op. */
void bg_future_release(bg_future_t *f);

/**
 * bg_completion_create - iterate over @n futures of one executor in the order they finish
 * (Python's as_completed). The array is copied; the futures must outlive the iterator.
 * Return: 0; BG_EINVAL (n == 0, a NULL entry, two executors); BG_ENOMEM.
 */
int bg_completion_create(bg_future_t *const *fs, size_t n, bg_completion_t **out);

/**
 * bg_completion_next - wait for the next finished future not yet returned.
 * @index: OUT: its index in the array given to bg_completion_create().
 * Return: 0; BG_ETIMEDOUT; BG_ENOENT (every future has been returned).
 */
int bg_completion_next(bg_completion_t *c, int64_t timeout_ms, size_t *index);

/** bg_completion_destroy - free the iterator (not the futures); NULL is a no-op. */
void bg_completion_destroy(bg_completion_t *c);

#ifdef __cplusplus
}
#endif

#endif
