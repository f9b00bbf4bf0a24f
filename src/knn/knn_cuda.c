/* SPDX-License-Identifier: MIT */
/* The cuda knn backend's host side: its plan against the device's free memory, whether auto
 * should send a shape to the GPU, and the device's rows (returned in index order) sorted best
 * first. Checks, norms and the keys-to-scores step are bg_knn's, shared with the CPU backends. */
#include "brigade/error.h"
#include "brigade/gpu.h"
#include "internal/gpu_knn.h"
#include "internal/knn.h"

#include <pthread.h>
#include <stdlib.h>

static bg__gpu_shape shape_of(const bg_knn_desc_t *d) {
  return (bg__gpu_shape){.nb_txt = d->nb_txt,
                         .nb_new = d->nb_new,
                         .dim = d->dim,
                         .k = d->k,
                         .elem = d->dtype == BG_F64 ? 8 : 4,
                         .norms = d->metric != BG_KNN_IP};
}

/* The device's free memory less a sixteenth, left to the driver and to other processes that
 * allocate meanwhile; mem_budget lowers it further. Host memory beyond the caller's arrays is
 * small here (norms, keys when the caller keeps no scores, one row for sorting). */
int bg__knn_cuda_plan(const bg_knn_desc_t *d, bg__gpu_plan *gp, bg_knn_plan_t *out) {
  bg__gpu_rates r;
  uint64_t free_b;
  int rc = bg__gpu_device(d->dtype == BG_F64, &free_b, &r);
  if (rc != 0)
    return rc;
  uint64_t budget = free_b - free_b / 16;
  if (d->mem_budget && d->mem_budget < budget)
    budget = d->mem_budget;
  bg__gpu_shape s = shape_of(d);
  rc = bg__gpu_plan_make(&s, budget, gp);
  *out = (bg_knn_plan_t){.backend = "cuda",
                         .precision = "exact",
                         .db_slices = 1,
                         .tile_q = gp->tq,
                         .tile_db = gp->tdb,
                         .workers = 1,
                         .bytes = gp->bytes,
                         .min_bytes = gp->min_bytes,
                         .budget = budget,
                         .why = gp->why};
  return rc;
}

/* Looked for once per process: a GPU, cuBLAS, and the GPU's measured upload bandwidth. */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_ok;
static double probe_h2d;

static void probe(void) {
  bg_gpu_info_t g;
  double d2h;
  probe_ok = bg_gpu_query(&g) == 0 && bg__gpu_blas_loads(NULL) &&
             bg_gpu_bandwidth(&probe_h2d, &d2h) == 0 && probe_h2d > 0;
}

/* A core's sustained rate in the blocked kernel, measured at 234 GFLOP/s f32 with AVX-512
 * (docs/PERFORMANCE.md) and taken a little low; about a quarter of that without. */
static double cpu_gflops(const bg_knn_desc_t *d, int avx512) {
  return (avx512 ? 200.0 : 50.0) / (d->dtype == BG_F64 ? 2 : 1);
}

int bg__knn_cuda_pays(const bg_knn_desc_t *d, unsigned workers, int avx512) {
  pthread_once(&probe_once, probe);
  if (!probe_ok)
    return 0;
  bg__gpu_rates r;
  uint64_t free_b;
  if (bg__gpu_device(d->dtype == BG_F64, &free_b, &r) != 0)
    return 0;
  r.h2d_gbps = probe_h2d;
  bg__gpu_shape s = shape_of(d);
  return bg__gpu_predict_s(&s, &r) < bg__cpu_predict_s(&s, workers, cpu_gflops(d, avx512));
}

typedef struct ranked {
  double key;
  int64_t idx;
} ranked;

/* Best first: larger keys, then lower indices (the rows arrive in index order, but a sort
 * that is not stable needs the index to keep ties on the lowest one). */
static int by_rank(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->key != y->key)
    return x->key > y->key ? -1 : 1;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

void bg__knn_cuda_sort(const bg_knn_desc_t *d, void *keys, void *scratch) {
  ranked *tmp = scratch;
  for (size_t i = 0; i < d->nb_new; i++) {
    int64_t *ir = d->idx + i * d->k;
    for (size_t r = 0; r < d->k; r++)
      tmp[r] = (ranked){d->dtype == BG_F64 ? ((double *)keys)[i * d->k + r]
                                           : (double)((float *)keys)[i * d->k + r],
                        ir[r]};
    qsort(tmp, d->k, sizeof *tmp, by_rank);
    for (size_t r = 0; r < d->k; r++) {
      ir[r] = tmp[r].idx;
      if (d->dtype == BG_F64)
        ((double *)keys)[i * d->k + r] = tmp[r].key;
      else
        ((float *)keys)[i * d->k + r] = (float)tmp[r].key;
    }
  }
}

int bg__knn_cuda_run(const bg_knn_desc_t *d, const bg__gpu_plan *gp, const void *norm, void *keys,
                     const bg_allocator_t *a, const char **why) {
  ranked *tmp = bg__pool_alloc(a, d->k * sizeof *tmp);
  if (!tmp) {
    *why = "no host memory for sorting one row of results";
    return BG_ENOMEM;
  }
  int rc = bg__gpu_knn(d, gp, norm, keys, d->version >= 3 ? d->times : NULL, why);
  if (rc == 0)
    bg__knn_cuda_sort(d, keys, tmp);
  bg__pool_free(a, tmp);
  return rc;
}
