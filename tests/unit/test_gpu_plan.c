/* SPDX-License-Identifier: MIT */
/* The cuda backend's host side, tested without a GPU: the planner (tiles within the device
 * budget, the memory-wall case in a few GiB, refusals), the two-stream schedule (every tile pair
 * once, no upload into a buffer the running step reads, every step reading the tile it expects),
 * the selection of select.h run on the CPU over the planner's tiles and checked against bg_knn's
 * CPU answers (ties, k up to the whole database, both dtypes, every metric), the predictor auto
 * uses, and the cuda backend's refusals on a machine without a GPU. */
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
#include "gpu/select.h"
#include "internal/gpu_plan.h"
#include "internal/knn.h"

#define GIB ((uint64_t)1 << 30)

static bg__gpu_shape shape(size_t nb_txt, size_t dim, size_t nb_new, size_t k, size_t elem,
                           int norms) {
  return (bg__gpu_shape){nb_txt, nb_new, dim, k, elem, norms};
}

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* ---- planner ------------------------------------------------------------------------------ */

static void check_plan(const bg__gpu_shape *s, const bg__gpu_plan *p, uint64_t budget) {
  assert_true(p->bytes <= budget);
  assert_true(p->tq >= 1 && p->tq <= s->nb_new && p->tq <= BG__GPU_TQ_MAX);
  assert_true(p->tdb >= 1 && p->tdb <= s->nb_txt && p->tdb <= BG__GPU_TDB_MAX);
  assert_int_equal(p->nq_tiles, (s->nb_new + p->tq - 1) / p->tq);
  assert_int_equal(p->ndb_tiles, (s->nb_txt + p->tdb - 1) / p->tdb);
  assert_true(p->min_bytes <= p->bytes);
  assert_null(p->why);
}

static void the_memory_wall_fits_in_a_few_gib(void **state) {
  (void)state;
  bg__gpu_shape s = shape(100000, 1000, 100000, 1, 4, 0);
  bg__gpu_plan p;
  /* Its scores alone would be 37 GiB. */
  assert_int_equal(bg__gpu_plan_make(&s, 4 * GIB, &p), 0);
  check_plan(&s, &p, 4 * GIB);
  assert_true(p.db_resident);
  assert_true(p.bytes < 2 * GIB);
  /* Balanced tiles: 100000 rows in 13 query tiles and 4 database tiles of equal size. */
  assert_int_equal(p.nq_tiles, 13);
  assert_int_equal(p.ndb_tiles, 4);
  assert_int_equal(p.tdb, 25000);
  assert_int_equal(p.q_bufs, 2);
  /* In 512 MiB the database (381 MiB) no longer fits beside the tiles at half the budget: it
   * streams through two buffers, and the plan still fits. */
  assert_int_equal(bg__gpu_plan_make(&s, GIB / 2, &p), 0);
  check_plan(&s, &p, GIB / 2);
  assert_false(p.db_resident);
  assert_int_equal(p.db_bufs, 2);
  /* The lecture's big case on an 80 GiB device: one pass over a resident database. */
  s = shape(100000, 1000, 10000, 1, 4, 0);
  assert_int_equal(bg__gpu_plan_make(&s, 80 * GIB, &p), 0);
  check_plan(&s, &p, 80 * GIB);
  assert_true(p.db_resident);
  assert_int_equal(p.tq, 5000);
}

static void refusals(void **state) {
  (void)state;
  bg__gpu_shape s = shape(1000, 100, 100, 5, 4, 1);
  bg__gpu_plan p;
  assert_int_equal(bg__gpu_plan_make(&s, BG__GPU_RESERVE, &p), BG_ENOMEM);
  assert_non_null(p.why);
  assert_true(p.min_bytes > p.budget);
  /* At exactly the least a plan needs, 1 x 1 tiles. */
  uint64_t least = bg__gpu_plan_bytes(&s, 1, 1, 0);
  assert_int_equal(bg__gpu_plan_make(&s, least, &p), 0);
  assert_int_equal(p.tq, 1);
  assert_int_equal(p.tdb, 1);
  assert_int_equal(bg__gpu_plan_make(&s, least - 1, &p), BG_ENOMEM);
  /* No queries: a plan with no steps, not a division by zero. */
  bg__gpu_shape none = shape(1000, 100, 0, 5, 4, 1);
  assert_int_equal(bg__gpu_plan_make(&none, GIB, &p), 0);
  assert_int_equal(bg__gpu_steps(&p), 0);
  s.k = (size_t)1 << 31;
  s.nb_txt = s.k;
  assert_int_equal(bg__gpu_plan_make(&s, 1000 * GIB, &p), BG_ERANGE);
  assert_non_null(p.why);
}

/* Random shapes and budgets: a plan fits its budget, or the budget is below the least plan. */
static void random_plans_fit(void **state) {
  (void)state;
  uint64_t seed = 42;
  for (int t = 0; t < 20000; t++) {
    bg__gpu_shape s =
        shape(1 + rng(&seed) % 3000000, 1 + rng(&seed) % 4096, 1 + rng(&seed) % 300000, 1,
              rng(&seed) % 2 ? 8 : 4, (int)(rng(&seed) % 2));
    s.k = 1 + rng(&seed) % (s.nb_txt < 2000 ? s.nb_txt : 2000);
    uint64_t budget = BG__GPU_RESERVE + rng(&seed) % (64 * GIB);
    bg__gpu_plan p;
    int rc = bg__gpu_plan_make(&s, budget, &p);
    if (rc == BG_ENOMEM) {
      assert_true(p.min_bytes > budget);
      continue;
    }
    assert_int_equal(rc, 0);
    check_plan(&s, &p, budget);
  }
}

/* ---- schedule ----------------------------------------------------------------------------- */

/* Replays the device code's order (uploads of step s + 1 issued before the product of step s)
 * on a model of the buffers' contents. */
static void check_schedule(const bg__gpu_plan *p) {
  size_t n = bg__gpu_steps(p), nq = p->nq_tiles, ndb = p->ndb_tiles;
  assert_int_equal(n, nq * ndb);
  long qbuf_holds[2] = {-1, -1}, dbuf_holds[2] = {-1, -1};
  char *region_loaded = calloc(ndb, 1), *seen = calloc(n, 1);
  assert_true(region_loaded && seen);
  bg__gpu_step st, nx;
  size_t covered_q = 0;
  for (long s = -1; s < (long)n; s++) {
    /* The uploads of step s + 1, then the product of step s. */
    if (s + 1 < (long)n) {
      bg__gpu_step_at(p, (size_t)(s + 1), &nx);
      if (s >= 0) {
        bg__gpu_step_at(p, (size_t)s, &st);
        /* Never into what step s reads. */
        if (nx.load_q)
          assert_true(nx.qbuf != st.qbuf || p->q_bufs == 1);
        if (nx.load_q && p->q_bufs == 1)
          fail_msg("a second query tile with one query buffer");
        if (nx.load_db && !p->db_resident)
          assert_true(nx.dbuf != st.dbuf);
        if (nx.load_db && p->db_resident)
          assert_true(nx.dt != st.dt);
      }
      if (nx.load_q)
        qbuf_holds[nx.qbuf] = (long)nx.qt;
      if (nx.load_db) {
        if (p->db_resident)
          region_loaded[nx.dt] = 1;
        else
          dbuf_holds[nx.dbuf] = (long)nx.dt;
      }
    }
    if (s < 0)
      continue;
    bg__gpu_step_at(p, (size_t)s, &st);
    assert_int_equal(qbuf_holds[st.qbuf], (long)st.qt);
    if (p->db_resident)
      assert_true(region_loaded[st.dt]);
    else
      assert_int_equal(dbuf_holds[st.dbuf], (long)st.dt);
    size_t pair = st.qt * ndb + st.dt;
    assert_false(seen[pair]);
    seen[pair] = 1;
    assert_int_equal(st.q0, st.qt * p->tq);
    assert_int_equal(st.x0, st.dt * p->tdb);
    assert_int_equal(st.first, st.dt == 0);
    assert_int_equal(st.last, st.dt + 1 == ndb);
    if (st.last)
      covered_q += st.nq;
    /* Database tiles in increasing order within a query tile: ties stay on the lowest index. */
    if (!st.first) {
      bg__gpu_step prev;
      bg__gpu_step_at(p, (size_t)s - 1, &prev);
      assert_int_equal(prev.x0 + prev.nx, st.x0);
    }
  }
  assert_int_equal(covered_q, p->shape.nb_new);
  free(region_loaded), free(seen);
}

static void schedules_never_overwrite_what_is_read(void **state) {
  (void)state;
  uint64_t seed = 7;
  for (int t = 0; t < 3000; t++) {
    bg__gpu_shape s = shape(1 + rng(&seed) % 5000, 1 + rng(&seed) % 64, 1 + rng(&seed) % 5000, 1, 4,
                            (int)(rng(&seed) % 2));
    bg__gpu_plan p;
    /* Budgets from the least plan up, so that tiles of every size and both database modes
     * appear. */
    uint64_t least = bg__gpu_plan_bytes(&s, 1, 1, 0);
    uint64_t budget = least + rng(&seed) % (((uint64_t)4 << 20) << (rng(&seed) % 6));
    assert_int_equal(bg__gpu_plan_make(&s, budget, &p), 0);
    check_schedule(&p);
  }
}

/* ---- selection ----------------------------------------------------------------------------- */

/* select.h's selection for one row, one element at a time: the passes the device's thread
 * block makes, with a loop for the block's threads. */
#define SELECT_REF(T, SFX, BITS)                                                                   \
  static void select_ref_##SFX(const T *scores, uint32_t nx, const T *norm, int metric,            \
                               int64_t x0, const T *rk, const int64_t *ri, uint32_t have, T *ok,   \
                               int64_t *oi, uint32_t k) {                                          \
    uint32_t n = have + nx, m = k < n ? k : n, remaining = m, hist[256];                           \
    uint64_t prefix = 0, mask = 0;                                                                 \
    int64_t idx;                                                                                   \
    for (unsigned pass = 0; pass < (BITS) / 8; pass++) {                                           \
      memset(hist, 0, sizeof hist);                                                                \
      unsigned sh = bg__sel_shift(pass, BITS);                                                     \
      for (uint32_t p = 0; p < n; p++) {                                                           \
        uint64_t u =                                                                               \
            bg__sel_ukey_##SFX(bg__sel_at_##SFX(p, have, rk, ri, scores, norm, metric, x0, &idx)); \
        if ((u & mask) == prefix)                                                                  \
          hist[bg__sel_digit(u, sh)]++;                                                            \
      }                                                                                            \
      int done;                                                                                    \
      unsigned b = bg__sel_pick(hist, &remaining, &done);                                          \
      prefix |= (uint64_t)b << sh;                                                                 \
      mask |= (uint64_t)0xff << sh;                                                                \
      if (done)                                                                                    \
        break;                                                                                     \
    }                                                                                              \
    uint32_t out = 0, eq_seen = 0;                                                                 \
    for (uint32_t p = 0; p < n; p++) {                                                             \
      T key = bg__sel_at_##SFX(p, have, rk, ri, scores, norm, metric, x0, &idx);                   \
      uint64_t h = bg__sel_ukey_##SFX(key) & mask;                                                 \
      int take = h > prefix || (h == prefix && eq_seen++ < remaining);                             \
      if (take) {                                                                                  \
        ok[out] = key;                                                                             \
        oi[out++] = idx;                                                                           \
      }                                                                                            \
    }                                                                                              \
    assert_int_equal(out, m);                                                                      \
  }
SELECT_REF(float, f32, 32)
SELECT_REF(double, f64, 64)

/* The device pipeline on the CPU: the plan's steps in order, each tile's scores as the product
 * would give them (exact here: small integers), the selection per row with the running top-k
 * ping-ponging between two buffers, and the rows sorted at the end by knn_cuda.c's sort. */
#define PIPELINE(T, SFX, DTYPE)                                                                    \
  static void pipeline_##SFX(const bg__gpu_plan *p, const T *db, const T *q, const T *norm,        \
                             int metric, int64_t *idx_out) {                                       \
    const bg__gpu_shape *s = &p->shape;                                                            \
    size_t k = s->k, dim = s->dim;                                                                 \
    T *score = malloc(p->tq * p->tdb * sizeof *score);                                             \
    T *keys[2] = {malloc(p->tq * k * sizeof(T)), malloc(p->tq * k * sizeof(T))};                   \
    int64_t *idx[2] = {malloc(p->tq * k * 8), malloc(p->tq * k * 8)};                              \
    T *keys_out = malloc(s->nb_new * k * sizeof(T));                                               \
    void *sort_tmp = malloc(k * 16);                                                               \
    assert_true(score &&keys[0] && keys[1] && idx[0] && idx[1] && keys_out && sort_tmp);           \
    for (size_t n = bg__gpu_steps(p), st_i = 0; st_i < n; st_i++) {                                \
      bg__gpu_step st;                                                                             \
      bg__gpu_step_at(p, st_i, &st);                                                               \
      for (size_t i = 0; i < st.nq; i++)                                                           \
        for (size_t j = 0; j < st.nx; j++) {                                                       \
          T dot = 0;                                                                               \
          for (size_t t = 0; t < dim; t++)                                                         \
            dot += q[(st.q0 + i) * dim + t] * db[(st.x0 + j) * dim + t];                           \
          score[i * st.nx + j] = dot;                                                              \
        }                                                                                          \
      unsigned in = st.dt % 2, out = (st.dt + 1) % 2;                                              \
      uint32_t have = (uint32_t)(st.x0 < k ? st.x0 : k);                                           \
      for (size_t i = 0; i < st.nq; i++)                                                           \
        select_ref_##SFX(score + i * st.nx, (uint32_t)st.nx, norm ? norm + st.x0 : NULL, metric,   \
                         (int64_t)st.x0, keys[in] + i * k, idx[in] + i * k, have,                  \
                         keys[out] + i * k, idx[out] + i * k, (uint32_t)k);                        \
      if (!st.last)                                                                                \
        continue;                                                                                  \
      /* The running top-k stays in increasing index order. */                                     \
      for (size_t i = 0; i < st.nq * k; i++)                                                       \
        if (i % k)                                                                                 \
          assert_true(idx[out][i] > idx[out][i - 1]);                                              \
      memcpy(keys_out + st.q0 * k, keys[out], st.nq * k * sizeof(T));                              \
      memcpy(idx_out + st.q0 * k, idx[out], st.nq * k * 8);                                        \
    }                                                                                              \
    bg_knn_desc_t d;                                                                               \
    bg_knn_desc_init(&d);                                                                          \
    d.dtype = DTYPE, d.nb_new = s->nb_new, d.k = k, d.idx = idx_out;                               \
    bg__knn_cuda_sort(&d, keys_out, sort_tmp);                                                     \
    free(score), free(keys[0]), free(keys[1]), free(idx[0]), free(idx[1]), free(keys_out);         \
    free(sort_tmp);                                                                                \
  }
PIPELINE(float, f32, BG_F32)
PIPELINE(double, f64, BG_F64)

/* |x| (cosine) or |x|^2 (L2) as bg_knn computes them: in double, rounded to the dtype. */
static void norms_of(const double *db, size_t nb, size_t dim, int metric, int f64, void *out) {
  for (size_t j = 0; j < nb; j++) {
    double s = 0;
    for (size_t t = 0; t < dim; t++)
      s += db[j * dim + t] * db[j * dim + t];
    double r = metric == BG_KNN_COSINE ? sqrt(s) : s;
    if (f64)
      ((double *)out)[j] = r;
    else
      ((float *)out)[j] = (float)r;
  }
}

typedef struct sel_case {
  size_t nb_txt, dim, nb_new, k;
  int range; /* values in [-range, range]: 1 makes ties everywhere */
} sel_case;

static const sel_case sel_cases[] = {
    {1000, 16, 37, 1, 8},  {1000, 16, 37, 5, 1},  {513, 9, 70, 513, 2}, {4099, 33, 57, 5, 8},
    {300, 64, 20, 300, 1}, {2000, 3, 100, 17, 1}, {1, 5, 9, 1, 3},
};

/* The selection over tiles agrees with bg_knn's blocked backend index for index: the data are
 * small integers, so every score is exact in both dtypes and only the selection can differ. */
static void selection_matches_the_cpu(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  for (size_t c = 0; c < sizeof sel_cases / sizeof sel_cases[0]; c++) {
    const sel_case *sc = &sel_cases[c];
    size_t nd = sc->nb_txt * sc->dim, nq = sc->nb_new * sc->dim, nk = sc->nb_new * sc->k;
    double *dbd = malloc(nd * 8), *qd = malloc(nq * 8);
    float *dbf = malloc(nd * 4), *qf = malloc(nq * 4);
    int64_t *want = malloc(nk * 8), *got = malloc(nk * 8);
    void *norm = malloc(sc->nb_txt * 8);
    assert_true(dbd && qd && dbf && qf && want && got && norm);
    uint64_t seed = 1000 + c;
    for (size_t i = 0; i < nd; i++)
      dbf[i] = (float)(dbd[i] = (double)((int)(rng(&seed) % (2 * sc->range + 1)) - sc->range));
    for (size_t i = 0; i < nq; i++)
      qf[i] = (float)(qd[i] = (double)((int)(rng(&seed) % (2 * sc->range + 1)) - sc->range));
    for (int f64 = 0; f64 < 2; f64++)
      for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
        bg_knn_desc_t d;
        bg_knn_desc_init(&d);
        d.dtype = f64 ? BG_F64 : BG_F32, d.metric = (bg_knn_metric_t)m;
        d.db = f64 ? (void *)dbd : (void *)dbf, d.nb_txt = sc->nb_txt;
        d.queries = f64 ? (void *)qd : (void *)qf, d.nb_new = sc->nb_new;
        d.dim = sc->dim, d.k = sc->k, d.backend = "blocked", d.idx = want;
        assert_int_equal(bg_knn(pool, &d, NULL), 0);
        norms_of(dbd, sc->nb_txt, sc->dim, m, f64, norm);
        bg__gpu_shape s = shape(sc->nb_txt, sc->dim, sc->nb_new, sc->k, f64 ? 8 : 4, m != 0);
        /* Budgets from one tile to tiles of a few rows each way. */
        uint64_t budgets[] = {GIB, bg__gpu_plan_bytes(&s, 7, 13, 0),
                              bg__gpu_plan_bytes(&s, 1, 1, 0)};
        for (size_t b = 0; b < 3; b++) {
          bg__gpu_plan p;
          assert_int_equal(bg__gpu_plan_make(&s, budgets[b], &p), 0);
          memset(got, 0xff, nk * 8);
          if (f64)
            pipeline_f64(&p, dbd, qd, m ? norm : NULL, m, got);
          else
            pipeline_f32(&p, dbf, qf, m ? norm : NULL, m, got);
          for (size_t i = 0; i < nk; i++)
            if (got[i] != want[i])
              fail_msg("case %zu %s %s budget %zu (tiles %zu x %zu): row %zu rank %zu: %lld, "
                       "bg_knn %lld",
                       c, f64 ? "f64" : "f32", bg_knn_metric_name(d.metric), b, p.tq, p.tdb,
                       i / sc->k, i % sc->k, (long long)got[i], (long long)want[i]);
        }
      }
    free(dbd), free(qd), free(dbf), free(qf), free(want), free(got), free(norm);
  }
  bg_pool_destroy(pool);
}

/* ukey orders as the floats compare, -0 and +0 included. */
static void ukeys_keep_the_order(void **state) {
  (void)state;
  const double v[] = {-INFINITY, -3e38, -1.5,      -1e-40, -0.0,   0.0,   1e-45,
                      1e-40,     1.0,   1.0000001, 3e38,   -1e300, 1e300, 5e-324};
  size_t n = sizeof v / sizeof v[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      float a = (float)v[i], b = (float)v[j];
      uint64_t ua = bg__sel_ukey_f32(a), ub = bg__sel_ukey_f32(b);
      assert_int_equal(a < b, ua < ub);
      assert_int_equal(a == b, ua == ub);
      uint64_t da = bg__sel_ukey_f64(v[i]), dbk = bg__sel_ukey_f64(v[j]);
      assert_int_equal(v[i] < v[j], da < dbk);
      assert_int_equal(v[i] == v[j], da == dbk);
    }
  uint32_t hist[256] = {0}, rem = 5;
  hist[200] = 3, hist[100] = 4, hist[3] = 9;
  int done;
  assert_int_equal(bg__sel_pick(hist, &rem, &done), 100);
  assert_int_equal(rem, 2);
  assert_false(done);
  rem = 7;
  assert_int_equal(bg__sel_pick(hist, &rem, &done), 100);
  assert_true(done);
}

/* auto's prediction: the lecture's big case goes to a data-centre GPU, a tiny one stays on the
 * CPU (the GPU's fixed cost alone is longer than the CPU's whole search). */
static void predictions(void **state) {
  (void)state;
  bg__gpu_rates h200 = {.gflops = 0.7 * 67000, .h2d_gbps = 50, .fixed_s = 5e-3};
  bg__gpu_shape big = shape(100000, 1000, 10000, 1, 4, 0), tiny = shape(1000, 100, 100, 1, 4, 0);
  assert_true(bg__gpu_predict_s(&big, &h200) < bg__cpu_predict_s(&big, 2, 200));
  assert_true(bg__gpu_predict_s(&tiny, &h200) > bg__cpu_predict_s(&tiny, 2, 200));
  /* Transfers bound a thin search: 400 MB at 50 GB/s is 8 ms of the prediction. */
  assert_true(bg__gpu_predict_s(&big, &h200) > 8e-3);
  /* 64 cores beat a slow link on a search that moves much and computes little. */
  bg__gpu_rates slow = {.gflops = 10000, .h2d_gbps = 1, .fixed_s = 5e-3};
  bg__gpu_shape thin = shape(1000000, 100, 100, 1, 4, 0);
  assert_true(bg__gpu_predict_s(&thin, &slow) > bg__cpu_predict_s(&thin, 64, 200));
}

/* Without a GPU (this test's usual machine) cuda is refused before anything is written, auto
 * stays on the CPU, and the times come back for a CPU search. */
static void cuda_without_a_gpu(void **state) {
  (void)state;
  bg_gpu_info_t g;
  int q = bg_gpu_query(&g);
  if (q == 0)
    skip(); /* a GPU here: tests/gpu covers it */
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  float db[4 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}, qv[3] = {0, 2, 0};
  int64_t idx[2] = {-7, -7};
  float sc[2] = {0, 0};
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 4, d.queries = qv, d.nb_new = 1, d.dim = 3, d.k = 2, d.idx = idx;
  d.scores = sc;
  d.backend = "cuda";
  bg_knn_plan_t p;
  assert_int_equal(bg_knn_plan(pool, &d, &p), q);
  assert_int_equal(bg_knn(pool, &d, NULL), q);
  assert_true(q == BG_ENOTSUP || q == BG_EUNAVAIL);
  assert_int_equal(idx[0], -7);
  assert_int_equal(bg_knn_backend_available("cuda"), q == BG_EUNAVAIL);
  bg_knn_times_t t;
  memset(&t, 0xff, sizeof t);
  d.backend = "auto", d.times = &t;
  assert_int_equal(bg_knn_plan(pool, &d, &p), 0);
  assert_string_not_equal(p.backend, "cuda");
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  assert_true(idx[0] == 1 || idx[0] == 3);
  assert_true(t.wall_s > 0 && t.wall_s < 60);
  assert_true(t.h2d_s == 0 && t.gemm_s == 0 && t.select_s == 0 && t.d2h_s == 0);
  /* A version-2 caller has no times field: the pointer there is never written. */
  d.version = 2, d.times = (bg_knn_times_t *)(uintptr_t)1;
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  bg_pool_destroy(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(the_memory_wall_fits_in_a_few_gib),
      cmocka_unit_test(refusals),
      cmocka_unit_test(random_plans_fit),
      cmocka_unit_test(schedules_never_overwrite_what_is_read),
      cmocka_unit_test(selection_matches_the_cpu),
      cmocka_unit_test(ukeys_keep_the_order),
      cmocka_unit_test(predictions),
      cmocka_unit_test(cuda_without_a_gpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
