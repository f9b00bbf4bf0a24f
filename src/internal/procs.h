/* SPDX-License-Identifier: MIT */
/* What the procs backend's supervising parent and its forked workers share: the messages on
 * each worker's socket and the slots in the shared arena through which the parent sees which
 * item a worker is running (to name the culprit of a crash and to enforce timeouts). */
#ifndef BRIGADE_INTERNAL_PROCS_H
#define BRIGADE_INTERNAL_PROCS_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/error.h"
#include "brigade/topo.h"
#include "internal/job.h"

struct bg__persist;

/* Arenas this large are checked against the memory available before they are mapped. Below
 * it an arena is within any safety margin, and the check (it reads /proc and the cgroup
 * files) would only add to every map's cost. */
#define BG__ARENA_CHECK_BYTES ((size_t)16 << 20)

/* 0 if an arena of @len bytes may be mapped, BG_ENOMEM if it exceeds the memory available. */
static inline int bg__arena_fits(size_t len) {
  uint64_t avail;
  if (len >= BG__ARENA_CHECK_BYTES && bg_mem_available(&avail) == 0 && len > avail)
    return BG_ENOMEM;
  return BG_OK;
}

/* A worker's exit status when its init callback failed. */
#define BG__PROCS_INIT_FAILED 125

/* One per worker in the shared arena, on its own cache line. W: written by the worker
 * process; the parent resets it before each fork and reads it (acquire) at any time. */
typedef struct bg__pslot {
  _Alignas(BG_CACHELINE) _Atomic size_t cur; /* W: the item running or next to run */
  _Atomic int running;                       /* W: 1 while inside the task function */
  _Atomic uint64_t t0_ns;                    /* W: when item cur started (with a timeout) */
  _Atomic uint64_t ready_ns;                 /* W: when the process was ready for work */
} bg__pslot;

/* The time left before an item that started at @t0 (a worker's clock reading) reaches @limit
 * at @now (the parent's), in ns; 0 once it has. A worker may start an item after the parent
 * read @now, so @t0 can lie after it: that item has just started, and has all its time left.
 * (Unsigned now - t0 once wrapped there to a huge age and killed a worker that had run an item
 * for nanoseconds: a false timeout, now and then, in any map with a timeout.) */
static inline uint64_t bg__time_left(uint64_t now, uint64_t t0, uint64_t limit) {
  uint64_t age = now > t0 ? now - t0 : 0;
  return age >= limit ? 0 : limit - age;
}

/* ARENA (persistent mode): map the data arena whose memfd comes with the message, b bytes
 * long, in place of the old one. */
enum { BG__PCMD_RUN = 1, BG__PCMD_QUIT = 2, BG__PCMD_ARENA = 3 };

/* Parent to worker: run items [b, e). prior: attempts the single item of a re-run already
 * had. The copy transport sends (e - b) * in_size bytes of items after it. */
typedef struct bg__pcmd {
  uint64_t op, b, e;
  uint32_t prior, pad;
} bg__pcmd;

/* Worker to parent: items [b, end) ran (end < e when BG_MAP_HALT stopped it), nfailed of them
 * failed. The copy transport sends (end - b) outcomes and then (end - b) * out_size bytes of
 * results after it. */
typedef struct bg__preply {
  uint64_t b, end, nfailed;
} bg__preply;

typedef struct bg__poutcome {
  int32_t code;
  uint32_t attempts;
} bg__poutcome;

/* Everything a worker process needs, set up by the parent before fork (the child reads its
 * own copy-on-write view of it). */
typedef struct bg__pchild {
  const bg_map_desc_t *d;
  unsigned w;
  int fd;                   /* the worker's end of its socket */
  int copy;                 /* 1: items and results travel on the socket */
  int halt;                 /* BG_MAP_HALT */
  bg__pslot *slot;          /* shared */
  bg__wstat *stats;         /* shared: this worker's outcome counts (shm transport) */
  char *out;                /* shared: results of every item (shm transport), or NULL */
  bg_item_status_t *status; /* shared: per-item outcomes (shm transport), or NULL */
  const bg__life *life;     /* or NULL */
  long parent;              /* the parent's pid, to notice it died before prctl */
  /* The persistent mode's arena as mapped at the fork (each map's description, items and
   * results come through it), or NULL: the worker lives for one map and reads d. */
  const struct bg__persist *persist;
} bg__pchild;

/* What every worker process does first: drop the caller's handlers for Ctrl-C and crash
 * signals, ask to be killed with its parent, and leave at once if the parent (@parent) is
 * already gone. */
void bg__procs_child_setup(long parent);

/* The worker's whole life: init callback, commands until QUIT or the parent goes, exit
 * callback, _exit. */
_Noreturn void bg__procs_child(const bg__pchild *c);

/* Whole-buffer socket I/O that retries short transfers and EINTR and never raises SIGPIPE.
 * Return: 0, or -1 (the peer is gone or the call failed). */
int bg__sock_send(int fd, const void *buf, size_t len);
int bg__sock_recv(int fd, void *buf, size_t len);

/* The same for one message that carries a descriptor: @pass (none when negative) goes with
 * it (SCM_RIGHTS); *got receives the one that came (close-on-exec), or -1. On failure nothing
 * received is left open. Return: 0, or -1. */
int bg__sock_send_fd(int fd, const void *buf, size_t len, int pass);
int bg__sock_recv_fd(int fd, void *buf, size_t len, int *got);

/* Flushes stdio, makes a socket pair and forks. Return: the child's pid in the parent, 0 in
 * the child, -1 on failure (nothing left open). *mine: this side's end of the socket; the
 * other side's is closed here. */
long bg__fork_socket(int *mine);

/* Kills the process group of @pid (and @pid itself, should it have left its group) and reaps
 * @pid into *status (left as it was when there is nothing to reap). Call it while @pid is not
 * yet reaped, running or a zombie: its pid, and so its group's id, cannot have been reused by
 * then, so the kill reaches only what it started. */
void bg__kill_reap(long pid, int *status);

#endif
