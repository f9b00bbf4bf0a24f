/* SPDX-License-Identifier: MIT */
/* The command line of `brigade map`, checked whole before anything runs. */
#ifndef BRIGADE_CLI_MAP_ARGS_H
#define BRIGADE_CLI_MAP_ARGS_H

#include <stdint.h>

#include "map_files.h"

typedef struct map_args {
  const char *task;     /* LIB:FN */
  const char *name;     /* the journal's task name; default FN */
  const char *in;       /* items file, or NULL for --n indices */
  uint64_t in_size;     /* raw records' size; 0: .npy */
  uint64_t n;           /* --n */
  const char *out;      /* results file, or NULL */
  map_out_format fmt;   /* how results are written */
  const char *backend;  /* default procs */
  uint64_t workers;     /* 0: the pool's default */
  uint32_t timeout_ms;  /* 0: none */
  uint32_t timeout_pct; /* --timeout P%: of the median item time; 0: none */
  uint32_t retry_on;    /* BG_RETRY_* bits; 0: every cause */
  uint64_t retries;     /* --retries */
  int halt;             /* --halt soon|now,fail=... given */
  int halt_now;         /* now: the running items stop too (procs backends) */
  uint64_t halt_fails;  /* stop after this many failures */
  double halt_pct;      /* or this percentage of the items (> 0) */
  const char *journal;  /* --journal */
  int resume;           /* --resume / --resume-failed */
  int resume_failed;
  int sync; /* bg_journal_sync_t */
  uint32_t sync_ms;
  int sync_given;
  const char *status; /* --status FILE */
  int progress;       /* 1 on, 0 off, -1 auto (a terminal) */
  int sharded;        /* --shard K/N, or a Slurm array */
  int shard_given;    /* --shard given (0/1 included): the Slurm array's variables are unread */
  uint64_t shard_k, shard_n;
  const char *shard_from; /* "--shard" or "Slurm array task 3 of 16" */
  char shard_from_buf[96];
  char *const *merge; /* --merge J... (NULL: not a merge) */
  int nmerge;
} map_args;

/* Parses argv (argv[0] is "map"). Returns 0, or 2 after printing the usage error. Reads the
 * Slurm array's environment when no --shard is given. */
int map_args_parse(int argc, char **argv, map_args *a);

#endif
