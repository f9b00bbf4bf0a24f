/* SPDX-License-Identifier: MIT */
/* brigade bench: the lecture's experiments on this machine (the catalogue suite and the knn
 * suite), or the engine's own scheduling costs (the overhead suite), with tables,
 * explanations, CSV, JSON, Markdown and plots. */
#define _GNU_SOURCE
#include "cli.h"
#include "contention.h"
#include "knn.h"
#include "opts.h"
#include "outfile.h"
#include "overhead.h"
#include "plot.h"
#include "trace.h"
#include "plugin.h"
#include "report.h"
#include "runner.h"

#include "brigade.h"
#include "brigade/dist.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void cmd_bench_help(FILE *f) {
  fprintf(f, "usage: brigade bench [options]\n\n"
             "Runs the lecture's workloads with a sequential loop and every parallel backend, and\n"
             "prints, per case, median [min-max] wall time, CPU use, peak memory, speedup over\n"
             "the sequential loop and efficiency, then sentences computed from those numbers\n"
             "that say where the time went.\n\n"
             "  --suite S        catalogue (default): the lecture's workloads;\n"
             "                   knn: the lecture's similarity search, every knn backend beside\n"
             "                   OpenBLAS's bare sgemm (--backends naive,blocked,bf16,file,blas,\n"
             "                   auto,sgemm; bf16: blocked with --precision bf16, its share of\n"
             "                   pairs scored again in fp32 in the plan column; file: blocked\n"
             "                   reading the database from a .npy file in TMPDIR in pieces,\n"
             "                   within half the database's size;\n"
             "                   with a GPU also cuda, brigade's GPU backend, with its time split\n"
             "                   into transfers, products and top-k, and cublas-sgemm, cuBLAS's\n"
             "                   bare FP32 product on the GPU; without one these two are shown\n"
             "                   UNAVAILABLE with the reason, and do not fail the run);\n"
             "                   overhead: per-item scheduling cost of every schedule\n"
             "  --workload LIST  workloads to run, comma-separated (default: all):\n");
  for (size_t i = 0; i < bench_workload_count(); i++)
    fprintf(f, "                     %-12s %s\n", bench_workload_at(i)->name,
            bench_workload_at(i)->simulates);
  fprintf(
      f, "  --task LIB:FN    run your own function instead, int FN(void *out, const void *in,\n"
         "                   size_t i, void *ctx), from a shared library (see examples/plugin)\n"
         "  --out-size B     bytes each --task result takes (default 8); a task writing past\n"
         "                   them is caught and its item reported, never left in memory\n"
         "  --timeout S      --task: seconds (fractional) one item may run; past it the item is\n"
         "                   killed (its worker process, or its row's process) and reported\n"
         "  --n N            items per map (overrides the workload's sizes; required with --task)\n"
         "  --param V        the workload's knob: seconds per sleep, bytes per file, MiB per\n"
         "                   alloc item, doubles in the mean's array (with --n: one case)\n"
         "  --size S         quick (default; the whole catalogue in about 15 s) or lecture\n"
         "                   (the lecture's sizes: minutes, and several GiB for alloc)\n"
         "  --backends LIST  parallel backends to compare with seq (default: all usable):\n"
         "                   threads, procs (workers forked at each map, shared-memory\n"
         "                   results), procs-copy (items and results through pipes, as\n"
         "                   Python's pools pickle them), openmp; mpi with --ranks;\n"
         "                   procs-persistent (workers kept between maps) only when named\n"
         "  --workers LIST   worker counts, e.g. 1,2,4; sweep (1, 2, 4, ... up to twice the\n"
         "                   cores); auto (default: one per core, more when items block)\n"
         "  --repeat R       timed runs per row, 1..50 (default 3), after one warm-up (knn:\n"
         "                   0.2 s of warm-up runs when a run is shorter than 1 s, for\n"
         "                   brigade and the Python peers alike)\n"
         "  --shapes LIST    knn: search these shapes instead of the suite's, each\n"
         "                   DBxDIMxQUERIES (database vectors, dimension, queries; K, M, G\n"
         "                   suffixes), e.g. 100Kx768x1000,1Mx128x100; --size still sets the\n"
         "                   time each row repeats for and --max-seconds's default\n"
         "  --max-seconds S  knn: skip a row predicted to run longer (default 1 quick, 120\n"
         "                   lecture)\n"
         "  --mem-budget B   knn: memory budget of every search (default: the library's; the\n"
         "                   memory-wall case 1G, or 32M quick; a cuda row that needs more\n"
         "                   than that runs within the GPU's memory, and a note says so)\n"
         "  --peers python   also run the Python frameworks (a loop, multiprocessing,\n"
         "                   concurrent.futures, joblib, mpire, NumPy; with --suite knn: NumPy,\n"
         "                   PyTorch, faiss; with --suite overhead: a reused multiprocessing.Pool\n"
         "                   in the map-cost section) on every case, in the same tables, with\n"
         "                   a 'vs peer' column; make bench-peers installs them\n"
         "  --python PATH    the interpreter for --peers (default: $BRIGADE_PYTHON or python3)\n"
         "  --peer-timeout S seconds one peer process may run before it is killed (default\n"
         "                   1800); a peer printing over 1 MiB is killed too\n"
         "  --peers-dir DIR  where the peer scripts are (default: those installed with brigade,\n"
         "                   PREFIX/share/brigade/peers; in a build folder, the source tree's)\n"
         "  --ranks N        start mpirun with N ranks of this command (--backends mpi; as root\n"
         "                   and beyond the cores too); or run it under mpirun yourself\n"
         "  --insights       per row, what each worker did in the last run: items, start-up,\n"
         "                   busy and idle time, and the imbalance between workers\n"
         "  --limits         compare every row with this machine's limits (brigade info\n"
         "                   --limits), measuring them first if none are cached; without it\n"
         "                   the cached ones are used when there are\n"
         "  --format F       table (default), csv, json (docs/bench-schema.json), markdown\n"
         "  --out FILE       write the report to FILE instead of standard output\n"
         "  --plot FILE      draw speedups with gnuplot to FILE.svg or FILE.png\n"
         "  --trace FILE     each row's last timed run as a timeline, one track per worker\n"
         "                   (start-up, chunks, waits, idle), in the Chrome trace format:\n"
         "                   open FILE in Perfetto or chrome://tracing. Costs two clock reads\n"
         "                   per chunk. mpi rows and --task rows run in a supervised child\n"
         "                   are listed without spans; the Python peers are not in it\n"
         "  --quiet-wait S   run a row again when other processes used 10%% or more of the\n"
         "                   CPU during it, once they have used less for a second, waiting\n"
         "                   up to S seconds for that; the less contended run is shown, and\n"
         "                   a note says so (brigade's rows but mpi's; the peers and --trace\n"
         "                   keep their first run)\n\n"
         "A --task function is not trusted. Its seq, threads and openmp rows each run in a\n"
         "child process of their own (procs rows isolate every item already), so a crash,\n"
         "abort(), exit() or hang ends only that row: every item still runs, and the row is\n"
         "shown as FAILED, without a timing, with exact counts under the table (items that\n"
         "returned non-zero, crashed, called exit(), outlived --timeout, wrote past\n"
         "--out-size). Any FAILED brigade row makes the exit status 1.\n\n"
         "Ctrl-C (or SIGTERM) stops the run within a second whatever the task or a peer is\n"
         "doing: child processes are killed, temporary files removed, the rows that finished\n"
         "printed; the exit status is 130 (143 for SIGTERM). BG_THREADS sets the default\n"
         "worker count.\n");
}

/* --workload may be repeated; the names, all lists together, are bounded by this. */
#define BENCH_MAX_WORKLOADS 32

typedef struct bench_args {
  const char *suite;
  const bench_workload *workloads[BENCH_MAX_WORKLOADS];
  size_t nworkloads;
  const char *task;
  uint64_t out_size;
  bench_run_opts run;
  bench_format format;
  const char *out_path;
  const char *plot_path;
  const char *trace_path; /* --trace: the catalogue's rows as a Chrome trace */
  const char *backends;   /* --backends, parsed once the suite is known */
  const char *shapes;     /* knn: --shapes, likewise */
  bench_knn_opts knn;
  bench_plugin plugin;  /* --task: the rows name it, so it lives as long as the report */
  double max_seconds;   /* knn: 0 until given */
  uint64_t mem_budget;  /* knn */
  bench_peers peers;    /* --peers python: its interpreter and scripts */
  char peers_dir[4096]; /* the installed scripts' folder, when --peers-dir is not given */
  int with_peers;
  unsigned launch_ranks; /* --ranks N: start mpirun with N ranks of this command */
  int measure_limits;    /* --limits: measure this machine's limits when none are cached */
  bench_limits limits;   /* what the catalogue's rows are compared with, when known */
} bench_args;

/* The peer scripts: the source tree's for the brigade in its build folder, else those installed
 * with the program, PREFIX/share/brigade/peers beside PREFIX/bin/brigade. A path compiled in is
 * never trusted for an installed program: a build folder in /tmp may later hold anything. */
static const char *default_peers_dir(char *buf, size_t cap) {
  char exe[4096], here[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0)
    return BG_PEERS_DIR "/../missing"; /* no path to trust: the peers report the missing script */
  exe[len] = '\0';
  char *slash = strrchr(exe, '/');
  *slash = '\0';
  if (realpath(BG_BUILD_BIN_DIR, here) && !strcmp(here, exe))
    return BG_PEERS_DIR;
  int n = snprintf(buf, cap, "%s/../%s/brigade/peers", exe, BG_DATADIR);
  return n > 0 && (size_t)n < cap ? buf : BG_PEERS_DIR "/../missing";
}

/* Splits a comma-separated list in place; returns the count or -1 when it has empty items. */
static int split(char *s, char **items, int cap) {
  int n = 0;
  char *p = s;
  while (n < cap) {
    char *comma = strchr(p, ',');
    if (comma)
      *comma = '\0';
    if (*p == '\0')
      return -1;
    items[n++] = p;
    if (!comma)
      return n;
    p = comma + 1;
  }
  return -1;
}

/* Copies an option's comma-separated value into buf and splits it; on a malformed list prints
 * the usage error and returns -1. */
static int split_opt(const char *opt, const char *val, char *buf, size_t size, char **items,
                     int cap) {
  if (strlen(val) >= size) {
    cli_usage("bench", "%s: the list is longer than %zu characters", opt, size - 1);
    return -1;
  }
  snprintf(buf, size, "%s", val);
  int n = split(buf, items, cap);
  if (n < 0)
    cli_usage("bench", "%s '%s': expected names separated by commas", opt, val);
  return n;
}

static unsigned default_workers(void) {
  bg_topo_t *t;
  unsigned w = 1;
  if (bg_topo_create(&t) == 0) {
    w = bg_topo_default_workers(t);
    bg_topo_destroy(t);
  }
  return w;
}

/* Parses a worker list into o; -1 with "'VALUE': reason" in why (the caller names the option or
 * the variable, and prints it once). */
static int parse_workers(const char *val, bench_run_opts *o, char *why, size_t cap) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", val);
  o->nworkers = 0;
  if (!strcmp(buf, "auto")) {
    o->workers[o->nworkers++] = 0;
    return 0;
  }
  if (!strcmp(buf, "sweep")) {
    unsigned top = 2 * o->cores;
    for (unsigned w = 1; w <= top && o->nworkers < BENCH_MAX_WORKER_COUNTS; w *= 2)
      o->workers[o->nworkers++] = w;
    return 0;
  }
  char *items[BENCH_MAX_WORKER_COUNTS];
  int n = split(buf, items, BENCH_MAX_WORKER_COUNTS);
  if (n < 0) {
    snprintf(why, cap, "'%s': expected a list such as 1,2,4 (at most %d), sweep or auto", val,
             BENCH_MAX_WORKER_COUNTS);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    uint64_t v;
    const char *what;
    if (!strcmp(items[i], "auto")) {
      o->workers[o->nworkers++] = 0;
      continue;
    }
    if (cli_parse_count(items[i], 1, 4096, &v, &what) != 0) {
      snprintf(why, cap, "'%s': %s (expected 1..4096, sweep or auto)", items[i], what);
      return -1;
    }
    o->workers[o->nworkers++] = (unsigned)v;
  }
  return 0;
}

static int parse_workloads(const char *val, bench_args *a) {
  char buf[512], *items[BENCH_MAX_WORKLOADS];
  if (strlen(val) >= sizeof buf)
    return cli_usage("bench", "--workload: the list is too long (at most %zu characters)",
                     sizeof buf - 1);
  int n = split_opt("--workload", val, buf, sizeof buf, items, BENCH_MAX_WORKLOADS);
  if (n < 0)
    return CLI_USAGE;
  if ((size_t)n > BENCH_MAX_WORKLOADS - a->nworkloads)
    return cli_usage("bench", "--workload: at most %d workloads in all (repeat a run instead)",
                     BENCH_MAX_WORKLOADS);
  for (int i = 0; i < n; i++) {
    const bench_workload *w = bench_workload_find(items[i]);
    if (!w)
      return cli_usage("bench", "unknown workload '%s' (see 'brigade help bench' for the list)",
                       items[i]);
    a->workloads[a->nworkloads++] = w;
  }
  return 0;
}

static int parse_backends(const char *val, bench_run_opts *o, unsigned launching) {
  char buf[256], *items[BENCH_MAX_BACKENDS];
  int n = split_opt("--backends", val, buf, sizeof buf, items, BENCH_MAX_BACKENDS);
  if (n < 0)
    return CLI_USAGE;
  o->nbackends = 0;
  for (int i = 0; i < n; i++) {
    if (!strcmp(items[i], "seq"))
      continue; /* always run, as the baseline */
    /* Its workers were forked before the map and see its data only through ctx_size bytes; the
     * catalogue's tasks and a plug-in's read their case through pointers, which it refuses
     * (BG_EINVAL) rather than read stale. The overhead suite compares it. */
    if (!strcmp(items[i], "procs-persistent"))
      return cli_usage("bench", "procs-persistent cannot run the catalogue or a --task: its "
                                "workers, forked before the map, would read the case's data as "
                                "it was then; '--suite overhead --workers 2' compares it");
    size_t k = 0;
    bg_backend_info_t b;
    while (k < bg_backend_count() && bg_backend_info(k, &b) == 0 && strcmp(b.name, items[i]))
      k++;
    if (k == bg_backend_count())
      return cli_usage("bench", "unknown backend '%s' (see 'brigade info')", items[i]);
    if (!b.compiled && !strcmp(b.name, "mpi"))
      return cli_fail("bench", "this brigade was built without MPI: install openmpi-bin and "
                               "libopenmpi-dev (scripts/bootstrap.sh) and rebuild");
    if (!b.usable && !strcmp(b.name, "mpi") && !launching)
      return cli_usage("bench", "the mpi backend runs under mpirun: add --ranks N (brigade "
                                "starts mpirun itself) or run 'mpirun -np N brigade bench "
                                "--backends mpi ...'");
    if (!b.usable && strcmp(b.name, "mpi"))
      return cli_usage("bench", "backend '%s' is %s", items[i],
                       b.compiled ? "not usable on this machine" : "not compiled into this build");
    o->backends[o->nbackends++] = b.name;
  }
  return 0;
}

static void default_backends(bench_run_opts *o) {
  o->nbackends = 0;
  for (size_t k = 0; k < bg_backend_count() && o->nbackends < BENCH_MAX_BACKENDS; k++) {
    bg_backend_info_t b;
    /* mpi runs only when asked for (--backends mpi): it needs every rank of an mpirun. Nor
     * does procs-persistent: the catalogue's tasks read their state through ctx pointers, which
     * its workers, forked before the map, cannot follow (the overhead suite compares it). */
    if (bg_backend_info(k, &b) == 0 && b.usable && strcmp(b.name, "seq") && strcmp(b.name, "mpi") &&
        strcmp(b.name, "procs-persistent"))
      o->backends[o->nbackends++] = b.name;
  }
}

static int parse_knn_backends(const char *val, bench_knn_opts *o) {
  char buf[256], *items[BENCH_KNN_MAX_BACKENDS];
  int n = split_opt("--backends", val, buf, sizeof buf, items, BENCH_KNN_MAX_BACKENDS);
  if (n < 0)
    return CLI_USAGE;
  o->nbackends = 0;
  for (int i = 0; i < n; i++) {
    const char *name = bench_knn_backend_name(items[i]);
    if (!name)
      return cli_usage("bench",
                       "unknown knn backend '%s' (knn backends: naive, blocked, bf16, file, "
                       "blas, auto, sgemm, cuda, cublas-sgemm)",
                       items[i]);
    /* OpenBLAS is known at build time, so naming it in a build without it is a usage error.
     * A GPU is known only at run time: cuda and cublas-sgemm are accepted everywhere and their
     * rows say UNAVAILABLE, with the reason, where there is none. */
    int blas = !strcmp(name, "blas") || !strcmp(name, "sgemm");
    if (blas && !bg_knn_backend_available("blas"))
      return cli_usage("bench", "'%s' needs OpenBLAS, which is not compiled into this build", name);
    o->backends[o->nbackends++] = name;
  }
  return 0;
}

/* One NB_TXTxDIMxNB_NEW of --shapes into *out, or a usage error naming the part that is wrong. */
static int parse_shape(const char *item, bench_knn_shape *out) {
  static const char *const part[] = {"database vectors", "dimension", "queries"};
  uint64_t v[3];
  const char *p = item, *why;
  for (int i = 0; i < 3; i++) {
    const char *x = i < 2 ? strchr(p, 'x') : p + strlen(p);
    char num[32];
    if (!x || (size_t)(x - p) >= sizeof num)
      return cli_usage("bench",
                       "--shapes '%s': expected DBxDIMxQUERIES, e.g. 100000x100x1000 (database "
                       "vectors, their dimension, queries)",
                       item);
    memcpy(num, p, (size_t)(x - p));
    num[x - p] = '\0';
    /* bg_knn takes dims up to INT_MAX (OpenBLAS's and cuBLAS's sizes are ints). */
    uint64_t most = i == 1 ? INT_MAX : (uint64_t)1 << 40;
    if (cli_parse_count(num, 1, most, &v[i], &why) != 0)
      return cli_usage("bench", "--shapes '%s': the %s '%s': %s (expected 1 to %llu)", item,
                       part[i], num, why, (unsigned long long)most);
    p = x + 1;
  }
  *out = (bench_knn_shape){(size_t)v[0], (size_t)v[1], (size_t)v[2]};
  return 0;
}

static int parse_shapes(const char *val, bench_knn_opts *o) {
  size_t commas = 0;
  for (const char *c = strchr(val, ','); c; c = strchr(c + 1, ','))
    commas++;
  if (commas >= BENCH_KNN_MAX_SHAPES)
    return cli_usage("bench", "--shapes: at most %d shapes in one run", BENCH_KNN_MAX_SHAPES);
  char buf[1024], *items[BENCH_KNN_MAX_SHAPES];
  int n = split_opt("--shapes", val, buf, sizeof buf, items, BENCH_KNN_MAX_SHAPES);
  if (n < 0)
    return CLI_USAGE;
  for (int i = 0; i < n; i++) {
    int rc = parse_shape(items[i], &o->shapes[i]);
    if (rc != 0)
      return rc;
  }
  o->nshapes = (size_t)n;
  return 0;
}

/* The knn suite's cases are the lecture's (or --shapes): the catalogue's options do not apply. */
static int knn_args(bench_args *a) {
  const char *wrong = a->nworkloads         ? "--workload"
                      : a->task             ? "--task"
                      : a->run.n_override   ? "--n"
                      : a->run.param >= 0   ? "--param"
                      : a->run.nworkers > 1 ? "a list of --workers"
                      : a->run.timeout > 0  ? "--timeout"
                                            : NULL;
  if (wrong)
    return cli_usage("bench",
                     "%s does not apply to --suite knn (its cases are the lecture's searches; "
                     "give one worker count)",
                     wrong);
  bench_knn_opts *k = &a->knn;
  k->workers = a->run.workers[0];
  k->repeat = a->run.repeat;
  k->lecture = a->run.lecture;
  k->max_seconds = a->max_seconds > 0 ? a->max_seconds : a->run.lecture ? 120 : 1;
  k->mem_budget = a->mem_budget;
  k->progress = a->run.progress;
  k->peers = a->run.peers;
  bench_knn_default_backends(k);
  int rc = a->shapes ? parse_shapes(a->shapes, k) : 0;
  return rc == 0 && a->backends ? parse_knn_backends(a->backends, k) : rc;
}

static const char *const value_opts[] = {
    "--suite",        "--workload", "--task",       "--out-size",    "--n",
    "--param",        "--size",     "--backends",   "--workers",     "--repeat",
    "--format",       "--out",      "--plot",       "--max-seconds", "--mem-budget",
    "--peers",        "--python",   "--peers-dir",  "--ranks",       "--timeout",
    "--peer-timeout", "--trace",    "--quiet-wait", "--shapes",      NULL};

static int is_value_opt(const char *s) {
  for (size_t i = 0; value_opts[i]; i++)
    if (!strcmp(s, value_opts[i]))
      return 1;
  return 0;
}

/* A decimal number in (lo, hi] (lo itself too when inclusive): 0, or -1. */
static int parse_number(const char *val, double lo, int inclusive, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(val, &end);
  if (errno || end == val || *end || !(inclusive ? v >= lo : v > lo) || !(v <= hi))
    return -1;
  *out = v;
  return 0;
}

static int parse_one(const char *opt, const char *val, bench_args *a) {
  uint64_t v;
  const char *why;
  if (!strcmp(opt, "--suite")) {
    if (strcmp(val, "catalogue") && strcmp(val, "overhead") && strcmp(val, "knn"))
      return cli_usage("bench", "unknown suite '%s' (suites: catalogue, knn, overhead)", val);
    a->suite = val;
  } else if (!strcmp(opt, "--workload")) {
    return parse_workloads(val, a);
  } else if (!strcmp(opt, "--task")) {
    a->task = val;
  } else if (!strcmp(opt, "--out-size")) {
    if (cli_parse_size(val, &v, &why) != 0 || v == 0 || v > (1u << 20))
      return cli_usage("bench", "--out-size '%s': expected 1 to 1M bytes", val);
    a->out_size = v;
  } else if (!strcmp(opt, "--n")) {
    if (cli_parse_count(val, 1, (uint64_t)1 << 40, &v, &why) != 0)
      return cli_usage("bench", "--n '%s': %s (expected at least 1 item)", val, why);
    a->run.n_override = (size_t)v;
  } else if (!strcmp(opt, "--param")) {
    if (parse_number(val, 0, 0, 1e12, &a->run.param) != 0)
      return cli_usage("bench", "--param '%s': expected a positive number", val);
  } else if (!strcmp(opt, "--size")) {
    if (strcmp(val, "quick") && strcmp(val, "lecture"))
      return cli_usage("bench", "unknown size '%s' (sizes: quick, lecture)", val);
    a->run.lecture = !strcmp(val, "lecture");
  } else if (!strcmp(opt, "--backends")) {
    a->backends = val;
  } else if (!strcmp(opt, "--shapes")) {
    a->shapes = val;
  } else if (!strcmp(opt, "--peers")) {
    if (strcmp(val, "python"))
      return cli_usage("bench", "unknown peers '%s' (peers: python)", val);
    a->with_peers = 1;
  } else if (!strcmp(opt, "--python")) {
    a->peers.python = val;
  } else if (!strcmp(opt, "--peers-dir")) {
    a->peers.dir = val;
  } else if (!strcmp(opt, "--ranks")) {
    if (cli_parse_count(val, 1, 1024, &v, &why) != 0)
      return cli_usage("bench", "--ranks '%s': %s (expected 1..1024)", val, why);
    a->launch_ranks = (unsigned)v;
  } else if (!strcmp(opt, "--timeout")) {
    if (parse_number(val, 0.001, 1, 1e6, &a->run.timeout) != 0)
      return cli_usage("bench", "--timeout '%s': expected seconds per item, 0.001 to 1000000", val);
  } else if (!strcmp(opt, "--quiet-wait")) {
    if (parse_number(val, 0, 0, 86400, &a->run.quiet_wait) != 0)
      return cli_usage("bench",
                       "--quiet-wait '%s': expected seconds to wait, above 0 and up to 86400", val);
  } else if (!strcmp(opt, "--peer-timeout")) {
    if (parse_number(val, 0.01, 1, 1e6, &a->peers.timeout) != 0)
      return cli_usage("bench", "--peer-timeout '%s': expected seconds, 0.01 to 1000000", val);
  } else if (!strcmp(opt, "--max-seconds")) {
    if (parse_number(val, 0, 0, 1e7, &a->max_seconds) != 0)
      return cli_usage("bench", "--max-seconds '%s': expected a positive number of seconds", val);
  } else if (!strcmp(opt, "--mem-budget")) {
    if (cli_parse_size(val, &v, &why) != 0)
      return cli_usage("bench", "--mem-budget '%s': %s", val, why);
    if (v == 0)
      return cli_usage("bench", "--mem-budget '%s': must be more than 0 bytes", val);
    a->mem_budget = v;
  } else if (!strcmp(opt, "--workers")) {
    char reason[160];
    if (parse_workers(val, &a->run, reason, sizeof reason) != 0)
      return cli_usage("bench", "--workers %s", reason);
  } else if (!strcmp(opt, "--repeat")) {
    if (cli_parse_count(val, 1, 50, &v, &why) != 0)
      return cli_usage("bench", "--repeat '%s': %s (expected 1..50)", val, why);
    a->run.repeat = (unsigned)v;
  } else if (!strcmp(opt, "--format")) {
    if (bench_format_parse(val, &a->format) != 0)
      return cli_usage("bench", "unknown format '%s' (formats: table, csv, json, markdown)", val);
  } else if (!strcmp(opt, "--out")) {
    a->out_path = val;
  } else if (!strcmp(opt, "--trace")) {
    a->trace_path = val;
  } else {
    a->plot_path = val;
  }
  return 0;
}

static int parse_args(int argc, char **argv, bench_args *a) {
  memset(a, 0, sizeof *a);
  a->suite = "catalogue";
  a->out_size = 8;
  a->run.repeat = 3;
  a->run.param = -1;
  a->run.cores = default_workers();
  a->run.progress = isatty(2);
  a->run.workers[a->run.nworkers++] = 0;
  default_backends(&a->run);
  const char *env = getenv("BG_THREADS");
  char why[160];
  if (env && *env && parse_workers(env, &a->run, why, sizeof why) != 0)
    return cli_usage("bench", "the environment variable BG_THREADS=%s", why);
  for (int i = 1; i < argc; i += 2) {
    /* Flags: no value follows. */
    if (!strcmp(argv[i], "--insights") || !strcmp(argv[i], "--limits")) {
      if (!strcmp(argv[i], "--insights"))
        a->run.insights = 1;
      else
        a->measure_limits = 1;
      i--;
      continue;
    }
    if (!is_value_opt(argv[i]))
      return cli_unknown_option("bench", argv[i]);
    if (i + 1 >= argc)
      return cli_needs_value("bench", argv[i]);
    int rc = parse_one(argv[i], argv[i + 1], a);
    if (rc != 0)
      return rc;
  }
  if (!a->with_peers && (a->peers.python || a->peers.dir || a->peers.timeout > 0))
    return cli_usage("bench", "--python, --peers-dir and --peer-timeout go with --peers python");
  if (a->with_peers) {
    const char *py = getenv("BRIGADE_PYTHON");
    if (!a->peers.python)
      a->peers.python = py && *py ? py : "python3";
    if (!a->peers.dir)
      a->peers.dir = default_peers_dir(a->peers_dir, sizeof a->peers_dir);
    a->run.peers = &a->peers;
  }
  if (a->launch_ranks && strcmp(a->suite, "catalogue"))
    return cli_usage("bench", "--ranks runs the catalogue on the mpi backend only");
  if (a->trace_path && strcmp(a->suite, "catalogue"))
    return cli_usage("bench",
                     "--trace draws the catalogue's rows and --task's; --suite %s has "
                     "none to draw",
                     a->suite);
  if (a->run.quiet_wait > 0 && strcmp(a->suite, "catalogue"))
    return cli_usage("bench",
                     "--quiet-wait re-runs the catalogue's rows and --task's; --suite %s has "
                     "none",
                     a->suite);
  if (a->launch_ranks && !a->backends)
    a->backends = "mpi";
  if (!strcmp(a->suite, "knn"))
    return knn_args(a);
  if (a->max_seconds > 0 || a->mem_budget || a->shapes)
    return cli_usage("bench", "--shapes, --max-seconds and --mem-budget apply to --suite knn only");
  int rc = a->backends ? parse_backends(a->backends, &a->run, a->launch_ranks) : 0;
  if (rc != 0)
    return rc;
  if (a->task && a->run.n_override == 0)
    return cli_usage("bench", "--task needs --n, the number of items to map");
  if (a->task && a->nworkloads)
    return cli_usage("bench", "--task and --workload cannot be combined");
  if (a->run.timeout > 0 && !a->task)
    return cli_usage("bench", "--timeout applies to --task (the built-in workloads are trusted)");
  if (!a->task && !a->nworkloads)
    for (size_t i = 0; i < bench_workload_count(); i++)
      a->workloads[a->nworkloads++] = bench_workload_at(i);
  return 0;
}

/* Records which signal asked the bench to stop: the exit status is 128 + its number. */
static void on_signal(int sig) {
  bench_interrupted = sig;
}

static int run_overhead(const bench_args *a, bench_result *res) {
  bench_overhead_opts o = {.workers = a->run.workers[0],
                           .repeat = a->run.repeat,
                           .n_trivial = 10000000,
                           .n_fixed = 100000,
                           .n_messages = 20000,
                           .n_cache = 400,
                           .n_range = 1000000,
                           .n_small = 100,
                           .maps = 1000,
                           .n_items = 1000000,
                           .progress = a->run.progress,
                           .peers = a->run.peers};
  const char *what = "";
  int rc = bench_overhead(&o, res, &what);
  if (rc != 0)
    return cli_fail("bench", "%s failed: %s", what, bg_strerror(rc));
  return CLI_OK;
}

/* A suite's status as the command's exit code: 130 after SIGINT, 143 after SIGTERM (with
 * what was cleaned up, in parentheses), 1 with the suite's reason, or 0. */
static int suite_status(int rc, const char *err, const char *interrupted) {
  if (rc == BG_ECANCELED) {
    int sig = bench_interrupted ? (int)bench_interrupted : SIGINT;
    fprintf(stderr, "brigade bench: interrupted by %s%s; the rows that finished are printed\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", interrupted);
    return 128 + sig;
  }
  return rc != 0 ? cli_fail("bench", "%s", err) : CLI_OK;
}

static int run_knn(const bench_args *a, bench_result *res) {
  char err[512];
  int rc = bench_knn(&a->knn, res, err, sizeof err);
  return suite_status(rc, err, "");
}

static int run_catalogue(bench_args *a, bench_result *res) {
  res->suite = "catalogue";
  char err[512];
  const bench_workload *list[32];
  size_t n = a->nworkloads;
  memcpy(list, a->workloads, n * sizeof list[0]);
  if (a->task) {
    if (bench_plugin_load(a->task, a->run.n_override, a->out_size, &a->plugin, err, sizeof err) !=
        0)
      return cli_usage("bench", "%s", err);
    list[0] = &a->plugin.w;
    n = 1;
  }
  /* What a plug-in prints (in this process's procs workers or in supervised children) goes to
   * standard error: standard output carries the report, which a script parses (--format json). */
  int saved = -1;
  if (a->task) {
    fflush(stdout);
    if ((saved = dup(STDOUT_FILENO)) >= 0)
      dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  /* The machine's limits: cached ones are used, and --limits measures them when there are
   * none. Without them the notes say how to get them. Under mpirun only rank 0 explains. */
  int cached = 0, got = a->run.rank != 0 ? 1
                                         : bench_limits_get(&a->limits, a->measure_limits, 0,
                                                            &cached, stderr, err, sizeof err);
  if (got < 0)
    return cli_fail("bench", "cannot measure the limits: %s", err);
  a->run.limits = got == 0 ? &a->limits : NULL;
  if (got == 0 && a->limits.others_cpu >= BENCH_OTHERS_NOTICEABLE)
    bench_note_add(res, "",
                   "The machine's limits the notes compare with were measured while other "
                   "processes used %.0f%% of the CPU, so they are low: `brigade info --limits "
                   "--remeasure` on a quiet machine corrects them.",
                   100 * a->limits.others_cpu);
  if (got != 0 && !a->task && a->run.rank == 0)
    bench_note_add(res, "",
                   "Run `brigade info --limits` once (or add --limits) and the notes compare each "
                   "row with this machine's measured limits: memory bandwidth, page faults, file "
                   "creation, fork.");
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = bench_run_workload(&a->run, list[i], res, err, sizeof err);
  for (size_t i = 0; i < res->nrows; i++)
    if (!strcmp(res->rows[i].backend, "procs") || !strcmp(res->rows[i].backend, "procs-copy")) {
      bench_note_add(res, "",
                     "procs and procs-copy rows ran in the snapshot mode: workers forked at each "
                     "map, seeing its items and ctx copy-on-write (procs-persistent, workers kept "
                     "between maps, is compared in the overhead suite)");
      break;
    }
  if (saved >= 0) {
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
  }
  if (a->task)
    bench_plugin_unload(&a->plugin);
  return suite_status(rc, err, " (child processes killed, temporary files removed)");
}

/* --ranks N outside mpirun: runs `mpirun -np N <this program> bench <the same options but
 * --ranks>`, with the settings Open MPI needs to run as root and with more ranks than cores. */
static int launch_mpirun(int argc, char **argv, unsigned ranks) {
  char exe[4096], np[16];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0)
    return cli_fail("bench", "--ranks: cannot find this program's path: %s", strerror(errno));
  exe[len] = '\0';
  snprintf(np, sizeof np, "%u", ranks);
  char **args = calloc((size_t)argc + 10, sizeof *args);
  if (!args)
    return cli_fail("bench", "out of memory");
  int n = 0, backends = 0;
  /* Open MPI binds each rank to one core by default (np <= 2): a rank's threads would then
   * share that core. The ranks divide the cores among themselves instead. */
  args[n++] = "mpirun", args[n++] = "-np", args[n++] = np, args[n++] = "--bind-to";
  args[n++] = "none", args[n++] = exe, args[n++] = "bench";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--ranks")) {
      i++;
      continue;
    }
    backends |= !strcmp(argv[i], "--backends");
    args[n++] = argv[i];
  }
  if (!backends)
    args[n++] = "--backends", args[n++] = "mpi";
  if (geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  }
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    execvp("mpirun", args);
    _exit(errno == ENOENT ? 127 : 126);
  }
  free(args);
  if (pid < 0)
    return cli_fail("bench", "--ranks: cannot start mpirun: %s", strerror(errno));
  /* A Ctrl-C reaches mpirun and its ranks from the terminal; this process only reports. */
  signal(SIGINT, SIG_IGN);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return CLI_OK;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return cli_fail("bench", "--ranks needs mpirun, which is not installed: apt-get install "
                             "openmpi-bin (or scripts/bootstrap.sh)");
  if (WIFSIGNALED(status))
    return cli_fail("bench", "mpirun was killed by signal %d", WTERMSIG(status));
  return cli_fail("bench",
                  "the MPI job failed (mpirun exit %d): a rank failed or died, and MPI ends "
                  "the whole job when one rank dies; mpirun's message above names the rank",
                  WEXITSTATUS(status));
}

/* The report to standard output, or to --out written whole (temporary file, sync, rename). */
static int write_report(const bench_args *a, const bench_result *res, const char *header,
                        int stopped) {
  /* An interrupted run's partial report must not replace a complete one from an earlier run. */
  if (!a->out_path || stopped) {
    bench_report(stdout, a->format, res, header);
    if (a->out_path)
      fprintf(stderr, "brigade bench: --out '%s' was left as it was (the run did not finish)\n",
              a->out_path);
    return 0;
  }
  bench_outfile o;
  char err[512];
  if (bench_outfile_open(&o, a->out_path, err, sizeof err) != 0)
    return cli_fail("bench", "--out %s", err);
  bench_report(o.f, a->format, res, header);
  if (bench_outfile_commit(&o, err, sizeof err) != 0)
    return cli_fail("bench", "--out %s", err);
  return 0;
}

/* 1 if @a and @b name the same file: the same name, or (both existing) the same inode. */
/* --trace, written whole like --out; an interrupted run leaves an earlier trace as it was. */
static int write_trace(const char *path, const bench_trace *t) {
  bench_outfile o;
  char err[512];
  if (bench_outfile_open(&o, path, err, sizeof err) != 0)
    return cli_fail("bench", "--trace %s", err);
  if (bench_trace_write(t, o.f) != 0) {
    bench_outfile_abandon(&o, "write failed", err, sizeof err);
    return cli_fail("bench", "--trace %s", err);
  }
  if (bench_outfile_commit(&o, err, sizeof err) != 0)
    return cli_fail("bench", "--trace %s", err);
  fprintf(stderr,
          "brigade bench: --trace wrote %zu rows to %s (open it in Perfetto or "
          "chrome://tracing)\n",
          bench_trace_rows(t), path);
  return 0;
}

int cmd_bench_check(int argc, char **argv) {
  bench_args a;
  return parse_args(argc, argv, &a);
}

int cmd_bench(int argc, char **argv) {
  bench_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0)
    return rc;
  int mpi = 0;
  for (size_t i = 0; i < a.run.nbackends; i++)
    mpi |= !strcmp(a.run.backends[i], "mpi");
  a.run.ranks = 1;
  if (mpi && bg_dist_world(&a.run.rank, &a.run.ranks) != 0)
    return cli_fail("bench", "MPI did not start");
  /* Under mpirun only rank 0 reports; the other ranks take part in the mpi rows. */
  int reports = a.run.rank == 0;
  if (!reports)
    a.out_path = NULL, a.plot_path = NULL, a.trace_path = NULL, a.run.progress = 0,
    a.run.peers = NULL;
  /* --out and --plot are checked before anything runs, mpirun's ranks included: a bad path is
   * found now, not after the run; and neither may be the --task library. */
  char lib[4096] = "", why[512];
  if (a.task)
    snprintf(lib, sizeof lib, "%.*s", (int)(strrchr(a.task, ':') - a.task), a.task);
  const char *inputs[] = {lib[0] ? lib : NULL, NULL};
  if (a.out_path && bench_outfile_check(a.out_path, inputs, why, sizeof why) != 0)
    return cli_usage("bench", "--out %s", why);
  if (a.plot_path && bench_outfile_check(a.plot_path, inputs, why, sizeof why) != 0)
    return cli_usage("bench", "--plot %s", why);
  if (a.trace_path && bench_outfile_check(a.trace_path, inputs, why, sizeof why) != 0)
    return cli_usage("bench", "--trace %s", why);
  /* Two outputs in one file: the second would silently replace the first. */
  const char *outs[][2] = {
      {"--out", a.out_path}, {"--plot", a.plot_path}, {"--trace", a.trace_path}};
  for (int i = 0; i < 3; i++)
    for (int j = i + 1; j < 3; j++)
      if (outs[i][1] && outs[j][1] && bench_same_file(outs[i][1], outs[j][1]))
        return cli_usage("bench", "%s and %s both name '%s': give each its own file", outs[i][0],
                         outs[j][0], outs[j][1]);
  if (a.launch_ranks && a.run.ranks == 1)
    return launch_mpirun(argc, argv, a.launch_ranks);
  bench_result *res = calloc(1, sizeof *res);
  if (a.trace_path)
    a.run.trace = bench_trace_new();
  if (!res || (a.trace_path && !a.run.trace)) {
    free(res);
    return cli_fail("bench", "out of memory");
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  rc = !strcmp(a.suite, "overhead") ? run_overhead(&a, res)
       : !strcmp(a.suite, "knn")    ? run_knn(&a, res)
                                    : run_catalogue(&a, res);
  /* What finished is printed after a signal too; only a suite that failed prints nothing. */
  int stopped = rc > 128;
  if ((rc == CLI_OK || stopped) && reports) {
    char header[256];
    snprintf(header, sizeof header, "brigade %s bench --suite %s (%s)", bg_version(), a.suite,
             bg_build_options());
    if (write_report(&a, res, header, stopped) != 0)
      rc = CLI_FAIL;
    char err[512];
    if (!stopped && a.plot_path && bench_plot(res, a.plot_path, err, sizeof err) != 0)
      rc = cli_fail("bench", "%s", err);
    if (!stopped && a.trace_path && write_trace(a.trace_path, a.run.trace) != 0)
      rc = CLI_FAIL;
    size_t failed = 0;
    for (size_t i = 0; i < res->nrows; i++)
      failed += res->rows[i].failed && !res->rows[i].external;
    if (failed && rc == CLI_OK)
      rc = cli_fail("bench", "%zu row%s FAILED; the notes under %s say why", failed,
                    failed == 1 ? "" : "s", failed == 1 ? "its table" : "the tables");
  }
  bench_trace_free(a.run.trace);
  free(res);
  return rc;
}
