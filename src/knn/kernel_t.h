/* SPDX-License-Identifier: MIT */
/* The knn kernels, written once for a scalar type T and included once per type by
 * kernel_f32.c and kernel_f64.c (the include-twice pattern C has instead of templates).
 * Before including, define T (float or double), IT (the signed integer of T's size, for
 * vector comparisons), SFX (f32 or f64), BLAS_GEMM, FMA_S (the C library's fma of T), and the
 * fused multiply-adds of 64 and 32 bytes of T, FMA512 and FMA256, their broadcasts SET512 and
 * SET256, and their vector types V512 and V256 (immintrin.h's).
 *
 * Every kernel ranks by one key, larger is better: q.x for ip, q.x / |x| for cosine (|q| is
 * the same for the whole row), 2 q.x - |x|^2 for L2 (|q|^2 is too). Database vectors are
 * visited in increasing index order and a key must be strictly better to displace another, so
 * ties go to the lowest index in every backend. */
#include <math.h>
#include <string.h>

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define VLEN ((size_t)(64 / sizeof(T)))

typedef T CAT(vec, SFX) __attribute__((vector_size(64)));
typedef IT CAT(ivec, SFX) __attribute__((vector_size(64)));
#define VEC CAT(vec, SFX)

static inline T CAT(key_of, SFX)(const bg__knn_ctx *c, T dot, size_t j) {
  const T *norm = c->db_norm;
  switch (c->d->metric) {
  case BG_KNN_COSINE:
    return norm[j] > 0 ? dot / norm[j] : 0;
  case BG_KNN_L2:
    return 2 * dot - norm[j];
  default:
    return dot;
  }
}

/* Inserts (key, j) into a row's top-k, kept sorted best first. */
static inline void CAT(fold, SFX)(T *keys, int64_t *idx, size_t k, T key, size_t j) {
  if (!(key > keys[k - 1]))
    return;
  size_t p = k - 1;
  while (p > 0 && key > keys[p - 1]) {
    keys[p] = keys[p - 1];
    idx[p] = idx[p - 1];
    p--;
  }
  keys[p] = key;
  idx[p] = (int64_t)j;
}

static void CAT(naive, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1) {
  const bg_knn_desc_t *d = c->d;
  const T *q = d->queries, *x = d->db;
  T *keys = c->keys;
  for (size_t i = q0; i < q1; i++) {
    for (size_t j = 0; j < d->nb_txt; j++) {
      T dot = 0;
      for (size_t t = 0; t < d->dim; t++)
        dot += q[i * d->dim + t] * x[j * d->dim + t];
      CAT(fold, SFX)
      (keys + i * d->k, d->idx + i * d->k, d->k, CAT(key_of, SFX)(c, dot, j), c->x_base + j);
    }
  }
}

/* Scores again, as the blocked kernel does (in increasing t, one fused multiply-add each), query @q
 * against the n <= 8 database rows x0 + cand[p], eight sums at once so that they do not wait on
 * each other, and folds their keys in that (increasing) order. Built for FMA CPUs (one
 * instruction a term) and for any x86-64 (the C library's fma, a call a term). */
static inline __attribute__((always_inline)) void
CAT(rescore_body, SFX)(const bg__knn_ctx *c, const T *q, size_t x0, const size_t *cand, size_t n,
                       T *kr, int64_t *ir) {
  const bg_knn_desc_t *d = c->d;
  const T *rows[8];
  for (size_t p = 0; p < 8; p++)
    rows[p] = (const T *)d->db + (x0 + cand[p < n ? p : n - 1]) * d->dim;
  T acc[8] = {0};
  for (size_t t = 0; t < d->dim; t++) {
    T a = q[t];
    for (size_t p = 0; p < 8; p++)
      acc[p] = FMA_S(a, rows[p][t], acc[p]);
  }
  for (size_t p = 0; p < n; p++)
    CAT(fold, SFX)
  (kr, ir, d->k, CAT(key_of, SFX)(c, acc[p], x0 + cand[p]), c->x_base + x0 + cand[p]);
}

__attribute__((target("fma"))) static void CAT(rescore_fma, SFX)(const bg__knn_ctx *c, const T *q,
                                                                 size_t x0, const size_t *cand,
                                                                 size_t n, T *kr, int64_t *ir) {
  CAT(rescore_body, SFX)(c, q, x0, cand, n, kr, ir);
}

static void CAT(rescore, SFX)(const bg__knn_ctx *c, const T *q, size_t x0, const size_t *cand,
                              size_t n, T *kr, int64_t *ir) {
  if (c->isa != BG__ISA_GENERIC)
    CAT(rescore_fma, SFX)(c, q, x0, cand, n, kr, ir);
  else
    CAT(rescore_body, SFX)(c, q, x0, cand, n, kr, ir);
}

/* OpenBLAS's product, certified (cert.c): a score's key plus its bound (up) that cannot pass the
 * query's running k-th best is skipped; the rest are scored again in the blocked kernel's order
 * and only those exact keys folded, so the answers are the blocked kernel's, bit for bit,
 * wherever a pair falls in OpenBLAS's tiles. A NaN up (none: bg_knn refuses inputs whose scores
 * could overflow) would be scored again too. */
static void CAT(blas, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *s) {
  const bg_knn_desc_t *d = c->d;
  const T *q = d->queries, *x = d->db, *bc = c->bound;
  T *keys = c->keys, *qn = s + (q1 - q0) * c->tile_db;
  uint64_t again = 0;
  for (size_t i = q0; i < q1; i++)
    bg__knn_blas_query(d, i, qn + (i - q0));
  for (size_t x0 = 0; x0 < d->nb_txt; x0 += c->tile_db) {
    size_t nx = d->nb_txt - x0 < c->tile_db ? d->nb_txt - x0 : c->tile_db;
    BLAS_GEMM(q + q0 * d->dim, q1 - q0, x + x0 * d->dim, nx, d->dim, s);
    for (size_t i = q0; i < q1; i++) {
      const T *row = s + (i - q0) * nx, qi = qn[i - q0];
      T *kr = keys + i * d->k;
      int64_t *ir = d->idx + i * d->k;
      T thr = kr[d->k - 1];
      size_t cand[8], n = 0;
      for (size_t jj = 0; jj < nx; jj++) {
        const T *b = bc + 2 * (x0 + jj);
        T up = CAT(key_of, SFX)(c, row[jj], x0 + jj) + qi * b[0];
        up = up + b[1];
        if (up <= thr)
          continue;
        cand[n++] = jj;
        again++;
        if (n == 8) {
          CAT(rescore, SFX)(c, q + i * d->dim, x0, cand, n, kr, ir);
          thr = kr[d->k - 1];
          n = 0;
        }
      }
      if (n)
        CAT(rescore, SFX)(c, q + i * d->dim, x0, cand, n, kr, ir);
    }
  }
  atomic_fetch_add_explicit(&c->stats[0], (uint64_t)(q1 - q0) * d->nb_txt, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats[1], again, memory_order_relaxed);
}

/* The blocked backend's register block: QB queries (two vectors of VLEN lanes) against RB
 * database vectors, 2 x RB accumulators. Each dimension costs two vector loads of queries, RB
 * broadcasts of database values and 2 x RB fused multiply-adds, so the FMA units, not the
 * loads, set the pace. The queries are packed once per tile (their reuse is the whole
 * database); the database is read where it lies, row by row, so it is never copied. */
#define QB (2 * VLEN)
#define RB BG_KNN_RBLOCK

/* Packs queries [i0, i0 + nq) dimension-major, qp[t * QB + l] = q[i0 + l][t], zero-padding
 * lanes past nq, so the kernel loads each dimension's QB query values as two vectors. */
static void CAT(pack_queries, SFX)(const T *q, size_t i0, size_t nq, size_t dim, T *qp) {
  for (size_t l = 0; l < QB; l++)
    for (size_t t = 0; t < dim; t++)
      qp[t * QB + l] = l < nq ? q[(i0 + l) * dim + t] : 0;
}

/* The register blocks: out[r * QB + l] = query l . database row r, for RB rows given by pointer
 * (a short group repeats its last row; the repeats' results are ignored) and the lanes l of the
 * block's nq queries, rounded up to whole vectors (a block of fewer than QB queries, the last
 * of a tile, computes only those: 50 queries a worker had 22% of their lanes padding). Every
 * build computes each score as the same sum: over t in increasing order, one fused multiply-add
 * per term (rounded once), so the three builds, the blas backend's re-scoring and bf16's give
 * the same bits. Fused, not a product then a sum: it is one instruction where mul + add were
 * two, which on Zen 1's AVX2 took the block from 28 to 38 GFLOP/s a core in L1
 * (docs/PERFORMANCE.md). Each build is a function of its own, called per block, not inlined
 * across targets (GCC cannot inline an AVX-512 intrinsic into the portable build, even on a
 * branch never taken). */

/* AVX-512: QB queries as two vectors against RB rows, 2 x RB accumulators of the 32 registers;
 * one vector (RB accumulators) when nq <= VLEN. */
__attribute__((target("avx512f,fma"))) static void
CAT(micro_avx512, SFX)(const T *qp, const T *const *rows, size_t dim, size_t nq, T *out) {
  VEC lo[RB], hi[RB];
  for (size_t r = 0; r < RB; r++)
    lo[r] = hi[r] = (VEC){0};
  if (nq <= VLEN) {
    for (size_t t = 0; t < dim; t++) {
      VEC a;
      memcpy(&a, qp + t * QB, sizeof a);
      for (size_t r = 0; r < RB; r++)
        lo[r] = (VEC)FMA512((V512)a, SET512(rows[r][t]), (V512)lo[r]);
    }
  } else {
    for (size_t t = 0; t < dim; t++) {
      VEC a, b;
      memcpy(&a, qp + t * QB, sizeof a);
      memcpy(&b, qp + t * QB + VLEN, sizeof b);
      for (size_t r = 0; r < RB; r++) {
        V512 x = SET512(rows[r][t]);
        lo[r] = (VEC)FMA512((V512)a, x, (V512)lo[r]);
        hi[r] = (VEC)FMA512((V512)b, x, (V512)hi[r]);
      }
    }
  }
  for (size_t r = 0; r < RB; r++) {
    memcpy(out + r * QB, &lo[r], sizeof lo[r]);
    memcpy(out + r * QB + VLEN, &hi[r], sizeof hi[r]);
  }
}

/* AVX2's 16 registers of 32 bytes, where the AVX-512 block's accumulators would spill: nv query
 * vectors (of the four QB holds) by RB / nv rows a pass, always 12 accumulators. For all four,
 * three rows by four vectors rather than six by two, because each row costs a broadcast, which
 * Zen's AVX2 pays more for than a vector load (30 against 27.5 GFLOP/s a core before the fused
 * multiply-adds). One array per query vector, not one two-dimensional array: GCC keeps these
 * in registers and spilled that. Inlined with nv constant, so the unused arrays vanish. */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
CAT(micro_avx2_n, SFX)(const T *qp, const T *const *rows, size_t dim, T *out, const size_t nv) {
  typedef T hvec __attribute__((vector_size(32)));
  const size_t hl = VLEN / 2, hr = RB / nv;
  for (size_t r0 = 0; r0 < RB; r0 += hr) {
    hvec s0[RB], s1[RB], s2[RB], s3[RB];
    for (size_t r = 0; r < hr; r++)
      s0[r] = s1[r] = s2[r] = s3[r] = (hvec){0};
    for (size_t t = 0; t < dim; t++) {
      hvec a0, a1 = {0}, a2 = {0}, a3 = {0};
      memcpy(&a0, qp + t * QB, sizeof a0);
      if (nv > 1)
        memcpy(&a1, qp + t * QB + hl, sizeof a1);
      if (nv > 2)
        memcpy(&a2, qp + t * QB + 2 * hl, sizeof a2);
      if (nv > 3)
        memcpy(&a3, qp + t * QB + 3 * hl, sizeof a3);
      for (size_t r = 0; r < hr; r++) {
        V256 x = SET256(rows[r0 + r][t]);
        s0[r] = (hvec)FMA256((V256)a0, x, (V256)s0[r]);
        if (nv > 1)
          s1[r] = (hvec)FMA256((V256)a1, x, (V256)s1[r]);
        if (nv > 2)
          s2[r] = (hvec)FMA256((V256)a2, x, (V256)s2[r]);
        if (nv > 3)
          s3[r] = (hvec)FMA256((V256)a3, x, (V256)s3[r]);
      }
    }
    for (size_t r = 0; r < hr; r++) {
      T *o = out + (r0 + r) * QB;
      memcpy(o, &s0[r], sizeof s0[r]);
      if (nv > 1)
        memcpy(o + hl, &s1[r], sizeof s1[r]);
      if (nv > 2)
        memcpy(o + 2 * hl, &s2[r], sizeof s2[r]);
      if (nv > 3)
        memcpy(o + 3 * hl, &s3[r], sizeof s3[r]);
    }
  }
}

__attribute__((target("avx2,fma"))) static void
CAT(micro_avx2, SFX)(const T *qp, const T *const *rows, size_t dim, size_t nq, T *out) {
  switch ((nq + VLEN / 2 - 1) / (VLEN / 2)) {
  case 1:
    CAT(micro_avx2_n, SFX)(qp, rows, dim, out, 1);
    break;
  case 2:
    CAT(micro_avx2_n, SFX)(qp, rows, dim, out, 2);
    break;
  case 3:
    CAT(micro_avx2_n, SFX)(qp, rows, dim, out, 3);
    break;
  default:
    CAT(micro_avx2_n, SFX)(qp, rows, dim, out, 4);
  }
}

/* Any x86-64 (a CPU without FMA, or BRIGADE_KNN_ISA=generic): the C library's fma, correctly
 * rounded wherever it runs, lane by lane, for the lanes of whole VLEN vectors that hold the nq
 * queries. Slow, and only there for those CPUs and the tests. */
static void CAT(micro_generic, SFX)(const T *qp, const T *const *rows, size_t dim, size_t nq,
                                    T *out) {
  size_t lanes = nq > VLEN ? QB : VLEN;
  for (size_t r = 0; r < RB; r++) {
    T acc[QB] = {0};
    for (size_t t = 0; t < dim; t++) {
      T x = rows[r][t];
      for (size_t l = 0; l < lanes; l++)
        acc[l] = FMA_S(qp[t * QB + l], x, acc[l]);
    }
    memcpy(out + r * QB, acc, sizeof acc);
  }
}

/* fold_block_<SFX>_<FW>: the register block's fold in vectors of FW bytes, one instance per
 * native width, since GCC builds a comparison wider than the target's registers lane by lane. */
#define FW 32
#include "knn/fold_t.h"
#define FW 64
#include "knn/fold_t.h"

/* One query tile against the database: database tile by database tile (each small enough to
 * stay in L2 while every query block of the tile passes over it), register block by register
 * block. scratch holds the tile's queries packed in blocks of QB. Inlined into three wrappers
 * chosen at run time (c->isa): one compiled for AVX-512, one for AVX2 (its register block and
 * fold in 32-byte vectors) and one for any x86-64. */
static inline __attribute__((always_inline)) void
CAT(blocked_body, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *scratch, bg__knn_isa isa) {
  const bg_knn_desc_t *d = c->d;
  const T *x = d->db;
  size_t nblocks = (q1 - q0 + QB - 1) / QB;
  for (size_t b = 0; b < nblocks; b++) {
    size_t i0 = q0 + b * QB;
    CAT(pack_queries, SFX)
    (d->queries, i0, q1 - i0 < QB ? q1 - i0 : QB, d->dim, scratch + b * QB * d->dim);
  }
  T out[RB * QB], thr[QB];
  const T *rows[RB];
  for (size_t x0 = 0; x0 < d->nb_txt; x0 += c->tile_db) {
    size_t x1 = d->nb_txt - x0 < c->tile_db ? d->nb_txt : x0 + c->tile_db;
    for (size_t b = 0; b < nblocks; b++) {
      size_t i0 = q0 + b * QB, nq = q1 - i0 < QB ? q1 - i0 : QB;
      const T *qp = scratch + b * QB * d->dim;
      /* Padding lanes get +inf so that nothing ever enters them. */
      for (size_t l = 0; l < QB; l++)
        thr[l] = l < nq ? ((T *)c->keys)[(i0 + l) * d->k + d->k - 1] : (T)INFINITY;
      for (size_t j0 = x0; j0 < x1; j0 += RB) {
        size_t nr = x1 - j0 < RB ? x1 - j0 : RB;
        for (size_t r = 0; r < RB; r++)
          rows[r] = x + (j0 + (r < nr ? r : nr - 1)) * d->dim;
        if (isa == BG__ISA_AVX512)
          CAT(micro_avx512, SFX)(qp, rows, d->dim, nq, out);
        else if (isa == BG__ISA_AVX2)
          CAT(micro_avx2, SFX)(qp, rows, d->dim, nq, out);
        else
          CAT(micro_generic, SFX)(qp, rows, d->dim, nq, out);
        if (isa == BG__ISA_AVX2)
          CAT(CAT(fold_block, SFX), 32)(c, out, i0, nq, j0, nr, thr);
        else
          CAT(CAT(fold_block, SFX), 64)(c, out, i0, nq, j0, nr, thr);
      }
    }
  }
}

__attribute__((target("avx512f,fma"))) static void
CAT(blocked_avx512, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *scratch) {
  CAT(blocked_body, SFX)(c, q0, q1, scratch, BG__ISA_AVX512);
}

__attribute__((target("avx2,fma"))) static void
CAT(blocked_avx2, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *scratch) {
  CAT(blocked_body, SFX)(c, q0, q1, scratch, BG__ISA_AVX2);
}

static void CAT(blocked_generic, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *scratch) {
  CAT(blocked_body, SFX)(c, q0, q1, scratch, BG__ISA_GENERIC);
}

static void CAT(blocked, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *scratch) {
  switch (c->isa) {
  case BG__ISA_AVX512:
    CAT(blocked_avx512, SFX)(c, q0, q1, scratch);
    break;
  case BG__ISA_AVX2:
    CAT(blocked_avx2, SFX)(c, q0, q1, scratch);
    break;
  default:
    CAT(blocked_generic, SFX)(c, q0, q1, scratch);
  }
}

void CAT(bg__knn_tile, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, char *scratch) {
  switch (c->kind) {
  case BG__KNN_NAIVE:
    CAT(naive, SFX)(c, q0, q1);
    break;
  case BG__KNN_BLAS:
    CAT(blas, SFX)(c, q0, q1, (T *)(void *)scratch);
    break;
  case BG__KNN_BLOCKED:
    CAT(blocked, SFX)(c, q0, q1, (T *)(void *)scratch);
    break;
  case BG__KNN_CUDA: /* never tiled on the CPU: bg_knn hands it to knn_cuda.c */
    break;
  }
}

#undef VEC
#undef QB
#undef RB
#undef VLEN
#undef CAT
#undef CAT2
