/* SPDX-License-Identifier: MIT */
/* The sgemm reference of the knn suite, through OpenBLAS's own threads: the bare product the
 * lecture's NumPy computes before its argmax, as fast as OpenBLAS runs it on this machine. */
#include "knn.h"
#include "stats.h"

#include <cblas.h>
#include <stdlib.h>

double bench_sgemm_seconds(const float *db, size_t nb_txt, const float *q, size_t nb_new,
                           size_t dim, unsigned threads, uint64_t block_bytes) {
  size_t rows, cols;
  bench_sgemm_blocks(nb_txt, nb_new, block_bytes, &rows, &cols);
  float *s = malloc(rows * cols * sizeof *s);
  if (!s)
    return -1;
  int old = openblas_get_num_threads();
  openblas_set_num_threads((int)threads);
  double t0 = bench_now();
  for (size_t i0 = 0; i0 < nb_new; i0 += rows) {
    size_t m = nb_new - i0 < rows ? nb_new - i0 : rows;
    for (size_t j0 = 0; j0 < nb_txt; j0 += cols) {
      size_t n = nb_txt - j0 < cols ? nb_txt - j0 : cols;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)dim, 1.0f,
                  q + i0 * dim, (int)dim, db + j0 * dim, (int)dim, 0.0f, s, (int)n);
    }
  }
  double dt = bench_now() - t0;
  openblas_set_num_threads(old);
  free(s);
  return dt;
}
