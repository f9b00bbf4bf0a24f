/* SPDX-License-Identifier: MIT */
/* Built without OpenBLAS: the knn suite has no sgemm reference and says so. */
#include "knn.h"

double bench_sgemm_seconds(const float *db, size_t nb_txt, const float *q, size_t nb_new,
                           size_t dim, unsigned threads, uint64_t block_bytes) {
  (void)db, (void)nb_txt, (void)q, (void)nb_new, (void)dim, (void)threads, (void)block_bytes;
  return -1;
}
