/* SPDX-License-Identifier: MIT */
/* The Python frameworks beside brigade: peer scripts (peers/python/) run as child processes on
 * the same case, print one tab-separated line per approach, and their rows join brigade's in
 * the same section, so one table compares a C backend with joblib or mpire on the same
 * machine, workload and size. */
#ifndef BRIGADE_BENCH_PEERS_H
#define BRIGADE_BENCH_PEERS_H

#include "result.h"
#include "workload.h"

typedef struct bench_peers {
  const char *python; /* the interpreter: a virtual environment's, or "python3" */
  const char *dir;    /* the folder holding catalogue.py */
} bench_peers;

/* Runs the catalogue peer on one case already run by brigade (its rows are in section) and
 * appends a row per approach ("py:joblib", ...), a note per skipped or failed approach, and
 * fills each brigade row's vs_peer. Returns 0, or BG_ECANCELED after a Ctrl-C. A peer that
 * cannot start, crashes or is killed is reported in a note, not as an error. */
int bench_peers_case(const bench_peers *p, const char *workload, const bench_case *c,
                     unsigned repeat, const char *section, bench_result *res);

/* Parses one line a peer printed into a row of section (0), or says why not (-1). Skipped
 * approaches become a note instead (1). Exposed for the tests. */
int bench_peers_parse(const char *line, const char *section, const char *workload, size_t n,
                      bench_row *row, char *note, size_t cap);

#endif
