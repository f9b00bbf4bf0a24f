/* SPDX-License-Identifier: MIT */
/* cgroup v1 and v2 limit readers. A process may sit in a nested cgroup whose own files say
 * "unlimited" while an ancestor is limited, so every reader walks from the process's cgroup up
 * to the root and keeps the tightest limit, as Dask and loky learned to do. */
#include "internal/cgroup.h"
#include "brigade/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PATH_CAP = 4096 };

/* Reads the first line of a file; returns 0 on success. */
static int read_line(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  char *ok = fgets(buf, (int)cap, f);
  fclose(f);
  if (!ok)
    return -1;
  buf[strcspn(buf, "\n")] = '\0';
  return 0;
}

/* Finds the cgroup path of this process for a v1 controller (or "" for the v2 line "0::") in
 * <root>/proc/self/cgroup. Returns 0 when found. */
static int cgroup_path(const char *root, const char *controller, char *out, size_t cap) {
  char path[PATH_CAP];
  snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  char line[PATH_CAP];
  int found = -1;
  while (found != 0 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
      continue;
    *c2 = '\0';
    const char *list = c1 + 1;
    int match = 0;
    if (controller[0] == '\0') {
      match = list[0] == '\0';
    } else {
      /* A v1 line may name several controllers: "2:cpu,cpuacct:/x". */
      char copy[256];
      snprintf(copy, sizeof copy, "%s", list);
      char *save = NULL;
      for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        match |= strcmp(tok, controller) == 0;
    }
    if (match) {
      snprintf(out, cap, "%s", c2 + 1);
      found = 0;
    }
  }
  fclose(f);
  return found;
}

typedef int (*limit_fn)(const char *dir, double *limit);

/* Applies fn to <mount><path>, then to each ancestor up to <mount>, keeping the smallest
 * positive limit. Directories that do not exist (a cgroup namespace hides the outer path) are
 * simply skipped. */
static void walk_up(const char *mount, const char *cgpath, limit_fn fn, double *best) {
  char rel[PATH_CAP];
  snprintf(rel, sizeof rel, "%s", cgpath);
  for (;;) {
    char dir[PATH_CAP * 2];
    snprintf(dir, sizeof dir, "%s%s", mount, rel);
    double lim;
    if (fn(dir, &lim) == 0 && lim > 0 && (*best <= 0 || lim < *best))
      *best = lim;
    char *slash = strrchr(rel, '/');
    if (!slash || rel[0] == '\0')
      break;
    *slash = '\0';
  }
}

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  unsigned long long x = strtoull(s, &end, 10);
  if (end == s)
    return -1;
  *v = (uint64_t)x;
  return 0;
}

/* limit - usage from two files of one cgroup directory. "max" (v2) fails to parse and v1 writes
 * "unlimited" as a page-rounded 2^63; both mean no limit here. */
static int mem_headroom(const char *dir, const char *max_file, const char *cur_file,
                        double *limit) {
  char path[PATH_CAP * 3], buf[128];
  uint64_t max, cur = 0;
  snprintf(path, sizeof path, "%s/%s", dir, max_file);
  if (read_line(path, buf, sizeof buf) != 0 || parse_u64(buf, &max) || max >= (UINT64_C(1) << 62))
    return -1;
  snprintf(path, sizeof path, "%s/%s", dir, cur_file);
  if (read_line(path, buf, sizeof buf) == 0)
    parse_u64(buf, &cur);
  *limit = cur >= max ? 1.0 : (double)(max - cur);
  return 0;
}

static int v2_mem(const char *dir, double *limit) {
  return mem_headroom(dir, "memory.max", "memory.current", limit);
}

static int v1_mem(const char *dir, double *limit) {
  return mem_headroom(dir, "memory.limit_in_bytes", "memory.usage_in_bytes", limit);
}

static int v2_cpu(const char *dir, double *limit) {
  char path[PATH_CAP * 3], buf[128];
  snprintf(path, sizeof path, "%s/cpu.max", dir);
  if (read_line(path, buf, sizeof buf) != 0)
    return -1;
  uint64_t quota, period;
  char *sp = strchr(buf, ' ');
  if (!sp || strncmp(buf, "max", 3) == 0 || parse_u64(buf, &quota) || parse_u64(sp + 1, &period) ||
      period == 0)
    return -1;
  *limit = (double)quota / (double)period;
  return 0;
}

static int v1_cpu(const char *dir, double *limit) {
  char path[PATH_CAP * 3], buf[128];
  snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
  if (read_line(path, buf, sizeof buf) != 0)
    return -1;
  long long quota = strtoll(buf, NULL, 10);
  snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
  uint64_t period;
  if (quota <= 0 || read_line(path, buf, sizeof buf) != 0 || parse_u64(buf, &period) || period == 0)
    return -1;
  *limit = (double)quota / (double)period;
  return 0;
}

/* v2 lives at /sys/fs/cgroup on a pure v2 system and at /sys/fs/cgroup/unified on a hybrid one;
 * trying both costs two failed opens and covers either. */
static void walk_v2(const char *root, limit_fn fn, double *best) {
  char cg[PATH_CAP], mount[PATH_CAP];
  if (cgroup_path(root, "", cg, sizeof cg) != 0)
    return;
  snprintf(mount, sizeof mount, "%s/sys/fs/cgroup", root);
  walk_up(mount, cg, fn, best);
  snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/unified", root);
  walk_up(mount, cg, fn, best);
}

static void walk_v1(const char *root, const char *ctrl, const char *const *mounts, limit_fn fn,
                    double *best) {
  char cg[PATH_CAP], mount[PATH_CAP];
  if (cgroup_path(root, ctrl, cg, sizeof cg) != 0)
    return;
  for (size_t i = 0; mounts[i]; i++) {
    snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/%s", root, mounts[i]);
    walk_up(mount, cg, fn, best);
  }
}

int bg__cgroup_mem_headroom(const char *root, uint64_t *out) {
  static const char *const mounts[] = {"memory", NULL};
  double best = 0;
  walk_v2(root, v2_mem, &best);
  walk_v1(root, "memory", mounts, v1_mem, &best);
  *out = best > 0 ? (uint64_t)best : UINT64_MAX;
  return BG_OK;
}

int bg__cgroup_cpu_quota(const char *root, double *out) {
  static const char *const mounts[] = {"cpu", "cpu,cpuacct", NULL};
  double best = 0;
  walk_v2(root, v2_cpu, &best);
  walk_v1(root, "cpu", mounts, v1_cpu, &best);
  *out = best;
  return BG_OK;
}

int bg__meminfo_available(const char *root, uint64_t *out) {
  char path[PATH_CAP];
  snprintf(path, sizeof path, "%s/proc/meminfo", root);
  FILE *f = fopen(path, "r");
  if (!f)
    return BG_EUNAVAIL;
  char line[256];
  int rc = BG_EUNAVAIL;
  while (fgets(line, sizeof line, f)) {
    unsigned long long kib;
    if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
      *out = (uint64_t)kib * 1024u;
      rc = BG_OK;
      break;
    }
  }
  fclose(f);
  return rc;
}
