/* SPDX-License-Identifier: MIT */
/* The mpi backend's state, shared by its set-up (backend/mpi.c) and its map (backend/mpi_map.c).
 * Only these two files and knn_mpi.c include mpi.h. */
#ifndef BRIGADE_INTERNAL_MPI_BACKEND_H
#define BRIGADE_INTERNAL_MPI_BACKEND_H

#include <mpi.h>
#include <stdint.h>

#include "brigade/pool.h"
#include "internal/job.h"

typedef struct bg__mpi_state {
  bg_pool_t *local;     /* I: this rank's threads */
  MPI_Comm comm;        /* I: a duplicate of MPI_COMM_WORLD, private to the pool */
  MPI_Win counter;      /* I: two uint64 on rank 0, over all maps: the items handed out, and
                           the failures counted for BG_MAP_HALT's halt_after */
  uint64_t *next;       /* I: their memory (rank 0), NULL elsewhere */
  int rank, size;       /* I */
  bg_allocator_t alloc; /* I */
} bg__mpi_state;

/* The backend's map (the ops' map): every rank calls it with its own job of the same n. */
void bg__mpi_map(void *state, bg__job *job);

#endif
