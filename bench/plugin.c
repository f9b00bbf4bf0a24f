/* SPDX-License-Identifier: MIT */
/* dlopen and dlsym for user tasks. A plain relative name such as "libmine.so" would make
 * dlopen search the system's library path, so names without a slash get "./" in front. */
#include "plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int no_setup(const bench_case *c, void **state, char *err, size_t cap) {
  (void)c, (void)err, (void)cap;
  *state = NULL;
  return 0;
}

int bench_plugin_load(const char *spec, size_t n, size_t out_size, bench_plugin *p, char *err,
                      size_t cap) {
  memset(p, 0, sizeof *p);
  const char *colon = strrchr(spec, ':');
  if (!colon || colon == spec || colon[1] == '\0') {
    snprintf(err, cap, "--task '%s': expected LIBRARY:FUNCTION, e.g. ./libmine.so:my_task", spec);
    return -1;
  }
  char path[4096];
  int len = snprintf(path, sizeof path, "%s%.*s", strchr(spec, '/') ? "" : "./",
                     (int)(colon - spec), spec);
  if (len < 0 || (size_t)len >= sizeof path) {
    snprintf(err, cap, "--task: the library path is too long");
    return -1;
  }
  p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!p->handle) {
    snprintf(err, cap, "--task: cannot load '%s': %s", path, dlerror());
    return -1;
  }
  dlerror();
  void *sym = dlsym(p->handle, colon + 1);
  if (!sym) {
    snprintf(err, cap, "--task: no function '%s' in '%s' (is it exported, not static?)", colon + 1,
             path);
    dlclose(p->handle);
    p->handle = NULL;
    return -1;
  }
  snprintf(p->name, sizeof p->name, "task %s", colon + 1);
  p->w = (bench_workload){
      .name = p->name,
      .simulates = "a user task loaded from a shared library",
      .quick = {n, 0},
      .lecture = {{n, 0}},
      .nlecture = 1,
      .out_size = out_size,
      .setup = no_setup,
  };
  /* POSIX guarantees a data pointer from dlsym converts to a function pointer. */
  memcpy(&p->w.fn, &sym, sizeof sym);
  return 0;
}

void bench_plugin_unload(bench_plugin *p) {
  if (p->handle)
    dlclose(p->handle);
  p->handle = NULL;
}
