/* SPDX-License-Identifier: MIT */
/* The probes behind `brigade info --limits`. Each is the best of a few short runs: the machine
 * is shared, and the best run is the closest to what the hardware can do. */
#define _GNU_SOURCE
#include "hwlimits.h"
#include "contention.h"
#include "knn.h"
#include "stats.h"

#include "brigade.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRIES 3
#define MIB (1024.0 * 1024.0)

static void skip(bench_limits *l, const char *what) {
  size_t len = strlen(l->skipped);
  snprintf(l->skipped + len, sizeof l->skipped - len, "%s%s", len ? "; " : "", what);
}

/* ---- memory bandwidth ---------------------------------------------------------------------- */

typedef struct stream {
  uint64_t *buf;
  size_t words;  /* in buf */
  size_t slices; /* the map's items: equal parts of buf */
  int write;
  uint64_t sink[64]; /* one per slice, so that the reads cannot be optimised away */
} stream;

static int stream_slice(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  stream *s = ctx;
  size_t per = s->words / s->slices, b = i * per, e = b + per;
  if (s->write) {
    memset(s->buf + b, (int)i, (e - b) * sizeof *s->buf);
    return 0;
  }
  /* Eight independent sums: one would wait on its own additions, not on memory. */
  uint64_t a[8] = {0};
  for (size_t k = b; k + 8 <= e; k += 8)
    for (int j = 0; j < 8; j++)
      a[j] += s->buf[k + j];
  s->sink[i % 64] = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
  return 0;
}

/* GB/s of the best of TRIES passes over s->buf on @pool, or 0. */
static double stream_gbs(bg_pool_t *pool, stream *s) {
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = stream_slice, d.ctx = s, d.n = s->slices;
  double best = 0;
  for (int t = 0; t < TRIES; t++) {
    double t0 = bench_now();
    if (bg_map(pool, &d, NULL) != 0)
      return 0;
    double dt = bench_now() - t0;
    best = best == 0 || dt < best ? dt : best;
  }
  return best > 0 ? (double)(s->words * sizeof *s->buf) / best / 1e9 : 0;
}

static void probe_bandwidth(bench_limits *l, bg_pool_t *one, bg_pool_t *all, uint64_t avail) {
  /* Far larger than any cache, small beside the memory there is. */
  size_t bytes = (size_t)(avail / 4 < 512 * MIB ? avail / 4 : 512 * MIB);
  if (bytes < 64 * MIB) {
    skip(l, "memory bandwidth: less than 256 MiB available");
    return;
  }
  stream s = {.words = bytes / sizeof(uint64_t), .slices = 64};
  s.buf = malloc(bytes);
  if (!s.buf) {
    skip(l, "memory bandwidth: no memory for the buffer");
    return;
  }
  memset(s.buf, 1, bytes); /* faulted in before any timing */
  s.write = 0;
  l->read_gbs_1 = stream_gbs(one, &s);
  l->read_gbs_all = stream_gbs(all, &s);
  s.write = 1;
  l->write_gbs_1 = stream_gbs(one, &s);
  l->write_gbs_all = stream_gbs(all, &s);
  free(s.buf);
}

/* ---- first-touch page faults --------------------------------------------------------------- */

/* Microseconds per 4 KiB of touching @bytes of fresh anonymous memory, huge pages or not; 0
 * when it cannot be measured. */
static double touch_us(size_t bytes, int huge) {
  const size_t align = 2u << 20;
  double best = 0;
  for (int t = 0; t < TRIES; t++) {
    char *m = mmap(NULL, bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
      return 0;
    char *p = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    if (huge && madvise(p, bytes, MADV_HUGEPAGE) != 0) {
      munmap(m, bytes + align);
      return 0;
    }
    if (!huge)
      madvise(p, bytes, MADV_NOHUGEPAGE);
    double t0 = bench_now();
    for (size_t off = 0; off < bytes; off += 4096)
      p[off] = 1;
    double dt = bench_now() - t0;
    munmap(m, bytes + align);
    best = best == 0 || dt < best ? dt : best;
  }
  return best * 1e6 / (double)(bytes / 4096);
}

static void probe_faults(bench_limits *l, uint64_t avail) {
  size_t bytes = 128u << 20;
  if (avail / 4 < bytes) {
    skip(l, "page faults: less than 512 MiB available");
    return;
  }
  l->fault_us_4k = touch_us(bytes, 0);
  l->fault_us_4k_thp = touch_us(bytes, 1);
  if (l->fault_us_4k_thp == 0)
    skip(l, "huge pages: madvise(MADV_HUGEPAGE) refused (transparent huge pages off?)");
}

/* ---- files ---------------------------------------------------------------------------------- */

enum { FILES = 1000, FILE_BYTES = 200 };

typedef struct files {
  char root[256];
  int per_worker; /* each worker in its own folder */
  int failed;
} files;

static int one_file(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in;
  files *f = ctx;
  char path[320];
  int w = bg_worker_id() < 0 ? 0 : bg_worker_id();
  if (f->per_worker)
    snprintf(path, sizeof path, "%s/w%d/f%zu", f->root, w, i);
  else
    snprintf(path, sizeof path, "%s/f%zu", f->root, i);
  static const char data[FILE_BYTES] = {'x'};
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, data, sizeof data) != (ssize_t)sizeof data) {
    if (fd >= 0)
      close(fd), unlink(path);
    f->failed = 1;
    return 1;
  }
  close(fd);
  unlink(path);
  return 0;
}

/* Microseconds per file per worker: the wall time of @n files on @pool's workers, times the
 * workers, over n. 0 on a failure. */
static double files_us(bg_pool_t *pool, files *f, size_t n) {
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = one_file, d.ctx = f, d.n = n;
  double best = 0;
  for (int t = 0; t < TRIES; t++) {
    double t0 = bench_now();
    if (bg_map(pool, &d, NULL) != 0 || f->failed)
      return 0;
    double dt = bench_now() - t0;
    best = best == 0 || dt < best ? dt : best;
  }
  return best * 1e6 * bg_pool_workers(pool) / (double)n;
}

static void probe_files(bench_limits *l, bg_pool_t *one, bg_pool_t *all) {
  files f = {0};
  const char *tmp = getenv("TMPDIR");
  snprintf(f.root, sizeof f.root, "%s/brigade-limits-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(f.root)) {
    skip(l, "files: cannot create a temporary folder (set TMPDIR)");
    return;
  }
  unsigned w = bg_pool_workers(all);
  char sub[320];
  for (unsigned k = 0; k < w; k++) {
    snprintf(sub, sizeof sub, "%s/w%u", f.root, k);
    mkdir(sub, 0700);
  }
  l->file_us_1 = files_us(one, &f, FILES);
  l->file_us_shared = files_us(all, &f, (size_t)FILES * w);
  f.per_worker = 1;
  l->file_us_private = files_us(all, &f, (size_t)FILES * w);
  if (f.failed)
    skip(l, "files: a create or write failed (a full disk?)");
  for (unsigned k = 0; k < w; k++) {
    snprintf(sub, sizeof sub, "%s/w%u", f.root, k);
    rmdir(sub);
  }
  rmdir(f.root);
}

/* ---- processes, threads, sgemm ------------------------------------------------------------- */

static void probe_fork(bench_limits *l) {
  enum { N = 100 };
  double best = 0;
  for (int t = 0; t < TRIES; t++) {
    double t0 = bench_now();
    for (int k = 0; k < N; k++) {
      pid_t pid = fork();
      if (pid == 0)
        _exit(0);
      if (pid < 0) {
        skip(l, "fork: refused");
        return;
      }
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    }
    double dt = bench_now() - t0;
    best = best == 0 || dt < best ? dt : best;
  }
  l->fork_us = best * 1e6 / N;
}

static void probe_sgemm(bench_limits *l) {
  enum { N = 1024 };
  float *a = malloc((size_t)N * N * sizeof *a), *b = malloc((size_t)N * N * sizeof *b);
  if (!a || !b) {
    free(a), free(b);
    skip(l, "sgemm: no memory");
    return;
  }
  for (size_t i = 0; i < (size_t)N * N; i++)
    a[i] = (float)(i % 7) * 0.25f, b[i] = (float)(i % 5) * 0.5f;
  double best = 0;
  for (int t = 0; t < TRIES; t++) {
    double dt = bench_sgemm_seconds(a, N, b, N, N, l->workers, (uint64_t)N * N * sizeof(float));
    if (dt <= 0) {
      skip(l, "sgemm: built without OpenBLAS");
      break;
    }
    best = best == 0 || dt < best ? dt : best;
  }
  l->sgemm_gflops = best > 0 ? 2.0 * N * N * N / best / 1e9 : 0;
  free(a), free(b);
}

int bench_limits_measure(bench_limits *l, char *err, size_t cap) {
  memset(l, 0, sizeof *l);
  bench_limits_machine(l->machine, sizeof l->machine);
  /* Figures measured while other programs ran are low: the share they took is kept with them. */
  bench_machine_cpu m0 = bench_machine_cpu_now(), busy = {.ok = 1};
  bench_cpu c0 = bench_cpu_now();
  l->measured_at = (double)time(NULL);
  uint64_t avail = 0;
  if (bg_mem_available(&avail) != 0)
    avail = 0;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = "threads";
  o.schedule = BG_SCHED_DYNAMIC;
  bg_pool_t *one = NULL, *all = NULL;
  o.workers = 1;
  int rc = bg_pool_create(&o, &one);
  o.workers = 0;
  if (rc == 0)
    rc = bg_pool_create(&o, &all);
  if (rc != 0) {
    bg_pool_destroy(one);
    snprintf(err, cap, "cannot start threads: %s", bg_strerror(rc));
    return -1;
  }
  l->workers = bg_pool_workers(all);
  probe_bandwidth(l, one, all, avail);
  probe_faults(l, avail);
  probe_files(l, one, all);
  l->wake_us = (double)bg_pool_dispatch_ns(all) / 1e3;
  bg_pool_destroy(one);
  bg_pool_destroy(all);
  probe_fork(l);
  probe_sgemm(l);
  bench_machine_cpu m1 = bench_machine_cpu_now();
  bench_cpu c1 = bench_cpu_now();
  bench_machine_cpu_add(&busy, &m0, &m1);
  l->others_cpu = bench_others_share(&busy, c1.user + c1.sys - c0.user - c0.sys);
  return 0;
}
