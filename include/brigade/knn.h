/* SPDX-License-Identifier: MIT */
/* bg_knn: exact nearest neighbours. For each query vector, the k database vectors with the
 * largest inner product (the lecture's question), the largest cosine similarity or the smallest
 * L2 distance. Scores exist one tile at a time and are folded into a running top-k, so memory
 * stays within a budget whatever the sizes. */
#ifndef BRIGADE_KNN_H
#define BRIGADE_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bg_knn_metric {
  BG_KNN_IP = 0, /* largest q . x */
  BG_KNN_COSINE, /* largest q . x / (|q| |x|); 0 when either vector is zero */
  BG_KNN_L2,     /* smallest |q - x|^2 (scores are squared distances). Ranked by
                    2 q.x - |x|^2, which loses the distances when the vectors share an offset
                    far larger than their spread: then bg_knn searches copies of both arrays
                    shifted by the database's mean (their bytes come out of the budget, beyond
                    the plan; a budget that cannot hold them is BG_ENOMEM with plan->why) */
  BG_KNN_METRIC_COUNT_
} bg_knn_metric_t;

typedef enum bg_dtype { BG_F32 = 0, BG_F64, BG_DTYPE_COUNT_ } bg_dtype_t;

/* How scores are computed (bg_knn_desc_t.precision, version 5). Both give the same answer. */
typedef enum bg_knn_precision {
  BG_KNN_EXACT = 0, /* every score in the dtype (the default) */
  /* f32 only: every pair scored first from bf16-rounded inputs (AMX's tiles or AVX-512 BF16's
   * dot products, bg_knn_cpu_kernel), with a proven bound on how far that score can be from the
   * fp32 one; only pairs whose bound reaches a query's running k-th best are scored again in fp32.
   * idx and scores are byte for byte those of BG_KNN_EXACT (ties included). Query blocks whose
   * near-ties make that re-scoring cost more than it saves run those rows in fp32
   * (plan->fallback_pairs).
   * Runs on the blocked backend ("auto" or "blocked"); on a CPU without AVX-512 BF16, or when
   * its buffers would pass the budget where the exact search's fit, the search runs exact
   * (plan->precision says "exact", plan->why why). On the lecture's dim-1000 cases it was
   * 2.1-2.8x exact on an AMD EPYC's AVX-512 BF16 and 2.65x on an Intel Xeon's AMX (whose
   * AVX-512 BF16 gave 0.4-0.6x), slower at dim 100 (docs/PERFORMANCE.md): measure before
   * choosing it. */
  BG_KNN_BF16,
  BG_KNN_PRECISION_COUNT_
} bg_knn_precision_t;

#define BG_KNN_DESC_VERSION 7u

/* Where a search's time went (bg_knn_desc_t.times, version 3). The cuda backend measures its
 * device work with CUDA events: each field sums the intervals of one activity, so transfers that
 * overlap the products count in full in both, and the fields may add up to more than wall_s.
 * CPU backends fill wall_s alone and leave the rest 0. */
typedef struct bg_knn_times {
  double h2d_s;    /* host-to-device copies: database and query tiles, norms */
  double gemm_s;   /* the products (cuBLAS) */
  double select_s; /* turning scores into keys and folding them into the running top-k */
  double d2h_s;    /* device-to-host copies of the results */
  double wall_s;   /* the whole bg_knn call, from its start to its return */
} bg_knn_times_t;

typedef struct bg_knn_desc {
  uint32_t version;       /* BG_KNN_DESC_VERSION, set by bg_knn_desc_init() */
  bg_dtype_t dtype;       /* of db, queries and scores; default BG_F32 */
  bg_knn_metric_t metric; /* default BG_KNN_IP */
  const void *db;         /* nb_txt x dim, row-major */
  size_t nb_txt;
  const void *queries; /* nb_new x dim, row-major */
  size_t nb_new;
  size_t dim;
  size_t k;            /* neighbours per query, 1 <= k <= nb_txt */
  const char *backend; /* "naive", "blocked", "blas", "cuda" or "auto" (NULL = "auto": blocked
                          on CPUs with FMA (AVX2 or AVX-512), else blas where OpenBLAS is built
                          in and dim >= 32) */
  uint64_t mem_budget; /* bytes brigade may allocate; 0 = half the memory available (a search
                          whose whole plan fits 16 MiB is planned in 16 MiB without reading it) */
  int64_t *idx;        /* OUT: nb_new x k indices, best first; ties to the lowest index */
  void *scores;        /* OUT: nb_new x k scores of dtype, or NULL */
  /* Version 2. With a pool of the "mpi" backend, db holds this rank's slice of the database
   * (nb_txt rows) and db_offset is the global index of its first row: rank 0's slice starts
   * at 0 and each rank's follows the previous one's. Queries, k, dim, dtype and metric are the
   * same on every rank; idx (global indices) and scores arrive on every rank. Ignored by the
   * other backends. */
  size_t db_offset;
  /* Version 3. OUT, optional: where the time went (bg_knn_times_t); written on success. */
  bg_knn_times_t *times;
  /* Version 4. A database larger than memory: with db NULL, bg_knn reads it in pieces through
   * db_read(db_ctx, row0, rows, dst), which copies rows [row0, row0 + rows) of the database
   * (nb_txt x dim of the dtype; under mpi, of this rank's slice) into dst and returns 0 or a
   * negative BG_E* that ends the search with that code. Pieces come in increasing row order,
   * each at most half the budget, the next one read (on a thread of bg_knn's own) while the
   * workers search the last, so resident memory stays within mem_budget plus the queries and
   * results whatever the database's size. bg_npy_read_rows() reads a .npy file this way. CPU
   * backends only (cuda: BG_EBACKEND). A NaN, an infinity or an overflowing score found in a
   * later piece ends the search with BG_EINVAL or BG_ERANGE after idx and scores were written
   * in part. */
  int (*db_read)(void *db_ctx, size_t row0, size_t rows, void *dst);
  void *db_ctx;
  /* Version 5. BG_KNN_EXACT or BG_KNN_BF16 (f32, blocked or auto only: BG_ENOTSUP otherwise).
   * With version 5 the plan written back has the fields after `why` up to fallback_pairs. */
  bg_knn_precision_t precision;
  /* Version 6: nothing new to set; with version 6 the plan written back has db_slices. */
  /* Version 7. Optional, beside db_read: where rows [row0, row0 + rows) of the database already
   * lie in memory (a file the caller has mapped), so that a piece is searched in place, without
   * the copy db_read makes; NULL to have that piece copied through db_read instead. Called on
   * bg_knn's reading thread for the pieces db_read would have read, in the same order; the rows
   * must stay readable until the second call after this one or the end of bg_knn (two pieces
   * are in use at once, as two buffers are otherwise). Not called for the l2 metric, whose
   * pieces are centred in place (so copied). Reading the view is the caller's risk: a mapped
   * file that another process truncates raises SIGBUS in the process (brigade knn catches it
   * and says so). */
  const void *(*db_view)(void *db_ctx, size_t row0, size_t rows);
} bg_knn_desc_t;

/** bg_knn_desc_init - zero @d, set its version and defaults. */
void bg_knn_desc_init(bg_knn_desc_t *d);

/* How a search is cut into tiles; what bg_knn_plan() decides before allocating anything. */
typedef struct bg_knn_plan {
  const char *backend; /* the backend that will run ("auto" resolved) */
  size_t tile_q;       /* queries per tile */
  size_t tile_db;      /* database vectors per tile */
  unsigned workers;    /* tiles processed at once */
  uint64_t bytes;      /* what brigade will allocate: tiles, packing, norms */
  uint64_t min_bytes;  /* the least any plan needs (1-query tiles); > budget means BG_ENOMEM */
  uint64_t budget;     /* the budget the plan was made for */
  /* Address space OpenBLAS maps for its own buffers, one per product running at once (blas
   * only; 0 otherwise). It counts against RLIMIT_AS (ulimit -v), where it may lower workers,
   * but not against the budget: the buffers' pages are mostly never touched. */
  uint64_t blas_bytes;
  /* Why the search was refused, a static sentence naming the limit, when bg_knn_plan() or
   * bg_knn() returns BG_ENOMEM or (for scores that would overflow) BG_ERANGE. On success, why a
   * search that asked for precision bf16 runs exact (no AVX-512 BF16, BRIGADE_KNN_ISA, the dim,
   * or bf16's buffers past the budget, where the exact search fits). NULL otherwise. */
  const char *why;
  /* Written only for a description of version 5 or later (older callers' plans end at why). */
  const char *precision; /* what scores the search: "exact" or "bf16" */
  /* bf16, counted by bg_knn() (0 from bg_knn_plan()): pairs scored in bf16, of them those scored
   * again in fp32 because their bound reached the running k-th best, and pairs scored in fp32
   * alone because their query block's near-ties made re-scoring cost more than it saved. The
   * blas backend counts pairs and rescored the same way: pairs OpenBLAS scored, and those its
   * certificate sent to be scored again in the blocked kernel's order (so that its answers are
   * the blocked kernel's, bit for bit). */
  uint64_t pairs, rescored, fallback_pairs;
  /* Written only for a description of version 6 or later. Database slices searched side by
   * side: with few queries (fewer than would keep every worker's vector lanes full) each worker
   * searches all of them against a slice of the database into a top-k of its own, and the
   * slices' top-k are merged at the end, ties still to the lowest index; 1 otherwise. */
  unsigned db_slices;
} bg_knn_plan_t;

/**
 * bg_knn_plan - check a description and plan its tiles for a pool, without allocating.
 * @pool: the pool that will run it (its worker count matters).
 * @d: the search.
 * @out: OUT: the plan; written on 0 and on BG_ENOMEM (then min_bytes says what is needed,
 * budget what there was, and why which limit it was).
 *
 * Under RLIMIT_AS the blas backend runs only as many products at once as OpenBLAS's buffers
 * (blas_bytes) fit in the address space left, so workers may be fewer than the pool's. For a
 * database read in pieces (db_read), bytes include the two pieces' buffers, and tile_db is the
 * CPU tile within a piece. For cuda, bytes and budget are device memory.
 *
 * Return: 0; BG_EINVAL (NULL pointers, k = 0 or k > nb_txt, dim = 0, unknown metric, dtype,
 * precision or version); BG_ERANGE (sizes whose products overflow); BG_ENOENT (unknown backend);
 * BG_ENOTSUP (backend not compiled in, e.g. blas without OpenBLAS, cuda without CUDA; bf16
 * precision with f64 or a backend other than blocked or auto); BG_EUNAVAIL (cuda: no GPU or driver
 * on this machine; bg_gpu_query says why); BG_ENOMEM (the budget cannot hold even the smallest
 * plan, or, for blas, the address space left by RLIMIT_AS cannot hold one of OpenBLAS's buffers
 * beside it). NaN inputs and overflowing scores are found by bg_knn(), which reads the inputs.
 */
int bg_knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *out);

/**
 * bg_knn - exact top-k search.
 * @pool: runs the tiles; nested calls from a task run inline.
 * @d: the search; its arrays are borrowed for the call.
 * @plan: OUT: optional; the plan used; also written on BG_ENOMEM and on BG_ERANGE for
 * overflowing scores, with plan->why saying why.
 *
 * Scores are computed in the dtype, so inputs are first checked (one pass over both arrays, in
 * double) against what the dtype can hold: when a norm, a dot product or a squared distance
 * could pass FLT_MAX (f32) or DBL_MAX (f64), as rows of 3e38 or data scaled by 1e20 do in f32,
 * the search is refused with BG_ERANGE instead of ranking infinities. On success every entry of
 * idx is a database index in [0, nb_txt) (plus db_offset under mpi): never -1.
 *
 * Return: 0; the errors of bg_knn_plan(); BG_EINVAL also when an input holds NaN or infinity;
 * BG_ERANGE also when the scores would overflow the dtype (use f64 or rescale the data), or,
 * should a score overflow all the same, when the search finds fewer than k finite scores for a
 * query (idx and scores are then unspecified); BG_ENOMEM also when an allocation fails. Nothing is
 * written to idx or scores on any refusal made before the search.
 */
int bg_knn(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan);

/** bg_knn_metric_name / bg_dtype_name - "ip", "cosine", "l2"; "f32", "f64"; "?" otherwise. */
const char *bg_knn_metric_name(bg_knn_metric_t m);
const char *bg_dtype_name(bg_dtype_t t);

/**
 * bg_knn_blas_degraded - 1 when OpenBLAS runs a kernel below what this CPU can do (an AVX2
 * kernel on an AVX-512 CPU, as OPENBLAS_CORETYPE=Haswell forces): the blas backend runs at
 * about half speed and `brigade info` warns. 0 otherwise or without OpenBLAS.
 */
int bg_knn_blas_degraded(void);

/**
 * bg_knn_cpu_kernel - the instructions the blocked backend's products use on this CPU for
 * @precision: "AVX-512", "AVX2" or "portable" for BG_KNN_EXACT; "AMX", "AVX-512 BF16",
 * "portable emulation" or "portable emulation of AMX" (the last two for tests) for BG_KNN_BF16,
 * NULL when bf16 does not run here (such searches run exact) or @precision is unknown.
 * BRIGADE_KNN_ISA (generic, avx2, avx512) caps the choice. A static string.
 */
const char *bg_knn_cpu_kernel(bg_knn_precision_t precision);

/** bg_knn_backend_available - 1 if the knn backend of that name is compiled in, else 0. */
int bg_knn_backend_available(const char *name);

#ifdef __cplusplus
}
#endif
#endif
