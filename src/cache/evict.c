/* SPDX-License-Identifier: MIT */
/* The cache folder's lock file and eviction. Whoever evicts, clears or starts a segment holds
 * the lock file's flock, one process at a time. The file holds two numbers: the epoch, which
 * each eviction advances so that other handles drop the segments that are gone (and stop
 * holding their disk space open), and the newest segment's number, so that numbers only grow
 * and a handle learns of a new segment with one read. The cap counts bytes on disk
 * (st_blocks), and eviction removes whole segments, oldest first. */
#define _GNU_SOURCE
#include "brigade/error.h"
#include "internal/cache_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_NAME ".lock"
/* What the format before segments left: a file per entry and temporary files. */
#define LEGACY_SUFFIX ".bgm"
#define LEGACY_TMP ".tmp-"

int bg__open_lockfile(int dfd) {
  /* O_NOFOLLOW: a link planted in its place must not make us create or open a file wherever it
   * points (ELOOP instead); a FIFO or other non-regular file is refused too (EINVAL). */
  int fd = openat(dfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  struct stat st;
  if (fd < 0 || (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)))
    return fd;
  close(fd);
  errno = EINVAL;
  return -1;
}

int bg__lock_folder(int dfd) {
  int fd = bg__open_lockfile(dfd);
  if (fd < 0)
    return -1;
  int rc;
  while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
    ;
  if (rc == 0)
    return fd;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

void bg__lock_state(int lockfd, uint64_t st[2]) {
  /* An empty lock file (a new folder, or one of the format before) reads as zeros. */
  if (pread(lockfd, st, 2 * sizeof *st, 0) != (ssize_t)(2 * sizeof *st))
    st[0] = st[1] = 0;
}

int bg__lock_state_write(int lockfd, const uint64_t st[2]) {
  return pwrite(lockfd, st, 2 * sizeof *st, 0) == (ssize_t)(2 * sizeof *st) ? 0 : -1;
}

typedef struct seg_file {
  uint64_t num, disk;
} seg_file;

static int older(const void *a, const void *b) {
  uint64_t x = ((const seg_file *)a)->num, y = ((const seg_file *)b)->num;
  return (x > y) - (x < y);
}

/* Lists the segments with their bytes on disk (0 for a name that is not a regular file, so
 * that clearing removes it) and removes the files of the format before. Return: 0 or -1. */
static int list_folder(int dfd, seg_file **out, size_t *count, uint64_t *total) {
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  seg_file *v = NULL;
  size_t n = 0, cap = 0;
  *total = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    uint64_t num;
    struct stat st;
    if (strncmp(e->d_name, LEGACY_TMP, strlen(LEGACY_TMP)) == 0 ||
        (len == 32 + strlen(LEGACY_SUFFIX) && strcmp(e->d_name + 32, LEGACY_SUFFIX) == 0)) {
      unlinkat(dfd, e->d_name, 0);
      continue;
    }
    if (!bg__seg_parse(e->d_name, &num) || fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (n == cap) {
      seg_file *p = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof *v);
      if (!p) {
        free(v);
        closedir(d);
        return -1;
      }
      v = p;
    }
    v[n] = (seg_file){num, S_ISREG(st.st_mode) ? (uint64_t)st.st_blocks * 512 : 0};
    *total += v[n++].disk;
  }
  closedir(d);
  *out = v;
  *count = n;
  return 0;
}

/* Removes segment @num once no writer is appending to it: its flock comes first, so a writer
 * finishes its record, and the next to take the flock finds the file unlinked and moves on. */
static void evict_one(int dfd, uint64_t num) {
  char name[24];
  bg__seg_name(num, name);
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
      ;
  unlinkat(dfd, name, 0);
  if (fd >= 0)
    close(fd);
}

int bg__trim(bg_cache_t *c, uint64_t target, int evicting) {
  int lk = bg__lock_folder(c->dfd);
  if (lk < 0)
    return BG_ESYS;
  seg_file *v = NULL;
  size_t n = 0, removed = 0;
  uint64_t total = 0;
  int rc = list_folder(c->dfd, &v, &n, &total) == 0 ? BG_OK : BG_ESYS;
  if (rc == 0 && total > target) {
    qsort(v, n, sizeof *v, older);
    for (size_t i = 0; i < n && total > target; i++, removed++) {
      evict_one(c->dfd, v[i].num);
      bg__folder_drop(c, v[i].num);
      total -= v[i].disk;
    }
  }
  if (removed) {
    uint64_t st[2];
    bg__lock_state(lk, st);
    /* This handle has dropped what it removed; an eviction by another since this handle last
     * looked is left for its next sync to find. */
    if (st[0] == c->epoch)
      c->epoch = st[0] + 1;
    st[0]++;
    /* Unrecorded, it costs other handles a late look at the folder, not a wrong result. */
    bg__lock_state_write(lk, st);
    size_t lost = bg__index_drop_dead(&c->idx, c);
    if (evicting)
      atomic_fetch_add(&c->n->evictions, lost);
  }
  if (rc == 0) {
    atomic_store(&c->n->bytes, total);
    atomic_store(&c->n->since_scan, 0);
  }
  free(v);
  close(lk);
  return rc;
}

int bg__remove_lockfile(int dfd) {
  return unlinkat(dfd, LOCK_NAME, 0) == 0 || errno == ENOENT ? 0 : -1;
}
