/* SPDX-License-Identifier: MIT */
/* bg_knn: validate, plan, allocate within the plan, run one task per query tile on the pool,
 * then turn ranking keys into the metric's scores. */
#include "brigade/error.h"
#include "brigade/gpu.h"
#include "brigade/map.h"
#include "internal/dist.h"
#include "internal/knn.h"

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

/* auto: the blocked kernel wherever its AVX-512 build runs: it matched or beat OpenBLAS's
 * best sgemm alone (no top-k) on every lecture case measured (docs/PERFORMANCE.md). Without
 * AVX-512, OpenBLAS's tuned products when present, unless the dim is too small to amortise
 * their packing; else the portable blocked build. naive is only ever a baseline. */
/* Why "cuda" cannot run: not built (no nvcc at configure), no device or driver here (the
 * lecture's fallback is the caller's: auto stays on the CPU), or, with a GPU, because its
 * kernel has not been written yet (issue 6: it needs a GPU to be developed against). */
static int cuda_refusal(void) {
  bg_gpu_info_t g;
  int rc = bg_gpu_query(&g);
  return rc == BG_ENOTSUP || rc == BG_EUNAVAIL ? rc : BG_ENOTSUP;
}

int bg__knn_backend(const char *name, const bg_knn_desc_t *d, bg__knn_kind *out) {
  if (!name || !strcmp(name, "auto")) {
    *out = !use_avx512() && bg__blas_available() && d->dim >= 32 ? BG__KNN_BLAS : BG__KNN_BLOCKED;
    return BG_OK;
  }
  if (!strcmp(name, "naive"))
    *out = BG__KNN_NAIVE;
  else if (!strcmp(name, "blocked"))
    *out = BG__KNN_BLOCKED;
  else if (!strcmp(name, "blas"))
    *out = BG__KNN_BLAS;
  else if (!strcmp(name, "cuda"))
    return cuda_refusal();
  else
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
  rc = bg__knn_backend(d->backend, d, &kind);
  if (rc != 0)
    return rc;
  return bg__knn_plan(pool, d, kind, out);
}

static int all_finite(const void *v, size_t n, bg_dtype_t t) {
  if (t == BG_F64) {
    const double *x = v;
    for (size_t i = 0; i < n; i++)
      if (!isfinite(x[i]))
        return 0;
  } else {
    const float *x = v;
    for (size_t i = 0; i < n; i++)
      if (!isfinite(x[i]))
        return 0;
  }
  return 1;
}

/* |v|^2 of row i of a row-major array of the search's dtype, summed in double. */
static double sq_norm(const bg_knn_desc_t *d, const void *rows, size_t i) {
  double s = 0;
  for (size_t t = 0; t < d->dim; t++) {
    double v = d->dtype == BG_F64 ? ((const double *)rows)[i * d->dim + t]
                                  : ((const float *)rows)[i * d->dim + t];
    s += v * v;
  }
  return s;
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

static int tile_task(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  const bg__knn_ctx *c = ctx;
  size_t q0 = i * c->tile_q, q1 = q0 + c->tile_q;
  if (q1 > c->d->nb_new)
    q1 = c->d->nb_new;
  unsigned s = claim(c);
  char *scratch = c->scratch + (size_t)s * c->scratch_size;
  if (c->d->dtype == BG_F64)
    bg__knn_tile_f64(c, q0, q1, scratch);
  else
    bg__knn_tile_f32(c, q0, q1, scratch);
  /* Release pairs with the acquire in the next claim's compare-exchange (seq_cst). */
  atomic_store_explicit(&c->busy[s], 0, memory_order_release);
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

static int run(bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_ctx *c) {
  init_topk(d, c->keys);
  if (c->db_norm)
    db_norms(d, (void *)c->db_norm);
  int blas_threads = c->kind == BG__KNN_BLAS ? bg__blas_threads(1) : 0;
  bg_map_desc_t m;
  bg_map_desc_init(&m);
  m.fn = tile_task;
  m.ctx = c;
  m.n = (d->nb_new + c->tile_q - 1) / c->tile_q;
  int rc = bg_map(pool, &m, NULL);
  if (c->kind == BG__KNN_BLAS)
    bg__blas_threads(blas_threads);
  if (rc == 0)
    finish_scores(d);
  return rc;
}

int bg_knn(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  if (pool && d && pool->ops->collective)
    return d->version >= 2 ? bg__knn_mpi(pool, d, plan) : BG_EINVAL;
  bg_knn_plan_t p;
  int rc = bg_knn_plan(pool, d, &p);
  if (rc != 0) {
    if (rc == BG_ENOMEM && plan)
      *plan = p;
    return rc;
  }
  if (!all_finite(d->db, d->nb_txt * d->dim, d->dtype) ||
      !all_finite(d->queries, d->nb_new * d->dim, d->dtype))
    return BG_EINVAL;
  bg__knn_ctx c = {.d = d,
                   .tile_q = p.tile_q,
                   .tile_db = p.tile_db,
                   .nscratch = p.workers,
                   .avx512 = use_avx512()};
  bg__knn_backend(d->backend, d, &c.kind);
  c.scratch_size = (size_t)bg__knn_scratch_bytes(d, c.kind, p.tile_q, p.tile_db);
  /* Keep each worker's buffer on its own cache lines. */
  c.scratch_size = (c.scratch_size + BG_CACHELINE - 1) / BG_CACHELINE * BG_CACHELINE;
  size_t e = d->dtype == BG_F64 ? 8 : 4;
  const bg_allocator_t *a = &pool->alloc;
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
  if (rc == 0 && plan)
    *plan = p;
done:
  bg__pool_free(a, busy);
  bg__pool_free(a, scratch);
  bg__pool_free(a, own_keys);
  bg__pool_free(a, norm);
  return rc;
}
