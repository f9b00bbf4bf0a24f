/* SPDX-License-Identifier: MIT */
/* brigade's entry point: global flags, then one subcommand from the table. */
#include "cli.h"
#include "opts.h"

#include "brigade.h"

#include <string.h>

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

int main(int argc, char **argv) {
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
  return c->run(argc - 1, argv + 1);
}
