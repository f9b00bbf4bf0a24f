/* SPDX-License-Identifier: MIT */
/* The cuda knn backend's device side: products with cuBLAS, the top-k selection per score tile
 * (select.h's radix select, one thread block per query row), and the two streams that overlap
 * the next tile's upload with this tile's product, following the plan's steps
 * (internal/gpu_plan.h). Every CUDA and cuBLAS call is checked; a failure names the call and
 * CUDA's message and frees everything.
 *
 * Exactness: the products run in the dtype in cuBLAS's pedantic math mode ("standard arithmetic
 * and exact specified internal storage format"): never TF32 tensor cores, never the BF16x9 or
 * fixed-point emulations that cuBLAS 12.9 and later may otherwise choose for the default compute
 * types ("at least the same precision", not the same arithmetic). Keys are formed as on the CPU
 * (select.h), and the selection compares whole keys, so the answers differ from the CPU's only
 * where the products' summation order changes a rounding. */
#include "brigade/error.h"
#include "gpu/select.h"
#include "internal/cublas_dl.h"
#include "internal/gpu_knn.h"

#include <cub/block/block_scan.cuh>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <initializer_list>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

namespace {

constexpr int kThreads = 256;
/* Steps whose events are in flight when the search is timed; the host waits for the oldest
 * before reusing its events. */
constexpr size_t kRing = 64;

__thread char why_buf[256];

int cuda_fail(cudaError_t e, const char *what, const char **why) {
  snprintf(why_buf, sizeof why_buf, "%s failed: %s (%s)", what, cudaGetErrorString(e),
           cudaGetErrorName(e));
  *why = why_buf;
  cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
  return e == cudaErrorMemoryAllocation ? BG_ENOMEM : BG_EUNAVAIL;
}

int blas_fail(const bg__cublas *lib, cublasStatus_t s, const char *what, const char **why) {
  snprintf(why_buf, sizeof why_buf, "%s failed: %s", what, lib->status_string(s));
  *why = why_buf;
  return s == CUBLAS_STATUS_ALLOC_FAILED ? BG_ENOMEM : BG_EUNAVAIL;
}

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess)                                                                         \
      return cuda_fail(e_, #call, why);                                                            \
  } while (0)

#define CKB(call)                                                                                  \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      return blas_fail(g.lib, s_, #call, why);                                                     \
  } while (0)

/* ---- selection ----------------------------------------------------------------------------- */

template <typename T> struct Sel;
template <> struct Sel<float> {
  __device__ static uint64_t ukey(float k) {
    return bg__sel_ukey_f32(k);
  }
  __device__ static float at(uint32_t p, uint32_t have, const float *rk, const int64_t *ri,
                             const float *s, const float *norm, int metric, int64_t x0,
                             int64_t *idx) {
    return bg__sel_at_f32(p, have, rk, ri, s, norm, metric, x0, idx);
  }
};
template <> struct Sel<double> {
  __device__ static uint64_t ukey(double k) {
    return bg__sel_ukey_f64(k);
  }
  __device__ static double at(uint32_t p, uint32_t have, const double *rk, const int64_t *ri,
                              const double *s, const double *norm, int metric, int64_t x0,
                              int64_t *idx) {
    return bg__sel_at_f64(p, have, rk, ri, s, norm, metric, x0, idx);
  }
};

template <typename T> struct SelArgs {
  const T *scores; /* nq x nx, row-major */
  uint32_t nx;
  const T *norm; /* the tile's norms, or null */
  int metric;
  int64_t x0;
  const T *in_keys; /* nq x k: the running top-k, have entries per row */
  const int64_t *in_idx;
  uint32_t have;
  T *out_keys; /* nq x k */
  int64_t *out_idx;
  uint32_t k;
};

/* One block per query row: the radix select of select.h over U = running top-k + tile row,
 * each pass's histogram built with shared-memory atomics, then an ordered compaction (two block
 * scans per chunk) that keeps U's order, so the new running top-k stays in index order. */
template <typename T> __global__ void __launch_bounds__(kThreads) select_rows(SelArgs<T> a) {
  using Scan = cub::BlockScan<uint32_t, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ uint32_t hist[256];
  __shared__ uint64_t prefix, mask;
  __shared__ uint32_t remaining, base_out, base_eq;
  __shared__ int done;
  const size_t row = blockIdx.x;
  const T *s = a.scores + row * a.nx;
  const T *rk = a.in_keys + row * a.k;
  const int64_t *ri = a.in_idx + row * a.k;
  const uint32_t n = a.have + a.nx, m = a.k < n ? a.k : n;
  const unsigned bits = 8 * sizeof(T);
  if (threadIdx.x == 0) {
    prefix = mask = 0;
    remaining = m;
    done = 0;
    base_out = base_eq = 0;
  }
  __syncthreads();
  for (unsigned pass = 0; pass < bits / 8; pass++) {
    for (unsigned b = threadIdx.x; b < 256; b += kThreads)
      hist[b] = 0;
    __syncthreads();
    const uint64_t pf = prefix, mk = mask;
    const unsigned sh = bg__sel_shift(pass, bits);
    for (uint32_t p = threadIdx.x; p < n; p += kThreads) {
      int64_t idx;
      uint64_t u = Sel<T>::ukey(Sel<T>::at(p, a.have, rk, ri, s, a.norm, a.metric, a.x0, &idx));
      if ((u & mk) == pf)
        atomicAdd(&hist[bg__sel_digit(u, sh)], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint32_t rem = remaining;
      int dn;
      unsigned b = bg__sel_pick(hist, &rem, &dn);
      remaining = rem;
      done = dn;
      prefix |= (uint64_t)b << sh;
      mask |= (uint64_t)0xff << sh;
    }
    __syncthreads();
    if (done)
      break;
  }
  const uint64_t pf = prefix, mk = mask;
  const uint32_t want = remaining;
  T *ok = a.out_keys + row * a.k;
  int64_t *oi = a.out_idx + row * a.k;
  for (uint32_t c0 = 0; c0 < n; c0 += kThreads) {
    uint32_t p = c0 + threadIdx.x, gt = 0, eq = 0;
    int64_t idx = 0;
    T key = 0;
    if (p < n) {
      key = Sel<T>::at(p, a.have, rk, ri, s, a.norm, a.metric, a.x0, &idx);
      uint64_t h = Sel<T>::ukey(key) & mk;
      gt = h > pf;
      eq = h == pf;
    }
    uint32_t eq_rank, eq_total, pos, total;
    Scan(scan).ExclusiveSum(eq, eq_rank, eq_total);
    __syncthreads();
    uint32_t take = gt || (eq && base_eq + eq_rank < want);
    Scan(scan).ExclusiveSum(take, pos, total);
    if (take) {
      ok[base_out + pos] = key;
      oi[base_out + pos] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      base_out += total;
      base_eq += eq_total;
    }
    __syncthreads();
  }
}

/* ---- products ------------------------------------------------------------------------------ */

/* scores (nq x nx, row-major) = Q X^T for row-major Q (nq x dim) and X (nx x dim). cuBLAS reads
 * column-major: X is then a dim x nx matrix, Q a dim x nq one, and X^T Q (nx x nq, column-major)
 * is exactly the row-major score tile. */
cublasStatus_t gemm(const bg__cublas *lib, cublasHandle_t h, int nx, int nq, int dim,
                    const float *x, const float *q, float *s) {
  const float one = 1, zero = 0;
  return lib->sgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, nx, nq, dim, &one, x, dim, q, dim, &zero, s, nx);
}

cublasStatus_t gemm(const bg__cublas *lib, cublasHandle_t h, int nx, int nq, int dim,
                    const double *x, const double *q, double *s) {
  const double one = 1, zero = 0;
  return lib->dgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, nx, nq, dim, &one, x, dim, q, dim, &zero, s, nx);
}

/* ---- the search ---------------------------------------------------------------------------- */

/* Events of one step when the search is timed: upload begin and end (copy stream), product
 * begin and end, selection end, download begin and end (compute stream). */
enum { H0, H1, G0, G1, S1, T0, T1, NEV };
struct StepEvents {
  cudaEvent_t e[NEV];
  bool h2d, d2h, live;
};

/* Everything one search holds on the device, freed by release() on every path. */
template <typename T> struct Search {
  const bg__cublas *lib = nullptr;
  cudaStream_t copy = nullptr, comp = nullptr;
  cublasHandle_t blas = nullptr;
  T *q[2] = {}, *db[2] = {}, *norm[2] = {}, *score = nullptr, *keys[2] = {};
  int64_t *idx[2] = {};
  cudaEvent_t loaded[2] = {}, used_q[2] = {}, used_db[2] = {};
  StepEvents *ring = nullptr;
  const void *pinned[2] = {};
};

template <typename T> void release(Search<T> &g) {
  if (g.comp)
    cudaStreamSynchronize(g.comp);
  if (g.copy)
    cudaStreamSynchronize(g.copy);
  if (g.blas)
    g.lib->destroy(g.blas);
  for (int i = 0; i < 2; i++) {
    cudaFree(g.q[i]), cudaFree(g.db[i]), cudaFree(g.norm[i]), cudaFree(g.keys[i]);
    cudaFree(g.idx[i]);
    for (cudaEvent_t e : {g.loaded[i], g.used_q[i], g.used_db[i]})
      if (e)
        cudaEventDestroy(e);
    if (g.pinned[i])
      cudaHostUnregister(const_cast<void *>(g.pinned[i]));
  }
  cudaFree(g.score);
  if (g.ring) {
    for (size_t r = 0; r < kRing; r++)
      for (cudaEvent_t e : g.ring[r].e)
        if (e)
          cudaEventDestroy(e);
    free(g.ring);
  }
  if (g.copy)
    cudaStreamDestroy(g.copy);
  if (g.comp)
    cudaStreamDestroy(g.comp);
  cudaGetLastError();
}

/* Pins an input in place so its uploads run asynchronously beside the products. Memory that
 * cannot be pinned (registered by the caller, a mapping the driver refuses) is copied from
 * pageable memory instead: correct, but each upload then waits for the host. Searches run one at
 * a time per process (bg__gpu_knn), so no other search's registration of the same pages can
 * end while this one's copies read them. */
void pin(const void *p, size_t bytes, const void **slot) {
  if (cudaHostRegister(const_cast<void *>(p), bytes, cudaHostRegisterReadOnly) == cudaSuccess ||
      (cudaGetLastError(),
       cudaHostRegister(const_cast<void *>(p), bytes, cudaHostRegisterDefault) == cudaSuccess))
    *slot = p;
  cudaGetLastError();
}

float elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  if (cudaEventElapsedTime(&ms, a, b) == cudaSuccess)
    return ms / 1e3f;
  cudaGetLastError(); /* not left for the next launch's check to report */
  return 0;
}

/* Adds a finished step's intervals to @t. */
int harvest(StepEvents &e, bg_knn_times_t *t, const char **why) {
  if (!e.live)
    return BG_OK;
  CK(cudaEventSynchronize(e.e[T1]));
  t->h2d_s += e.h2d ? elapsed(e.e[H0], e.e[H1]) : 0;
  t->gemm_s += elapsed(e.e[G0], e.e[G1]);
  t->select_s += elapsed(e.e[G1], e.e[S1]);
  t->d2h_s += e.d2h ? elapsed(e.e[T0], e.e[T1]) : 0;
  e.live = false;
  return BG_OK;
}

template <typename T> int alloc(T **p, size_t n, const char **why) {
  CK(cudaMalloc(reinterpret_cast<void **>(p), n * sizeof(T)));
  return BG_OK;
}

template <typename T>
int setup(Search<T> &g, const bg_knn_desc_t *d, const bg__gpu_plan *p, const void *norm, bool timed,
          const char **why) {
  const size_t dim = d->dim, k = d->k;
  size_t db_rows = p->db_resident ? d->nb_txt : p->tdb;
  for (unsigned b = 0; b < p->q_bufs; b++)
    if (int rc = alloc(&g.q[b], p->tq * dim, why))
      return rc;
  for (unsigned b = 0; b < p->db_bufs; b++) {
    if (int rc = alloc(&g.db[b], db_rows * dim, why))
      return rc;
    if (norm)
      if (int rc = alloc(&g.norm[b], db_rows, why))
        return rc;
  }
  if (int rc = alloc(&g.score, p->tq * p->tdb, why))
    return rc;
  for (int b = 0; b < 2; b++) {
    if (int rc = alloc(&g.keys[b], p->tq * k, why))
      return rc;
    if (int rc = alloc(&g.idx[b], p->tq * k, why))
      return rc;
  }
  CK(cudaStreamCreateWithFlags(&g.copy, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&g.comp, cudaStreamNonBlocking));
  for (int b = 0; b < 2; b++)
    for (cudaEvent_t *e : {&g.loaded[b], &g.used_q[b], &g.used_db[b]})
      CK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
  CKB(g.lib->create(&g.blas));
  CKB(g.lib->set_stream(g.blas, g.comp));
  CKB(g.lib->set_math_mode(g.blas, CUBLAS_PEDANTIC_MATH));
  if (timed) {
    g.ring = static_cast<StepEvents *>(calloc(kRing, sizeof *g.ring));
    if (!g.ring) {
      *why = "no host memory for the timing events";
      return BG_ENOMEM;
    }
    for (size_t r = 0; r < kRing; r++)
      for (cudaEvent_t &e : g.ring[r].e)
        CK(cudaEventCreate(&e));
  }
  size_t e = sizeof(T);
  /* Overlapping inputs (queries taken from the database) are pinned as one range: a copy must
   * not run past the range registered. */
  const char *a0 = static_cast<const char *>(d->db), *a1 = a0 + d->nb_txt * dim * e;
  const char *b0 = static_cast<const char *>(d->queries), *b1 = b0 + d->nb_new * dim * e;
  if (b0 < a1 && a0 < b1)
    pin(a0 < b0 ? a0 : b0, (size_t)((a1 > b1 ? a1 : b1) - (a0 < b0 ? a0 : b0)), &g.pinned[0]);
  else {
    pin(a0, (size_t)(a1 - a0), &g.pinned[0]);
    pin(b0, (size_t)(b1 - b0), &g.pinned[1]);
  }
  return BG_OK;
}

/* Issues the uploads step s needs on the copy stream, each after the product that last read
 * the buffer it overwrites, and marks them done with loaded[s % 2]. */
template <typename T>
int load(Search<T> &g, const bg_knn_desc_t *d, const bg__gpu_plan *p, const T *norm, size_t s,
         StepEvents *ev, const char **why) {
  bg__gpu_step st;
  bg__gpu_step_at(p, s, &st);
  if (!st.load_q && !st.load_db)
    return BG_OK;
  const size_t dim = d->dim, e = sizeof(T);
  /* The waits first, so the upload's time does not count the product it waits for. */
  if (st.load_q)
    CK(cudaStreamWaitEvent(g.copy, g.used_q[st.qbuf], 0));
  if (st.load_db && !p->db_resident)
    CK(cudaStreamWaitEvent(g.copy, g.used_db[st.dbuf], 0));
  if (ev) {
    ev->h2d = true;
    CK(cudaEventRecord(ev->e[H0], g.copy));
  }
  if (st.load_q) {
    CK(cudaMemcpyAsync(g.q[st.qbuf], static_cast<const T *>(d->queries) + st.q0 * dim,
                       st.nq * dim * e, cudaMemcpyHostToDevice, g.copy));
  }
  if (st.load_db) {
    size_t at = p->db_resident ? st.x0 : 0;
    CK(cudaMemcpyAsync(g.db[st.dbuf] + at * dim, static_cast<const T *>(d->db) + st.x0 * dim,
                       st.nx * dim * e, cudaMemcpyHostToDevice, g.copy));
    if (norm)
      CK(cudaMemcpyAsync(g.norm[st.dbuf] + at, norm + st.x0, st.nx * e, cudaMemcpyHostToDevice,
                         g.copy));
  }
  if (ev)
    CK(cudaEventRecord(ev->e[H1], g.copy));
  CK(cudaEventRecord(g.loaded[s % 2], g.copy));
  return BG_OK;
}

template <typename T>
int search(Search<T> &g, const bg_knn_desc_t *d, const bg__gpu_plan *p, const T *norm, T *keys,
           bg_knn_times_t *times, const char **why) {
  const size_t n = bg__gpu_steps(p), dim = d->dim, k = d->k;
  StepEvents *ring = g.ring;
  if (ring)
    ring[0].live = false;
  if (int rc = load(g, d, p, norm, 0, ring ? &ring[0] : nullptr, why))
    return rc;
  for (size_t s = 0; s < n; s++) {
    StepEvents *ev = ring ? &ring[s % kRing] : nullptr, *next = nullptr;
    if (s + 1 < n) {
      if (ring) {
        next = &ring[(s + 1) % kRing];
        if (int rc = harvest(*next, times, why))
          return rc;
        next->h2d = next->d2h = next->live = false;
      }
      if (int rc = load(g, d, p, norm, s + 1, next, why))
        return rc;
    }
    bg__gpu_step st;
    bg__gpu_step_at(p, s, &st);
    if (st.load_q || st.load_db)
      CK(cudaStreamWaitEvent(g.comp, g.loaded[s % 2], 0));
    size_t at = p->db_resident ? st.x0 : 0;
    if (ev)
      CK(cudaEventRecord(ev->e[G0], g.comp));
    CKB(gemm(g.lib, g.blas, (int)st.nx, (int)st.nq, (int)dim, g.db[st.dbuf] + at * dim,
             g.q[st.qbuf], g.score));
    if (ev)
      CK(cudaEventRecord(ev->e[G1], g.comp));
    CK(cudaEventRecord(g.used_q[st.qbuf], g.comp));
    unsigned in = st.dt % 2, out = (st.dt + 1) % 2;
    SelArgs<T> a = {g.score,
                    (uint32_t)st.nx,
                    norm ? g.norm[st.dbuf] + at : nullptr,
                    d->metric,
                    (int64_t)st.x0,
                    g.keys[in],
                    g.idx[in],
                    (uint32_t)(st.x0 < k ? st.x0 : k),
                    g.keys[out],
                    g.idx[out],
                    (uint32_t)k};
    cudaGetLastError(); /* so the check below reports this launch alone */
    select_rows<T><<<(unsigned)st.nq, kThreads, 0, g.comp>>>(a);
    CK(cudaGetLastError());
    /* The selection reads the tile's norms: the database buffer is free after it, not after
     * the product. */
    if (!p->db_resident)
      CK(cudaEventRecord(g.used_db[st.dbuf], g.comp));
    if (ev)
      CK(cudaEventRecord(ev->e[S1], g.comp));
    if (st.last) {
      if (ev) {
        ev->d2h = true;
        CK(cudaEventRecord(ev->e[T0], g.comp));
      }
      CK(cudaMemcpyAsync(d->idx + st.q0 * k, g.idx[out], st.nq * k * sizeof(int64_t),
                         cudaMemcpyDeviceToHost, g.comp));
      CK(cudaMemcpyAsync(keys + st.q0 * k, g.keys[out], st.nq * k * sizeof(T),
                         cudaMemcpyDeviceToHost, g.comp));
    }
    if (ev) {
      /* t1 closes every step, so harvest() can wait on it alone. */
      if (!st.last)
        CK(cudaEventRecord(ev->e[T0], g.comp));
      CK(cudaEventRecord(ev->e[T1], g.comp));
      ev->live = true;
    }
  }
  CK(cudaStreamSynchronize(g.comp));
  CK(cudaStreamSynchronize(g.copy));
  if (ring)
    for (size_t r = 0; r < kRing; r++)
      if (int rc = harvest(ring[r], times, why))
        return rc;
  return BG_OK;
}

template <typename T>
int run(const bg__cublas *lib, const bg_knn_desc_t *d, const bg__gpu_plan *p, const void *norm,
        void *keys, bg_knn_times_t *times, const char **why) {
  Search<T> g;
  g.lib = lib;
  bg_knn_times_t t = {};
  int rc = setup(g, d, p, norm, times != nullptr, why);
  if (rc == BG_OK)
    rc = search(g, d, p, static_cast<const T *>(norm), static_cast<T *>(keys), times ? &t : nullptr,
                why);
  release(g);
  if (rc == BG_OK && times) {
    times->h2d_s = t.h2d_s, times->gemm_s = t.gemm_s, times->select_s = t.select_s;
    times->d2h_s = t.d2h_s;
  }
  return rc;
}

/* One search at a time per process: each fills the device (its tiles are sized to the free
 * memory), and pinning the caller's pages stays private to the search that pinned them. */
pthread_mutex_t one_search = PTHREAD_MUTEX_INITIALIZER;

} // namespace

extern "C" int bg__gpu_knn(const bg_knn_desc_t *d, const bg__gpu_plan *p, const void *norm,
                           void *keys, bg_knn_times_t *times, const char **why) {
  *why = nullptr;
  if (bg__gpu_steps(p) == 0)
    return BG_OK;
  const bg__cublas *lib = bg__cublas_get(why);
  if (!lib)
    return BG_EUNAVAIL;
  /* Device 0 for the search; the calling thread's own choice is given back after. */
  int was = 0;
  cudaError_t e = cudaGetDevice(&was);
  if (e == cudaSuccess)
    e = cudaSetDevice(0);
  if (e != cudaSuccess)
    return cuda_fail(e, "cudaSetDevice(0)", why);
  pthread_mutex_lock(&one_search);
  int rc = d->dtype == BG_F64 ? run<double>(lib, d, p, norm, keys, times, why)
                              : run<float>(lib, d, p, norm, keys, times, why);
  pthread_mutex_unlock(&one_search);
  cudaSetDevice(was);
  return rc;
}

extern "C" int bg__gpu_blas_loads(const char **why) {
  return bg__cublas_get(why) != nullptr;
}

/* FP32 lanes per SM by architecture: 64 on Volta and the A100 (7.x, 8.0), 128 on the GPUs after
 * (8.6, 8.9, 9.0 and later). Double precision runs at half that on the data-centre parts (6.0,
 * 7.0, 8.0, 9.0) and the driver reports the ratio for the rest. */
extern "C" int bg__gpu_device(int f64, uint64_t *free_bytes, bg__gpu_rates *r) {
  int n = 0, sms = 0, khz = 0, major = 0, minor = 0, ratio = 32;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0 || cudaSetDevice(0) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&ratio, cudaDevAttrSingleToDoublePrecisionPerfRatio, 0) !=
          cudaSuccess) {
    cudaGetLastError();
    return BG_EUNAVAIL;
  }
  size_t fr = 0, total = 0;
  if (cudaMemGetInfo(&fr, &total) != cudaSuccess) {
    cudaGetLastError();
    return BG_EUNAVAIL;
  }
  *free_bytes = fr;
  int lanes = major < 8 || (major == 8 && minor == 0) ? 64 : 128;
  double gflops = (double)sms * lanes * 2 * khz / 1e6;
  /* Sustained products reach about 70% of the peak; selection and launches take their share. */
  r->gflops = 0.7 * (f64 ? gflops / (ratio > 0 ? ratio : 32) : gflops);
  r->h2d_gbps = 0;
  r->fixed_s = 5e-3;
  return BG_OK;
}
