/* SPDX-License-Identifier: MIT */
/* Topology through hwloc. Counts are taken once at creation so that every query afterwards is
 * a plain field read, safe from any thread. */
#include "brigade/topo.h"
#include "brigade/error.h"
#include "internal/cgroup.h"

#include <hwloc.h>
#include <math.h>
#include <stdlib.h>

struct bg_topo {
  hwloc_topology_t hw;    /* I: */
  hwloc_bitmap_t allowed; /* I: CPUs this process may run on */
  int synthetic;          /* I: */
  unsigned cores, pus;    /* I: usable */
  unsigned cores_total;   /* I: */
  unsigned pus_total;     /* I: */
  unsigned numa;          /* I: */
  double quota;           /* I: cgroup CPUs, 0 = unlimited */
};

static unsigned count_inside(const bg_topo_t *t, hwloc_obj_type_t type) {
  int n = hwloc_get_nbobjs_inside_cpuset_by_type(t->hw, t->allowed, type);
  return n > 0 ? (unsigned)n : 0;
}

static unsigned count_all(const bg_topo_t *t, hwloc_obj_type_t type) {
  int n = hwloc_get_nbobjs_by_type(t->hw, type);
  return n > 0 ? (unsigned)n : 0;
}

static int topo_load(const char *synthetic, bg_topo_t **out) {
  if (!out)
    return BG_EINVAL;
  bg_topo_t *t = calloc(1, sizeof *t);
  if (!t)
    return BG_ENOMEM;
  int rc = BG_ENOMEM;
  if (hwloc_topology_init(&t->hw) != 0)
    goto fail_init;
  rc = BG_EINVAL;
  if (synthetic && hwloc_topology_set_synthetic(t->hw, synthetic) != 0)
    goto fail_load;
  rc = BG_ESYS;
  if (hwloc_topology_load(t->hw) != 0)
    goto fail_load;
  rc = BG_ENOMEM;
  t->allowed = hwloc_bitmap_alloc();
  if (!t->allowed)
    goto fail_load;
  /* The process's affinity mask (taskset, a container's cpuset) narrows what it may use. */
  if (synthetic || hwloc_get_cpubind(t->hw, t->allowed, HWLOC_CPUBIND_PROCESS) != 0)
    hwloc_bitmap_copy(t->allowed, hwloc_topology_get_topology_cpuset(t->hw));
  t->synthetic = synthetic != NULL;
  t->cores = count_inside(t, HWLOC_OBJ_CORE);
  t->pus = count_inside(t, HWLOC_OBJ_PU);
  t->cores_total = count_all(t, HWLOC_OBJ_CORE);
  t->pus_total = count_all(t, HWLOC_OBJ_PU);
  t->numa = count_all(t, HWLOC_OBJ_NUMANODE);
  /* Some virtual machines expose PUs without core objects; each PU is then its own core. */
  if (t->cores == 0)
    t->cores = t->pus;
  if (t->cores_total == 0)
    t->cores_total = t->pus_total;
  if (t->numa == 0)
    t->numa = 1;
  if (!synthetic)
    bg__cgroup_cpu_quota("", &t->quota);
  *out = t;
  return BG_OK;

fail_load:
  hwloc_topology_destroy(t->hw);
fail_init:
  free(t);
  return rc;
}

int bg_topo_create(bg_topo_t **out) {
  return topo_load(NULL, out);
}

int bg_topo_create_synthetic(const char *desc, bg_topo_t **out) {
  if (!desc)
    return BG_EINVAL;
  return topo_load(desc, out);
}

void bg_topo_destroy(bg_topo_t *t) {
  if (!t)
    return;
  hwloc_bitmap_free(t->allowed);
  hwloc_topology_destroy(t->hw);
  free(t);
}

unsigned bg_topo_cores(const bg_topo_t *t) {
  return t->cores;
}
unsigned bg_topo_pus(const bg_topo_t *t) {
  return t->pus;
}
unsigned bg_topo_cores_total(const bg_topo_t *t) {
  return t->cores_total;
}
unsigned bg_topo_pus_total(const bg_topo_t *t) {
  return t->pus_total;
}
unsigned bg_topo_numa_nodes(const bg_topo_t *t) {
  return t->numa;
}
double bg_topo_cpu_quota(const bg_topo_t *t) {
  return t->quota;
}

static hwloc_obj_type_t cache_type(unsigned level) {
  switch (level) {
  case 1:
    return HWLOC_OBJ_L1CACHE;
  case 2:
    return HWLOC_OBJ_L2CACHE;
  case 3:
    return HWLOC_OBJ_L3CACHE;
  default:
    return HWLOC_OBJ_TYPE_MAX;
  }
}

/* Instruction caches are skipped: callers size data tiles. */
static hwloc_obj_t first_data_cache(const bg_topo_t *t, unsigned level, unsigned *count) {
  hwloc_obj_type_t type = cache_type(level);
  hwloc_obj_t first = NULL;
  *count = 0;
  if (type == HWLOC_OBJ_TYPE_MAX)
    return NULL;
  for (hwloc_obj_t o = hwloc_get_next_obj_by_type(t->hw, type, NULL); o;
       o = hwloc_get_next_obj_by_type(t->hw, type, o)) {
    if (o->attr->cache.type == HWLOC_OBJ_CACHE_INSTRUCTION)
      continue;
    if (!first)
      first = o;
    (*count)++;
  }
  return first;
}

uint64_t bg_topo_cache_size(const bg_topo_t *t, unsigned level) {
  unsigned count;
  hwloc_obj_t o = first_data_cache(t, level, &count);
  return o ? (uint64_t)o->attr->cache.size : 0;
}

unsigned bg_topo_cache_count(const bg_topo_t *t, unsigned level) {
  unsigned count;
  first_data_cache(t, level, &count);
  return count;
}

unsigned bg_topo_default_workers(const bg_topo_t *t) {
  unsigned w = t->cores;
  if (t->quota > 0) {
    double q = ceil(t->quota);
    if (q < (double)w)
      w = (unsigned)q;
  }
  return w ? w : 1;
}

int bg_topo_pin_thread(const bg_topo_t *t, unsigned core) {
  if (t->synthetic)
    return BG_ENOTSUP;
  int type_depth = hwloc_get_type_depth(t->hw, HWLOC_OBJ_CORE);
  hwloc_obj_type_t type = type_depth < 0 ? HWLOC_OBJ_PU : HWLOC_OBJ_CORE;
  unsigned n = count_inside(t, type);
  if (n == 0)
    return BG_EUNAVAIL;
  hwloc_obj_t o = hwloc_get_obj_inside_cpuset_by_type(t->hw, t->allowed, type, core % n);
  if (!o || hwloc_set_cpubind(t->hw, o->cpuset, HWLOC_CPUBIND_THREAD) != 0)
    return BG_ESYS;
  return BG_OK;
}
