/* SPDX-License-Identifier: MIT */
/* A database larger than memory (bg_knn_desc_t.db_read): read in pieces that each fit half the
 * budget, the next piece read on a thread of its own while the pool searches the last, every
 * piece folded into the same running top-k. The loop runs pieces outside and query tiles inside,
 * so the database is read once whatever the number of queries; pieces come in increasing row
 * order and a key must be strictly better to displace another, so ties still go to the lowest
 * index. Checks that bg_knn makes on the whole database before searching (NaN, overflowing
 * scores, L2's centring) are made piece by piece: the first piece decides the shift. */
#include "brigade/error.h"
#include "brigade/topo.h"
#include "internal/knn.h"

#include <pthread.h>

/* Pieces of at most this size: large enough that reading and searching each costs far more
 * than the hand-over between them, small enough to start searching soon. */
#define PIECE_MAX ((uint64_t)512 << 20)

typedef struct piece {
  const bg_knn_desc_t *d;
  size_t row0, rows;
  void *dst;       /* the buffer db_read fills */
  int view;        /* whether db_view may be asked first */
  const void *src; /* OUT: where the piece's rows are: the caller's view, or dst */
  int rc;
} piece;

/* A view where the caller offers one (no copy: cached, the pread copy took a core's worth of
 * the 2 cores from the workers, 0.66x of the in-memory search); else a copy into dst. */
static void *read_piece(void *arg) {
  piece *p = arg;
  p->src = p->view ? p->d->db_view(p->d->db_ctx, p->row0, p->rows) : NULL;
  if (p->src) {
    p->rc = 0;
    return NULL;
  }
  int rc = p->d->db_read(p->d->db_ctx, p->row0, p->rows, p->dst);
  p->rc = rc > 0 ? BG_ESYS : rc;
  p->src = p->dst;
  return NULL;
}

/* What the search holds, freed by release(). */
typedef struct stream {
  const bg_allocator_t *a;
  void *buf[2], *norm, *own_keys, *scratch, *busy, *qcopy, *bound;
  double *shift;
} stream;

static void release(stream *s) {
  for (int i = 0; i < 2; i++)
    bg__pool_free(s->a, s->buf[i]);
  bg__pool_free(s->a, s->norm);
  bg__pool_free(s->a, s->own_keys);
  bg__pool_free(s->a, s->scratch);
  bg__pool_free(s->a, (void *)s->busy);
  bg__pool_free(s->a, s->qcopy);
  bg__pool_free(s->a, s->shift);
  bg__pool_free(s->a, s->bound);
}

/* Rows per piece and the CPU plan for a piece: the largest piece (up to PIECE_MAX) whose two
 * buffers, the queries' centred copy L2 may need and the piece's own plan fit the budget. */
static int plan_pieces(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                       uint64_t budget, size_t *rows, bg_knn_plan_t *p) {
  uint64_t row = (uint64_t)d->dim * (d->dtype == BG_F64 ? 8 : 4);
  uint64_t extra = d->metric == BG_KNN_L2 ? (uint64_t)d->nb_new * row + d->dim * 8 : 0;
  size_t n = d->nb_txt < PIECE_MAX / row ? d->nb_txt : (size_t)(PIECE_MAX / row);
  if (n == 0)
    n = 1;
  int rc = BG_ENOMEM;
  uint64_t least = 0;
  for (; n > 0; n /= 2) {
    uint64_t bufs = 2 * (uint64_t)n * row + extra;
    bg_knn_desc_t pd = *d;
    pd.nb_txt = n, pd.mem_budget = budget > bufs ? budget - bufs : 1;
    rc = bg__knn_plan(pool, &pd, kind, p);
    least = bufs + p->min_bytes;
    if (rc == 0 && bufs + p->bytes <= budget) {
      p->bytes += bufs;
      p->budget = budget;
      *rows = n;
      return 0;
    }
  }
  /* The least is that of one-row pieces: two of them, L2's centred queries, and the smallest
   * tiles with the running top-k and the norms. */
  p->budget = budget;
  p->min_bytes = least;
  p->bytes = 0;
  p->why = "the memory budget cannot hold the running top-k, the smallest tiles and two pieces "
           "of the database (and, for L2, a centred copy of the queries): raise the budget";
  return rc == 0 || rc == BG_ENOMEM ? BG_ENOMEM : rc;
}

/* mem_budget, lowered to what the process may still allocate; or half of that. */
static uint64_t budget_of(const bg_knn_desc_t *d) {
  uint64_t avail;
  int known = bg_mem_available(&avail) == 0;
  if (d->mem_budget)
    return known && avail < d->mem_budget ? avail : d->mem_budget;
  return known ? avail / 2 : (uint64_t)1 << 30;
}

int bg__knn_stream_plan(const bg_pool_t *pool, const bg_knn_desc_t *d, bg__knn_kind kind,
                        bg_knn_plan_t *out) {
  size_t rows;
  /* The GPU reads from memory it can pin: not from pieces (yet). */
  return kind == BG__KNN_CUDA ? BG_EBACKEND : plan_pieces(pool, d, kind, budget_of(d), &rows, out);
}

int bg__knn_stream(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  bg__knn_kind kind;
  int rc = bg__knn_backend(d->backend, d, pool->workers, &kind);
  if (rc != 0)
    return rc;
  if (kind == BG__KNN_CUDA)
    return BG_EBACKEND;
  size_t rows;
  bg_knn_plan_t p;
  rc = plan_pieces(pool, d, kind, budget_of(d), &rows, &p);
  if (rc != 0) {
    if (plan)
      bg__knn_put_plan(d, plan, &p);
    return rc;
  }
  double q2, x2 = 0;
  rc = bg__knn_max_sq_norm(pool, d->queries, d->nb_new, d->dim, d->dtype, &q2);
  if (rc != 0)
    return rc;
  size_t e = d->dtype == BG_F64 ? 8 : 4, row = d->dim * e;
  stream s = {.a = &pool->alloc};
  bg_knn_desc_t pd = *d; /* the piece being searched */
  pd.nb_txt = rows;
  bg__knn_ctx c = {.d = &pd,
                   .kind = kind,
                   .isa = bg__knn_isa_here(),
                   .tile_q = p.tile_q,
                   .tile_db = p.tile_db,
                   .nscratch = p.workers,
                   .slices = p.db_slices,
                   .bf16 = bg__knn_bf16_mode(&pd, kind)};
  _Atomic uint64_t stats[3];
  for (int i = 0; i < 3; i++)
    atomic_init(&stats[i], 0);
  c.stats = stats;
  c.scratch_size = (size_t)bg__knn_scratch_bytes(&pd, kind, p.tile_q, p.tile_db);
  c.scratch_size = (c.scratch_size + BG_CACHELINE - 1) / BG_CACHELINE * BG_CACHELINE;
  size_t bound = (size_t)bg__knn_bound_bytes(&pd, kind, rows);
  rc = BG_ENOMEM;
  p.why = "an allocation within the plan failed (the memory available shrank since it was "
          "measured, or the pool's allocator refused)";
  if (!(s.buf[0] = bg__pool_alloc(s.a, rows * row)) ||
      !(s.buf[1] = bg__pool_alloc(s.a, rows * row)) ||
      (d->metric != BG_KNN_IP && !(s.norm = bg__pool_alloc(s.a, rows * e))) ||
      (bound && !(s.bound = bg__pool_alloc(s.a, bound))) ||
      (!d->scores && !(s.own_keys = bg__pool_alloc(s.a, d->nb_new * d->k * e))) ||
      (c.scratch_size && !(s.scratch = bg__pool_alloc(s.a, c.scratch_size * p.workers))) ||
      !(s.busy = bg__pool_alloc(s.a, p.workers * sizeof(_Atomic int))))
    goto done;
  c.db_norm = s.norm;
  c.bound = s.bound;
  c.keys = d->scores ? d->scores : s.own_keys;
  c.scratch = s.scratch;
  c.busy = s.busy;
  for (unsigned w = 0; w < p.workers; w++)
    atomic_init(&c.busy[w], 0);
  bg__knn_init_topk(d, c.keys);
  p.why = NULL;
  /* The first piece, read here; then each next one on a thread during the search. */
  size_t n0 = d->nb_txt < rows ? d->nb_txt : rows;
  int view = d->version >= 7 && d->db_view && d->metric != BG_KNN_L2;
  piece next = {.d = d, .row0 = 0, .rows = n0, .dst = s.buf[0], .view = view};
  read_piece(&next);
  rc = next.rc;
  int centred = 0;
  for (size_t at = 0, i = 0; rc == 0 && at < d->nb_txt; at += pd.nb_txt, i++) {
    pd.db = next.src, pd.nb_txt = d->nb_txt - at < rows ? d->nb_txt - at : rows;
    size_t after = at + pd.nb_txt;
    pthread_t reader;
    int threaded = 0;
    if (after < d->nb_txt) {
      next = (piece){.d = d,
                     .row0 = after,
                     .rows = d->nb_txt - after < rows ? d->nb_txt - after : rows,
                     .dst = s.buf[(i + 1) % 2],
                     .view = view};
      threaded = pthread_create(&reader, NULL, read_piece, &next) == 0;
    }
    double px2;
    rc = bg__knn_max_sq_norm(pool, pd.db, pd.nb_txt, d->dim, d->dtype, &px2);
    if (rc == 0 && i == 0 && d->metric == BG_KNN_L2) {
      /* The first piece decides L2's shift; the queries are shifted into a copy, every piece
       * in place as it arrives. */
      int must;
      rc = BG_ENOMEM;
      if ((s.shift = bg__pool_alloc(s.a, d->dim * sizeof *s.shift))) {
        rc = BG_OK;
        if (bg__knn_centre_shift(&pd, s.shift, &must)) {
          if ((s.qcopy = bg__pool_alloc(s.a, d->nb_new * row))) {
            bg__knn_shift_rows(d, d->queries, d->nb_new, s.shift, s.qcopy);
            pd.queries = s.qcopy;
            centred = 1;
            bg__knn_max_sq_norm(pool, pd.queries, d->nb_new, d->dim, d->dtype, &q2);
          } else if (must) {
            rc = BG_ENOMEM;
          }
        }
      }
    }
    if (rc == 0 && centred) {
      bg__knn_shift_rows(&pd, pd.db, pd.nb_txt, s.shift, (void *)pd.db);
      bg__knn_max_sq_norm(pool, pd.db, pd.nb_txt, d->dim, d->dtype, &px2);
    }
    x2 = px2 > x2 ? px2 : x2;
    if (rc == 0 && !bg__knn_scores_fit(d, q2, x2)) {
      rc = BG_ERANGE;
      p.why = bg__knn_overflow_why(d->dtype);
    }
    c.x_base = at;
    if (rc == 0)
      rc = bg__knn_cpu_fold(pool, &c);
    if (threaded)
      pthread_join(reader, NULL);
    else if (after < d->nb_txt && rc == 0)
      read_piece(&next);
    if (rc == 0 && after < d->nb_txt)
      rc = next.rc;
  }
  if (rc == 0 && !bg__knn_all_found(d)) {
    rc = BG_ERANGE;
    p.why = bg__knn_overflow_why(d->dtype);
  }
  if (rc == 0)
    bg__knn_finish_scores(&pd);
  p.pairs = atomic_load(&stats[0]);
  p.rescored = atomic_load(&stats[1]);
  p.fallback_pairs = atomic_load(&stats[2]);
done:
  if (plan && (rc == 0 || p.why))
    bg__knn_put_plan(d, plan, &p);
  release(&s);
  return rc;
}
