/* SPDX-License-Identifier: MIT */
/* The knn kernels, written once for a scalar type T and included once per type by
 * kernel_f32.c and kernel_f64.c (the include-twice pattern C has instead of templates).
 * Before including, define T (float or double), SFX (f32 or f64) and BLAS_GEMM.
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
      CAT(fold, SFX)(keys + i * d->k, d->idx + i * d->k, d->k, CAT(key_of, SFX)(c, dot, j), j);
    }
  }
}

static void CAT(blas, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *s) {
  const bg_knn_desc_t *d = c->d;
  const T *q = d->queries, *x = d->db;
  T *keys = c->keys;
  for (size_t x0 = 0; x0 < d->nb_txt; x0 += c->tile_db) {
    size_t nx = d->nb_txt - x0 < c->tile_db ? d->nb_txt - x0 : c->tile_db;
    BLAS_GEMM(q + q0 * d->dim, q1 - q0, x + x0 * d->dim, nx, d->dim, s);
    for (size_t i = q0; i < q1; i++) {
      const T *row = s + (i - q0) * nx;
      T *kr = keys + i * d->k;
      int64_t *ir = d->idx + i * d->k;
      for (size_t jj = 0; jj < nx; jj++)
        CAT(fold, SFX)(kr, ir, d->k, CAT(key_of, SFX)(c, row[jj], x0 + jj), x0 + jj);
    }
  }
}

/* Copies database rows [x0, x0 + nx) into panels of VLEN vectors laid out dimension-major,
 * panel[p][t][lane] = x[x0 + p * VLEN + lane][t], zero-padding the last panel, so the kernel
 * reads one aligned vector per dimension. */
static void CAT(pack, SFX)(const T *x, size_t x0, size_t nx, size_t dim, T *panel) {
  size_t npanels = (nx + VLEN - 1) / VLEN;
  for (size_t p = 0; p < npanels; p++) {
    T *dst = panel + p * dim * VLEN;
    for (size_t lane = 0; lane < VLEN; lane++) {
      size_t j = p * VLEN + lane;
      for (size_t t = 0; t < dim; t++)
        dst[t * VLEN + lane] = j < nx ? x[(x0 + j) * dim + t] : 0;
    }
  }
}

/* BG_KNN_QBLOCK queries against one panel: the register block the whole backend is built on.
 * acc[r] holds the VLEN dot products of query r; each dimension costs one vector load, one
 * broadcast per query and BG_KNN_QBLOCK fused multiply-adds. Inlined into two wrappers: one
 * compiled for AVX-512, chosen at run time when the CPU has it, and one for any x86-64. */
static inline __attribute__((always_inline)) void CAT(micro, SFX)(const T *q, const T *panel,
                                                                  size_t dim, T *out) {
  VEC acc[BG_KNN_QBLOCK];
  for (size_t r = 0; r < BG_KNN_QBLOCK; r++)
    acc[r] = (VEC){0};
  for (size_t t = 0; t < dim; t++) {
    VEC b;
    memcpy(&b, panel + t * VLEN, sizeof b);
    for (size_t r = 0; r < BG_KNN_QBLOCK; r++)
      acc[r] += q[r * dim + t] * b;
  }
  memcpy(out, acc, sizeof acc);
}

__attribute__((target("avx512f,fma"))) static void
CAT(micro_avx512, SFX)(const T *q, const T *panel, size_t dim, T *out) {
  CAT(micro, SFX)(q, panel, dim, out);
}

static void CAT(micro_generic, SFX)(const T *q, const T *panel, size_t dim, T *out) {
  CAT(micro, SFX)(q, panel, dim, out);
}

/* One query tile against the database, database tile by database tile (each small enough to
 * stay in L2 while every block of BG_KNN_QBLOCK queries of the tile passes over it). scratch
 * holds a padded query block, then the packed database tile. */
static void CAT(blocked, SFX)(const bg__knn_ctx *c, size_t q0, size_t q1, T *scratch) {
  const bg_knn_desc_t *d = c->d;
  const T *q = d->queries, *x = d->db;
  T *keys = c->keys;
  void (*micro)(const T *, const T *, size_t, T *) =
      __builtin_cpu_supports("avx512f") ? CAT(micro_avx512, SFX) : CAT(micro_generic, SFX);
  T *qpad = scratch, *panel = scratch + BG_KNN_QBLOCK * d->dim;
  T out[BG_KNN_QBLOCK * VLEN];
  for (size_t x0 = 0; x0 < d->nb_txt; x0 += c->tile_db) {
    size_t nx = d->nb_txt - x0 < c->tile_db ? d->nb_txt - x0 : c->tile_db;
    CAT(pack, SFX)(x, x0, nx, d->dim, panel);
    size_t npanels = (nx + VLEN - 1) / VLEN;
    for (size_t i0 = q0; i0 < q1; i0 += BG_KNN_QBLOCK) {
      size_t nq = q1 - i0 < BG_KNN_QBLOCK ? q1 - i0 : BG_KNN_QBLOCK;
      const T *qb = q + i0 * d->dim;
      /* A short block (the end of the queries) repeats its first query so the kernel always
       * runs full width; the repeats' results are ignored. */
      if (nq < BG_KNN_QBLOCK) {
        for (size_t r = 0; r < BG_KNN_QBLOCK; r++)
          memcpy(qpad + r * d->dim, q + (i0 + (r < nq ? r : 0)) * d->dim, d->dim * sizeof(T));
        qb = qpad;
      }
      for (size_t p = 0; p < npanels; p++) {
        micro(qb, panel + p * d->dim * VLEN, d->dim, out);
        size_t lanes = nx - p * VLEN < VLEN ? nx - p * VLEN : VLEN;
        for (size_t r = 0; r < nq; r++) {
          size_t i = i0 + r;
          for (size_t lane = 0; lane < lanes; lane++) {
            size_t j = x0 + p * VLEN + lane;
            CAT(fold, SFX)
            (keys + i * d->k, d->idx + i * d->k, d->k, CAT(key_of, SFX)(c, out[r * VLEN + lane], j),
             j);
          }
        }
      }
    }
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
  }
}

#undef VEC
#undef VLEN
#undef CAT
#undef CAT2
