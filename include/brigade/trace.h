/* SPDX-License-Identifier: MIT */
/* A timeline of a map: when each worker started, which chunks it ran and when, and, on the
 * procs backends, when a worker process died. A map given a trace (desc.trace) appends one span
 * per event to it; the caller reads the spans after bg_map returns, for a picture such as
 * `brigade bench --trace` draws (the Chrome trace-event format). Recording costs two clock
 * reads and one atomic add per chunk, and nothing when desc.trace is NULL. Spans carry no map
 * id: a trace shared by maps running at once, or given to maps nested inside tasks (which run
 * inline as their pool's worker 0), mixes their spans; give each its own trace to tell them
 * apart. Under BG_MAP_HALT the chunk that stopped is drawn whole. */
#ifndef BRIGADE_TRACE_H
#define BRIGADE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_trace bg_trace_t;

typedef enum bg_span_kind {
  BG_SPAN_STARTUP = 0, /* from the map's start (procs: the fork) until the worker could work */
  BG_SPAN_CHUNK = 1,   /* items [begin, end) run by the worker */
  BG_SPAN_LOOP = 2,    /* openmp's own schedules: the worker's whole share, chunks unseen */
  BG_SPAN_DIED = 3,    /* procs: the part of a chunk lost when its worker process died (a crash,
                        * exit, timeout), from the item that died; what it finished before is a
                        * chunk span of its own */
} bg_span_kind_t;

/* One span. Times are CLOCK_MONOTONIC nanoseconds, comparable with bg_trace_now_ns(). */
typedef struct bg_span {
  uint64_t t0_ns, t1_ns;
  size_t begin, end; /* items; 0 and 0 for start-up and openmp's loop */
  uint32_t worker;   /* the pool's worker number */
  uint32_t kind;     /* bg_span_kind_t */
} bg_span_t;

/**
 * bg_trace_create - an empty trace that holds up to @max_spans spans.
 * @out: OUT: the trace, written only on success.
 *
 * Spans past @max_spans are counted (bg_trace_dropped), not kept. One trace may be given to
 * several maps, also at once: appending is thread-safe.
 * Return: 0, BG_EINVAL (NULL @out, @max_spans 0) or BG_ENOMEM.
 */
int bg_trace_create(size_t max_spans, bg_trace_t **out);

/** bg_trace_destroy - free @t (NULL is ignored). No map using it may be running. */
void bg_trace_destroy(bg_trace_t *t);

/** bg_trace_clear - forget every span, to record the next map alone. Not during a map. */
void bg_trace_clear(bg_trace_t *t);

/** bg_trace_count - the spans kept, at most max_spans. */
size_t bg_trace_count(const bg_trace_t *t);

/** bg_trace_dropped - the spans that did not fit. */
size_t bg_trace_dropped(const bg_trace_t *t);

/** bg_trace_spans - the kept spans, in the order they were appended (not sorted by time). */
const bg_span_t *bg_trace_spans(const bg_trace_t *t);

/** bg_trace_now_ns - the clock the spans use, to place a map's start and end among them. */
uint64_t bg_trace_now_ns(void);

/** bg_span_kind_name - "startup", "chunk", "loop", "died", or "?". */
const char *bg_span_kind_name(int kind);

#ifdef __cplusplus
}
#endif
#endif
