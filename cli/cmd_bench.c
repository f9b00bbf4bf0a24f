/* SPDX-License-Identifier: MIT */
/* brigade bench: run a benchmark suite and print its table. The overhead suite measures the
 * engine itself: what each schedule costs per item and what speedup it reaches. */
#include "cli.h"
#include "opts.h"
#include "overhead.h"

#include "brigade.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cmd_bench_help(FILE *f) {
  fprintf(f,
          "usage: brigade bench [--suite overhead] [--workers N] [--repeat R] [--size quick|full]\n"
          "                     [--format table|csv|json]\n\n"
          "Times every backend and schedule on this machine and prints median [min-max],\n"
          "speedup over seq and parallel efficiency, with one untimed warm-up per case.\n\n"
          "  --suite S     overhead (default): per-item scheduling cost with trivial items,\n"
          "                and speedup on equal (prime-fixed) and unequal (prime-range) work\n"
          "  --workers N   workers per pool (default: physical cores; BG_THREADS overrides)\n"
          "  --repeat R    timed runs per case, 1..50 (default 3)\n"
          "  --size S      full (default): 10M trivial items, 100,000 x trial division of\n"
          "                9999991, trial division of every i < 1,000,000; quick: a tenth\n"
          "  --format F    table (default), csv or json (schema 1)\n");
}

typedef struct bench_args {
  bench_overhead_opts o;
  bench_format format;
} bench_args;

static int parse_workers(const char *s, unsigned *out) {
  uint64_t v;
  const char *why;
  if (strcmp(s, "auto") == 0) {
    *out = 0;
    return 0;
  }
  if (cli_parse_count(s, 1, 4096, &v, &why) != 0)
    return cli_usage("bench", "--workers '%s': %s (expected 1..4096 or auto)", s, why);
  *out = (unsigned)v;
  return 0;
}

static int parse_args(int argc, char **argv, bench_args *a) {
  a->o = (bench_overhead_opts){.repeat = 3,
                               .n_trivial = 10000000,
                               .n_fixed = 100000,
                               .n_range = 1000000,
                               .progress = isatty(2)};
  a->format = BENCH_TABLE;
  const char *env = getenv("BG_THREADS");
  if (env && *env && parse_workers(env, &a->o.workers) != 0)
    return cli_usage("bench", "the environment variable BG_THREADS='%s' is not a worker count",
                     env);
  for (int i = 1; i < argc; i++) {
    const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(opt, "--suite") && strcmp(opt, "--workers") && strcmp(opt, "--repeat") &&
        strcmp(opt, "--size") && strcmp(opt, "--format"))
      return cli_usage("bench", "unknown option '%s'", opt);
    if (!val)
      return cli_usage("bench", "option '%s' needs a value", opt);
    i++;
    if (!strcmp(opt, "--suite")) {
      if (strcmp(val, "overhead") != 0)
        return cli_usage("bench", "unknown suite '%s' (suites: overhead)", val);
    } else if (!strcmp(opt, "--workers")) {
      if (parse_workers(val, &a->o.workers) != 0)
        return CLI_USAGE;
    } else if (!strcmp(opt, "--repeat")) {
      uint64_t r;
      const char *why;
      if (cli_parse_count(val, 1, 50, &r, &why) != 0)
        return cli_usage("bench", "--repeat '%s': %s (expected 1..50)", val, why);
      a->o.repeat = (unsigned)r;
    } else if (!strcmp(opt, "--size")) {
      if (!strcmp(val, "quick")) {
        a->o.n_trivial /= 10, a->o.n_fixed /= 10, a->o.n_range /= 10;
      } else if (strcmp(val, "full") != 0) {
        return cli_usage("bench", "unknown size '%s' (sizes: quick, full)", val);
      }
    } else if (bench_format_parse(val, &a->format) != 0) {
      return cli_usage("bench", "unknown format '%s' (formats: table, csv, json)", val);
    }
  }
  return 0;
}

int cmd_bench(int argc, char **argv) {
  bench_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0)
    return rc;
  bench_result *res = malloc(sizeof *res);
  if (!res)
    return cli_fail("bench", "out of memory");
  const char *what = "";
  rc = bench_overhead(&a.o, res, &what);
  if (rc != 0) {
    free(res);
    return cli_fail("bench", "%s failed: %s", what, bg_strerror(rc));
  }
  const char *notes[BENCH_MAX_NOTES];
  for (size_t i = 0; i < res->nnotes; i++)
    notes[i] = res->notes[i];
  if (a.format == BENCH_TABLE)
    printf("brigade %s bench --suite overhead (%s)\n", bg_version(), bg_build_options());
  bench_report(stdout, a.format, res->rows, res->nrows, notes, res->nnotes);
  free(res);
  return CLI_OK;
}
