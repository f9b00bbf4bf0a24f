/* SPDX-License-Identifier: MIT */
/* bg_knn against a float64 brute-force reference: every backend, metric and dtype, k = 1 and
 * 10, sizes that are no multiple of any tile, dim = 1, nb_txt = 1, planted ties; the planner's
 * budget checked against what is really allocated; every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

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

/* Counts bytes in use through the pool's allocator. */
typedef struct counting {
  size_t live, peak;
} counting;

static void *c_alloc(size_t n, void *ud) {
  counting *c = ud;
  size_t *p = malloc(n + 16);
  if (!p)
    return NULL;
  p[0] = n;
  c->live += n;
  c->peak = c->live > c->peak ? c->live : c->peak;
  return p + 2;
}

static void c_free(void *p, void *ud) {
  counting *c = ud;
  if (!p)
    return;
  size_t *h = (size_t *)p - 2;
  c->live -= h[0];
  free(h);
}

static void the_planner_keeps_to_its_budget(void **state) {
  (void)state;
  counting cnt = {0};
  bg_allocator_t a = {c_alloc, c_free, &cnt};
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
  static const uint64_t budgets[] = {128 << 10, 512 << 10, 4 << 20};
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
  assert_int_equal(idx[0], -5); /* nothing written */
  assert_false(bg_knn_backend_available("cuda"));
  d.backend = "auto";
  assert_int_equal(bg_knn(pool, &d, &plan), 0);
  assert_string_not_equal(plan.backend, "cuda");
  assert_int_equal(idx[0], 3);
  assert_int_equal(idx[1], 3);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_backend_matches_the_reference),
      cmocka_unit_test(the_portable_kernel_matches_too),
      cmocka_unit_test(the_planner_keeps_to_its_budget),
      cmocka_unit_test(refusals_are_clear),
      cmocka_unit_test(without_a_gpu_cuda_is_refused_and_auto_runs_on_the_cpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
