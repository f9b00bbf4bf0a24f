/* SPDX-License-Identifier: MIT */
/* cuBLAS loaded on first use (internal/cublas_dl.h says why). The library's name carries the
 * toolkit's major version, the ABI brigade was compiled against (BG_CUBLAS_SONAME, set by
 * CMake). */
#include "internal/cublas_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static bg__cublas lib;
static const bg__cublas *loaded;
static char why_buf[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* POSIX guarantees that dlsym's object pointer converts to a function pointer; copying its
 * bytes says so without a cast between the two kinds of pointer, which ISO C leaves undefined. */
static int sym(void *h, const char *name, void *slot, size_t size) {
  void *p = dlsym(h, name);
  if (!p) {
    snprintf(why_buf, sizeof why_buf, "%s lacks %s: %s", BG_CUBLAS_SONAME, name, dlerror());
    return 0;
  }
  memcpy(slot, &p, size);
  return 1;
}

#define SYM(h, name, field) sym(h, name, &lib.field, sizeof lib.field)

static void load(void) {
  void *h = dlopen(BG_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(why_buf, sizeof why_buf,
             "cuBLAS could not be loaded (%s): install the CUDA toolkit's libraries, or raise "
             "`ulimit -v` (cuBLAS maps about 600 MB)",
             dlerror());
    return;
  }
  if (SYM(h, "cublasCreate_v2", create) && SYM(h, "cublasDestroy_v2", destroy) &&
      SYM(h, "cublasSetStream_v2", set_stream) && SYM(h, "cublasSetMathMode", set_math_mode) &&
      SYM(h, "cublasSgemm_v2", sgemm) && SYM(h, "cublasDgemm_v2", dgemm) &&
      SYM(h, "cublasGetStatusString", status_string))
    loaded = &lib;
  else
    dlclose(h);
}

const bg__cublas *bg__cublas_get(const char **why) {
  pthread_once(&once, load);
  if (!loaded && why)
    *why = why_buf;
  return loaded;
}
