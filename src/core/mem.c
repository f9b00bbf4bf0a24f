/* SPDX-License-Identifier: MIT */
/* How much memory this process may still allocate without inviting the OOM killer. malloc's
 * success proves nothing under overcommit, so memory-hungry callers ask here first and tile or
 * refuse. The rule (FIELD-NOTES §4): min(MemAvailable, tightest cgroup headroom, RLIMIT_AS
 * minus the address space already mapped). */
#include "internal/cgroup.h"
#include "brigade/error.h"
#include "brigade/topo.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

/* Bytes of address space this process has mapped: the first field of /proc/self/statm (VmSize,
 * in pages). RLIMIT_AS caps exactly this number, so it is what a new mapping is measured
 * against, whether its pages were ever touched or not. Read with open and read into a stack
 * buffer, because stdio's buffer is one more allocation, and an allocation may be what fails
 * when the limit is nearly reached. */
static int mapped_bytes(uint64_t *out) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return BG_EUNAVAIL;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  long size = sysconf(_SC_PAGESIZE);
  if (n <= 0 || size <= 0)
    return BG_EUNAVAIL;
  buf[n] = '\0';
  char *end;
  unsigned long long pages = strtoull(buf, &end, 10);
  if (end == buf)
    return BG_EUNAVAIL;
  *out = (uint64_t)pages * (uint64_t)size;
  return BG_OK;
}

int bg__mem_as_headroom(uint64_t *out) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
    *out = UINT64_MAX;
    return BG_OK;
  }
  /* The limit counts everything mapped so far (the program, its libraries, thread stacks,
   * malloc arenas, the caller's arrays), so only the difference is left to allocate. Without
   * /proc the limit itself is the best bound left. */
  uint64_t limit = (uint64_t)rl.rlim_cur, mapped = 0;
  if (mapped_bytes(&mapped) != 0)
    mapped = 0;
  *out = mapped < limit ? limit - mapped : 0;
  return BG_OK;
}

int bg__mem_available_at(const char *root, int use_rlimit, uint64_t *out) {
  uint64_t avail;
  if (bg__meminfo_available(root, &avail) != 0) {
    /* Old kernels lack MemAvailable; free pages are a pessimistic but safe stand-in. */
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
      return BG_EUNAVAIL;
    avail = (uint64_t)pages * (uint64_t)size;
  }
  uint64_t headroom;
  bg__cgroup_mem_headroom(root, &headroom);
  if (headroom < avail)
    avail = headroom;
  if (use_rlimit && bg__mem_as_headroom(&headroom) == 0 && headroom < avail)
    avail = headroom;
  *out = avail;
  return BG_OK;
}

int bg_mem_available(uint64_t *out) {
  if (!out)
    return BG_EINVAL;
  return bg__mem_available_at("", 1, out);
}
