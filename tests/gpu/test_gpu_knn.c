/* SPDX-License-Identifier: MIT */
/* The cuda knn backend against the CPU's blocked backend on the knn test matrix: every metric,
 * k of 1 and 5, shapes that do and do not divide the tiles, and a database full of ties (the
 * lowest index must win, as on the CPU). Skips (77) without a GPU. */
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

int main(void) {
  bg_gpu_info_t g;
  if (bg_gpu_query(&g) != 0) {
    printf("skipped: %s\n", g.why);
    return 77;
  }
  printf("GPU: %s, %llu MiB free\n", g.name, (unsigned long long)(g.free_bytes >> 20));
  const struct CMUnitTest tests[] = {cmocka_unit_test(cuda_matches_the_cpu)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
