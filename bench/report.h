/* SPDX-License-Identifier: MIT */
/* Benchmark rows and their formats: a table shaped like the lecture's output, CSV and JSON. */
#ifndef BRIGADE_BENCH_REPORT_H
#define BRIGADE_BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "stats.h"

typedef struct bench_row {
  const char *section;  /* "overhead", "prime-fixed", "prime-range" */
  const char *backend;  /* "seq", "threads", "openmp" */
  const char *schedule; /* "auto", "static", ... */
  size_t chunk;         /* 0: the schedule's default */
  unsigned workers;
  size_t n;           /* items per map */
  bench_summary wall; /* seconds */
  double ns_per_item; /* median wall / n */
  double overhead_ns; /* (workers * wall - seq wall) / n: time not spent on items */
  double speedup;     /* seq median / this median */
  double efficiency;  /* speedup / workers */
} bench_row;

typedef enum bench_format { BENCH_TABLE, BENCH_CSV, BENCH_JSON } bench_format;

/* Parses "table", "csv" or "json". Returns 0, or -1 for another name. */
int bench_format_parse(const char *s, bench_format *out);

/* Prints rows[0..n) in the format; notes are free text lines shown after a table. */
void bench_report(FILE *f, bench_format fmt, const bench_row *rows, size_t n,
                  const char *const *notes, size_t nnotes);

#endif
