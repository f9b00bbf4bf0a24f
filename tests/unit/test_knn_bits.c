/* SPDX-License-Identifier: MIT */
/* The exact search gives the same bits however it runs: each build of the blocked kernel
 * (portable, AVX2, AVX-512; BRIGADE_KNN_ISA caps the choice) and the blas backend (OpenBLAS's
 * products, certified), each in its default plan and in its smallest, on random data where float
 * sums do round (unlike test_knn's integers), with planted ties; every metric and dtype. A search
 * split across MPI ranks, or re-planned under another budget or on another machine, must not change
 * its answer in the last bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

typedef struct shape {
  size_t nb, dim, nq, k;
} shape;

typedef struct run {
  const char *isa; /* NULL: the best build this CPU runs */
  const char *backend;
  int least; /* 1: the smallest plan (one-query tiles, the narrowest database tiles) */
} run;

typedef struct data {
  shape s;
  bg_knn_metric_t metric;
  bg_dtype_t dtype;
  void *db, *q;
} data;

/* Uniform values in [-1, 1) with a few exponents mixed in; rows 3 and nb - 1 repeat row 1,
 * so ties cross register blocks and database tiles. */
static void make(data *x, uint64_t seed) {
  size_t e = x->dtype == BG_F64 ? 8 : 4, nd = x->s.nb * x->s.dim, nq = x->s.nq * x->s.dim;
  x->db = malloc(nd * e), x->q = malloc(nq * e);
  for (size_t i = 0; i < nd + nq; i++) {
    double v = (double)(rng(&seed) >> 11) * 0x1p-52 - 1;
    v *= (rng(&seed) & 7) == 0 ? 1024.0 : 1.0;
    void *p = i < nd ? x->db : x->q;
    size_t at = i < nd ? i : i - nd;
    if (x->dtype == BG_F64)
      ((double *)p)[at] = v;
    else
      ((float *)p)[at] = (float)v;
  }
  size_t row = x->s.dim * e;
  if (x->s.nb > 3)
    memcpy((char *)x->db + 3 * row, (char *)x->db + row, row);
  if (x->s.nb > 5)
    memcpy((char *)x->db + (x->s.nb - 1) * row, (char *)x->db + row, row);
}

static void search_plan(bg_pool_t *pool, const data *x, const run *r, int64_t *idx, void *scores,
                        bg_knn_plan_t *plan) {
  if (r->isa)
    setenv("BRIGADE_KNN_ISA", r->isa, 1);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.dtype = x->dtype, d.metric = x->metric, d.db = x->db, d.nb_txt = x->s.nb;
  d.queries = x->q, d.nb_new = x->s.nq, d.dim = x->s.dim, d.k = x->s.k;
  d.backend = r->backend, d.idx = idx, d.scores = scores;
  if (r->least) {
    bg_knn_plan_t p;
    d.mem_budget = 1;
    assert_int_equal(bg_knn_plan(pool, &d, &p), BG_ENOMEM);
    d.mem_budget = p.min_bytes;
  }
  assert_int_equal(bg_knn(pool, &d, plan), 0);
  unsetenv("BRIGADE_KNN_ISA");
}

static void search(bg_pool_t *pool, const data *x, const run *r, int64_t *idx, void *scores) {
  search_plan(pool, x, r, idx, scores, NULL);
}

/* Every run of @runs gives the first run's idx and scores, byte for byte. */
static void same_bits(bg_pool_t *pool, const data *x, const run *runs, size_t nruns) {
  size_t n = x->s.nq * x->s.k, e = x->dtype == BG_F64 ? 8 : 4;
  int64_t *want = malloc(n * 8), *got = malloc(n * 8);
  void *ws = malloc(n * e), *gs = malloc(n * e);
  search(pool, x, &runs[0], want, ws);
  for (size_t r = 1; r < nruns; r++) {
    if (!bg_knn_backend_available(runs[r].backend))
      continue;
    memset(got, 0xAB, n * 8), memset(gs, 0xAB, n * e);
    search(pool, x, &runs[r], got, gs);
    for (size_t i = 0; i < n; i++)
      if (got[i] != want[i] || memcmp((char *)gs + i * e, (char *)ws + i * e, e))
        fail_msg("%s %s nb=%zu dim=%zu k=%zu: %s (isa %s%s) gives rank %zu of query %zu as "
                 "%lld, the first run %lld (or a score differs)",
                 bg_knn_metric_name(x->metric), bg_dtype_name(x->dtype), x->s.nb, x->s.dim, x->s.k,
                 runs[r].backend, runs[r].isa ? runs[r].isa : "best",
                 runs[r].least ? ", smallest plan" : "", i % x->s.k, i / x->s.k, (long long)got[i],
                 (long long)want[i]);
  }
  free(want), free(got), free(ws), free(gs);
}

/* The data is spread around 0, so L2 never runs on centred copies (centre.c), which it does, in
 * plans with room for them, for data far from the origin (one row has no spread at all). */
static const shape shapes[] = {{2, 5, 3, 1},      {37, 1, 29, 10},   {1013, 67, 29, 10},
                               {300, 130, 9, 10}, {5003, 33, 70, 3}, {700, 1000, 40, 5}};

static void each_case(const run *runs, size_t nruns) {
  bg_pool_t *pool = tk_pool("threads", 2);
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
      for (int t = 0; t < BG_DTYPE_COUNT_; t++) {
        data x = {shapes[si], (bg_knn_metric_t)m, (bg_dtype_t)t, NULL, NULL};
        if (x.s.k > x.s.nb)
          x.s.k = x.s.nb;
        make(&x, 0x9e3779b97f4a7c15u + si * 131 + (uint64_t)m * 7 + (uint64_t)t);
        same_bits(pool, &x, runs, nruns);
        free(x.db), free(x.q);
      }
  bg_pool_destroy(pool);
}

/* The portable build is the reference: the AVX2 and AVX-512 builds (where the CPU has them;
 * capped lower otherwise, which then compares a build with itself), every plan, and the blas
 * backend, whose OpenBLAS scores differ in the last bits (by where a pair falls in its tiles)
 * and which is right only through its certificate (cert.c), match it. */
static void every_build_and_plan_gives_the_same_bits(void **state) {
  (void)state;
  static const run runs[] = {
      {"generic", "blocked", 0}, {"generic", "blocked", 1}, {"avx2", "blocked", 0},
      {"avx2", "blocked", 1},    {NULL, "blocked", 0},      {NULL, "blocked", 1},
      {NULL, "blas", 0},         {NULL, "blas", 1},
  };
  each_case(runs, sizeof runs / sizeof runs[0]);
}

/* Rows whose exact scores differ from each other's by a few ulps: 16 copies of 3 q for each
 * query, each with one value moved by an ulp, spread over the database so that they fall in
 * different places of OpenBLAS's tiles. Which copies are the top 4 is decided in the last bits,
 * where OpenBLAS's scores are wrong; the blas backend must still give the blocked kernel's
 * answer, which only the certificate's bound makes it do (a zero bound fails here). */
static void near_ties_are_decided_as_the_blocked_kernel_decides(void **state) {
  (void)state;
  static const run runs[] = {{"generic", "blocked", 0}, {NULL, "blas", 0}, {NULL, "blas", 1}};
  bg_pool_t *pool = tk_pool("threads", 2);
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
    for (int t = 0; t < BG_DTYPE_COUNT_; t++)
      for (size_t dim = 7; dim <= 300; dim = dim * 6 + 1) {
        data x = {{3000, dim, 8, 4}, (bg_knn_metric_t)m, (bg_dtype_t)t, NULL, NULL};
        uint64_t seed = 77 + dim + (uint64_t)m * 5 + (uint64_t)t;
        make(&x, seed);
        for (size_t i = 0; i < x.s.nq; i++)
          for (size_t c = 0; c < 16; c++) {
            size_t row = (i * 16 + c) * 23 + 5, at = rng(&seed) % dim;
            for (size_t u = 0; u < dim; u++) {
              size_t to = row * dim + u, from = i * dim + u;
              if (x.dtype == BG_F64) {
                double v = 3 * ((double *)x.q)[from];
                ((double *)x.db)[to] = u == at ? nextafter(v, (rng(&seed) & 1) ? 1e9 : -1e9) : v;
              } else {
                float v = 3 * ((float *)x.q)[from];
                ((float *)x.db)[to] = u == at ? nextafterf(v, (rng(&seed) & 1) ? 1e9f : -1e9f) : v;
              }
            }
          }
        same_bits(pool, &x, runs, sizeof runs / sizeof runs[0]);
        free(x.db), free(x.q);
      }
  bg_pool_destroy(pool);
}

/* Row 1 copied to every 37th row (across every slice), and query 0 made row 1 itself: for L2
 * and cosine those copies are its best, all tied, and their order is decided by index alone. */
static void plant_copies(data *x) {
  size_t e = x->dtype == BG_F64 ? 8 : 4, row = x->s.dim * e;
  for (size_t r = 38; r < x->s.nb; r += 37)
    memcpy((char *)x->db + r * row, (char *)x->db + row, row);
  memcpy(x->q, (char *)x->db + row, row);
}

/* Few queries split the database across the workers (plan->db_slices), each slice folded into a
 * top-k of its own and the lists merged at the end: the answer must be the one-worker search's
 * (which never splits), bit for bit, ties included, whatever the number of workers, slices
 * shorter than k, the build, or the backend. */
static void splitting_the_database_changes_no_bit(void **state) {
  (void)state;
  static const shape few[] = {{40000, 19, 1, 40},
                              {3000, 67, 5, 7},
                              {4001, 130, 2, 300},
                              {20000, 33, 13, 1},
                              {5000, 8, 40, 10}};
  static const run runs[] = {{"generic", "blocked", 0}, {NULL, "blocked", 0}, {NULL, "blas", 0}};
  static const unsigned workers[] = {2, 3, 5};
  bg_pool_t *one = tk_pool("threads", 1), *many[3];
  for (size_t w = 0; w < 3; w++)
    many[w] = tk_pool("threads", workers[w]);
  unsigned split = 0;
  for (size_t si = 0; si < sizeof few / sizeof few[0]; si++)
    for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
      for (int t = 0; t < BG_DTYPE_COUNT_; t++) {
        data x = {few[si], (bg_knn_metric_t)m, (bg_dtype_t)t, NULL, NULL};
        make(&x, 0x5bd1e995u + si * 17 + (uint64_t)m * 3 + (uint64_t)t);
        plant_copies(&x);
        size_t n = x.s.nq * x.s.k, e = x.dtype == BG_F64 ? 8 : 4;
        int64_t *want = malloc(n * 8), *got = malloc(n * 8);
        void *ws = malloc(n * e), *gs = malloc(n * e);
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
          if (!bg_knn_backend_available(runs[r].backend))
            continue;
          search(one, &x, &runs[r], want, ws);
          for (size_t w = 0; w < 3; w++) {
            bg_knn_plan_t p;
            memset(got, 0xAB, n * 8), memset(gs, 0xAB, n * e);
            search_plan(many[w], &x, &runs[r], got, gs, &p);
            /* Fewer queries than workers always split. */
            if (x.s.nq < workers[w])
              assert_int_equal(p.db_slices, workers[w]);
            split += p.db_slices > 1;
            for (size_t i = 0; i < n; i++)
              if (got[i] != want[i] || memcmp((char *)gs + i * e, (char *)ws + i * e, e))
                fail_msg("%s %s nb=%zu nq=%zu k=%zu, %s (isa %s) on %u workers in %u slices: "
                         "rank %zu of query %zu is %lld, on one worker %lld (or a score differs)",
                         bg_knn_metric_name(x.metric), bg_dtype_name(x.dtype), x.s.nb, x.s.nq,
                         x.s.k, runs[r].backend, runs[r].isa ? runs[r].isa : "best", workers[w],
                         p.db_slices, i % x.s.k, i / x.s.k, (long long)got[i], (long long)want[i]);
          }
        }
        free(want), free(got), free(ws), free(gs), free(x.db), free(x.q);
      }
  assert_true(split >= 60);
  bg_pool_destroy(one);
  for (size_t w = 0; w < 3; w++)
    bg_pool_destroy(many[w]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_build_and_plan_gives_the_same_bits),
      cmocka_unit_test(near_ties_are_decided_as_the_blocked_kernel_decides),
      cmocka_unit_test(splitting_the_database_changes_no_bit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
