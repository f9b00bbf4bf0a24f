/* SPDX-License-Identifier: MIT */
/* The persistent procs mode (backend "procs-persistent"): worker processes outlive the map, so
 * they cannot see a map's items, results and context in the caller's memory as it is now.
 * Those travel through a shared arena instead: a memfd the parent grows by making a new one
 * and passing it to each worker (SCM_RIGHTS) before its next chunk. The supervision (chunks on
 * the worker's socket, deaths, timeouts, the breaker) is procs.c's, shared by both modes. */
#ifndef BRIGADE_INTERNAL_PROCS_PERSIST_H
#define BRIGADE_INTERNAL_PROCS_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "internal/procs.h"

/* The parent's side. O: the supervising thread of the map in progress. Zero but fd -1 (and all
 * unmapped) while the pool has no workers: before its first map and after a Ctrl-C. */
typedef struct bg__persist {
  bg__pslot *slots; /* O: one per worker, shared, mapped before the first fork; or NULL */
  bg__wstat *stats; /* O: the workers' own counts, in the same mapping */
  size_t ctl_len;   /* O */
  int fd;           /* O: the data arena's memfd, -1 when there is none */
  char *base;       /* O: the data arena, mapped in the parent */
  size_t len;       /* O */
  unsigned gen;     /* O: which arena: a worker whose own number differs is sent this one */
} bg__persist;

/* Maps the control part (slots and counts) for @workers; *p must be unmapped. Return: 0 or
 * BG_ENOMEM. */
int bg__persist_init(bg__persist *p, unsigned workers);

/* Unmaps everything, leaving *p as before bg__persist_init; the workers must be gone or told
 * to quit already. */
void bg__persist_fini(bg__persist *p);

/* Lays one map out in the data arena, growing it when it is too small: a header its workers
 * read, then desc->ctx's ctx_size bytes, the items, the caller's results (so a failed item
 * keeps the caller's value, as on the other backends) and room for the statuses. copy_in 0
 * leaves items and results uncopied (the file behind them shrank: reading it would raise
 * SIGBUS). *out and *status: where the workers write results and statuses (NULL when the
 * map keeps none). Return: 0, BG_ENOMEM, or BG_ESYS (no memfd). */
int bg__persist_stage(bg__persist *p, const bg_map_desc_t *d, int copy_in, char **out,
                      bg_item_status_t **status);

/* Drops the data arena only. */
void bg__persist_release(bg__persist *p);

/* Sends the current arena to a worker whose arena number *gen is not current. Return: 0, or
 * -1 when the worker is gone. */
int bg__persist_sync(const bg__persist *p, int fd, unsigned *gen);

/* The worker's side: its own mapping of the data arena and the map it describes. */
typedef struct bg__pview {
  char *base;
  size_t len;
  bg_map_desc_t d;
} bg__pview;

/* Maps the arena that came with an ARENA command (@fd) in place of the old one, and closes
 * @fd. Return: 0, or -1 (no memory: the worker must leave). */
int bg__persist_remap(bg__pview *v, const bg__pcmd *m, int fd);

/* Points @c (description, results, statuses, BG_MAP_HALT) at the map staged in the arena. */
void bg__persist_apply(bg__pview *v, bg__pchild *c);

#endif
