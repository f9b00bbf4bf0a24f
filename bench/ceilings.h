/* SPDX-License-Identifier: MIT */
/* The sentences that compare a case's rows with this machine's measured limits: how close the
 * best row came to its ceiling, what the ceiling is, and what would lift it. */
#ifndef BRIGADE_BENCH_CEILINGS_H
#define BRIGADE_BENCH_CEILINGS_H

#include "hwlimits.h"
#include "result.h"
#include "workload.h"

/* Adds the notes for one case; nothing when the workload's bound has no measured ceiling. */
void bench_explain_ceilings(bench_result *res, const bench_workload *w, const bench_case *c,
                            const char *section, const bench_row *seq, const bench_row *best,
                            const bench_limits *lim);

#endif
