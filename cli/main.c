/* SPDX-License-Identifier: MIT */
/* brigade's entry point: global flags, then one subcommand from the table. */
#include "cli.h"
#include "opts.h"

#include "brigade.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int cmd_help(int argc, char **argv);
static void cmd_help_help(FILE *f);

static const cli_cmd commands[] = {
    {"info", cmd_info, cmd_info_help, "show cores, caches, memory and the backends available"},
    {"bench", cmd_bench, cmd_bench_help, "measure the backends and schedules on this machine"},
    {"knn", cmd_knn, cmd_knn_help, "exact nearest-neighbour search in bounded memory"},
    {"map", cmd_map, cmd_map_help, "run a function over a job; resume it, shard it"},
    {"help", cmd_help, cmd_help_help, "show the help of a command"},
};

enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
  fprintf(f, "usage: brigade [--version] [--help] <command> [<options>]\n\n"
             "Parallel map with interchangeable backends, and the benchmarks that say which\n"
             "way of parallelising a job pays on this machine.\n\ncommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n'brigade help <command>' or 'brigade <command> --help' shows a command's options.\n");
}

static const cli_cmd *find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static void cmd_help_help(FILE *f) {
  fprintf(f, "usage: brigade help [<command>]\n\nShows the options of a command.\n");
}

static int cmd_help(int argc, char **argv) {
  if (argc < 2) {
    usage(stdout);
    return CLI_OK;
  }
  if (argc > 2)
    return cli_usage("help", "expected one command name, got %d words", argc - 1);
  const cli_cmd *c = find(argv[1]);
  if (!c)
    return cli_usage("help", "unknown command '%s'", argv[1]);
  c->help(stdout);
  return CLI_OK;
}

/* OpenBLAS starts its threads as the program loads, each with buffers of its own; under a small
 * address-space limit (ulimit -v) they fail to start or hang in their allocator, and a fork
 * (the procs workers) then waits for them forever in OpenBLAS's fork handler. Such a limit
 * gets one BLAS thread: the program runs itself again with OPENBLAS_NUM_THREADS=1, once (the
 * variable set is what stops a second time). Only a limit below 4 GiB pays the few
 * milliseconds. */
static void blas_fits(char **argv) {
  struct rlimit r;
  if (getenv("OPENBLAS_NUM_THREADS") || getrlimit(RLIMIT_AS, &r) != 0 ||
      r.rlim_cur == RLIM_INFINITY || r.rlim_cur >= (rlim_t)4 << 30)
    return;
  if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0)
    execv("/proc/self/exe", argv); /* returns only if it failed: go on as we are */
}

/* BRIGADE_KNN_ISA caps the knn kernels' instructions (bg_knn_cpu_kernel). The library takes a
 * value it does not know as no cap; a command line says so instead, since a misspelt cap
 * (avx-512) would silently compare the wrong builds. */
static int knn_isa_ok(void) {
  static const char *const known[] = {"generic", "generic-amx", "avx2", "avx512"};
  const char *v = getenv("BRIGADE_KNN_ISA");
  if (!v || !*v)
    return 1;
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (!strcmp(v, known[i]))
      return 1;
  return 0;
}

int main(int argc, char **argv) {
  blas_fits(argv);
  /* A file size limit (ulimit -f) is a write that fails with EFBIG, which every writer reports
   * and survives (temporaries removed, previous files kept), not a signal that kills. */
  signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  const char *first = argv[1];
  if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0) {
    usage(stdout);
    return CLI_OK;
  }
  if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
    printf("brigade %s (%s)\n", bg_version(), bg_build_options());
    return CLI_OK;
  }
  if (first[0] == '-')
    return cli_usage(NULL, "unknown option '%s'", first);
  const cli_cmd *c = find(first);
  if (!c)
    return cli_usage(NULL, "unknown command '%s' (commands: info, bench, knn, map, help)", first);
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      c->help(stdout);
      return CLI_OK;
    }
  }
  if (c->run != cmd_help && !knn_isa_ok()) {
    /* A usage error, but of the environment: the options' help would not show it. */
    cli_fail(NULL,
             "the environment variable BRIGADE_KNN_ISA='%s' is none of generic, avx2, avx512 "
             "(or generic-amx, for tests); unset it for the best this CPU runs",
             getenv("BRIGADE_KNN_ISA"));
    return CLI_USAGE;
  }
  return c->run(argc - 1, argv + 1);
}
