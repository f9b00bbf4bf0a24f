/* SPDX-License-Identifier: MIT */
/* What every knn backend shares around its kernels: the check that refuses NaN, infinities and
 * scores that would overflow the dtype (its pass over the inputs is norms.c's); the running
 * top-k's start; and the turn of ranking keys into the metric's scores. */
#include "brigade/error.h"
#include "internal/knn.h"

#include <float.h>
#include <math.h>

/* Whether every value a kernel forms stays within the dtype, given the largest squared norms of
 * the queries (q2) and of the database (x2).
 *
 * The kernels compute q.x, then |x| and q.x / |x| (cosine) or |x|^2 and 2 q.x - |x|^2 (L2), in
 * the dtype. Past
 * FLT_MAX or DBL_MAX a value becomes inf, and inf - inf NaN: ip then ranks all-inf ties to the
 * first rows, and L2 and cosine leave queries with fewer than k results (index -1), all with
 * success. Refusing is chosen over rescuing: for ip and L2 the true scores past the range cannot
 * be written in the dtype at all, and avoiding the overflow for cosine would need a normalised
 * copy of the database (nb_txt x dim more memory) or a rescaled variant of every kernel, while
 * f64 answers the same question up to 1.8e308.
 *
 * The bound: every partial sum of q.x, in whatever order a backend adds (vector lanes, register
 * blocks, OpenBLAS's panels), is at most sum |q_t x_t| <= |q| |x| (Cauchy-Schwarz) grown by
 * rounding by at most (1 + u)^(dim + 2) <= exp((dim + 2) u), u the unit roundoff; |2 q.x - |x|^2|
 * is at most (|q| + |x|)^2 on the same terms. A factor of 2 more covers the key's last operations
 * and leaves the check far from the edge. Ordinary data is many orders of magnitude inside it:
 * f32 refuses only norms near 1e19. The squared norms are summed in double, so f64 rows whose
 * norm passes 1.3e154 are refused for every metric, ip included: a bound that stays simple
 * costs nothing on data of any real scale. */
int bg__knn_scores_fit(const bg_knn_desc_t *d, double q2, double x2) {
  double big = d->dtype == BG_F64 ? DBL_MAX : FLT_MAX;
  double u = (d->dtype == BG_F64 ? DBL_EPSILON : FLT_EPSILON) / 2;
  double grow = 2 * exp(((double)d->dim + 2) * u);
  double qn = sqrt(q2), xn = sqrt(x2);
  double bound = d->metric == BG_KNN_L2 ? (qn + xn) * (qn + xn) : qn * xn;
  if (d->metric == BG_KNN_COSINE) /* |x| is kept in the dtype, and q.x / |x| reaches |q| */
    bound = fmax(bound, fmax(qn, xn));
  return grow * bound <= big;
}

const char *bg__knn_overflow_why(bg_dtype_t t) {
  return t == BG_F64 ? "the scores overflow f64 (a norm, dot product or squared distance would "
                       "pass 1.8e308): rescale the data"
                     : "the scores overflow f32 (a norm, dot product or squared distance would "
                       "pass 3.4e38): use f64 or rescale the data";
}

/* Reads both inputs once (norms.c, on @pool): BG_EINVAL for NaN or infinity, BG_ERANGE when
 * scores could overflow. */
int bg__knn_check_values(bg_pool_t *pool, const bg_knn_desc_t *d) {
  double q2, x2;
  int rc = bg__knn_max_sq_norm(pool, d->db, d->nb_txt, d->dim, d->dtype, &x2);
  if (rc == 0)
    rc = bg__knn_max_sq_norm(pool, d->queries, d->nb_new, d->dim, d->dtype, &q2);
  if (rc != 0)
    return rc;
  return bg__knn_scores_fit(d, q2, x2) ? BG_OK : BG_ERANGE;
}

/* Starts every query's top-k empty: keys at -inf never beat a finite key, idx -1. */
void bg__knn_init_topk(const bg_knn_desc_t *d, void *keys) {
  size_t n = d->nb_new * d->k;
  for (size_t i = 0; i < n; i++) {
    d->idx[i] = -1;
    if (d->dtype == BG_F64)
      ((double *)keys)[i] = -INFINITY;
    else
      ((float *)keys)[i] = -INFINITY;
  }
}

/* Ranking keys to scores: cosine divides by |q|, L2 turns 2 q.x - |x|^2 into |q|^2 - key. */
void bg__knn_finish_scores(const bg_knn_desc_t *d) {
  if (!d->scores || d->metric == BG_KNN_IP)
    return;
  for (size_t i = 0; i < d->nb_new; i++) {
    double qq = bg__knn_sq_norm(d, d->queries, i);
    for (size_t r = 0; r < d->k; r++) {
      size_t at = i * d->k + r;
      double key = d->dtype == BG_F64 ? ((double *)d->scores)[at] : ((float *)d->scores)[at];
      double s = d->metric == BG_KNN_L2 ? qq - key : (qq > 0 ? key / sqrt(qq) : 0);
      if (d->dtype == BG_F64)
        ((double *)d->scores)[at] = s;
      else
        ((float *)d->scores)[at] = (float)s;
    }
  }
}

/* Every top-k slot filled. With finite keys (check_values) the first k database rows always
 * enter, so an empty slot (index -1, key -inf) means a key overflowed all the same: that is
 * reported as BG_ERANGE, never handed out as an index. */
int bg__knn_all_found(const bg_knn_desc_t *d) {
  for (size_t i = 0; i < d->nb_new * d->k; i++)
    if (d->idx[i] < 0)
      return 0;
  return 1;
}
