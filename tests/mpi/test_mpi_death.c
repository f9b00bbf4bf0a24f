/* SPDX-License-Identifier: MIT */
/* A rank that dies in the middle of a map: rank 1 exits from inside a task while the other
 * ranks are working or waiting in the map's collectives. The job must end (Open MPI aborts the
 * other ranks) with a failure status, never hang; tests/mpi/death.sh checks both. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "brigade.h"

static unsigned rank;

static int die_on_rank_1(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)ctx;
  if (rank == 1 && i > 0)
    _exit(3);
  nanosleep(&(struct timespec){0, 1000000}, NULL);
  return 0;
}

int main(void) {
  unsigned ranks;
  if (bg_dist_world(&rank, &ranks) != 0 || ranks < 2)
    return 77;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = "mpi";
  o.workers = 1;
  bg_pool_t *p;
  if (bg_pool_create(&o, &p) != 0)
    return 1;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = die_on_rank_1;
  d.n = 2000;
  int rc = bg_map(p, &d, NULL);
  bg_pool_destroy(p);
  printf("rank %u: the map returned %d although rank 1 died\n", rank, rc);
  return 0;
}
