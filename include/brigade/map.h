/* SPDX-License-Identifier: MIT */
/* bg_map: apply a function to n items in parallel and write n results in order. The items are
 * either the index range [0, n) (Python's range(n)) or an array of fixed-size records. */
#ifndef BRIGADE_MAP_H
#define BRIGADE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/pool.h"

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
  BG_MAP_HALT = 1u << 1,   /* stop handing out work after the first failure */
  /* The mpi backend: results on every rank, not only on rank 0. Every rank passes out; one
   * that does not fails the map on every rank (first_code BG_EINVAL). */
  BG_MAP_ALL_RANKS = 1u << 2,
};

#define BG_MAP_DESC_VERSION 1u

typedef struct bg_map_desc {
  uint32_t version; /* BG_MAP_DESC_VERSION, set by bg_map_desc_init() */
  bg_task_fn fn;
  void *ctx;
  size_t n;        /* number of items */
  const void *in;  /* NULL: the items are the indices 0..n-1 */
  size_t in_size;  /* bytes per item when @in is set */
  void *out;       /* NULL: results are not kept */
  size_t out_size; /* bytes per result when @out is set */
  unsigned flags;  /* enum bg_map_flags */
} bg_map_desc_t;

/** bg_map_desc_init - zero @d and set its version. */
void bg_map_desc_init(bg_map_desc_t *d);

#define BG_MAP_REPORT_VERSION 1u

/* What happened during one map. Written by bg_map() whenever the map ran (0 or BG_ETASK). */
typedef struct bg_map_report {
  uint32_t version;       /* BG_MAP_REPORT_VERSION */
  size_t n_ok;            /* items whose function returned 0 */
  size_t n_failed;        /* items whose function returned non-zero */
  size_t n_skipped;       /* items not run because BG_MAP_HALT stopped the map */
  size_t first_failed;    /* lowest failed index, SIZE_MAX when none failed */
  int first_code;         /* what the function returned for first_failed */
  uint64_t wall_ns;       /* time spent inside bg_map */
  unsigned workers;       /* workers that ran at least one item */
  int ran_inline;         /* 1 if the whole map ran on the calling thread */
  bg_schedule_t schedule; /* the schedule used */
  size_t chunks;          /* chunks handed out */
  size_t chunk_last;      /* the last chunk size auto, steal or guided chose */
} bg_map_report_t;

/**
 * bg_map - run desc->fn on every item and wait for all of them.
 * @pool: the pool to run on.
 * @d: what to run; borrowed for the duration of the call, as are its buffers.
 * @report: OUT: optional; written when the return is 0 or BG_ETASK.
 *
 * Every item whose function returns 0 has its result written, whatever happens to the others.
 * Called from inside a task of any pool, the map runs inline on the calling thread (nested
 * parallelism would only oversubscribe the cores, and waiting on a busy pool would deadlock).
 * Two threads may call bg_map on one pool at once: the second waits for the first to finish,
 * or fails with BG_EBUSY under BG_MAP_NOWAIT.
 *
 * Return: 0; BG_ETASK if any item failed (see @report); BG_EINVAL (NULL pool, desc or fn,
 * wrong version, in without in_size, out without out_size); BG_ERANGE (n * size overflows);
 * BG_EBUSY (BG_MAP_NOWAIT and the pool is in use).
 */
int bg_map(bg_pool_t *pool, const bg_map_desc_t *d, bg_map_report_t *report);

#ifdef __cplusplus
}
#endif
#endif
