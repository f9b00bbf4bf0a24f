/* SPDX-License-Identifier: MIT */
/* The distributed search: each rank holds one slice of the database (and every query), finds
 * its best k with the best local backend, and the candidates are merged: for k = 1 one
 * MPI_Allreduce with an operator that keeps the better score, ties to the lower index (the
 * single-machine rule, so the answer does not depend on how the database was cut); for k > 1
 * every rank's k candidates go to rank 0, which merges them and sends the answer back. */
#include "brigade/error.h"
#include "internal/dist.h"
#include "internal/pool_impl.h"

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One candidate on the wire. */
typedef struct cand {
  double score;
  int64_t idx;
} cand;

/* Whether a is a better answer than b: the metric's direction, then the lower index. */
static int better(const cand *a, const cand *b, int smaller) {
  if (a->score != b->score)
    return smaller ? a->score < b->score : a->score > b->score;
  return a->idx < b->idx;
}

static int smaller_is_better; /* set before each reduction: MPI operators take no context */

static void keep_best(void *in, void *inout, int *len, MPI_Datatype *t) {
  (void)t;
  cand *a = in, *b = inout;
  for (int i = 0; i < *len; i++)
    if (better(&a[i], &b[i], smaller_is_better))
      b[i] = a[i];
}

static int cmp_larger(const void *x, const void *y) {
  return better(x, y, 0) ? -1 : better(y, x, 0) ? 1 : 0;
}

static int cmp_smaller(const void *x, const void *y) {
  return better(x, y, 1) ? -1 : better(y, x, 1) ? 1 : 0;
}

/* Shape fields every rank must agree on. */
enum { F_NEW, F_DIM, F_K, F_DTYPE, F_METRIC, NFIELDS };

/* Checks the ranks' descriptions against each other (each rank's offset must equal the rows
 * of the ranks before it) and sums the database's rows into *total. */
static int agree(MPI_Comm comm, int size, const bg_knn_desc_t *d, uint64_t *total) {
  uint64_t mine[NFIELDS] = {d->nb_new, d->dim, d->k, (uint64_t)d->dtype, (uint64_t)d->metric};
  uint64_t lo[NFIELDS], hi[NFIELDS];
  MPI_Allreduce(mine, lo, NFIELDS, MPI_UINT64_T, MPI_MIN, comm);
  MPI_Allreduce(mine, hi, NFIELDS, MPI_UINT64_T, MPI_MAX, comm);
  uint64_t slice[2] = {d->db_offset, d->nb_txt};
  uint64_t *all = malloc(2 * (size_t)size * sizeof *all);
  /* A rank's own bad pointers fail every rank, before anything waits on that rank. */
  int mine_ok[2] = {d->idx && (d->db || (d->version >= 4 && d->db_read) || !d->nb_txt) &&
                        d->queries,
                    all != NULL},
      both[2];
  MPI_Allreduce(mine_ok, both, 2, MPI_INT, MPI_MIN, comm);
  if (!both[0] || !both[1]) {
    free(all);
    return both[0] ? BG_ENOMEM : BG_EINVAL;
  }
  MPI_Allgather(slice, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, comm);
  int rc = memcmp(lo, hi, sizeof lo) ? BG_EINVAL : BG_OK;
  uint64_t at = 0;
  for (int r = 0; r < size; r++) {
    if (all[2 * r] != at)
      rc = BG_EINVAL; /* slices must follow each other in rank order, from row 0 */
    at += all[2 * r + 1];
  }
  free(all);
  *total = at;
  if (rc == 0 && (d->k == 0 || d->k > at))
    rc = BG_EINVAL;
  return rc;
}

/* The rank's own search, its candidates (global indices, scores as doubles) in c: nb_new x kl. */
static int search_slice(bg_pool_t *local, const bg_knn_desc_t *d, size_t kl, cand *c,
                        bg_knn_plan_t *plan) {
  if (kl == 0)
    return BG_OK;
  size_t e = d->dtype == BG_F64 ? 8 : 4, n = d->nb_new * kl;
  int64_t *idx = malloc(n * sizeof *idx);
  void *scores = malloc(n * e);
  int rc = BG_ENOMEM;
  if (idx && scores) {
    bg_knn_desc_t ld = *d;
    ld.k = kl, ld.idx = idx, ld.scores = scores, ld.db_offset = 0;
    rc = bg_knn(local, &ld, plan);
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    c[i].idx = idx[i] + (int64_t)d->db_offset;
    c[i].score = e == 8 ? ((double *)scores)[i] : ((float *)scores)[i];
  }
  free(idx), free(scores);
  return rc;
}

static void deliver(const bg_knn_desc_t *d, const cand *best) {
  for (size_t i = 0; i < d->nb_new * d->k; i++) {
    d->idx[i] = best[i].idx;
    if (d->scores && d->dtype == BG_F64)
      ((double *)d->scores)[i] = best[i].score;
    else if (d->scores)
      ((float *)d->scores)[i] = (float)best[i].score;
  }
}

/* k = 1: one reduction, the answer on every rank. */
static void reduce_one(MPI_Comm comm, const bg_knn_desc_t *d, cand *c, size_t kl, MPI_Datatype t) {
  if (kl == 0) /* a rank with no rows offers the worst candidate */
    for (size_t i = 0; i < d->nb_new; i++)
      c[i] = (cand){smaller_is_better ? HUGE_VAL : -HUGE_VAL, INT64_MAX};
  MPI_Op op;
  MPI_Op_create(keep_best, 1, &op);
  MPI_Allreduce(MPI_IN_PLACE, c, (int)d->nb_new, t, op, comm);
  MPI_Op_free(&op);
  deliver(d, c);
}

/* k > 1: rank 0 gathers every rank's kl candidates per query, keeps the best k, sends them
 * back. */
static int merge_many(MPI_Comm comm, int rank, int size, const bg_knn_desc_t *d, const cand *c,
                      size_t kl, MPI_Datatype t) {
  int mine = (int)(d->nb_new * kl), *counts = NULL, *offs = NULL;
  cand *all = NULL, *best = malloc(d->nb_new * d->k * sizeof *best);
  int ok = best != NULL;
  size_t total = 0;
  if (rank == 0) {
    counts = malloc((size_t)size * sizeof *counts);
    offs = malloc((size_t)size * sizeof *offs);
    ok = ok && counts && offs;
  }
  MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
  if (rank == 0 && ok) {
    for (int r = 0; r < size; r++)
      offs[r] = (int)total, total += (size_t)counts[r];
    ok = (all = malloc(total * sizeof *all)) != NULL;
  }
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm);
  int rc = ok ? BG_OK : BG_ENOMEM;
  if (rc == 0) {
    MPI_Gatherv(c, mine, t, all, counts, offs, t, 0, comm);
    if (rank == 0) {
      /* Per query: the candidates of every rank side by side, sorted, the first k kept. */
      size_t per = total / d->nb_new;
      cand *row = malloc(per * sizeof *row);
      for (size_t q = 0; row && q < d->nb_new; q++) {
        size_t m = 0;
        for (int r = 0; r < size; r++) {
          size_t kr = (size_t)counts[r] / d->nb_new;
          memcpy(row + m, all + offs[r] + q * kr, kr * sizeof *row);
          m += kr;
        }
        qsort(row, m, sizeof *row, smaller_is_better ? cmp_smaller : cmp_larger);
        memcpy(best + q * d->k, row, d->k * sizeof *row);
      }
      ok = row != NULL;
      free(row);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    rc = ok ? BG_OK : BG_ENOMEM;
  }
  if (rc == 0) {
    MPI_Bcast(best, (int)(d->nb_new * d->k), t, 0, comm);
    deliver(d, best);
  }
  free(counts), free(offs), free(all), free(best);
  return rc;
}

int bg__knn_mpi(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  MPI_Comm comm = *(MPI_Comm *)bg__mpi_comm(pool->bstate);
  bg_pool_t *local = bg__mpi_local(pool->bstate);
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  uint64_t total;
  int rc = agree(comm, size, d, &total);
  if (rc != 0)
    return rc;
  if ((uint64_t)d->nb_new * d->k > INT32_MAX)
    return BG_ERANGE; /* MPI counts are ints */
  size_t kl = d->k < d->nb_txt ? d->k : d->nb_txt;
  cand *c = malloc((d->nb_new * (kl ? kl : 1) + 1) * sizeof *c);
  rc = c ? search_slice(local, d, kl, c, plan) : BG_ENOMEM;
  /* Every rank learns the first failure (the most negative code), so all return alike. */
  int worst;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, comm);
  if (worst == 0) {
    smaller_is_better = d->metric == BG_KNN_L2;
    MPI_Datatype t;
    MPI_Type_contiguous((int)sizeof(cand), MPI_BYTE, &t);
    MPI_Type_commit(&t);
    if (d->k == 1)
      reduce_one(comm, d, c, kl, t);
    else
      worst = merge_many(comm, rank, size, d, c, kl, t);
    MPI_Type_free(&t);
  }
  free(c);
  return worst;
}
