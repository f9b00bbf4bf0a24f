/* SPDX-License-Identifier: MIT */
/* The machine as brigade sees it: physical cores and logical CPUs this process may use
 * (affinity and cgroup quota), caches, NUMA nodes, memory available (cgroup-aware), and
 * pinning of threads to cores. Backed by hwloc. */
#ifndef BRIGADE_TOPO_H
#define BRIGADE_TOPO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_topo bg_topo_t;

/**
 * bg_topo_create - discover this machine's topology, restricted to this process's CPUs.
 * @out: OUT: the new handle, written only on success.
 *
 * Return: 0; BG_EINVAL if @out is NULL; BG_ENOMEM; BG_ESYS if hwloc cannot load the topology.
 * The caller destroys the handle with bg_topo_destroy(). A handle may be read from several
 * threads at once.
 */
int bg_topo_create(bg_topo_t **out);

/**
 * bg_topo_create_synthetic - build a topology from an hwloc synthetic description.
 * @desc: for example "package:1 l3:1 core:4 l2:1 l1d:1 pu:2" (see hwloc's documentation).
 * @out: OUT: the new handle, written only on success.
 *
 * Used by tests and by users planning for another machine: nothing is read from this one, the
 * CPU quota reads as unlimited and pinning is refused with BG_ENOTSUP.
 * Return: 0; BG_EINVAL for a NULL argument or a description hwloc rejects; BG_ENOMEM.
 */
int bg_topo_create_synthetic(const char *desc, bg_topo_t **out);

/** bg_topo_destroy - free a topology; NULL is a no-op. */
void bg_topo_destroy(bg_topo_t *t);

/** bg_topo_cores - physical cores this process may run on (affinity mask applied). */
unsigned bg_topo_cores(const bg_topo_t *t);

/** bg_topo_pus - logical CPUs (hardware threads) this process may run on. */
unsigned bg_topo_pus(const bg_topo_t *t);

/** bg_topo_cores_total - physical cores of the whole machine, allowed or not. */
unsigned bg_topo_cores_total(const bg_topo_t *t);

/** bg_topo_pus_total - logical CPUs of the whole machine, allowed or not. */
unsigned bg_topo_pus_total(const bg_topo_t *t);

/** bg_topo_numa_nodes - NUMA nodes (1 on a machine without NUMA). */
unsigned bg_topo_numa_nodes(const bg_topo_t *t);

/**
 * bg_topo_cache_size - size in bytes of one data (or unified) cache at a level.
 * @level: 1, 2 or 3.
 *
 * Return: the size of the first such cache; 0 when the machine has none at that level.
 */
uint64_t bg_topo_cache_size(const bg_topo_t *t, unsigned level);

/** bg_topo_cache_count - how many caches the machine has at @level (1, 2 or 3). */
unsigned bg_topo_cache_count(const bg_topo_t *t, unsigned level);

/**
 * bg_topo_cpu_quota - the cgroup CPU bandwidth limit in CPUs (for example 1.5).
 *
 * Return: the tightest quota of this process's cgroup and its ancestors; 0 when unlimited.
 */
double bg_topo_cpu_quota(const bg_topo_t *t);

/**
 * bg_topo_default_workers - the worker count brigade uses when the caller says 0: physical
 * cores this process may use, lowered to the cgroup CPU quota rounded up, and at least 1.
 */
unsigned bg_topo_default_workers(const bg_topo_t *t);

/**
 * bg_topo_pin_thread - bind the calling thread to one physical core.
 * @core: index among the usable cores; taken modulo bg_topo_cores().
 *
 * Return: 0; BG_ENOTSUP on a synthetic topology; BG_ESYS if the OS refuses.
 */
int bg_topo_pin_thread(const bg_topo_t *t, unsigned core);

/**
 * bg_mem_available - bytes this process may still allocate: min(MemAvailable, the tightest
 * cgroup memory headroom of this process and its ancestors, the soft RLIMIT_AS minus the
 * address space already mapped (VmSize: libraries, thread stacks, arrays), 0 when none is left).
 * @out: OUT: bytes, written only on success.
 *
 * Return: 0; BG_EINVAL if @out is NULL; BG_EUNAVAIL if the kernel says nothing usable.
 * Thread-safe; reads /proc and /sys on every call, so call it once per decision, not per item.
 */
int bg_mem_available(uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
