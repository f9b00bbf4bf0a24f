/* SPDX-License-Identifier: MIT */
/* The memo cache's folder. One file per entry, named by a 128-bit hash of the task's name and
 * input; the file holds a header, the name, the input and the result, with a checksum over
 * all three, so a read returns a result only for exactly that name and input and only when no
 * byte of it was damaged. Writes go to a temporary file renamed into place (atomic on POSIX
 * filesystems); a reader that opened the old file keeps reading it whole. Trimming to the cap
 * takes an flock on the folder's lock file so that one process at a time evicts. The folder may
 * be writable by others, so nothing in it is trusted to be what its name says: no open follows
 * a symbolic link or waits on a FIFO, and an entry that is not a regular file counts as
 * damaged. */
#define _GNU_SOURCE
#include "brigade/cache.h"
#include "brigade/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define MAGIC "BGMEMO01"
#define SUFFIX ".bgm"
#define TMP_PREFIX ".tmp-"
#define LOCK_NAME ".lock"
/* A temporary file this old belongs to a writer that died: the next trim removes it. */
#define STALE_TMP_S 3600

typedef struct entry_hdr {
  char magic[8];
  uint64_t task_len, in_size, out_size;
  uint64_t sum; /* XXH3-64 of what follows the header */
} entry_hdr;

/* Shared with processes forked after open, so a procs map's hits count in the caller. */
typedef struct counters {
  _Atomic uint64_t hits, misses, corrupt, stores, evictions, bytes;
  _Atomic uint64_t since_scan; /* bytes stored since the folder was last scanned */
  _Atomic uint64_t seq;        /* temporary file names */
} counters;

struct bg_cache {
  int dfd; /* the folder */
  uint64_t max_bytes;
  counters *n;
};

/* name: 32 hex digits of the key's hash and the suffix. */
static void entry_name(const char *task, const void *in, size_t in_size, char name[40]) {
  XXH64_hash_t seed = XXH3_64bits(task, strlen(task));
  XXH128_hash_t h = XXH3_128bits_withSeed(in_size ? in : "", in_size, seed);
  snprintf(name, 40, "%016llx%016llx" SUFFIX, (unsigned long long)h.high64,
           (unsigned long long)h.low64);
}

static int full_io(int fd, char *p, size_t len, off_t off, int writing) {
  while (len > 0) {
    ssize_t k = writing ? pwrite(fd, p, len, off) : pread(fd, p, len, off);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    off += k;
    len -= (size_t)k;
  }
  return 0;
}

static void remove_if_same(const bg_cache_t *c, const char *name, int fd) {
  struct stat a, b;
  /* Only the damaged file: a writer may have renamed a good entry over it meanwhile. The name
   * is not followed: a link is compared (and removed) as itself. */
  if (fstat(fd, &a) == 0 && fstatat(c->dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
      a.st_ino == b.st_ino && a.st_dev == b.st_dev)
    unlinkat(c->dfd, name, 0);
}

/* Reads and checks the entry open on @fd. Return: 1 hit, 0 not this key, -1 damaged (which
 * includes anything but a regular file). */
static int read_entry(int fd, const char *task, const void *in, size_t in_size, void *out,
                      size_t out_size) {
  size_t tl = strlen(task);
  struct stat st;
  entry_hdr h;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || full_io(fd, (char *)&h, sizeof h, 0, 0) != 0 ||
      memcmp(h.magic, MAGIC, sizeof h.magic) != 0)
    return -1;
  uint64_t body = h.task_len + h.in_size + h.out_size;
  if (body < h.task_len || (uint64_t)st.st_size != sizeof h + body)
    return -1;
  if (h.task_len != tl || h.in_size != in_size || h.out_size != out_size)
    return 0;
  char *buf = malloc(body ? (size_t)body : 1);
  if (!buf)
    return 0;
  int rc = -1;
  if (full_io(fd, buf, (size_t)body, sizeof h, 0) == 0 && XXH3_64bits(buf, (size_t)body) == h.sum) {
    rc = memcmp(buf, task, tl) == 0 && (!in_size || memcmp(buf + tl, in, in_size) == 0);
    if (rc == 1 && out_size)
      memcpy(out, buf + tl + in_size, out_size);
  }
  free(buf);
  return rc;
}

int bg_cache_get(bg_cache_t *c, const char *task, const void *in, size_t in_size, void *out,
                 size_t out_size) {
  if (!c || !task || (!in && in_size) || (!out && out_size))
    return BG_EINVAL;
  char name[40];
  entry_name(task, in, in_size, name);
  /* O_NONBLOCK: a FIFO put in an entry's place opens at once (and then fails the regular-file
   * check) instead of waiting for a writer forever; it changes nothing for a regular file. */
  int fd = openat(c->dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && (errno == ELOOP || errno == ENXIO)) {
    /* A symbolic link or a socket in an entry's place: opened as itself, only to be checked
     * and removed as a damaged entry, so that it does not cost every later lookup again. */
    fd = openat(c->dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  }
  int rc = fd < 0 ? 0 : read_entry(fd, task, in, in_size, out, out_size);
  if (rc < 0) {
    atomic_fetch_add(&c->n->corrupt, 1);
    remove_if_same(c, name, fd);
  }
  if (rc == 1) {
    /* The modification time is the entry's last use: eviction goes oldest first. */
    futimens(fd, NULL);
    atomic_fetch_add(&c->n->hits, 1);
  } else {
    atomic_fetch_add(&c->n->misses, 1);
  }
  if (fd >= 0)
    close(fd);
  return rc == 1 ? BG_OK : BG_ENOENT;
}

typedef struct ent {
  struct timespec used;
  uint64_t size;
  char name[40];
} ent;

static int older(const void *a, const void *b) {
  const struct timespec *x = &((const ent *)a)->used, *y = &((const ent *)b)->used;
  if (x->tv_sec != y->tv_sec)
    return x->tv_sec < y->tv_sec ? -1 : 1;
  return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

/* How trim() treats the folder. */
enum {
  TRIM_EVICTING = 1, /* entries removed count as evictions */
  TRIM_ALL_TMP = 2   /* every temporary file goes, not only stale ones */
};

/* Lists the entries (and removes stale temporary files, or all with TRIM_ALL_TMP). A name that
 * is an entry's but not a regular file is listed with size 0, so that clearing removes it.
 * Return: 0 or -1. */
static int list_entries(const bg_cache_t *c, unsigned flags, ent **out, size_t *count,
                        uint64_t *total) {
  int fd = openat(c->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  ent *v = NULL;
  size_t n = 0, cap = 0;
  *total = 0;
  time_t now = time(NULL);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    struct stat st;
    size_t len = strlen(e->d_name);
    int is_tmp = strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
    int is_ent = len == 32 + strlen(SUFFIX) && strcmp(e->d_name + 32, SUFFIX) == 0;
    if ((!is_tmp && !is_ent) || fstatat(c->dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (is_tmp) {
      if ((flags & TRIM_ALL_TMP) || now - st.st_mtime > STALE_TMP_S)
        unlinkat(c->dfd, e->d_name, 0);
      continue;
    }
    if (n == cap) {
      ent *p = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof *v);
      if (!p) {
        free(v);
        closedir(d);
        return -1;
      }
      v = p;
    }
    v[n] = (ent){.used = st.st_mtim, .size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0};
    memcpy(v[n].name, e->d_name, len + 1);
    *total += v[n].size;
    n++;
  }
  closedir(d);
  *out = v;
  *count = n;
  return 0;
}

/* Opens (creating it if missing) and locks the folder's lock file. O_NOFOLLOW: a link planted
 * in its place must not make us create or open a file wherever it points (ELOOP instead); a
 * FIFO or other non-regular file is refused too (EINVAL). Return: the descriptor, or -1 with
 * errno set. */
static int lock_folder(int dfd) {
  int lk = openat(dfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (lk < 0)
    return -1;
  struct stat st;
  int ok = fstat(lk, &st) == 0;
  if (ok && !S_ISREG(st.st_mode)) {
    errno = EINVAL;
    ok = 0;
  }
  if (ok && flock(lk, LOCK_EX) == 0)
    return lk;
  int e = errno;
  close(lk);
  errno = e;
  return -1;
}

/* Scans the folder under its lock; removes the least recently used entries until it is
 * under @target bytes (UINT64_MAX: none). @flags: TRIM_*. Return: 0 or BG_ESYS. */
static int trim(bg_cache_t *c, uint64_t target, unsigned flags) {
  int lk = lock_folder(c->dfd);
  if (lk < 0)
    return BG_ESYS;
  ent *v = NULL;
  size_t n = 0;
  uint64_t total = 0;
  int rc = list_entries(c, flags, &v, &n, &total) == 0 ? BG_OK : BG_ESYS;
  if (rc == 0 && total > target) {
    qsort(v, n, sizeof *v, older);
    for (size_t i = 0; i < n && total > target; i++) {
      if (unlinkat(c->dfd, v[i].name, 0) == 0 && (flags & TRIM_EVICTING))
        atomic_fetch_add(&c->n->evictions, 1);
      total -= v[i].size;
    }
  }
  if (rc == 0) {
    atomic_store(&c->n->bytes, total);
    atomic_store(&c->n->since_scan, 0);
  }
  free(v);
  close(lk);
  return rc;
}

/* Trims to seven eighths of the cap, so that a full folder is not scanned at every store. */
static void trim_if_due(bg_cache_t *c, uint64_t added) {
  uint64_t max = c->max_bytes;
  uint64_t bytes = atomic_fetch_add(&c->n->bytes, added) + added;
  uint64_t since = atomic_fetch_add(&c->n->since_scan, added) + added;
  if (max && (bytes > max || since > max / 8))
    trim(c, bytes > max ? max - max / 8 : max, TRIM_EVICTING);
}

int bg_cache_put(bg_cache_t *c, const char *task, const void *in, size_t in_size, const void *out,
                 size_t out_size) {
  if (!c || !task || (!in && in_size) || (!out && out_size))
    return BG_EINVAL;
  size_t tl = strlen(task);
  if (in_size > SIZE_MAX / 4 || out_size > SIZE_MAX / 4 || tl > SIZE_MAX / 4)
    return BG_ERANGE;
  size_t body = tl + in_size + out_size, total = sizeof(entry_hdr) + body;
  if (c->max_bytes && total > c->max_bytes)
    return BG_ERANGE;
  char *buf = malloc(total);
  if (!buf)
    return BG_ENOMEM;
  entry_hdr *h = (entry_hdr *)buf;
  char *p = buf + sizeof *h;
  memcpy(p, task, tl);
  if (in_size)
    memcpy(p + tl, in, in_size);
  if (out_size)
    memcpy(p + tl + in_size, out, out_size);
  *h = (entry_hdr){.task_len = tl, .in_size = in_size, .out_size = out_size};
  memcpy(h->magic, MAGIC, sizeof h->magic);
  h->sum = XXH3_64bits(p, body);
  char name[40], tmp[64];
  entry_name(task, in, in_size, name);
  snprintf(tmp, sizeof tmp, TMP_PREFIX "%ld-%llu", (long)getpid(),
           (unsigned long long)atomic_fetch_add(&c->n->seq, 1));
  int fd = openat(c->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int rc = BG_ESYS;
  if (fd >= 0) {
    int ok = full_io(fd, buf, total, 0, 1) == 0;
    ok = close(fd) == 0 && ok;
    if (ok && renameat(c->dfd, tmp, c->dfd, name) == 0)
      rc = BG_OK;
    else
      unlinkat(c->dfd, tmp, 0);
  }
  free(buf);
  if (rc == 0) {
    atomic_fetch_add(&c->n->stores, 1);
    trim_if_due(c, total);
  }
  return rc;
}

int bg_cache_open(const char *dir, uint64_t max_bytes, bg_cache_t **out) {
  if (out)
    *out = NULL;
  if (!dir || !*dir || !out)
    return BG_EINVAL;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return errno == ENOENT ? BG_ENOENT : BG_ESYS;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return BG_ESYS;
  if (faccessat(dfd, ".", W_OK, AT_EACCESS) != 0) {
    close(dfd);
    return BG_ESYS;
  }
  bg_cache_t *c = calloc(1, sizeof *c);
  counters *n = mmap(NULL, sizeof *n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (!c || n == MAP_FAILED) {
    free(c);
    if (n != MAP_FAILED)
      munmap(n, sizeof *n);
    close(dfd);
    return BG_ENOMEM;
  }
  memset(n, 0, sizeof *n);
  *c = (bg_cache_t){.dfd = dfd, .max_bytes = max_bytes, .n = n};
  int rc = trim(c, max_bytes ? max_bytes : UINT64_MAX, TRIM_EVICTING);
  if (rc != 0) {
    /* errno says why trim failed (ELOOP: a planted lock link); the clean-up keeps it. */
    int e = errno;
    bg_cache_close(c);
    errno = e;
    return rc;
  }
  *out = c;
  return BG_OK;
}

void bg_cache_close(bg_cache_t *c) {
  if (!c)
    return;
  close(c->dfd);
  munmap(c->n, sizeof *c->n);
  free(c);
}

int bg_cache_stats(const bg_cache_t *c, bg_cache_stats_t *out) {
  if (!c || !out)
    return BG_EINVAL;
  *out = (bg_cache_stats_t){atomic_load(&c->n->hits),      atomic_load(&c->n->misses),
                            atomic_load(&c->n->corrupt),   atomic_load(&c->n->stores),
                            atomic_load(&c->n->evictions), atomic_load(&c->n->bytes)};
  return BG_OK;
}

int bg_cache_clear(bg_cache_t *c) {
  if (!c)
    return BG_EINVAL;
  return trim(c, 0, 0);
}

int bg_cache_remove(const char *dir) {
  if (!dir || !*dir)
    return BG_EINVAL;
  /* Not through a link: what is removed is the folder named, never one a link points to. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return errno == ENOENT ? BG_ENOENT : BG_ESYS;
  counters n;
  memset(&n, 0, sizeof n);
  bg_cache_t c = {.dfd = dfd, .n = &n};
  /* The lock file goes last, once the entries are gone: it is what other processes would
   * lock, and a lock file removed under a holder no longer excludes anyone. */
  int rc = trim(&c, 0, TRIM_ALL_TMP);
  if (rc == 0 && unlinkat(dfd, LOCK_NAME, 0) != 0 && errno != ENOENT)
    rc = BG_ESYS;
  int e = errno;
  close(dfd);
  errno = e;
  /* rmdir fails (ENOTEMPTY) when files the cache did not write are there: they are kept. */
  if (rc == 0 && rmdir(dir) != 0)
    rc = BG_ESYS;
  return rc;
}
