/* SPDX-License-Identifier: MIT */
/* The cache folder's segment files. Records are appended to the newest segment, named by its
 * number ("%016llx.bgs"), until it would pass the handle's segment size; then the next number
 * is started. Appends happen under the segment's flock, taken on a descriptor this process
 * opened itself (a descriptor inherited over fork shares its lock with the parent), so that
 * whatever lies past the last whole record is the torn tail of a writer that died, and is cut
 * off before the next record. Readers take no lock: they index whole records only, and check
 * every record they return. Nothing in the folder is trusted to be what its name says: no
 * open follows a link or waits on a FIFO, and a segment name that is not a regular file is
 * removed as damaged. */
#define _GNU_SOURCE
#include "brigade/error.h"
#include "internal/cache_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUFFIX ".bgs"
/* A store tries again after its segment filled up or was evicted by another process. Only a
 * cap of a segment or two shared by busy writers makes that common: four processes on a
 * 7 KB cap retried 15% of their stores, each retry failing again about a third as often;
 * nine retries was the most in 90,000 stores, but a process starved of CPU on a loaded
 * machine can lose every race. So after FULL_TRIES a full segment takes the record anyway
 * (a segment a little past its size costs nothing), and only evictions make it try again. */
#define APPEND_TRIES 32
#define FULL_TRIES 8
/* More new segments than this since the handle last looked: list the folder instead. */
#define PROBE_MAX 64

enum { AGAIN = 1 };

void bg__seg_name(uint64_t num, char name[24]) {
  snprintf(name, 24, "%016llx" SUFFIX, (unsigned long long)num);
}

int bg__seg_parse(const char *name, uint64_t *num) {
  if (strlen(name) != 16 + strlen(SUFFIX) || strcmp(name + 16, SUFFIX) != 0)
    return 0;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char ch = name[i];
    int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (d < 0)
      return 0;
    v = v << 4 | (uint64_t)d;
  }
  *num = v;
  return v != 0;
}

bg__seg *bg__seg_find(const bg_cache_t *c, uint64_t num) {
  size_t lo = 0, hi = c->nsegs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->segs[mid].num < num)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < c->nsegs && c->segs[lo].num == num ? &c->segs[lo] : NULL;
}

/* Adds segment @num, open on @fd, in order. Return: it, or NULL (no memory; @fd is closed). */
static bg__seg *seg_add(bg_cache_t *c, uint64_t num, int fd) {
  if (c->nsegs == c->segcap) {
    size_t cap = c->segcap ? 2 * c->segcap : 16;
    bg__seg *p = realloc(c->segs, cap * sizeof *p);
    if (!p) {
      close(fd);
      return NULL;
    }
    c->segs = p;
    c->segcap = cap;
  }
  size_t i = c->nsegs;
  while (i > 0 && c->segs[i - 1].num > num)
    i--;
  memmove(&c->segs[i + 1], &c->segs[i], (c->nsegs - i) * sizeof *c->segs);
  c->segs[i] = (bg__seg){num, fd, 0};
  c->nsegs++;
  if (num > c->top)
    c->top = num;
  return &c->segs[i];
}

void bg__folder_drop(bg_cache_t *c, uint64_t num) {
  bg__seg *s = bg__seg_find(c, num);
  if (!s)
    return;
  if (c->wfd >= 0 && c->wnum == num) {
    close(c->wfd);
    c->wfd = -1;
  }
  close(s->fd);
  memmove(s, s + 1, (size_t)(c->segs + c->nsegs - (s + 1)) * sizeof *s);
  c->nsegs--;
}

/* Indexes what was appended to @s (@size bytes long now) since it was last looked at. A
 * segment shorter than what was indexed was cut from outside: it is indexed again whole. */
static void seg_tail(bg_cache_t *c, bg__seg *s, int fd, uint64_t size) {
  if (size < s->end)
    s->end = 0;
  if (size > s->end)
    s->end = bg__rec_scan(c, s->num, fd, s->end, size);
}

static void remove_if_same(int dfd, const char *name, int fd) {
  struct stat a, b;
  /* Only the file checked: another may have taken its name meanwhile. The name is not
   * followed: a link is compared (and removed) as itself. */
  if (fstat(fd, &a) == 0 && fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
      a.st_ino == b.st_ino && a.st_dev == b.st_dev)
    unlinkat(dfd, name, 0);
}

/* Opens segment @num for reading, adds and indexes it. A name that is not a regular file is
 * removed and counted as damaged. Return: 1 added, 0 absent or refused. */
static int seg_open(bg_cache_t *c, uint64_t num) {
  char name[24];
  bg__seg_name(num, name);
  /* O_NONBLOCK: a FIFO opens at once (and then fails the regular-file check) instead of
   * waiting for a writer forever. A link or a socket is opened as itself, only to be removed. */
  int fd = openat(c->dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && (errno == ELOOP || errno == ENXIO))
    fd = openat(c->dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    atomic_fetch_add(&c->n->corrupt, 1);
    remove_if_same(c->dfd, name, fd);
    close(fd);
    return 0;
  }
  bg__seg *s = seg_add(c, num, fd);
  if (s)
    seg_tail(c, s, fd, (uint64_t)st.st_size);
  return s != NULL;
}

static int by_number(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Lists the folder and opens the segments this handle does not know yet, oldest first, so
 * that a key's newer record is indexed after its older ones. */
static void list_new(bg_cache_t *c) {
  int fd = openat(c->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    if (fd >= 0)
      close(fd);
    return;
  }
  uint64_t *nums = NULL, num;
  size_t n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!bg__seg_parse(e->d_name, &num) || bg__seg_find(c, num))
      continue;
    if (n == cap) {
      uint64_t *p = realloc(nums, (cap = cap ? 2 * cap : 64) * sizeof *p);
      if (!p)
        break; /* the segments listed so far are still worth indexing */
      nums = p;
    }
    nums[n++] = num;
  }
  closedir(d);
  if (n)
    qsort(nums, n, sizeof *nums, by_number);
  for (size_t i = 0; i < n; i++)
    seg_open(c, nums[i]);
  free(nums);
}

void bg__folder_sync(bg_cache_t *c) {
  pid_t pid = getpid();
  if (pid != c->pid) {
    /* A forked child: the write descriptor's flock is the parent's, so it opens its own. */
    if (c->wfd >= 0)
      close(c->wfd);
    c->wfd = -1;
    c->pid = pid;
  }
  uint64_t st[2];
  bg__lock_state(c->lockfd, st);
  if (c->listed && st[0] == c->epoch)
    return;
  /* Segments were evicted or cleared since: stop reading (and holding on disk) the ones that
   * are gone, then find the new ones. */
  size_t gone = 0;
  for (size_t i = 0; i < c->nsegs;) {
    struct stat s;
    if (fstat(c->segs[i].fd, &s) == 0 && s.st_nlink == 0) {
      bg__folder_drop(c, c->segs[i].num);
      gone++;
    } else {
      i++;
    }
  }
  if (gone)
    bg__index_drop_dead(&c->idx, c);
  list_new(c);
  c->epoch = st[0];
  c->listed = 1;
}

void bg__folder_catch_up(bg_cache_t *c) {
  uint64_t st[2];
  bg__lock_state(c->lockfd, st);
  if (st[1] > c->top) {
    if (st[1] - c->top > PROBE_MAX)
      list_new(c);
    else
      for (uint64_t num = c->top + 1; num <= st[1]; num++)
        seg_open(c, num);
    c->top = st[1];
  }
  /* Writers append to the newest segment they know, and move on only once it is full, so
   * records appear in the newest two; one in an older segment (a writer with a larger segment
   * size) is found when the folder is next listed, and costs a recomputation until then. */
  for (size_t i = c->nsegs > 2 ? c->nsegs - 2 : 0; i < c->nsegs; i++) {
    struct stat s;
    if (fstat(c->segs[i].fd, &s) == 0)
      seg_tail(c, &c->segs[i], c->segs[i].fd, (uint64_t)s.st_size);
  }
}

/* Starts segment number top + 1, under the folder's lock so that numbers only grow. Return:
 * 0 (c->wfd is it), AGAIN (another process started one first: append there) or BG_E*. */
static int start_segment(bg_cache_t *c) {
  int lk = bg__lock_folder(c->dfd);
  if (lk < 0)
    return BG_ESYS;
  uint64_t st[2];
  bg__lock_state(lk, st);
  if (st[1] > c->top) {
    close(lk);
    bg__folder_catch_up(c);
    return AGAIN;
  }
  uint64_t num = c->top + 1;
  char name[24];
  bg__seg_name(num, name);
  int fd = openat(c->dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  int rfd = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int rc = BG_ESYS;
  if (rfd >= 0) {
    st[1] = num;
    bg__lock_state_write(lk, st);
    rc = seg_add(c, num, rfd) ? BG_OK : BG_ENOMEM;
  } else if (fd < 0 && errno == EEXIST) {
    c->top = num; /* a lock file that lost count: try the next number */
    rc = AGAIN;
  }
  close(lk);
  if (rc == 0) {
    c->wfd = fd;
    c->wnum = num;
    return 0;
  }
  if (fd >= 0) {
    unlinkat(c->dfd, name, 0);
    close(fd);
  }
  return rc;
}

/* Opens the segment to append @len bytes to: the newest, when they still fit, else a new one.
 * Return: 0 (c->wfd is it; *started when it is new), AGAIN or BG_E*. */
static int open_writer(bg_cache_t *c, size_t len, int *started) {
  bg__seg *s = c->nsegs ? &c->segs[c->nsegs - 1] : NULL;
  *started = 0;
  if (s && (s->end == 0 || s->end + len <= c->seg_max)) {
    char name[24];
    struct stat st;
    bg__seg_name(s->num, name);
    int fd = openat(c->dfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      c->wfd = fd;
      c->wnum = s->num;
      return 0;
    }
    if (fd >= 0)
      close(fd);
    /* Evicted or replaced meanwhile: a new segment instead. */
  }
  *started = 1;
  return start_segment(c);
}

static int pwrite_full(int fd, const char *p, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t k = pwrite(fd, p, len, (off_t)off);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    off += (uint64_t)k;
    len -= (size_t)k;
  }
  return 0;
}

static uint64_t blocks_to(uint64_t end, uint64_t block) {
  return (end + block - 1) / block * block;
}

/* Appends the record under the segment's flock; past the segment's size only if @overfill.
 * Return: 0, AGAIN (the segment is full or was evicted: c->wfd is closed) or BG_ESYS
 * (nothing is left of the record). */
static int append_locked(bg_cache_t *c, const void *rec, size_t len, uint64_t khash, int started,
                         int overfill, uint64_t *grown) {
  bg__seg *s = bg__seg_find(c, c->wnum);
  struct stat st;
  int rc = BG_ESYS;
  while (flock(c->wfd, LOCK_EX) != 0)
    if (errno != EINTR)
      return BG_ESYS;
  if (!s || fstat(c->wfd, &st) != 0)
    goto out;
  if (st.st_nlink == 0) {
    rc = AGAIN;
    goto out;
  }
  seg_tail(c, s, c->wfd, (uint64_t)st.st_size);
  /* Writers append only under this lock, so bytes past the last whole record are the torn
   * tail of one that died: they go before the next record is written. */
  if ((uint64_t)st.st_size > s->end && ftruncate(c->wfd, (off_t)s->end) != 0)
    goto out;
  if (s->end > 0 && s->end + len > c->seg_max && !overfill) {
    rc = AGAIN;
    goto out;
  }
  if (pwrite_full(c->wfd, rec, len, s->end) == 0) {
    uint64_t block = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
    *grown = blocks_to(s->end + len, block) - blocks_to(s->end, block);
    bg__index_set(&c->idx, khash, s->num, s->end);
    s->end += len;
    rc = BG_OK;
  } else if (ftruncate(c->wfd, (off_t)s->end) == 0 && started && s->end == 0) {
    /* A segment this store started holds nothing: it goes, under its lock still, so that no
     * other writer has appended to it. */
    char name[24];
    bg__seg_name(s->num, name);
    unlinkat(c->dfd, name, 0);
  }
out:
  flock(c->wfd, LOCK_UN);
  if (rc == AGAIN || (rc != 0 && started && s && s->end == 0)) {
    close(c->wfd);
    c->wfd = -1;
    if (rc != AGAIN)
      bg__folder_drop(c, s->num);
  }
  return rc;
}

int bg__folder_append(bg_cache_t *c, const void *rec, size_t len, uint64_t khash, uint64_t *grown) {
  for (int t = 0; t < APPEND_TRIES; t++) {
    int started = 0, rc = c->wfd >= 0 ? 0 : open_writer(c, len, &started);
    if (rc == 0)
      rc = append_locked(c, rec, len, khash, started, t >= FULL_TRIES, grown);
    if (rc != AGAIN)
      return rc;
    bg__folder_sync(c);
  }
  return BG_ESYS;
}
