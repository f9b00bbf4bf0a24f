/* SPDX-License-Identifier: MIT */
/* The knn suite's database as a file, for its out-of-core row (knn_file.h). */
#include "knn_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Room left on the disk beside the file, so that the run never fills it. */
#define DISK_SLACK ((uint64_t)256 << 20)

int bench_knn_file_open(bench_knn_file *f, const float *db, size_t rows, size_t dim, char *why,
                        size_t cap) {
  memset(f, 0, sizeof *f);
  const char *tmp = getenv("TMPDIR");
  tmp = tmp && *tmp ? tmp : "/tmp";
  char path[4096];
  snprintf(path, sizeof path, "%s/brigade-knn-db-XXXXXX", tmp);
  uint64_t bytes = (uint64_t)rows * dim * sizeof(float);
  struct statvfs fs;
  if (statvfs(tmp, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < bytes + DISK_SLACK) {
    snprintf(why, cap,
             "the database file needs %.2f GiB in %s, which has %.2f GiB free (set "
             "TMPDIR)",
             (double)bytes / 1073741824, tmp,
             (double)fs.f_bavail * (double)fs.f_frsize / 1073741824);
    return -1;
  }
  int fd = mkstemp(path);
  if (fd < 0) {
    snprintf(why, cap, "cannot create the database file in %s: %s (set TMPDIR)", tmp,
             strerror(errno));
    return -1;
  }
  /* The name goes at once, so that a kill -9 while the file is written leaves nothing behind;
   * it is written and reopened through the descriptor, and its space returns with the last. */
  unlink(path);
  size_t shape[2] = {rows, dim};
  bg_npy_error_t e;
  int rc = bg_npy_write_fd(fd, BG_NPY_F32, 2, shape, db, &e);
  if (rc == 0) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    bg_npy_opts_t o;
    bg_npy_opts_init(&o);
    o.stream = 1;
    rc = bg_npy_open(self, &o, &f->npy, &e);
  }
  close(fd);
  if (rc != 0) {
    snprintf(why, cap, "the database file in %s: %s", tmp, e.msg);
    return -1;
  }
  f->bytes = bytes;
  return 0;
}

int bench_knn_file_read(void *ctx, size_t row0, size_t rows, void *dst) {
  const bench_knn_file *f = ctx;
  return bg_npy_read_rows(f->npy, row0, rows, dst, NULL);
}

const void *bench_knn_file_view(void *ctx, size_t row0, size_t rows) {
  bench_knn_file *f = ctx;
  bg_npy_view_t *v = &f->views[f->nviews++ % 2];
  bg_npy_unview(v);
  return bg_npy_view_rows(f->npy, row0, rows, v, NULL) == 0 ? v->rows : NULL;
}

void bench_knn_file_unview(bench_knn_file *f) {
  for (int i = 0; i < 2; i++)
    bg_npy_unview(&f->views[i]);
}

void bench_knn_file_close(bench_knn_file *f) {
  bench_knn_file_unview(f);
  bg_npy_close(f->npy);
  f->npy = NULL;
}
