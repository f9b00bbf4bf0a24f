/* SPDX-License-Identifier: MIT */
/* The cuda knn backend's host-side decisions, in plain C so they run and are tested on machines
 * without a GPU: how a search is cut into tiles that fit the device's memory, the order in which
 * tiles are uploaded and consumed (two streams, double-buffered), and whether the GPU repays its
 * transfers at all. The device code (src/gpu/knn.cu) follows these decisions step by step. */
#ifndef BRIGADE_INTERNAL_GPU_PLAN_H
#define BRIGADE_INTERNAL_GPU_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the plan depends on. */
typedef struct bg__gpu_shape {
  size_t nb_txt, nb_new, dim, k;
  size_t elem; /* 4 (f32) or 8 (f64) */
  int norms;   /* cosine and L2 carry one norm per database row */
} bg__gpu_shape;

/* Bytes kept free beside the plan: cuBLAS's workspace (32 MiB on Hopper), the kernels' own
 * allocations and what other processes may take meanwhile. */
#define BG__GPU_RESERVE ((uint64_t)96 << 20)

/* Largest tiles: a score tile of 8192 x 32768 floats is 1 GiB, enough for cuBLAS to run at its
 * peak (each product is hundreds of GFLOP at the lecture's dim) and small enough that the
 * memory-wall case needs a few GiB, not its 37 GiB of scores. */
#define BG__GPU_TQ_MAX 8192
#define BG__GPU_TDB_MAX 32768

typedef struct bg__gpu_plan {
  bg__gpu_shape shape;
  size_t tq, tdb; /* queries and database rows per tile */
  size_t nq_tiles, ndb_tiles;
  int db_resident;          /* the database is uploaded once, tile by tile during the first query
                               tile, and kept on the device; otherwise tiles stream through two
                               buffers */
  unsigned q_bufs, db_bufs; /* buffers in rotation (2: the next upload overlaps this product) */
  uint64_t bytes;           /* device memory the plan allocates, the reserve included */
  uint64_t min_bytes;       /* the least any plan needs (1 x 1 tiles, streamed) */
  uint64_t budget;          /* what it was made for */
  const char *why;          /* set when refused */
} bg__gpu_plan;

/* Device bytes of a (tq, tdb) plan, resident or streamed. */
uint64_t bg__gpu_plan_bytes(const bg__gpu_shape *s, size_t tq, size_t tdb, int resident);

/* Plans within @budget device bytes. Return: 0; BG_ENOMEM (even 1 x 1 tiles do not fit: out's
 * min_bytes, budget and why say so); BG_ERANGE (k of 2^31 or more: the selection counts in 32
 * bits). */
int bg__gpu_plan_make(const bg__gpu_shape *s, uint64_t budget, bg__gpu_plan *out);

/* One step: a query tile against a database tile. The device code issues the uploads of step
 * s + 1 on its copy stream before the product of step s on its compute stream, so a buffer
 * written for s + 1 is never one that step s reads (tested in test_gpu_plan). */
typedef struct bg__gpu_step {
  size_t qt, dt;       /* query tile, database tile */
  size_t q0, nq;       /* its queries */
  size_t x0, nx;       /* its database rows */
  unsigned qbuf;       /* query buffer it reads */
  unsigned dbuf;       /* database buffer it reads (resident: 0, the rows at x0) */
  int load_q, load_db; /* uploads this step needs before its product */
  int first, last;     /* first and last database tile of its query tile: the running top-k
                          starts empty; the results go back to the host */
} bg__gpu_step;

size_t bg__gpu_steps(const bg__gpu_plan *p);
void bg__gpu_step_at(const bg__gpu_plan *p, size_t s, bg__gpu_step *out);

/* Rates that predict a search's time: the GPU's arithmetic, its host-to-device bandwidth and
 * the fixed cost of a search (context, handles, launches). */
typedef struct bg__gpu_rates {
  double gflops;   /* of the dtype, sustained by the products */
  double h2d_gbps; /* measured */
  double fixed_s;
} bg__gpu_rates;

/* Seconds a search would take on the GPU, the inputs' transfers included, and on @workers CPU
 * cores at @cpu_gflops each. */
double bg__gpu_predict_s(const bg__gpu_shape *s, const bg__gpu_rates *r);
double bg__cpu_predict_s(const bg__gpu_shape *s, unsigned workers, double cpu_gflops);

#ifdef __cplusplus
}
#endif
#endif
