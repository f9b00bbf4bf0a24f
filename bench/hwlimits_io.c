/* SPDX-License-Identifier: MIT */
/* The limits' cache file and their printed forms. The cache is a flat JSON object that this
 * file both writes and reads: anything it does not recognise is measured again, never trusted. */
#define _GNU_SOURCE
#include "hwlimits.h"
#include "contention.h"
#include "outfile.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIMITS_SCHEMA 1

/* Every figure with its JSON name, so that writing, reading and printing share one list. */
typedef struct field {
  const char *name;
  size_t offset;
} field;

#define F(x)                                                                                       \
  { #x, offsetof(bench_limits, x) }
static const field fields[] = {
    F(read_gbs_1),      F(read_gbs_all),    F(write_gbs_1), F(write_gbs_all),
    F(fault_us_4k),     F(fault_us_4k_thp), F(file_us_1),   F(file_us_shared),
    F(file_us_private), F(fork_us),         F(wake_us),     F(sgemm_gflops),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])

static double *at(bench_limits *l, size_t k) {
  return (double *)((char *)l + fields[k].offset);
}

static double get(const bench_limits *l, size_t k) {
  return *(const double *)((const char *)l + fields[k].offset);
}

/* The first line of /proc/cpuinfo's @key value, or "". */
static void cpuinfo(const char *key, char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, strlen(key)) && strchr(line, ':')) {
      snprintf(buf, cap, "%s", strchr(line, ':') + 2);
      buf[strcspn(buf, "\n")] = '\0';
      break;
    }
  fclose(f);
}

void bench_limits_machine(char *buf, size_t cap) {
  char host[64] = "?", model[160];
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  cpuinfo("model name", model, sizeof model);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN), pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  snprintf(buf, cap, "%s / %s / %ld CPUs / %lld MiB", host, model[0] ? model : "?", cpus,
           (long long)pages * page >> 20);
  /* The key is a JSON string: nothing in it may need escaping. */
  for (char *p = buf; *p; p++)
    if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
      *p = ' ';
}

int bench_limits_cache_path(char *buf, size_t cap) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int n;
  if (xdg && *xdg == '/')
    n = snprintf(buf, cap, "%s/brigade/limits.json", xdg);
  else if (home && *home == '/')
    n = snprintf(buf, cap, "%s/.cache/brigade/limits.json", home);
  else
    return -1;
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

void bench_limits_json(FILE *f, const bench_limits *l) {
  fprintf(f, "\"schema\":%d,\"machine\":\"%s\",\"measured_at\":%.0f,\"workers\":%u", LIMITS_SCHEMA,
          l->machine, l->measured_at, l->workers);
  for (size_t k = 0; k < NFIELDS; k++)
    fprintf(f, ",\"%s\":%.4f", fields[k].name, get(l, k));
  fprintf(f, ",\"others_cpu\":%.4f,\"skipped\":\"%s\"", l->others_cpu, l->skipped);
}

/* The number after "name": in @text, or -1 when absent. */
static double number(const char *text, const char *name) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", name);
  const char *p = strstr(text, key);
  if (!p)
    return -1;
  char *end;
  double v = strtod(p + strlen(key), &end);
  return end == p + strlen(key) ? -1 : v;
}

/* The string after "name":" in @text, into buf; -1 when absent or too long. */
static int string(const char *text, const char *name, char *buf, size_t cap) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":\"", name);
  const char *p = strstr(text, key), *e;
  if (!p || !(e = strchr(p += strlen(key), '"')) || (size_t)(e - p) >= cap)
    return -1;
  memcpy(buf, p, (size_t)(e - p));
  buf[e - p] = '\0';
  return 0;
}

int bench_limits_load(const char *path, bench_limits *l) {
  char text[8192];
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(text, 1, sizeof text - 1, f);
  int whole = feof(f);
  fclose(f);
  if (!whole)
    return -1;
  text[n] = '\0';
  memset(l, 0, sizeof *l);
  char here[sizeof l->machine];
  bench_limits_machine(here, sizeof here);
  if (number(text, "schema") != LIMITS_SCHEMA ||
      string(text, "machine", l->machine, sizeof l->machine) != 0 || strcmp(l->machine, here) ||
      string(text, "skipped", l->skipped, sizeof l->skipped) != 0)
    return -1;
  l->measured_at = number(text, "measured_at");
  double w = number(text, "workers");
  if (l->measured_at <= 0 || w < 1 || w > 1e6)
    return -1;
  l->workers = (unsigned)w;
  for (size_t k = 0; k < NFIELDS; k++)
    if ((*at(l, k) = number(text, fields[k].name)) < 0)
      return -1;
  /* -1 (unknown) is a value of its own here: only its absence makes the file foreign. */
  if (!strstr(text, "\"others_cpu\":"))
    return -1;
  l->others_cpu = number(text, "others_cpu");
  return 0;
}

int bench_limits_save(const char *path, const bench_limits *l, char *err, size_t cap) {
  /* The folder first (…/.cache and …/.cache/brigade), then the file, written whole. */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *p = dir + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, cap, "cannot create %s: %s", dir, strerror(errno));
        return -1;
      }
      *p = '/';
    }
  bench_outfile o;
  if (bench_outfile_open(&o, path, err, cap) != 0)
    return -1;
  fputc('{', o.f);
  bench_limits_json(o.f, l);
  fputs("}\n", o.f);
  return bench_outfile_commit(&o, err, cap);
}

int bench_limits_get(bench_limits *l, int measure, int remeasure, int *cached, FILE *say, char *err,
                     size_t cap) {
  char path[4096], why[512];
  int have_path = bench_limits_cache_path(path, sizeof path) == 0;
  *cached = have_path && !remeasure && bench_limits_load(path, l) == 0;
  if (*cached)
    return 0;
  if (!measure && !remeasure)
    return 1;
  fprintf(say, "brigade: measuring this machine's limits (a few seconds; cached afterwards)...\n");
  if (bench_limits_measure(l, err, cap) != 0)
    return -1;
  if (!have_path)
    fprintf(say, "brigade: neither XDG_CACHE_HOME nor HOME is set: the limits are not cached\n");
  else if (bench_limits_save(path, l, why, sizeof why) != 0)
    fprintf(say, "brigade: the limits are not cached: %s\n", why);
  return 0;
}

/* "12.3" or "-" for a figure that was not measured. */
static const char *fig(double v, const char *fmt, char *buf, size_t cap) {
  if (v <= 0)
    return "-";
  snprintf(buf, cap, fmt, v);
  return buf;
}

void bench_limits_text(FILE *f, const bench_limits *l) {
  char a[32], b[32], c[32];
  fprintf(f, "Limits (measured on %s)\n", l->machine);
  fprintf(
      f, "  memory read:        %s GB/s one thread, %s GB/s %u threads (chunk-mean, vector-mean)\n",
      fig(l->read_gbs_1, "%.1f", a, sizeof a), fig(l->read_gbs_all, "%.1f", b, sizeof b),
      l->workers);
  fprintf(f, "  memory write:       %s GB/s one thread, %s GB/s %u threads (alloc's fill)\n",
          fig(l->write_gbs_1, "%.1f", a, sizeof a), fig(l->write_gbs_all, "%.1f", b, sizeof b),
          l->workers);
  fprintf(f,
          "  first touch:        %s us per 4 KiB page, %s us per 4 KiB with huge pages (alloc)\n",
          fig(l->fault_us_4k, "%.3f", a, sizeof a), fig(l->fault_us_4k_thp, "%.3f", b, sizeof b));
  fprintf(f,
          "  file create+unlink: %s us one thread; per worker with %u: %s us in one folder, %s us "
          "in one folder each (disk-small)\n",
          fig(l->file_us_1, "%.1f", a, sizeof a), l->workers,
          fig(l->file_us_shared, "%.1f", b, sizeof b),
          fig(l->file_us_private, "%.1f", c, sizeof c));
  fprintf(f, "  fork + wait:        %s us (procs maps)\n", fig(l->fork_us, "%.0f", a, sizeof a));
  fprintf(f, "  wake threads:       %s us (threads maps)\n", fig(l->wake_us, "%.1f", a, sizeof a));
  fprintf(f, "  sgemm:              %s GFLOP/s, %u threads (knn)\n",
          fig(l->sgemm_gflops, "%.0f", a, sizeof a), l->workers);
  if (l->skipped[0])
    fprintf(f, "  not measured:       %s\n", l->skipped);
  if (l->others_cpu >= BENCH_OTHERS_NOTICEABLE)
    fprintf(
        f,
        "  caution:            other processes used %.0f%% of the CPU while these were measured:\n"
        "                      the figures are low; measure again on a quiet machine "
        "(--remeasure)\n",
        100 * l->others_cpu);
}
