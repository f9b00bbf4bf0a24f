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
  uint64_t e = elem_size(d), qb = BG_KNN_QBLOCK_BYTES / e;
  switch (kind) {
  case BG__KNN_BLAS:
    return (uint64_t)tq * tdb * e;
  case BG__KNN_BLOCKED: /* the tile's queries, packed in whole blocks */
    return (tq + qb - 1) / qb * qb * d->dim * e;
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

int bg__knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                 bg_knn_plan_t *out) {
  unsigned w = pool->workers;
  uint64_t budget = d->mem_budget;
  if (budget == 0) {
    uint64_t avail;
    budget = bg_mem_available(&avail) == 0 ? avail / 2 : (uint64_t)1 << 30;
  }
  /* Query tiles: one per worker (up to 1024 queries for blocked, 512 for blas, whose score
   * tile grows with it), because each query tile streams the whole database from memory once
   * (and OpenBLAS packs it again), and fewer, longer passes were faster than the balance more
   * tiles would give when measured (docs/PERFORMANCE.md). */
  size_t tq = clamp((d->nb_new + w - 1) / w, 1, kind == BG__KNN_BLOCKED ? 1024 : 512);
  /* Database tiles. blocked: as many rows as fill half of L2, in whole register blocks, so
   * they stay cached while every query block of the tile passes over them; they are read in
   * place and cost no memory. blas: 4096 columns of scores per product, halved while the
   * score tiles do not fit the budget. */
  size_t tdb, tdb_min;
  if (kind == BG__KNN_BLOCKED) {
    uint64_t rows = l2_bytes() / 2 / (d->dim * elem_size(d));
    tdb = tdb_min = BG_KNN_RBLOCK;
    if (rows > BG_KNN_RBLOCK)
      tdb = clamp(rows / BG_KNN_RBLOCK * BG_KNN_RBLOCK, BG_KNN_RBLOCK, 4096);
  } else {
    tdb = 4096;
    tdb_min = 16;
  }
  tdb = tdb < d->nb_txt ? tdb : d->nb_txt;
  tdb_min = tdb_min < tdb ? tdb_min : tdb;
  uint64_t fixed = fixed_bytes(d, w);
  while (fixed + w * bg__knn_scratch_bytes(d, kind, tq, tdb) > budget && tq > 1) {
    if (kind == BG__KNN_BLAS && tdb > tdb_min)
      tdb = tdb / 2 > tdb_min ? tdb / 2 : tdb_min;
    else
      tq = tq / 2;
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
