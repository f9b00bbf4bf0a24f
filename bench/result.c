/* SPDX-License-Identifier: MIT */
/* Notes and look-ups on a benchmark result. */
#include "result.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void bench_note_add(bench_result *r, const char *section, const char *fmt, ...) {
  if (r->nnotes == BENCH_MAX_NOTES)
    return;
  bench_note *n = &r->notes[r->nnotes++];
  snprintf(n->section, sizeof n->section, "%s", section ? section : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(n->text, sizeof n->text, fmt, ap);
  va_end(ap);
}

const bench_row *bench_find_row(const bench_result *r, const char *section, const char *backend,
                                const char *schedule) {
  for (size_t i = 0; i < r->nrows; i++) {
    const bench_row *x = &r->rows[i];
    if (!strcmp(x->section, section) && !strcmp(x->backend, backend) &&
        !strcmp(x->schedule, schedule))
      return x;
  }
  return NULL;
}
