/* SPDX-License-Identifier: MIT */
/* brigade info: what the lecture's section 2.1 prints (logical and physical cores), and what a
 * user needs to choose workers and sizes: usable CPUs, caches, memory, backends. */
#include "cli.h"
#include "hwlimits.h"
#include "opts.h"

#include "brigade.h"

#include <stdlib.h>
#include <string.h>

void cmd_info_help(FILE *f) {
  fprintf(f, "usage: brigade info [--json] [--limits [--remeasure]]\n\n"
             "Shows the machine as brigade sees it: logical and physical cores (the whole\n"
             "machine and those this process may use), the cgroup CPU quota, the default\n"
             "worker count, caches, NUMA nodes, memory available (cgroup-aware), and the\n"
             "backends compiled in and usable here; with a GPU, its SMs, memory and the\n"
             "host-to-device and device-to-host bandwidth of pinned copies, measured.\n\n"
             "  --json       print one JSON object instead of text\n"
             "  --limits     also what bounds each kind of work here, measured: memory read and\n"
             "               write bandwidth (one thread, all), first-touch page faults (4 KiB\n"
             "               and huge pages), file create+write+unlink (one folder, one per\n"
             "               worker), fork, waking threads, sgemm. Measured once (a few\n"
             "               seconds) and cached in $XDG_CACHE_HOME/brigade/limits.json\n"
             "               (~/.cache/brigade), for this machine only\n"
             "  --remeasure  with --limits: measure again, ignoring the cache\n");
}

typedef struct facts {
  const bench_limits *limits; /* NULL unless --limits */
  int limits_cached;          /* read from the cache, not measured now */
  bg_topo_t *topo;
  uint64_t mem;
  int mem_rc;
  bg_gpu_info_t gpu;
  int gpu_rc;
  double h2d_gbps, d2h_gbps; /* pinned copies, measured when there is a GPU */
  int bw_rc;
} facts;

/* Why bf16 runs exact on this CPU whatever the search: no AVX-512 BF16, or BRIGADE_KNN_ISA
 * keeps it off. */
static const char *bf16_off_why(void) {
#ifdef __x86_64__
  if (getenv("BRIGADE_KNN_ISA") && __builtin_cpu_supports("avx512bf16"))
    return "BRIGADE_KNN_ISA keeps it off this CPU's AVX-512 BF16";
#endif
  return "this CPU has no AVX-512 BF16";
}

static void print_text(const facts *f) {
  const bg_topo_t *t = f->topo;
  char buf[32], gbuf[32];
  printf("brigade %s (%s)\n\n", bg_version(), bg_build_options());
  printf("CPU\n");
  printf("  Number of logical cores: %u\n", bg_topo_pus_total(t));
  printf("  Number of physical cores: %u\n", bg_topo_cores_total(t));
  printf("  usable by this process:   %u logical, %u physical (affinity mask)\n", bg_topo_pus(t),
         bg_topo_cores(t));
  if (bg_topo_cpu_quota(t) > 0)
    printf("  cgroup CPU quota:         %.2f CPUs\n", bg_topo_cpu_quota(t));
  else
    printf("  cgroup CPU quota:         unlimited\n");
  printf("  default workers:          %u (physical cores within the quota)\n",
         bg_topo_default_workers(t));
  printf("  NUMA nodes:               %u\n", bg_topo_numa_nodes(t));
  printf("Caches\n");
  for (unsigned l = 1; l <= 3; l++) {
    uint64_t sz = bg_topo_cache_size(t, l);
    if (sz)
      printf("  L%u%s %s x %u\n", l, l == 1 ? "d:" : ": ", cli_bytes(sz, buf, sizeof buf),
             bg_topo_cache_count(t, l));
  }
  printf("Memory\n");
  if (f->mem_rc == 0)
    printf("  available: %s (MemAvailable, cgroup limits and RLIMIT_AS applied)\n",
           cli_bytes(f->mem, buf, sizeof buf));
  else
    printf("  available: unknown (%s)\n", bg_strerror(f->mem_rc));
  /* Either the environment chose the kernel, or this OpenBLAS does not know the CPU (0.3.21 on
   * an Intel Xeon of family 6 model 207 picks Haswell's: sgemm 226 GFLOP/s, 986 with
   * OPENBLAS_CORETYPE=SkylakeX, docs/PERFORMANCE.md): the way out differs. */
  const char *core = getenv("OPENBLAS_CORETYPE");
  if (bg_knn_blas_degraded() && core)
    printf("Warning: OpenBLAS runs an AVX2 kernel on this AVX-512 CPU (OPENBLAS_CORETYPE=%s),\n"
           "  about half its speed; unset OPENBLAS_CORETYPE. brigade knn's blocked backend\n"
           "  (auto's choice here) picks its own kernel and is not affected.\n",
           core);
  else if (bg_knn_blas_degraded())
    printf("Warning: OpenBLAS runs an AVX2 kernel on this AVX-512 CPU, which it does not\n"
           "  recognise, well below its speed; OPENBLAS_CORETYPE=SkylakeX in the\n"
           "  environment selects its AVX-512 kernel.\n"
           "  brigade knn's blocked backend (auto's choice here) is not affected.\n");
  const char *bf16 = bg_knn_cpu_kernel(BG_KNN_BF16);
  printf("knn kernels\n");
  printf("  exact:     %s\n", bg_knn_cpu_kernel(BG_KNN_EXACT));
  if (bf16)
    printf("  bf16:      %s\n", bf16);
  else
    printf("  bf16:      runs exact (%s)\n", bf16_off_why());
  printf("GPU\n");
  if (f->gpu_rc == 0) {
    printf("  %s (compute capability %d.%d)%s\n", f->gpu.name, f->gpu.cc_major, f->gpu.cc_minor,
           f->gpu.devices > 1 ? ", device 0 of several" : "");
    printf("  SMs:       %d\n", f->gpu.sm_count);
    printf("  memory:    %s free of %s\n", cli_bytes(f->gpu.free_bytes, buf, sizeof buf),
           cli_bytes(f->gpu.total_bytes, gbuf, sizeof gbuf));
    if (f->bw_rc == 0)
      printf("  copies:    %.1f GB/s host-to-device, %.1f GB/s device-to-host (pinned 64 MiB, "
             "best of 3)\n",
             f->h2d_gbps, f->d2h_gbps);
    else
      printf("  copies:    not measured (%s)\n", bg_strerror(f->bw_rc));
  } else {
    printf("  No GPU detected (%s)\n", f->gpu.why);
  }
  printf("Backends\n");
  for (size_t i = 0; i < bg_backend_count(); i++) {
    bg_backend_info_t b;
    bg_backend_info(i, &b);
    printf("  %-16s %s\n", b.name,
           !b.compiled ? "not compiled in"
           : b.usable  ? "usable"
           : !strcmp(b.name, "mpi")
               ? "compiled in; runs under mpirun (or brigade bench --backends mpi --ranks N)"
               : "compiled in, unusable here");
  }
  if (f->limits) {
    bench_limits_text(stdout, f->limits);
    printf("  (%s; --remeasure measures again)\n",
           f->limits_cached ? "from the cache" : "measured now");
  }
}

/* Makes a short driver-supplied string safe inside JSON quotes: quotes, backslashes and
 * control characters become spaces (device names and CUDA's messages have none in practice). */
static char *json_safe(char *s) {
  for (char *p = s; *p; p++)
    if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
      *p = ' ';
  return s;
}

static void print_json(facts *f) {
  const bg_topo_t *t = f->topo;
  printf("{\"version\":\"%s\",\"build\":\"%s\",", bg_version(), bg_build_options());
  printf("\"cpu\":{\"logical_total\":%u,\"physical_total\":%u,\"logical_usable\":%u,"
         "\"physical_usable\":%u,\"cpu_quota\":%.3f,\"default_workers\":%u,\"numa_nodes\":%u},",
         bg_topo_pus_total(t), bg_topo_cores_total(t), bg_topo_pus(t), bg_topo_cores(t),
         bg_topo_cpu_quota(t), bg_topo_default_workers(t), bg_topo_numa_nodes(t));
  printf("\"caches\":{");
  for (unsigned l = 1; l <= 3; l++)
    printf("%s\"l%u\":{\"bytes\":%llu,\"count\":%u}", l > 1 ? "," : "", l,
           (unsigned long long)bg_topo_cache_size(t, l), bg_topo_cache_count(t, l));
  printf("},\"memory\":{\"available_bytes\":");
  if (f->mem_rc == 0)
    printf("%llu", (unsigned long long)f->mem);
  else
    printf("null");
  const char *bf16 = bg_knn_cpu_kernel(BG_KNN_BF16);
  printf("},\"knn_kernels\":{\"exact\":\"%s\",\"bf16\":", bg_knn_cpu_kernel(BG_KNN_EXACT));
  if (bf16)
    printf("\"%s\"", bf16);
  else
    printf("null,\"bf16_why\":\"%s\"", bf16_off_why());
  printf("},\"gpu\":{\"detected\":%s,", f->gpu_rc == 0 ? "true" : "false");
  if (f->gpu_rc == 0) {
    printf("\"name\":\"%s\",\"compute_capability\":\"%d.%d\",\"total_bytes\":%llu,"
           "\"free_bytes\":%llu,\"devices\":%d,\"sm_count\":%d,",
           json_safe(f->gpu.name), f->gpu.cc_major, f->gpu.cc_minor,
           (unsigned long long)f->gpu.total_bytes, (unsigned long long)f->gpu.free_bytes,
           f->gpu.devices, f->gpu.sm_count);
    /* null, not 0, when the copies could not be measured: 0 GB/s would read as a figure. */
    if (f->bw_rc == 0)
      printf("\"h2d_gbps\":%.2f,\"d2h_gbps\":%.2f", f->h2d_gbps, f->d2h_gbps);
    else
      printf("\"h2d_gbps\":null,\"d2h_gbps\":null");
  } else
    printf("\"why\":\"%s\"", json_safe(f->gpu.why));
  printf("},\"backends\":[");
  for (size_t i = 0; i < bg_backend_count(); i++) {
    bg_backend_info_t b;
    bg_backend_info(i, &b);
    printf("%s{\"name\":\"%s\",\"compiled\":%s,\"usable\":%s,\"priority\":%d}", i ? "," : "",
           b.name, b.compiled ? "true" : "false", b.usable ? "true" : "false", b.priority);
  }
  printf("],\"blas_degraded\":%s", bg_knn_blas_degraded() ? "true" : "false");
  if (f->limits) {
    printf(",\"limits\":{\"cached\":%s,", f->limits_cached ? "true" : "false");
    bench_limits_json(stdout, f->limits);
    printf("}");
  }
  printf("}\n");
}

int cmd_info(int argc, char **argv) {
  int json = 0, limits = 0, remeasure = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (strcmp(argv[i], "--limits") == 0)
      limits = 1;
    else if (strcmp(argv[i], "--remeasure") == 0)
      remeasure = 1;
    else
      return cli_usage("info", "unknown option '%s'", argv[i]);
  }
  if (remeasure && !limits)
    return cli_usage("info", "--remeasure goes with --limits");
  facts f = {0};
  bench_limits lim;
  if (limits) {
    char err[512];
    if (bench_limits_get(&lim, 1, remeasure, &f.limits_cached, stderr, err, sizeof err) != 0)
      return cli_fail("info", "cannot measure the limits: %s", err);
    f.limits = &lim;
  }
  int rc = bg_topo_create(&f.topo);
  if (rc != 0)
    return cli_fail("info", "cannot read the machine's topology: %s", bg_strerror(rc));
  f.mem_rc = bg_mem_available(&f.mem);
  f.gpu_rc = bg_gpu_query(&f.gpu);
  if (f.gpu_rc == 0)
    f.bw_rc = bg_gpu_bandwidth(&f.h2d_gbps, &f.d2h_gbps);
  if (json)
    print_json(&f);
  else
    print_text(&f);
  bg_topo_destroy(f.topo);
  return CLI_OK;
}
