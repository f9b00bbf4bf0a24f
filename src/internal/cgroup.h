/* SPDX-License-Identifier: MIT */
/* Reading resource limits from /proc and cgroup files (v1 and v2). Every function takes a root
 * prefix ("" for the real system) so tests can point it at a fake tree of files. */
#ifndef BRIGADE_INTERNAL_CGROUP_H
#define BRIGADE_INTERNAL_CGROUP_H

#include <stdint.h>

/* Smallest (limit - usage) over the cgroup memory limits of this process and its ancestors, in
 * bytes. Writes UINT64_MAX when no limit is set anywhere. Return: 0 (never fails; a missing
 * file simply sets no limit). */
int bg__cgroup_mem_headroom(const char *root, uint64_t *out);

/* The CPU bandwidth quota in CPUs (quota / period), smallest over ancestors; 0 when unlimited. */
int bg__cgroup_cpu_quota(const char *root, double *out);

/* MemAvailable from <root>/proc/meminfo in bytes. Return: 0, or BG_EUNAVAIL when the file or
 * the field is absent (kernels before 3.14). */
int bg__meminfo_available(const char *root, uint64_t *out);

/* The whole memory budget: min(MemAvailable, cgroup headroom, and when use_rlimit the address
 * space RLIMIT_AS still leaves, as bg__mem_as_headroom says). */
int bg__mem_available_at(const char *root, int use_rlimit, uint64_t *out);

/* Address space this process may still map: the soft RLIMIT_AS minus what is mapped now
 * (VmSize), 0 when it is all used, UINT64_MAX when there is no limit. It matters apart from
 * memory available because untouched mappings (thread stacks, malloc arenas, OpenBLAS's
 * buffers) count against the limit but not against MemAvailable. Return: 0 (never fails). */
int bg__mem_as_headroom(uint64_t *out);

#endif
