/* SPDX-License-Identifier: MIT */
/* The knn engine's private parts: the plan, the per-search context shared by the tile tasks,
 * and the backend kernels. */
#ifndef BRIGADE_INTERNAL_KNN_H
#define BRIGADE_INTERNAL_KNN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "brigade/knn.h"
#include "internal/atomic.h"
#include "internal/pool_impl.h"

typedef enum bg__knn_kind {
  BG__KNN_NAIVE,
  BG__KNN_BLOCKED,
  BG__KNN_BLAS,
  BG__KNN_CUDA
} bg__knn_kind;

/* The blocked kernel's register block: two 64-byte vectors of queries (32 floats or 16
 * doubles) against this many database vectors, 2 x BG_KNN_RBLOCK accumulators of the 32
 * vector registers AVX-512 has. */
#define BG_KNN_RBLOCK 12
#define BG_KNN_QBLOCK_BYTES 128

/* Which build of the blocked kernel runs: the portable one, AVX2's (16 registers of 32 bytes) or
 * AVX-512's (32 of 64). Every build sums each score in the same order, so all three give the same
 * answers, bit for bit. */
typedef enum bg__knn_isa { BG__ISA_GENERIC = 0, BG__ISA_AVX2, BG__ISA_AVX512 } bg__knn_isa;

/* How precision bf16 runs: not at all (exact fp32), with AVX-512 BF16's instructions, with
 * AMX's tiles (the fp32 parts still AVX-512's), or with a portable emulation of either's
 * layout (BRIGADE_KNN_ISA=generic and generic-amx, so that every machine tests both).
 * BRIGADE_KNN_ISA=avx512 keeps AMX out. */
typedef enum bg__knn_bf16 {
  BG__BF16_OFF = 0,
  BG__BF16_AVX512,
  BG__BF16_AMX,
  BG__BF16_GENERIC,
  BG__BF16_GENERIC_AMX
} bg__knn_bf16;

/* Everything a tile task needs. I: set before the map; the per-worker scratch buffers are
 * claimed with an atomic flag each (A). */
typedef struct bg__knn_ctx {
  const bg_knn_desc_t *d;  /* I */
  bg__knn_kind kind;       /* I */
  bg__knn_isa isa;         /* I: the build of the blocked kernel to run */
  size_t tile_q, tile_db;  /* I */
  const void *db_norm;     /* I: |x|^2 (L2) or |x| (cosine) per database vector; NULL for ip */
  void *keys;              /* I: nb_new x k running ranking keys (desc->scores or our own) */
  char *scratch;           /* I: workers x scratch_size bytes */
  size_t scratch_size;     /* I */
  unsigned nscratch;       /* I */
  _Atomic int *busy;       /* A: one flag per scratch buffer */
  size_t ntasks;           /* I: query tiles times database slices */
  size_t x_base;           /* I: the global index of d->db's first row (a streamed piece's) */
  bg__knn_bf16 bf16;       /* I */
  void *bound;             /* I: B1, B2, C per database row (bf16: floats), B1, C (blas) */
  _Atomic uint64_t *stats; /* A: bf16 and blas: pairs, re-scored pairs, fallback pairs */
  unsigned slices;         /* I: database slices (plan->db_slices; 0 counts as 1) */
  int64_t *slice_idx;      /* I: slices 1.. fold into top-k lists of their own (slices.c) */
  void *slice_keys;        /* I */
  size_t list_base;        /* I: the first row folded into keys since they were last emptied */
} bg__knn_ctx;

/* norms.c: squared norms in double, the same bits in every build, on @pool (NULL: here).
 * bg__knn_max_sq_norm: the largest |v|^2 of @rows rows; BG_EINVAL for NaN or infinity.
 * bg__knn_sq_norm: |row i|^2. bg__knn_db_norms: |x| (cosine) or |x|^2 (L2) of d->db's rows. */
int bg__knn_max_sq_norm(bg_pool_t *pool, const void *v, size_t rows, size_t dim, bg_dtype_t t,
                        double *out);
double bg__knn_sq_norm(const bg_knn_desc_t *d, const void *rows, size_t i);
int bg__knn_db_norms(bg_pool_t *pool, const bg_knn_desc_t *d, void *norm);

/* values.c. bg__knn_scores_fit: 1 when no key formed from norms up to q2 and x2 can pass the
 * dtype. bg__knn_check_values: both inputs' largest norms (BG_EINVAL, BG_ERANGE).
 * bg__knn_init_topk: idx -1, keys -inf. bg__knn_all_found: no -1 left. bg__knn_finish_scores:
 * keys to scores (needs the queries the search ran on). */
int bg__knn_scores_fit(const bg_knn_desc_t *d, double q2, double x2);
const char *bg__knn_overflow_why(bg_dtype_t t);
int bg__knn_check_values(bg_pool_t *pool, const bg_knn_desc_t *d);
void bg__knn_init_topk(const bg_knn_desc_t *d, void *keys);
int bg__knn_all_found(const bg_knn_desc_t *d);
void bg__knn_finish_scores(const bg_knn_desc_t *d);

/* precision bf16 (cert.c, kernel_bf16.h). bg__knn_bf16_mode: how a description's search on
 * @kind runs. bg__knn_bf16_dim_ok: whether the bound is tight enough at this dim to be worth
 * it (bg__knn_bound_rows below computes its rows' constants). bg__knn_bf16_query: |query i| and its
 * bf16 residual's norm, rounded up. bg__knn_bf16_hw: AVX-512 BF16 present.
 * bg__knn_bf16_scratch_bytes: a worker's scratch for a (tq, tdb) tile. */
/* fp32 to bf16 bits, rounding to nearest even; values below the smallest normal become (signed)
 * zero, as AVX-512 BF16's conversion makes them. The kernel packs with it and cert.c measures
 * the rounding residuals with it, so both see the same rounding. Finite inputs only (bg_knn
 * refused the rest, and values whose rounding would reach infinity, above 1e19, overflow the
 * scores first). */
static inline uint32_t bg__knn_bf16_of(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  if ((b & 0x7f800000u) == 0)
    return (b >> 16) & 0x8000u;
  return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}

bg__knn_bf16 bg__knn_bf16_mode(const bg_knn_desc_t *d, bg__knn_kind kind);
int bg__knn_bf16_dim_ok(size_t dim);
void bg__knn_bf16_query(const bg_knn_desc_t *d, const void *queries, size_t i, float *q, float *r);
int bg__knn_bf16_hw(void);
uint64_t bg__knn_bf16_scratch_bytes(size_t tq, size_t tdb, size_t dim);
void bg__knn_tile_bf16(const bg__knn_ctx *c, size_t q0, size_t q1, char *scratch);

/* amx.c: bf16's products on AMX tiles. bg__knn_amx_usable: the CPU has AMX-BF16 and Linux
 * granted this process the tile state (asked once). bg__knn_amx_begin / _end: configure this
 * thread's tiles for the block below / release them. bg__knn_amx_block: the RB x QB bf16 sums of
 * RB consecutive database rows (@x, @xs words a row, a multiple of 16, zero-padded) and a query
 * block (@qp, pair-major, @xs pair rows of QB words) into out[r * QB + l].
 * bg__knn_amx_block_emulated: the same in C, on any CPU. */
int bg__knn_amx_usable(void);
void bg__knn_amx_begin(void);
void bg__knn_amx_end(void);
void bg__knn_amx_block(const uint32_t *qp, const uint32_t *x, size_t xs, float *out);
void bg__knn_amx_block_emulated(const uint32_t *qp, const uint32_t *x, size_t xs, float *out);

/* The certificates' constants (cert.c). bg__knn_bound_bytes: what @rows database rows' take
 * for @kind (0: none; bf16: 3 floats a row; blas: 2 of the dtype). bg__knn_bound_rows: those of
 * d->db's rows into @bc on @pool, @norm the kernel's db_norm (NULL for ip). bg__knn_blas_query:
 * |query i| rounded up, in the dtype, into @q. */
uint64_t bg__knn_bound_bytes(const bg_knn_desc_t *d, bg__knn_kind kind, size_t rows);
int bg__knn_bound_rows(bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind, const void *norm,
                       void *bc);
void bg__knn_blas_query(const bg_knn_desc_t *d, size_t i, void *q);

/* Writes @src to the caller's @dst as far as the description's version knows the plan: whole
 * for version 6, up to fallback_pairs for 5, up to and including why before. */
void bg__knn_put_plan(const bg_knn_desc_t *d, bg_knn_plan_t *dst, const bg_knn_plan_t *src);

/* A database split across workers (slices.c). bg__knn_slice_bytes: the slices' own top-k lists
 * and the merge's row. bg__knn_slice: @c narrowed to slice @s of its database, in @sd and @sc;
 * 0 when the slice is empty. bg__knn_merge_slices: every slice's lists merged into c->keys and
 * c->d->idx. */
uint64_t bg__knn_slice_bytes(const bg_knn_desc_t *d, unsigned slices);
int bg__knn_slice(const bg__knn_ctx *c, unsigned s, bg_knn_desc_t *sd, bg__knn_ctx *sc);
void bg__knn_merge_slices(const bg__knn_ctx *c);

/* Folds c->d's database (c->x_base its first row's index) into the running top-k: the norms,
 * then every query tile on the pool. */
int bg__knn_cpu_fold(bg_pool_t *pool, bg__knn_ctx *c);

/* A database read in pieces (stream.c): the whole search, for a description whose db is NULL
 * and db_read set. */
int bg__knn_stream(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan);
int bg__knn_stream_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                        bg_knn_plan_t *out);

/* The best build of the blocked kernel this CPU runs, no better than BRIGADE_KNN_ISA ("generic",
 * "avx2") asks for. */
bg__knn_isa bg__knn_isa_here(void);

/* Plans tiles for a validated description. */
int bg__knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                 bg_knn_plan_t *out);

/* What one worker's scratch holds for a (tq, tdb) tile: the score tile for blas; the tile's
 * packed queries for blocked; nothing for naive. */
uint64_t bg__knn_scratch_bytes(const bg_knn_desc_t *d, bg__knn_kind kind, size_t tq, size_t tdb);

/* Resolves a backend name ("auto" by shape, and by whether a GPU repays the transfers against
 * the pool's @workers). Return: 0, BG_ENOENT, BG_ENOTSUP, BG_EUNAVAIL (cuda without a GPU). */
int bg__knn_backend(const char *name, const bg_knn_desc_t *d, unsigned workers, bg__knn_kind *out);

/* One query tile [q0, q1) against the whole database, folded into the running top-k. */
void bg__knn_tile_f32(const bg__knn_ctx *c, size_t q0, size_t q1, char *scratch);
void bg__knn_tile_f64(const bg__knn_ctx *c, size_t q0, size_t q1, char *scratch);

/* The BLAS product of a tile (scores = Q X^T), or BG_ENOTSUP without OpenBLAS. Row-major,
 * s has ld = nx. */
int bg__blas_gemm_f32(const float *q, size_t nq, const float *x, size_t nx, size_t dim, float *s);
int bg__blas_gemm_f64(const double *q, size_t nq, const double *x, size_t nx, size_t dim,
                      double *s);
int bg__blas_available(void);

/* Sets OpenBLAS's own thread count and returns the previous one (no-op without OpenBLAS). */
int bg__blas_threads(int n);

/* Address space OpenBLAS maps, once, for each thread that runs a product at the same time as
 * others (its per-thread work buffer); 0 without OpenBLAS. */
uint64_t bg__blas_buffer_bytes(void);

/* The kernel OpenBLAS picked for this CPU ("Haswell", "SkylakeX", ...), NULL without it. */
const char *bg__blas_corename(void);

/* L2 on vectors whose common offset dominates their spread (centre.c): @out becomes @d with
 * db and queries replaced by copies shifted by the database's mean (*copy, to free with @a),
 * when that offset would cost the expansion 2 q.x - |x|^2 its precision; otherwise @out is @d
 * and *copy NULL. @room: the bytes the budget has left; copies that do not fit it are done
 * without when the offset costs less than half the dtype's precision (or the database has one
 * row: nothing to rank). Return: 0; BG_ENOMEM (copies needed that do not fit @room, or an
 * allocation failed). */
int bg__knn_centre(const bg_knn_desc_t *d, const bg_allocator_t *a, uint64_t room,
                   bg_knn_desc_t *out, void **copy);

/* The parts of it a streamed search uses on its first piece: bg__knn_centre_shift fills
 * @shift (dim doubles) with d->db's sampled mean, rounded to the dtype, and returns 1 when L2
 * should run centred, setting @must when going without would leave less than half the dtype's
 * precision; bg__knn_shift_rows writes @rows rows of @src less @shift to @dst (which may be
 * @src). */
int bg__knn_centre_shift(const bg_knn_desc_t *d, double *shift, int *must);
void bg__knn_shift_rows(const bg_knn_desc_t *d, const void *src, size_t rows, const double *shift,
                        void *dst);

/* The cuda backend's host side (knn_cuda.c). bg__knn_cuda_plan plans against device 0's free
 * memory (or mem_budget, the smaller) and fills @out as bg_knn_plan() reports it; its errors
 * are bg__gpu_plan_make's and bg__gpu_device's. bg__knn_cuda_pays: 1 when a GPU is present and
 * predicted to finish the search before @workers CPU cores. bg__knn_cuda_run: the search, @keys
 * and d->idx sorted best first, @why set on failure. */
struct bg__gpu_plan;
int bg__knn_cuda_plan(const bg_knn_desc_t *d, struct bg__gpu_plan *gp, bg_knn_plan_t *out);
int bg__knn_cuda_pays(const bg_knn_desc_t *d, unsigned workers, int avx512);
int bg__knn_cuda_run(const bg_knn_desc_t *d, const struct bg__gpu_plan *gp, const void *norm,
                     void *keys, const bg_allocator_t *a, const char **why);

/* Sorts each of d->nb_new rows of k (key, d->idx) pairs best first, ties to the lowest index;
 * @scratch holds 16 bytes per k. */
void bg__knn_cuda_sort(const bg_knn_desc_t *d, void *keys, void *scratch);

#endif
