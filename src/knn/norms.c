/* SPDX-License-Identifier: MIT */
/* Squared norms of rows, summed in double: the largest of them, in the pass over the inputs
 * that also refuses NaN and infinities, and the database's norms that cosine and L2 rank with.
 * Both read the whole database before the search; on the caller's thread alone that pass took
 * half the time of a one-query search (100000 x 100, 2 workers) and a sixth of a 100-query one
 * (10000 x 1000). So they run on the pool, in chunks of rows: a row's sum does not depend on
 * which worker computed it, nor does the largest on the order of the chunks.
 *
 * The sums were not made wider than four: 16 running sums in vectors of four doubles, AVX2 or
 * not, ran 1.2-2.1x slower than these four per row in a loop of their own here (GCC splits
 * the float-to-double conversions), and four are what the sums were before, so norms keep their
 * bits. */
#include "brigade/error.h"
#include "internal/knn.h"

#include <immintrin.h>
#include <math.h>

/* |v|^2 of one row, in double: exact enough for a bound, and unable to overflow for f32 rows
 * (dim < 2^31 squares of at most 3.4e38 stay below 1e87); an f32 square is exact in double.
 * Four sums let the loop vectorise. */
#define ROW_SQ(T)                                                                                  \
  static double row_sq_##T(const T *r, size_t dim) {                                               \
    double a[4] = {0, 0, 0, 0};                                                                    \
    size_t t = 0;                                                                                  \
    for (; t + 4 <= dim; t += 4)                                                                   \
      for (size_t l = 0; l < 4; l++)                                                               \
        a[l] += (double)r[t + l] * r[t + l];                                                       \
    for (; t < dim; t++)                                                                           \
      a[0] += (double)r[t] * r[t];                                                                 \
    return (a[0] + a[1]) + (a[2] + a[3]);                                                          \
  }
ROW_SQ(float)
ROW_SQ(double)

/* The check pass's |v|^2 of an f32 row, in the widest vectors the CPU has: a bound and a verdict
 * on NaN and infinity only, never a norm a search ranks with, so its order of additions and its
 * fused multiply-adds need not match row_sq_float's bits. Two chains of eight doubles (AVX-512)
 * or four (AVX2) where row_sq_float's compiled build adds two by two: the pass took 27 us of a
 * 195 us search of (1000, 100, 100) on 2 workers of an AVX-512 CPU, on the caller alone. A NaN or
 * infinity anywhere in the row makes the sum NaN or infinite, as in row_sq_float. */
__attribute__((target("avx512f"))) static double row_sq_f32_avx512(const float *r, size_t dim) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  for (size_t t = 0; t < dim; t += 16) {
    __mmask16 m = dim - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (dim - t)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(m, r + t);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    a0 = _mm512_fmadd_pd(lo, lo, a0);
    a1 = _mm512_fmadd_pd(hi, hi, a1);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

__attribute__((target("avx2,fma"))) static double row_sq_f32_avx2(const float *r, size_t dim) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  size_t t = 0;
  for (; t + 8 <= dim; t += 8) {
    __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(r + t)),
            hi = _mm256_cvtps_pd(_mm_loadu_ps(r + t + 4));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  double a[4], s = 0;
  _mm256_storeu_pd(a, _mm256_add_pd(a0, a1));
  for (; t < dim; t++)
    s += (double)r[t] * r[t];
  return ((a[0] + a[1]) + (a[2] + a[3])) + s;
}

/* The check pass's sum for f32 row @r: in the widest vectors @isa allows. */
static double row_sq_check(bg__knn_isa isa, const float *r, size_t dim) {
  return isa == BG__ISA_AVX512 ? row_sq_f32_avx512(r, dim)
         : isa == BG__ISA_AVX2 ? row_sq_f32_avx2(r, dim)
                               : row_sq_float(r, dim);
}

static int row_finite(const void *rows, size_t i, size_t dim, bg_dtype_t t) {
  for (size_t j = 0; j < dim; j++)
    if (!isfinite(t == BG_F64 ? ((const double *)rows)[i * dim + j]
                              : (double)((const float *)rows)[i * dim + j]))
      return 0;
  return 1;
}

double bg__knn_sq_norm(const bg_knn_desc_t *d, const void *rows, size_t i) {
  return d->dtype == BG_F64 ? row_sq_double((const double *)rows + i * d->dim, d->dim)
                            : row_sq_float((const float *)rows + i * d->dim, d->dim);
}

/* Chunks of at least this many values (about 70 us), so that handing one to a worker costs
 * little beside it; and at most MAX_CHUNKS of them, whose results live on the stack. */
#define CHUNK_VALUES (1 << 18)
#define MAX_CHUNKS 256

/* One pass: either the largest |v|^2 of each chunk (norm NULL), with bad set where a row holds
 * NaN or infinity, or the norms of every row into norm (|x| for cosine, |x|^2 for L2). */
typedef struct pass {
  const void *v;
  size_t rows, dim, per;
  bg_dtype_t t;
  bg_knn_metric_t metric;
  bg__knn_isa isa; /* the check pass's row sums: bg__knn_isa_here() */
  void *norm;
  double max[MAX_CHUNKS];
  int bad[MAX_CHUNKS];
} pass;

static int chunk_task(void *out, const void *in, size_t c, void *ctx) {
  (void)out, (void)in;
  pass *p = ctx;
  size_t r0 = c * p->per, r1 = r0 + p->per < p->rows ? r0 + p->per : p->rows;
  double m = 0;
  for (size_t i = r0; i < r1; i++) {
    const float *f = (const float *)p->v + i * p->dim;
    double s = p->t == BG_F64 ? row_sq_double((const double *)p->v + i * p->dim, p->dim)
               : p->norm      ? row_sq_float(f, p->dim)
                              : row_sq_check(p->isa, f, p->dim);
    if (p->norm) {
      double r = p->metric == BG_KNN_COSINE ? sqrt(s) : s;
      if (p->t == BG_F64)
        ((double *)p->norm)[i] = r;
      else
        ((float *)p->norm)[i] = (float)r;
      continue;
    }
    /* A row whose sum is not finite is read again to tell a bad value (BG_EINVAL) from finite
     * f64 values whose squares pass DBL_MAX (+inf, which bg__knn_scores_fit() refuses). */
    if (!isfinite(s) && !row_finite(p->v, i, p->dim, p->t)) {
      p->bad[c] = 1;
      return 0;
    }
    if (s > m)
      m = s;
  }
  p->max[c] = m;
  return 0;
}

/* Runs @p over its rows: on @pool when there is more than a chunk's work, else here. */
static int run_pass(bg_pool_t *pool, pass *p) {
  size_t least = CHUNK_VALUES / p->dim + 1, per = (p->rows + MAX_CHUNKS - 1) / MAX_CHUNKS;
  p->per = per > least ? per : least;
  size_t n = (p->rows + p->per - 1) / p->per;
  for (size_t c = 0; c < n; c++)
    p->max[c] = 0, p->bad[c] = 0;
  if (n <= 1 || !pool) {
    for (size_t c = 0; c < n; c++)
      chunk_task(NULL, NULL, c, p);
    return BG_OK;
  }
  bg_map_desc_t m;
  bg_map_desc_init(&m);
  m.fn = chunk_task, m.ctx = p, m.n = n, m.flags = BG_MAP_NO_HISTORY;
  return bg_map(pool, &m, NULL);
}

int bg__knn_max_sq_norm(bg_pool_t *pool, const void *v, size_t rows, size_t dim, bg_dtype_t t,
                        double *out) {
  pass p = {.v = v, .rows = rows, .dim = dim, .t = t, .isa = bg__knn_isa_here()};
  int rc = run_pass(pool, &p);
  if (rc != 0)
    return rc;
  double m = 0;
  for (size_t c = 0; c * p.per < rows; c++) {
    if (p.bad[c])
      return BG_EINVAL;
    m = p.max[c] > m ? p.max[c] : m;
  }
  *out = m;
  return BG_OK;
}

int bg__knn_db_norms(bg_pool_t *pool, const bg_knn_desc_t *d, void *norm) {
  pass p = {.v = d->db,
            .rows = d->nb_txt,
            .dim = d->dim,
            .t = d->dtype,
            .metric = d->metric,
            .norm = norm};
  return run_pass(pool, &p);
}
