/* SPDX-License-Identifier: MIT */
/* The knn suite: the lecture's part-2 table. Each case (nb_txt, dim, nb_new) runs every knn
 * backend on the same seeded inputs, beside OpenBLAS's bare sgemm on the same product (the
 * ceiling a top-k search can approach) and, for the cuda backend, cuBLAS's (cublas-sgemm),
 * checks that every backend found the same neighbours, and explains what the numbers mean:
 * GFLOP/s against sgemm, speedup over the naive loop, where the GPU's time went, and the memory
 * the lecture's NumPy and PyTorch would have needed. */
#ifndef BRIGADE_BENCH_KNN_H
#define BRIGADE_BENCH_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/knn.h"
#include "peers.h"
#include "result.h"

#define BENCH_KNN_MAX_BACKENDS 10
#define BENCH_KNN_MAX_SHAPES 16

/* One search: nb_txt database vectors of dim floats, nb_new queries. */
typedef struct bench_knn_shape {
  size_t nb_txt, dim, nb_new;
} bench_knn_shape;

typedef struct bench_knn_opts {
  /* naive, blocked, bf16, file, blas, auto, sgemm, cuda, cublas-sgemm */
  const char *backends[BENCH_KNN_MAX_BACKENDS];
  size_t nbackends;
  unsigned workers;                             /* 0: one per core */
  unsigned repeat;                              /* timed runs per row (fewer when a run is long) */
  int lecture;                                  /* the lecture's sizes instead of the quick ones */
  bench_knn_shape shapes[BENCH_KNN_MAX_SHAPES]; /* the user's cases instead of the suite's */
  size_t nshapes;                               /* 0: the suite's */
  double max_seconds;       /* skip a row predicted to take longer than this per run */
  uint64_t mem_budget;      /* 0: each case's own (the memory-wall case: 1 GiB, quick: 32 MiB) */
  int progress;             /* a progress line on stderr */
  const bench_peers *peers; /* also run NumPy, PyTorch and faiss on each case; NULL: no */
} bench_knn_opts;

/* The knn suite's own (static) spelling of a backend name --backends may give, or NULL; and
 * the default list (every one compiled in, and the GPU rows where a GPU is found). */
const char *bench_knn_backend_name(const char *name);
void bench_knn_default_backends(bench_knn_opts *o);

/* Runs the suite into res. Returns 0; BG_ECANCELED after a Ctrl-C; BG_ENOMEM when a pool or
 * an input cannot be allocated (err says which). A case whose inputs do not fit in memory is
 * skipped with a note, not an error. */
int bench_knn(const bench_knn_opts *o, bench_result *res, char *err, size_t cap);

/* Rows first..first+rows-1 of a seeded rows x dim matrix of values uniform in [0, 1), like
 * NumPy's np.random.rand; a slice equals the same rows generated whole. malloc'd, NULL when
 * out of memory. */
void *bench_knn_random(size_t first, size_t rows, size_t dim, bg_dtype_t t, uint64_t seed);

/* The blocks of scores bench_sgemm_seconds computes, rows x cols within block_bytes: whole
 * database rows when one fits (the usual case), else part of one query's row, so that a
 * database of billions of vectors neither asks for a score row of its size nor passes an int. */
void bench_sgemm_blocks(size_t nb_txt, size_t nb_new, uint64_t block_bytes, size_t *rows,
                        size_t *cols);

/* OpenBLAS's sgemm alone on the search's product: S = Q X^T in the blocks above, on `threads`
 * OpenBLAS threads, nothing else; dim at most INT_MAX (OpenBLAS's sizes are ints; the CLI and
 * bg_knn refuse more). Returns the seconds taken, or -1 when OpenBLAS is not built in or the
 * block cannot be allocated. */
double bench_sgemm_seconds(const float *db, size_t nb_txt, const float *q, size_t nb_new,
                           size_t dim, unsigned threads, uint64_t block_bytes);

#endif
