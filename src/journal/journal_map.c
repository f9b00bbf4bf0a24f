/* SPDX-License-Identifier: MIT */
/* A journal's part in a map: before it, the recorded outcomes are replayed into the caller's
 * arrays and the items they settle are marked to be skipped; after it, the skipped items get
 * their recorded outcomes back and the report is taken from the whole job's statuses.
 *
 * Skipping goes through the task itself, not the scheduler: a trampoline returns at once for a
 * replayed item and calls the user's function for the others. Every backend then runs an
 * unchanged map of n items (their schedulers, transports and crash handling stay as they are),
 * and the cost is a bit test per item. A replayed item's result is left alone by every
 * transport: the threads write nothing, procs copies the caller's out (holding the replayed
 * results) into its arena before the map and back after. */
#include "internal/journal_map.h"

#include "brigade/error.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The trampoline's context. On procs-persistent the workers were forked before this map and
 * see only the ctx_size bytes copied to them, so the user's context and the skip bits travel
 * inside it (at the offsets); elsewhere they are read through the pointers. */
typedef struct skip_ctx {
  bg_task_fn fn;
  void *ctx;
  const uint64_t *bits;
  size_t ctx_off;  /* non-zero: the user's context is copied here */
  size_t bits_off; /* non-zero: the bits are copied here */
} skip_ctx;

static int skip_task(void *out, const void *in, size_t i, void *ctx) {
  const skip_ctx *s = ctx;
  const uint64_t *bits =
      s->bits_off ? (const uint64_t *)(const void *)((const char *)s + s->bits_off) : s->bits;
  if (bits[i >> 6] >> (i & 63) & 1)
    return 0;
  return s->fn(out, in, i, s->ctx_off ? (char *)s + s->ctx_off : s->ctx);
}

static size_t round_up(size_t x, size_t a) {
  return (x + a - 1) / a * a;
}

/* Makes the trampoline's context for @d (the user's fn and ctx still in it). */
static int make_skip(bg__jmap *m, bg_map_desc_t *d, int persistent) {
  size_t words = (d->n + 63) / 64;
  size_t ctx_off = persistent && d->ctx ? round_up(sizeof(skip_ctx), 64) : 0;
  size_t bits_off =
      persistent ? round_up((ctx_off ? ctx_off + d->ctx_size : sizeof(skip_ctx)), 64) : 0;
  size_t size = persistent ? bits_off + words * sizeof(uint64_t) : sizeof(skip_ctx);
  skip_ctx *s = aligned_alloc(64, round_up(size, 64));
  if (!s)
    return BG_ENOMEM;
  *s = (skip_ctx){
      .fn = d->fn, .ctx = d->ctx, .bits = m->skip, .ctx_off = ctx_off, .bits_off = bits_off};
  if (ctx_off)
    memcpy((char *)s + ctx_off, d->ctx, d->ctx_size);
  if (bits_off)
    memcpy((char *)s + bits_off, m->skip, words * sizeof(uint64_t));
  m->blob = s;
  d->fn = skip_task;
  d->ctx = s;
  d->ctx_size = persistent ? size : 0;
  return BG_OK;
}

static void release(bg__jmap *m) {
  if (m->own_run)
    free(m->run);
  free(m->rec);
  free(m->skip);
  free(m->blob);
  if (m->j) {
    pthread_mutex_lock(&m->j->lock);
    m->j->status = NULL;
    m->j->out = NULL;
    m->j->skip = NULL;
    m->j->busy = 0;
    pthread_mutex_unlock(&m->j->lock);
  }
  memset(m, 0, sizeof *m);
}

int bg__jmap_begin(bg__jmap *m, bg_map_desc_t *d, int persistent) {
  memset(m, 0, sizeof *m);
  bg_journal_t *j = d->journal;
  if (j->flags & BG_JOURNAL_INSPECT)
    return BG_EINVAL;
  if (j->h.n != d->n || j->h.in_size != (d->in ? d->in_size : 0) ||
      j->h.out_size != (d->out ? d->out_size : 0))
    return BG_EINVAL;
  /* One map at a time: two would interleave their replays and skip bits. */
  pthread_mutex_lock(&j->lock);
  int busy = j->busy;
  j->busy = 1;
  pthread_mutex_unlock(&j->lock);
  if (busy)
    return BG_EBUSY;
  m->j = j;
  size_t n = d->n, words = (n + 63) / 64;
  m->rec = calloc(n ? n : 1, sizeof *m->rec);
  m->skip = calloc(words ? words : 1, sizeof *m->skip);
  m->run = d->status;
  if (!m->run) {
    m->run = calloc(n ? n : 1, sizeof *m->run);
    m->own_run = 1;
  }
  int rc = m->rec && m->skip && m->run ? BG_OK : BG_ENOMEM;
  if (rc == 0 && (rc = bg__journal_replay(j, m->rec, d->out)) != 0)
    rc = rc == BG_ENOMEM ? rc : BG_ESYS;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int s = m->rec[i].state;
    if (s == BG_ITEM_OK || (s > BG_ITEM_OK && !(j->flags & BG_JOURNAL_RERUN_FAILED))) {
      m->skip[i >> 6] |= 1ull << (i & 63);
      m->n_skip++;
    }
  }
  if (rc == 0 && m->n_skip)
    rc = make_skip(m, d, persistent);
  if (rc == 0)
    rc = bg__journal_writer_start(j);
  if (rc != 0) {
    release(m);
    return rc;
  }
  d->status = m->run;
  pthread_mutex_lock(&j->lock);
  j->status = m->run;
  j->out = d->out;
  j->skip = m->skip;
  pthread_mutex_unlock(&j->lock);
  return BG_OK;
}

static int skipped(const bg__jmap *m, size_t i) {
  return m->skip[i >> 6] >> (i & 63) & 1;
}

/* Adds (@sign 1) or takes away (-1) one item's outcome in the report's counts. */
static void count(bg_map_report_t *r, int state, int sign) {
  size_t d = (size_t)(ptrdiff_t)sign;
  if (state == BG_ITEM_OK) {
    r->n_ok += d;
  } else if (state != BG_ITEM_PENDING) {
    r->n_failed += d;
    r->n_crashed += state == BG_ITEM_CRASHED || state == BG_ITEM_EXITED ? d : 0;
    r->n_exited += state == BG_ITEM_EXITED ? d : 0;
    r->n_timeout += state == BG_ITEM_TIMEOUT ? d : 0;
  }
}

static void first_failure(bg_map_report_t *r, size_t i, const bg_item_status_t *s) {
  r->first_failed = i;
  r->first_state = s->state;
  r->first_code = s->state == BG_ITEM_FAILED    ? s->code
                  : s->state == BG_ITEM_TIMEOUT ? BG_ETIMEDOUT
                                                : BG_ECRASH;
}

/* The backend counted each replayed item as the trampoline left it (ok where reached, not run
 * where a halt or Ctrl-C came first): each takes its recorded outcome instead. The counts of
 * the items that ran (the breaker's among them) stay the backend's own. */
static void adjust(const bg__jmap *m, size_t n, bg_map_report_t *r) {
  int lost_first = 0;
  for (size_t i = 0; i < n; i++) {
    if (!skipped(m, i))
      continue;
    const bg_item_status_t *rec = &m->rec[i];
    count(r, m->run[i].state, -1);
    count(r, rec->state, 1);
    lost_first |= i == r->first_failed && rec->state == BG_ITEM_OK;
    if (rec->state > BG_ITEM_OK && i < r->first_failed)
      first_failure(r, i, rec);
  }
  /* A worker killed while skipping an item made it the first failure: find the real one. */
  if (lost_first) {
    r->first_failed = SIZE_MAX, r->first_state = BG_ITEM_PENDING, r->first_code = 0;
    for (size_t i = 0; i < n && r->first_failed == SIZE_MAX; i++) {
      const bg_item_status_t *s = skipped(m, i) ? &m->rec[i] : &m->run[i];
      if (s->state > BG_ITEM_OK)
        first_failure(r, i, s);
    }
  }
  r->n_skipped = n - r->n_ok - r->n_failed;
}

int bg__jmap_end(bg__jmap *m, size_t n, bg_map_report_t *r) {
  bg__journal_writer_stop(m->j);
  /* The end of a map is a sync point of the interval policy too: its last records are what a
   * caller that just got a report counts on. */
  int rc = bg__journal_flush(m->j, m->j->sync == BG_JOURNAL_SYNC_INTERVAL);
  if (r) {
    adjust(m, n, r);
    r->n_replayed = m->n_skip;
  }
  for (size_t i = 0; i < n; i++)
    if (skipped(m, i))
      m->run[i] = m->rec[i];
  release(m);
  return rc;
}

void bg__jmap_abort(bg__jmap *m) {
  if (m->j) {
    bg__journal_writer_stop(m->j);
    bg__journal_flush(m->j, 0);
  }
  release(m);
}
