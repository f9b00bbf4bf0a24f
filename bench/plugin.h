/* SPDX-License-Identifier: MIT */
/* User tasks: a function with bg_map's task signature in a shared library, loaded with dlopen
 * so a user can change the function and rerun, as the lecture suggests. */
#ifndef BRIGADE_BENCH_PLUGIN_H
#define BRIGADE_BENCH_PLUGIN_H

#include "workload.h"

typedef struct bench_plugin {
  bench_workload w; /* name "task", the loaded function, n and out_size from the caller */
  void *handle;     /* from dlopen */
  char name[128];
} bench_plugin;

/* Loads "PATH:SYMBOL". Returns 0, or -1 with a message naming the problem (no colon, a file
 * that cannot be loaded, a missing symbol). */
int bench_plugin_load(const char *spec, size_t n, size_t out_size, bench_plugin *p, char *err,
                      size_t cap);

void bench_plugin_unload(bench_plugin *p);

#endif
