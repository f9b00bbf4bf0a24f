/* SPDX-License-Identifier: MIT */
/* Plots through gnuplot: speedup per workload case as grouped bars; where the machine's limits
 * are known (brigade info --limits), each case's fastest time over what those limits allow;
 * and speedup against workers with the ideal line. For the knn suite, GFLOP/s per case and
 * backend. */
#ifndef BRIGADE_BENCH_PLOT_H
#define BRIGADE_BENCH_PLOT_H

#include "result.h"

/* Writes an SVG or PNG (chosen by the file's extension). Returns 0, or -1 with a message (no
 * gnuplot installed, an unknown extension, gnuplot failing). */
int bench_plot(const bench_result *r, const char *path, char *err, size_t cap);

#endif
