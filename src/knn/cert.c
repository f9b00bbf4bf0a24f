/* SPDX-License-Identifier: MIT */
/* The certificates that let a fast inexact product skip pairs and leave the exact search's
 * answer, bit for bit: precision bf16's, and the blas backend's (at the end of the file).
 *
 * bf16: how far a score computed from bf16-rounded inputs can be from the one the exact fp32
 * search computes, as three constants per database row and two
 * per query, so that the kernel (kernel_bf16.h) scores a pair again in fp32 only when its bf16
 * score plus the bound reaches the query's running k-th best.
 *
 * The proof. Notation: u = 2^-24 (fp32's unit roundoff), v = 2^-8 (bf16's), m = 2^-126 (the
 * smallest normal), dim the vectors' length, D = dim rounded up to even (the pairs the bf16 dot
 * products take; the pad is zero), gamma_n = n u / (1 - n u), |.| the Euclidean norm. q~ is the
 * query rounded to bf16 (to nearest even; fp32 values below m become 0, as AVX-512 BF16's
 * conversion makes them) and dq = q - q~ its residual, exact in fp32 and in double; the same for
 * a database row x. |q~_t| <= (1 + v) |q_t| whatever the rounding.
 *
 * (a) Rounding: q.x - q~.x~ = q~.dx + dq.x, so by Cauchy-Schwarz
 *     |q~.x~ - q.x| <= |q~| |dx| + |dq| |x| <= |q| |dx| + |dq| (|x| + |dx|),
 *     with the residuals' actual norms (about 2.4 times tighter than v |q| |x| per term on
 *     ordinary data, and exact about flushed values).
 * (b) The bf16 dot product a~: each product of two bf16 values is exact in fp32 (8 + 8
 *     significant bits), unless below m, where it may be flushed (error < m); each of the at most
 *     D additions into the fp32 accumulator errs by at most u of its result, plus m when a result
 *     below m is flushed, in whatever order or fusion the instruction uses (fewer roundings only
 *     tighten this). The usual summation bound gives
 *     |a~ - q~.x~| <= gamma_D sum |q~_t x~_t| + 4 D m <= gamma_D (1 + v)^2 |q| |x| + 4 D m.
 * (c) The exact search's fp32 dot product (dim fused multiply-adds, each rounded once, which the
 *     bound for dim products and additions covers; gradual underflow):
 *     |dot32 - q.x| <= gamma_dim |q| |x| + D m.
 * So |a~ - dot32| <= E = |q| (|dx| + G0 |x|) + |dq| (|x| + |dx|) + tau, with
 * G0 = gamma_D (1 + v)^2 + gamma_dim and tau = 2^-122 D (>= 5 D m, with room for 2 u tau).
 *
 * Keys. The kernels rank by k = dot (ip), dot / n_x (cosine, n_x the fp32 norm the kernel keeps;
 * 0 when n_x = 0) and 2 dot - n2_x (L2, n2_x the fp32 |x|^2), each rounded once in fp32. The bf16
 * kernel forms k~ from a~ by the same formula; |a~| <= 1.1 |q| |x| + tau when G0 <= 2^-6. The two
 * keys' last roundings differ by at most u (|k32| + |k~|) plus 2^-149 each, so
 *     ip:     |k32 - k~| <= E + 2.2 u |q| |x| + 2 u tau + 2^-148
 *     cosine: |k32 - k~| <= (E (1 + u) + 2.2 u |q| |x| + 2 u tau) / n_x + 2^-148
 *     L2:     |k32 - k~| <= 2 E + u (4.4 |q| |x| + 2 E + 2 n2_x) + 2^-148.
 * The filter computes up = k~ + Q B1 + R B2 + C in fp32 (two products, three sums, in that
 * order), each operation rounding by at most u times a value below 2 |k~| + 2 (Q B1 + R B2 + C),
 * plus 2^-149. With Q >= |q|, R >= |dq|, X >= |x|, DX >= |dx|, G = G0 + 8 u and
 *     ip:     B1 = DX + G X,          B2 = X + DX,          C = tau + 2^-146
 *     cosine: the same over n_x (all three 0 when n_x = 0)
 *     L2:     B1 = 2 (DX + G X),      B2 = 2 (X + DX),      C = 2 tau + 4 u n2_x + 2^-146
 * each then raised by a factor 1 + 2^-10, every term above is covered: 8u |q| |x| against at
 * most 5u |q| |x| of roundings in k~, k32 and the filter for ip and cosine, 16u against 8.8u
 * for L2; 4 u n2_x against the two 2 u n2_x; the u-sized roundings of E and of the filter's own
 * terms by the factor 1 + 2^-10; 2^-146 against four 2^-148-sized terms. So k32 <= up. A pair
 * with up <= thr, the query's current k-th best fp32 key, has k32 <= thr: it cannot displace
 * anything (a key must be strictly better), so skipping it leaves the running top-k exactly as
 * the fp32 search leaves it, pair after pair, ties included. Q, R, X, DX and the constants are
 * computed in double (sums of squares err by at most dim 2^-53 < 2^-20 relative, covered by the
 * factor 1 + 2^-20) and rounded up to fp32. G0 > 2^-6 (D above about 2^18) would make the
 * filter useless: bf16 does not run there. */
#include "brigade/map.h"
#include "internal/knn.h"

#include <math.h>
#include <string.h>

#define U_F32 0x1p-24
#define U_F64 0x1p-53
#define U_BF16 0x1p-8
#define SUM_ERR (1 + 0x1p-20)
#define FILTER_ERR (1 + 0x1p-10)

static double gamma_u(double n, double u) {
  return n * u / (1 - n * u);
}

static double gamma_n(double n) {
  return gamma_u(n, U_F32);
}

static double pad_dim(size_t dim) {
  return (double)(dim + (dim & 1));
}

/* G0 of the proof for this dim. */
static double sum_bound(size_t dim) {
  return gamma_n(pad_dim(dim)) * (1 + U_BF16) * (1 + U_BF16) + gamma_n((double)dim);
}

int bg__knn_bf16_dim_ok(size_t dim) {
  return sum_bound(dim) <= 0x1p-6;
}

/* The least float not below x. */
static float up_f(double x) {
  float f = (float)x;
  return (double)f < x ? nextafterf(f, INFINITY) : f;
}

/* fp32 to bf16 and back, as the kernel rounds. */
static float bf16_round(float f) {
  uint32_t b = bg__knn_bf16_of(f) << 16;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* |row| and |row - bf16(row)|, in double (four sums each, so that the loop vectorises). */
static void norms(const float *row, size_t dim, double *n, double *r) {
  double a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
  size_t t = 0;
  for (; t + 4 <= dim; t += 4)
    for (size_t l = 0; l < 4; l++) {
      double v = row[t + l], e = v - (double)bf16_round(row[t + l]);
      a[l] += v * v, b[l] += e * e;
    }
  for (; t < dim; t++) {
    double v = row[t], e = v - (double)bf16_round(row[t]);
    a[0] += v * v, b[0] += e * e;
  }
  *n = sqrt((a[0] + a[1]) + (a[2] + a[3])) * SUM_ERR;
  *r = sqrt((b[0] + b[1]) + (b[2] + b[3])) * SUM_ERR;
}

void bg__knn_bf16_query(const bg_knn_desc_t *d, const void *queries, size_t i, float *q, float *r) {
  double n, e;
  norms((const float *)queries + i * d->dim, d->dim, &n, &e);
  *q = up_f(n);
  *r = up_f(e);
}

/* Rows [r0, r1) of the database's constants. */
static void rows_range(const bg_knn_desc_t *d, const float *norm, float *bc, size_t r0, size_t r1) {
  double g = sum_bound(d->dim) + 8 * U_F32, tau = 0x1p-122 * pad_dim(d->dim);
  for (size_t j = r0; j < r1; j++) {
    double x, dx;
    norms((const float *)d->db + j * d->dim, d->dim, &x, &dx);
    double b1 = dx + g * x, b2 = x + dx, c = tau;
    switch (d->metric) {
    case BG_KNN_COSINE:
      if (norm[j] > 0) {
        b1 = b1 / norm[j] * SUM_ERR;
        b2 = b2 / norm[j] * SUM_ERR;
        c = c / norm[j] * SUM_ERR;
      } else {
        b1 = b2 = c = 0;
      }
      break;
    case BG_KNN_L2:
      b1 *= 2, b2 *= 2;
      c = 2 * c + 4 * U_F32 * norm[j];
      break;
    default:
      break;
    }
    float *o = bc + 3 * j;
    o[0] = up_f(b1 * FILTER_ERR);
    o[1] = up_f(b2 * FILTER_ERR);
    o[2] = b1 == 0 && b2 == 0 && c == 0 ? 0.0f : up_f((c + 0x1p-146) * FILTER_ERR);
  }
}

/* The blas backend's certificate. OpenBLAS's product a (dim products and sums per score, in an
 * order that depends on where the pair falls in its tiles, fused or not) and the blocked
 * kernel's dot (the same, in increasing t, one fused multiply-add a term) each differ from q.x by
 * at most gamma_dim |q| |x| + 2 D m (Higham, Accuracy and Stability of Numerical Algorithms, (3.5),
 * for any order; a flushed or gradual underflow adds at most m per operation). So the proof above
 * holds with no bf16 rounding (q~ = q, x~ = x: dq = dx = 0, R = 0, (1 + v) = 1), with G0 =
 * 2 gamma_dim, and with u, m and the denormal spacing s of the dtype (fp32: 2^-24, 2^-126,
 * 2^-149; f64: 2^-53, 2^-1022, 2^-1074): tau = 16 D m, 2^-146 = 8 s. The filter is
 * up = k + Q B1 + C (R B2 = +0 is not added: adding it is exact), with B1 = G X and C as above;
 * a pair with up <= thr cannot displace anything, so the blas backend folds exactly the keys the
 * blocked kernel folds, and its answers are the blocked kernel's, whatever its tiles. f64's
 * constants stay in double, where their few roundings of 2^-53 each are far inside the factor
 * 1 + 2^-10's surplus. Past G0 = 2^-6 (dim above 2^17 in fp32) the constants are infinite and
 * every pair is scored again. */
/* |row i| rounded up. Squares of f64 values below 2^-537 underflow (each loses less than 2^-1074,
 * and each sum as much again), which 2 dim 2^-1074 covers; f32 values square exactly in double. */
static double norm_up(const bg_knn_desc_t *d, const void *rows, size_t i) {
  double s = bg__knn_sq_norm(d, rows, i);
  if (d->dtype == BG_F64)
    s += 2 * (double)d->dim * 0x1p-1074;
  return sqrt(s) * SUM_ERR;
}

static void blas_rows_range(const bg_knn_desc_t *d, const void *norm, void *bc, size_t r0,
                            size_t r1) {
  int f64 = d->dtype == BG_F64;
  double u = f64 ? U_F64 : U_F32, m = f64 ? 0x1p-1022 : 0x1p-126, s = f64 ? 0x1p-1074 : 0x1p-149;
  double g0 = 2 * gamma_u((double)d->dim, u), g = g0 + 8 * u, tau = 16 * m * pad_dim(d->dim);
  for (size_t j = r0; j < r1; j++) {
    double x = norm_up(d, d->db, j), n = 0;
    if (norm)
      n = f64 ? ((const double *)norm)[j] : ((const float *)norm)[j];
    double b1 = g * x, c = tau;
    switch (d->metric) {
    case BG_KNN_COSINE:
      b1 = n > 0 ? b1 / n * SUM_ERR : 0;
      c = n > 0 ? c / n * SUM_ERR : 0;
      break;
    case BG_KNN_L2:
      b1 *= 2;
      c = 2 * c + 4 * u * n;
      break;
    default:
      break;
    }
    b1 *= FILTER_ERR;
    c = b1 == 0 && c == 0 ? 0 : (c + 8 * s) * FILTER_ERR;
    if (g0 > 0x1p-6)
      b1 = c = INFINITY;
    if (f64) {
      ((double *)bc)[2 * j] = b1;
      ((double *)bc)[2 * j + 1] = c;
    } else {
      ((float *)bc)[2 * j] = up_f(b1);
      ((float *)bc)[2 * j + 1] = up_f(c);
    }
  }
}

void bg__knn_blas_query(const bg_knn_desc_t *d, size_t i, void *q) {
  double n = norm_up(d, d->queries, i);
  if (d->dtype == BG_F64)
    *(double *)q = n;
  else
    *(float *)q = up_f(n);
}

/* The constants are computed on the pool, a chunk of rows per task: a pass over the database
 * that, on one thread, took as long as the search itself on shapes with few queries. */
#define ROWS_CHUNK 1024

typedef struct rows_job {
  const bg_knn_desc_t *d;
  const void *norm;
  void *bc;
  int blas;
} rows_job;

static int rows_task(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  const rows_job *j = ctx;
  size_t r0 = i * ROWS_CHUNK, r1 = r0 + ROWS_CHUNK < j->d->nb_txt ? r0 + ROWS_CHUNK : j->d->nb_txt;
  if (j->blas)
    blas_rows_range(j->d, j->norm, j->bc, r0, r1);
  else
    rows_range(j->d, j->norm, j->bc, r0, r1);
  return 0;
}

uint64_t bg__knn_bound_bytes(const bg_knn_desc_t *d, bg__knn_kind kind, size_t rows) {
  if (bg__knn_bf16_mode(d, kind))
    return (uint64_t)rows * 3 * sizeof(float);
  return kind == BG__KNN_BLAS ? (uint64_t)rows * 2 * (d->dtype == BG_F64 ? 8 : 4) : 0;
}

int bg__knn_bound_rows(bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind, const void *norm,
                       void *bc) {
  rows_job j = {d, norm, bc, kind == BG__KNN_BLAS};
  bg_map_desc_t m;
  bg_map_desc_init(&m);
  m.fn = rows_task, m.ctx = &j, m.n = (d->nb_txt + ROWS_CHUNK - 1) / ROWS_CHUNK;
  m.flags = BG_MAP_NO_HISTORY;
  return bg_map(pool, &m, NULL);
}
