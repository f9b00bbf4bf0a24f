/* SPDX-License-Identifier: MIT */
/* precision bf16's kernel, included by kernel_f32.c after kernel_t.h (whose fp32 register
 * block, keys and top-k insertion it reuses, so that every fp32 key it computes is computed by
 * the very arithmetic of the exact search).
 *
 * A query tile is searched as by the blocked kernel, but each register block of database rows is
 * scored first in bf16: the queries packed as bf16 pairs, each database tile converted to bf16
 * once per query tile, 2 x RB accumulators fed by AVX-512 BF16's dot products (VDPBF16PS, two
 * products per fp32 lane per instruction). Each bf16 key is then raised by the bound cert.c
 * proves (Q B_j + C_j); rows where some query's raised key reaches its running k-th best are
 * scored again in fp32, with the fp32 register block's own arithmetic, and only those keys are
 * folded in. Skipped pairs could not have entered (cert.c), so the running top-k after every row
 * is the exact search's, and so are idx and scores. A query block whose rows needed re-scoring
 * more often than not in a span of rows, once its top-k was full, runs the next spans in fp32
 * (counted as fallback pairs): its near-ties would cost more to re-score than to compute
 * exactly. */
#include <stdint.h>

#define QB 32
#define RB BG_KNN_RBLOCK

/* Register blocks of rows in a span, the unit in which a query block's use of bf16 is judged:
 * 96 rows, few enough to react within a database tile, enough to average over. */
#define SPAN 8

/* A query block's fallback to fp32: spans left to run in fp32, and the length of the next such
 * run (doubled each time a bf16 tile fails again, so a block of near-ties wastes at most a
 * logarithmic number of probes, and a block whose threshold was merely still low early on
 * returns to bf16). */
typedef struct bf16_backoff {
  uint32_t left, next;
} bf16_backoff;

/* Where a tile's scratch puts each part, in bytes from its start (64-byte aligned each). */
typedef struct bf16_layout {
  size_t q32, qbf, xbf, qn, fb, end;
} bf16_layout;

static size_t align64(size_t n) {
  return (n + 63) / 64 * 64;
}

/* Whether the products run on AMX's tiles (or their portable emulation), whose layout differs. */
static int bf16_tiles(bg__knn_bf16 mode) {
  return mode == BG__BF16_AMX || mode == BG__BF16_GENERIC_AMX;
}

/* Words a packed row takes: its pairs, rounded up to whole tiles of 16 pairs for AMX (the pad
 * zero). */
static size_t bf16_stride(bg__knn_bf16 mode, size_t dim) {
  size_t d2 = (dim + 1) / 2;
  return bf16_tiles(mode) ? (d2 + 15) / 16 * 16 : d2;
}

/* Sized for AMX's strides, the larger, and RB rows past the database tile: the last AMX block
 * of a tile reads whole tiles of RB rows. */
static bf16_layout bf16_layout_of(size_t tq, size_t tdb, size_t dim) {
  size_t nbl = (tq + QB - 1) / QB, xs = bf16_stride(BG__BF16_AMX, dim);
  bf16_layout l;
  l.q32 = 0;
  l.qbf = l.q32 + align64(nbl * QB * dim * sizeof(float));
  l.xbf = l.qbf + align64(nbl * QB * xs * sizeof(uint32_t));
  l.qn = l.xbf + align64((tdb + RB) * xs * sizeof(uint32_t));
  l.fb = l.qn + align64(nbl * 2 * QB * sizeof(float));
  l.end = l.fb + align64(nbl * sizeof(bf16_backoff));
  return l;
}

uint64_t bg__knn_bf16_scratch_bytes(size_t tq, size_t tdb, size_t dim) {
  return bf16_layout_of(tq, tdb, dim).end;
}

static inline uint32_t bf16_pair(const float *row, size_t dim, size_t t2) {
  size_t t = 2 * t2;
  uint32_t lo = bg__knn_bf16_of(row[t]), hi = t + 1 < dim ? bg__knn_bf16_of(row[t + 1]) : 0;
  return lo | hi << 16;
}

/* Queries [i0, i0 + nq) as bf16 pairs, pair-major: qp[t2 * QB + l] holds query l's dims 2 t2
 * and 2 t2 + 1 (zero-padded past nq and past dim, up to @xs pairs), so each pair step loads two
 * vectors. */
static void bf16_pack_queries(const float *q, size_t i0, size_t nq, size_t dim, size_t xs,
                              uint32_t *qp) {
  size_t d2 = (dim + 1) / 2;
  for (size_t l = 0; l < QB; l++)
    for (size_t t2 = 0; t2 < xs; t2++)
      qp[t2 * QB + l] = l < nq && t2 < d2 ? bf16_pair(q + (i0 + l) * dim, dim, t2) : 0;
}

/* Database rows [x0, x1) as bf16 pairs, row-major (xs words a row; the words past the pairs are
 * the caller's). */
static void bf16_rows_generic(const float *x, size_t x0, size_t x1, size_t dim, size_t xs,
                              uint32_t *xb) {
  size_t d2 = (dim + 1) / 2;
  for (size_t j = x0; j < x1; j++)
    for (size_t t2 = 0; t2 < d2; t2++)
      xb[(j - x0) * xs + t2] = bf16_pair(x + j * dim, dim, t2);
}

/* The portable bf16 register block: the same products of bf16 values (exact in fp32) summed in
 * fp32, one pair at a time. It stands in for the instructions where the CPU lacks them when
 * BRIGADE_KNN_ISA=generic asks for it, so that the filter is tested on every machine. */
typedef uint32_t u32vec_bf __attribute__((vector_size(64)));
static void bf16_micro_generic(const uint32_t *qp, const uint32_t *const *rows, size_t d2,
                               float *out) {
  vec_f32 lo[RB], hi[RB];
  for (size_t r = 0; r < RB; r++)
    lo[r] = hi[r] = (vec_f32){0};
  for (size_t t2 = 0; t2 < d2; t2++) {
    u32vec_bf a, b;
    memcpy(&a, qp + t2 * QB, sizeof a);
    memcpy(&b, qp + t2 * QB + 16, sizeof b);
    vec_f32 a0 = (vec_f32)(a << 16), a1 = (vec_f32)(a & 0xffff0000u);
    vec_f32 b0 = (vec_f32)(b << 16), b1 = (vec_f32)(b & 0xffff0000u);
    for (size_t r = 0; r < RB; r++) {
      uint32_t w = rows[r][t2], w0 = w << 16, w1 = w & 0xffff0000u;
      float x0, x1;
      memcpy(&x0, &w0, sizeof x0);
      memcpy(&x1, &w1, sizeof x1);
      lo[r] = lo[r] + a0 * x0 + a1 * x1;
      hi[r] = hi[r] + b0 * x0 + b1 * x1;
    }
  }
  for (size_t r = 0; r < RB; r++) {
    memcpy(out + r * QB, &lo[r], sizeof lo[r]);
    memcpy(out + r * QB + 16, &hi[r], sizeof hi[r]);
  }
}

#ifdef __x86_64__
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

BF16_TARGET static void bf16_micro_avx512(const uint32_t *qp, const uint32_t *const *rows,
                                          size_t d2, float *out) {
  __m512 lo[RB], hi[RB];
  for (size_t r = 0; r < RB; r++)
    lo[r] = hi[r] = _mm512_setzero_ps();
  for (size_t t2 = 0; t2 < d2; t2++) {
    __m512i a = _mm512_loadu_si512(qp + t2 * QB), b = _mm512_loadu_si512(qp + t2 * QB + 16);
    for (size_t r = 0; r < RB; r++) {
      __m512i x = _mm512_set1_epi32((int)rows[r][t2]);
      lo[r] = _mm512_dpbf16_ps(lo[r], (__m512bh)a, (__m512bh)x);
      hi[r] = _mm512_dpbf16_ps(hi[r], (__m512bh)b, (__m512bh)x);
    }
  }
  for (size_t r = 0; r < RB; r++) {
    _mm512_storeu_ps(out + r * QB, lo[r]);
    _mm512_storeu_ps(out + r * QB + 16, hi[r]);
  }
}

/* The instructions' conversion, 32 values at a time (the tail masked): it rounds as bf16_of. */
BF16_TARGET static void bf16_rows_avx512(const float *x, size_t x0, size_t x1, size_t dim,
                                         size_t xs, uint32_t *xb) {
  for (size_t j = x0; j < x1; j++) {
    const float *row = x + j * dim;
    uint16_t *dst = (uint16_t *)(void *)(xb + (j - x0) * xs);
    for (size_t t = 0; t < dim; t += 32) {
      size_t n = dim - t < 32 ? dim - t : 32;
      __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
      __mmask16 m1 = n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
      __m512 lo = _mm512_maskz_loadu_ps(m0, row + t), hi = _mm512_maskz_loadu_ps(m1, row + t + 16);
      __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      /* Whole pairs: an odd dim's last pair gets its zero pad. */
      size_t words = (n + 1) / 2 * 2;
      __mmask32 m = words == 32 ? 0xffffffffu : (__mmask32)((1u << words) - 1);
      _mm512_mask_storeu_epi16(dst + t, m, v);
    }
  }
}
#endif

int bg__knn_bf16_hw(void) {
#ifdef __x86_64__
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}

static void bf16_micro(const bg__knn_ctx *c, const uint32_t *qp, const uint32_t *const *rows,
                       size_t d2, float *out) {
#ifdef __x86_64__
  if (c->bf16 == BG__BF16_AVX512) {
    bf16_micro_avx512(qp, rows, d2, out);
    return;
  }
#endif
  bf16_micro_generic(qp, rows, d2, out);
}

/* Database rows [x0, x1) as bf16 pairs, xs words a row. For AMX the pad past each row's pairs
 * and RB whole rows past the last are zeroed: the tiles read them, and must add nothing. */
static void bf16_rows(const bg__knn_ctx *c, const float *x, size_t x0, size_t x1, size_t dim,
                      size_t xs, uint32_t *xb) {
#ifdef __x86_64__
  if (c->bf16 == BG__BF16_AVX512 || c->bf16 == BG__BF16_AMX)
    bf16_rows_avx512(x, x0, x1, dim, xs, xb);
  else
#endif
    bf16_rows_generic(x, x0, x1, dim, xs, xb);
  size_t d2 = (dim + 1) / 2;
  if (!bf16_tiles(c->bf16))
    return;
  if (xs > d2)
    for (size_t r = 0; r < x1 - x0; r++)
      memset(xb + r * xs + d2, 0, (xs - d2) * sizeof *xb);
  memset(xb + (x1 - x0) * xs, 0, RB * xs * sizeof *xb);
}

/* Two database rows scored in fp32 for a whole query block: the fp32 register block's
 * arithmetic (one fused multiply-add per dimension, in order), four independent sums. */
__attribute__((target("avx512f,fma"))) static void
bf16_exact2_avx512(const float *qp, const float *r0, const float *r1, size_t dim, float *out) {
  vec_f32 lo0 = {0}, hi0 = {0}, lo1 = {0}, hi1 = {0};
  for (size_t t = 0; t < dim; t++) {
    vec_f32 a, b;
    __m512 x0 = _mm512_set1_ps(r0[t]), x1 = _mm512_set1_ps(r1[t]);
    memcpy(&a, qp + t * QB, sizeof a);
    memcpy(&b, qp + t * QB + 16, sizeof b);
    lo0 = (vec_f32)_mm512_fmadd_ps((__m512)a, x0, (__m512)lo0);
    hi0 = (vec_f32)_mm512_fmadd_ps((__m512)b, x0, (__m512)hi0);
    lo1 = (vec_f32)_mm512_fmadd_ps((__m512)a, x1, (__m512)lo1);
    hi1 = (vec_f32)_mm512_fmadd_ps((__m512)b, x1, (__m512)hi1);
  }
  memcpy(out, &lo0, sizeof lo0);
  memcpy(out + 16, &hi0, sizeof hi0);
  memcpy(out + QB, &lo1, sizeof lo1);
  memcpy(out + QB + 16, &hi1, sizeof hi1);
}

static void bf16_exact2_generic(const float *qp, const float *r0, const float *r1, size_t dim,
                                float *out) {
  const float *rows[2] = {r0, r1};
  for (size_t r = 0; r < 2; r++) {
    float acc[QB] = {0};
    for (size_t t = 0; t < dim; t++)
      for (size_t l = 0; l < QB; l++)
        acc[l] = fmaf(qp[t * QB + l], rows[r][t], acc[l]);
    memcpy(out + r * QB, acc, sizeof acc);
  }
}

/* Halves and quarters of a vector of 16 lanes, to OR its lanes in a tree. */
typedef int32_t bf16_i8 __attribute__((vector_size(32)));
typedef int32_t bf16_i4 __attribute__((vector_size(16)));

/* The bf16 keys of one register block against the raised bound (cert.c): need[r] gets a bit
 * per query lane whose pair (lane, row j0 + r) must be scored in fp32. qn holds the block's
 * query norms, then their residuals' norms. */
static inline __attribute__((always_inline)) void bf16_filter(const bg__knn_ctx *c, float *out,
                                                              const float *qn, const float *thr,
                                                              size_t nq, size_t j0, size_t nr,
                                                              uint32_t *need) {
  /* Each lane's bit, ORed across the vector in a tree: about 15 instructions for 16 pairs,
   * where testing lane by lane compiled to a branch and about 8 instructions a pair (GCC 12's
   * AVX-512 code), on the order of AMX's products at dim 100. */
  const ivec_f32 lane_bit = {1 << 0, 1 << 1, 1 << 2,  1 << 3,  1 << 4,  1 << 5,  1 << 6,  1 << 7,
                             1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15};
  uint32_t lanes = nq >= QB ? UINT32_MAX : (1u << nq) - 1;
  for (size_t r = 0; r < nr; r++) {
    size_t j = j0 + r;
    const float *bc = (const float *)c->bound + 3 * j;
    uint32_t bits = 0;
    for (size_t h = 0; h < QB; h += 16) {
      vec_f32 key, q, e, t;
      memcpy(&key, out + r * QB + h, sizeof key);
      memcpy(&q, qn + h, sizeof q);
      memcpy(&e, qn + QB + h, sizeof e);
      memcpy(&t, thr + h, sizeof t);
      key_vec_f32_64(c, &key, j);
      vec_f32 up = key + q * bc[0];
      up = up + e * bc[1];
      up = up + bc[2];
      ivec_f32 win = (up > t) & lane_bit;
      bf16_i8 w8[2];
      bf16_i4 w4[2];
      memcpy(w8, &win, sizeof win);
      w8[0] |= w8[1];
      memcpy(w4, w8, sizeof w8[0]);
      w4[0] |= w4[1];
      bits |= (uint32_t)(w4[0][0] | w4[0][1] | w4[0][2] | w4[0][3]) << h;
    }
    need[r] = bits & lanes;
  }
}

/* Re-scores in fp32 the rows of a register block that need it, in increasing row order, and
 * folds the needed lanes' keys. Returns the pairs re-scored. */
static inline __attribute__((always_inline)) size_t bf16_rescore(const bg__knn_ctx *c,
                                                                 const float *qp32, size_t i0,
                                                                 size_t j0, size_t nr,
                                                                 const uint32_t *need, float *thr) {
  const bg_knn_desc_t *d = c->d;
  const float *x = d->db;
  float *keys = c->keys;
  size_t rows[RB], n = 0, pairs = 0;
  for (size_t r = 0; r < nr; r++)
    if (need[r])
      rows[n++] = r;
  float ex[2 * QB];
  for (size_t p = 0; p < n; p += 2) {
    size_t ra = rows[p], rb = p + 1 < n ? rows[p + 1] : ra;
    const float *xa = x + (j0 + ra) * d->dim, *xb = x + (j0 + rb) * d->dim;
    if (c->isa == BG__ISA_AVX512)
      bf16_exact2_avx512(qp32, xa, xb, d->dim, ex);
    else
      bf16_exact2_generic(qp32, xa, xb, d->dim, ex);
    for (size_t s = 0; s < 2 && p + s < n; s++) {
      size_t r = rows[p + s], j = j0 + r;
      for (size_t h = 0; h < QB; h += 16) {
        vec_f32 key;
        memcpy(&key, ex + s * QB + h, sizeof key);
        key_vec_f32_64(c, &key, j);
        for (size_t lane = 0; lane < 16; lane++) {
          size_t l = h + lane;
          if (!(need[r] >> l & 1))
            continue;
          pairs++;
          float *kr = keys + (i0 + l) * d->k;
          fold_f32(kr, d->idx + (i0 + l) * d->k, d->k, key[lane], c->x_base + j);
          thr[l] = kr[d->k - 1];
        }
      }
    }
  }
  return pairs;
}

/* One query tile of the bf16 search (see the top of this file), inlined into an AVX-512 build
 * and a portable one as the blocked kernel is. */
static inline __attribute__((always_inline)) void bf16_body(const bg__knn_ctx *c, size_t q0,
                                                            size_t q1, char *scratch) {
  const bg_knn_desc_t *d = c->d;
  const float *x = d->db;
  size_t dim = d->dim, xs = bf16_stride(c->bf16, dim), nbl = (q1 - q0 + QB - 1) / QB;
  bf16_layout lay = bf16_layout_of(q1 - q0, c->tile_db, dim);
  float *q32 = (float *)(void *)(scratch + lay.q32), *qn = (float *)(void *)(scratch + lay.qn);
  uint32_t *qbf = (uint32_t *)(void *)(scratch + lay.qbf);
  uint32_t *xbf = (uint32_t *)(void *)(scratch + lay.xbf);
  bf16_backoff *fb = (bf16_backoff *)(void *)(scratch + lay.fb);
  uint64_t pairs = 0, rescored = 0, fallback = 0;
  for (size_t b = 0; b < nbl; b++) {
    size_t i0 = q0 + b * QB, nq = q1 - i0 < QB ? q1 - i0 : QB;
    pack_queries_f32(d->queries, i0, nq, dim, q32 + b * QB * dim);
    bf16_pack_queries(d->queries, i0, nq, dim, xs, qbf + b * QB * xs);
    for (size_t l = 0; l < QB; l++) {
      float *at = qn + b * 2 * QB + l;
      at[0] = at[QB] = 0.0f;
      if (l < nq)
        bg__knn_bf16_query(d, d->queries, i0 + l, at, at + QB);
    }
    fb[b] = (bf16_backoff){0, 0};
  }
  float out[RB * QB], thr[QB];
  uint32_t need[RB];
  if (c->bf16 == BG__BF16_AMX)
    bg__knn_amx_begin();
  for (size_t x0 = 0; x0 < d->nb_txt; x0 += c->tile_db) {
    size_t x1 = d->nb_txt - x0 < c->tile_db ? d->nb_txt : x0 + c->tile_db;
    bf16_rows(c, x, x0, x1, dim, xs, xbf);
    for (size_t b = 0; b < nbl; b++) {
      size_t i0 = q0 + b * QB, nq = q1 - i0 < QB ? q1 - i0 : QB;
      const float *qp32 = q32 + b * QB * dim;
      for (size_t l = 0; l < QB; l++)
        thr[l] = l < nq ? ((float *)c->keys)[(i0 + l) * d->k + d->k - 1] : INFINITY;
      size_t span = 0, span_rows = 0, span_redone = 0;
      for (size_t j0 = x0; j0 < x1; j0 += RB) {
        size_t nr = x1 - j0 < RB ? x1 - j0 : RB;
        int exact = fb[b].left > 0, span_end = ++span == SPAN || j0 + RB >= x1;
        if (exact) {
          const float *rows[RB];
          for (size_t r = 0; r < RB; r++)
            rows[r] = x + (j0 + (r < nr ? r : nr - 1)) * dim;
          if (c->isa == BG__ISA_AVX512)
            micro_avx512_f32(qp32, rows, dim, nq, out);
          else
            micro_generic_f32(qp32, rows, dim, nq, out);
          fold_block_f32_64(c, out, i0, nq, j0, nr, thr);
          fallback += nq * nr;
          if (span_end)
            fb[b].left--, span = 0;
          continue;
        }
        if (c->bf16 == BG__BF16_AMX) {
          bg__knn_amx_block(qbf + b * QB * xs, xbf + (j0 - x0) * xs, xs, out);
        } else if (c->bf16 == BG__BF16_GENERIC_AMX) {
          bg__knn_amx_block_emulated(qbf + b * QB * xs, xbf + (j0 - x0) * xs, xs, out);
        } else {
          const uint32_t *rows[RB];
          for (size_t r = 0; r < RB; r++)
            rows[r] = xbf + (j0 - x0 + (r < nr ? r : nr - 1)) * xs;
          bf16_micro(c, qbf + b * QB * xs, rows, xs, out);
        }
        bf16_filter(c, out, qn + b * 2 * QB, thr, nq, j0, nr, need);
        pairs += nq * nr;
        size_t redone = 0;
        for (size_t r = 0; r < nr; r++)
          redone += need[r] != 0;
        if (redone)
          rescored += bf16_rescore(c, qp32, i0, j0, nr, need, thr);
        span_rows += nr, span_redone += redone;
        if (!span_end)
          continue;
        /* A span fails when more than half its rows were scored twice, judged once the top-k
         * was full before it began (the first k rows always need their fp32 keys). */
        if (c->x_base + j0 + nr - c->list_base >= d->k + span_rows && 2 * span_redone > span_rows) {
          fb[b].next = fb[b].next ? 2 * fb[b].next : 1;
          fb[b].left = fb[b].next;
        } else {
          fb[b].next = 0;
        }
        span = span_rows = span_redone = 0;
      }
    }
  }
  if (c->bf16 == BG__BF16_AMX)
    bg__knn_amx_end();
  atomic_fetch_add_explicit(&c->stats[0], pairs, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats[1], rescored, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats[2], fallback, memory_order_relaxed);
}

__attribute__((target("avx512f,fma"))) static void bf16_tile_avx512(const bg__knn_ctx *c, size_t q0,
                                                                    size_t q1, char *scratch) {
  bf16_body(c, q0, q1, scratch);
}

static void bf16_tile_generic(const bg__knn_ctx *c, size_t q0, size_t q1, char *scratch) {
  bf16_body(c, q0, q1, scratch);
}

void bg__knn_tile_bf16(const bg__knn_ctx *c, size_t q0, size_t q1, char *scratch) {
  if (c->isa == BG__ISA_AVX512)
    bf16_tile_avx512(c, q0, q1, scratch);
  else
    bf16_tile_generic(c, q0, q1, scratch);
}

#undef QB
#undef RB
#undef SPAN
