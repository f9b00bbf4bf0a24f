/* SPDX-License-Identifier: MIT */
/* Every backend brigade knows, compiled in or not, so `brigade info` can say which are missing
 * from this build as well as which work on this machine. */
#include "brigade/error.h"
#include "brigade_config.h"
#include "internal/backend.h"

#include <string.h>

typedef struct entry {
  const char *name;
  const bg__backend_ops *ops; /* NULL: not compiled in */
} entry;

static const entry table[] = {
    {"seq", &bg__backend_seq},
    {"threads", &bg__backend_threads},
    {"procs", &bg__backend_procs},
    {"procs-copy", &bg__backend_procs_copy},
    {"procs-persistent", &bg__backend_procs_persistent},
#if BG_HAVE_OPENMP
    {"openmp", &bg__backend_openmp},
#else
    {"openmp", NULL},
#endif
#if BG_HAVE_MPI
    {"mpi", &bg__backend_mpi},
#else
    {"mpi", NULL},
#endif
};

enum { NENTRIES = sizeof table / sizeof table[0] };

int bg__backend_find(const char *name, const bg__backend_ops **out) {
  if (!name || strcmp(name, "auto") == 0) {
    const bg__backend_ops *best = NULL;
    for (size_t i = 0; i < NENTRIES; i++) {
      const bg__backend_ops *o = table[i].ops;
      if (o && o->probe() == 0 && (!best || o->priority > best->priority))
        best = o;
    }
    *out = best;
    return best ? BG_OK : BG_EUNAVAIL;
  }
  for (size_t i = 0; i < NENTRIES; i++) {
    if (strcmp(table[i].name, name) != 0)
      continue;
    if (!table[i].ops)
      return BG_ENOTSUP;
    if (table[i].ops->probe() != 0)
      return BG_EUNAVAIL;
    *out = table[i].ops;
    return BG_OK;
  }
  return BG_ENOENT;
}

size_t bg_backend_count(void) {
  return NENTRIES;
}

int bg_backend_info(size_t i, bg_backend_info_t *out) {
  if (!out || i >= NENTRIES)
    return BG_EINVAL;
  const bg__backend_ops *o = table[i].ops;
  out->name = table[i].name;
  out->compiled = o != NULL;
  out->usable = o && o->probe() == 0;
  out->priority = o ? o->priority : 0;
  return BG_OK;
}
