/* SPDX-License-Identifier: MIT */
/* Beyond one machine: the ranks mpirun started. A pool created with backend "mpi" on every
 * rank runs bg_map and bg_knn across all of them (see map.h and knn.h for what each rank
 * passes); this call tells a program which rank it is, e.g. so that only rank 0 prints. */
#ifndef BRIGADE_DIST_H
#define BRIGADE_DIST_H

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

#ifdef __cplusplus
}
#endif

#endif
