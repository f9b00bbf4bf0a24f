/* SPDX-License-Identifier: MIT */
/* precision bf16 (bg_knn_desc_t.precision): idx and scores byte for byte those of the exact
 * search, with the AVX-512 BF16 instructions where the CPU has them and with the portable
 * emulation everywhere (BRIGADE_KNN_ISA=generic): on random data of every metric, dims 1-4096,
 * ties and zero rows; on near-ties planted where the bf16 error is as large as the bound allows
 * (a bound half as large answers them wrongly); at large and small norms; on a database read in
 * pieces; on rows too alike to filter (fallback). Refusals: f64, other backends, an unknown
 * precision; a version-4 caller's plan is not written past `why`. */
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

#define V 0x1p-8 /* bf16's unit roundoff */

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static float uniform(uint64_t *s) {
  return (float)(rng(s) >> 11) * 0x1p-53f;
}

/* n floats uniform in [0, 1), malloc'd. */
static float *uniforms(size_t n, uint64_t *s) {
  float *v = malloc(n * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++)
    v[i] = uniform(s);
  return v;
}

/* Which bf16 builds to try: the best instructions here (AMX's tiles where present), AVX-512
 * BF16's (where present), and the portable emulations of both layouts (AMX's pads each row to
 * whole tiles and reads whole blocks of rows past the database's end). */
static const char *const isas[] = {NULL, "avx512", "generic", "generic-amx"};
#define NISAS (sizeof isas / sizeof *isas)

static void set_isa(const char *isa) {
  if (isa)
    setenv("BRIGADE_KNN_ISA", isa, 1);
  else
    unsetenv("BRIGADE_KNN_ISA");
}

typedef struct search {
  const float *db, *q;
  size_t nb, nq, dim, k;
  bg_knn_metric_t metric;
} search;

/* Runs @s exactly (blocked, the instructions' build) and in bf16 with each build; fails on any
 * difference. Returns the bf16 plan of the last build that ran bf16 (precision "bf16"), and how
 * many builds did. */
static int same_answers(bg_pool_t *pool, const search *s, const char *what, bg_knn_plan_t *last) {
  size_t n = s->nq * s->k;
  int64_t *want = malloc(n * 8), *got = malloc(n * 8);
  float *ws = malloc(n * 4), *gs = malloc(n * 4);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.metric = s->metric, d.db = s->db, d.nb_txt = s->nb, d.queries = s->q, d.nb_new = s->nq;
  d.dim = s->dim, d.k = s->k, d.backend = "blocked", d.idx = want, d.scores = ws;
  set_isa(NULL);
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  int ran = 0;
  for (size_t i = 0; i < NISAS; i++) {
    set_isa(isas[i]);
    bg_knn_plan_t p = {0};
    d.precision = BG_KNN_BF16, d.idx = got, d.scores = gs;
    memset(got, 0xff, n * 8);
    int rc = bg_knn(pool, &d, &p);
    if (rc != 0)
      fail_msg("%s: bf16 (%s build): %s", what, isas[i] ? isas[i] : "native", bg_strerror(rc));
    for (size_t j = 0; j < n; j++)
      if (want[j] != got[j] || memcmp(ws + j, gs + j, 4))
        fail_msg("%s %s dim %zu k %zu (%s build, %s): query %zu rank %zu: exact %lld %.9g, bf16 "
                 "%lld %.9g",
                 what, bg_knn_metric_name(s->metric), s->dim, s->k, isas[i] ? isas[i] : "native",
                 p.precision, j / s->k, j % s->k, (long long)want[j], (double)ws[j],
                 (long long)got[j], (double)gs[j]);
    if (!strcmp(p.precision, "bf16")) {
      assert_true(p.rescored <= p.pairs);
      assert_true(p.pairs + p.fallback_pairs == (uint64_t)s->nb * s->nq);
      *last = p;
      ran++;
    }
  }
  set_isa(NULL);
  free(want), free(got), free(ws), free(gs);
  return ran;
}

/* Random data of three kinds (values in [0, 1), in [-1, 1], small integers: ties everywhere),
 * with duplicated rows and a zero row; 70 queries, so blocks of 32 and a partial one. */
static void bf16_answers_equal_exact_ones(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  static const size_t dims[] = {1, 2, 3, 7, 16, 33, 100, 257, 1000, 4096};
  uint64_t seed = 42;
  int ran = 0;
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
    size_t dim = dims[di], nb = dim >= 1000 ? 300 : 611, nq = 70;
    float *db = malloc(nb * dim * 4), *q = malloc(nq * dim * 4);
    for (int kind = 0; kind < 3; kind++) {
      for (size_t i = 0; i < nb * dim; i++)
        db[i] = kind == 0   ? uniform(&seed)
                : kind == 1 ? 2 * uniform(&seed) - 1
                            : (float)((int)(rng(&seed) % 7) - 3);
      for (size_t i = 0; i < nq * dim; i++)
        q[i] = kind == 0 ? uniform(&seed) : 2 * uniform(&seed) - 1;
      memcpy(db + 5 * dim, db + 2 * dim, dim * 4); /* a duplicate: ties to the lowest index */
      memcpy(db + (nb - 1) * dim, db + 2 * dim, dim * 4);
      memset(db + 7 * dim, 0, dim * 4); /* a zero row: cosine 0 */
      for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
        for (size_t ki = 0; ki < 3; ki++) {
          static const size_t ks[] = {1, 7, 50};
          search s = {db, q, nb, nq, dim, ks[ki], (bg_knn_metric_t)m};
          bg_knn_plan_t p = {0};
          ran += same_answers(pool, &s,
                              kind == 0   ? "[0,1)"
                              : kind == 1 ? "[-1,1]"
                                          : "integers",
                              &p);
        }
    }
    free(db), free(q);
  }
  /* The portable build always runs bf16: the filter was exercised whatever the CPU. */
  assert_true(ran >= 2 * 3 * 3 * 3 * 10); /* the two emulations run everywhere */
  bg_pool_destroy(pool);
}

/* The filter filters: on ordinary data few pairs are scored twice (an infinite bound would
 * score every pair twice, a useless one most). */
static void few_pairs_are_rescored_on_ordinary_data(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  size_t nb = 4000, dim = 256, nq = 64;
  uint64_t seed = 7;
  float *db = uniforms(nb * dim, &seed), *q = uniforms(nq * dim, &seed);
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
    search s = {db, q, nb, nq, dim, 10, (bg_knn_metric_t)m};
    bg_knn_plan_t p = {0};
    assert_true(same_answers(pool, &s, "ordinary", &p) >= 1);
    if (p.rescored * 20 > p.pairs || p.fallback_pairs * 4 > (uint64_t)nb * nq)
      fail_msg("%s: %llu of %llu pairs re-scored, %llu in fp32 alone", bg_knn_metric_name(s.metric),
               (unsigned long long)p.rescored, (unsigned long long)p.pairs,
               (unsigned long long)p.fallback_pairs);
  }
  free(db), free(q);
  bg_pool_destroy(pool);
}

/* Near-ties at the bound's edge. q and the row x (index X_ROW) have values 1 + 0.999 v, which
 * bf16 rounds down to 1, so x's bf16 key falls short of its fp32 key by nearly the whole bound;
 * a row y (index Y_ROW, in an earlier register block) has an fp32 key between x's bf16 key plus
 * half that shortfall and x's fp32 key. The exact answer is x; a bound at half its size skips x
 * and answers y. The other rows point away (negative values: they also keep L2 from centring the
 * database). Values are scaled by powers of two (2^-40, 1, 2^40), which round the same. */
#define Y_ROW 97
#define X_ROW 161

static void plant(bg_knn_metric_t m, size_t dim, float scale, float *db, size_t nb, float *q) {
  const float hi = (float)(1 + 0.999 * V);
  for (size_t j = 0; j < nb; j++)
    for (size_t t = 0; t < dim; t++)
      db[j * dim + t] = -(float)(j % 3 + 1);
  float *x = db + X_ROW * dim, *yr = db + Y_ROW * dim;
  for (size_t t = 0; t < dim; t++) {
    int pert = m != BG_KNN_COSINE || t % 2 == 0 || dim == 1;
    q[t] = pert ? hi : 1.0f;
    x[t] = q[t];
  }
  double y = 0;
  switch (m) {
  case BG_KNN_IP: /* q.y = q.x - 0.1 v |q|^2 or so: y = 1 + 0.9 v, rounded to 1 */
    for (size_t t = 0; t < dim; t++)
      yr[t] = (float)(1 + 0.9 * V);
    break;
  case BG_KNN_L2: /* |q - y|^2 = v |q|^2: y = q - sqrt(v) */
    for (size_t t = 0; t < dim; t++)
      yr[t] = q[t] - (float)sqrt(V);
    break;
  default: { /* cosine: y tilted away from q until q.y / |y| = k~(x) + 0.85 (k32(x) - k~(x)) */
    double qq = 0, qx = 0;
    for (size_t t = 0; t < dim; t++)
      qq += (double)q[t] * q[t];
    double kx = sqrt(qq), kbf = (double)dim / kx, target = kbf + 0.85 * (kx - kbf), lo = 0,
           up = 0.5;
    for (int it = 0; it < 200; it++) {
      y = (lo + up) / 2, qx = 0;
      double yy = 0;
      for (size_t t = 0; t < dim; t++) {
        double yt = t % 2 ? 1 + y : 1;
        qx += q[t] * yt, yy += yt * yt;
      }
      if (qx / sqrt(yy) > target)
        lo = y;
      else
        up = y;
    }
    for (size_t t = 0; t < dim; t++)
      yr[t] = t % 2 ? (float)(1 + y) : 1.0f;
  }
  }
  for (size_t i = 0; i < nb * dim; i++)
    db[i] *= scale;
  if (m == BG_KNN_L2)
    for (size_t t = 0; t < dim; t++)
      q[t] *= scale;
}

static void near_ties_planted_at_the_bound_are_answered_exactly(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  static const size_t dims[] = {1, 2, 3, 5, 64, 999, 1000, 4096};
  static const float scales[] = {0x1p-40f, 1.0f, 0x1p40f};
  size_t nb = 200;
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
    for (size_t si = 0; si < 3; si++)
      for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
        size_t dim = dims[di];
        if (m == BG_KNN_COSINE && dim < 4)
          continue; /* a tilt needs both halves */
        float *db = malloc(nb * dim * 4), *q = malloc(dim * 4);
        plant((bg_knn_metric_t)m, dim, scales[si], db, nb, q);
        search s = {db, q, nb, 1, dim, 1, (bg_knn_metric_t)m};
        bg_knn_plan_t p = {0};
        char what[64];
        snprintf(what, sizeof what, "planted (scale %g)", (double)scales[si]);
        same_answers(pool, &s, what, &p);
        /* The planting is meaningful only if the exact answer is x, and the search's tiles
         * leave y and x in different register blocks. */
        int64_t idx;
        bg_knn_desc_t d;
        bg_knn_desc_init(&d);
        d.metric = (bg_knn_metric_t)m, d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = 1;
        d.dim = dim, d.k = 1, d.idx = &idx, d.backend = "blocked";
        assert_int_equal(bg_knn(pool, &d, NULL), 0);
        if (idx != X_ROW)
          fail_msg("%s dim %zu scale %g: the exact answer is %lld, not the planted row %d",
                   bg_knn_metric_name(d.metric), dim, (double)scales[si], (long long)idx, X_ROW);
        free(db), free(q);
      }
  bg_pool_destroy(pool);
}

/* Rows that differ below bf16's resolution: nearly every pair is within the bound, so query
 * blocks fall back to fp32 (ip, cosine; L2 searches such rows centred, where they differ
 * plainly), and the answers are still exact. */
static void rows_too_alike_fall_back_to_fp32(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  size_t nb = 3000, dim = 64, nq = 40;
  float *db = malloc(nb * dim * 4), *q = malloc(nq * dim * 4);
  uint64_t seed = 3;
  for (size_t j = 0; j < nb; j++)
    for (size_t t = 0; t < dim; t++)
      db[j * dim + t] = 1.0f + (float)(rng(&seed) % 64) * 0x1p-20f;
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = uniform(&seed);
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
    search s = {db, q, nb, nq, dim, 3, (bg_knn_metric_t)m};
    bg_knn_plan_t p = {0};
    assert_true(same_answers(pool, &s, "alike", &p) >= 1);
    if (m != BG_KNN_L2 && p.fallback_pairs == 0)
      fail_msg("%s: no fallback with %llu of %llu pairs re-scored", bg_knn_metric_name(s.metric),
               (unsigned long long)p.rescored, (unsigned long long)p.pairs);
  }
  free(db), free(q);
  bg_pool_destroy(pool);
}

typedef struct reader {
  const float *db;
  size_t dim;
} reader;

static int read_rows(void *ctx, size_t row0, size_t rows, void *dst) {
  const reader *r = ctx;
  memcpy(dst, r->db + row0 * r->dim, rows * r->dim * 4);
  return 0;
}

/* A database read in pieces: each piece's bounds are its own, the answers still exact. */
static void streamed_bf16_equals_exact(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  size_t nb = 5000, dim = 40, nq = 50, k = 4, n = nq * k;
  float *db = malloc(nb * dim * 4), *q = malloc(nq * dim * 4);
  uint64_t seed = 11;
  for (size_t i = 0; i < nb * dim; i++)
    db[i] = 2 * uniform(&seed) - 1;
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = 2 * uniform(&seed) - 1;
  int64_t want[200], got[200];
  float ws[200], gs[200];
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.metric = (bg_knn_metric_t)m, d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = nq;
    d.dim = dim, d.k = k, d.idx = want, d.scores = ws, d.backend = "blocked";
    assert_int_equal(bg_knn(pool, &d, NULL), 0);
    reader r = {db, dim};
    d.db = NULL, d.db_read = read_rows, d.db_ctx = &r, d.mem_budget = 256 << 10;
    d.precision = BG_KNN_BF16, d.idx = got, d.scores = gs;
    for (size_t i = 2; i < NISAS; i++) {
      setenv("BRIGADE_KNN_ISA", isas[i], 1);
      bg_knn_plan_t p = {0};
      memset(got, 0xff, sizeof got);
      assert_int_equal(bg_knn(pool, &d, &p), 0);
      unsetenv("BRIGADE_KNN_ISA");
      assert_string_equal(p.precision, "bf16");
      assert_memory_equal(want, got, n * 8);
      assert_memory_equal(ws, gs, n * 4);
    }
  }
  free(db), free(q);
  bg_pool_destroy(pool);
}

/* bg_knn_cpu_kernel names what runs, under each cap, and NULL for what cannot. */
static void cpu_kernel_names(void **state) {
  (void)state;
  setenv("BRIGADE_KNN_ISA", "generic", 1);
  assert_string_equal(bg_knn_cpu_kernel(BG_KNN_EXACT), "portable");
  assert_string_equal(bg_knn_cpu_kernel(BG_KNN_BF16), "portable emulation");
  setenv("BRIGADE_KNN_ISA", "generic-amx", 1);
  assert_string_equal(bg_knn_cpu_kernel(BG_KNN_BF16), "portable emulation of AMX");
  setenv("BRIGADE_KNN_ISA", "avx2", 1);
  const char *e = bg_knn_cpu_kernel(BG_KNN_EXACT);
  assert_true(!strcmp(e, "AVX2") || !strcmp(e, "portable"));
  assert_null(bg_knn_cpu_kernel(BG_KNN_BF16)); /* bf16 needs AVX-512 BF16 */
  setenv("BRIGADE_KNN_ISA", "avx512", 1);
  const char *b = bg_knn_cpu_kernel(BG_KNN_BF16);
  assert_true(!b || !strcmp(b, "AVX-512 BF16"));
  unsetenv("BRIGADE_KNN_ISA");
  b = bg_knn_cpu_kernel(BG_KNN_BF16);
  assert_true(!b || !strcmp(b, "AVX-512 BF16") || !strcmp(b, "AMX"));
  assert_true(!b || !strcmp(bg_knn_cpu_kernel(BG_KNN_EXACT), "AVX-512"));
  assert_null(bg_knn_cpu_kernel(BG_KNN_PRECISION_COUNT_));
}

/* A bf16 search that runs exact says why in plan.why (an exact one says nothing); one whose bf16
 * buffers pass the budget where the exact search's fit runs exact, with the exact answer. */
static void running_exact_says_why(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  size_t nb = 20000, dim = 64, nq = 300, k = 10;
  uint64_t seed = 5;
  float *db = uniforms(nb * dim, &seed), *q = uniforms(nq * dim, &seed);
  int64_t *want = malloc(nq * k * 8), *got = malloc(nq * k * 8);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = nb, d.queries = q, d.nb_new = nq, d.dim = dim, d.k = k, d.idx = want;
  bg_knn_plan_t p;
  assert_int_equal(bg_knn(pool, &d, &p), 0);
  assert_string_equal(p.precision, "exact");
  assert_null(p.why);
  /* A cap below AVX-512: exact, and why names the CPU or the cap. */
  setenv("BRIGADE_KNN_ISA", "avx2", 1);
  d.precision = BG_KNN_BF16;
  assert_int_equal(bg_knn_plan(pool, &d, &p), 0);
  assert_string_equal(p.precision, "exact");
  assert_non_null(p.why);
  assert_true(strstr(p.why, "no AVX-512 BF16") || strstr(p.why, "BRIGADE_KNN_ISA"));
  /* The emulation needs more than the exact search: a budget between the two. */
  setenv("BRIGADE_KNN_ISA", "generic", 1);
  bg_knn_desc_t e = d;
  e.precision = BG_KNN_EXACT, e.mem_budget = 1;
  d.mem_budget = 1;
  assert_int_equal(bg_knn_plan(pool, &e, &p), BG_ENOMEM);
  uint64_t exact_least = p.min_bytes;
  assert_int_equal(bg_knn_plan(pool, &d, &p), BG_ENOMEM);
  uint64_t bf16_least = p.min_bytes;
  assert_true(bf16_least > exact_least);
  d.mem_budget = (exact_least + bf16_least) / 2;
  d.idx = got;
  assert_int_equal(bg_knn(pool, &d, &p), 0);
  assert_string_equal(p.precision, "exact");
  assert_non_null(strstr(p.why, "do not fit the memory budget"));
  assert_true(p.bytes <= d.mem_budget);
  assert_memory_equal(want, got, nq * k * 8);
  d.mem_budget = bf16_least * 4;
  assert_int_equal(bg_knn(pool, &d, &p), 0);
  assert_string_equal(p.precision, "bf16");
  assert_null(p.why);
  assert_memory_equal(want, got, nq * k * 8);
  unsetenv("BRIGADE_KNN_ISA");
  free(db), free(q), free(want), free(got);
  bg_pool_destroy(pool);
}

static void refusals_and_old_callers(void **state) {
  (void)state;
  bg_pool_t *pool = tk_pool("threads", 2);
  float db[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  double db64[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int64_t idx[2];
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 4, d.queries = db, d.nb_new = 2, d.dim = 2, d.k = 1, d.idx = idx;
  d.precision = BG_KNN_BF16;
  bg_knn_plan_t p;
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  assert_int_equal(bg_knn_plan(pool, &d, &p), 0);
  assert_int_equal(p.pairs, 0);
  d.backend = "naive";
  assert_int_equal(bg_knn(pool, &d, NULL), BG_ENOTSUP);
  assert_int_equal(bg_knn_plan(pool, &d, &p), BG_ENOTSUP);
  d.backend = "cuda";
  assert_int_equal(bg_knn_plan(pool, &d, &p), BG_ENOTSUP);
  d.backend = "auto", d.dtype = BG_F64, d.db = db64, d.queries = db64;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_ENOTSUP);
  d.dtype = BG_F32, d.db = db, d.queries = db;
  d.precision = (bg_knn_precision_t)7;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL);
  /* Version 4: precision is not read, and the plan ends at why. */
  d.version = 4;
  unsigned char raw[sizeof(bg_knn_plan_t)];
  memset(raw, 0xab, sizeof raw);
  assert_int_equal(bg_knn(pool, &d, (bg_knn_plan_t *)(void *)raw), 0);
  size_t end = offsetof(bg_knn_plan_t, why) + sizeof(const char *);
  for (size_t i = end; i < sizeof raw; i++)
    assert_int_equal(raw[i], 0xab);
  memset(raw, 0xab, sizeof raw);
  assert_int_equal(bg_knn_plan(pool, &d, (bg_knn_plan_t *)(void *)raw), 0);
  for (size_t i = end; i < sizeof raw; i++)
    assert_int_equal(raw[i], 0xab);
  bg_pool_destroy(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bf16_answers_equal_exact_ones),
      cmocka_unit_test(few_pairs_are_rescored_on_ordinary_data),
      cmocka_unit_test(near_ties_planted_at_the_bound_are_answered_exactly),
      cmocka_unit_test(rows_too_alike_fall_back_to_fp32),
      cmocka_unit_test(streamed_bf16_equals_exact),
      cmocka_unit_test(cpu_kernel_names),
      cmocka_unit_test(running_exact_says_why),
      cmocka_unit_test(refusals_and_old_callers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
