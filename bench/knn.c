/* SPDX-License-Identifier: MIT */
/* The knn suite: the lecture's part-2 cases, every backend on the same seeded inputs, the bare
 * sgemm beside them, answers cross-checked, and the sentences that explain the table. */
#include "knn.h"
#include "knn_file.h"
#include "cublas_sgemm.h"
#include "stats.h"
#include "workload.h"
#include "workloads/rng.h"

#include "brigade.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct knn_case {
  size_t nb_txt, dim, nb_new;
  int wall; /* the memory-wall case: run in a small budget to show the tiling */
} knn_case;

/* The lecture's table, and the same shapes scaled down (nb_txt and nb_new by up to 10x) so the
 * quick suite runs in seconds and its memory-wall case still needs tiles: its score matrix is
 * 381 MiB against a 32 MiB budget. */
static const knn_case lecture_cases[] = {{1000, 100, 100, 0},      {10000, 100, 1000, 0},
                                         {1000000, 100, 1000, 0},  {100000, 1000, 1000, 0},
                                         {100000, 1000, 10000, 0}, {100000, 1000, 100000, 1}};
static const knn_case quick_cases[] = {{1000, 100, 100, 0},    {10000, 100, 1000, 0},
                                       {100000, 100, 100, 0},  {10000, 1000, 100, 0},
                                       {10000, 1000, 1000, 0}, {10000, 1000, 10000, 1}};

#define WALL_BUDGET_LECTURE ((uint64_t)1 << 30)
#define WALL_BUDGET_QUICK ((uint64_t)32 << 20)
/* A row stops repeating once its timed runs have taken this long: the big cases are stable
 * over one or two runs and the suite must not take an hour (nor the quick one a minute). */
#define ROW_SECONDS_LECTURE 10.0
#define ROW_SECONDS_QUICK 1.0
/* Warm-up of a short row (time_backend): at least this long, at most this many runs. */
#define WARM_SECONDS 0.2
#define WARM_RUNS 10000
/* The sgemm reference writes its scores in blocks of at most this size. */
#define SGEMM_BLOCK ((uint64_t)256 << 20)
/* cuBLAS's blocks: 1 GiB keeps the memory-wall case's 37 GiB of scores in 38 products, large
 * enough to fill the GPU, and beside its 0.8 GB of inputs fits any GPU the suite would run on. */
#define CUBLAS_BLOCK ((uint64_t)1 << 30)
/* Two answers that differ are both right when their scores agree to float32 rounding. */
#define TIE_RTOL 1e-5

/* bf16 is the blocked backend with precision bf16: the same answers, from bf16 products; file
 * the blocked backend reading the database from a .npy file in pieces (knn_file.h). */
static const char *const known[] = {"naive", "blocked", "bf16", "file",        "blas",
                                    "auto",  "sgemm",   "cuda", "cublas-sgemm"};

/* The rows that need a GPU: brigade's cuda backend and cuBLAS's bare product beside it. */
static int is_gpu(const char *name) {
  return !strcmp(name, "cuda") || !strcmp(name, "cublas-sgemm");
}

/* The ceilings: bare products without the top-k, so no answer to check and never the best. */
static int is_reference(const char *name) {
  return !strcmp(name, "sgemm") || !strcmp(name, "cublas-sgemm");
}

const char *bench_knn_backend_name(const char *name) {
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(name, known[i]))
      return known[i];
  return NULL;
}

void bench_knn_default_backends(bench_knn_opts *o) {
  o->nbackends = 0;
  static const char *const order[] = {"naive", "blocked", "bf16", "file", "blas"};
  for (size_t i = 0; i < 5; i++)
    if (bg_knn_backend_available(order[i]))
      o->backends[o->nbackends++] = order[i];
  if (bg_knn_backend_available("blas"))
    o->backends[o->nbackends++] = "sgemm";
  /* The GPU rows only where a GPU is found: elsewhere they could only say that it is not. */
  bg_gpu_info_t g;
  if (bg_gpu_query(&g) == 0) {
    o->backends[o->nbackends++] = "cuda";
    o->backends[o->nbackends++] = "cublas-sgemm";
  }
}

void *bench_knn_random(size_t first, size_t rows, size_t dim, bg_dtype_t t, uint64_t seed) {
  size_t n = rows * dim;
  void *v = malloc((n ? n : 1) * (t == BG_F64 ? 8 : 4));
  /* Each row has its own stream, so a slice (an MPI rank's share) equals the same rows of
   * the whole. */
  for (size_t r = 0; v && r < rows; r++) {
    uint64_t s = bench_rng_mix(bench_rng_mix(seed) + first + r) | 1; /* never 0 */
    for (size_t j = 0; j < dim; j++) {
      double u = bench_rng_double(&s);
      if (t == BG_F64)
        ((double *)v)[r * dim + j] = u;
      else
        ((float *)v)[r * dim + j] = (float)u;
    }
  }
  return v;
}

/* One case's inputs and answers. */
typedef struct knn_run {
  const bench_knn_opts *o;
  knn_case c;
  char section[BENCH_SECTION_LEN];
  float *db, *q;
  int64_t *idx, *ref;   /* this backend's answer; the first backend's */
  const char *ref_name; /* NULL until a backend has answered */
  double flops;         /* 2 nb_txt dim nb_new */
  uint64_t budget;      /* the search's memory budget (0: the library's default) */
  bg_knn_plan_t plan;   /* of the last search */
  bg_knn_plan_t best;   /* of the fastest backend so far */
  double best_gflops;
  size_t near_ties;     /* queries answered differently within float32 rounding */
  bg_knn_times_t times; /* GPU rows: where the last run's time went */
  size_t gpu_rows;      /* cublas-sgemm: queries per block */
  char why[256];        /* cublas-sgemm: what CUDA or cuBLAS said when the last run failed;
                           file: why the database file could not be made */
  bench_knn_file file;  /* file: the database as a file, made on its row's first run */
  int file_state;       /* 0: not made yet, 1: made, -1: could not be */
  uint64_t cuda_least;  /* cuda: the device memory the case's own budget could not hold, when the
                           row ran within the device's instead (0: it ran within the case's) */
} knn_run;

/* GFLOP/s each backend reached on the previous case it ran, to predict the next case's time. */
typedef struct speed_log {
  const char *name[BENCH_KNN_MAX_BACKENDS + 4]; /* the backends and the Python peers */
  double gflops[BENCH_KNN_MAX_BACKENDS + 4];
  size_t n;
} speed_log;

/* What the whole suite carries from case to case. */
typedef struct knn_suite {
  speed_log log;
  /* Asked once, only when a GPU row is to run: the first CUDA call creates a context. */
  int gpu_rc;
  bg_gpu_info_t gpu;
} knn_suite;

static double *speed_of(speed_log *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->name[i], name))
      return &l->gflops[i];
  l->name[l->n] = name;
  l->gflops[l->n] = 0;
  return &l->gflops[l->n++];
}

static double dot64(const float *a, const float *b, size_t dim) {
  double s = 0;
  for (size_t t = 0; t < dim; t++)
    s += (double)a[t] * (double)b[t];
  return s;
}

/* Compares an answer with the first backend's. Where they differ, both vectors' exact scores
 * must agree to float32 rounding (a near-tie that different summation orders may break either
 * way); anything else is a wrong answer. Returns the first wrong query, or -1. */
static long check(knn_run *r) {
  for (size_t i = 0; i < r->c.nb_new; i++) {
    if (r->idx[i] == r->ref[i])
      continue;
    if (r->idx[i] < 0 || (size_t)r->idx[i] >= r->c.nb_txt)
      return (long)i;
    const float *qi = r->q + i * r->c.dim;
    double a = dot64(qi, r->db + (size_t)r->idx[i] * r->c.dim, r->c.dim);
    double b = dot64(qi, r->db + (size_t)r->ref[i] * r->c.dim, r->c.dim);
    if (fabs(a - b) > TIE_RTOL * (fabs(a) + fabs(b)) / 2)
      return (long)i;
    r->near_ties++;
  }
  return -1;
}

/* Checks the answer in r->idx, the row's, against the first answer of the case (or makes it
 * the reference when it is the first). */
static void verify(knn_run *r, bench_row *row, bench_result *res) {
  if (!r->ref_name) {
    memcpy(r->ref, r->idx, r->c.nb_new * sizeof *r->ref);
    r->ref_name = row->backend;
    return;
  }
  long bad = check(r);
  if (bad >= 0) {
    row->failed = 1;
    bench_note_add(res, r->section,
                   "CHECK FAILED on %s: query %ld's best is %lld, %s found %lld, and their "
                   "scores differ beyond float32 rounding",
                   row->backend, bad, (long long)r->idx[bad], r->ref_name, (long long)r->ref[bad]);
  }
}

static void progress(const knn_run *r, const char *name) {
  if (r->o->progress)
    fprintf(stderr, "\r\033[K%s: %s ...", r->section, name);
}

/* cuBLAS's product alone, timed on the device: the row's time is the products', and the upload
 * before them is kept apart in r->times. Returns seconds, or BG_EUNAVAIL with r->why. */
static double once_cublas(knn_run *r) {
  bench_cublas_times t;
  if (bench_cublas_sgemm(r->db, r->c.nb_txt, r->q, r->c.nb_new, r->c.dim, CUBLAS_BLOCK, &t, r->why,
                         sizeof r->why) != 0)
    return BG_EUNAVAIL;
  r->times.h2d_s = t.h2d_s, r->times.gemm_s = t.gemm_s, r->times.wall_s = t.gemm_s;
  r->gpu_rows = t.block_rows;
  return t.gemm_s;
}

/* The file row's budget: half the database (so it is read in four pieces or more), at least
 * 8 MiB, and within the case's own budget. */
static uint64_t file_budget(const knn_run *r) {
  uint64_t half = (uint64_t)r->c.nb_txt * r->c.dim * sizeof(float) / 2;
  uint64_t b = half > ((uint64_t)8 << 20) ? half : (uint64_t)8 << 20;
  return r->budget && r->budget < b ? r->budget : b;
}

/* One timed search (or sgemm product). Returns seconds, or a negative BG_E*. */
static double once(knn_run *r, bg_pool_t *pool, const char *name) {
  memset(&r->times, 0, sizeof r->times);
  if (!strcmp(name, "sgemm")) {
    double dt = bench_sgemm_seconds(r->db, r->c.nb_txt, r->q, r->c.nb_new, r->c.dim,
                                    bg_pool_workers(pool), SGEMM_BLOCK);
    return dt < 0 ? BG_ENOMEM : dt;
  }
  if (!strcmp(name, "cublas-sgemm"))
    return once_cublas(r);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = r->db, d.nb_txt = r->c.nb_txt, d.queries = r->q, d.nb_new = r->c.nb_new;
  d.dim = r->c.dim, d.k = 1, d.backend = name, d.mem_budget = r->budget, d.idx = r->idx;
  if (!strcmp(name, "bf16"))
    d.backend = "blocked", d.precision = BG_KNN_BF16;
  if (!strcmp(name, "file")) {
    if (r->file_state == 0)
      r->file_state =
          bench_knn_file_open(&r->file, r->db, r->c.nb_txt, r->c.dim, r->why, sizeof r->why) == 0
              ? 1
              : -1;
    if (r->file_state < 0)
      return BG_ESYS;
    d.backend = "blocked", d.db = NULL, d.db_read = bench_knn_file_read, d.db_ctx = &r->file;
    d.db_view = bench_knn_file_view;
    d.mem_budget = file_budget(r);
  }
  /* Only the cuda backend splits its time; the CPU backends' wall_s is the row's own figure.
   * The suite's own memory-wall budget (32 MiB quick) is a host figure, below what the device
   * keeps for cuBLAS's workspace: cuda then runs within the device's memory, and a note says why.
   * A budget the user gave (--mem-budget) is kept, and the row fails if the GPU cannot meet it. */
  if (!strcmp(name, "cuda")) {
    d.times = &r->times;
    bg_knn_plan_t p;
    if (r->cuda_least) /* found on the row's first run: no plan per timed run */
      d.mem_budget = 0;
    else if (d.mem_budget && !r->o->mem_budget && bg_knn_plan(pool, &d, &p) == BG_ENOMEM)
      r->cuda_least = p.min_bytes, d.mem_budget = 0;
  }
  double t0 = bench_now();
  int rc = bg_knn(pool, &d, &r->plan);
  double dt = bench_now() - t0;
  if (d.db_view)
    bench_knn_file_unview(&r->file);
  return rc != 0 ? rc : dt;
}

void bench_sgemm_blocks(size_t nb_txt, size_t nb_new, uint64_t block_bytes, size_t *rows,
                        size_t *cols) {
  size_t cap = (size_t)(block_bytes / sizeof(float));
  cap = cap == 0 ? 1 : cap;
  size_t c = nb_txt < cap ? nb_txt : cap;
  c = c > INT_MAX ? INT_MAX : c;
  size_t n = cap / c;
  n = n == 0 ? 1 : n > nb_new ? nb_new : n;
  *rows = n > INT_MAX ? INT_MAX : n;
  *cols = c;
}

/* Whether a row competes to be the case's fastest (the sentences' and the memory-wall note's
 * plan): not a ceiling (sgemm) or a peer, not failed; not file, which is blocked again reading
 * from a file, nor a bf16 row that ran exact, blocked again under another name (either, faster
 * by noise on a busy machine, would lend the note its own budget). */
static int contends(const bench_row *x) {
  return !x->reference && !x->external && !x->failed && x->gflops > 0 &&
         strcmp(x->backend, "file") &&
         !(!strcmp(x->backend, "bf16") && !strncmp(x->plan, "bf16 ran exact", 14));
}

static void plan_text(const knn_run *r, const char *name, unsigned workers, bench_row *row) {
  if (!strcmp(name, "sgemm")) {
    size_t rows, cols;
    bench_sgemm_blocks(r->c.nb_txt, r->c.nb_new, SGEMM_BLOCK, &rows, &cols);
    snprintf(row->plan, sizeof row->plan, "OpenBLAS x%u, %zux%zu blocks", workers, rows, cols);
    return;
  }
  if (!strcmp(name, "cublas-sgemm")) {
    if (r->gpu_rows)
      snprintf(row->plan, sizeof row->plan, "cuBLAS FP32, %zux%zu blocks, +%.3g s upload",
               r->gpu_rows, r->c.nb_txt, row->h2d_s);
    return;
  }
  if (!strcmp(name, "file") && r->plan.backend) {
    snprintf(row->plan, sizeof row->plan, "from file, budget %.1f MiB, db %.1f MiB",
             (double)r->plan.budget / 1048576, (double)r->file.bytes / 1048576);
  } else if (!strcmp(name, "bf16") && r->plan.backend) {
    /* The share of pairs scored twice and of those scored in fp32 alone, not the tiles. */
    double all = (double)(r->plan.pairs + r->plan.fallback_pairs);
    if (strcmp(r->plan.precision, "bf16"))
      snprintf(row->plan, sizeof row->plan, "%s", r->plan.why ? r->plan.why : "bf16 ran exact");
    else
      snprintf(row->plan, sizeof row->plan, "bf16 %s, %.3f%% rescored, %.1f%% fp32",
               bg_knn_cpu_kernel(BG_KNN_BF16) ? bg_knn_cpu_kernel(BG_KNN_BF16) : "?",
               all > 0 ? 100.0 * (double)r->plan.rescored / all : 0.0,
               all > 0 ? 100.0 * (double)r->plan.fallback_pairs / all : 0.0);
  } else if (r->plan.backend && r->plan.db_slices > 1)
    snprintf(row->plan, sizeof row->plan, "%s %zux%zu, db in %u slices, %.1f MiB", r->plan.backend,
             r->plan.tile_q, r->plan.tile_db, r->plan.db_slices, (double)r->plan.bytes / 1048576);
  else if (r->plan.backend)
    snprintf(row->plan, sizeof row->plan, "%s %zux%zu, %.1f MiB", r->plan.backend, r->plan.tile_q,
             r->plan.tile_db, (double)r->plan.bytes / 1048576);
}

/* The seconds a row is predicted to take from its speed on the previous case (0: unknown), or
 * -1 with a note when that is beyond --max-seconds. */
static double predict(const knn_run *r, const char *name, const double *gf, bench_result *res) {
  double predicted = *gf > 0 ? r->flops / (*gf * 1e9) : 0;
  if (predicted <= r->o->max_seconds)
    return predicted;
  bench_note_add(res, r->section,
                 "%s skipped: predicted %.1f s at the %.1f GFLOP/s it reached on the previous "
                 "case (--max-seconds %.0f to run it)",
                 name, predicted, *gf, ceil(predicted));
  return -1;
}

static double row_seconds(const knn_run *r) {
  return r->o->lecture ? ROW_SECONDS_LECTURE : ROW_SECONDS_QUICK;
}

/* A fresh row for the backend in the case's section, not yet counted in res->nrows. */
static bench_row *new_row(const knn_run *r, const char *name, bg_pool_t *pool, bench_result *res) {
  bench_row *row = &res->rows[res->nrows];
  memset(row, 0, sizeof *row);
  snprintf(row->section, sizeof row->section, "%s", r->section);
  row->workload = "knn", row->backend = name, row->schedule = "-", row->n = r->c.nb_new;
  row->reference = is_reference(name);
  row->workers = bg_pool_workers(pool);
  return row;
}

/* A GPU row where the suite found no GPU: shown, with the reason in a note, and unavailable
 * rather than failed, so that a machine without one runs the CPU rows to exit status 0. */
static void gpu_missing(const knn_run *r, bg_pool_t *pool, const char *name, const knn_suite *st,
                        bench_result *res) {
  new_row(r, name, pool, res)->unavailable = 1;
  res->nrows++;
  if (st->gpu_rc == BG_EUNAVAIL)
    bench_note_add(res, r->section, "%s not run: No GPU detected (%s)", name, st->gpu.why);
  else
    bench_note_add(res, r->section, "%s not run: %s", name, st->gpu.why);
}

/* Records why a run failed. A cuda backend that this build lacks makes the row unavailable, like
 * a missing GPU; anything else is a failure, BG_EUNAVAIL too: the suite found a GPU before it
 * ran a GPU row, so a device that then cannot be used is a fault to see, not a machine to skip. */
static void run_failed(const knn_run *r, bench_row *row, const char *name, double dt,
                       bench_result *res) {
  /* The database file could not be made (no room, no TMPDIR): the machine's, not brigade's. */
  if (!strcmp(name, "file") && r->file_state < 0) {
    bench_note_add(res, r->section, "file not run: %s", r->why);
    row->unavailable = 1;
    return;
  }
  if (!strcmp(name, "cuda") && dt == BG_ENOTSUP) {
    bench_note_add(res, r->section, "%s not run: bg_knn refused it here: %s (%s)", name,
                   bg_strerror((int)dt), bg_errname((int)dt));
    row->unavailable = 1;
    return;
  }
  row->failed = 1;
  if (dt == BG_ENOMEM && r->plan.min_bytes)
    bench_note_add(res, r->section,
                   "%s failed: the search needs at least %.1f KiB beyond its inputs but the "
                   "budget is %.1f KiB: %s",
                   name, (double)r->plan.min_bytes / 1024, (double)r->plan.budget / 1024,
                   r->plan.why ? r->plan.why : "raise --mem-budget");
  else if (r->why[0])
    bench_note_add(res, r->section, "%s failed: %s", name, r->why);
  else
    /* The library's own sentence when it has one (overflow, an address-space limit). */
    bench_note_add(res, r->section, "%s failed: %s", name,
                   r->plan.why && (dt == BG_ENOMEM || dt == BG_ERANGE) ? r->plan.why
                                                                       : bg_strerror((int)dt));
}

static void add_times(bg_knn_times_t *sum, const bg_knn_times_t *t) {
  sum->h2d_s += t->h2d_s, sum->gemm_s += t->gemm_s, sum->select_s += t->select_s;
  sum->d2h_s += t->d2h_s, sum->wall_s += t->wall_s;
}

/* Times one backend on the case and appends its row. Returns 0 or BG_ECANCELED. */
static int time_backend(knn_run *r, bg_pool_t *pool, const char *name, knn_suite *st,
                        bench_result *res) {
  if (res->nrows == BENCH_MAX_ROWS)
    return 0;
  if (is_gpu(name) && st->gpu_rc != 0) {
    gpu_missing(r, pool, name, st, res);
    return 0;
  }
  double *gf = speed_of(&st->log, name);
  double predicted = predict(r, name, gf, res);
  if (predicted < 0)
    return 0;
  progress(r, name);
  bench_row *row = new_row(r, name, pool, res);
  double t[64], cpu[64], user = 0, sys = 0, total = 0;
  bg_knn_times_t sum = {0};
  unsigned got = 0;
  memset(&r->plan, 0, sizeof r->plan);
  r->why[0] = '\0', r->gpu_rows = 0;
  bench_peak_reset();
  /* Warm-up runs when a run is short (or of unknown length), WARM_SECONDS of them: they fault
   * in the pages, let OpenBLAS start its threads (and CUDA create its context), and keep the
   * cores busy long enough for their clocks to settle: a 1 ms search timed in a fresh process
   * took 1.1 ms for its first hundred runs and 0.5 ms after, on a core that had been idle.
   * The Python peers warm up the same way (peers/python/knn.py). */
  int failed = 0;
  if (predicted < 1.0) {
    double spent = 0;
    unsigned n = 0;
    do {
      if (bench_interrupted)
        return BG_ECANCELED;
      double dt = once(r, pool, name);
      if (dt < 0) {
        run_failed(r, row, name, dt, res);
        failed = 1;
        break;
      }
      spent += dt;
    } while (spent < WARM_SECONDS && ++n < WARM_RUNS);
  }
  for (unsigned k = 0; !failed && k < r->o->repeat && got < 64; k++) {
    if (bench_interrupted)
      return BG_ECANCELED;
    bench_cpu c0 = bench_cpu_now();
    double dt = once(r, pool, name);
    bench_cpu c1 = bench_cpu_now();
    if (dt < 0) {
      run_failed(r, row, name, dt, res);
      break;
    }
    t[got] = dt;
    cpu[got++] = (c1.user - c0.user) + (c1.sys - c0.sys);
    user += c1.user - c0.user, sys += c1.sys - c0.sys, total += dt;
    add_times(&sum, &r->times);
    if (total > row_seconds(r))
      break;
  }
  row->peak_mib = bench_peak_mib();
  if (got > 0) {
    row->h2d_s = sum.h2d_s / got, row->gemm_s = sum.gemm_s / got;
    row->select_s = sum.select_s / got, row->d2h_s = sum.d2h_s / got;
  }
  plan_text(r, name, row->workers, row);
  if (got == 0) {
    res->nrows++;
    return 0;
  }
  row->wall = bench_summarise(t, got);
  row->cpu_s = bench_summarise(cpu, got).median;
  row->sys_share = user + sys > 0 ? sys / (user + sys) : 0;
  row->ns_per_item = row->wall.median / (double)r->c.nb_new * 1e9;
  row->gflops = r->flops / row->wall.median / 1e9;
  *gf = row->gflops;
  if (!row->reference)
    verify(r, row, res);
  if (contends(row) && row->gflops > r->best_gflops) {
    r->best = r->plan;
    r->best_gflops = row->gflops;
  }
  res->nrows++;
  return 0;
}

/* The Python peers on the same inputs: each approach's row joins the case's, its answer is
 * checked like a backend's, and its speed predicts its next case like a backend's. */
static int run_peers(knn_run *r, unsigned workers, speed_log *log, bench_result *res) {
  static const char *const rows[] = {"py:numpy", "py:torch", "py:faiss"};
  bench_peers_knn k = {
      .db = r->db, .q = r->q, .nb_txt = r->c.nb_txt, .dim = r->c.dim, .nb_new = r->c.nb_new};
  char why[512];
  if (bench_peers_knn_open(&k, why, sizeof why) != 0) {
    bench_note_add(res, r->section, "Python peers not run: %s", why);
    return 0;
  }
  for (size_t i = 0; i < sizeof rows / sizeof rows[0] && !bench_interrupted; i++) {
    double *gf = speed_of(log, rows[i]);
    if (predict(r, rows[i], gf, res) < 0)
      continue;
    progress(r, rows[i]);
    bench_row *row = bench_peers_knn_run(r->o->peers, &k, rows[i] + 3, workers, r->o->repeat,
                                         row_seconds(r), r->section, res, r->idx);
    if (!row || row->failed)
      continue;
    row->gflops = r->flops / row->wall.median / 1e9;
    *gf = row->gflops;
    verify(r, row, res);
  }
  bench_peers_knn_close(&k);
  bench_peers_compare(res, r->section);
  return bench_interrupted ? BG_ECANCELED : 0;
}

static const bench_row *row_of(const bench_result *res, size_t first, const char *name) {
  for (size_t i = first; i < res->nrows; i++)
    if (!strcmp(res->rows[i].backend, name) && res->rows[i].gflops > 0)
      return &res->rows[i];
  return NULL;
}

static const char *bytes_text(double b, char *buf, size_t cap) {
  if (b >= 1073741824)
    snprintf(buf, cap, "%.2f GiB", b / 1073741824);
  else
    snprintf(buf, cap, "%.1f MiB", b / 1048576);
  return buf;
}

/* Where the cuda row's GPU time went, and what its top-k costs over cuBLAS's bare product of
 * the same scores. The shares are of the summed activities, which may overlap in time. */
static void explain_gpu(const knn_run *r, bench_result *res, size_t first) {
  const bench_row *cuda = row_of(res, first, "cuda"), *cub = row_of(res, first, "cublas-sgemm");
  const char *s = r->section;
  if (cuda && r->cuda_least)
    bench_note_add(res, s,
                   "cuda ran within the GPU's own memory, not the case's %.1f MiB budget: the "
                   "device needs at least %.1f MiB (cuBLAS's workspace and the smallest tiles); "
                   "--mem-budget holds it to a budget of yours",
                   (double)r->budget / 1048576, (double)r->cuda_least / 1048576);
  double gpu = cuda ? cuda->h2d_s + cuda->gemm_s + cuda->select_s + cuda->d2h_s : 0;
  if (gpu > 0)
    bench_note_add(res, s,
                   "cuda: %.0f%% of its GPU time in transfers (H2D %.3g s, D2H %.3g s), %.0f%% in "
                   "products, %.0f%% in the top-k selection",
                   100 * (cuda->h2d_s + cuda->d2h_s) / gpu, cuda->h2d_s, cuda->d2h_s,
                   100 * cuda->gemm_s / gpu, 100 * cuda->select_s / gpu);
  if (cub)
    bench_note_add(res, s,
                   "cublas-sgemm, the GPU's ceiling: cuBLAS's FP32 product alone took %.3g s on "
                   "the device (%.0f GFLOP/s, no top-k, scores left on the device), after %.3g s "
                   "uploading the inputs",
                   cub->wall.median, cub->gflops, cub->h2d_s);
  if (!cuda || !cub)
    return;
  char dev[200] = "";
  if (cuda->gemm_s > 0)
    snprintf(dev, sizeof dev,
             "; on the device its own products took %.3g s (%.2fx the bare product's) and its "
             "top-k selection %.3g s more (%.0f%% of the bare product's time)",
             cuda->gemm_s, cuda->gemm_s / cub->wall.median, cuda->select_s,
             100 * cuda->select_s / cub->wall.median);
  bench_note_add(res, s,
                 "cuda's whole search took %.3g s, %.1fx cuBLAS's bare product (%.3g s on the "
                 "device; %.3g s with its upload)%s",
                 cuda->wall.median, cuda->wall.median / cub->wall.median, cub->wall.median,
                 cub->wall.median + cub->h2d_s, dev);
}

/* Fills the ratios of the case's rows (first..end) and writes its sentences. */
static void explain(const knn_run *r, bench_result *res, size_t first, uint64_t avail) {
  const bench_row *naive = row_of(res, first, "naive"), *sgemm = row_of(res, first, "sgemm");
  const bench_row *best = NULL;
  for (size_t i = first; i < res->nrows; i++) {
    bench_row *x = &res->rows[i];
    if (naive && x->gflops > 0)
      x->speedup = naive->wall.median / x->wall.median;
    if (sgemm && x->gflops > 0)
      x->vs_sgemm = x->gflops / sgemm->gflops;
    if (contends(x) && (!best || x->gflops > best->gflops))
      best = x;
  }
  if (!best)
    return;
  /* auto is one of the others under another name: the sentences name the backend it ran, with
   * auto's own figures (its row may be faster than that backend's own, by noise). */
  char name[64];
  snprintf(name, sizeof name, "%s", best->backend);
  if (!strcmp(best->backend, "auto"))
    snprintf(name, sizeof name, "auto (%.*s)", (int)strcspn(best->plan, " "), best->plan);
  const char *s = r->section;
  const bench_row *blocked = row_of(res, first, "blocked"), *file = row_of(res, first, "file");
  if (blocked && file)
    bench_note_add(
        res, s,
        "file searched the database from a %.1f MiB .npy file within a %.1f MiB "
        "budget (in pieces unless two copies of the database fit, each mapped where it lies): "
        "%.2fx the in-memory blocked row's time (the file was just written, so its pages are "
        "in the page cache; a cold disk's figures are in docs/PERFORMANCE.md)",
        (double)r->file.bytes / 1048576, (double)file_budget(r) / 1048576,
        file->wall.median / blocked->wall.median);
  if (sgemm)
    bench_note_add(res, s,
                   "%s is fastest at %.1f GFLOP/s with the top-k included: %.0f%% of OpenBLAS's "
                   "bare sgemm on the same product (%.1f GFLOP/s, no top-k)%s",
                   name, best->gflops, 100 * best->vs_sgemm, sgemm->gflops,
                   !strcmp(best->backend, "bf16")
                       ? "; its products are bf16's (on AMX or AVX-512 BF16, as its plan says), "
                         "and the few pairs its error bound cannot rule out are scored again in "
                         "fp32, so its answer is the exact one"
                   : best->vs_sgemm >= 1
                       ? "; it beats the bare product because the top-k is folded in while a tile "
                         "of scores is still in cache, where sgemm writes every score to memory"
                       : "");
  else
    bench_note_add(res, s, "%s is fastest at %.1f GFLOP/s with the top-k included", name,
                   best->gflops);
  if (naive && best != naive)
    bench_note_add(res, s,
                   "%.1fx the naive loop: %s keeps blocks of queries and database vectors in "
                   "registers and cache, so each value loaded from memory feeds many "
                   "multiply-adds, where the loop reloads both vectors for every dot product",
                   best->speedup, name);
  double work = best->wall.median;
  if (work < 2e-3)
    bench_note_add(res, s,
                   "the whole search takes %.2f ms: waking workers, planning and packing are a "
                   "visible share of it, so backends differ here by fixed costs, not arithmetic",
                   work * 1e3);
  char b1[32], b2[32], b3[32], b4[32];
  double matrix = (double)r->c.nb_new * (double)r->c.nb_txt * sizeof(float);
  double inputs = (double)(r->c.nb_txt + r->c.nb_new) * (double)r->c.dim * sizeof(float);
  /* Also whenever the matrix would not fit the budget the search was given (--mem-budget). */
  if (r->c.wall || matrix > (double)avail || (r->budget && matrix > (double)r->budget))
    bench_note_add(res, s,
                   "the score matrix NumPy's matmul (or PyTorch) would build holds %s%s; brigade "
                   "planned %s of tiles in a budget of %s and peaked at %.0f MiB, of which %s "
                   "are the inputs",
                   bytes_text(matrix, b1, sizeof b1),
                   matrix > (double)avail ? ", more than this machine has free: the lecture's "
                                            "'Killed: 9'"
                                          : "",
                   bytes_text((double)r->best.bytes, b2, sizeof b2),
                   bytes_text((double)r->best.budget, b3, sizeof b3), best->peak_mib,
                   bytes_text(inputs, b4, sizeof b4));
  if (r->near_ties)
    bench_note_add(res, s,
                   "%zu queries had two database vectors whose scores agree to float32 rounding; "
                   "brigade's CPU backends all give the blocked kernel's pick (blas through its "
                   "certificate), while NumPy, PyTorch or a GPU, which sum in other orders, may "
                   "pick the other, and both are correct",
                   r->near_ties);
}

/* What the suite as a whole should say: the instructions brigade's kernels ran (and a cap on
 * them, which changes every CPU row) and OpenBLAS's kernel. */
static void explain_run(bench_result *res) {
  const char *isa = getenv("BRIGADE_KNN_ISA"), *bf16 = bg_knn_cpu_kernel(BG_KNN_BF16);
  bench_note_add(res, "", "brigade's CPU kernels ran on %s (exact)%s%s%s%s%s%s",
                 bg_knn_cpu_kernel(BG_KNN_EXACT), bf16 ? " and " : "; bf16 rows ran exact",
                 bf16 ? bf16 : "", bf16 ? " (bf16)" : "",
                 isa && *isa ? ", as BRIGADE_KNN_ISA=" : "", isa && *isa ? isa : "",
                 isa && *isa ? " caps them" : "");
  const char *core = getenv("OPENBLAS_CORETYPE");
  if (bg_knn_blas_degraded())
    bench_note_add(res, "",
                   "OpenBLAS runs an AVX2 kernel on this AVX-512 CPU (%s%s), well below its "
                   "speed: blas and sgemm are held back, blocked is not. %s for OpenBLAS's best",
                   core ? "OPENBLAS_CORETYPE=" : "it does not recognise the CPU", core ? core : "",
                   core ? "Unset OPENBLAS_CORETYPE" : "OPENBLAS_CORETYPE=SkylakeX");
}

static int run_case(const bench_knn_opts *o, bg_pool_t *pool, knn_case c, uint64_t avail,
                    knn_suite *st, bench_result *res, char *err, size_t cap) {
  knn_run r = {.o = o, .c = c, .flops = 2.0 * (double)c.nb_txt * (double)c.dim * (double)c.nb_new};
  r.budget = o->mem_budget ? o->mem_budget
             : c.wall      ? (o->lecture ? WALL_BUDGET_LECTURE : WALL_BUDGET_QUICK)
                           : 0;
  snprintf(r.section, sizeof r.section, "knn (%zu, %zu, %zu)%s", c.nb_txt, c.dim, c.nb_new,
           c.wall ? " memory wall" : "");
  double need = (double)(c.nb_txt + c.nb_new) * (double)c.dim * sizeof(float) +
                (double)c.nb_new * 2 * sizeof(int64_t) + (double)SGEMM_BLOCK;
  if (need > 0.8 * (double)avail) {
    bench_note_add(res, r.section,
                   "skipped: the inputs need %.2f GiB and only %.2f GiB are available",
                   need / 1073741824, (double)avail / 1073741824);
    return 0;
  }
  r.db = bench_knn_random(0, c.nb_txt, c.dim, BG_F32, 1);
  r.q = bench_knn_random(0, c.nb_new, c.dim, BG_F32, 2);
  r.idx = malloc(c.nb_new * sizeof *r.idx);
  r.ref = malloc(c.nb_new * sizeof *r.ref);
  int rc = 0;
  if (!r.db || !r.q || !r.idx || !r.ref) {
    snprintf(err, cap, "%s: out of memory allocating the inputs", r.section);
    rc = BG_ENOMEM;
  }
  size_t first = res->nrows;
  for (size_t b = 0; b < o->nbackends && rc == 0; b++)
    rc = time_backend(&r, pool, o->backends[b], st, res);
  if (rc == 0 && o->peers)
    rc = run_peers(&r, bg_pool_workers(pool), &st->log, res);
  if (rc == 0) {
    explain(&r, res, first, avail);
    explain_gpu(&r, res, first);
  }
  if (rc == 0 && r.ref_name) {
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.db = r.db, d.nb_txt = c.nb_txt, d.queries = r.q, d.nb_new = c.nb_new, d.dim = c.dim;
    d.k = 1, d.idx = r.idx;
    bg_knn_plan_t p;
    if (bg_knn_plan(pool, &d, &p) == 0)
      bench_note_add(res, r.section, "auto picks %s for this shape", p.backend);
  }
  bench_knn_file_close(&r.file);
  free(r.db), free(r.q), free(r.idx), free(r.ref);
  return rc;
}

int bench_knn(const bench_knn_opts *o, bench_result *res, char *err, size_t cap) {
  res->suite = "knn";
  uint64_t avail;
  if (bg_mem_available(&avail) != 0)
    avail = UINT64_MAX;
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.workers = o->workers;
  bg_pool_t *pool;
  int rc = bg_pool_create(&po, &pool);
  if (rc != 0) {
    snprintf(err, cap, "cannot start the workers: %s", bg_strerror(rc));
    return rc;
  }
  /* The user's shapes are searched like the suite's ordinary cases: no memory-wall budget of
   * their own, so --mem-budget (or the library's) decides whether they tile. */
  knn_case mine[BENCH_KNN_MAX_SHAPES];
  for (size_t i = 0; i < o->nshapes; i++)
    mine[i] = (knn_case){o->shapes[i].nb_txt, o->shapes[i].dim, o->shapes[i].nb_new, 0};
  const knn_case *cases = o->nshapes ? mine : o->lecture ? lecture_cases : quick_cases;
  size_t n = o->nshapes   ? o->nshapes
             : o->lecture ? sizeof lecture_cases / sizeof lecture_cases[0]
                          : sizeof quick_cases / sizeof quick_cases[0];
  knn_suite st;
  memset(&st, 0, sizeof st);
  st.gpu_rc = BG_ENOTSUP;
  for (size_t b = 0; b < o->nbackends; b++)
    if (is_gpu(o->backends[b])) {
      st.gpu_rc = bg_gpu_query(&st.gpu);
      break;
    }
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = run_case(o, pool, cases[i], avail, &st, res, err, cap);
  if (o->progress)
    fprintf(stderr, "\r\033[K");
  bg_pool_destroy(pool);
  if (rc == 0)
    explain_run(res);
  if (rc == BG_ECANCELED)
    snprintf(err, cap, "interrupted");
  return rc;
}
