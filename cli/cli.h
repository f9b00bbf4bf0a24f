/* SPDX-License-Identifier: MIT */
/* The subcommands, one file each, chosen from the table in main.c (git's pattern). */
#ifndef BRIGADE_CLI_H
#define BRIGADE_CLI_H

#include <stdio.h>

typedef struct cli_cmd {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command's name */
  void (*help)(FILE *f);
  const char *summary;
} cli_cmd;

int cmd_info(int argc, char **argv);
void cmd_info_help(FILE *f);
int cmd_knn(int argc, char **argv);
void cmd_knn_help(FILE *f);
int cmd_map(int argc, char **argv);
void cmd_map_help(FILE *f);
int cmd_bench(int argc, char **argv);
void cmd_bench_help(FILE *f);

/* Parse a command line as cmd_bench / cmd_knn would, run nothing, and return 0 or the exit
 * code of the usage error (its message printed to stderr). For the option fuzzer. */
int cmd_bench_check(int argc, char **argv);
int cmd_knn_check(int argc, char **argv);

#endif
