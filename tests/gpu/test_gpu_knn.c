/* SPDX-License-Identifier: MIT */
/* The cuda knn backend against the CPU's blocked backend on the knn test matrix: every metric,
 * k of 1 and 5, shapes that do and do not divide the tiles, and a database full of ties (the
 * lowest index must win, as on the CPU); then f64, k as large as the database, budgets that
 * force tiny tiles and a streamed database, float data, the times, and the refusals. Skips (77)
 * without a GPU. */
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

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Small integers: every product and sum is exact in float32, so both sides must agree on the
 * order exactly, ties included. */
static void fill(float *v, size_t n, uint64_t seed, int range) {
  uint64_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++)
    v[i] = (float)((int)(rng(&s) % (uint64_t)(2 * range + 1)) - range);
}

static double cosine(const float *q, const float *x, size_t dim) {
  double qx = 0, xx = 0;
  for (size_t t = 0; t < dim; t++) {
    qx += (double)q[t] * x[t];
    xx += (double)x[t] * x[t];
  }
  return xx > 0 ? qx / sqrt(xx) : 0;
}

typedef struct shape {
  size_t nb_txt, dim, nb_new, k;
  int range; /* 1: many ties */
} shape;

static const shape shapes[] = {
    {1000, 100, 100, 1, 8}, {1000, 64, 37, 5, 8},    {4099, 33, 257, 5, 8},
    {5000, 128, 64, 1, 1},  {20000, 256, 300, 5, 3},
};

static void cuda_matches_the_cpu(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const shape *c = &shapes[s];
    float *db = malloc(c->nb_txt * c->dim * sizeof *db);
    float *q = malloc(c->nb_new * c->dim * sizeof *q);
    int64_t *want = malloc(c->nb_new * c->k * sizeof *want);
    int64_t *got = malloc(c->nb_new * c->k * sizeof *got);
    assert_true(db && q && want && got);
    fill(db, c->nb_txt * c->dim, 2 * s + 1, c->range);
    fill(q, c->nb_new * c->dim, 2 * s + 2, c->range);
    for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
      bg_knn_desc_t d;
      bg_knn_desc_init(&d);
      d.db = db, d.nb_txt = c->nb_txt, d.queries = q, d.nb_new = c->nb_new, d.dim = c->dim;
      d.k = c->k, d.metric = (bg_knn_metric_t)m;
      d.backend = "blocked", d.idx = want;
      assert_int_equal(bg_knn(pool, &d, NULL), 0);
      d.backend = "cuda", d.idx = got;
      int rc = bg_knn(pool, &d, NULL);
      if (rc != 0)
        fail_msg("cuda on (%zu, %zu, %zu) k=%zu %s: %s", c->nb_txt, c->dim, c->nb_new, c->k,
                 bg_knn_metric_name(d.metric), bg_strerror(rc));
      /* ip and L2 keys are exact in float32 on these integers: the same indices. Cosine
       * divides by a square root, rounded differently on the device: the same scores. */
      for (size_t i = 0; i < c->nb_new * c->k; i++) {
        if (m != BG_KNN_COSINE) {
          assert_int_equal(got[i], want[i]);
          continue;
        }
        const float *qi = q + (i / c->k) * c->dim;
        double a = cosine(qi, db + got[i] * c->dim, c->dim);
        double b = cosine(qi, db + want[i] * c->dim, c->dim);
        assert_true(fabs(a - b) <= 1e-6 * (fabs(b) + 1));
      }
    }
    free(db), free(q), free(want), free(got);
  }
  bg_pool_destroy(pool);
}

/* One search both ways; cuda's indices must equal blocked's (exact integer data) or, for float
 * data (@tol > 0), name vectors whose scores agree within @tol. */
static void both_ways(bg_pool_t *pool, bg_knn_desc_t *d, double tol) {
  size_t n = d->nb_new * d->k, e = d->dtype == BG_F64 ? 8 : 4;
  int64_t *want = malloc(n * 8), *got = malloc(n * 8);
  char *ws = malloc(n * e), *gs = malloc(n * e);
  assert_true(want && got && ws && gs);
  d->backend = "blocked", d->idx = want, d->scores = ws;
  assert_int_equal(bg_knn(pool, d, NULL), 0);
  d->backend = "cuda", d->idx = got, d->scores = gs;
  bg_knn_plan_t plan;
  int rc = bg_knn(pool, d, &plan);
  if (rc != 0)
    fail_msg("cuda (%zu, %zu, %zu) k=%zu %s %s: %s (%s)", d->nb_txt, d->dim, d->nb_new, d->k,
             bg_knn_metric_name(d->metric), bg_dtype_name(d->dtype), bg_strerror(rc),
             plan.why ? plan.why : "");
  for (size_t i = 0; i < n; i++) {
    double a = e == 8 ? ((double *)ws)[i] : ((float *)ws)[i];
    double b = e == 8 ? ((double *)gs)[i] : ((float *)gs)[i];
    if (tol == 0 && got[i] != want[i])
      fail_msg("row %zu rank %zu: cuda %lld, blocked %lld", i / d->k, i % d->k, (long long)got[i],
               (long long)want[i]);
    if (fabs(a - b) > tol * (fabs(a) + 1))
      fail_msg("row %zu rank %zu: cuda score %.9g, blocked %.9g", i / d->k, i % d->k, b, a);
  }
  free(want), free(got), free(ws), free(gs);
}

static void f64_large_k_small_tiles_and_float_data(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  size_t nb = 3001, dim = 47, nq = 211;
  float *db = malloc(nb * dim * 4), *q = malloc(nq * dim * 4);
  double *db8 = malloc(nb * dim * 8), *q8 = malloc(nq * dim * 8);
  assert_true(db && q && db8 && q8);
  fill(db, nb * dim, 11, 2), fill(q, nq * dim, 12, 2);
  for (size_t i = 0; i < nb * dim; i++)
    db8[i] = db[i];
  for (size_t i = 0; i < nq * dim; i++)
    q8[i] = q[i];
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.nb_txt = nb, d.dim = dim, d.nb_new = nq, d.metric = (bg_knn_metric_t)m;
    size_t ks[] = {1, 7, 300, nb};
    for (size_t ki = 0; ki < 4; ki++) {
      d.k = ks[ki];
      d.dtype = BG_F32, d.db = db, d.queries = q, d.mem_budget = 0;
      both_ways(pool, &d, m == BG_KNN_COSINE ? 1e-6 : 0);
      d.dtype = BG_F64, d.db = db8, d.queries = q8;
      both_ways(pool, &d, m == BG_KNN_COSINE ? 1e-12 : 0);
      /* A budget a little above the least plan: tiles of a few rows, database streamed. */
      d.dtype = BG_F32, d.db = db, d.queries = q;
      d.mem_budget = (96u << 20) + 64 * (dim + 2 * d.k * 12 + 64) * 4;
      both_ways(pool, &d, m == BG_KNN_COSINE ? 1e-6 : 0);
    }
  }
  /* Float data: the products' summation orders differ, so scores agree to rounding. */
  uint64_t s = 99;
  for (size_t i = 0; i < nb * dim; i++)
    db[i] = (float)((double)(rng(&s) % 2000001) / 1e6 - 1.0);
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = (float)((double)(rng(&s) % 2000001) / 1e6 - 1.0);
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = nq, d.dim = dim, d.k = 10;
    d.metric = (bg_knn_metric_t)m;
    both_ways(pool, &d, 1e-5);
  }
  free(db), free(q), free(db8), free(q8);
  bg_pool_destroy(pool);
}

/* Times are filled; a budget below the least plan is BG_ENOMEM with the numbers; the memory
 * wall plans within 4 GiB of device memory. */
static void times_refusals_and_the_memory_wall_plan(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  size_t nb = 50000, dim = 128, nq = 2000;
  float *db = malloc(nb * dim * 4), *q = malloc(nq * dim * 4);
  int64_t *idx = malloc(nq * 8);
  assert_true(db && q && idx);
  fill(db, nb * dim, 21, 8), fill(q, nq * dim, 22, 8);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = nq, d.dim = dim, d.k = 1, d.idx = idx;
  d.backend = "cuda";
  bg_knn_times_t t;
  d.times = &t;
  bg_knn_plan_t plan;
  assert_int_equal(bg_knn(pool, &d, &plan), 0);
  assert_string_equal(plan.backend, "cuda");
  printf("times: h2d %.4f s, gemm %.4f s, select %.4f s, d2h %.4f s, wall %.4f s\n", t.h2d_s,
         t.gemm_s, t.select_s, t.d2h_s, t.wall_s);
  assert_true(t.h2d_s > 0 && t.gemm_s > 0 && t.select_s > 0 && t.d2h_s > 0);
  assert_true(t.wall_s >= t.gemm_s);
  d.mem_budget = 1 << 20;
  idx[0] = -3;
  assert_int_equal(bg_knn(pool, &d, &plan), BG_ENOMEM);
  assert_non_null(plan.why);
  assert_true(plan.min_bytes > plan.budget);
  assert_int_equal(idx[0], -3);
  d.nb_txt = 100000, d.nb_new = 100000, d.dim = 1000, d.mem_budget = (uint64_t)4 << 30;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  assert_true(plan.bytes <= plan.budget);
  printf("memory wall: tiles %zu x %zu, %.2f GiB of device memory\n", plan.tile_q, plan.tile_db,
         (double)plan.bytes / (1 << 30));
  free(db), free(q), free(idx);
  bg_pool_destroy(pool);
}

int main(void) {
  bg_gpu_info_t g;
  if (bg_gpu_query(&g) != 0) {
    printf("skipped: %s\n", g.why);
    return 77;
  }
  printf("GPU: %s, %llu MiB free\n", g.name, (unsigned long long)(g.free_bytes >> 20));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cuda_matches_the_cpu),
      cmocka_unit_test(f64_large_k_small_tiles_and_float_data),
      cmocka_unit_test(times_refusals_and_the_memory_wall_plan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
