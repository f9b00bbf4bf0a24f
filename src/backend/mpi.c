/* SPDX-License-Identifier: MIT */
/* The MPI backend: SPMD over the ranks mpirun started. Every rank creates the pool and calls
 * bg_map with the same n (the map itself is mpi_map.c). This file starts MPI, tells a program
 * its rank, and sets up each pool: its local threads, its communicator and the shared counter
 * that hands out chunks. */
#include "brigade/error.h"
#include "internal/backend.h"
#include "brigade/dist.h"
#include "internal/dist.h"
#include "internal/mpi_backend.h"
#include "internal/pool_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef bg__mpi_state mpi_state;

/* MPI is started by the first mpi pool when the program has not started it, and finished at
 * exit; a program that calls MPI_Init itself keeps both to itself. */
static void finish_mpi(void) {
  int done;
  MPI_Finalized(&done);
  if (!done)
    MPI_Finalize();
}

/* Whether a launcher (Open MPI's mpirun, MPICH's hydra, a PMIx server) started this process.
 * A singleton MPI_Init outside one costs half a second and, with no launcher helper on the
 * PATH, aborts the process: brigade never tries it. */
static int launched(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int bg__mpi_start(void) {
  int up;
  MPI_Initialized(&up);
  if (up)
    return BG_OK;
  if (!launched())
    return BG_EUNAVAIL;
  int provided;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return BG_EUNAVAIL;
  atexit(finish_mpi);
  return BG_OK;
}

int bg_dist_world(unsigned *rank, unsigned *ranks) {
  if (!rank || !ranks)
    return BG_EINVAL;
  int up;
  MPI_Initialized(&up);
  if (!up && !launched()) {
    *rank = 0, *ranks = 1;
    return BG_OK;
  }
  int rc = bg__mpi_start();
  if (rc != 0)
    return rc;
  int r, s;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  *rank = (unsigned)r, *ranks = (unsigned)s;
  return BG_OK;
}

static int mpi_probe(void) {
  int up;
  MPI_Initialized(&up);
  return up || launched() ? BG_OK : BG_EUNAVAIL;
}

static int mpi_init(const bg__backend_cfg *cfg, void **state) {
  int rc = bg__mpi_start();
  if (rc != 0)
    return rc;
  mpi_state *s = cfg->alloc->alloc(sizeof *s, cfg->alloc->ud);
  if (!s)
    return BG_ENOMEM;
  memset(s, 0, sizeof *s);
  s->alloc = *cfg->alloc;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = cfg->workers > 1 ? "threads" : "seq";
  o.workers = cfg->workers;
  o.pin = cfg->pin;
  o.topo = cfg->topo;
  o.allocator = cfg->alloc;
  rc = bg_pool_create(&o, &s->local);
  if (rc != 0) {
    s->alloc.free(s, s->alloc.ud);
    return rc;
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &s->comm);
  MPI_Comm_rank(s->comm, &s->rank);
  MPI_Comm_size(s->comm, &s->size);
  MPI_Win_allocate(s->rank == 0 ? 2 * sizeof(uint64_t) : 0, sizeof(uint64_t), MPI_INFO_NULL,
                   s->comm, &s->next, &s->counter);
  if (s->rank == 0) {
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, s->counter);
    s->next[0] = s->next[1] = 0;
    MPI_Win_unlock(0, s->counter);
  }
  MPI_Barrier(s->comm);
  *state = s;
  return BG_OK;
}

static void mpi_fini(void *state) {
  mpi_state *s = state;
  int done;
  MPI_Finalized(&done);
  if (!done) {
    MPI_Win_free(&s->counter);
    MPI_Comm_free(&s->comm);
  }
  bg_pool_destroy(s->local);
  s->alloc.free(s, s->alloc.ud);
}

int bg_dist_max(bg_pool_t *pool, int64_t *value) {
  if (!pool || !value)
    return BG_EINVAL;
  if (pool->ops != &bg__backend_mpi)
    return BG_EBACKEND;
  int64_t mine = *value;
  MPI_Allreduce(&mine, value, 1, MPI_INT64_T, MPI_MAX, ((mpi_state *)pool->bstate)->comm);
  return BG_OK;
}

bg_pool_t *bg__mpi_local(void *state) {
  return ((mpi_state *)state)->local;
}

void *bg__mpi_comm(void *state) {
  return &((mpi_state *)state)->comm;
}

const bg__backend_ops bg__backend_mpi = {
    .abi = BG_BACKEND_ABI,
    .name = "mpi",
    .priority = -10, /* never auto's choice: a map across ranks must be asked for */
    .collective = 1,
    .probe = mpi_probe,
    .init = mpi_init,
    .map = bg__mpi_map,
    .fini = mpi_fini,
};
