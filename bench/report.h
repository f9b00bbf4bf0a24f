/* SPDX-License-Identifier: MIT */
/* Report formats for a benchmark result: a table shaped like the lecture's output with the
 * explanations under each case, CSV, JSON (docs/bench-schema.json) and Markdown. */
#ifndef BRIGADE_BENCH_REPORT_H
#define BRIGADE_BENCH_REPORT_H

#include <stdio.h>

#include "result.h"

typedef enum bench_format { BENCH_TABLE, BENCH_CSV, BENCH_JSON, BENCH_MARKDOWN } bench_format;

#define BENCH_JSON_SCHEMA 7

/* Parses "table", "csv", "json" or "markdown". Returns 0, or -1 for another name. */
int bench_format_parse(const char *s, bench_format *out);

/* Prints the result; header is a line naming the run (version, build), shown by table,
 * markdown and JSON. */
void bench_report(FILE *f, bench_format fmt, const bench_result *r, const char *header);

#endif
