/* SPDX-License-Identifier: MIT */
/* The messages between a procs executor's manager thread and its worker processes. A worker is
 * a fork of the caller, so the task's function and context pointers mean the same thing on
 * both sides and travel as numbers; the input and result travel as bytes. */
#ifndef BRIGADE_INTERNAL_EXEC_PROCS_H
#define BRIGADE_INTERNAL_EXEC_PROCS_H

#include <stdint.h>

#include "brigade/pool.h"

enum { BG__XCMD_RUN = 1, BG__XCMD_QUIT = 2 };

/* Manager to worker: run one task; in_size bytes of input follow. */
typedef struct bg__xcmd {
  uint64_t op, index, in_size, out_size;
  uint64_t fn, ctx; /* bg_task_fn and void * as integers */
} bg__xcmd;

/* Worker to manager: once when it is ready (code 0, ready 1), then after each task with the
 * function's return value; out_size bytes of result follow. */
typedef struct bg__xreply {
  int32_t code;
  uint32_t ready;
} bg__xreply;

/* What a worker process needs: its index, its socket, its lifecycle callbacks. */
typedef struct bg__xchild {
  unsigned w;
  int fd;
  long parent;
  bg_worker_init_fn init;
  bg_worker_exit_fn exit;
  void *ctx;
} bg__xchild;

/* The worker's whole life: init callback, tasks until QUIT or EOF, exit callback, _exit. */
_Noreturn void bg__exec_child(const bg__xchild *c);

/* The fork server: a process forked once, when the executor is created and before its manager
 * thread exists, that forks every worker on the manager's request and reaps it. Workers are
 * thus always forks of a single-threaded process: forking from the manager thread itself
 * would copy a multi-threaded process, whose locks another thread may hold (and under TSan a
 * worker's exit() then hung). Workers see the caller's memory as it was at creation. */
typedef struct bg__forkserver {
  long pid; /* the server's */
  int fd;   /* the manager's end of its control socket */
} bg__forkserver;

/* Forks the server; @tmpl describes the workers it will fork (fd and w are filled per worker).
 * Return: 0 or BG_ESYS. */
int bg__forkserver_start(bg__forkserver *fs, const bg__xchild *tmpl);

/* Has worker w forked: its pid and the manager's end of its socket. Return: 0 or BG_ESYS. */
int bg__forkserver_spawn(const bg__forkserver *fs, unsigned w, long *pid, int *fd);

/* Waits for worker @pid to end and returns its wait status (-1 if the server is gone). */
int bg__forkserver_reap(const bg__forkserver *fs, long pid);

/* Stops the server (its workers must be reaped already) and reaps it. */
void bg__forkserver_stop(bg__forkserver *fs);

#endif
