/* SPDX-License-Identifier: MIT */
/* What the mpi backend shares with the distributed knn (knn_mpi.c): the rank's own pool and
 * its communicator. Builds without MPI get mpi_none.c's versions, which say BG_ENOTSUP. */
#ifndef BRIGADE_INTERNAL_DIST_H
#define BRIGADE_INTERNAL_DIST_H

#include "brigade/knn.h"
#include "brigade/pool.h"

/* Starts MPI unless the program already has (MPI_Init_thread, FUNNELED; finished at exit). */
int bg__mpi_start(void);

/* The mpi backend's state: the pool of this rank's threads, and a pointer to its MPI_Comm. */
bg_pool_t *bg__mpi_local(void *state);
void *bg__mpi_comm(void *state);

/* bg_knn on an mpi pool: each rank searches its slice of the database (d->db_offset says
 * where it starts) and the best k of every rank are merged, ties to the lowest index. */
int bg__knn_mpi(bg_pool_t *pool, const bg_knn_desc_t *d, bg_knn_plan_t *plan);

#endif
