/* SPDX-License-Identifier: MIT */
/* bg_knn: validate, plan, allocate within the plan, run one task per query tile on the pool,
 * then turn ranking keys into the metric's scores. */
#include "brigade/error.h"
#include "brigade/gpu.h"
#include "brigade/map.h"
#include "brigade/topo.h"
#include "internal/clock.h"
#include "internal/dist.h"
#include "internal/gpu_knn.h"
#include "internal/knn.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void bg_knn_desc_init(bg_knn_desc_t *d) {
  memset(d, 0, sizeof *d);
  d->version = BG_KNN_DESC_VERSION;
  d->backend = "auto";
}

const char *bg_knn_metric_name(bg_knn_metric_t m) {
  static const char *const names[] = {"ip", "cosine", "l2"};
  return (unsigned)m < BG_KNN_METRIC_COUNT_ ? names[m] : "?";
}

const char *bg_dtype_name(bg_dtype_t t) {
  return t == BG_F32 ? "f32" : t == BG_F64 ? "f64" : "?";
}

int bg_knn_backend_available(const char *name) {
  if (!name)
    return 0;
  if (!strcmp(name, "blas"))
    return bg__blas_available();
  if (!strcmp(name, "cuda")) {
    bg_gpu_info_t g;
    return bg_gpu_query(&g) != BG_ENOTSUP;
  }
  return !strcmp(name, "naive") || !strcmp(name, "blocked") || !strcmp(name, "auto");
}

/* Whether OpenBLAS runs an AVX-512 kernel on a CPU that has AVX-512. OPENBLAS_CORETYPE=Haswell
 * (set in some environments) forces its AVX2 kernels and halves its speed there; the blocked
 * backend, which picks its own kernel, does not depend on it. */
int bg_knn_blas_degraded(void) {
  const char *core = bg__blas_corename();
  if (!core || !__builtin_cpu_supports("avx512f"))
    return 0;
  return !strstr(core, "SkylakeX") && !strstr(core, "Cooperlake") && !strstr(core, "Sapphire");
}

/* The AVX-512 build of the blocked kernel when the CPU has AVX-512 and FMA, else the AVX2 build
 * when it has AVX2 and FMA, else the portable one. BRIGADE_KNN_ISA=generic or avx2 caps the
 * choice, to compare the builds or to test a lesser one on a better CPU (and avx512 keeps
 * precision bf16 off AMX, bg__knn_bf16_mode). */
bg__knn_isa bg__knn_isa_here(void) {
  const char *cap = getenv("BRIGADE_KNN_ISA");
  bg__knn_isa most = !cap                      ? BG__ISA_AVX512
                     : !strcmp(cap, "generic") ? BG__ISA_GENERIC
                     : !strcmp(cap, "avx2")    ? BG__ISA_AVX2
                                               : BG__ISA_AVX512;
  if (!__builtin_cpu_supports("fma"))
    return BG__ISA_GENERIC;
  if (most >= BG__ISA_AVX512 && __builtin_cpu_supports("avx512f"))
    return BG__ISA_AVX512;
  return most >= BG__ISA_AVX2 && __builtin_cpu_supports("avx2") ? BG__ISA_AVX2 : BG__ISA_GENERIC;
}

/* auto: the GPU when one is present and predicted to finish first, transfers included
 * (knn_cuda.c); else on the CPU, with answers that are the blocked kernel's bit for bit
 * whichever it picks (the blas backend through its certificate, cert.c), so a search split over
 * MPI ranks, tiled under another budget or run on another CPU answers the same:
 * - with AVX-512 or AVX2 (and FMA), the blocked kernel: with AVX-512 it matched or beat
 *   OpenBLAS's best sgemm alone (no top-k) on every lecture case measured; on an AMD EPYC (Zen 1)
 *   with AVX2 alone it beat the certified blas backend at every dim measured, 1.5x at 100 and
 *   128, 1.26x at 256 to 512 and 1.12x at 1000 (docs/PERFORMANCE.md);
 * - elsewhere (no FMA), blas when present and the dim amortises its packing, else the portable
 *   build.
 * naive is only ever a baseline. */
static int is_auto(const char *name) {
  return !name || !strcmp(name, "auto");
}

static bg__knn_kind cpu_auto(const bg_knn_desc_t *d) {
  return bg__knn_isa_here() == BG__ISA_GENERIC && bg__blas_available() && d->dim >= 32
             ? BG__KNN_BLAS
             : BG__KNN_BLOCKED;
}

/* auto's blas plan refused (its constants past the budget, OpenBLAS's buffers past RLIMIT_AS):
 * the blocked kernel, which needs less, plans it instead. */
static int cpu_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                    bg_knn_plan_t *out) {
  int rc = bg__knn_plan(pool, d, kind, out);
  if (rc == BG_ENOMEM && kind == BG__KNN_BLAS && is_auto(d->backend))
    rc = bg__knn_plan(pool, d, BG__KNN_BLOCKED, out);
  return rc;
}

int bg__knn_backend(const char *name, const bg_knn_desc_t *d, unsigned workers, bg__knn_kind *out) {
  if (is_auto(name)) {
    *out = bg__knn_cuda_pays(d, workers, bg__knn_isa_here() == BG__ISA_AVX512) ? BG__KNN_CUDA
                                                                               : cpu_auto(d);
    return BG_OK;
  }
  if (!strcmp(name, "naive"))
    *out = BG__KNN_NAIVE;
  else if (!strcmp(name, "blocked"))
    *out = BG__KNN_BLOCKED;
  else if (!strcmp(name, "blas"))
    *out = BG__KNN_BLAS;
  else if (!strcmp(name, "cuda")) {
    /* Not built (no nvcc at configure: BG_ENOTSUP) or no device or driver here (BG_EUNAVAIL;
     * bg_gpu_query says why). */
    bg_gpu_info_t g;
    int rc = bg_gpu_query(&g);
    *out = BG__KNN_CUDA;
    return rc;
  } else
    return BG_ENOENT;
  return *out == BG__KNN_BLAS && !bg__blas_available() ? BG_ENOTSUP : BG_OK;
}

static int mul_ok(size_t a, size_t b, size_t *r) {
  return !__builtin_mul_overflow(a, b, r);
}

static int check_desc(const bg_knn_desc_t *d) {
  if (d->version == 0 || d->version > BG_KNN_DESC_VERSION)
    return BG_EINVAL;
  if ((unsigned)d->dtype >= BG_DTYPE_COUNT_ || (unsigned)d->metric >= BG_KNN_METRIC_COUNT_)
    return BG_EINVAL;
  if (d->version >= 5 && (unsigned)d->precision >= BG_KNN_PRECISION_COUNT_)
    return BG_EINVAL;
  int streamed = !d->db && d->version >= 4 && d->db_read;
  if ((!d->db && !streamed) || !d->queries || !d->idx || d->dim == 0 || d->nb_txt == 0 ||
      d->k == 0 || d->k > d->nb_txt)
    return BG_EINVAL;
  size_t e = d->dtype == BG_F64 ? 8 : 4, a, b;
  if (!mul_ok(d->nb_txt, d->dim, &a) || !mul_ok(a, e, &a) || !mul_ok(d->nb_new, d->dim, &b) ||
      !mul_ok(b, e, &b) || !mul_ok(d->nb_new, d->k, &b) || !mul_ok(b, 8, &b) ||
      d->nb_txt > (size_t)INT64_MAX || d->dim > 0x7fffffff)
    return BG_ERANGE;
  return BG_OK;
}

static int wants_bf16(const bg_knn_desc_t *d) {
  return d->version >= 5 && d->precision == BG_KNN_BF16;
}

bg__knn_bf16 bg__knn_bf16_mode(const bg_knn_desc_t *d, bg__knn_kind kind) {
  if (!wants_bf16(d) || d->dtype != BG_F32 || kind != BG__KNN_BLOCKED ||
      !bg__knn_bf16_dim_ok(d->dim))
    return BG__BF16_OFF;
  const char *isa = getenv("BRIGADE_KNN_ISA");
  if (isa && !strcmp(isa, "generic-amx"))
    return BG__BF16_GENERIC_AMX;
  if (bg__knn_isa_here() == BG__ISA_AVX512) {
    if (!bg__knn_bf16_hw())
      return BG__BF16_OFF;
    return (!isa || strcmp(isa, "avx512")) && bg__knn_amx_usable() ? BG__BF16_AMX : BG__BF16_AVX512;
  }
  return isa && !strcmp(isa, "generic") ? BG__BF16_GENERIC : BG__BF16_OFF;
}

const char *bg_knn_cpu_kernel(bg_knn_precision_t precision) {
  if (precision == BG_KNN_BF16) {
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.precision = BG_KNN_BF16, d.dim = 1;
    switch (bg__knn_bf16_mode(&d, BG__KNN_BLOCKED)) {
    case BG__BF16_AMX:
      return "AMX";
    case BG__BF16_AVX512:
      return "AVX-512 BF16";
    case BG__BF16_GENERIC:
      return "portable emulation";
    case BG__BF16_GENERIC_AMX:
      return "portable emulation of AMX";
    default:
      return NULL;
    }
  }
  if (precision != BG_KNN_EXACT)
    return NULL;
  switch (bg__knn_isa_here()) {
  case BG__ISA_AVX512:
    return "AVX-512";
  case BG__ISA_AVX2:
    return "AVX2";
  default:
    return "portable";
  }
}

void bg__knn_put_plan(const bg_knn_desc_t *d, bg_knn_plan_t *dst, const bg_knn_plan_t *src) {
  if (d->version >= 6)
    *dst = *src;
  else
    memcpy(dst, src,
           d->version == 5 ? offsetof(bg_knn_plan_t, db_slices)
                           : offsetof(bg_knn_plan_t, precision));
}

/* The backend a description runs on. bf16 is the blocked kernel's: auto takes it (rather than
 * the GPU) when it runs here; f64 or another explicit backend cannot run it. */
static int resolve(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind *kind) {
  int rc = bg__knn_backend(d->backend, d, pool->workers, kind);
  if (!wants_bf16(d) || rc == BG_ENOENT)
    return rc;
  if (d->dtype != BG_F32 || (!is_auto(d->backend) && strcmp(d->backend, "blocked")))
    return BG_ENOTSUP;
  if (rc != 0)
    return rc;
  if (is_auto(d->backend) && bg__knn_bf16_mode(d, BG__KNN_BLOCKED) != BG__BF16_OFF)
    *kind = BG__KNN_BLOCKED;
  return BG_OK;
}

static int plan_search(const bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *out);

/* Why a search that asked for precision bf16 runs exact (plan->why), NULL when it runs bf16 or
 * did not ask. */
static const char *bf16_exact_why(const bg_knn_desc_t *d) {
  if (!wants_bf16(d) || bg__knn_bf16_mode(d, BG__KNN_BLOCKED) != BG__BF16_OFF)
    return NULL;
  if (!bg__knn_bf16_dim_ok(d->dim))
    return "bf16 ran exact: at this dim its error bound is too loose to rule pairs out";
  if (bg__knn_bf16_hw() && bg__knn_isa_here() != BG__ISA_AVX512)
    return "bf16 ran exact: BRIGADE_KNN_ISA keeps it off this CPU's AVX-512 BF16";
  return "bf16 ran exact: this CPU has no AVX-512 BF16";
}

/* plan_search, then: bf16 whose buffers (a tile's bf16 copies, the bound's constants) do not fit
 * the budget where the exact search's do runs exact, from @exact, a copy of the description
 * that *d then points to: the same answer, within the budget. */
static int plan_or_exact(const bg_pool_t *pool, const bg_knn_desc_t **d, bg_knn_desc_t *exact,
                         bg_knn_plan_t *out) {
  int rc = plan_search(pool, *d, out);
  if (rc == BG_ENOMEM && wants_bf16(*d) && bg__knn_bf16_mode(*d, BG__KNN_BLOCKED) != BG__BF16_OFF) {
    *exact = **d;
    exact->precision = BG_KNN_EXACT;
    bg_knn_plan_t e = {0};
    if (plan_search(pool, exact, &e) == 0) {
      *out = e;
      out->why = "bf16 ran exact: its buffers do not fit the memory budget, the exact search's do";
      *d = exact;
      return 0;
    }
  }
  if (rc == 0 && !out->why)
    out->why = bf16_exact_why(*d);
  return rc;
}

int bg_knn_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *out) {
  if (!pool || !d || !out)
    return BG_EINVAL;
  bg_knn_plan_t p = {0};
  bg_knn_desc_t exact;
  int rc = plan_or_exact(pool, &d, &exact, &p);
  if (p.backend)
    bg__knn_put_plan(d, out, &p);
  return rc;
}

static int plan_search(const bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *out) {
  int rc = check_desc(d);
  if (rc != 0)
    return rc;
  bg__knn_kind kind;
  rc = resolve(pool, d, &kind);
  if (rc != 0)
    return rc;
  /* A streamed database runs on the CPU: auto's GPU choice gives way to its CPU one. */
  if (!d->db) {
    if (kind == BG__KNN_CUDA && is_auto(d->backend))
      kind = cpu_auto(d);
    rc = bg__knn_stream_plan(pool, d, kind, out);
    if (rc == BG_ENOMEM && kind == BG__KNN_BLAS && is_auto(d->backend))
      rc = bg__knn_stream_plan(pool, d, BG__KNN_BLOCKED, out);
    return rc;
  }
  if (kind == BG__KNN_CUDA) {
    bg__gpu_plan gp;
    rc = bg__knn_cuda_plan(d, &gp, out);
    /* auto's GPU cannot plan this search (k past its selection's range, too little device
     * memory): the CPU, which plans against host memory, takes it. */
    if (rc == 0 || !is_auto(d->backend))
      return rc;
    kind = cpu_auto(d);
  }
  return cpu_plan(pool, d, kind, out);
}

/* Claims a free scratch buffer. At most nscratch tasks run at once (one per worker), so one is
 * always free. */
static unsigned claim(const bg__knn_ctx *c) {
  for (;;) {
    for (unsigned s = 0; s < c->nscratch; s++) {
      int expected = 0;
      if (atomic_compare_exchange_strong(&c->busy[s], &expected, 1))
        return s;
    }
  }
}

static void run_tile(const bg__knn_ctx *c, size_t i, char *scratch) {
  size_t q0 = i * c->tile_q, q1 = q0 + c->tile_q;
  if (q1 > c->d->nb_new)
    q1 = c->d->nb_new;
  if (c->bf16)
    bg__knn_tile_bf16(c, q0, q1, scratch);
  else if (c->d->dtype == BG_F64)
    bg__knn_tile_f64(c, q0, q1, scratch);
  else
    bg__knn_tile_f32(c, q0, q1, scratch);
}

/* Task i: query tile i / slices against database slice i % slices, so that the slices of a
 * tile run side by side. */
static void run_task(const bg__knn_ctx *c, size_t i, char *scratch) {
  if (c->slices < 2) {
    run_tile(c, i, scratch);
    return;
  }
  bg_knn_desc_t sd;
  bg__knn_ctx sc;
  if (bg__knn_slice(c, (unsigned)(i % c->slices), &sd, &sc))
    run_tile(&sc, i / c->slices, scratch);
}

static int tile_task(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  const bg__knn_ctx *c = ctx;
  unsigned s = claim(c);
  run_task(c, i, c->scratch + (size_t)s * c->scratch_size);
  /* Release pairs with the acquire in the next claim's compare-exchange (seq_cst). */
  atomic_store_explicit(&c->busy[s], 0, memory_order_release);
  return 0;
}

/* When the plan allows fewer tiles at once than the pool has workers (blas under RLIMIT_AS),
 * each of nscratch lanes takes every nscratch-th tile with its own scratch buffer, so no more
 * than nscratch products run at once and no worker spins in claim() waiting for a buffer. */
static int lane_task(void *out, const void *in, size_t lane, void *ctx) {
  (void)out, (void)in;
  const bg__knn_ctx *c = ctx;
  for (size_t i = lane; i < c->ntasks; i += c->nscratch)
    run_task(c, i, c->scratch + lane * c->scratch_size);
  return 0;
}

int bg__knn_cpu_fold(bg_pool_t *pool, bg__knn_ctx *c) {
  const bg_knn_desc_t *d = c->d;
  int rc = c->db_norm ? bg__knn_db_norms(pool, d, (void *)c->db_norm) : 0;
  if (rc == 0 && c->bound)
    rc = bg__knn_bound_rows(pool, d, c->kind, c->db_norm, c->bound);
  if (rc != 0)
    return rc;
  /* Slices 1.. fold into lists of their own, empty at every call (a streamed piece's too). */
  void *lists = NULL;
  if (c->slices > 1) {
    size_t list = d->nb_new * d->k, n = (c->slices - 1) * list + d->k;
    if (!(lists = bg__pool_alloc(&pool->alloc, (size_t)bg__knn_slice_bytes(d, c->slices))))
      return BG_ENOMEM;
    c->slice_idx = lists;
    c->slice_keys = c->slice_idx + n;
    bg_knn_desc_t sd = *d;
    sd.nb_new = (c->slices - 1) * d->nb_new;
    sd.idx = c->slice_idx;
    bg__knn_init_topk(&sd, c->slice_keys);
  }
  int blas_threads = c->kind == BG__KNN_BLAS ? bg__blas_threads(1) : 0;
  bg_map_desc_t m;
  bg_map_desc_init(&m);
  m.ctx = c;
  c->ntasks = (d->nb_new + c->tile_q - 1) / c->tile_q * (c->slices > 1 ? c->slices : 1);
  int lanes = c->nscratch < pool->workers && c->nscratch < c->ntasks;
  m.flags = BG_MAP_NO_HISTORY; /* tiles cost what the search's shape makes them */
  m.fn = lanes ? lane_task : tile_task;
  m.n = lanes ? c->nscratch : c->ntasks;
  rc = bg_map(pool, &m, NULL);
  if (c->kind == BG__KNN_BLAS)
    bg__blas_threads(blas_threads);
  if (rc == 0 && lists)
    bg__knn_merge_slices(c);
  bg__pool_free(&pool->alloc, lists);
  return rc;
}

static int run(bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_ctx *c) {
  bg__knn_init_topk(d, c->keys);
  int rc = bg__knn_cpu_fold(pool, c);
  if (rc == 0 && !bg__knn_all_found(d))
    return BG_ERANGE;
  if (rc == 0)
    bg__knn_finish_scores(d);
  return rc;
}

/* The GPU's search: norms and result keys on the host as for the CPU backends, the tiles on the
 * device (knn_cuda.c). A CUDA failure leaves its message in p->why. */
static int run_cuda(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *p) {
  const bg_allocator_t *a = &pool->alloc;
  bg__gpu_plan gp;
  int rc = bg__knn_cuda_plan(d, &gp, p);
  if (rc != 0)
    return rc;
  size_t e = d->dtype == BG_F64 ? 8 : 4;
  void *norm = NULL, *own_keys = NULL;
  rc = BG_ENOMEM;
  p->why = "no host memory for the database's norms or the result keys";
  if (d->metric != BG_KNN_IP && !(norm = bg__pool_alloc(a, d->nb_txt * e)))
    goto done;
  if (!d->scores && !(own_keys = bg__pool_alloc(a, d->nb_new * d->k * e)))
    goto done;
  p->why = NULL;
  if (norm && (rc = bg__knn_db_norms(pool, d, norm)) != 0)
    goto done;
  rc = bg__knn_cuda_run(d, &gp, norm, d->scores ? d->scores : own_keys, a, &p->why);
  if (rc == 0 && !bg__knn_all_found(d)) {
    rc = BG_ERANGE;
    p->why = bg__knn_overflow_why(d->dtype);
  }
  if (rc == 0)
    bg__knn_finish_scores(d);
done:
  bg__pool_free(a, own_keys);
  bg__pool_free(a, norm);
  return rc;
}

/* Host memory the centred copies of L2 may take: what the budget leaves beside a CPU plan; for
 * the GPU, whose plan counts device memory, the budget or half the host's available memory. */
static uint64_t centre_room(const bg_knn_desc_t *d, const bg_knn_plan_t *p) {
  if (strcmp(p->backend, "cuda"))
    return p->budget > p->bytes ? p->budget - p->bytes : 0;
  uint64_t avail;
  if (d->mem_budget)
    return d->mem_budget;
  return bg_mem_available(&avail) == 0 ? avail / 2 : (uint64_t)1 << 30;
}

static int search(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan);

int bg_knn(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  uint64_t t0 = bg__now_ns();
  int rc = search(pool, d, plan);
  if (rc == 0 && d->version >= 3 && d->times)
    d->times->wall_s = (double)(bg__now_ns() - t0) / 1e9;
  return rc;
}

static int search(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  if (pool && d && pool->ops->collective)
    return d->version >= 2 ? bg__knn_mpi(pool, d, plan) : BG_EINVAL;
  if (d && d->version >= 3 && d->times)
    *d->times = (bg_knn_times_t){0};
  bg_knn_plan_t p = {0};
  bg_knn_desc_t exact;
  int rc = !pool || !d ? BG_EINVAL : plan_or_exact(pool, &d, &exact, &p);
  if (rc != 0) {
    if ((rc == BG_ENOMEM || rc == BG_ERANGE) && plan)
      bg__knn_put_plan(d, plan, &p);
    return rc;
  }
  if (!d->db) {
    bg_knn_desc_t sd = *d;
    sd.backend = p.backend; /* auto resolved once, by the plan */
    rc = bg__knn_stream(pool, &sd, plan);
    if (rc == 0 && plan && p.why) /* the stream plans again: why bf16 ran exact, kept */
      plan->why = p.why;
    return rc;
  }
  /* Before anything is allocated or searched: one pass over the inputs. */
  rc = bg__knn_check_values(pool, d);
  if (rc != 0) {
    if (rc == BG_ERANGE && plan) {
      p.why = bg__knn_overflow_why(d->dtype);
      bg__knn_put_plan(d, plan, &p);
    }
    return rc;
  }
  /* L2 far from the origin runs on centred copies (centre.c), within what the plan left. */
  const bg_allocator_t *a = &pool->alloc;
  bg_knn_desc_t centred;
  void *copy = NULL;
  rc = bg__knn_centre(d, a, centre_room(d, &p), &centred, &copy);
  if (rc != 0) {
    p.why = "the vectors lie far from the origin for their spread, and the centred copies L2 "
            "then searches do not fit the budget: subtract their mean first, or raise the budget";
    if (plan)
      bg__knn_put_plan(d, plan, &p);
    return rc;
  }
  d = &centred;
  if (!strcmp(p.backend, "cuda")) {
    rc = run_cuda(pool, d, &p);
    /* auto's GPU failing at run time (a device fault, cuBLAS that does not load) leaves the
     * CPU to answer; an explicit "cuda" reports the failure. */
    int to_cpu = rc == BG_EUNAVAIL && is_auto(d->backend);
    if (to_cpu)
      rc = cpu_plan(pool, d, cpu_auto(d), &p);
    if (!to_cpu || rc != 0) {
      if (plan && (rc == 0 || p.why))
        bg__knn_put_plan(d, plan, &p);
      bg__pool_free(a, copy);
      return rc;
    }
  }
  bg__knn_ctx c = {.d = d,
                   .tile_q = p.tile_q,
                   .tile_db = p.tile_db,
                   .nscratch = p.workers,
                   .slices = p.db_slices,
                   .isa = bg__knn_isa_here()};
  bg__knn_backend(p.backend, d, pool->workers, &c.kind);
  c.bf16 = bg__knn_bf16_mode(d, c.kind);
  _Atomic uint64_t stats[3];
  for (int i = 0; i < 3; i++)
    atomic_init(&stats[i], 0);
  c.stats = stats;
  c.scratch_size = (size_t)bg__knn_scratch_bytes(d, c.kind, p.tile_q, p.tile_db);
  /* Keep each worker's buffer on its own cache lines. */
  c.scratch_size = (c.scratch_size + BG_CACHELINE - 1) / BG_CACHELINE * BG_CACHELINE;
  size_t e = d->dtype == BG_F64 ? 8 : 4;
  void *norm = NULL, *own_keys = NULL, *scratch = NULL, *busy = NULL;
  rc = BG_ENOMEM;
  if (d->metric != BG_KNN_IP && !(norm = bg__pool_alloc(a, d->nb_txt * e)))
    goto done;
  size_t bound = (size_t)bg__knn_bound_bytes(d, c.kind, d->nb_txt);
  if (bound && !(c.bound = bg__pool_alloc(a, bound)))
    goto done;
  if (!d->scores && !(own_keys = bg__pool_alloc(a, d->nb_new * d->k * e)))
    goto done;
  if (c.scratch_size && !(scratch = bg__pool_alloc(a, c.scratch_size * p.workers)))
    goto done;
  if (!(busy = bg__pool_alloc(a, p.workers * sizeof(_Atomic int))))
    goto done;
  c.db_norm = norm;
  c.keys = d->scores ? d->scores : own_keys;
  c.scratch = scratch;
  c.busy = busy;
  for (unsigned s = 0; s < p.workers; s++)
    atomic_init(&c.busy[s], 0);
  rc = run(pool, d, &c);
  if (rc == BG_ERANGE)
    p.why = bg__knn_overflow_why(d->dtype);
  p.pairs = atomic_load(&stats[0]);
  p.rescored = atomic_load(&stats[1]);
  p.fallback_pairs = atomic_load(&stats[2]);
done:
  if (rc == BG_ENOMEM)
    p.why = "an allocation within the plan failed (the memory available shrank since it was "
            "measured, or the pool's allocator refused)";
  if ((rc == 0 || rc == BG_ENOMEM || rc == BG_ERANGE) && plan)
    bg__knn_put_plan(d, plan, &p);
  bg__pool_free(a, c.bound);
  bg__pool_free(a, busy);
  bg__pool_free(a, scratch);
  bg__pool_free(a, own_keys);
  bg__pool_free(a, norm);
  bg__pool_free(a, copy);
  return rc;
}
