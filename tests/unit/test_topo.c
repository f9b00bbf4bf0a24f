/* SPDX-License-Identifier: MIT */
/* Topology on synthetic machines (independent of the one running the test), the cgroup
 * readers on fake /proc and /sys trees, and the real machine's answers being sane. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"
#include "internal/cgroup.h"

static void synthetic_machine_is_counted(void **state) {
  (void)state;
  bg_topo_t *t;
  assert_int_equal(
      bg_topo_create_synthetic("package:2 l3:1(size=33554432) core:4 l2:1(size=1048576) "
                               "l1d:1(size=49152) pu:2",
                               &t),
      0);
  assert_int_equal(bg_topo_cores(t), 8);
  assert_int_equal(bg_topo_pus(t), 16);
  assert_int_equal(bg_topo_cores_total(t), 8);
  assert_int_equal(bg_topo_pus_total(t), 16);
  assert_int_equal(bg_topo_default_workers(t), 8);
  assert_int_equal(bg_topo_cache_size(t, 3), 32u << 20);
  assert_int_equal(bg_topo_cache_count(t, 3), 2);
  assert_int_equal(bg_topo_cache_size(t, 2), 1u << 20);
  assert_int_equal(bg_topo_cache_count(t, 1), 8);
  assert_int_equal(bg_topo_cache_size(t, 4), 0);
  assert_true(bg_topo_numa_nodes(t) >= 1);
  assert_true(bg_topo_cpu_quota(t) == 0);
  assert_int_equal(bg_topo_pin_thread(t, 0), BG_ENOTSUP);
  bg_topo_destroy(t);
}

static void synthetic_numa_nodes_are_counted(void **state) {
  (void)state;
  bg_topo_t *t;
  assert_int_equal(bg_topo_create_synthetic("package:2 [numa] core:3 pu:1", &t), 0);
  assert_int_equal(bg_topo_numa_nodes(t), 2);
  assert_int_equal(bg_topo_cores(t), 6);
  bg_topo_destroy(t);
}

static void bad_arguments_are_refused(void **state) {
  (void)state;
  bg_topo_t *t = (bg_topo_t *)0x1;
  assert_int_equal(bg_topo_create_synthetic("no such thing:0", &t), BG_EINVAL);
  assert_ptr_equal(t, (bg_topo_t *)0x1);
  assert_int_equal(bg_topo_create_synthetic(NULL, &t), BG_EINVAL);
  assert_int_equal(bg_topo_create(NULL), BG_EINVAL);
  assert_int_equal(bg_mem_available(NULL), BG_EINVAL);
  bg_topo_destroy(NULL);
}

static void this_machine_is_sane(void **state) {
  (void)state;
  bg_topo_t *t;
  assert_int_equal(bg_topo_create(&t), 0);
  assert_true(bg_topo_cores(t) >= 1);
  assert_true(bg_topo_pus(t) >= bg_topo_cores(t));
  assert_true(bg_topo_pus_total(t) >= bg_topo_pus(t));
  assert_true(bg_topo_default_workers(t) >= 1);
  assert_true(bg_topo_default_workers(t) <= bg_topo_cores(t));
  assert_int_equal(bg_topo_pin_thread(t, 0), 0);
  bg_topo_destroy(t);
  uint64_t mem;
  assert_int_equal(bg_mem_available(&mem), 0);
  assert_true(mem > (16u << 20));
}

/* Under ulimit -v the limit counts what is mapped already: with 256 MiB left above VmSize, no
 * more than about 256 MiB may be called available, not the whole limit. */
static void rlimit_as_counts_what_is_mapped(void **state) {
  (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  skip(); /* the sanitizers' own mappings do not live well under RLIMIT_AS */
#endif
  struct rlimit old;
  assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
  uint64_t mapped = tk_vm_size(), room = 256u << 20, limit = mapped + room;
  if (old.rlim_max != RLIM_INFINITY && old.rlim_max < limit)
    skip();
  struct rlimit rl = {.rlim_cur = limit, .rlim_max = old.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_AS, &rl), 0);
  uint64_t avail = 0, head = 0;
  int rc = bg_mem_available(&avail);
  bg__mem_as_headroom(&head);
  /* A limit below what is mapped leaves nothing, not a wrapped-around huge number. */
  struct rlimit low = {.rlim_cur = mapped / 2, .rlim_max = old.rlim_max};
  uint64_t none = 1;
  int rc_low = setrlimit(RLIMIT_AS, &low) == 0 ? bg_mem_available(&none) : -100;
  assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
  assert_int_equal(rc, 0);
  assert_true(avail < limit);
  assert_true(avail <= room);
  assert_true(head <= room);
  assert_true(head > room - (64u << 20)); /* the calls themselves map little */
  assert_int_equal(rc_low, 0);
  assert_int_equal(none, 0);
  uint64_t free_again;
  assert_int_equal(bg__mem_as_headroom(&free_again), 0);
  if (old.rlim_cur == RLIM_INFINITY)
    assert_true(free_again == UINT64_MAX);
}

/* A fake root: files written under a temporary directory. */
static char root[64];

static void put(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  for (char *p = path + strlen(root) + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0755);
      *p = '/';
    }
  }
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int make_root(void **state) {
  (void)state;
  snprintf(root, sizeof root, "/tmp/bg_topo_XXXXXX");
  return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) == 0 ? 0 : -1;
}

static void cgroup_v2_takes_the_tightest_ancestor(void **state) {
  (void)state;
  put("proc/self/cgroup", "0::/outer/inner\n");
  put("sys/fs/cgroup/outer/memory.max", "1000000\n");
  put("sys/fs/cgroup/outer/memory.current", "200000\n");
  put("sys/fs/cgroup/outer/inner/memory.max", "max\n");
  put("sys/fs/cgroup/outer/inner/cpu.max", "150000 100000\n");
  put("sys/fs/cgroup/outer/cpu.max", "max 100000\n");
  put("proc/meminfo", "MemTotal: 9999 kB\nMemAvailable: 5000 kB\n");
  uint64_t head, avail;
  double cpus;
  assert_int_equal(bg__cgroup_mem_headroom(root, &head), 0);
  assert_int_equal(head, 800000);
  assert_int_equal(bg__cgroup_cpu_quota(root, &cpus), 0);
  assert_true(cpus > 1.49 && cpus < 1.51);
  assert_int_equal(bg__meminfo_available(root, &avail), 0);
  assert_int_equal(avail, 5000 * 1024);
  assert_int_equal(bg__mem_available_at(root, 0, &avail), 0);
  assert_int_equal(avail, 800000);
}

static void cgroup_v1_reads_hybrid_layouts(void **state) {
  (void)state;
  put("proc/self/cgroup", "4:memory:/job\n2:cpu,cpuacct:/job\n0::/\n");
  put("sys/fs/cgroup/memory/job/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "500000\n");
  put("sys/fs/cgroup/memory/memory.usage_in_bytes", "100000\n");
  put("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n");
  put("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  put("proc/meminfo", "MemAvailable: 100000000 kB\n");
  uint64_t head, avail;
  double cpus;
  assert_int_equal(bg__cgroup_mem_headroom(root, &head), 0);
  assert_int_equal(head, 400000);
  assert_int_equal(bg__cgroup_cpu_quota(root, &cpus), 0);
  assert_true(cpus > 0.49 && cpus < 0.51);
  assert_int_equal(bg__mem_available_at(root, 0, &avail), 0);
  assert_int_equal(avail, 400000);
}

static void no_limits_anywhere_means_unlimited(void **state) {
  (void)state;
  put("proc/self/cgroup", "0::/\n");
  put("proc/meminfo", "MemTotal: 1 kB\n");
  uint64_t head;
  double cpus;
  assert_int_equal(bg__cgroup_mem_headroom(root, &head), 0);
  assert_true(head == UINT64_MAX);
  assert_int_equal(bg__cgroup_cpu_quota(root, &cpus), 0);
  assert_true(cpus == 0);
  uint64_t avail;
  assert_int_equal(bg__meminfo_available(root, &avail), BG_EUNAVAIL);
  char missing[128];
  snprintf(missing, sizeof missing, "%s/nowhere", root);
  assert_int_equal(bg__meminfo_available(missing, &avail), BG_EUNAVAIL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(synthetic_machine_is_counted),
      cmocka_unit_test(synthetic_numa_nodes_are_counted),
      cmocka_unit_test(bad_arguments_are_refused),
      cmocka_unit_test(this_machine_is_sane),
      cmocka_unit_test(rlimit_as_counts_what_is_mapped),
      cmocka_unit_test_setup_teardown(cgroup_v2_takes_the_tightest_ancestor, make_root,
                                      remove_root),
      cmocka_unit_test_setup_teardown(cgroup_v1_reads_hybrid_layouts, make_root, remove_root),
      cmocka_unit_test_setup_teardown(no_limits_anywhere_means_unlimited, make_root, remove_root),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
