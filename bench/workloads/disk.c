/* SPDX-License-Identifier: MIT */
/* File work: each item writes a file of random letters and deletes it, in a private temporary
 * directory created by set-up and removed by tear-down whatever happened (a failed item, a
 * Ctrl-C). Small files measure system-call and file-system latency; large ones add copying. */
#include "workload.h"
#include "workloads/rng.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct disk_state {
  char dir[PATH_MAX];
  int lock; /* the folder, open and flock()ed while it is in use */
  size_t bytes;
  int per_worker; /* each worker writes in a folder of its own, dir/w<worker> */
} disk_state;

static long sweep(const char *dir, int clear);

/* A folder is left behind only when its run was killed (SIGKILL, the OOM killer) before its
 * tear-down. Each run holds an flock on its folder, which the kernel drops when the process
 * dies, whatever killed it, and which works across PID namespaces where a PID would not. So a
 * brigade-disk-* folder of this user's (never a link) that nobody holds and that has not changed
 * for a minute (one made a moment ago, not yet locked, is spared) is a dead run's: removed. */
static void sweep_stale(const char *tmp) {
  DIR *d = opendir(tmp);
  if (!d)
    return;
  time_t now = time(NULL);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strncmp(e->d_name, "brigade-disk-", 13) != 0)
      continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != getuid() || now - st.st_mtime < 60)
      continue;
    int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
      continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      char path[PATH_MAX + 256];
      snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
      sweep(path, 1);
      rmdir(path);
    }
    close(fd);
  }
  closedir(d);
}

static int disk_setup(const bench_case *c, void **state, char *err, size_t cap) {
  disk_state *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, cap, "out of memory");
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  tmp = tmp && *tmp ? tmp : "/tmp";
  sweep_stale(tmp);
  snprintf(s->dir, sizeof s->dir, "%s/brigade-disk-XXXXXX", tmp);
  if (!mkdtemp(s->dir)) {
    snprintf(err, cap, "cannot create a temporary directory in %s: %s (set TMPDIR)", tmp,
             strerror(errno));
    free(s);
    return -1;
  }
  s->lock = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->lock < 0 || flock(s->lock, LOCK_EX) != 0) {
    snprintf(err, cap, "cannot lock the temporary directory %s: %s", s->dir, strerror(errno));
    if (s->lock >= 0)
      close(s->lock);
    rmdir(s->dir);
    free(s);
    return -1;
  }
  s->bytes = (size_t)c->param;
  *state = s;
  return 0;
}

static int disk_dirs_setup(const bench_case *c, void **state, char *err, size_t cap) {
  int rc = disk_setup(c, state, err, cap);
  if (rc == 0)
    ((disk_state *)*state)->per_worker = 1;
  return rc;
}

/* Counts the files left in @dir and, with @clear, removes them and the workers' folders in it.
 * Returns the count, or -1 when @dir cannot be read. */
static long sweep(const char *dir, int clear) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  long left = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (e->d_name[0] == 'w') {
      char sub[PATH_MAX + 32];
      snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
      long in = sweep(sub, clear);
      left += in > 0 ? in : 0;
      if (clear)
        rmdir(sub);
      continue;
    }
    left++;
    if (clear)
      unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
  return left;
}

/* Removes every file and folder in the directory, then the directory. */
static void disk_teardown(void *state) {
  disk_state *s = state;
  sweep(s->dir, 1);
  rmdir(s->dir);
  close(s->lock);
  free(s);
}

/* Creates item i's file: in the shared folder, or in the worker's own (made at its first
 * file: the open that finds no folder makes it and tries again). */
static int create(const disk_state *s, size_t i, char *path, size_t cap) {
  int w = bg_worker_id() < 0 ? 0 : bg_worker_id();
  if (s->per_worker)
    snprintf(path, cap, "%s/w%d/f%zu", s->dir, w, i);
  else
    snprintf(path, cap, "%s/f%zu", s->dir, i);
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ENOENT && s->per_worker) {
    *strrchr(path, '/') = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
      return -1;
    path[strlen(path)] = '/';
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  }
  return fd;
}

static int disk_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  disk_state *s = ctx;
  if (bench_interrupted)
    return BENCH_EINTR;
  char buf[64 * 1024];
  size_t n = s->bytes < sizeof buf ? s->bytes : sizeof buf;
  uint64_t seed = bench_rng_seed(i);
  for (size_t k = 0; k < n; k++)
    buf[k] = (char)('a' + bench_rng_next(&seed) % 26);
  char path[PATH_MAX + 64];
  int fd = create(s, i, path, sizeof path);
  if (fd < 0)
    return errno ? errno : EIO;
  size_t done = 0;
  int rc = 0;
  while (done < s->bytes && rc == 0) {
    size_t chunk = s->bytes - done < n ? s->bytes - done : n;
    ssize_t w = write(fd, buf, chunk);
    if (w < 0)
      rc = errno ? errno : EIO;
    else
      done += (size_t)w;
  }
  close(fd);
  unlink(path);
  if (rc == 0)
    *(uint64_t *)out = done;
  return rc;
}

static int disk_check(void *state, const bench_case *c, const void *out, char *err, size_t cap) {
  disk_state *s = state;
  const uint64_t *r = out;
  for (size_t i = 0; i < c->n; i++) {
    if (r[i] != s->bytes) {
      snprintf(err, cap, "item %zu wrote %llu bytes, not %zu", i, (unsigned long long)r[i],
               s->bytes);
      return -1;
    }
  }
  long left = sweep(s->dir, 0);
  if (left < 0) {
    snprintf(err, cap, "the temporary directory %s vanished", s->dir);
    return -1;
  }
  if (left) {
    snprintf(err, cap, "%ld files were left in %s", left, s->dir);
    return -1;
  }
  return 0;
}

const bench_workload bench_wl_disk_small = {
    .name = "disk-small",
    .bound = BENCH_BOUND_FILES,
    .simulates = "small file writes: 200 B of random letters written and deleted per item",
    .param_fmt = "%g B files",
    .quick = {5000, 200},
    .lecture = {{1000, 200}, {100000, 200}},
    .nlecture = 2,
    .out_size = sizeof(uint64_t),
    .setup = disk_setup,
    .teardown = disk_teardown,
    .fn = disk_task,
    .check = disk_check,
    .blocking = 1,
};

const bench_workload bench_wl_disk_dirs = {
    .name = "disk-dirs",
    .bound = BENCH_BOUND_FILES,
    .simulates = "disk-small with one folder per worker: the way past the shared folder's lock",
    .param_fmt = "%g B files",
    .quick = {5000, 200},
    .lecture = {{1000, 200}, {100000, 200}},
    .nlecture = 2,
    .out_size = sizeof(uint64_t),
    .setup = disk_dirs_setup,
    .teardown = disk_teardown,
    .fn = disk_task,
    .check = disk_check,
    .blocking = 1,
};

const bench_workload bench_wl_disk_large = {
    .name = "disk-large",
    .bound = BENCH_BOUND_FILES,
    .simulates = "large file writes: 20 KB of random letters written and deleted per item",
    .param_fmt = "%g B files",
    .quick = {2000, 20000},
    .lecture = {{1000, 20000}, {100000, 20000}},
    .nlecture = 2,
    .out_size = sizeof(uint64_t),
    .setup = disk_setup,
    .teardown = disk_teardown,
    .fn = disk_task,
    .check = disk_check,
    .blocking = 1,
};
