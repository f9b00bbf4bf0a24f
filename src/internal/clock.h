/* SPDX-License-Identifier: MIT */
/* Monotonic time in nanoseconds. clock_gettime through the vDSO costs about 20 ns, cheap enough
 * to read once per chunk but not once per trivial item. */
#ifndef BRIGADE_INTERNAL_CLOCK_H
#define BRIGADE_INTERNAL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t bg__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
