/* SPDX-License-Identifier: MIT */
/* The memory-wall planner: turns (nb_txt, dim, nb_new, k, dtype, budget, workers) into tile
 * sizes before anything is allocated. Scores only ever exist one tile per worker at a time, so
 * the lecture's 37 GiB score matrix becomes a few MiB; when even the smallest tiles do not fit
 * the budget the search is refused with the number of bytes it would need. */
#include "brigade/error.h"
#include "internal/knn.h"

#include <unistd.h>

/* Bytes of one L2 cache, for sizing the blocked backend's packed database tile. */
static uint64_t l2_bytes(void) {
  long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return v > 0 ? (uint64_t)v : 1u << 20;
}

static size_t elem_size(const bg_knn_desc_t *d) {
  return d->dtype == BG_F64 ? sizeof(double) : sizeof(float);
}

uint64_t bg__knn_scratch_bytes(const bg_knn_desc_t *d, bg__knn_kind kind, size_t tq, size_t tdb) {
  uint64_t e = elem_size(d), vlen = 64 / e;
  switch (kind) {
  case BG__KNN_BLAS:
    return (uint64_t)tq * tdb * e;
  case BG__KNN_BLOCKED: /* a padded query block, then the packed database tile */
    return (BG_KNN_QBLOCK + (tdb + vlen - 1) / vlen * vlen) * d->dim * e;
  default:
    return 0;
  }
}

/* Memory that does not depend on the tiles: database norms, running keys when the caller keeps
 * no scores, and the scratch-claim flags. */
static uint64_t fixed_bytes(const bg_knn_desc_t *d, unsigned workers) {
  uint64_t e = elem_size(d), b = workers * (uint64_t)sizeof(int) + 4 * BG_CACHELINE;
  if (d->metric != BG_KNN_IP)
    b += (uint64_t)d->nb_txt * e;
  if (!d->scores)
    b += (uint64_t)d->nb_new * d->k * e;
  return b;
}

static size_t clamp(size_t v, size_t lo, size_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Half of a database tile, kept a multiple of the panel width so that only the last panel of
 * the database is ever padded. */
static size_t halve(size_t tdb, size_t multiple, size_t lo) {
  size_t h = tdb / 2 / multiple * multiple;
  return h > lo ? h : lo;
}

int bg__knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                 bg_knn_plan_t *out) {
  unsigned w = pool->workers;
  uint64_t budget = d->mem_budget;
  if (budget == 0) {
    uint64_t avail;
    budget = bg_mem_available(&avail) == 0 ? avail / 2 : (uint64_t)1 << 30;
  }
  size_t vlen = 64 / elem_size(d);
  /* Query tiles. blas: about four per worker, so unequal tiles balance. blocked: one per
   * worker (up to 1024 queries), because every query tile packs the whole database again, a
   * pass over memory that cost more than the balance gained when measured (docs/PERFORMANCE.md),
   * and in whole register blocks, so only the last tile may end in a short (padded) block. */
  size_t tq;
  if (kind == BG__KNN_BLOCKED) {
    tq = clamp((d->nb_new + w - 1) / w, 1, 1024);
    tq = (tq + BG_KNN_QBLOCK - 1) / BG_KNN_QBLOCK * BG_KNN_QBLOCK;
  } else {
    tq = clamp((d->nb_new + 4 * (size_t)w - 1) / (4 * (size_t)w), 1, 512);
  }
  size_t tdb_min = kind == BG__KNN_BLOCKED ? vlen : 16, tdb;
  if (kind == BG__KNN_BLOCKED) {
    uint64_t rows = l2_bytes() / 2 / (d->dim * elem_size(d));
    tdb = clamp(rows / vlen * vlen, vlen, 4096);
  } else {
    tdb = 4096;
  }
  tdb = tdb < d->nb_txt ? tdb : d->nb_txt;
  tdb_min = tdb_min < tdb ? tdb_min : tdb;
  uint64_t fixed = fixed_bytes(d, w);
  while (fixed + w * bg__knn_scratch_bytes(d, kind, tq, tdb) > budget &&
         (tdb > tdb_min || tq > 1)) {
    if (tdb > tdb_min)
      tdb = halve(tdb, kind == BG__KNN_BLOCKED ? vlen : 1, tdb_min);
    else
      tq = tq / 2 ? tq / 2 : 1;
  }
  *out = (bg_knn_plan_t){
      .backend = kind == BG__KNN_BLAS      ? "blas"
                 : kind == BG__KNN_BLOCKED ? "blocked"
                                           : "naive",
      .tile_q = tq,
      .tile_db = tdb,
      .workers = w,
      .bytes = fixed + w * bg__knn_scratch_bytes(d, kind, tq, tdb),
      .min_bytes = fixed + w * bg__knn_scratch_bytes(d, kind, 1, tdb_min),
      .budget = budget,
  };
  return out->min_bytes > budget ? BG_ENOMEM : BG_OK;
}
