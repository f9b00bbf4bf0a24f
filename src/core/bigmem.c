/* SPDX-License-Identifier: MIT */
/* Buffers on transparent huge pages: an aligned mapping of its own, so that every 2 MiB of it
 * can be one page, and the advice to the kernel that it should be. */
#define _GNU_SOURCE
#include "brigade/bigmem.h"
#include "brigade/error.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static size_t rounded(size_t bytes) {
  return (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

int bg_big_alloc(size_t bytes, void **out) {
  if (!bytes || !out)
    return BG_EINVAL;
  if (bytes > SIZE_MAX / 2 - 2 * HUGE_PAGE)
    return BG_ERANGE;
  size_t len = rounded(bytes);
  /* Over-map by one huge page, then give back the unaligned head and the tail. */
  char *m = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return BG_ENOMEM;
  char *p = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
  if (p > m)
    munmap(m, (size_t)(p - m));
  size_t tail = (size_t)(m + len + HUGE_PAGE - (p + len));
  if (tail)
    munmap(p + len, tail);
  /* Advice, not a requirement: with huge pages off the buffer still works on 4 KiB pages. */
  (void)madvise(p, len, MADV_HUGEPAGE);
  *out = p;
  return BG_OK;
}

void bg_big_free(void *p, size_t bytes) {
  if (p)
    munmap(p, rounded(bytes));
}
