/* SPDX-License-Identifier: MIT */
/* Appending to a map's trace (brigade/trace.h), for the backends. */
#ifndef BRIGADE_INTERNAL_TRACE_H
#define BRIGADE_INTERNAL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/trace.h"

/* Appends one span of @kind for worker @w: items [b, e) from @t0 to @t1 (bg__now_ns). A span
 * past the trace's capacity is counted as dropped. Thread-safe. */
void bg__trace_add(bg_trace_t *t, int kind, unsigned w, size_t b, size_t e, uint64_t t0,
                   uint64_t t1);

#endif
