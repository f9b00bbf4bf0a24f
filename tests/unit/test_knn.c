/* SPDX-License-Identifier: MIT */
/* bg_knn against a float64 brute-force reference: every backend, metric and dtype, k = 1 and
 * 10, sizes that are no multiple of any tile, dim = 1, nb_txt = 1, planted ties; the planner's
 * budget checked against what is really allocated; every refusal; scores that would overflow the
 * dtype; OpenBLAS's buffers under RLIMIT_AS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

static const char *const backends[] = {"naive", "blocked", "blas"};

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Small integers keep every float32 sum exact, so all backends must agree bit for bit. */
static void fill(double *v, size_t n, uint64_t seed, int integers) {
  for (size_t i = 0; i < n; i++)
    v[i] =
        integers ? (double)((int)(rng(&seed) % 17) - 8) : (double)(rng(&seed) % 2000001) / 1e6 - 1;
}

static double score(const double *q, const double *x, size_t dim, bg_knn_metric_t m) {
  double dot = 0, qq = 0, xx = 0, l2 = 0;
  for (size_t t = 0; t < dim; t++) {
    dot += q[t] * x[t];
    qq += q[t] * q[t];
    xx += x[t] * x[t];
    l2 += (q[t] - x[t]) * (q[t] - x[t]);
  }
  if (m == BG_KNN_L2)
    return l2;
  if (m == BG_KNN_COSINE)
    return qq > 0 && xx > 0 ? dot / sqrt(qq * xx) : 0;
  return dot;
}

/* Best-first reference top-k of one query; ties to the lowest index. */
static void reference(const double *q, const double *db, size_t nb, size_t dim, size_t k,
                      bg_knn_metric_t m, int64_t *idx, double *sc) {
  for (size_t r = 0; r < k; r++)
    idx[r] = -1;
  for (size_t j = 0; j < nb; j++) {
    double s = score(q, db + j * dim, dim, m);
    double key = m == BG_KNN_L2 ? -s : s;
    size_t p = k;
    while (p > 0 && (idx[p - 1] < 0 || key > (m == BG_KNN_L2 ? -sc[p - 1] : sc[p - 1])))
      p--;
    if (p == k)
      continue;
    for (size_t r = k - 1; r > p; r--) {
      idx[r] = idx[r - 1];
      sc[r] = sc[r - 1];
    }
    idx[p] = (int64_t)j;
    sc[p] = s;
  }
}

typedef struct shape {
  size_t nb, dim, nq, k;
} shape;

static void check_case(bg_pool_t *pool, shape s, bg_knn_metric_t m, bg_dtype_t t, int integers,
                       uint64_t seed) {
  double *db = malloc(s.nb * s.dim * sizeof *db), *q = malloc(s.nq * s.dim * sizeof *q);
  fill(db, s.nb * s.dim, seed, integers);
  fill(q, s.nq * s.dim, seed * 7 + 1, integers);
  if (s.nb > 3) /* planted ties: row 3 repeats row 1 */
    memcpy(db + 3 * s.dim, db + 1 * s.dim, s.dim * sizeof *db);
  size_t e = t == BG_F64 ? 8 : 4;
  void *dbt = malloc(s.nb * s.dim * e), *qt = malloc(s.nq * s.dim * e);
  for (size_t i = 0; i < s.nb * s.dim; i++)
    t == BG_F64 ? (void)(((double *)dbt)[i] = db[i]) : (void)(((float *)dbt)[i] = (float)db[i]);
  for (size_t i = 0; i < s.nq * s.dim; i++)
    t == BG_F64 ? (void)(((double *)qt)[i] = q[i]) : (void)(((float *)qt)[i] = (float)q[i]);
  int64_t *want = malloc(s.nq * s.k * sizeof *want), *got = malloc(s.nq * s.k * sizeof *got);
  double *wsc = malloc(s.nq * s.k * sizeof *wsc);
  void *gsc = malloc(s.nq * s.k * e);
  for (size_t i = 0; i < s.nq; i++)
    reference(q + i * s.dim, db, s.nb, s.dim, s.k, m, want + i * s.k, wsc + i * s.k);
  /* Each backend in its default plan, then in its smallest (one-query tiles, the narrowest
   * database tiles). */
  for (size_t run = 0; run < 6; run++) {
    const char *be = backends[run / 2];
    if (!bg_knn_backend_available(be))
      continue;
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.dtype = t;
    d.metric = m;
    d.db = dbt;
    d.nb_txt = s.nb;
    d.queries = qt;
    d.nb_new = s.nq;
    d.dim = s.dim;
    d.k = s.k;
    d.backend = be;
    d.idx = got;
    d.scores = gsc;
    if (run % 2) {
      bg_knn_plan_t least;
      d.mem_budget = 1;
      assert_int_equal(bg_knn_plan(pool, &d, &least), BG_ENOMEM);
      d.mem_budget = least.min_bytes;
    }
    bg_knn_plan_t plan;
    assert_int_equal(bg_knn(pool, &d, &plan), 0);
    assert_true(!d.mem_budget || plan.bytes <= d.mem_budget);
    if (run % 2 && !strcmp(be, "blas"))
      assert_int_equal(plan.tile_q, 1);

    for (size_t i = 0; i < s.nq * s.k; i++) {
      double g = t == BG_F64 ? ((double *)gsc)[i] : ((float *)gsc)[i];
      double tol = 1e-4 * (1 + fabs(wsc[i]));
      if (fabs(g - wsc[i]) > tol)
        fail_msg("%s (plan %zux%zu) %s %s nb=%zu dim=%zu k=%zu: rank %zu of query %zu scores %g, "
                 "want %g",
                 be, plan.tile_q, plan.tile_db, bg_knn_metric_name(m), bg_dtype_name(t), s.nb,
                 s.dim, s.k, i % s.k, i / s.k, g, wsc[i]);
      /* Exact data and an exact metric: the very same indices, ties to the lowest. */
      if (integers && m != BG_KNN_COSINE && got[i] != want[i])
        fail_msg("%s (plan %zux%zu) %s %s nb=%zu dim=%zu k=%zu: rank %zu of query %zu is %lld, "
                 "want %lld",
                 be, plan.tile_q, plan.tile_db, bg_knn_metric_name(m), bg_dtype_name(t), s.nb,
                 s.dim, s.k, i % s.k, i / s.k, (long long)got[i], (long long)want[i]);
    }
  }
  free(db), free(q), free(dbt), free(qt), free(want), free(got), free(wsc), free(gsc);
}

/* Shapes that are not multiples of any tile or register block: one database vector, dim 1,
 * k = nb_txt, several query blocks with a short last one, several database tiles (5003 x 33
 * floats is more than half an L2 of 1 MiB). */
static void check_shapes(void) {
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  static const shape shapes[] = {{1, 5, 3, 1},       {37, 1, 29, 10},   {1013, 7, 29, 1},
                                 {1013, 67, 29, 10}, {300, 130, 9, 10}, {17, 16, 17, 17},
                                 {5003, 33, 70, 2}};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
      for (int t = 0; t < BG_DTYPE_COUNT_; t++)
        for (int integers = 0; integers < 2; integers++)
          check_case(pool, shapes[si], (bg_knn_metric_t)m, (bg_dtype_t)t, integers,
                     0x1234 + si * 31 + (uint64_t)m);
  bg_pool_destroy(pool);
}

static void every_backend_matches_the_reference(void **state) {
  (void)state;
  check_shapes();
}

/* The blocked kernel's portable build, which CPUs without AVX-512 run. */
static void the_portable_kernel_matches_too(void **state) {
  (void)state;
  setenv("BRIGADE_KNN_ISA", "generic", 1);
  check_shapes();
  unsetenv("BRIGADE_KNN_ISA");
}

static void the_planner_keeps_to_its_budget(void **state) {
  (void)state;
  tk_counting cnt = {0};
  bg_allocator_t a = {tk_count_alloc, tk_count_free, &cnt};
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.allocator = &a;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(&o, &pool), 0);
  size_t nb = 20000, dim = 64, nq = 500, k = 5;
  float *db = calloc(nb * dim, 4), *q = calloc(nq * dim, 4);
  for (size_t i = 0; i < nb * dim; i++)
    db[i] = (float)(i % 13) - 6;
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = (float)(i % 7) - 3;
  int64_t *idx = malloc(nq * k * sizeof *idx);
  static const uint64_t budgets[] = {256 << 10, 512 << 10,
                                     4 << 20}; /* blas: 240 KB of norms and certificate */
  for (size_t b = 0; b < 3; b++) {
    for (size_t be = 0; be < 3; be++) {
      if (!bg_knn_backend_available(backends[be]))
        continue;
      bg_knn_desc_t d;
      bg_knn_desc_init(&d);
      d.metric = BG_KNN_L2;
      d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = nq, d.dim = dim, d.k = k;
      d.idx = idx;
      d.backend = backends[be];
      d.mem_budget = budgets[b];
      size_t base = cnt.live;
      cnt.peak = base;
      bg_knn_plan_t plan;
      assert_int_equal(bg_knn(pool, &d, &plan), 0);
      assert_true(plan.bytes <= budgets[b]);
      if (cnt.peak - base > budgets[b])
        fail_msg("%s with a %llu B budget allocated %zu B", backends[be],
                 (unsigned long long)budgets[b], cnt.peak - base);
    }
  }
  free(db), free(q), free(idx);
  /* Without a budget, a search whose whole plan fits 16 MiB is planned in 16 MiB, without
   * reading the memory available; a larger one is planned in half of what is available. */
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  float tiny[4] = {1, 2, 3, 4};
  int64_t ti[2];
  d.db = tiny, d.nb_txt = 2, d.queries = tiny, d.nb_new = 2, d.dim = 2, d.k = 1, d.idx = ti;
  d.backend = "blocked";
  bg_knn_plan_t plan;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  assert_int_equal(plan.budget, 16 << 20);
  uint64_t avail;
  assert_int_equal(bg_mem_available(&avail), 0);
  d.nb_txt = 1 << 20, d.dim = 4096, d.nb_new = 1 << 20, d.k = 100, d.metric = BG_KNN_L2;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  assert_true(plan.budget > 16 << 20 && plan.budget <= avail);
  /* A budget above what may still be allocated is lowered to it, not handed to the OOM killer. */
  d.mem_budget = (uint64_t)1 << 50;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  assert_true(plan.budget < (uint64_t)1 << 50);
  assert_true(plan.bytes <= plan.budget);
  bg_pool_destroy(pool);
}

/* The lecture's fallback: with no GPU (every CI machine), "cuda" fails with the reason and
 * auto answers on the CPU. On a machine with a GPU this is tests/gpu's business. */
static void without_a_gpu_cuda_is_refused_and_auto_runs_on_the_cpu(void **state) {
  (void)state;
  bg_gpu_info_t g;
  int rc = bg_gpu_query(&g);
  if (rc == 0)
    skip();
  assert_true(rc == BG_EUNAVAIL || rc == BG_ENOTSUP);
  assert_true(strlen(g.why) > 0);
  assert_int_equal(g.devices, 0);
  assert_int_equal(bg_gpu_query(NULL), BG_EINVAL);
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  float db[8] = {1, 2, 3, 4, 5, 6, 7, 8}, q[4] = {1, 0, 0, 1};
  int64_t idx[2] = {-5, -5};
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 4, d.queries = q, d.nb_new = 2, d.dim = 2, d.k = 1, d.idx = idx;
  d.backend = "cuda";
  bg_knn_plan_t plan;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), rc);
  assert_int_equal(bg_knn(pool, &d, NULL), rc);
  assert_int_equal(idx[0], -5);                                          /* nothing written */
  assert_int_equal(bg_knn_backend_available("cuda"), rc == BG_EUNAVAIL); /* compiled in */
  d.backend = "auto";
  assert_int_equal(bg_knn(pool, &d, &plan), 0);
  assert_string_not_equal(plan.backend, "cuda");
  assert_int_equal(idx[0], 3);
  assert_int_equal(idx[1], 3);
  bg_pool_destroy(pool);
}

/* auto picks blas on CPUs without FMA from 32 dimensions up (BRIGADE_KNN_ISA=generic makes any
 * CPU one); a budget (128 KiB at 400 dimensions) that holds the blocked kernel's plan but not
 * blas's certificate (two values per database row) gets the blocked kernel, not a refusal.
 * Explicit blas is refused. With FMA, auto is the blocked kernel whatever the budget. */
static void auto_gives_way_to_blocked_when_blas_does_not_fit(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  size_t nb = 20000, dim = 400;
  float *db = calloc(nb * dim, 4), *q = calloc(10 * dim, 4);
  for (size_t i = 0; i < nb * dim; i++)
    db[i] = (float)(i % 11) - 5;
  int64_t idx[10];
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = 10, d.dim = dim, d.k = 1, d.idx = idx;
  d.mem_budget = 64 << 20;
  bg_knn_plan_t p;
  assert_int_equal(bg_knn_plan(pool, &d, &p), 0);
  if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2"))
    assert_string_equal(p.backend, "blocked");
  if (bg_knn_backend_available("blas")) {
    setenv("BRIGADE_KNN_ISA", "generic", 1);
    assert_int_equal(bg_knn_plan(pool, &d, &p), 0);
    assert_string_equal(p.backend, "blas");
    d.mem_budget = 128 << 10;
    assert_int_equal(bg_knn(pool, &d, &p), 0);
    assert_string_equal(p.backend, "blocked");
    d.dim = 16, d.mem_budget = 64 << 20; /* too few dimensions to pay for OpenBLAS's packing */
    assert_int_equal(bg_knn_plan(pool, &d, &p), 0);
    assert_string_equal(p.backend, "blocked");
    unsetenv("BRIGADE_KNN_ISA");
    d.dim = dim, d.mem_budget = 128 << 10, d.backend = "blas";
    assert_int_equal(bg_knn_plan(pool, &d, &p), BG_ENOMEM);
    assert_true(p.min_bytes > d.mem_budget);
  }
  free(db), free(q);
  bg_pool_destroy(pool);
}

static void refusals_are_clear(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  float db[8] = {1, 2, 3, 4, 5, 6, 7, 8}, q[4] = {1, 0, 0, 1};
  int64_t idx[8] = {0};
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 4, d.queries = q, d.nb_new = 2, d.dim = 2, d.k = 1, d.idx = idx;
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  assert_int_equal(idx[0], 3); /* (1,0).(7,8) = 7 is the largest */
  d.k = 5;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL); /* k > nb_txt */
  d.k = 1, d.dim = 0;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL);
  d.dim = 2, d.backend = "gpu-magic";
  assert_int_equal(bg_knn(pool, &d, NULL), BG_ENOENT);
  d.backend = "auto", d.metric = BG_KNN_METRIC_COUNT_;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL);
  d.metric = BG_KNN_IP, d.nb_txt = SIZE_MAX / 2;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_ERANGE); /* nb_txt * dim * 4 overflows */
  d.k = 1, d.dim = SIZE_MAX / 4;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_ERANGE);
  d.nb_txt = 4, d.dim = 2;
  db[5] = NAN;
  idx[0] = 42;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL);
  assert_int_equal(idx[0], 42); /* nothing written */
  db[5] = 6;
  d.mem_budget = 16;
  bg_knn_plan_t plan;
  d.metric = BG_KNN_COSINE;
  assert_int_equal(bg_knn(pool, &d, &plan), BG_ENOMEM);
  assert_true(plan.min_bytes > 16);
  assert_int_equal(plan.budget, 16);
  assert_int_equal(bg_knn_plan(NULL, &d, &plan), BG_EINVAL);
  assert_string_equal(bg_knn_metric_name(BG_KNN_L2), "l2");
  assert_string_equal(bg_dtype_name(BG_F64), "f64");
  bg_pool_destroy(pool);
}

/* A search of fewer multiply-adds than a worker's wake-up is worth runs on one worker (the
 * caller); one query against a large database runs on every worker, in database slices. */
static void tiny_searches_run_on_one_worker(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  static float db[20000 * 100], q[4 * 100];
  int64_t idx[4];
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 200, d.queries = q, d.nb_new = 4, d.dim = 8, d.k = 1, d.idx = idx;
  bg_knn_plan_t p;
  assert_int_equal(bg_knn(pool, &d, &p), 0);
  assert_int_equal(p.workers, 1);
  assert_int_equal(p.db_slices, 1);
  d.nb_txt = 20000, d.dim = 100, d.nb_new = 1;
  assert_int_equal(bg_knn(pool, &d, &p), 0);
  assert_int_equal(p.workers, 2);
  assert_int_equal(p.db_slices, 2);
  /* A k whose lists' bytes, the search's own and two slices', add up past 2^64 (36 k = 2^64 +
   * 20): refused for memory, not split and planned in a wrapped figure. The desc is valid
   * (nb_new k 8 and nb_txt dim 4 fit). */
  d.nb_txt = (size_t)1 << 60, d.dim = 1, d.k = 512409557603043101u;
  d.mem_budget = (uint64_t)1 << 30;
  assert_int_equal(bg_knn_plan(pool, &d, &p), BG_ENOMEM);
  assert_int_equal(p.db_slices, 1);
  bg_pool_destroy(pool);
}

/* Runs one search of doubles converted to the dtype. Return: bg_knn's code; idx and sc (as
 * doubles) hold the answer on 0. */
static int search(bg_pool_t *pool, const char *be, bg_knn_metric_t m, bg_dtype_t t,
                  const double *db, size_t nb, const double *q, size_t nq, size_t dim, size_t k,
                  int64_t *idx, double *sc, bg_knn_plan_t *plan) {
  size_t e = t == BG_F64 ? 8 : 4;
  void *dbt = malloc(nb * dim * e), *qt = malloc(nq * dim * e), *st = malloc(nq * k * e);
  for (size_t i = 0; i < nb * dim; i++)
    t == BG_F64 ? (void)(((double *)dbt)[i] = db[i]) : (void)(((float *)dbt)[i] = (float)db[i]);
  for (size_t i = 0; i < nq * dim; i++)
    t == BG_F64 ? (void)(((double *)qt)[i] = q[i]) : (void)(((float *)qt)[i] = (float)q[i]);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.dtype = t, d.metric = m, d.backend = be;
  d.db = dbt, d.nb_txt = nb, d.queries = qt, d.nb_new = nq, d.dim = dim, d.k = k;
  d.idx = idx, d.scores = st;
  int rc = bg_knn(pool, &d, plan);
  for (size_t i = 0; rc == 0 && i < nq * k; i++)
    sc[i] = t == BG_F64 ? ((double *)st)[i] : ((float *)st)[i];
  free(dbt), free(qt), free(st);
  return rc;
}

/* Every answer is an index in range whose true score is the reference's at that rank (ties
 * may pick any of the tied rows), and the reported score matches. */
static void expect_reference(const char *what, const double *db, size_t nb, const double *q,
                             size_t nq, size_t dim, size_t k, bg_knn_metric_t m, const int64_t *idx,
                             const double *sc) {
  int64_t *want = malloc(k * sizeof *want);
  double *wsc = malloc(k * sizeof *wsc);
  for (size_t i = 0; i < nq; i++) {
    reference(q + i * dim, db, nb, dim, k, m, want, wsc);
    for (size_t r = 0; r < k; r++) {
      int64_t j = idx[i * k + r];
      if (j < 0 || (size_t)j >= nb)
        fail_msg("%s: query %zu rank %zu has index %lld", what, i, r, (long long)j);
      double truth = score(q + i * dim, db + (size_t)j * dim, dim, m);
      double tol = 1e-4 * (1 + fabs(wsc[r]));
      if (fabs(truth - wsc[r]) > tol || fabs(sc[i * k + r] - wsc[r]) > tol)
        fail_msg("%s: query %zu rank %zu is row %lld scoring %g (reported %g), want %g", what, i, r,
                 (long long)j, truth, sc[i * k + r], wsc[r]);
    }
  }
  free(want), free(wsc);
}

/* The check pass sums each f32 row in the widest vectors the CPU has (norms.c: AVX-512 in
 * 16-value steps with a masked last one, AVX2 in 8-value steps and a scalar tail): a bad value at
 * every position of a row, of dims around those steps, is refused by each build, and clean
 * inputs pass. */
static void every_position_of_a_row_is_checked_by_every_build(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  const char *caps[] = {NULL, "avx2", "generic"};
  const size_t dims[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 100};
  const float bad[] = {NAN, -INFINITY, INFINITY};
  float db[5 * 100], q[3 * 100];
  int64_t idx[3];
  for (size_t c = 0; c < 3; c++) {
    if (caps[c])
      setenv("BRIGADE_KNN_ISA", caps[c], 1);
    for (size_t n = 0; n < sizeof dims / sizeof dims[0]; n++) {
      size_t dim = dims[n];
      for (size_t i = 0; i < 5 * dim; i++)
        db[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
      for (size_t i = 0; i < 3 * dim; i++)
        q[i] = (float)((i * 53) % 13) / 13.0f - 0.5f;
      bg_knn_desc_t d;
      bg_knn_desc_init(&d);
      d.db = db, d.nb_txt = 5, d.queries = q, d.nb_new = 3, d.dim = dim, d.k = 1, d.idx = idx;
      assert_int_equal(bg_knn(pool, &d, NULL), 0);
      float *rows[] = {db + 4 * dim, q};
      for (size_t a = 0; a < 2; a++)
        for (size_t t = 0; t < dim; t++)
          for (size_t b = 0; b < 3; b++) {
            float keep = rows[a][t];
            rows[a][t] = bad[b];
            if (bg_knn(pool, &d, NULL) != BG_EINVAL)
              fail_msg("BRIGADE_KNN_ISA=%s dim %zu: %g at %zu of a %s row not refused",
                       caps[c] ? caps[c] : "(unset)", dim, (double)bad[b], t,
                       a ? "query" : "database");
            rows[a][t] = keep;
          }
    }
    unsetenv("BRIGADE_KNN_ISA");
  }
  bg_pool_destroy(pool);
}

/* Inputs of more than a chunk (norms.c) are checked and normed on the pool, chunk by chunk: a
 * bad value in any chunk, the first row's, a middle one's or the last row's, in the database or
 * in the queries, is still refused, and the norms of every chunk are right. */
static void every_chunk_of_a_large_input_is_checked(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 3);
  size_t nb = 6000, nq = 3000, dim = 100;
  float *db = malloc(nb * dim * sizeof *db), *q = malloc(nq * dim * sizeof *q);
  for (size_t i = 0; i < nb * dim; i++)
    db[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
  int64_t *idx = malloc(nq * sizeof *idx);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = nq, d.dim = dim, d.k = 1, d.idx = idx;
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  float *arrays[] = {db, q};
  size_t rows[] = {nb, nq};
  const float bad[] = {NAN, INFINITY, 3e38f};
  const int want[] = {BG_EINVAL, BG_EINVAL, BG_ERANGE};
  for (size_t a = 0; a < 2; a++)
    for (size_t r = 0; r < 3; r++) {
      size_t at = (r == 0 ? 0 : r == 1 ? rows[a] / 2 + 1 : rows[a] - 1) * dim + dim - 1;
      for (size_t b = 0; b < 3; b++) {
        float keep = arrays[a][at];
        arrays[a][at] = bad[b];
        assert_int_equal(bg_knn(pool, &d, NULL), want[b]);
        arrays[a][at] = keep;
      }
    }
  /* L2 ranks by 2 q.x - |x|^2: a chunk left without norms would answer wrong. */
  double *dbd = malloc(nb * dim * sizeof *dbd), *qd = malloc(8 * dim * sizeof *qd), sc[8];
  for (size_t i = 0; i < nb * dim; i++)
    dbd[i] = db[i];
  for (size_t i = 0; i < 8 * dim; i++)
    qd[i] = q[i];
  for (int m = BG_KNN_COSINE; m <= BG_KNN_L2; m++) {
    assert_int_equal(
        search(pool, "blocked", (bg_knn_metric_t)m, BG_F32, dbd, nb, qd, 8, dim, 1, idx, sc, NULL),
        0);
    expect_reference("large input", dbd, nb, qd, 8, dim, 1, (bg_knn_metric_t)m, idx, sc);
  }
  free(db), free(q), free(idx), free(dbd), free(qd);
  bg_pool_destroy(pool);
}

/* Ordinary rows in [-1, 1] with every fifth row set to @pad (rows of padding), then everything
 * multiplied by @scale; queries in [0, 1] times @qscale, so that ip against padding is never a
 * tie at zero. */
static void overflow_inputs(double *db, size_t nb, double *q, size_t nq, size_t dim, double pad,
                            double scale, double qscale) {
  fill(db, nb * dim, 99, 0);
  fill(q, nq * dim, 7, 0);
  for (size_t j = 0; j < nb; j++)
    for (size_t t = 0; t < dim; t++)
      db[j * dim + t] = (pad != 0 && j % 5 == 2 ? pad : db[j * dim + t]) * scale;
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = fabs(q[i]) * qscale;
}

/* Rows of 3e38 as padding, or data scaled by 1e20: in f32 a norm, dot product or squared
 * distance passes FLT_MAX, which used to rank infinities (index -1 for L2 and cosine, the first
 * rows for ip) with success. Now every backend refuses with BG_ERANGE before writing anything,
 * with a reason, and f64 (which holds them) answers right. */
static void overflowing_scores_are_refused_or_answered_right(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  enum { NB = 40, NQ = 6, DIM = 48, K = 10 };
  /* Which metrics overflow, per dtype: ip needs |q| |x|, cosine |q| |x| and |x|, L2
   * (|q| + |x|)^2 to fit, with |q| and |x| the largest norms (here up to 7 x the entries). */
  enum { IP = 1 << BG_KNN_IP, COS = 1 << BG_KNN_COSINE, L2 = 1 << BG_KNN_L2, ALL = IP | COS | L2 };
  static const struct {
    double pad, scale, qscale;
    unsigned f32_over, f64_over;
  } cases[] = {
      {3e38, 1, 1, ALL, 0},      /* padding rows of 3e38 */
      {0, 1e20, 1e20, ALL, 0},   /* everything scaled by 1e20 */
      {0, 1, 1e20, L2, 0},       /* only the queries: q.x ~ 1e21 fits, |q - x|^2 ~ 1e41 not */
      {3e38, 1, 3e38, ALL, 0},   /* padding and huge queries */
      {0, 1e160, 1e160, 0, ALL}, /* past f64 too: squares of 1e160 pass 1.8e308 */
      /* f64 padding: |x|^2 ~ 1e401. The check squares norms in double, so even ip, whose
       * q.x ~ 1e201 would fit, is refused: norms past 1.3e154 in f64 are not data. */
      {1e200, 1, 1, 0, ALL},
  };
  double *db = malloc(NB * DIM * sizeof *db), *q = malloc(NQ * DIM * sizeof *q);
  int64_t idx[NQ * K];
  double sc[NQ * K];
  char what[160];
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    overflow_inputs(db, NB, q, NQ, DIM, cases[ci].pad, cases[ci].scale, cases[ci].qscale);
    for (size_t be = 0; be < 3; be++) {
      if (!bg_knn_backend_available(backends[be]))
        continue;
      for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
        for (int t = 0; t < BG_DTYPE_COUNT_; t++) {
          snprintf(what, sizeof what, "case %zu %s %s %s", ci, backends[be],
                   bg_knn_metric_name((bg_knn_metric_t)m), bg_dtype_name((bg_dtype_t)t));
          /* f32 cases whose data holds values past FLT_MAX are not f32 inputs at all. */
          if (t == BG_F32 && (cases[ci].pad > 3.4e38 || cases[ci].scale > 3e38))
            continue;
          unsigned over = t == BG_F64 ? cases[ci].f64_over : cases[ci].f32_over;
          int fits = !(over & (1u << m));
          for (size_t i = 0; i < NQ * K; i++)
            idx[i] = 12345;
          bg_knn_plan_t plan = {0};
          int rc = search(pool, backends[be], (bg_knn_metric_t)m, (bg_dtype_t)t, db, NB, q, NQ, DIM,
                          K, idx, sc, &plan);
          if (fits) {
            if (rc != 0)
              fail_msg("%s: %s", what, bg_errname(rc));
            expect_reference(what, db, NB, q, NQ, DIM, K, (bg_knn_metric_t)m, idx, sc);
            assert_null(plan.why);
            continue;
          }
          if (rc != BG_ERANGE)
            fail_msg("%s: returned %s, want BG_ERANGE", what, bg_errname(rc));
          assert_non_null(plan.why);
          assert_non_null(strstr(plan.why, t == BG_F64 ? "f64" : "f32"));
          for (size_t i = 0; i < NQ * K; i++)
            assert_int_equal(idx[i], 12345); /* refused before anything was written */
        }
      }
    }
  }
  free(db), free(q);
  bg_pool_destroy(pool);
}

/* The check is far from ordinary data: f32 values of 1e18 in 16 dimensions (norms 4e18,
 * squared distances up to 6.4e37) still fit FLT_MAX = 3.4e38 and are answered, on every
 * backend and metric, as the f64 reference says. */
static void large_but_representable_scores_are_answered(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  enum { NB = 300, NQ = 9, DIM = 16, K = 5 };
  double db[NB * DIM], q[NQ * DIM], sc[NQ * K];
  int64_t idx[NQ * K];
  overflow_inputs(db, NB, q, NQ, DIM, 0, 1e18, 5e17);
  char what[128];
  for (size_t be = 0; be < 3; be++) {
    if (!bg_knn_backend_available(backends[be]))
      continue;
    for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
      snprintf(what, sizeof what, "1e18 %s %s f32", backends[be],
               bg_knn_metric_name((bg_knn_metric_t)m));
      int rc = search(pool, backends[be], (bg_knn_metric_t)m, BG_F32, db, NB, q, NQ, DIM, K, idx,
                      sc, NULL);
      if (rc != 0)
        fail_msg("%s: %s", what, bg_errname(rc));
      expect_reference(what, db, NB, q, NQ, DIM, K, (bg_knn_metric_t)m, idx, sc);
    }
  }
  bg_pool_destroy(pool);
}

/* Vectors around 1000 with a spread of 0.01 (every value exact in f32): ranked by the expansion
 * 2 q.x - |x|^2 alone, f32 loses every digit of the distances (a stranger's trial got wrong
 * neighbours and negative squared distances); every backend must answer as the reference, and a
 * budget that cannot hold the centred copies is refused with the reason. */
static void l2_far_from_the_origin_is_answered_right(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  enum { NB = 2000, NQ = 20, DIM = 64, K = 3 };
  double *db = malloc(NB * DIM * sizeof *db), *q = malloc(NQ * DIM * sizeof *q), sc[NQ * K];
  int64_t idx[NQ * K];
  fill(db, NB * DIM, 11, 0);
  fill(q, NQ * DIM, 12, 0);
  for (size_t i = 0; i < NB * DIM; i++)
    db[i] = (double)(float)(1000 + db[i] * 1e-2);
  for (size_t i = 0; i < NQ * DIM; i++)
    q[i] = (double)(float)(1000 + q[i] * 1e-2);
  char what[128];
  for (size_t be = 0; be < 3; be++) {
    if (!bg_knn_backend_available(backends[be]))
      continue;
    for (int t = 0; t < 2; t++) {
      snprintf(what, sizeof what, "offset 1000 %s l2 %s", backends[be], t ? "f64" : "f32");
      int rc = search(pool, backends[be], BG_KNN_L2, t ? BG_F64 : BG_F32, db, NB, q, NQ, DIM, K,
                      idx, sc, NULL);
      if (rc != 0)
        fail_msg("%s: %s", what, bg_errname(rc));
      expect_reference(what, db, NB, q, NQ, DIM, K, BG_KNN_L2, idx, sc);
    }
  }
  float *dbf = malloc(NB * DIM * sizeof *dbf), *qf = malloc(NQ * DIM * sizeof *qf);
  for (size_t i = 0; i < NB * DIM; i++)
    dbf[i] = (float)db[i];
  for (size_t i = 0; i < NQ * DIM; i++)
    qf[i] = (float)q[i];
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.metric = BG_KNN_L2, d.db = dbf, d.nb_txt = NB, d.queries = qf, d.nb_new = NQ, d.dim = DIM;
  d.k = K, d.idx = idx;
  bg_knn_plan_t plan;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  d.mem_budget = plan.bytes + 4096;
  assert_int_equal(bg_knn(pool, &d, &plan), BG_ENOMEM);
  assert_non_null(plan.why);
  assert_non_null(strstr(plan.why, "far from the origin"));
  free(db), free(q), free(dbf), free(qf);
  bg_pool_destroy(pool);
}

/* Sets the soft RLIMIT_AS to what is mapped now plus @room; 0 when it cannot. */
static int limit_as(uint64_t room, struct rlimit *old) {
  if (getrlimit(RLIMIT_AS, old) != 0)
    return 0;
  uint64_t lim = tk_vm_size() + room;
  if (old->rlim_max != RLIM_INFINITY && old->rlim_max < lim)
    return 0;
  struct rlimit rl = {.rlim_cur = lim, .rlim_max = old->rlim_max};
  return setrlimit(RLIMIT_AS, &rl) == 0;
}

/* Under ulimit -v every worker that multiplies makes OpenBLAS map a 128 MiB buffer, and an mmap
 * that fails there is retried forever (a search that never ended). The plan counts them: with
 * room for none it refuses with the reason; with room for two it runs two products at once on
 * a pool of three and answers right. */
static void blas_buffers_are_counted_under_rlimit_as(void **state) {
  (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  skip(); /* the sanitizers' own mappings do not live well under RLIMIT_AS */
#endif
  if (!bg_knn_backend_available("blas"))
    skip();
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.workers = 3;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(&o, &pool), 0);
  enum { NB = 3000, NQ = 1100, DIM = 40, K = 3 };
  double *db = malloc(NB * DIM * sizeof *db), *q = malloc(NQ * DIM * sizeof *q);
  double *sc = malloc(NQ * K * sizeof *sc);
  int64_t *idx = malloc(NQ * K * sizeof *idx);
  float *dbf = malloc(NB * DIM * sizeof *dbf), *qf = malloc(NQ * DIM * sizeof *qf);
  fill(db, NB * DIM, 5, 1);
  fill(q, NQ * DIM, 6, 1);
  for (size_t i = 0; i < NB * DIM; i++)
    dbf[i] = (float)db[i];
  for (size_t i = 0; i < NQ * DIM; i++)
    qf[i] = (float)q[i];
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.backend = "blas", d.metric = BG_KNN_L2;
  d.db = dbf, d.nb_txt = NB, d.queries = qf, d.nb_new = NQ, d.dim = DIM, d.k = K, d.idx = idx;
  uint64_t buf = (128u << 20) + (64u << 10);
  struct rlimit old;
  bg_knn_plan_t plan = {0};
  if (!limit_as(64u << 20, &old))
    skip();
  int rc = bg_knn_plan(pool, &d, &plan);
  assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
  assert_int_equal(rc, BG_ENOMEM);
  assert_non_null(plan.why);
  assert_non_null(strstr(plan.why, "OpenBLAS"));
  assert_true(plan.min_bytes > plan.budget);
  assert_true(plan.min_bytes > buf);
  /* Room for two buffers and the 32 MiB the planner keeps aside, and 24 MiB for the plan. */
  bg_knn_plan_t two = {0};
  assert_true(limit_as(2 * buf + (56u << 20), &old));
  rc = search(pool, "blas", BG_KNN_L2, BG_F32, db, NB, q, NQ, DIM, K, idx, sc, &two);
  assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
  if (rc != 0)
    fail_msg("blas under RLIMIT_AS: %s (%s)", bg_errname(rc), two.why ? two.why : "");
  assert_int_equal(two.workers, 2);
  assert_int_equal(two.blas_bytes, 2 * buf);
  expect_reference("blas on 2 of 3 workers", db, NB, q, NQ, DIM, K, BG_KNN_L2, idx, sc);
  /* Without a limit the plan is the pool's. */
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  if (old.rlim_cur == RLIM_INFINITY)
    assert_int_equal(plan.workers, 3);
  free(db), free(q), free(sc), free(idx), free(dbf), free(qf);
  bg_pool_destroy(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_backend_matches_the_reference),
      cmocka_unit_test(the_portable_kernel_matches_too),
      cmocka_unit_test(the_planner_keeps_to_its_budget),
      cmocka_unit_test(auto_gives_way_to_blocked_when_blas_does_not_fit),
      cmocka_unit_test(refusals_are_clear),
      cmocka_unit_test(every_position_of_a_row_is_checked_by_every_build),
      cmocka_unit_test(every_chunk_of_a_large_input_is_checked),
      cmocka_unit_test(tiny_searches_run_on_one_worker),
      cmocka_unit_test(overflowing_scores_are_refused_or_answered_right),
      cmocka_unit_test(large_but_representable_scores_are_answered),
      cmocka_unit_test(l2_far_from_the_origin_is_answered_right),
      cmocka_unit_test(blas_buffers_are_counted_under_rlimit_as),
      cmocka_unit_test(without_a_gpu_cuda_is_refused_and_auto_runs_on_the_cpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
