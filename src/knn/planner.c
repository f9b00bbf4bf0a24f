/* SPDX-License-Identifier: MIT */
/* The memory-wall planner: turns (nb_txt, dim, nb_new, k, dtype, budget, workers) into tile
 * sizes before anything is allocated. Scores only ever exist one tile per worker at a time, so
 * the lecture's 37 GiB score matrix becomes a few MiB; when even the smallest tiles do not fit
 * the budget the search is refused with the number of bytes it would need. For blas it also
 * counts OpenBLAS's per-thread work buffers against the address space RLIMIT_AS leaves. */
#include "brigade/error.h"
#include "internal/cgroup.h"
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
  case BG__KNN_BLAS: /* the tile's scores, and its queries' norms for the certificate */
    return (uint64_t)tq * tdb * e + tq * e;
  case BG__KNN_BLOCKED: /* the tile's queries, packed in whole blocks (bf16: and more) */
    if (bg__knn_bf16_mode(d, kind))
      return bg__knn_bf16_scratch_bytes(tq, tdb, d->dim);
    return (tq + qb - 1) / qb * qb * d->dim * e;
  default:
    return 0;
  }
}

/* Memory that does not depend on the tiles: database norms (and the certificates' constants),
 * running keys when the caller keeps no scores, and the scratch-claim flags. */
static uint64_t fixed_bytes(const bg_knn_desc_t *d, bg__knn_kind kind, unsigned workers) {
  uint64_t e = elem_size(d), b = workers * (uint64_t)sizeof(int) + 4 * BG_CACHELINE;
  if (d->metric != BG_KNN_IP)
    b += (uint64_t)d->nb_txt * e;
  b += bg__knn_bound_bytes(d, kind, d->nb_txt);
  if (!d->scores)
    b += (uint64_t)d->nb_new * d->k * e;
  return b;
}

static size_t clamp(size_t v, size_t lo, size_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Address space kept free beside the plan under RLIMIT_AS, for what the search maps that no plan
 * counts: a worker's first malloc arena, the map's bookkeeping. Running short there costs a
 * clean BG_ENOMEM from malloc; running short for OpenBLAS costs a hang, so this errs high. */
#define AS_SLACK ((uint64_t)32 << 20)

/* Database tiles. blocked: as many rows as fill half of L2, in whole register blocks, so they
 * stay cached while every query block of the tile passes over them; they are read in place and
 * cost no memory. blas: 4096 columns of scores per product, halved while the score tiles do not
 * fit the budget. */
static void db_tiles(const bg_knn_desc_t *d, bg__knn_kind kind, size_t *tdb, size_t *tdb_min) {
  if (kind == BG__KNN_BLOCKED) {
    uint64_t rows = l2_bytes() / 2 / (d->dim * elem_size(d));
    *tdb = *tdb_min = BG_KNN_RBLOCK;
    if (rows > BG_KNN_RBLOCK)
      *tdb = clamp(rows / BG_KNN_RBLOCK * BG_KNN_RBLOCK, BG_KNN_RBLOCK, 4096);
  } else {
    *tdb = 4096;
    *tdb_min = 16;
  }
  *tdb = *tdb < d->nb_txt ? *tdb : d->nb_txt;
  *tdb_min = *tdb_min < *tdb ? *tdb_min : *tdb;
}

/* The least address space w products at once need: brigade's smallest plan and one OpenBLAS
 * buffer per product. */
static uint64_t blas_least(const bg_knn_desc_t *d, unsigned w, size_t tdb_min) {
  return fixed_bytes(d, BG__KNN_BLAS, w) +
         w * (bg__knn_scratch_bytes(d, BG__KNN_BLAS, 1, tdb_min) + bg__blas_buffer_bytes());
}

/* How many products the blas backend may run at once within @as bytes of address space: every
 * brigade worker that multiplies makes OpenBLAS map a buffer of its own (brigade holds OpenBLAS
 * to one thread, so its pool threads take no part), and an mmap that fails inside OpenBLAS is
 * retried forever. Buffers a previous search mapped are already in VmSize and are counted again:
 * OpenBLAS does not say which it holds, and counting high only costs workers under a limit. */
static unsigned blas_fit(const bg_knn_desc_t *d, unsigned w, size_t tdb_min, uint64_t as) {
  if (as == UINT64_MAX)
    return w;
  while (w > 0 && blas_least(d, w, tdb_min) + AS_SLACK > as)
    w--;
  return w;
}

/* Slices smaller than this many rows are not worth a task of their own: each task packs all
 * the queries again. */
#define SLICE_MIN_ROWS 64

/* Searches of fewer multiply-adds than this run on the caller alone: waking a worker and
 * waiting for it costs more than it saves. Measured on a 2-core Zen 1 (blocked, AVX2): 200 x 8
 * x 4 took 5.2 us on one worker and 9.3 us on two, 1000 x 16 x 10 33 and 42 us, and the two
 * tied near 1000 x 100 x 10 (1e6); a faster core only moves the tie higher. */
#define INLINE_FMAS ((double)(1 << 19))

/* Lanes the blocked kernel computes for a tile of n queries: whole blocks of QB, then the last
 * block's queries rounded up to whole vectors of its build (32 bytes with AVX2, 64 otherwise).
 * naive and blas compute no padding. */
static uint64_t lanes(const bg_knn_desc_t *d, bg__knn_kind kind, size_t n) {
  if (kind != BG__KNN_BLOCKED)
    return n;
  size_t e = elem_size(d), qb = BG_KNN_QBLOCK_BYTES / e;
  size_t unit = (bg__knn_isa_here() == BG__ISA_AVX2 ? 32 : 64) / e;
  return (uint64_t)n / qb * qb + (n % qb + unit - 1) / unit * unit;
}

/* Database slices (plan->db_slices, slices.c): one per worker when every worker taking all the
 * queries against a slice of the database computes at least 3% fewer lanes a worker than the
 * query tiles @tq would (the merge and the packing of every query in every slice cost the rest).
 * That is when the tiles leave workers idle (fewer queries than workers) or pad their last
 * vectors (100 queries on two AVX2 workers: 56 lanes a worker for 50 queries, against 52 for
 * all 100 on half the database). */
static unsigned db_slices(const bg_knn_desc_t *d, bg__knn_kind kind, unsigned w, size_t tq,
                          size_t tq_max) {
  if (w < 2 || d->nb_new > tq_max || d->nb_txt < (uint64_t)w * SLICE_MIN_ROWS)
    return 1;
  uint64_t tiles = (d->nb_new + tq - 1) / tq, rounds = (tiles + w - 1) / w;
  uint64_t by_queries = rounds * lanes(d, kind, tq) * w, by_db = lanes(d, kind, d->nb_new);
  return by_db * 100 <= by_queries * 97 ? w : 1;
}

/* Plans within @budget; *shrunk says whether the tiles had to shrink to fit it. */
static int plan_in(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                   uint64_t budget, bg_knn_plan_t *out, int *shrunk) {
  const char *name = kind == BG__KNN_BLAS ? "blas" : kind == BG__KNN_BLOCKED ? "blocked" : "naive";
  unsigned w = pool->workers;
  if ((double)d->nb_txt * (double)d->nb_new * (double)d->dim < INLINE_FMAS)
    w = 1;
  *shrunk = 0;
  size_t tdb, tdb_min;
  db_tiles(d, kind, &tdb, &tdb_min);
  uint64_t blas = 0;
  if (kind == BG__KNN_BLAS) {
    uint64_t as;
    bg__mem_as_headroom(&as);
    unsigned fit = blas_fit(d, w, tdb_min, as);
    if (fit == 0) {
      *out = (bg_knn_plan_t){
          .backend = name,
          .workers = 1,
          .tile_q = 1,
          .tile_db = tdb_min,
          .blas_bytes = bg__blas_buffer_bytes(),
          .min_bytes = blas_least(d, 1, tdb_min) + AS_SLACK,
          .budget = as,
          .precision = "exact",
          .db_slices = 1,
          .why = "the address space left under RLIMIT_AS (ulimit -v) cannot hold one of "
                 "OpenBLAS's 128 MiB work buffers beside the search: use the blocked backend "
                 "or raise the limit",
      };
      return BG_ENOMEM;
    }
    w = fit;
    blas = w * bg__blas_buffer_bytes();
    /* What brigade allocates must leave room for the buffers too; blas_fit() left at least
     * the smallest plan's bytes, so this alone never refuses. */
    if (as != UINT64_MAX && budget > as - blas - AS_SLACK)
      budget = as - blas - AS_SLACK;
  }
  /* Query tiles: one per worker (up to 1024 queries for blocked, 512 for blas, whose score
   * tile grows with it), because each query tile streams the whole database from memory once
   * (and OpenBLAS packs it again), and fewer, longer passes were faster than the balance more
   * tiles would give when measured (docs/PERFORMANCE.md). */
  size_t tq_max = kind == BG__KNN_BLOCKED ? 1024 : 512;
  size_t tq = clamp((d->nb_new + w - 1) / w, 1, tq_max);
  unsigned slices = db_slices(d, kind, w, tq, tq_max);
  uint64_t fixed = fixed_bytes(d, kind, w) + bg__knn_slice_bytes(d, slices);
  /* Slices whose own top-k lists leave no room for the smallest tiles are done without. */
  if (slices > 1 && fixed + w * bg__knn_scratch_bytes(d, kind, 1, tdb_min) > budget) {
    slices = 1;
    fixed = fixed_bytes(d, kind, w);
  }
  if (slices > 1)
    tq = d->nb_new;
  while (fixed + w * bg__knn_scratch_bytes(d, kind, tq, tdb) > budget && tq > 1) {
    *shrunk = 1;
    if (kind == BG__KNN_BLAS && tdb > tdb_min)
      tdb = tdb / 2 > tdb_min ? tdb / 2 : tdb_min;
    else
      tq = tq / 2;
  }
  *out = (bg_knn_plan_t){
      .backend = name,
      .tile_q = tq,
      .tile_db = tdb,
      .workers = w,
      .bytes = fixed + w * bg__knn_scratch_bytes(d, kind, tq, tdb),
      .min_bytes = fixed + w * bg__knn_scratch_bytes(d, kind, 1, tdb_min),
      .budget = budget,
      .blas_bytes = blas,
      .precision = bg__knn_bf16_mode(d, kind) ? "bf16" : "exact",
      .db_slices = slices,
  };
  if (out->min_bytes <= budget)
    return BG_OK;
  out->why = "the memory budget cannot hold even the smallest tiles (one query each): raise the "
             "budget or free memory";
  return BG_ENOMEM;
}

/* Searches whose whole plan fits this many bytes are planned without reading the memory
 * available: that read (/proc/meminfo, the cgroup's files, the address-space limit) took 74-221 us
 * per call here, timed in a loop of 1000 while other work loaded the machine, against about
 * 400 us for a whole search of the lecture's smallest case. */
#define SMALL_PLAN ((uint64_t)16 << 20)

int bg__knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                 bg_knn_plan_t *out) {
  int shrunk;
  uint64_t avail;
  /* A budget above what the process may still allocate is lowered to it: the caller asked for
   * a limit, not for the kernel's OOM killer (a small one needs no look). */
  if (d->mem_budget && d->mem_budget <= SMALL_PLAN)
    return plan_in(pool, d, kind, d->mem_budget, out, &shrunk);
  if (d->mem_budget)
    return plan_in(pool, d, kind,
                   bg_mem_available(&avail) == 0 && avail < d->mem_budget ? avail : d->mem_budget,
                   out, &shrunk);
  /* blas under RLIMIT_AS needs the address space read anyway. */
  if (kind != BG__KNN_BLAS) {
    int rc = plan_in(pool, d, kind, SMALL_PLAN, out, &shrunk);
    if (rc == 0 && !shrunk)
      return rc;
  }
  return plan_in(pool, d, kind, bg_mem_available(&avail) == 0 ? avail / 2 : (uint64_t)1 << 30, out,
                 &shrunk);
}
