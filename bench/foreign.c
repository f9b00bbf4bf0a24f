/* SPDX-License-Identifier: MIT */
/* The guarded wrapper around a plug-in's task. Its shared record lives in one anonymous
 * MAP_SHARED mapping made before any row forks, so the statuses written by a supervised child
 * or by a procs worker are read by the bench process after that process is gone. */
#define _GNU_SOURCE
#include "foreign.h"
#include "stats.h"

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* What one watched thread is doing: the item it runs (plus one; 0 when between items) and a
 * count of the items it started, so the watchdog can tell "still in item 7" from "in item 7
 * again". Written by that thread only, read by the supervisor in another process. */
typedef struct slot {
  _Atomic uint64_t item1;
  _Atomic uint64_t seq;
  char pad[48]; /* a cache line each: two threads' slots must not share one */
} slot;

/* The supervisor's last look at a slot: private to the process that watches. */
typedef struct seen {
  uint64_t item1, seq;
  double since;
} seen;

struct bench_foreign {
  bg_task_fn fn;
  size_t n, out_size, map_len;
  uint64_t gen; /* tells this record from an earlier row's in a thread's cached buffer */
  unsigned nslots;
  _Atomic unsigned claimed;
  bg_item_status_t *status; /* n, in the mapping */
  unsigned char *overflow;  /* n, in the mapping: 1 where the item wrote past its result */
  seen *seen;               /* nslots, the supervisor's own memory */
  _Alignas(64) slot slots[];
};

/* Bytes between a result and its guard page are checked against this value after each call. */
#define GUARD_BYTE 0xA5
#define GAP_MIN 16

/* Each thread's guarded result buffer: the result ends at least GAP_MIN bytes before a
 * PROT_NONE page, so a short overrun changes the gap (seen after the call) and a long one
 * faults at once (caught by the handler below), instead of corrupting whatever followed. A
 * plain thread-local: only its own thread and that thread's signal handler touch it. */
typedef struct tls_buf {
  const bench_foreign *owner;
  uint64_t gen, seq;
  slot *slot;
  unsigned char *map, *res, *gap, *guard;
  size_t map_len, page;
  _Atomic uint64_t cur_item1; /* read by the fault handler (lock-free, so signal-safe) */
} tls_buf;

static _Thread_local tls_buf tl;

int bench_foreign_create(bg_task_fn fn, size_t n, size_t out_size, unsigned threads,
                         bench_foreign **out) {
  unsigned nslots = threads + 2; /* the workers, the caller that may run items inline, spare */
  size_t head = sizeof(bench_foreign) + nslots * sizeof(slot);
  head = (head + 63) & ~(size_t)63;
  if (n > (SIZE_MAX - head) / (sizeof(bg_item_status_t) + 1))
    return BG_ENOMEM;
  size_t len = head + n * sizeof(bg_item_status_t) + n;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return BG_ENOMEM;
  bench_foreign *f = m;
  f->seen = calloc(nslots, sizeof *f->seen);
  if (!f->seen) {
    munmap(m, len);
    return BG_ENOMEM;
  }
  f->fn = fn;
  f->n = n;
  f->out_size = out_size;
  f->map_len = len;
  f->gen = (uint64_t)(bench_now() * 1e9) ^ ((uint64_t)getpid() << 40);
  f->nslots = nslots;
  atomic_init(&f->claimed, 0);
  f->status = (bg_item_status_t *)((unsigned char *)m + head);
  f->overflow = (unsigned char *)(f->status + n);
  *out = f;
  return 0;
}

void bench_foreign_destroy(bench_foreign *f) {
  if (!f)
    return;
  free(f->seen);
  munmap(f, f->map_len);
}

void bench_foreign_idle(bench_foreign *f) {
  atomic_store_explicit(&f->claimed, 0, memory_order_relaxed);
  for (unsigned s = 0; s < f->nslots; s++) {
    atomic_store_explicit(&f->slots[s].item1, 0, memory_order_relaxed);
    f->seen[s] = (seen){0};
  }
}

void bench_foreign_reset(bench_foreign *f) {
  memset(f->status, 0, f->n * sizeof *f->status);
  memset(f->overflow, 0, f->n);
}

bg_item_status_t *bench_foreign_status(bench_foreign *f) {
  return f->status;
}

/* The GAP_MIN bytes right after the result: a write past the result reaches them first. (The
 * alignment slack beyond them is not checked: only a write that skips them lands there.) */
static const unsigned char guard_pattern[GAP_MIN] = {
    GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE,
    GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE, GUARD_BYTE};

static void catch_overflow(void);

/* The two words after the result still hold the pattern. Fixed-size copies compile to plain
 * loads: this runs once per item, beside tasks of a few nanoseconds. */
static int gap_intact(void) {
  uint64_t a, b, p;
  memcpy(&a, tl.gap, 8);
  memcpy(&b, tl.gap + 8, 8);
  memcpy(&p, guard_pattern, 8);
  return a == p && b == p;
}

/* The result into the map's slot: the common sizes as fixed-size copies, for the same reason. */
static void copy_result(void *out, const void *res, size_t size) {
  if (size == 8)
    memcpy(out, res, 8);
  else if (size == 4)
    memcpy(out, res, 4);
  else
    memcpy(out, res, size);
}

/* Gives this thread its buffer and slot for f, once per record: the slow path, kept out of
 * line so the per-item path stays a few instructions. 0 when no buffer could be mapped: the task
 * then writes straight into the map's result, unguarded. */
__attribute__((noinline)) static int tls_setup(bench_foreign *f) {
  if (tl.map)
    munmap(tl.map, tl.map_len);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t body = (f->out_size + GAP_MIN + 15 + page - 1) / page * page;
  tl = (tls_buf){.owner = f, .gen = f->gen, .page = page};
  unsigned char *m =
      mmap(NULL, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return 0;
  if (mprotect(m + body, page, PROT_NONE) != 0) {
    munmap(m, body + page);
    return 0;
  }
  tl.map = m;
  tl.map_len = body + page;
  tl.guard = m + body;
  /* 16-byte aligned, as malloc's results are: a task may store vectors into its result. */
  tl.res = (unsigned char *)((uintptr_t)(tl.guard - GAP_MIN - f->out_size) & ~(uintptr_t)15);
  tl.gap = tl.res + f->out_size;
  memcpy(tl.gap, guard_pattern, GAP_MIN);
  unsigned s = atomic_fetch_add_explicit(&f->claimed, 1, memory_order_relaxed);
  tl.slot = s < f->nslots ? &f->slots[s] : NULL;
  /* Installed here, in the process that runs the task: a procs worker resets the handlers it
   * inherits, and the bench itself never runs the task. */
  catch_overflow();
  return 1;
}

static inline int tls_ready(bench_foreign *f) {
  if (tl.owner == f && tl.gen == f->gen)
    return tl.res != NULL;
  return tls_setup(f);
}

int bench_foreign_task(void *out, const void *in, size_t i, void *ctx) {
  bench_foreign *f = ctx;
  if (!tls_ready(f))
    return f->fn(out, in, i, NULL);
  slot *s = tl.slot;
  atomic_store_explicit(&tl.cur_item1, i + 1, memory_order_relaxed);
  if (s) {
    atomic_store_explicit(&s->item1, i + 1, memory_order_relaxed);
    /* Pairs with the acquire load in bench_foreign_stuck: a changed count there means the
     * item1 beside it is at least this new. Only this thread writes the count, so a plain
     * store of its own copy does (a locked add would cost more than many tasks). */
    atomic_store_explicit(&s->seq, ++tl.seq, memory_order_release);
  }
  int rc = f->fn(tl.res, in, i, NULL);
  if (s)
    atomic_store_explicit(&s->item1, 0, memory_order_relaxed);
  atomic_store_explicit(&tl.cur_item1, 0, memory_order_relaxed);
  if (!gap_intact()) {
    /* Laid again only when damaged: an intact gap still holds the pattern. */
    memcpy(tl.gap, guard_pattern, GAP_MIN);
    f->overflow[i] = 1;
    return BENCH_EOVERFLOW;
  }
  copy_result(out, tl.res, f->out_size);
  return rc;
}

/* A fault inside this thread's guard page is an overrun of item cur_item1 - 1: it is marked
 * before the process dies of the signal as it would have. Only async-signal-safe steps: a
 * store into shared memory, sigaction and raise. The signal raised again stays blocked until
 * the handler returns and then kills the process with the default action; that also covers a
 * signal the task sent itself (raise, kill), which returning alone would have swallowed. */
static void on_fault(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  unsigned char *a = si->si_addr;
  uint64_t item1 = atomic_load_explicit(&tl.cur_item1, memory_order_relaxed);
  if (si->si_code > 0 && tl.guard && item1 > 0 && a >= tl.guard && a < tl.guard + tl.page) {
    bench_foreign *f = (bench_foreign *)tl.owner;
    f->overflow[item1 - 1] = 1;
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, NULL);
  raise(sig);
}

static void catch_overflow(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
}

size_t bench_foreign_items(const bench_foreign *f) {
  return f->n;
}

size_t bench_foreign_next_pending(const bench_foreign *f, size_t from) {
  while (from < f->n && f->status[from].state != BG_ITEM_PENDING)
    from++;
  return from;
}

void bench_foreign_trip(bench_foreign *f, size_t from, int state, int code) {
  for (size_t i = from; i < f->n; i++)
    if (f->status[i].state == BG_ITEM_PENDING)
      f->status[i] = (bg_item_status_t){state, code, 0};
}

void bench_foreign_run_pending(bench_foreign *f, size_t from) {
  unsigned char *out = malloc(f->out_size);
  if (!out)
    return;
  for (size_t i = from; i < f->n; i++) {
    if (f->status[i].state != BG_ITEM_PENDING)
      continue;
    int rc = bench_foreign_task(out, NULL, i, f);
    f->status[i] = (bg_item_status_t){rc ? BG_ITEM_FAILED : BG_ITEM_OK, rc, 1};
  }
  free(out);
}

int bench_foreign_stuck(bench_foreign *f, double now, double timeout, size_t *item) {
  for (unsigned k = 0; k < f->nslots; k++) {
    uint64_t seq = atomic_load_explicit(&f->slots[k].seq, memory_order_acquire);
    uint64_t it = atomic_load_explicit(&f->slots[k].item1, memory_order_relaxed);
    seen *s = &f->seen[k];
    if (it == 0 || seq != s->seq || it != s->item1) {
      *s = (seen){it, seq, now};
      continue;
    }
    if (timeout > 0 && now - s->since > timeout) {
      *item = (size_t)(it - 1);
      return 1;
    }
  }
  return 0;
}

int bench_foreign_in_flight(const bench_foreign *f, size_t *item) {
  for (unsigned k = 0; k < f->nslots; k++) {
    uint64_t it = atomic_load_explicit(&f->slots[k].item1, memory_order_relaxed);
    if (it != 0) {
      *item = (size_t)(it - 1);
      return 1;
    }
  }
  return 0;
}

void bench_foreign_mark(bench_foreign *f, size_t i, int state, int code) {
  if (i < f->n)
    f->status[i] = (bg_item_status_t){state, code, 1};
  /* The thread died inside the item: its slot must not read as still running it. */
  for (unsigned k = 0; k < f->nslots; k++)
    if (atomic_load_explicit(&f->slots[k].item1, memory_order_relaxed) == i + 1)
      atomic_store_explicit(&f->slots[k].item1, 0, memory_order_relaxed);
}

const char *bench_sigabbrev(int sig) {
  const char *name = sigabbrev_np(sig);
  return name ? name : "?";
}

/* Counts one item of a class, keeping the first one's index and code (items come in order). */
static void tally(size_t *count, size_t *first, int *first_code, size_t i, int code) {
  if ((*count)++ == 0) {
    *first = i;
    if (first_code)
      *first_code = code;
  }
}

void bench_foreign_count(const bench_foreign *f, bench_foreign_counts *c) {
  memset(c, 0, sizeof *c);
  c->first_failed = c->first_crashed = c->first_exited = c->first_timeout = c->first_overflow =
      SIZE_MAX;
  for (size_t i = 0; i < f->n; i++) {
    const bg_item_status_t *s = &f->status[i];
    if (f->overflow[i])
      tally(&c->overflow, &c->first_overflow, NULL, i, 0);
    else if (s->state != BG_ITEM_PENDING && s->state != BG_ITEM_OK && s->attempts == 0)
      c->not_run++;
    else if (s->state == BG_ITEM_OK)
      c->ok++;
    else if (s->state == BG_ITEM_FAILED)
      tally(&c->failed, &c->first_failed, &c->first_code, i, s->code);
    else if (s->state == BG_ITEM_CRASHED)
      tally(&c->crashed, &c->first_crashed, &c->crash_signal, i, s->code);
    else if (s->state == BG_ITEM_EXITED)
      tally(&c->exited, &c->first_exited, &c->exit_status, i, s->code);
    else if (s->state == BG_ITEM_TIMEOUT)
      tally(&c->timeout, &c->first_timeout, NULL, i, 0);
    else
      c->pending++;
  }
}

/* Appends printf-style text to buf at *len, never past cap. */
__attribute__((format(printf, 4, 5))) static void add(char *buf, size_t cap, size_t *len,
                                                      const char *fmt, ...) {
  if (*len >= cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (k > 0)
    *len += (size_t)k;
}

void bench_foreign_describe(const bench_foreign *f, const bench_foreign_counts *c, double timeout,
                            char *buf, size_t cap) {
  size_t len = 0, bad = f->n - c->ok;
  const char *sep = ":";
  add(buf, cap, &len, "%zu of %zu items failed", bad, f->n);
  if (c->failed) {
    add(buf, cap, &len, "%s %zu returned non-zero (the first, item %zu, returned %d)", sep,
        c->failed, c->first_failed, c->first_code);
    sep = ";";
  }
  if (c->crashed) {
    add(buf, cap, &len, "%s %zu crashed (the first, item %zu, with SIG%s)", sep, c->crashed,
        c->first_crashed, bench_sigabbrev(c->crash_signal));
    sep = ";";
  }
  if (c->exited) {
    add(buf, cap, &len, "%s %zu called exit() (the first, item %zu, with status %d)", sep,
        c->exited, c->first_exited, c->exit_status);
    sep = ";";
  }
  if (c->timeout) {
    add(buf, cap, &len, "%s %zu still running after --timeout %g s, killed (the first, item %zu)",
        sep, c->timeout, timeout, c->first_timeout);
    sep = ";";
  }
  if (c->overflow) {
    add(buf, cap, &len,
        "%s %zu wrote past their %zu-byte result (the first, item %zu: --out-size "
        "is too small?)",
        sep, c->overflow, f->out_size, c->first_overflow);
    sep = ";";
  }
  if (c->not_run) {
    add(buf, cap, &len,
        "%s %zu were not run: the same death kept killing fresh processes, so a circuit breaker "
        "stopped starting them",
        sep, c->not_run);
    sep = ";";
  }
  if (c->pending)
    add(buf, cap, &len, "%s %zu never ran", sep, c->pending);
}
