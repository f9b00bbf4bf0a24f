/* SPDX-License-Identifier: MIT */
/* The sequential backend: the lecture's plain loop, and the baseline every speedup is
 * measured against. It runs through the same scheduler and accounting as the parallel
 * backends, so a difference in timing is the parallelism and nothing else. */
#include "brigade/error.h"
#include "internal/backend.h"

static int seq_probe(void) {
  return BG_OK;
}

static int seq_init(const bg__backend_cfg *cfg, void **state) {
  (void)cfg;
  *state = NULL;
  return BG_OK;
}

static void seq_map(void *state, bg__job *job) {
  (void)state;
  bg__job_work(job, 0);
}

static void seq_fini(void *state) {
  (void)state;
}

const bg__backend_ops bg__backend_seq = {
    .abi = BG_BACKEND_ABI,
    .name = "seq",
    .priority = 0,
    .max_workers = 1,
    .lifecycle = 1,
    .probe = seq_probe,
    .init = seq_init,
    .map = seq_map,
    .fini = seq_fini,
};
