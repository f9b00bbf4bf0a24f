/* SPDX-License-Identifier: MIT */
/* How much memory this process may still allocate without inviting the OOM killer. malloc's
 * success proves nothing under overcommit, so memory-hungry callers ask here first and tile or
 * refuse. The rule (FIELD-NOTES §4): min(MemAvailable, tightest cgroup headroom, RLIMIT_AS). */
#include "internal/cgroup.h"
#include "brigade/error.h"
#include "brigade/topo.h"

#include <sys/resource.h>
#include <unistd.h>

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
  struct rlimit rl;
  if (use_rlimit && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      (uint64_t)rl.rlim_cur < avail)
    avail = (uint64_t)rl.rlim_cur;
  *out = avail;
  return BG_OK;
}

int bg_mem_available(uint64_t *out) {
  if (!out)
    return BG_EINVAL;
  return bg__mem_available_at("", 1, out);
}
