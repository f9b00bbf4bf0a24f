/* SPDX-License-Identifier: MIT */
/* dlopen and dlsym for user tasks. A plain relative name such as "libmine.so" would make
 * dlopen search the system's library path, so names without a slash get "./" in front. */
#define _GNU_SOURCE
#include "plugin.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdint.h>
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
  /* Calling a data object as code would crash the bench at the first item: the symbol table
   * says what the name is. */
  const ElfW(Sym) *es = NULL;
  Dl_info info;
  int type = dladdr1(sym, &info, (void **)&es, RTLD_DL_SYMENT) && es ? ELF64_ST_TYPE(es->st_info)
                                                                     : STT_NOTYPE;
  /* dlsym also finds the library's dependencies' symbols (a typo could time libc's printf):
   * the function must be the library's own. */
  struct link_map *lm = NULL;
  if (dlinfo(p->handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && info.dli_fbase &&
      (uintptr_t)info.dli_fbase != (uintptr_t)lm->l_addr) {
    snprintf(err, cap, "--task: '%s' is not defined in '%s' but in %s, which it uses", colon + 1,
             path, info.dli_fname ? info.dli_fname : "another library");
    dlclose(p->handle);
    p->handle = NULL;
    return -1;
  }
  if (type != STT_FUNC && type != STT_GNU_IFUNC) {
    snprintf(err, cap,
             "--task: '%s' in '%s' is %s, not a function; give the name of a function "
             "int %s(void *out, const void *in, size_t i, void *ctx)",
             colon + 1, path,
             type == STT_OBJECT ? "a variable"
             : type == STT_TLS  ? "a thread-local variable"
                                : "not known to be a function",
             colon + 1);
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
      .foreign = 1,
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
