/* SPDX-License-Identifier: MIT */
/* The knn peers' side of the exchange: the case's inputs go to a private folder as raw float32
 * files (exactly brigade's inputs, so the answers can be compared), each peer approach runs in
 * a process of its own (so the memory-wall failure of one does not take the others down, and
 * each peak is its own), and writes its answer back as raw int64s. */
#include "peers.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Writes n bytes to dir/name; 0 or -1 with errno. */
static int write_file(const char *dir, const char *name, const void *data, size_t n) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t put = fwrite(data, 1, n, f);
  int err = ferror(f) ? errno : 0;
  if (fclose(f) != 0 && !err)
    err = errno;
  if (put != n || err) {
    errno = err ? err : EIO;
    return -1;
  }
  return 0;
}

int bench_peers_knn_open(bench_peers_knn *k, char *why, size_t cap) {
  const char *tmp = getenv("TMPDIR");
  snprintf(k->dir, sizeof k->dir, "%s/brigade-knn-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  double need = (double)(k->nb_txt + k->nb_new) * (double)k->dim * sizeof(float);
  if (!mkdtemp(k->dir)) {
    snprintf(why, cap, "cannot create a folder for their inputs in %s: %s (set TMPDIR)",
             tmp && *tmp ? tmp : "/tmp", strerror(errno));
    k->dir[0] = '\0';
    return -1;
  }
  struct statvfs fs;
  if (statvfs(k->dir, &fs) == 0 && (double)fs.f_bavail * (double)fs.f_frsize < 1.1 * need) {
    snprintf(why, cap, "their inputs need %.2f GiB in %s, which has %.2f GiB free (set TMPDIR)",
             need / 1073741824, k->dir, (double)fs.f_bavail * (double)fs.f_frsize / 1073741824);
    bench_peers_knn_close(k);
    return -1;
  }
  if (write_file(k->dir, "db.f32", k->db, k->nb_txt * k->dim * sizeof(float)) ||
      write_file(k->dir, "queries.f32", k->q, k->nb_new * k->dim * sizeof(float))) {
    snprintf(why, cap, "cannot write their inputs (%.2f GiB) in %s: %s (set TMPDIR)",
             need / 1073741824, k->dir, strerror(errno));
    bench_peers_knn_close(k);
    return -1;
  }
  return 0;
}

void bench_peers_knn_close(bench_peers_knn *k) {
  if (!k->dir[0])
    return;
  /* Whatever is in the folder goes: the inputs, the answers, anything a peer left. */
  DIR *d = opendir(k->dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[4400];
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
        snprintf(path, sizeof path, "%s/%s", k->dir, e->d_name) < (int)sizeof path)
      unlink(path);
  }
  if (d)
    closedir(d);
  rmdir(k->dir);
  k->dir[0] = '\0';
}

/* Reads the answer the peer wrote to dir/APPROACH.i64 (nb_new native int64s) into idx. */
static int read_answer(const bench_peers_knn *k, const char *approach, int64_t *idx) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.i64", k->dir, approach);
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  size_t got = fread(idx, sizeof *idx, k->nb_new, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  return got == k->nb_new && !extra ? 0 : -1;
}

bench_row *bench_peers_knn_run(const bench_peers *p, const bench_peers_knn *k, const char *approach,
                               unsigned workers, unsigned repeat, double row_seconds,
                               const char *section, bench_result *res, int64_t *idx) {
  res->peers = 1;
  bench_peers_cmd cmd;
  if (bench_peers_cmd_init(&cmd, p, "knn.py", section, res) != 0)
    return NULL;
  bench_peers_cmd_arg(&cmd, "--approach", "%s", approach);
  bench_peers_cmd_arg(&cmd, "--inputs", "%s", k->dir);
  bench_peers_cmd_arg(&cmd, "--nb-txt", "%zu", k->nb_txt);
  bench_peers_cmd_arg(&cmd, "--dim", "%zu", k->dim);
  bench_peers_cmd_arg(&cmd, "--nb-new", "%zu", k->nb_new);
  bench_peers_cmd_arg(&cmd, "--workers", "%u", workers);
  bench_peers_cmd_arg(&cmd, "--repeat", "%u", repeat);
  bench_peers_cmd_arg(&cmd, "--row-seconds", "%g", row_seconds);
  char who[64];
  snprintf(who, sizeof who, "py:%s's process", approach);
  size_t first = res->nrows;
  bench_peers_run_script(p, &cmd, who, section, "knn", k->nb_new, res);
  bench_row *row = NULL;
  for (size_t i = first; i < res->nrows; i++)
    if (!strcmp(res->rows[i].backend + 3, approach))
      row = &res->rows[i];
  if (row && !row->failed && read_answer(k, approach, idx) != 0) {
    row->failed = 1;
    bench_note_add(res, section, "%s wrote no readable answer (%s/%s.i64)", row->backend, k->dir,
                   approach);
  }
  return row;
}
