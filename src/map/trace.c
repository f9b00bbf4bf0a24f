/* SPDX-License-Identifier: MIT */
/* The span buffer behind desc.trace: a fixed array filled through one atomic counter, so any
 * number of workers append without a lock and the caller reads it once the map is over. */
#include "internal/trace.h"

#include "brigade/error.h"
#include "internal/atomic.h"
#include "internal/clock.h"

#include <stdlib.h>

struct bg_trace {
  size_t cap;
  _Atomic size_t next; /* A: slots handed out, kept or not */
  bg_span_t *spans;
};

int bg_trace_create(size_t max_spans, bg_trace_t **out) {
  if (!out || max_spans == 0 || max_spans > SIZE_MAX / sizeof(bg_span_t))
    return BG_EINVAL;
  bg_trace_t *t = malloc(sizeof *t);
  bg_span_t *s = malloc(max_spans * sizeof *s);
  if (!t || !s) {
    free(t);
    free(s);
    return BG_ENOMEM;
  }
  t->cap = max_spans;
  t->spans = s;
  atomic_init(&t->next, 0);
  *out = t;
  return BG_OK;
}

void bg_trace_destroy(bg_trace_t *t) {
  if (!t)
    return;
  free(t->spans);
  free(t);
}

void bg_trace_clear(bg_trace_t *t) {
  if (t)
    atomic_store(&t->next, 0);
}

size_t bg_trace_count(const bg_trace_t *t) {
  if (!t)
    return 0;
  size_t n = atomic_load(&((bg_trace_t *)t)->next);
  return n < t->cap ? n : t->cap;
}

size_t bg_trace_dropped(const bg_trace_t *t) {
  if (!t)
    return 0;
  size_t n = atomic_load(&((bg_trace_t *)t)->next);
  return n > t->cap ? n - t->cap : 0;
}

const bg_span_t *bg_trace_spans(const bg_trace_t *t) {
  return t ? t->spans : NULL;
}

uint64_t bg_trace_now_ns(void) {
  return bg__now_ns();
}

const char *bg_span_kind_name(int kind) {
  switch (kind) {
  case BG_SPAN_STARTUP:
    return "startup";
  case BG_SPAN_CHUNK:
    return "chunk";
  case BG_SPAN_LOOP:
    return "loop";
  case BG_SPAN_DIED:
    return "died";
  default:
    return "?";
  }
}

void bg__trace_add(bg_trace_t *t, int kind, unsigned w, size_t b, size_t e, uint64_t t0,
                   uint64_t t1) {
  size_t i = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
  if (i < t->cap)
    t->spans[i] = (bg_span_t){t0, t1, b, e, w, (uint32_t)kind};
}
