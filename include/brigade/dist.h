/* SPDX-License-Identifier: MIT */
/* Beyond one machine: the ranks mpirun started. A pool created with backend "mpi" on every
 * rank runs bg_map and bg_knn across all of them (see map.h and knn.h for what each rank
 * passes); this call tells a program which rank it is, e.g. so that only rank 0 prints. */
#ifndef BRIGADE_DIST_H
#define BRIGADE_DIST_H

#include <stdint.h>

#include "brigade/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * bg_dist_world - this process's rank and the number of ranks, starting MPI if needed.
 *
 * A program not started by mpirun (or MPICH's mpiexec) is rank 0 of 1, and MPI is not
 * started; the "mpi" backend is then unavailable (BG_EUNAVAIL from bg_pool_create).
 *
 * Return: 0; BG_EINVAL (NULL pointer); BG_ENOTSUP (built without MPI); BG_EUNAVAIL (MPI
 * failed to start).
 */
int bg_dist_world(unsigned *rank, unsigned *ranks);

/**
 * bg_dist_max - the largest of one value over every rank of an mpi pool.
 * @pool: a pool of the "mpi" backend; every rank calls this with its own (a collective).
 * @value: IN: this rank's value; OUT: the largest over all ranks.
 *
 * For ranks that must agree before a collective call instead of one of them returning alone
 * and leaving the others waiting in it: e.g. rank 0 passes a non-zero error when it cannot open
 * a file only it writes, and every rank then stops with that error.
 *
 * Return: 0; BG_EINVAL (NULL pointer); BG_EBACKEND (@pool is not an mpi pool); BG_ENOTSUP
 * (built without MPI).
 */
int bg_dist_max(bg_pool_t *pool, int64_t *value);

#ifdef __cplusplus
}
#endif

#endif
