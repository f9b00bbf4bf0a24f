/* SPDX-License-Identifier: MIT */
/* Catching SIGINT and SIGTERM while a process-backed map runs, so that a Ctrl-C stops the map
 * cleanly (workers killed and reaped, shared memory unmapped, finished results delivered)
 * instead of killing the caller with its workers' results unreported. */
#ifndef BRIGADE_INTERNAL_INTERRUPT_H
#define BRIGADE_INTERNAL_INTERRUPT_H

#include <stdbool.h>

typedef struct bg__interrupt {
  unsigned long seen; /* the signal count when the guard was taken */
} bg__interrupt;

/* Installs the handlers (unless the signal is ignored: a background job's SIGINT stays
 * ignored) and remembers the previous ones. Guards nest and may be taken from several
 * threads; the first installs, the last restores. */
void bg__interrupt_begin(bg__interrupt *g);

/* True once SIGINT or SIGTERM has arrived since the guard was taken. Async-signal-safe. */
bool bg__interrupted(const bg__interrupt *g);

/* Drops the guard. The last one restores the previous handlers and, when a signal arrived and
 * the previous handler was a function of the application, raises the signal again so that
 * function still runs. */
void bg__interrupt_end(bg__interrupt *g);

#endif
