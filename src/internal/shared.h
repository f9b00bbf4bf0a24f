/* SPDX-License-Identifier: MIT */
#ifndef BRIGADE_INTERNAL_SHARED_H
#define BRIGADE_INTERNAL_SHARED_H

#include <stddef.h>

/* 1 if [ptr, ptr + len) lies inside one live shared array: forked workers then write to it
 * in place. */
int bg__shared_contains(const void *ptr, size_t len);

/* 1 if [ptr, ptr + len) lies inside one live file-backed shared array whose file is now
 * shorter than the range's end (another process shrank it): touching the range would raise
 * SIGBUS. 0 otherwise, anonymous arrays and private memory included. One fstat. */
int bg__shared_shrunk(const void *ptr, size_t len);

#endif
