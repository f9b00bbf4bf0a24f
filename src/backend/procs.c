/* SPDX-License-Identifier: MIT */
/* The procs backends: tasks run in forked worker processes, so a task that crashes, exits or
 * hangs takes only its worker with it. Workers are forked at each map and so see the caller's
 * memory as it is then, copy-on-write: inputs and the context are never serialised. The
 * caller's thread only supervises: it hands out chunks on each worker's socket, waits in
 * poll() for replies, deaths, timeouts and Ctrl-C, and replaces dead workers. The persistent
 * mode (procs-persistent, procs_persist.c) keeps its workers between maps instead and stages
 * each map in an arena they share; everything else here serves both modes. Two transports:
 *  - procs: results go to a shared anonymous mapping and are copied out as chunks finish; a
 *    worker's slot in that mapping says which item it runs, so after a crash the items before
 *    it are kept, the culprit is named, and the rest of the chunk is run again as one range;
 *  - procs-copy: items and results travel on the socket (what Python's pools do with pickles),
 *    to show what serialization costs; after a crash the whole rest of the chunk is re-run.
 * The mapping is anonymous, so nothing can outlive the map in /dev/shm. */
#define _GNU_SOURCE
#include "brigade/error.h"
#include "brigade/topo.h"
#include "internal/backend.h"
#include "internal/clock.h"
#include "internal/interrupt.h"
#include "internal/procs.h"
#include "internal/procs_persist.h"
#include "internal/shared.h"
#include "internal/trace.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The copy transport sends at most this many bytes of items or results per message. */
#define COPY_CHUNK_BYTES ((size_t)1 << 20)
/* After this many processes of one worker in a row die before being ready, the map stops
 * starting that worker (an init callback that always fails would otherwise fork forever); its
 * items go to the others, and when no worker can start, they fail. */
#define START_FAILURES_MAX 3
/* How long a worker told to quit may take (its exit callback) before it is killed. */
#define QUIT_GRACE_MS 5000
/* The longest poll(): the loop wakes at least this often to look at timeouts and progress. */
#define POLL_MAX_MS 100

/* A map the parent must hear from item by item, near enough (a journal records what the
 * workers finish only when their chunk comes back; a halt after N failures counts them only
 * then), sends pieces of about this long. Guided chunks of a quarter of the map would hold
 * their results back for that long, and a kill -9 would lose them. */
#define PIECE_NS 20000000u

/* desc->timeout_pct: the median is taken over the last this many chunks. */
#define PCT_SAMPLES 255

/* One worker seen from the parent. */
typedef struct kid {
  pid_t pid;         /* 0: no process */
  int fd;            /* the parent's end of its socket */
  int busy;          /* it has a chunk */
  int timed_out;     /* the parent killed it for running past the timeout */
  uint32_t limit_ms; /* ... which was this long */
  size_t b, e;       /* the chunk it runs */
  uint32_t prior;    /* attempts its single re-run item had before */
  size_t rest_b;     /* the part of a scheduler chunk not sent yet */
  size_t rest_e;
  size_t tasks;       /* items sent to this process */
  uint64_t sent_ns;   /* when the chunk was sent */
  int start_failures; /* processes in a row that died before being ready */
  int gave_up;        /* no more processes for this worker in this map */
  size_t ok_mark;     /* shm: the worker's count of successes when the chunk was sent */
  size_t done_mark;   /* shm: its count of items recorded (successes and failures) then */
  unsigned gen;       /* persistent: the arena the worker has */
  pid_t forker;       /* the thread that forked it */
  uint64_t spawn_ns;  /* traced maps: when its process was forked, until its start-up is drawn */
} kid;

/* O: the supervising thread of the map in progress, or bg_pool_destroy's. */
typedef struct pstate {
  unsigned workers; /* I */
  int copy;         /* I */
  int persistent;   /* I: workers live from their first map to bg_pool_destroy */
  bg__life *life;   /* I */
  bg_allocator_t alloc;
  kid *kids;         /* workers entries; persistent: the live workers between maps too */
  struct pollfd *pf; /* workers entries, for poll() */
  unsigned *who;     /* pf[j] is worker who[j] */
  bg__persist persist;
} pstate;

/* Items to hand out again: [b, e), in chunks, before any new chunk of the scheduler. attempts:
 * what each had already (a single re-run item's count). */
typedef struct redo {
  size_t b, e;
  uint32_t attempts;
} redo;

/* One map. */
typedef struct run {
  pstate *ps;
  bg__job *job;
  const bg_map_desc_t *d;
  char *arena;
  size_t arena_len;
  bg__pslot *slots;
  bg__wstat *sst; /* the workers' own counts (shm transport) */
  char *out;      /* shared results (shm transport) */
  bg_item_status_t *status;
  kid *kids;
  struct pollfd *pf;
  unsigned *who;
  redo *q; /* FIFO */
  size_t qhead, qlen, qcap;
  int halted;
  /* Why the items not handed out were failed (fail_rest), so that a chunk a dying worker gives
   * back afterwards fails the same way; rest_state 0 while they were not. */
  int rest_state, rest_code;
  /* The circuit breaker: deaths in a row of cause (streak_state, streak_code) with no success
   * since the first of them. */
  uint32_t streak;
  int streak_state, streak_code;
  bg__interrupt guard;
  /* desc->timeout_pct: the time per item of the last chunks that finished (a ring), and the
   * limit they give (0: none yet). */
  uint64_t samples[PCT_SAMPLES];
  size_t nsamples;
  uint64_t pct_limit_ns;
  size_t pct_items;
  double item_ns; /* the time per item of the chunks that came back, smoothed; 0: none yet */
  int pieces;     /* send pieces of about PIECE_NS (a journal, or a halt after N failures) */
} run;

/* The per-item limit in force, in nanoseconds; 0: none. */
static uint64_t limit_ns(const run *R) {
  return R->d->timeout_ms ? (uint64_t)R->d->timeout_ms * 1000000u : R->pct_limit_ns;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* A chunk of @items finished in @ns: its time per item joins the samples, and the limit is
 * timeout_pct of their median once BG_MAP_TIMEOUT_PCT_MIN items have finished. */
static void pct_sample(run *R, uint64_t ns, size_t items) {
  if (!R->d->timeout_pct || items == 0)
    return;
  R->samples[R->nsamples++ % PCT_SAMPLES] = ns / items;
  R->pct_items += items;
  if (R->pct_items < BG_MAP_TIMEOUT_PCT_MIN)
    return;
  uint64_t v[PCT_SAMPLES];
  size_t n = R->nsamples < PCT_SAMPLES ? R->nsamples : PCT_SAMPLES;
  memcpy(v, R->samples, n * sizeof *v);
  qsort(v, n, sizeof *v, cmp_u64);
  uint64_t median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  uint64_t lim = median / 100 * R->d->timeout_pct;
  R->pct_limit_ns = lim < 1000000u ? 1000000u : lim; /* a millisecond at least */
}

static size_t align_up(size_t x) {
  return (x + BG_CACHELINE - 1) & ~(size_t)(BG_CACHELINE - 1);
}

/* The shared arena: slots, the workers' counts, and (shm transport) statuses and results. */
static int arena_map(run *R) {
  const bg_map_desc_t *d = R->d;
  unsigned W = R->ps->workers;
  size_t off_sst = align_up(W * sizeof(bg__pslot));
  size_t off_status = off_sst + align_up(W * sizeof(bg__wstat));
  size_t off_out = off_status;
  if (!R->ps->copy && d->status)
    off_out += align_up(d->n * sizeof(bg_item_status_t));
  /* Results that already lie in a shared array are written there by the workers directly. */
  int direct = !R->ps->copy && d->out && bg__shared_contains(d->out, d->n * d->out_size);
  size_t len = off_out + (!R->ps->copy && d->out && !direct ? d->n * d->out_size : 0);
  if (bg__arena_fits(len) != 0)
    return BG_ENOMEM;
  void *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED)
    return BG_ENOMEM;
  R->arena = a;
  R->arena_len = len;
  R->slots = (bg__pslot *)(void *)R->arena;
  R->sst = (bg__wstat *)(void *)(R->arena + off_sst);
  for (unsigned w = 0; w < W; w++)
    bg__wstat_reset(&R->sst[w]);
  R->status =
      !R->ps->copy && d->status ? (bg_item_status_t *)(void *)(R->arena + off_status) : NULL;
  R->out = direct ? d->out : !R->ps->copy && d->out ? R->arena + off_out : NULL;
  /* A failed item's result stays what the caller had, as on the in-process backends. */
  if (R->out && !direct)
    memcpy(R->out, d->out, d->n * d->out_size);
  return BG_OK;
}

/* The persistent mode's arena: the control mapping, made before the pool's first fork, and
 * this map staged in the data arena (items and results copied: the workers cannot see the
 * caller's memory as it is now). */
static int persist_arena(run *R, int copy_in) {
  bg__persist *p = &R->ps->persist;
  int rc = p->slots ? BG_OK : bg__persist_init(p, R->ps->workers);
  if (rc == 0)
    rc = bg__persist_stage(p, R->d, copy_in, &R->out, &R->status);
  if (rc != 0)
    return rc;
  R->slots = p->slots;
  R->sst = p->stats;
  for (unsigned w = 0; w < R->ps->workers; w++)
    bg__wstat_reset(&R->sst[w]);
  return BG_OK;
}

static int push_redo(run *R, size_t b, size_t e, uint32_t attempts) {
  if (R->qhead + R->qlen == R->qcap) {
    if (R->qhead > 0) {
      memmove(R->q, R->q + R->qhead, R->qlen * sizeof *R->q);
      R->qhead = 0;
    } else {
      size_t cap = R->qcap ? 2 * R->qcap : 64;
      redo *q = realloc(R->q, cap * sizeof *q);
      if (!q)
        return BG_ENOMEM;
      R->q = q;
      R->qcap = cap;
    }
  }
  R->q[R->qhead + R->qlen++] = (redo){b, e, attempts};
  return BG_OK;
}

/* Records a failure the worker could not record itself: it died on item i, or (tripped) the
 * circuit breaker failed the item without running it. */
static void record_failure(run *R, unsigned w, size_t i, int state, int code, uint32_t attempts,
                           int tripped) {
  bg__wstat *st = &R->job->stats[w];
  bg__wstat_fail(st, i, state, state == BG_ITEM_TIMEOUT ? BG_ETIMEDOUT : BG_ECRASH);
  st->retries += attempts > 1 ? attempts - 1 : 0;
  if (tripped)
    R->job->n_tripped++;
  else if (state == BG_ITEM_TIMEOUT)
    st->timeouts++;
  else
    st->crashed++, st->exited += state == BG_ITEM_EXITED;
  if (R->d->status)
    R->d->status[i] = (bg_item_status_t){state, code, attempts};
  if (R->job->journal)
    bg__journal_settled(R->job->journal, i, i + 1);
  if (R->job->progress)
    bg__progress_add(R->job->progress, 1);
  if (bg__job_halt_due(R->job, 1))
    R->halted = 1;
}

static void fail_item(run *R, unsigned w, size_t i, int state, int code, uint32_t attempts) {
  record_failure(R, w, i, state, code, attempts, 0);
}

/* Queues items [b, e) to be handed out again, as one range. A second bad item in a dead
 * worker's chunk needs no item-by-item re-run to be found: the worker that re-runs the range
 * dies on it, and its slot names it. (Item by item, a worker killed from outside turned the
 * rest of a long chunk into one message per item.) Items the queue has no memory for fail. */
static void requeue(run *R, unsigned w, size_t b, size_t e, uint32_t attempts) {
  if (b < e && push_redo(R, b, e, attempts) != 0)
    for (size_t j = b; j < e; j++)
      fail_item(R, w, j, BG_ITEM_EXITED, -1, attempts);
}

/* Delivers the results and statuses of items [b, end) that a shm worker finished. */
static void deliver_shm(run *R, size_t b, size_t end) {
  const bg_map_desc_t *d = R->d;
  if (d->out && R->out != d->out)
    memcpy((char *)d->out + b * d->out_size, R->out + b * d->out_size, (end - b) * d->out_size);
  if (d->status)
    memcpy(d->status + b, R->status + b, (end - b) * sizeof *d->status);
  if (R->job->journal)
    bg__journal_settled(R->job->journal, b, end);
  if (R->job->progress)
    bg__progress_add(R->job->progress, end - b);
}

/* The items a worker may take next: what is left of its last scheduler chunk, a queued re-run,
 * or a new chunk, cut to the copy transport's message size and the max_tasks quota. */
static int next_range(run *R, unsigned w, kid *k) {
  const bg_map_desc_t *d = R->d;
  size_t cap = SIZE_MAX;
  if (R->ps->copy) {
    size_t per = d->in_size > d->out_size ? d->in_size : d->out_size;
    cap = per ? COPY_CHUNK_BYTES / per : SIZE_MAX;
    cap = cap ? cap : 1;
  }
  const bg__life *l = R->ps->life;
  if (l && l->max_tasks) {
    size_t left = l->max_tasks - k->tasks; /* feed() retires a worker whose quota is spent */
    cap = left < cap ? left : cap;
  }
  if (R->pieces) {
    /* One item first: how long an item takes is not known yet. */
    double fit = R->item_ns > 0 ? PIECE_NS / R->item_ns : 1;
    size_t piece = fit < 1 ? 1 : fit > (double)SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)fit;
    cap = piece < cap ? piece : cap;
  }
  k->prior = 0;
  if (R->halted)
    return 0;
  if (k->rest_b == k->rest_e && R->qlen > 0) {
    redo *r = &R->q[R->qhead];
    k->b = r->b;
    k->e = r->e - r->b > cap ? r->b + cap : r->e;
    k->prior = r->attempts;
    r->b = k->e;
    if (r->b == r->e)
      R->qhead++, R->qlen--;
    return 1;
  }
  if (k->rest_b == k->rest_e) {
    bg__range r;
    if (!bg__sched_next(R->job->sched, w, &r))
      return 0;
    k->rest_b = r.begin;
    k->rest_e = r.end;
  }
  k->b = k->rest_b;
  k->e = k->rest_e - k->rest_b > cap ? k->rest_b + cap : k->rest_e;
  k->rest_b = k->e;
  return 1;
}

static void close_kid(kid *k) {
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
  k->pid = 0;
  k->busy = 0;
  k->tasks = 0;
}

/* Reaps a worker that is gone or must go: its whole process group is killed first, so that
 * nothing it started lives on (the worker's own SIGKILL is for one that is still running: a
 * retired worker has already exited, a dead one too). Returns its wait status. */
static int reap(kid *k) {
  int status = 0;
  bg__kill_reap(k->pid, &status);
  close_kid(k);
  return status;
}

static int spawn(run *R, unsigned w) {
  kid *k = &R->kids[w];
  bg__pslot *s = &R->slots[w];
  atomic_store(&s->cur, SIZE_MAX);
  atomic_store(&s->running, 0);
  atomic_store(&s->ready_ns, 0);
  bg__pchild c = {.d = R->d,
                  .w = w,
                  .copy = R->ps->copy,
                  .halt = R->job->halt_on_error && R->job->halt_after <= 1,
                  .slot = s,
                  .stats = &R->sst[w],
                  .out = R->out,
                  .status = R->status,
                  .life = R->ps->life,
                  .parent = (long)getpid(),
                  .persist = R->ps->persistent ? &R->ps->persist : NULL};
  int fd;
  uint64_t forked_ns = R->job->trace ? bg__now_ns() : 0; /* before the child can be ready */
  pid_t pid = (pid_t)bg__fork_socket(&fd);
  if (pid < 0)
    return BG_ESYS;
  if (pid == 0) {
    c.fd = fd;
    /* Other workers' sockets stay with the parent only, so each sees EOF when it should. */
    for (unsigned j = 0; j < R->ps->workers; j++)
      if (R->kids[j].fd >= 0)
        close(R->kids[j].fd);
    setpgid(0, 0);
    bg__procs_child(&c);
  }
  setpgid(pid, pid);
  k->pid = pid;
  k->fd = fd;
  k->tasks = 0;
  k->timed_out = 0;
  k->gen = R->ps->persist.gen;
  k->forker = gettid();
  k->spawn_ns = forked_ns;
  R->job->stats[w].started++;
  return BG_OK;
}

static int send_chunk(run *R, kid *k) {
  const bg_map_desc_t *d = R->d;
  bg__pcmd m = {.op = BG__PCMD_RUN, .b = k->b, .e = k->e, .prior = k->prior};
  /* The worker is idle and waits for this message: its counts are settled, and its slot may
   * be written. Its item from an earlier chunk (of an earlier map, for a persistent worker)
   * must not be mistaken for progress in this one should it die before starting. */
  k->ok_mark = R->sst[k - R->kids].ok;
  k->done_mark = R->sst[k - R->kids].ok + R->sst[k - R->kids].failed;
  atomic_store_explicit(&R->slots[k - R->kids].cur, SIZE_MAX, memory_order_relaxed);
  k->busy = 1;
  k->sent_ns = bg__now_ns();
  k->tasks += k->e - k->b;
  if (R->ps->persistent && bg__persist_sync(&R->ps->persist, k->fd, &k->gen) != 0)
    return -1;
  if (bg__sock_send(k->fd, &m, sizeof m) != 0)
    return -1;
  if (R->ps->copy && d->in &&
      bg__sock_send(k->fd, (const char *)d->in + k->b * d->in_size, (k->e - k->b) * d->in_size))
    return -1;
  return 0;
}

/* Every item not yet handed out fails the same way, without running: the workers cannot be
 * started, or the circuit breaker tripped. Called again when the map ends, for what dying
 * workers gave back in between. */
static void fail_rest(run *R, int state, int code) {
  int tripped = R->job->tripped;
  for (unsigned w = 0; w < R->ps->workers; w++) {
    kid *k = &R->kids[w];
    for (size_t i = k->rest_b; i < k->rest_e; i++)
      record_failure(R, w, i, state, code, 0, tripped);
    k->rest_b = k->rest_e = 0;
    bg__range r;
    while (bg__sched_next(R->job->sched, w, &r))
      for (size_t i = r.begin; i < r.end; i++)
        record_failure(R, w, i, state, code, 0, tripped);
  }
  for (; R->qlen > 0; R->qlen--, R->qhead++)
    for (size_t i = R->q[R->qhead].b; i < R->q[R->qhead].e; i++)
      record_failure(R, 0, i, state, code, R->q[R->qhead].attempts, tripped);
  R->halted = 1;
  R->rest_state = state;
  R->rest_code = code;
}

/* Stops the map: no more processes, and the items left fail with this cause (bg_map's doc
 * says when). Items running on live workers finish; what those give back fails at the end. */
static void trip(run *R, int state, int code) {
  if (R->job->tripped)
    return;
  R->job->tripped = 1;
  fail_rest(R, state, code);
}

/* 1 if the file behind the map's items or results shrank: from now on every worker that
 * touches them dies of SIGBUS, and so would the caller. */
static int files_shrunk(const run *R) {
  const bg_map_desc_t *d = R->d;
  return (d->in && bg__shared_shrunk(d->in, d->n * d->in_size)) ||
         (d->out && bg__shared_shrunk(d->out, d->n * d->out_size));
}

/* The circuit breaker, told of each death of a ready worker process (state and code, as its
 * item would be reported) and whether it finished an item successfully first. A storm is what
 * it stops: every fresh process dying the same way, nothing getting done. So a success, a
 * timeout (the parent's own kill, at most one per timeout_ms) or another cause starts the
 * count again. A shrunk file trips it at once: nothing that touches the file can succeed. */
static void breaker_note(run *R, int state, int code, int succeeded) {
  /* A halted map starts nothing more; under BG_MAP_HALT its items left stay pending. */
  if (R->halted)
    return;
  if (!R->job->shrunk && files_shrunk(R)) {
    R->job->shrunk = 1;
    trip(R, BG_ITEM_CRASHED, SIGBUS);
    return;
  }
  if (succeeded || state == BG_ITEM_TIMEOUT) {
    R->streak = 0;
    return;
  }
  if (R->streak == 0 || state != R->streak_state || code != R->streak_code) {
    R->streak = 0;
    R->streak_state = state;
    R->streak_code = code;
  }
  R->streak++;
  if (R->d->breaker && R->streak >= R->d->breaker)
    trip(R, state, code);
}

/* One more process of worker w died before being ready (or could not be forked). After
 * START_FAILURES_MAX in a row the worker is given up for this map: what it holds goes to the
 * others (under the static schedule, the rest of its own block too, which nobody else would
 * take); when every worker is given up, the remaining items fail with this cause. */
static void start_failed(run *R, unsigned w, int state, int code) {
  kid *k = &R->kids[w];
  if (++k->start_failures < START_FAILURES_MAX)
    return;
  k->gave_up = 1;
  if (k->rest_b < k->rest_e)
    requeue(R, w, k->rest_b, k->rest_e, 0);
  k->rest_b = k->rest_e = 0;
  bg__range r;
  while (R->job->sched->kind == BG_SCHED_STATIC && bg__sched_next(R->job->sched, w, &r))
    requeue(R, w, r.begin, r.end, 0);
  for (unsigned j = 0; j < R->ps->workers; j++)
    if (!R->kids[j].gave_up)
      return;
  fail_rest(R, state, code);
}

/* The time worker w has spent on its current chunk: from when it was sent or, for a process
 * still starting then, from when it was ready. */
static uint64_t chunk_ns(const run *R, unsigned w) {
  const kid *k = &R->kids[w];
  uint64_t ready = atomic_load_explicit(&R->slots[w].ready_ns, memory_order_acquire);
  uint64_t from = ready > k->sent_ns ? ready : k->sent_ns, now = bg__now_ns();
  return now > from ? now - from : 0;
}

/* A traced map: worker w's chunk as spans ending now, preceded the first time by its process's
 * start-up from fork to ready. Items [b, mid) ran and count as a chunk; [mid, e) died with the
 * process (none when mid == e), from when the item that killed it started if the slot knows
 * (a timeout keeps its start), else as a mark at the moment of death. */
static void trace_chunk(run *R, unsigned w, size_t b, size_t mid, size_t e) {
  kid *k = &R->kids[w];
  bg__pslot *s = &R->slots[w];
  uint64_t ready = atomic_load_explicit(&s->ready_ns, memory_order_acquire);
  uint64_t now = bg__now_ns();
  if (k->spawn_ns && ready >= k->spawn_ns)
    bg__trace_add(R->job->trace, BG_SPAN_STARTUP, w, 0, 0, k->spawn_ns, ready);
  k->spawn_ns = 0;
  uint64_t from = ready > k->sent_ns ? ready : k->sent_ns;
  from = from < now ? from : now;
  uint64_t split = now;
  if (mid < e && limit_ns(R)) {
    uint64_t t0 = atomic_load_explicit(&s->t0_ns, memory_order_relaxed);
    split = t0 > from && t0 < now ? t0 : now;
  }
  if (mid > b)
    bg__trace_add(R->job->trace, BG_SPAN_CHUNK, w, b, mid, from, split);
  if (mid < e)
    bg__trace_add(R->job->trace, BG_SPAN_DIED, w, mid, e, mid > b ? split : from, now);
}

/* The first process of slot w: its time from the map's start to being ready. */
static void note_startup(run *R, unsigned w) {
  uint64_t t = atomic_load_explicit(&R->slots[w].ready_ns, memory_order_acquire);
  bg__wstat *st = &R->job->stats[w];
  if (t && st->startup_ns == 0 && t > R->job->t0_ns)
    st->startup_ns = t - R->job->t0_ns;
}

/* Where a reaped shm worker stopped in its chunk, from its own counts. It records an item's
 * outcome before its slot moves on to the next, so a worker killed in between (by the
 * timeout's SIGKILL, sent just as a slow item finished, or by Ctrl-C) has counted an item its
 * slot still names. The counts are what the report adds up, so they decide: the items before
 * the returned position are done, and the slot's running flag holds only for that position.
 * Otherwise the item would be run, and counted, a second time. */
static size_t shm_settled(const run *R, unsigned w, size_t cur, int *running) {
  const kid *k = &R->kids[w];
  size_t done = R->sst[w].ok + R->sst[w].failed - k->done_mark;
  size_t at = done < k->e - k->b ? k->b + done : k->e;
  if (at != cur)
    *running = 0;
  return at;
}

/* What a dead worker was running: keep what it finished, blame the item it was running (or run
 * it again under retries) unless @blame is 0, and queue the rest of its chunk to be run again. */
static void give_back(run *R, unsigned w, int state, int code, int blame) {
  kid *k = &R->kids[w];
  bg__pslot *s = &R->slots[w];
  size_t cur = atomic_load_explicit(&s->cur, memory_order_acquire);
  int running = atomic_load_explicit(&s->running, memory_order_acquire);
  if (cur < k->b || cur > k->e)
    cur = k->b, running = 0;
  if (!R->ps->copy)
    cur = shm_settled(R, w, cur, &running);
  running = running && blame;
  /* Drawn as what became of it: the items kept (shm) ran as a chunk; the rest died with the
   * process and are run again elsewhere (copy: all of them, their results went down too). */
  if (R->job->trace)
    trace_chunk(R, w, k->b, R->ps->copy ? k->b : cur, k->e);
  R->job->stats[w].busy_ns += chunk_ns(R, w);
  if (R->ps->copy)
    requeue(R, w, k->b, cur, k->prior); /* they ran, but their results went down with it */
  else if (cur > k->b)
    deliver_shm(R, k->b, cur);
  size_t from = cur;
  if (running) {
    uint32_t attempts = k->prior + 1;
    if (attempts <= (state == BG_ITEM_TIMEOUT ? R->job->retries_timeout : R->job->retries_crash)) {
      requeue(R, w, cur, cur + 1, attempts); /* the worker that reruns it counts the retry */
    } else {
      fail_item(R, w, cur, state, code, attempts);
    }
    from = cur + 1;
  }
  /* What it had not reached yet (all of it, if it died before being ready) goes back whole. */
  requeue(R, w, from, k->e, running ? 0 : k->prior);
}

/* A worker is gone: say why, hand back what it held, and tell the start-failure limit (not
 * ready yet) or the circuit breaker (ready). */
static void on_death(run *R, unsigned w) {
  kid *k = &R->kids[w];
  int timed_out = k->timed_out, busy = k->busy;
  int ready = atomic_load(&R->slots[w].ready_ns) != 0;
  note_startup(R, w);
  int status = reap(k);
  int state = BG_ITEM_EXITED, code = 0;
  if (timed_out) {
    state = BG_ITEM_TIMEOUT;
    code = (int)k->limit_ms;
  } else if (WIFSIGNALED(status)) {
    state = BG_ITEM_CRASHED;
    code = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
  }
  /* The shm worker counted its successes in the arena; it is reaped, so they are settled. A
   * copy worker's went down with it: they will count when the items are run again. */
  int succeeded = busy && !R->ps->copy && R->sst[w].ok > k->ok_mark;
  /* A worker ended by the signal that is stopping the map did not fail its item: a job
   * scheduler (scancel, a time limit) or systemd signals every process of the job, the
   * workers too, and the parent's own signal is already pending when it sees the death. The
   * item stays pending, to be run by a resumed map, instead of being recorded as crashed. */
  int stopping =
      state == BG_ITEM_CRASHED && (code == SIGINT || code == SIGTERM) && bg__interrupted(&R->guard);
  if (busy)
    give_back(R, w, state, code, !stopping);
  if (ready) {
    k->start_failures = 0;
    breaker_note(R, state, code, succeeded);
  } else {
    start_failed(R, w, state, code);
  }
}

/* Reads a copy worker's outcomes and results for items [r->b, r->end). */
static int recv_copy(run *R, unsigned w, const bg__preply *r) {
  const bg_map_desc_t *d = R->d;
  kid *k = &R->kids[w];
  size_t n = (size_t)(r->end - r->b);
  bg__poutcome *oc = malloc((n ? n : 1) * sizeof *oc);
  int rc = -1;
  if (!oc || bg__sock_recv(k->fd, oc, n * sizeof *oc) != 0)
    goto out;
  if (d->out && bg__sock_recv(k->fd, (char *)d->out + r->b * d->out_size, n * d->out_size) != 0)
    goto out;
  for (size_t j = 0; j < n; j++)
    bg__job_record(R->job, &R->job->stats[w], r->b + j, oc[j].code, oc[j].attempts);
  if (R->job->journal)
    bg__journal_settled(R->job->journal, (size_t)r->b, (size_t)r->end);
  if (R->job->progress)
    bg__progress_add(R->job->progress, n);
  rc = 0;
out:
  free(oc);
  return rc;
}

/* Reads one reply. Return: 0, or -1 when the worker is gone. */
static int on_reply(run *R, unsigned w) {
  kid *k = &R->kids[w];
  bg__preply r;
  if (bg__sock_recv(k->fd, &r, sizeof r) != 0)
    return -1;
  if (r.b != k->b || r.end < r.b || r.end > k->e)
    return -1;
  if (R->ps->copy) {
    if (recv_copy(R, w, &r) != 0)
      return -1;
  } else {
    deliver_shm(R, r.b, r.end);
  }
  uint64_t ns = chunk_ns(R, w);
  R->job->stats[w].busy_ns += ns;
  pct_sample(R, ns, (size_t)(r.end - r.b));
  if (r.end > r.b) {
    double per = (double)ns / (double)(r.end - r.b);
    R->item_ns = R->item_ns > 0 ? 0.75 * R->item_ns + 0.25 * per : per;
  }
  note_startup(R, w);
  if (R->job->trace)
    trace_chunk(R, w, (size_t)r.b, (size_t)r.end, (size_t)r.end);
  k->busy = 0;
  if (bg__job_halt_due(R->job, r.nfailed))
    R->halted = 1;
  if (r.end - r.b > r.nfailed)
    R->streak = 0; /* something got done: whatever killed workers before is not a storm */
  return 0;
}

/* Waits up to @ms for a worker told to quit to exit, without reaping it. EOF on its socket says
 * it has run its exit callback and is exiting; but a process its task forked without exec
 * holds the socket too, and then only the worker's exit itself tells, which waitid(WNOWAIT)
 * sees without reaping. So the socket is polled in growing slices, with a look between. */
static void await_exit(kid *k, int ms) {
  uint64_t end = bg__now_ns() + (uint64_t)ms * 1000000u;
  int slice = 1;
  for (;;) {
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno != EINTR)
      return;
    uint64_t now = bg__now_ns();
    if (si.si_pid == k->pid || now >= end)
      return;
    uint64_t left_ms = (end - now) / 1000000u + 1;
    int t = left_ms < (uint64_t)slice ? (int)left_ms : slice;
    struct pollfd p = {.fd = k->fd, .events = POLLIN};
    char c;
    if (poll(&p, 1, t) == 1) {
      ssize_t got = recv(k->fd, &c, 1, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
        return; /* EOF, or a socket that can only fail now: reap() settles it */
    }
    slice = slice < 50 ? 2 * slice : 50;
  }
}

/* Tells an idle worker to finish and waits for it to exit (its exit callback may take up to
 * QUIT_GRACE_MS), then reaps it, which kills its process group first: a process its tasks
 * left running in the background goes with it. The worker is not reaped before that kill, so
 * its pid, the group's id, cannot have been given to an unrelated process in between. */
static void retire(kid *k) {
  bg__pcmd m = {.op = BG__PCMD_QUIT};
  if (bg__sock_send(k->fd, &m, sizeof m) == 0)
    await_exit(k, QUIT_GRACE_MS);
  reap(k);
}

/* Gives every idle worker its next chunk, starting or replacing processes as needed. On
 * return every worker is busy, given up, or has found no work (or the map is halted): the map
 * loop ends as soon as no worker is busy, so a worker left idle with work still queued would
 * end the map with those items neither run nor failed. That is why a worker whose process
 * could not be started, or died before its chunk could be sent (an init callback that fails
 * at once, on a loaded machine, often exits before the parent gets to send), is tried again
 * here at once rather than at the next pass: its chunk went back to the queue, and the other
 * workers may already have been passed over. This ends: a try either sends the chunk or
 * fails to start a process, and after START_FAILURES_MAX of those in a row start_failed()
 * gives the worker up (a ready process dies before the send only when something kills it). */
static void feed(run *R) {
  const bg__life *l = R->ps->life;
  for (unsigned w = 0; w < R->ps->workers && !R->halted; w++) {
    kid *k = &R->kids[w];
    while (!k->busy && !k->gave_up && !R->halted) {
      if (k->pid && l && l->max_tasks && k->tasks >= l->max_tasks)
        retire(k);
      if (!next_range(R, w, k))
        break;
      if (!k->pid && spawn(R, w) != 0) {
        requeue(R, w, k->b, k->e, k->prior);
        start_failed(R, w, BG_ITEM_EXITED, -1);
        continue;
      }
      if (send_chunk(R, k) != 0)
        on_death(R, w);
    }
  }
}

/* Kills the workers that have run past the timeout; returns the ms until the next deadline. */
static int watch_timeouts(run *R) {
  uint64_t limit = limit_ns(R), now = bg__now_ns();
  int wait_ms = POLL_MAX_MS;
  if (!limit)
    return wait_ms;
  for (unsigned w = 0; w < R->ps->workers; w++) {
    kid *k = &R->kids[w];
    bg__pslot *s = &R->slots[w];
    if (!k->busy || k->timed_out || !atomic_load_explicit(&s->running, memory_order_acquire))
      continue;
    uint64_t t0 = atomic_load_explicit(&s->t0_ns, memory_order_relaxed);
    uint64_t left = bg__time_left(now, t0, limit);
    if (left == 0) {
      k->timed_out = 1;
      k->limit_ms = (uint32_t)(limit / 1000000u);
      kill(-k->pid, SIGKILL);
      kill(k->pid, SIGKILL);
      continue;
    }
    left = left / 1000000u + 1;
    wait_ms = left < (uint64_t)wait_ms ? (int)left : wait_ms;
  }
  return wait_ms;
}

/* Waits for replies and deaths, handling each. */
static void wait_events(run *R, int wait_ms) {
  unsigned W = R->ps->workers, n = 0, *who = R->who;
  struct pollfd *pf = R->pf;
  for (unsigned w = 0; w < W; w++) {
    if (!R->kids[w].busy)
      continue;
    pf[n] = (struct pollfd){.fd = R->kids[w].fd, .events = POLLIN};
    who[n++] = w;
  }
  if (poll(pf, n, wait_ms) <= 0)
    return; /* a timeout, or EINTR from Ctrl-C: the loop looks at both */
  for (unsigned j = 0; j < n; j++) {
    if (!pf[j].revents)
      continue;
    if (!(pf[j].revents & POLLIN) || on_reply(R, who[j]) != 0)
      on_death(R, who[j]);
  }
}

static int any_busy(const run *R) {
  for (unsigned w = 0; w < R->ps->workers; w++)
    if (R->kids[w].busy)
      return 1;
  return 0;
}

/* The workers' own counts (shm transport) join those the parent kept; start-up is the first
 * process's time from the map's start to being ready. */
static void merge_stats(run *R) {
  for (unsigned w = 0; w < R->ps->workers; w++) {
    bg__wstat *st = &R->job->stats[w];
    const bg__wstat *c = &R->sst[w];
    st->ok += c->ok;
    st->failed += c->failed;
    st->retries += c->retries;
    if (c->first_failed < st->first_failed) {
      st->first_failed = c->first_failed;
      st->first_code = c->first_code;
      st->first_state = c->first_state;
    }
  }
}

/* Ctrl-C: every worker is killed at once. What a shm worker finished of its chunk is kept. */
static void stop_all(run *R) {
  for (unsigned w = 0; w < R->ps->workers; w++) {
    kid *k = &R->kids[w];
    if (!k->pid)
      continue;
    int busy = k->busy, running = 0;
    reap(k);
    if (busy && !R->ps->copy) {
      size_t cur = shm_settled(R, w, k->b, &running);
      if (cur > k->b)
        deliver_shm(R, k->b, cur);
      if (cur > k->b && R->job->trace)
        trace_chunk(R, w, k->b, cur, cur);
    }
  }
}

/* A persistent worker that died between maps is reaped before the map, so that its death is
 * not blamed on the chunk it would be sent. One forked by another thread is retired: a
 * worker's parent-death signal follows the thread that forked it, not the process, and that
 * thread may end while this map runs. The map's own thread, inside bg_map, cannot. */
static void check_kids(run *R) {
  pid_t self = gettid();
  for (unsigned w = 0; w < R->ps->workers; w++) {
    kid *k = &R->kids[w];
    if (!k->pid)
      continue;
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == k->pid)
      reap(k);
    else if (k->forker != self)
      retire(k);
  }
}

/* Forgets what the last map left in each worker's entry but the process itself. */
static void kids_begin(run *R) {
  for (unsigned w = 0; w < R->ps->workers; w++) {
    kid *k = &R->kids[w];
    *k = (kid){.pid = k->pid, .fd = k->fd, .tasks = k->tasks, .gen = k->gen, .forker = k->forker};
  }
}

static void procs_map(void *state, bg__job *job) {
  pstate *ps = state;
  run R = {.ps = ps, .job = job, .d = job->d, .kids = ps->kids, .pf = ps->pf, .who = ps->who};
  R.pieces = job->journal != NULL || (job->halt_on_error && job->halt_after > 1);
  kids_begin(&R);
  /* A file already shrunk before the map would kill every worker that touches it (and the
   * parent, copying it into a persistent arena). */
  int shrunk = files_shrunk(&R);
  job->rc = ps->persistent ? persist_arena(&R, !shrunk) : arena_map(&R);
  if (job->rc != 0)
    return;
  if (shrunk) {
    job->shrunk = 1;
    trip(&R, BG_ITEM_CRASHED, SIGBUS);
  }
  if (ps->persistent)
    check_kids(&R);
  bg__interrupt_begin(&R.guard);
  int now = (R.d->flags & BG_MAP_HALT_NOW) != 0, stopped = 0;
  for (;;) {
    if (bg__interrupted(&R.guard)) {
      job->interrupted = 1;
      break;
    }
    if (R.halted && now) {
      stopped = 1; /* --halt now: what runs stops too, and stays pending */
      break;
    }
    feed(&R);
    if (!any_busy(&R))
      break;
    wait_events(&R, watch_timeouts(&R));
  }
  if (job->interrupted || stopped) {
    /* Ctrl-C ends a persistent pool's workers too (and, below, its shared memory): the caller
     * is stopping, and a later map starts afresh. So does a halt that stops what runs. */
    stop_all(&R);
  } else {
    for (unsigned w = 0; w < ps->workers && !ps->persistent; w++)
      if (R.kids[w].pid)
        retire(&R.kids[w]);
    /* What workers dying after fail_rest gave back fails the same way. */
    if (R.rest_state)
      fail_rest(&R, R.rest_state, R.rest_code);
  }
  /* A file shrunk after the last death (or with no death at all) is as lost to the caller. */
  if (!job->shrunk && files_shrunk(&R))
    job->shrunk = 1;
  merge_stats(&R);
  bg__interrupt_end(&R.guard);
  if (!ps->persistent)
    munmap(R.arena, R.arena_len);
  else if (job->interrupted || stopped)
    bg__persist_fini(&ps->persist);
  free(R.q);
}

static int procs_probe(void) {
  return BG_OK;
}

static void procs_fini(void *state) {
  pstate *ps = state;
  const bg_allocator_t *a = &ps->alloc;
  for (unsigned w = 0; ps->kids && w < ps->workers; w++)
    if (ps->kids[w].pid)
      retire(&ps->kids[w]);
  if (ps->persistent)
    bg__persist_fini(&ps->persist);
  a->free(ps->who, a->ud);
  a->free(ps->pf, a->ud);
  a->free(ps->kids, a->ud);
  a->free(ps, a->ud);
}

static int init_common(const bg__backend_cfg *cfg, void **state, int copy, int persistent) {
  const bg_allocator_t *a = cfg->alloc;
  unsigned W = cfg->workers;
  pstate *ps = a->alloc(sizeof *ps, a->ud);
  if (!ps)
    return BG_ENOMEM;
  *ps = (pstate){.workers = W,
                 .copy = copy,
                 .persistent = persistent,
                 .life = cfg->life,
                 .persist = {.fd = -1}};
  ps->alloc = *a;
  ps->kids = a->alloc(W * sizeof *ps->kids, a->ud);
  ps->pf = a->alloc(W * sizeof *ps->pf, a->ud);
  ps->who = a->alloc(W * sizeof *ps->who, a->ud);
  if (!ps->kids || !ps->pf || !ps->who) {
    procs_fini(ps);
    return BG_ENOMEM;
  }
  for (unsigned w = 0; w < W; w++)
    ps->kids[w] = (kid){.fd = -1};
  *state = ps;
  return BG_OK;
}

static int procs_init(const bg__backend_cfg *cfg, void **state) {
  return init_common(cfg, state, 0, 0);
}

static int procs_copy_init(const bg__backend_cfg *cfg, void **state) {
  return init_common(cfg, state, 1, 0);
}

static int procs_persistent_init(const bg__backend_cfg *cfg, void **state) {
  return init_common(cfg, state, 0, 1);
}

const bg__backend_ops bg__backend_procs = {
    .abi = BG_BACKEND_ABI,
    .name = "procs",
    .priority = 5,
    .isolated = 1,
    .lifecycle = 1,
    .probe = procs_probe,
    .init = procs_init,
    .map = procs_map,
    .fini = procs_fini,
};

const bg__backend_ops bg__backend_procs_copy = {
    .abi = BG_BACKEND_ABI,
    .name = "procs-copy",
    .priority = 4,
    .isolated = 1,
    .lifecycle = 1,
    .probe = procs_probe,
    .init = procs_copy_init,
    .map = procs_map,
    .fini = procs_fini,
};

/* Below procs: "auto" never picks a backend whose tasks cannot read the caller's memory. */
const bg__backend_ops bg__backend_procs_persistent = {
    .abi = BG_BACKEND_ABI,
    .name = "procs-persistent",
    .priority = 3,
    .isolated = 1,
    .persistent = 1,
    .lifecycle = 1,
    .probe = procs_probe,
    .init = procs_persistent_init,
    .map = procs_map,
    .fini = procs_fini,
};
