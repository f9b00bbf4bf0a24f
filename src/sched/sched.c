/* SPDX-License-Identifier: MIT */
/* Chunking policies. Each answers "next chunk for worker w":
 *  - static: contiguous blocks, one per worker; block-cyclic rounds when a chunk is given.
 *  - dynamic: fixed chunks from one shared counter (OpenMP's schedule(dynamic, c)).
 *  - guided: chunks of ceil(remaining / workers), never below the chunk, after Polychronopoulos
 *    and Kuck's guided self-scheduling (1987).
 *  - steal: each worker owns a contiguous range and eats it from the front; an idle worker
 *    takes the upper half of the largest remaining range, as in work-stealing runtimes
 *    (Blumofe and Leiserson 1999), with one short lock per range instead of a lock-free deque
 *    because a range split is one store under the victim's lock.
 *  - auto: a shared counter with per-worker chunk sizes adapted toward BG_SCHED_TARGET_NS of
 *    work, and capped at remaining / (2 * workers) so the tail shrinks as in guided. */
#include "internal/sched.h"
#include "internal/clock.h"

#include "brigade/error.h"

int bg__sched_slots_init(bg__sched_slot *slots, unsigned workers) {
  for (unsigned w = 0; w < workers; w++) {
    if (pthread_mutex_init(&slots[w].lock, NULL) != 0) {
      bg__sched_slots_fini(slots, w);
      return BG_ESYS;
    }
  }
  return BG_OK;
}

void bg__sched_slots_fini(bg__sched_slot *slots, unsigned workers) {
  for (unsigned w = 0; w < workers; w++)
    pthread_mutex_destroy(&slots[w].lock);
}

/* Block w of an even split of len items into parts pieces, without overflowing len * w. */
static void even_block(size_t len, unsigned parts, unsigned w, size_t *off, size_t *sz) {
  size_t q = len / parts, r = len % parts;
  *off = w * q + (w < r ? w : r);
  *sz = q + (w < r ? 1 : 0);
}

void bg__sched_init(bg__sched *s, bg_schedule_t kind, size_t begin, size_t end, unsigned workers,
                    size_t chunk, size_t chunk0, bg__sched_slot *slots) {
  s->kind = kind;
  s->begin = begin;
  s->end = end;
  s->workers = workers;
  s->chunk = chunk;
  s->adaptive = kind == BG_SCHED_AUTO || (kind == BG_SCHED_STEAL && chunk == 0);
  if (chunk0 == 0)
    chunk0 = 1;
  if (chunk0 > BG_SCHED_CHUNK_MAX)
    chunk0 = BG_SCHED_CHUNK_MAX;
  s->chunk0 = chunk0;
  s->slots = slots;
  atomic_init(&s->next, begin);
  atomic_init(&s->halt, 0);
  for (unsigned w = 0; w < workers; w++) {
    bg__sched_slot *sl = &slots[w];
    size_t off, sz;
    even_block(end - begin, workers, w, &off, &sz);
    atomic_init(&sl->begin, begin + off);
    atomic_init(&sl->end, begin + off + sz);
    sl->k = 0;
    sl->chunk = s->chunk0;
    sl->last_len = 0;
    sl->t_last = 0;
    sl->chunks = 0;
    sl->busy_ns = 0;
  }
}

/* Measures how long the worker's previous chunk took and returns the size of its next one:
 * the size that would have taken BG_SCHED_TARGET_NS, moved at most a factor of two per step
 * so one preempted chunk cannot swing it wildly. */
static size_t adapt(bg__sched_slot *sl) {
  uint64_t now = bg__now_ns();
  if (sl->last_len) {
    uint64_t dt = now - sl->t_last;
    sl->busy_ns += dt;
    size_t c = sl->chunk;
    size_t ideal = dt ? (size_t)((double)sl->last_len * BG_SCHED_TARGET_NS / (double)dt) : 2 * c;
    size_t lo = c / 2 ? c / 2 : 1, hi = c * 2;
    ideal = ideal < lo ? lo : ideal > hi ? hi : ideal;
    sl->chunk = ideal > BG_SCHED_CHUNK_MAX ? BG_SCHED_CHUNK_MAX : ideal;
  }
  sl->t_last = now;
  return sl->chunk;
}

static bool take(bg__sched_slot *sl, bg__range *r, size_t b, size_t e) {
  r->begin = b;
  r->end = e;
  sl->last_len = e - b;
  sl->chunks++;
  return true;
}

static bool none(bg__sched_slot *sl) {
  sl->last_len = 0;
  return false;
}

static bool next_static(bg__sched *s, bg__sched_slot *sl, unsigned w, bg__range *r) {
  size_t len = s->end - s->begin;
  if (s->chunk == 0) {
    if (sl->k++ != 0)
      return none(sl);
    size_t off, sz;
    even_block(len, s->workers, w, &off, &sz);
    return sz ? take(sl, r, s->begin + off, s->begin + off + sz) : none(sl);
  }
  size_t nblocks = len / s->chunk + (len % s->chunk != 0);
  size_t blk = w + sl->k * s->workers;
  if (blk >= nblocks || blk < sl->k) /* blk < k: the multiplication wrapped */
    return none(sl);
  sl->k++;
  size_t b = s->begin + blk * s->chunk;
  size_t e = len - blk * s->chunk < s->chunk ? s->end : b + s->chunk;
  return take(sl, r, b, e);
}

static bool next_counter(bg__sched *s, bg__sched_slot *sl, size_t c, bg__range *r) {
  size_t b = bg_atomic_add_relaxed(&s->next, c);
  if (b >= s->end)
    return none(sl);
  return take(sl, r, b, s->end - b < c ? s->end : b + c);
}

static bool next_guided(bg__sched *s, bg__sched_slot *sl, bg__range *r) {
  size_t minc = s->chunk ? s->chunk : 1;
  size_t cur = bg_atomic_load_relaxed(&s->next);
  for (;;) {
    if (cur >= s->end)
      return none(sl);
    size_t rem = s->end - cur;
    size_t c = rem / s->workers + (rem % s->workers != 0);
    if (c < minc)
      c = minc;
    if (c > rem)
      c = rem;
    if (bg_atomic_cas_weak_relaxed(&s->next, &cur, cur + c)) {
      sl->chunk = c;
      return take(sl, r, cur, cur + c);
    }
  }
}

static bool next_auto(bg__sched *s, bg__sched_slot *sl, bg__range *r) {
  size_t c = adapt(sl);
  size_t done = bg_atomic_load_relaxed(&s->next);
  size_t rem = done < s->end ? s->end - done : 0;
  size_t cap = rem / (2 * (size_t)s->workers);
  if (c > cap)
    c = cap ? cap : 1;
  if (s->chunk && c < s->chunk)
    c = s->chunk;
  return next_counter(s, sl, c, r);
}

/* Takes up to c items from the front of the worker's own range. */
static bool take_own(bg__sched_slot *sl, size_t c, bg__range *r) {
  pthread_mutex_lock(&sl->lock);
  size_t b = bg_atomic_load_relaxed(&sl->begin), e = bg_atomic_load_relaxed(&sl->end);
  bool got = b < e;
  if (got) {
    size_t stop = e - b < c ? e : b + c;
    bg_atomic_store_relaxed(&sl->begin, stop);
    take(sl, r, b, stop);
  }
  pthread_mutex_unlock(&sl->lock);
  return got;
}

/* Splits the largest remaining range and moves its upper half to worker w. */
static bool steal_half(bg__sched *s, unsigned w) {
  for (;;) {
    unsigned victim = w;
    size_t best = 0;
    for (unsigned v = 0; v < s->workers; v++) {
      /* Relaxed peeks are only a guess; the split below re-reads under the victim's lock. */
      size_t b = bg_atomic_load_relaxed(&s->slots[v].begin);
      size_t e = bg_atomic_load_relaxed(&s->slots[v].end);
      if (v != w && e > b && e - b > best) {
        best = e - b;
        victim = v;
      }
    }
    if (victim == w)
      return false;
    bg__sched_slot *vs = &s->slots[victim];
    pthread_mutex_lock(&vs->lock);
    size_t b = bg_atomic_load_relaxed(&vs->begin), e = bg_atomic_load_relaxed(&vs->end);
    size_t mid = b + (e - b) / 2;
    bool got = b < e;
    if (got)
      bg_atomic_store_relaxed(&vs->end, mid);
    pthread_mutex_unlock(&vs->lock);
    if (got) {
      bg__sched_slot *mine = &s->slots[w];
      pthread_mutex_lock(&mine->lock);
      bg_atomic_store_relaxed(&mine->begin, mid);
      bg_atomic_store_relaxed(&mine->end, e);
      pthread_mutex_unlock(&mine->lock);
      return true;
    }
  }
}

static bool next_steal(bg__sched *s, bg__sched_slot *sl, unsigned w, bg__range *r) {
  size_t c = s->adaptive ? adapt(sl) : s->chunk;
  while (!take_own(sl, c, r)) {
    if (!steal_half(s, w))
      return none(sl);
  }
  return true;
}

bool bg__sched_next(bg__sched *s, unsigned w, bg__range *r) {
  bg__sched_slot *sl = &s->slots[w];
  if (bg_atomic_load_relaxed(&s->halt)) {
    if (s->adaptive)
      adapt(sl);
    return none(sl);
  }
  switch (s->kind) {
  case BG_SCHED_STATIC:
    return next_static(s, sl, w, r);
  case BG_SCHED_DYNAMIC:
    return next_counter(s, sl, s->chunk ? s->chunk : 1, r);
  case BG_SCHED_GUIDED:
    return next_guided(s, sl, r);
  case BG_SCHED_STEAL:
    return next_steal(s, sl, w, r);
  case BG_SCHED_AUTO:
  default:
    return next_auto(s, sl, r);
  }
}
