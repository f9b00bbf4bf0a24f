/* SPDX-License-Identifier: MIT */
/* A database read in pieces (bg_knn_desc_t.db_read): the answers equal the in-memory search's
 * on every CPU backend, metric and dtype, whatever the piece size; pieces come in order, each
 * within half the budget, and everything allocated stays within the budget; L2 far from the
 * origin is centred from the first piece; a reader's error, a NaN in a later piece and a budget
 * too small end the search with their codes; bg_npy_read_rows streams a .npy file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

static const char *const backends[] = {"naive", "blocked", "blas", "auto"};

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* The reader: copies from an array in memory and checks the contract (pieces in increasing,
 * contiguous order, each at most half the budget); can be told to fail at a call. */
typedef struct reader {
  const char *db;
  size_t row_bytes, next_row, calls, fail_at, max_piece;
  uint64_t budget;
  int broken;
  int views;         /* db_view: 0 never asked for, 1 gives every piece, 2 every other one */
  size_t view_calls; /* db_view's calls */
  size_t viewed;     /* pieces it gave */
} reader;

static int read_rows(void *ctx, size_t row0, size_t rows, void *dst) {
  reader *r = ctx;
  r->calls++;
  if (row0 != r->next_row || rows == 0 || (r->budget && rows * r->row_bytes > r->budget / 2))
    r->broken = 1;
  r->next_row = row0 + rows;
  r->max_piece = rows > r->max_piece ? rows : r->max_piece;
  if (r->fail_at && r->calls == r->fail_at)
    return BG_ESYS;
  memcpy(dst, r->db + row0 * r->row_bytes, rows * r->row_bytes);
  return 0;
}

/* db_view: the rows where they lie, under the same contract as read_rows; with views == 2
 * every other piece is refused (NULL), which read_rows must then copy. */
static const void *view_rows(void *ctx, size_t row0, size_t rows) {
  reader *r = ctx;
  if (r->views == 0 || row0 != r->next_row || rows == 0 ||
      (r->budget && rows * r->row_bytes > r->budget / 2))
    r->broken = 1;
  if (r->views == 2 && r->view_calls++ % 2)
    return NULL;
  r->view_calls += r->views == 1;
  r->viewed++;
  r->next_row = row0 + rows;
  r->max_piece = rows > r->max_piece ? rows : r->max_piece;
  return r->db + row0 * r->row_bytes;
}

/* Small integers (exact sums in both dtypes), or floats in [-1, 1]. */
static void *make(size_t n, bg_dtype_t t, uint64_t seed, int integers) {
  void *v = malloc(n * (t == BG_F64 ? 8 : 4));
  for (size_t i = 0; i < n; i++) {
    double x =
        integers ? (double)((int)(rng(&seed) % 17) - 8) : (double)(rng(&seed) % 2000001) / 1e6 - 1;
    if (t == BG_F64)
      ((double *)v)[i] = x;
    else
      ((float *)v)[i] = (float)x;
  }
  return v;
}

static void streamed_answers_equal_the_in_memory_ones(void **state) {
  (void)state;
  tk_counting cnt = {0};
  bg_allocator_t a = {tk_count_alloc, tk_count_free, &cnt};
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.allocator = &a;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(&o, &pool), 0);
  size_t nb = 3001, dim = 24, nq = 77;
  for (int t = 0; t < 2; t++)
    for (int integers = 1; integers >= 0; integers--) {
      bg_dtype_t dt = t ? BG_F64 : BG_F32;
      size_t e = t ? 8 : 4;
      void *db = make(nb * dim, dt, 5 + t, integers), *q = make(nq * dim, dt, 9 + t, integers);
      for (size_t be = 0; be < 4; be++) {
        if (!bg_knn_backend_available(backends[be]))
          continue;
        /* Floats only where the sum order cannot depend on the tiles (OpenBLAS may block
         * differently for a piece than for the whole). */
        if (!integers && !strcmp(backends[be], "blas"))
          continue;
        for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
          for (size_t k = 1; k <= 9; k += 8) {
            int64_t *want = malloc(nq * k * 8), *got = malloc(nq * k * 8);
            char *ws = malloc(nq * k * e), *gs = malloc(nq * k * e);
            bg_knn_desc_t d;
            bg_knn_desc_init(&d);
            d.dtype = dt, d.metric = (bg_knn_metric_t)m, d.db = db, d.nb_txt = nb;
            d.queries = q, d.nb_new = nq, d.dim = dim, d.k = k, d.backend = backends[be];
            d.idx = want, d.scores = ws;
            assert_int_equal(bg_knn(pool, &d, NULL), 0);
            /* One piece (the default budget), then pieces of a few hundred rows. */
            /* Then with db_view: in place, and in place every other piece. */
            static const uint64_t budgets[] = {0, 160 << 10, 160 << 10, 160 << 10};
            static const int views[] = {0, 0, 1, 2};
            for (size_t b = 0; b < 4; b++) {
              reader r = {.db = db, .row_bytes = dim * e, .budget = budgets[b], .views = views[b]};
              d.db = NULL, d.db_read = read_rows, d.db_ctx = &r, d.mem_budget = budgets[b];
              d.db_view = views[b] ? view_rows : NULL;
              d.idx = got, d.scores = gs;
              size_t base = cnt.live;
              cnt.peak = base;
              bg_knn_plan_t plan;
              int rc = bg_knn(pool, &d, &plan);
              if (rc != 0)
                fail_msg("%s %s %s k=%zu budget %llu: %s (%s)", backends[be], bg_dtype_name(dt),
                         bg_knn_metric_name(d.metric), k, (unsigned long long)budgets[b],
                         bg_strerror(rc), plan.why ? plan.why : "");
              assert_false(r.broken);
              assert_int_equal(r.next_row, nb);
              /* l2 centres each piece in place: always a copy, never a view. Else every piece
               * is a view, or every other one is and the rest are copies. */
              if (m == BG_KNN_L2)
                assert_int_equal(r.view_calls, 0);
              else if (views[b] == 1)
                assert_true(r.viewed > 3 && r.calls == 0);
              else if (views[b] == 2)
                assert_true(r.viewed > 1 && r.calls > 1);
              if (budgets[b]) {
                assert_true(r.calls + r.viewed > 3);
                assert_true(plan.bytes <= budgets[b]);
                if (cnt.peak - base > budgets[b])
                  fail_msg("a %llu B budget allocated %zu B", (unsigned long long)budgets[b],
                           cnt.peak - base);
              }
              if (memcmp(want, got, nq * k * 8) || memcmp(ws, gs, nq * k * e))
                fail_msg("%s %s %s k=%zu budget %llu (pieces of %zu rows): answers differ",
                         backends[be], bg_dtype_name(dt), bg_knn_metric_name(d.metric), k,
                         (unsigned long long)budgets[b], r.max_piece);
              d.db = db, d.db_read = NULL, d.db_view = NULL, d.mem_budget = 0;
            }
            free(want), free(got), free(ws), free(gs);
          }
      }
      free(db), free(q);
    }
  bg_pool_destroy(pool);
}

/* Rows near (1000, ..., 1000): L2 is searched on rows shifted by the first piece's mean, as the
 * in-memory search shifts by the whole database's; both must find the true nearest rows. */
static void l2_far_from_the_origin_is_centred_from_the_first_piece(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  size_t nb = 4000, dim = 8, nq = 50, k = 3;
  float *db = malloc(nb * dim * 4), *q = malloc(nq * dim * 4);
  uint64_t s = 3;
  for (size_t i = 0; i < nb * dim; i++)
    db[i] = 1000.0f + (float)(rng(&s) % 100001) / 1e4f;
  for (size_t i = 0; i < nq * dim; i++)
    q[i] = 1000.0f + (float)(rng(&s) % 100001) / 1e4f;
  int64_t idx[150];
  float sc[150];
  reader r = {.db = (const char *)db, .row_bytes = dim * 4, .budget = 64 << 10};
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.metric = BG_KNN_L2, d.db_read = read_rows, d.db_ctx = &r, d.nb_txt = nb, d.queries = q;
  d.nb_new = nq, d.dim = dim, d.k = k, d.idx = idx, d.scores = sc, d.mem_budget = 64 << 10;
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  assert_true(r.calls > 3);
  for (size_t i = 0; i < nq; i++) {
    /* The true distances, in double, of the k nearest rows. */
    double best[3] = {INFINITY, INFINITY, INFINITY};
    for (size_t j = 0; j < nb; j++) {
      double dd = 0;
      for (size_t t = 0; t < dim; t++) {
        double v = (double)q[i * dim + t] - db[j * dim + t];
        dd += v * v;
      }
      for (size_t p = 0; p < k; p++)
        if (dd < best[p]) {
          for (size_t u = k - 1; u > p; u--)
            best[u] = best[u - 1];
          best[p] = dd;
          break;
        }
    }
    for (size_t p = 0; p < k; p++) {
      double dd = 0;
      for (size_t t = 0; t < dim; t++) {
        double v = (double)q[i * dim + t] - db[idx[i * k + p] * dim + t];
        dd += v * v;
      }
      if (fabs(dd - best[p]) > 1e-3 * best[p] + 1e-6 || fabs(sc[i * k + p] - best[p]) > 1e-2)
        fail_msg("query %zu rank %zu: row %lld at %g (reported %g), nearest %g", i, p,
                 (long long)idx[i * k + p], dd, (double)sc[i * k + p], best[p]);
    }
  }
  free(db), free(q);
  bg_pool_destroy(pool);
}

static void refusals_and_failures(void **state) {
  (void)state;
  bg_pool_t *pool;
  assert_int_equal(bg_pool_create(NULL, &pool), 0);
  size_t nb = 5000, dim = 16, nq = 10;
  float *db = make(nb * dim, BG_F32, 1, 1), *q = make(nq * dim, BG_F32, 2, 1);
  int64_t idx[10];
  reader r = {.db = (const char *)db, .row_bytes = dim * 4};
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db_read = read_rows, d.db_ctx = &r, d.nb_txt = nb, d.queries = q, d.nb_new = nq;
  d.dim = dim, d.k = 1, d.idx = idx, d.mem_budget = 64 << 10;
  bg_knn_plan_t plan;
  /* The reader's own error ends the search with its code. */
  r.fail_at = 3;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_ESYS);
  /* A NaN in a later piece: BG_EINVAL. */
  r = (reader){.db = (const char *)db, .row_bytes = dim * 4};
  db[(nb - 3) * dim + 5] = NAN;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL);
  db[(nb - 3) * dim + 5] = 1;
  /* A budget that holds no piece beside the tiles. */
  r = (reader){.db = (const char *)db, .row_bytes = dim * 4};
  d.mem_budget = 256;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), BG_ENOMEM);
  assert_non_null(plan.why);
  assert_int_equal(bg_knn(pool, &d, &plan), BG_ENOMEM);
  assert_int_equal(r.calls, 0);
  /* The least it names is enough, for every metric (L2's centred queries included). */
  for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++) {
    d.metric = (bg_knn_metric_t)m, d.mem_budget = 256;
    assert_int_equal(bg_knn_plan(pool, &d, &plan), BG_ENOMEM);
    assert_true(plan.min_bytes > 256);
    d.mem_budget = plan.min_bytes;
    r = (reader){.db = (const char *)db, .row_bytes = dim * 4};
    assert_int_equal(bg_knn(pool, &d, &plan), 0);
    assert_true(plan.bytes <= d.mem_budget);
  }
  d.metric = BG_KNN_IP;
  /* The plan of a streamed search keeps to its budget; a version-3 caller has no db_read. */
  d.mem_budget = 1 << 20;
  assert_int_equal(bg_knn_plan(pool, &d, &plan), 0);
  assert_true(plan.bytes <= (1 << 20));
  d.version = 3;
  assert_int_equal(bg_knn(pool, &d, NULL), BG_EINVAL);
  /* db_view is a version-7 field: an older caller's struct ends before it, so it is never read. */
  reader r6 = {.db = (const char *)db, .row_bytes = dim * 4};
  d.version = 6, d.db_read = read_rows, d.db_ctx = &r6, d.db_view = view_rows;
  assert_int_equal(bg_knn(pool, &d, NULL), 0);
  assert_true(r6.calls > 0 && r6.view_calls == 0 && !r6.broken);
  free(db), free(q);
  bg_pool_destroy(pool);
}

/* bg_npy_read_rows on a streamed file, on a mapped one, and on a file cut short in use;
 * bg_npy_view_rows on a streamed one. */
static void npy_rows_are_read_in_pieces(void **state) {
  (void)state;
  char path[] = "/tmp/bg_stream_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  size_t shape[2] = {1000, 3};
  float v[3000];
  for (size_t i = 0; i < 3000; i++)
    v[i] = (float)i;
  assert_int_equal(bg_npy_write(path, BG_NPY_F32, 2, shape, v, NULL), 0);
  for (int stream = 0; stream < 2; stream++) {
    bg_npy_opts_t o;
    bg_npy_opts_init(&o);
    o.stream = stream;
    bg_npy_t *a;
    assert_int_equal(bg_npy_open(path, &o, &a, NULL), 0);
    assert_true(stream ? bg_npy_data(a) == NULL : bg_npy_data(a) != NULL);
    float got[30];
    assert_int_equal(bg_npy_read_rows(a, 990, 10, got, NULL), 0);
    assert_memory_equal(got, v + 2970, sizeof got);
    bg_npy_error_t e;
    assert_int_equal(bg_npy_read_rows(a, 995, 10, got, &e), BG_EINVAL);
    /* Views: a streamed array's rows in place, from any row (the data does not start on a page:
     * the header is 128 bytes); an array already in memory, rows past the end, none, or a NULL
     * argument are refused with a zeroed view. */
    bg_npy_view_t w = {.rows = v};
    if (stream) {
      assert_int_equal(bg_npy_view_rows(a, 990, 10, &w, &e), 0);
      assert_memory_equal(w.rows, v + 2970, 30 * sizeof(float));
      bg_npy_view_t w2;
      assert_int_equal(bg_npy_view_rows(a, 0, 1000, &w2, NULL), 0);
      assert_memory_equal(w2.rows, v, sizeof v);
      bg_npy_unview(&w2);
      assert_null(w2.map);
      bg_npy_unview(&w);
      assert_null(w.rows);
    }
    assert_int_equal(bg_npy_view_rows(a, 995, 10, &w, &e), BG_EINVAL);
    assert_null(w.rows);
    assert_int_equal(bg_npy_view_rows(a, 0, 0, &w, NULL), BG_EINVAL);
    assert_int_equal(bg_npy_view_rows(NULL, 0, 1, &w, NULL), BG_EINVAL);
    assert_int_equal(bg_npy_view_rows(a, 0, 1, NULL, NULL), BG_EINVAL);
    if (!stream)
      assert_int_equal(bg_npy_view_rows(a, 0, 1, &w, NULL), BG_EINVAL);
    bg_npy_unview(NULL);
    bg_npy_unview(&w);
    if (stream) {
      assert_int_equal(truncate(path, 128 + 500 * 12), 0);
      assert_int_equal(bg_npy_read_rows(a, 990, 10, got, &e), BG_ERANGE);
      assert_int_equal(e.fault, BG_NPY_TRUNCATED);
      assert_non_null(strstr(e.msg, "truncated"));
      /* Rows before the cut are read; the message names the first one gone. */
      assert_int_equal(bg_npy_read_rows(a, 495, 10, got, &e), BG_ERANGE);
      assert_non_null(strstr(e.msg, "rows 500 to 505 are no longer in the file"));
    }
    bg_npy_close(a);
  }
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(streamed_answers_equal_the_in_memory_ones),
      cmocka_unit_test(l2_far_from_the_origin_is_centred_from_the_first_piece),
      cmocka_unit_test(refusals_and_failures),
      cmocka_unit_test(npy_rows_are_read_in_pieces),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
