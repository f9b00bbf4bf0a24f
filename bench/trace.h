/* SPDX-License-Identifier: MIT */
/* `brigade bench --trace FILE.json`: every traced row's last timed run as a timeline in the
 * Chrome trace-event format (Perfetto, chrome://tracing): one process per row, one track per
 * worker, its start-up, chunks, waits between chunks and idle time to the map's end as spans,
 * every row starting at 0 so that rows line up for comparison. */
#ifndef BRIGADE_BENCH_TRACE_H
#define BRIGADE_BENCH_TRACE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "brigade.h"

/* Spans kept per row: a map of a million one-item chunks is drawn in part, and says so. */
#define BENCH_TRACE_ROW_SPANS 65536u

typedef struct bench_trace bench_trace;

/* An empty collection, or NULL when memory is short. */
bench_trace *bench_trace_new(void);
void bench_trace_free(bench_trace *t);

/* Adds one row: its name (workload case, backend, workers), @workers tracks, the map's start and
 * end (bg_trace_now_ns) and the spans @src recorded in between; @why, if not NULL, says why the
 * row has no spans (run elsewhere). Returns 0, or BG_ENOMEM. */
int bench_trace_add_row(bench_trace *t, const char *name, unsigned workers, uint64_t t0_ns,
                        uint64_t t1_ns, const bg_trace_t *src, const char *why);

/* Rows added so far. */
size_t bench_trace_rows(const bench_trace *t);

/* Writes the JSON to @f. Returns 0, or -1 on a write error. */
int bench_trace_write(const bench_trace *t, FILE *f);

#endif
