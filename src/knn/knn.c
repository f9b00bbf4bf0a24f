/* SPDX-License-Identifier: MIT */
/* bg_knn: validate, plan, allocate within the plan, run one task per query tile on the pool,
 * then turn ranking keys into the metric's scores. */
#include "brigade/error.h"
#include "brigade/gpu.h"
#include "brigade/map.h"
#include "brigade/topo.h"
#include "internal/clock.h"
#include "internal/dist.h"
#include "internal/gpu_knn.h"
#include "internal/knn.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void bg_knn_desc_init(bg_knn_desc_t *d) {
  memset(d, 0, sizeof *d);
  d->version = BG_KNN_DESC_VERSION;
  d->backend = "auto";
}

const char *bg_knn_metric_name(bg_knn_metric_t m) {
  static const char *const names[] = {"ip", "cosine", "l2"};
  return (unsigned)m < BG_KNN_METRIC_COUNT_ ? names[m] : "?";
}

const char *bg_dtype_name(bg_dtype_t t) {
  return t == BG_F32 ? "f32" : t == BG_F64 ? "f64" : "?";
}

int bg_knn_backend_available(const char *name) {
  if (!name)
    return 0;
  if (!strcmp(name, "blas"))
    return bg__blas_available();
  if (!strcmp(name, "cuda")) {
    bg_gpu_info_t g;
    return bg_gpu_query(&g) != BG_ENOTSUP;
  }
  return !strcmp(name, "naive") || !strcmp(name, "blocked") || !strcmp(name, "auto");
}

/* Whether OpenBLAS runs an AVX-512 kernel on a CPU that has AVX-512. OPENBLAS_CORETYPE=Haswell
 * (set in some environments) forces its AVX2 kernels and halves its speed there; the blocked
 * backend, which picks its own kernel, does not depend on it. */
int bg_knn_blas_degraded(void) {
  const char *core = bg__blas_corename();
  if (!core || !__builtin_cpu_supports("avx512f"))
    return 0;
  return !strstr(core, "SkylakeX") && !strstr(core, "Cooperlake") && !strstr(core, "Sapphire");
}

/* The AVX-512 build of the blocked kernel when the CPU has AVX-512 and FMA, unless
 * BRIGADE_KNN_ISA=generic asks for the portable build (to compare them, or to test it on an
 * AVX-512 machine). */
static int use_avx512(void) {
  const char *isa = getenv("BRIGADE_KNN_ISA");
  if (isa && !strcmp(isa, "generic"))
    return 0;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

/* auto: the GPU when one is present and predicted to finish first, transfers included
 * (knn_cuda.c); else the blocked kernel wherever its AVX-512 build runs: it matched or beat
 * OpenBLAS's best sgemm alone (no top-k) on every lecture case measured (docs/PERFORMANCE.md).
 * Without AVX-512, OpenBLAS's tuned products when present, unless the dim is too small to
 * amortise their packing; else the portable blocked build. naive is only ever a baseline. */
static int is_auto(const char *name) {
  return !name || !strcmp(name, "auto");
}

static bg__knn_kind cpu_auto(const bg_knn_desc_t *d) {
  return !use_avx512() && bg__blas_available() && d->dim >= 32 ? BG__KNN_BLAS : BG__KNN_BLOCKED;
}

int bg__knn_backend(const char *name, const bg_knn_desc_t *d, unsigned workers, bg__knn_kind *out) {
  if (is_auto(name)) {
    *out = bg__knn_cuda_pays(d, workers, use_avx512()) ? BG__KNN_CUDA : cpu_auto(d);
    return BG_OK;
  }
  if (!strcmp(name, "naive"))
    *out = BG__KNN_NAIVE;
  else if (!strcmp(name, "blocked"))
    *out = BG__KNN_BLOCKED;
  else if (!strcmp(name, "blas"))
    *out = BG__KNN_BLAS;
  else if (!strcmp(name, "cuda")) {
    /* Not built (no nvcc at configure: BG_ENOTSUP) or no device or driver here (BG_EUNAVAIL;
     * bg_gpu_query says why). */
    bg_gpu_info_t g;
    int rc = bg_gpu_query(&g);
    *out = BG__KNN_CUDA;
    return rc;
  } else
    return BG_ENOENT;
  return *out == BG__KNN_BLAS && !bg__blas_available() ? BG_ENOTSUP : BG_OK;
}

static int mul_ok(size_t a, size_t b, size_t *r) {
  return !__builtin_mul_overflow(a, b, r);
}

static int check_desc(const bg_knn_desc_t *d) {
  if (d->version == 0 || d->version > BG_KNN_DESC_VERSION)
    return BG_EINVAL;
  if ((unsigned)d->dtype >= BG_DTYPE_COUNT_ || (unsigned)d->metric >= BG_KNN_METRIC_COUNT_)
    return BG_EINVAL;
  if (!d->db || !d->queries || !d->idx || d->dim == 0 || d->nb_txt == 0 || d->k == 0 ||
      d->k > d->nb_txt)
    return BG_EINVAL;
  size_t e = d->dtype == BG_F64 ? 8 : 4, a, b;
  if (!mul_ok(d->nb_txt, d->dim, &a) || !mul_ok(a, e, &a) || !mul_ok(d->nb_new, d->dim, &b) ||
      !mul_ok(b, e, &b) || !mul_ok(d->nb_new, d->k, &b) || !mul_ok(b, 8, &b) ||
      d->nb_txt > (size_t)INT64_MAX || d->dim > 0x7fffffff)
    return BG_ERANGE;
  return BG_OK;
}

int bg_knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *out) {
  if (!pool || !d || !out)
    return BG_EINVAL;
  int rc = check_desc(d);
  if (rc != 0)
    return rc;
  bg__knn_kind kind;
  rc = bg__knn_backend(d->backend, d, pool->workers, &kind);
  if (rc != 0)
    return rc;
  if (kind == BG__KNN_CUDA) {
    bg__gpu_plan gp;
    rc = bg__knn_cuda_plan(d, &gp, out);
    /* auto's GPU cannot plan this search (k past its selection's range, too little device
     * memory): the CPU, which plans against host memory, takes it. */
    if (rc == 0 || !is_auto(d->backend))
      return rc;
    kind = cpu_auto(d);
  }
  return bg__knn_plan(pool, d, kind, out);
}

/* |v|^2 of one row, in double: exact enough for a bound, and unable to overflow for f32 rows
 * (dim < 2^31 squares of at most 3.4e38 stay below 1e87). Four sums let the loop vectorise. */
static double row_sq_f32(const float *r, size_t dim) {
  double a[4] = {0, 0, 0, 0};
  size_t t = 0;
  for (; t + 4 <= dim; t += 4)
    for (size_t l = 0; l < 4; l++)
      a[l] += (double)r[t + l] * r[t + l];
  for (; t < dim; t++)
    a[0] += (double)r[t] * r[t];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

static double row_sq_f64(const double *r, size_t dim) {
  double a[4] = {0, 0, 0, 0};
  size_t t = 0;
  for (; t + 4 <= dim; t += 4)
    for (size_t l = 0; l < 4; l++)
      a[l] += r[t + l] * r[t + l];
  for (; t < dim; t++)
    a[0] += r[t] * r[t];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

static int row_finite(const void *rows, size_t i, size_t dim, bg_dtype_t t) {
  for (size_t j = 0; j < dim; j++)
    if (!isfinite(t == BG_F64 ? ((const double *)rows)[i * dim + j]
                              : (double)((const float *)rows)[i * dim + j]))
      return 0;
  return 1;
}

/* The largest |v|^2 over the rows, in double, in the same pass that looks for NaN and
 * infinities: a row whose sum is not finite is read again to tell a bad value (BG_EINVAL) from
 * finite f64 values whose squares pass DBL_MAX (+inf, which scores_fit() refuses). */
static int max_sq_norm(const void *v, size_t rows, size_t dim, bg_dtype_t t, double *out) {
  double m = 0;
  for (size_t i = 0; i < rows; i++) {
    double s = t == BG_F64 ? row_sq_f64((const double *)v + i * dim, dim)
                           : row_sq_f32((const float *)v + i * dim, dim);
    if (!isfinite(s) && !row_finite(v, i, dim, t))
      return BG_EINVAL;
    if (s > m)
      m = s;
  }
  *out = m;
  return BG_OK;
}

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
static int scores_fit(const bg_knn_desc_t *d, double q2, double x2) {
  double big = d->dtype == BG_F64 ? DBL_MAX : FLT_MAX;
  double u = (d->dtype == BG_F64 ? DBL_EPSILON : FLT_EPSILON) / 2;
  double grow = 2 * exp(((double)d->dim + 2) * u);
  double qn = sqrt(q2), xn = sqrt(x2);
  double bound = d->metric == BG_KNN_L2 ? (qn + xn) * (qn + xn) : qn * xn;
  if (d->metric == BG_KNN_COSINE) /* |x| is kept in the dtype, and q.x / |x| reaches |q| */
    bound = fmax(bound, fmax(qn, xn));
  return grow * bound <= big;
}

static const char *overflow_why(bg_dtype_t t) {
  return t == BG_F64 ? "the scores overflow f64 (a norm, dot product or squared distance would "
                       "pass 1.8e308): rescale the data"
                     : "the scores overflow f32 (a norm, dot product or squared distance would "
                       "pass 3.4e38): use f64 or rescale the data";
}

/* Reads both inputs once: BG_EINVAL for NaN or infinity, BG_ERANGE when scores could overflow. */
static int check_values(const bg_knn_desc_t *d) {
  double q2, x2;
  if (max_sq_norm(d->db, d->nb_txt, d->dim, d->dtype, &x2) != 0 ||
      max_sq_norm(d->queries, d->nb_new, d->dim, d->dtype, &q2) != 0)
    return BG_EINVAL;
  return scores_fit(d, q2, x2) ? BG_OK : BG_ERANGE;
}

/* |v|^2 of row i of a row-major array of the search's dtype, summed in double. */
static double sq_norm(const bg_knn_desc_t *d, const void *rows, size_t i) {
  return d->dtype == BG_F64 ? row_sq_f64((const double *)rows + i * d->dim, d->dim)
                            : row_sq_f32((const float *)rows + i * d->dim, d->dim);
}

/* |x|^2 for L2, |x| for cosine, of database row j (in the inputs' type). */
static void db_norms(const bg_knn_desc_t *d, void *norm) {
  for (size_t j = 0; j < d->nb_txt; j++) {
    double s = sq_norm(d, d->db, j);
    double r = d->metric == BG_KNN_COSINE ? sqrt(s) : s;
    if (d->dtype == BG_F64)
      ((double *)norm)[j] = r;
    else
      ((float *)norm)[j] = (float)r;
  }
}

/* Claims a free scratch buffer. At most nscratch tasks run at once (one per worker), so one is
 * always free. */
static unsigned claim(const bg__knn_ctx *c) {
  for (;;) {
    for (unsigned s = 0; s < c->nscratch; s++) {
      int expected = 0;
      if (atomic_compare_exchange_strong(&c->busy[s], &expected, 1))
        return s;
    }
  }
}

static void run_tile(const bg__knn_ctx *c, size_t i, char *scratch) {
  size_t q0 = i * c->tile_q, q1 = q0 + c->tile_q;
  if (q1 > c->d->nb_new)
    q1 = c->d->nb_new;
  if (c->d->dtype == BG_F64)
    bg__knn_tile_f64(c, q0, q1, scratch);
  else
    bg__knn_tile_f32(c, q0, q1, scratch);
}

static int tile_task(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  const bg__knn_ctx *c = ctx;
  unsigned s = claim(c);
  run_tile(c, i, c->scratch + (size_t)s * c->scratch_size);
  /* Release pairs with the acquire in the next claim's compare-exchange (seq_cst). */
  atomic_store_explicit(&c->busy[s], 0, memory_order_release);
  return 0;
}

/* When the plan allows fewer tiles at once than the pool has workers (blas under RLIMIT_AS),
 * each of nscratch lanes takes every nscratch-th tile with its own scratch buffer, so no more
 * than nscratch products run at once and no worker spins in claim() waiting for a buffer. */
static int lane_task(void *out, const void *in, size_t lane, void *ctx) {
  (void)out, (void)in;
  const bg__knn_ctx *c = ctx;
  for (size_t i = lane; i < c->ntiles; i += c->nscratch)
    run_tile(c, i, c->scratch + lane * c->scratch_size);
  return 0;
}

/* Starts every query's top-k empty: keys at -inf never beat a finite key, idx -1. */
static void init_topk(const bg_knn_desc_t *d, void *keys) {
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
static void finish_scores(const bg_knn_desc_t *d) {
  if (!d->scores || d->metric == BG_KNN_IP)
    return;
  for (size_t i = 0; i < d->nb_new; i++) {
    double qq = sq_norm(d, d->queries, i);
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
static int all_found(const bg_knn_desc_t *d) {
  for (size_t i = 0; i < d->nb_new * d->k; i++)
    if (d->idx[i] < 0)
      return 0;
  return 1;
}

static int run(bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_ctx *c) {
  init_topk(d, c->keys);
  if (c->db_norm)
    db_norms(d, (void *)c->db_norm);
  int blas_threads = c->kind == BG__KNN_BLAS ? bg__blas_threads(1) : 0;
  bg_map_desc_t m;
  bg_map_desc_init(&m);
  m.ctx = c;
  c->ntiles = (d->nb_new + c->tile_q - 1) / c->tile_q;
  int lanes = c->nscratch < pool->workers && c->nscratch < c->ntiles;
  m.fn = lanes ? lane_task : tile_task;
  m.n = lanes ? c->nscratch : c->ntiles;
  int rc = bg_map(pool, &m, NULL);
  if (c->kind == BG__KNN_BLAS)
    bg__blas_threads(blas_threads);
  if (rc == 0 && !all_found(d))
    return BG_ERANGE;
  if (rc == 0)
    finish_scores(d);
  return rc;
}

/* The GPU's search: norms and result keys on the host as for the CPU backends, the tiles on the
 * device (knn_cuda.c). A CUDA failure leaves its message in p->why. */
static int run_cuda(const bg_allocator_t *a, const bg_knn_desc_t *d, bg_knn_plan_t *p) {
  bg__gpu_plan gp;
  int rc = bg__knn_cuda_plan(d, &gp, p);
  if (rc != 0)
    return rc;
  size_t e = d->dtype == BG_F64 ? 8 : 4;
  void *norm = NULL, *own_keys = NULL;
  rc = BG_ENOMEM;
  p->why = "no host memory for the database's norms or the result keys";
  if (d->metric != BG_KNN_IP && !(norm = bg__pool_alloc(a, d->nb_txt * e)))
    goto done;
  if (!d->scores && !(own_keys = bg__pool_alloc(a, d->nb_new * d->k * e)))
    goto done;
  if (norm)
    db_norms(d, norm);
  p->why = NULL;
  rc = bg__knn_cuda_run(d, &gp, norm, d->scores ? d->scores : own_keys, a, &p->why);
  if (rc == 0 && !all_found(d)) {
    rc = BG_ERANGE;
    p->why = overflow_why(d->dtype);
  }
  if (rc == 0)
    finish_scores(d);
done:
  bg__pool_free(a, own_keys);
  bg__pool_free(a, norm);
  return rc;
}

/* Host memory the centred copies of L2 may take: what the budget leaves beside a CPU plan; for
 * the GPU, whose plan counts device memory, the budget or half the host's available memory. */
static uint64_t centre_room(const bg_knn_desc_t *d, const bg_knn_plan_t *p) {
  if (strcmp(p->backend, "cuda"))
    return p->budget > p->bytes ? p->budget - p->bytes : 0;
  uint64_t avail;
  if (d->mem_budget)
    return d->mem_budget;
  return bg_mem_available(&avail) == 0 ? avail / 2 : (uint64_t)1 << 30;
}

static int search(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan);

int bg_knn(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  uint64_t t0 = bg__now_ns();
  int rc = search(pool, d, plan);
  if (rc == 0 && d->version >= 3 && d->times)
    d->times->wall_s = (double)(bg__now_ns() - t0) / 1e9;
  return rc;
}

static int search(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  if (pool && d && pool->ops->collective)
    return d->version >= 2 ? bg__knn_mpi(pool, d, plan) : BG_EINVAL;
  if (d && d->version >= 3 && d->times)
    *d->times = (bg_knn_times_t){0};
  bg_knn_plan_t p;
  int rc = bg_knn_plan(pool, d, &p);
  if (rc != 0) {
    if ((rc == BG_ENOMEM || rc == BG_ERANGE) && plan)
      *plan = p;
    return rc;
  }
  /* Before anything is allocated or searched: one pass over the inputs. */
  rc = check_values(d);
  if (rc != 0) {
    if (rc == BG_ERANGE && plan) {
      p.why = overflow_why(d->dtype);
      *plan = p;
    }
    return rc;
  }
  /* L2 far from the origin runs on centred copies (centre.c), within what the plan left. */
  const bg_allocator_t *a = &pool->alloc;
  bg_knn_desc_t centred;
  void *copy = NULL;
  rc = bg__knn_centre(d, a, centre_room(d, &p), &centred, &copy);
  if (rc != 0) {
    p.why = "the vectors lie far from the origin for their spread, and the centred copies L2 "
            "then searches do not fit the budget: subtract their mean first, or raise the budget";
    if (plan)
      *plan = p;
    return rc;
  }
  d = &centred;
  if (!strcmp(p.backend, "cuda")) {
    rc = run_cuda(a, d, &p);
    /* auto's GPU failing at run time (a device fault, cuBLAS that does not load) leaves the
     * CPU to answer; an explicit "cuda" reports the failure. */
    int to_cpu = rc == BG_EUNAVAIL && is_auto(d->backend);
    if (to_cpu)
      rc = bg__knn_plan(pool, d, cpu_auto(d), &p);
    if (!to_cpu || rc != 0) {
      if (plan && (rc == 0 || p.why))
        *plan = p;
      bg__pool_free(a, copy);
      return rc;
    }
  }
  bg__knn_ctx c = {.d = d,
                   .tile_q = p.tile_q,
                   .tile_db = p.tile_db,
                   .nscratch = p.workers,
                   .avx512 = use_avx512()};
  bg__knn_backend(p.backend, d, pool->workers, &c.kind);
  c.scratch_size = (size_t)bg__knn_scratch_bytes(d, c.kind, p.tile_q, p.tile_db);
  /* Keep each worker's buffer on its own cache lines. */
  c.scratch_size = (c.scratch_size + BG_CACHELINE - 1) / BG_CACHELINE * BG_CACHELINE;
  size_t e = d->dtype == BG_F64 ? 8 : 4;
  void *norm = NULL, *own_keys = NULL, *scratch = NULL, *busy = NULL;
  rc = BG_ENOMEM;
  if (d->metric != BG_KNN_IP && !(norm = bg__pool_alloc(a, d->nb_txt * e)))
    goto done;
  if (!d->scores && !(own_keys = bg__pool_alloc(a, d->nb_new * d->k * e)))
    goto done;
  if (c.scratch_size && !(scratch = bg__pool_alloc(a, c.scratch_size * p.workers)))
    goto done;
  if (!(busy = bg__pool_alloc(a, p.workers * sizeof(_Atomic int))))
    goto done;
  c.db_norm = norm;
  c.keys = d->scores ? d->scores : own_keys;
  c.scratch = scratch;
  c.busy = busy;
  for (unsigned s = 0; s < p.workers; s++)
    atomic_init(&c.busy[s], 0);
  rc = run(pool, d, &c);
  if (rc == BG_ERANGE)
    p.why = overflow_why(d->dtype);
done:
  if (rc == BG_ENOMEM)
    p.why = "an allocation within the plan failed (the memory available shrank since it was "
            "measured, or the pool's allocator refused)";
  if ((rc == 0 || rc == BG_ENOMEM || rc == BG_ERANGE) && plan)
    *plan = p;
  bg__pool_free(a, busy);
  bg__pool_free(a, scratch);
  bg__pool_free(a, own_keys);
  bg__pool_free(a, norm);
  bg__pool_free(a, copy);
  return rc;
}
