/* SPDX-License-Identifier: MIT */
/* A database split across workers, for searches with few queries. Cut by queries alone, 100
 * queries on two workers are two tiles of 50, and each 32-query register block of the second
 * is padded: 56 lanes computed for 50 queries; one query leaves every worker but one idle. Cut
 * by the database instead, every worker takes all the queries (104 lanes for 100) against a
 * slice of the rows, into top-k lists of its own, and the lists are merged at the end. Slice 0
 * folds into the search's own lists; the others into lists that start empty.
 *
 * The merge gives the unsplit search's answer, bit for bit: each slice's list holds its k best
 * by (key descending, index ascending), since rows are folded in increasing index order and a
 * key must be strictly better to displace another; the whole database's k best in that order
 * are among the slices' k best, and merging the lists in that same order picks them. */
#include "internal/knn.h"

/* Rows per slice: an equal share, rounded up to whole register blocks. */
static size_t slice_rows(size_t nb_txt, unsigned slices) {
  size_t r = (nb_txt + slices - 1) / slices;
  return (r + BG_KNN_RBLOCK - 1) / BG_KNN_RBLOCK * BG_KNN_RBLOCK;
}

static size_t key_size(const bg_knn_desc_t *d) {
  return d->dtype == BG_F64 ? sizeof(double) : sizeof(float);
}

uint64_t bg__knn_slice_bytes(const bg_knn_desc_t *d, unsigned slices) {
  if (slices < 2)
    return 0;
  uint64_t entries = (uint64_t)(slices - 1) * d->nb_new * d->k + d->k;
  return entries * (sizeof(int64_t) + key_size(d));
}

int bg__knn_slice(const bg__knn_ctx *c, unsigned s, bg_knn_desc_t *sd, bg__knn_ctx *sc) {
  const bg_knn_desc_t *d = c->d;
  size_t rows = slice_rows(d->nb_txt, c->slices), r0 = s * rows, e = key_size(d);
  if (r0 >= d->nb_txt)
    return 0;
  *sd = *d;
  *sc = *c;
  sd->db = (const char *)d->db + r0 * d->dim * e;
  sd->nb_txt = d->nb_txt - r0 < rows ? d->nb_txt - r0 : rows;
  sc->d = sd;
  sc->x_base = c->x_base + r0;
  if (c->db_norm)
    sc->db_norm = (const char *)c->db_norm + r0 * e;
  if (c->bound)
    sc->bound = (char *)c->bound + bg__knn_bound_bytes(d, c->kind, r0);
  if (s > 0) {
    size_t at = (size_t)(s - 1) * d->nb_new * d->k;
    sd->idx = c->slice_idx + at;
    sc->keys = (char *)c->slice_keys + at * e;
    sc->list_base = sc->x_base;
  }
  return 1;
}

/* Whether (ka, ia) comes before (kb, ib): the larger key, then the lower index. An empty entry
 * (index -1, key -inf) comes after every found one. */
#define BEFORE(ka, ia, kb, ib) ((ka) > (kb) || ((ka) == (kb) && (uint64_t)(ia) <= (uint64_t)(ib)))

/* Merges the k-entry list (kb, ib) into (ka, ia) through (kt, it). */
#define MERGE_ROW(T)                                                                               \
  static void merge_row_##T(T *ka, int64_t *ia, const T *kb, const int64_t *ib, size_t k, T *kt,   \
                            int64_t *it) {                                                         \
    size_t a = 0, b = 0;                                                                           \
    for (size_t o = 0; o < k; o++) {                                                               \
      if (BEFORE(ka[a], ia[a], kb[b], ib[b]))                                                      \
        kt[o] = ka[a], it[o] = ia[a], a++;                                                         \
      else                                                                                         \
        kt[o] = kb[b], it[o] = ib[b], b++;                                                         \
    }                                                                                              \
    memcpy(ka, kt, k * sizeof *ka);                                                                \
    memcpy(ia, it, k * sizeof *ia);                                                                \
  }
MERGE_ROW(float)
MERGE_ROW(double)

void bg__knn_merge_slices(const bg__knn_ctx *c) {
  const bg_knn_desc_t *d = c->d;
  size_t k = d->k, list = d->nb_new * k, e = key_size(d);
  int64_t *it = c->slice_idx + (size_t)(c->slices - 1) * list;
  char *kt = (char *)c->slice_keys + (size_t)(c->slices - 1) * list * e;
  for (unsigned s = 1; s < c->slices; s++) {
    const int64_t *ib = c->slice_idx + (size_t)(s - 1) * list;
    const char *kb = (const char *)c->slice_keys + (size_t)(s - 1) * list * e;
    for (size_t i = 0; i < d->nb_new; i++) {
      if (d->dtype == BG_F64)
        merge_row_double((double *)c->keys + i * k, d->idx + i * k,
                         (const double *)(const void *)kb + i * k, ib + i * k, k, (double *)kt, it);
      else
        merge_row_float((float *)c->keys + i * k, d->idx + i * k,
                        (const float *)(const void *)kb + i * k, ib + i * k, k, (float *)kt, it);
    }
  }
}
