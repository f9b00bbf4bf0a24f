/* SPDX-License-Identifier: MIT */
/* Allocation through the caller's allocator. Per-worker structs are cache-line aligned so
 * workers never false-share, but a user allocator only promises malloc's alignment, so every
 * block is over-allocated and aligned here, with the original pointer kept just before it. */
#include "internal/pool_impl.h"

#include <stdint.h>
#include <stdlib.h>

static void *sys_alloc(size_t size, void *ud) {
  (void)ud;
  return malloc(size);
}

static void sys_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

const bg_allocator_t bg__sys_allocator = {sys_alloc, sys_free, NULL};

void *bg__pool_alloc(const bg_allocator_t *a, size_t size) {
  if (size > SIZE_MAX - BG_CACHELINE - sizeof(void *))
    return NULL;
  char *raw = a->alloc(size + BG_CACHELINE + sizeof(void *), a->ud);
  if (!raw)
    return NULL;
  uintptr_t p =
      ((uintptr_t)(raw + sizeof(void *)) + BG_CACHELINE - 1) & ~(uintptr_t)(BG_CACHELINE - 1);
  ((void **)p)[-1] = raw;
  return (void *)p;
}

void bg__pool_free(const bg_allocator_t *a, void *p) {
  if (p)
    a->free(((void **)p)[-1], a->ud);
}
