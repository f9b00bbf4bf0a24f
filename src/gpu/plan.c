/* SPDX-License-Identifier: MIT */
/* The cuda backend's planner and schedule (internal/gpu_plan.h): plain C, built with or without
 * CUDA, so the tiling the device code follows is tested on every machine. */
#include "brigade/error.h"
#include "internal/gpu_plan.h"

static size_t min_z(size_t a, size_t b) {
  return a < b ? a : b;
}

static size_t ceil_div(size_t a, size_t b) {
  return (a + b - 1) / b;
}

/* Tiles of equal size: n split into ceil(n / cap) parts, so the last tile is not a sliver that
 * costs a whole launch for a few rows. */
static size_t balanced(size_t n, size_t cap) {
  return n == 0 ? 1 : ceil_div(n, ceil_div(n, cap));
}

uint64_t bg__gpu_plan_bytes(const bg__gpu_shape *s, size_t tq, size_t tdb, int resident) {
  uint64_t e = s->elem, db_rows = resident ? s->nb_txt : 2 * (uint64_t)tdb;
  uint64_t q_bufs = tq < s->nb_new ? 2 : 1;
  uint64_t b = BG__GPU_RESERVE;
  b += db_rows * s->dim * e;              /* database */
  b += s->norms ? db_rows * e : 0;        /* its norms */
  b += q_bufs * tq * s->dim * e;          /* query tiles */
  b += (uint64_t)tq * tdb * e;            /* one score tile */
  b += 2 * (uint64_t)tq * s->k * (e + 8); /* the running top-k, read and written */
  return b;
}

/* Halves the larger tile until the plan fits, the score tile first: the product's efficiency
 * falls slowly with either side until a few hundred rows. */
static int shrink(const bg__gpu_shape *s, uint64_t budget, int resident, size_t *tq, size_t *tdb) {
  while (bg__gpu_plan_bytes(s, *tq, *tdb, resident) > budget) {
    if (*tdb > 1 && (*tdb >= *tq || *tq == 1))
      *tdb = ceil_div(*tdb, 2);
    else if (*tq > 1)
      *tq = ceil_div(*tq, 2);
    else
      return 0;
  }
  return 1;
}

int bg__gpu_plan_make(const bg__gpu_shape *s, uint64_t budget, bg__gpu_plan *out) {
  *out = (bg__gpu_plan){.shape = *s, .budget = budget};
  if (s->k >= ((size_t)1 << 31)) {
    out->why = "k is 2^31 or more, past what the GPU's selection counts";
    return BG_ERANGE;
  }
  out->min_bytes = bg__gpu_plan_bytes(s, 1, 1, 0);
  /* No queries: an empty plan of one-row tiles and no steps. */
  size_t tq = s->nb_new ? min_z(s->nb_new, BG__GPU_TQ_MAX) : 1;
  size_t tdb = min_z(s->nb_txt, BG__GPU_TDB_MAX);
  /* Resident when the database takes at most half the budget: it is then read from the device
   * by every query tile, uploaded once. */
  uint64_t db = (uint64_t)s->nb_txt * s->dim * s->elem + (s->norms ? s->nb_txt * s->elem : 0);
  int resident = db <= budget / 2;
  if (!shrink(s, budget, resident, &tq, &tdb)) {
    resident = 0;
    tq = s->nb_new ? min_z(s->nb_new, BG__GPU_TQ_MAX) : 1;
    tdb = min_z(s->nb_txt, BG__GPU_TDB_MAX);
    if (!shrink(s, budget, 0, &tq, &tdb)) {
      out->why = "the GPU's free memory (or the budget) cannot hold even the smallest tiles: "
                 "free device memory or raise the budget";
      return BG_ENOMEM;
    }
  }
  out->tq = balanced(s->nb_new, tq);
  out->tdb = balanced(s->nb_txt, tdb);
  out->nq_tiles = ceil_div(s->nb_new, out->tq);
  out->ndb_tiles = ceil_div(s->nb_txt, out->tdb);
  /* One database tile streamed is loaded once and kept: resident in all but name. */
  out->db_resident = resident || out->ndb_tiles == 1;
  out->q_bufs = out->nq_tiles > 1 ? 2 : 1;
  out->db_bufs = out->db_resident ? 1 : 2;
  out->bytes = bg__gpu_plan_bytes(s, out->tq, out->tdb, resident);
  return BG_OK;
}

size_t bg__gpu_steps(const bg__gpu_plan *p) {
  return p->nq_tiles * p->ndb_tiles;
}

/* Query tiles in order, each against every database tile in order: the running top-k of a
 * query tile sees the database in increasing index order, which keeps ties on the lowest index. */
void bg__gpu_step_at(const bg__gpu_plan *p, size_t s, bg__gpu_step *out) {
  const bg__gpu_shape *sh = &p->shape;
  size_t qt = s / p->ndb_tiles, dt = s % p->ndb_tiles;
  *out = (bg__gpu_step){
      .qt = qt,
      .dt = dt,
      .q0 = qt * p->tq,
      .nq = min_z(p->tq, sh->nb_new - qt * p->tq),
      .x0 = dt * p->tdb,
      .nx = min_z(p->tdb, sh->nb_txt - dt * p->tdb),
      .qbuf = (unsigned)(qt % p->q_bufs),
      .dbuf = p->db_resident ? 0 : (unsigned)(s % 2),
      .load_q = dt == 0,
      .load_db = p->db_resident ? qt == 0 : 1,
      .first = dt == 0,
      .last = dt + 1 == p->ndb_tiles,
  };
}

double bg__gpu_predict_s(const bg__gpu_shape *s, const bg__gpu_rates *r) {
  double bytes = ((double)s->nb_txt + s->nb_new) * s->dim * s->elem;
  double flops = 2.0 * s->nb_txt * s->nb_new * s->dim;
  double out = (double)s->nb_new * s->k * (s->elem + 8);
  return r->fixed_s + (bytes + out) / (r->h2d_gbps * 1e9) + flops / (r->gflops * 1e9);
}

double bg__cpu_predict_s(const bg__gpu_shape *s, unsigned workers, double cpu_gflops) {
  double flops = 2.0 * s->nb_txt * s->nb_new * s->dim;
  return flops / ((workers ? workers : 1) * cpu_gflops * 1e9);
}
