/* SPDX-License-Identifier: MIT */
#ifndef BRIGADE_INTERNAL_SHARED_H
#define BRIGADE_INTERNAL_SHARED_H

#include <stddef.h>

/* 1 if [ptr, ptr + len) lies inside one live shared array: forked workers then write to it
 * in place. */
int bg__shared_contains(const void *ptr, size_t len);

#endif
