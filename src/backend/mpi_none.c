/* SPDX-License-Identifier: MIT */
/* A build without MPI: the distributed calls exist and say so. */
#include "brigade/dist.h"
#include "brigade/error.h"
#include "internal/dist.h"

int bg_dist_world(unsigned *rank, unsigned *ranks) {
  if (!rank || !ranks)
    return BG_EINVAL;
  return BG_ENOTSUP;
}

int bg_dist_max(bg_pool_t *pool, int64_t *value) {
  if (!pool || !value)
    return BG_EINVAL;
  return BG_ENOTSUP;
}

int bg__knn_mpi(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan) {
  (void)pool, (void)d, (void)plan;
  return BG_ENOTSUP;
}
