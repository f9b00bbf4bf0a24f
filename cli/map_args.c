/* SPDX-License-Identifier: MIT */
/* `brigade map`'s options (map_args.h): every value checked, every combination that cannot
 * work refused before anything runs, with the fix in the message. */
#include "map_args.h"

#include "opts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CMD "map"

static int count(const char *opt, const char *val, uint64_t min, uint64_t max, uint64_t *out) {
  const char *why;
  if (cli_parse_count(val, min, max, out, &why) != 0)
    return cli_usage(CMD, "%s '%s': %s", opt, val, why);
  return 0;
}

/* "1.5s", "500ms", "2m", a bare number of seconds (GNU parallel's unit), or "P%" of the median
 * time per item. */
static int parse_timeout(const char *val, map_args *a) {
  char *end;
  double v = strtod(val, &end);
  if (end != val && !strcmp(end, "%")) {
    if (!(v >= 100 && v <= 1e6))
      return cli_usage(CMD,
                       "--timeout '%s': a percentage of the median item time from 100%% to "
                       "1000000%% (below 100%%, half the items would be killed), e.g. 300%%",
                       val);
    a->timeout_pct = (uint32_t)(v + 0.5);
    return 0;
  }
  uint32_t *ms = &a->timeout_ms;
  double scale = !strcmp(end, "h")            ? 3600000
                 : !strcmp(end, "ms")         ? 1
                 : !strcmp(end, "s") || !*end ? 1000
                 : !strcmp(end, "m")          ? 60000
                                              : -1;
  if (end == val || scale < 0 || !isfinite(v) || v <= 0 || v * scale > 4e9 || v * scale < 1)
    return cli_usage(CMD,
                     "--timeout '%s': give a time per item from 1ms to 1000h, e.g. 30s, 500ms, "
                     "2m, a number of seconds, or P%% of the median item time",
                     val);
  *ms = (uint32_t)(v * scale + 0.5);
  return 0;
}

/* "failed,crashed,timeout": a comma-separated subset. */
static int parse_retry_on(const char *val, map_args *a) {
  static const char *const names[] = {"failed", "crashed", "timeout"};
  static const uint32_t bits[] = {BG_RETRY_FAILED, BG_RETRY_CRASHED, BG_RETRY_TIMEOUT};
  a->retry_on = 0;
  for (const char *p = val; *p;) {
    size_t len = strcspn(p, ",");
    int found = 0;
    for (int k = 0; k < 3; k++)
      if (len == strlen(names[k]) && !strncmp(p, names[k], len))
        a->retry_on |= bits[k], found = 1;
    if (!found)
      return cli_usage(CMD,
                       "--retry-on '%s': expected causes among failed, crashed, timeout, "
                       "separated by commas",
                       val);
    p += len + (p[len] == ',');
  }
  if (!a->retry_on)
    return cli_usage(CMD, "--retry-on '%s': name at least one cause", val);
  return 0;
}

/* "soon,fail=N" or "soon,fail=P%"; "never". */
static int parse_halt(const char *val, map_args *a) {
  if (!strcmp(val, "never")) {
    a->halt = 0;
    return 0;
  }
  int now = !strncmp(val, "now,fail=", 9);
  if (!now && strncmp(val, "soon,fail=", 10) != 0)
    return cli_usage(CMD, "--halt '%s': expected never, soon,fail=N, now,fail=N (or fail=P%%)",
                     val);
  a->halt_now = now;
  const char *v = val + (now ? 9 : 10);
  size_t len = strlen(v);
  if (len > 1 && v[len - 1] == '%') {
    char *end;
    double p = strtod(v, &end);
    if (end != v + len - 1 || !(p > 0 && p <= 100))
      return cli_usage(CMD, "--halt '%s': the percentage must be in (0, 100]", val);
    a->halt_pct = p;
  } else {
    const char *why;
    if (cli_parse_count(v, 1, UINT32_MAX, &a->halt_fails, &why) != 0)
      return cli_usage(CMD, "--halt '%s': the count after fail= %s", val, why);
  }
  a->halt = 1;
  return 0;
}

static int parse_sync(const char *val, map_args *a) {
  if (!strcmp(val, "none")) {
    a->sync = BG_JOURNAL_SYNC_NONE;
    return 0;
  }
  if (!strcmp(val, "every")) {
    a->sync = BG_JOURNAL_SYNC_EVERY;
    return 0;
  }
  uint64_t ms;
  const char *why;
  if (cli_parse_count(val, 1, 3600000, &ms, &why) != 0)
    return cli_usage(CMD,
                     "--sync '%s': expected none, every, or a period in milliseconds (1 to "
                     "3600000)",
                     val);
  a->sync = BG_JOURNAL_SYNC_INTERVAL;
  a->sync_ms = (uint32_t)ms;
  return 0;
}

static int parse_dtype(const char *val, map_args *a) {
  static const char *const names[] = {"f32", "f64", "i64"};
  static const bg_npy_dtype_t types[] = {BG_NPY_F32, BG_NPY_F64, BG_NPY_I64};
  for (int t = 0; t < 3; t++)
    if (!strcmp(val, names[t])) {
      a->fmt.dtype = types[t];
      return 0;
    }
  return cli_usage(CMD, "--out-dtype '%s': expected f32, f64 or i64", val);
}

/* "K/N" with 0 <= K < N. */
static int parse_shard(const char *val, map_args *a) {
  char *end;
  unsigned long long k = strtoull(val, &end, 10), n;
  if (end == val || *end != '/' || val[0] == '-')
    return cli_usage(CMD, "--shard '%s': expected K/N, e.g. 3/16 (shards 0 to N-1)", val);
  const char *s = end + 1;
  n = strtoull(s, &end, 10);
  if (end == s || *end || s[0] == '-' || n == 0 || k >= n || n > (1ull << 32))
    return cli_usage(CMD, "--shard '%s': expected K/N with 0 <= K < N, e.g. 3/16", val);
  /* 0/1 is the whole job under its plain names: how a Slurm array task runs a whole job. */
  a->shard_given = 1;
  a->sharded = n > 1;
  a->shard_k = k;
  a->shard_n = n;
  a->shard_from = "--shard";
  return 0;
}

static int parse_one(const char *opt, const char *val, map_args *a, uint64_t *out_size,
                     uint64_t *cols, int *dtype_given) {
  if (!strcmp(opt, "--task"))
    a->task = val;
  else if (!strcmp(opt, "--name"))
    a->name = val;
  else if (!strcmp(opt, "--in"))
    a->in = val;
  else if (!strcmp(opt, "--out"))
    a->out = val;
  else if (!strcmp(opt, "--journal"))
    a->journal = val;
  else if (!strcmp(opt, "--status"))
    a->status = val;
  else if (!strcmp(opt, "--backend"))
    a->backend = val;
  else if (!strcmp(opt, "--n"))
    return count(opt, val, 1, UINT64_C(1) << 40, &a->n);
  else if (!strcmp(opt, "--in-size"))
    return count(opt, val, 1, UINT64_C(1) << 30, &a->in_size);
  else if (!strcmp(opt, "--out-size"))
    return count(opt, val, 1, UINT64_C(1) << 30, out_size);
  else if (!strcmp(opt, "--out-cols"))
    return count(opt, val, 1, UINT64_C(1) << 24, cols);
  else if (!strcmp(opt, "--workers"))
    return count(opt, val, 1, 4096, &a->workers);
  else if (!strcmp(opt, "--retries"))
    return count(opt, val, 0, 1000, &a->retries);
  else if (!strcmp(opt, "--out-dtype"))
    return *dtype_given = 1, parse_dtype(val, a);
  else if (!strcmp(opt, "--timeout"))
    return parse_timeout(val, a);
  else if (!strcmp(opt, "--retry-on"))
    return parse_retry_on(val, a);
  else if (!strcmp(opt, "--halt"))
    return parse_halt(val, a);
  else if (!strcmp(opt, "--sync"))
    return a->sync_given = 1, parse_sync(val, a);
  else if (!strcmp(opt, "--shard"))
    return parse_shard(val, a);
  else
    return cli_unknown_option(CMD, opt);
  return 0;
}

/* A Slurm array task is shard (ID - MIN) / STEP of COUNT: `sbatch --array=0-99 brigade map ...`
 * needs no wrapper. */
static int shard_from_slurm(map_args *a) {
  const char *id = getenv("SLURM_ARRAY_TASK_ID"), *cnt = getenv("SLURM_ARRAY_TASK_COUNT");
  const char *min = getenv("SLURM_ARRAY_TASK_MIN"), *step = getenv("SLURM_ARRAY_TASK_STEP");
  if (!id)
    return 0;
  char *e1, *e2, *e3, *e4;
  long long i = strtoll(id, &e1, 10), c = cnt ? strtoll(cnt, &e2, 10) : -1;
  long long m = min ? strtoll(min, &e3, 10) : 0, s = step ? strtoll(step, &e4, 10) : 1;
  if (!cnt || *e1 || *e2 || (min && *e3) || (step && *e4) || c < 1 || s < 1 || i < m ||
      (i - m) % s != 0 || (i - m) / s >= c)
    return cli_usage(CMD,
                     "this Slurm array (task %s, count %s, min %s, step %s) is not a range "
                     "with a step; give the shard yourself with --shard K/N",
                     id, cnt ? cnt : "unset", min ? min : "unset", step ? step : "unset");
  a->sharded = 1;
  a->shard_k = (uint64_t)((i - m) / s);
  a->shard_n = (uint64_t)c;
  snprintf(a->shard_from_buf, sizeof a->shard_from_buf, "Slurm array task %lld", i);
  a->shard_from = a->shard_from_buf;
  return 0;
}

/* The results' format from --out's name and the --out-* options. */
static int result_format(map_args *a, uint64_t out_size, uint64_t cols, int dtype_given) {
  size_t len = a->out ? strlen(a->out) : 0;
  a->fmt.npy = len > 4 && !strcasecmp(a->out + len - 4, ".npy");
  if (!dtype_given)
    a->fmt.dtype = BG_NPY_I64;
  size_t el = a->fmt.dtype == BG_NPY_F32 ? 4 : 8;
  if (a->fmt.npy || dtype_given || cols) {
    if (out_size)
      return cli_usage(CMD, "--out-size goes with raw results; with --out-dtype the size is "
                            "--out-cols values of the dtype");
    a->fmt.cols = cols ? (size_t)cols : 1;
    a->fmt.size = a->fmt.cols * el;
  } else {
    a->fmt.size = out_size ? (size_t)out_size : 8;
  }
  return 0;
}

static int check(map_args *a, uint64_t out_size, uint64_t cols, int dtype_given) {
  if (a->merge) {
    if (a->task || a->in || a->n || a->journal || a->sharded)
      return cli_usage(CMD, "--merge takes the shards' journals and --out, --out-dtype, "
                            "--out-cols, --status; it runs nothing");
    if (!a->out && !a->status)
      return cli_usage(CMD, "--merge needs --out FILE (and/or --status FILE) for the result");
    return result_format(a, out_size, cols, dtype_given);
  }
  if (!a->task)
    return cli_usage(CMD, "--task LIB:FN is required: the function to run on every item");
  if (!a->in == !a->n)
    return cli_usage(CMD, "give the items as --n N (the indices 0..N-1) or --in FILE, not %s",
                     a->in ? "both" : "neither");
  if (a->in_size && !a->in)
    return cli_usage(CMD, "--in-size goes with --in FILE (raw records)");
  if ((a->resume || a->resume_failed) && !a->journal)
    return cli_usage(CMD, "%s needs --journal FILE: the record of the run to resume",
                     a->resume ? "--resume" : "--resume-failed");
  if (a->resume && a->resume_failed)
    return cli_usage(CMD, "give --resume or --resume-failed, not both");
  if (a->sync_given && !a->journal)
    return cli_usage(CMD, "--sync goes with --journal");
  if (a->sharded && !a->out && !a->journal)
    return cli_usage(CMD, "a shard must keep its results: give --out FILE and/or --journal "
                          "FILE (each shard writes its own, named .shardK-of-N)");
  if (a->halt_now && strncmp(a->backend, "procs", 5) != 0)
    return cli_usage(CMD, "--halt now needs a backend that can stop a running item: procs, "
                          "procs-copy or procs-persistent (or use --halt soon)");
  if (a->retry_on && !a->retries)
    return cli_usage(CMD, "--retry-on says which failures --retries N runs again; give --retries");
  return result_format(a, out_size, cols, dtype_given);
}

int map_args_parse(int argc, char **argv, map_args *a) {
  memset(a, 0, sizeof *a);
  a->backend = "procs";
  a->progress = -1;
  uint64_t out_size = 0, cols = 0;
  int dtype_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--resume")) {
      a->resume = 1;
    } else if (!strcmp(o, "--resume-failed")) {
      a->resume_failed = 1;
    } else if (!strcmp(o, "--progress")) {
      a->progress = 1;
    } else if (!strcmp(o, "--no-progress")) {
      a->progress = 0;
    } else if (!strcmp(o, "--merge")) {
      /* Every word up to the next option is a shard's journal. */
      int k = i + 1;
      while (k < argc && strncmp(argv[k], "--", 2) != 0)
        k++;
      if (k == i + 1)
        return cli_usage(CMD,
                         "--merge needs the shards' journals, e.g. --merge run.shard*.journal");
      a->merge = argv + i + 1;
      a->nmerge = k - i - 1;
      i = k - 1;
    } else if (i + 1 >= argc) {
      return cli_needs_value(CMD, o);
    } else {
      int rc = parse_one(o, argv[i + 1], a, &out_size, &cols, &dtype_given);
      if (rc != 0)
        return rc;
      i++;
    }
  }
  if (!a->shard_given && !a->merge && shard_from_slurm(a) != 0)
    return CLI_USAGE;
  return check(a, out_size, cols, dtype_given);
}
