/* SPDX-License-Identifier: MIT */
/* The memo cache's public calls. Results are records packed into append-only segment files
 * (segment.c), found through an in-memory index of the folder (index.c) and kept under the
 * cap by evicting whole segments, oldest first (evict.c). A record holds the task's name, the
 * key and the result with checksums, so a read returns a result only for exactly that name
 * and key, and only when no byte of it was damaged. A handle's calls are serialised by its
 * mutex; processes coordinate through flocks on the folder's files. */
#define _GNU_SOURCE
#include "brigade/cache.h"
#include "brigade/error.h"
#include "internal/cache_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Records up to this size are built and read on the stack. */
#define SMALL_REC 512
/* Bounds on a segment's size: a small cap is still a block, and a folder of many gigabytes
 * is still a few dozen open files. */
#define SEG_MIN 4096u
#define SEG_MAX (64u << 20)

/* Trims to seven eighths of the cap, so that a full folder is not scanned at every store. */
static void trim_if_due(bg_cache_t *c, uint64_t added) {
  uint64_t max = c->max_bytes;
  uint64_t bytes = atomic_fetch_add(&c->n->bytes, added) + added;
  uint64_t since = atomic_fetch_add(&c->n->since_scan, added) + added;
  if (max && (bytes > max || since > max / 8))
    bg__trim(c, bytes > max ? max - max / 8 : max, 1);
}

/* Whether a record found in segment @num should be copied forward: it is in the older half of
 * the folder, which eviction reaches first. This makes eviction least-recently-used by
 * segment: what is read again survives, what is not goes with its segment. */
static int is_cold(const bg_cache_t *c, uint64_t num) {
  if (!c->max_bytes || c->nsegs < 2)
    return 0;
  uint64_t oldest = c->segs[0].num, newest = c->segs[c->nsegs - 1].num;
  return num < oldest + (newest - oldest + 1) / 2;
}

/* What reading a record of the index found. */
enum { FOUND = 1, NOT_THIS = 0, DAMAGED = -1 };

/* Reads the record the index gives for @h into @buf (@len bytes: header, task, key, result)
 * and checks it against the task and key. Return: FOUND, NOT_THIS (none indexed, or another
 * key or result size) or DAMAGED. @num: its segment. */
static int read_rec(bg_cache_t *c, uint64_t h, char *buf, size_t len, const char *task, size_t tl,
                    const void *in, size_t in_size, size_t out_size, uint64_t *num) {
  const bg__slot *slot = bg__index_find(&c->idx, h);
  const bg__seg *s = slot ? bg__seg_find(c, slot->seg) : NULL;
  if (!s)
    return NOT_THIS;
  *num = s->num;
  ssize_t got = pread(s->fd, buf, len, (off_t)slot->off);
  bg__rec_hdr hd;
  uint64_t whole;
  if (got < (ssize_t)sizeof hd)
    return DAMAGED;
  memcpy(&hd, buf, sizeof hd);
  if (!bg__rec_hdr_ok(&hd, &whole))
    return DAMAGED;
  if (hd.task_len != tl || hd.key_len != in_size || hd.out_len != out_size)
    return NOT_THIS;
  const char *body = buf + sizeof hd;
  if ((size_t)got != len || XXH3_64bits(body, len - sizeof hd) != hd.sum)
    return DAMAGED;
  if (memcmp(body, task, tl) != 0 || (in_size && memcmp(body + tl, in, in_size) != 0))
    return NOT_THIS;
  return FOUND;
}

int bg_cache_get(bg_cache_t *c, const char *task, const void *in, size_t in_size, void *out,
                 size_t out_size) {
  if (!c || !task || (!in && in_size) || (!out && out_size))
    return BG_EINVAL;
  size_t tl = strlen(task);
  int rc = NOT_THIS;
  char small[SMALL_REC], *buf = small;
  size_t len = sizeof(bg__rec_hdr) + tl + in_size + out_size;
  if (in_size > SIZE_MAX / 4 || out_size > SIZE_MAX / 4 || tl > UINT32_MAX ||
      (len > sizeof small && !(buf = malloc(len)))) {
    atomic_fetch_add(&c->n->misses, 1);
    return BG_ENOENT;
  }
  uint64_t h = bg__rec_khash(task, tl, in, in_size), num = 0, grown = 0;
  pthread_mutex_lock(&c->lock);
  bg__folder_sync(c);
  rc = read_rec(c, h, buf, len, task, tl, in, in_size, out_size, &num);
  if (rc == NOT_THIS) {
    /* Perhaps another process stored it since this handle last looked. */
    bg__folder_catch_up(c);
    rc = read_rec(c, h, buf, len, task, tl, in, in_size, out_size, &num);
  }
  if (rc == DAMAGED) {
    atomic_fetch_add(&c->n->corrupt, 1);
    bg__index_forget(&c->idx, h);
  }
  if (rc == FOUND && is_cold(c, num) && bg__folder_append(c, buf, len, h, &grown) == 0)
    trim_if_due(c, grown);
  pthread_mutex_unlock(&c->lock);
  if (rc == FOUND && out_size)
    memcpy(out, buf + len - out_size, out_size);
  atomic_fetch_add(rc == FOUND ? &c->n->hits : &c->n->misses, 1);
  if (buf != small)
    free(buf);
  return rc == FOUND ? BG_OK : BG_ENOENT;
}

int bg_cache_put(bg_cache_t *c, const char *task, const void *in, size_t in_size, const void *out,
                 size_t out_size) {
  if (!c || !task || (!in && in_size) || (!out && out_size))
    return BG_EINVAL;
  size_t tl = strlen(task);
  if (in_size > SIZE_MAX / 4 || out_size > SIZE_MAX / 4 || tl > UINT32_MAX)
    return BG_ERANGE;
  size_t len = sizeof(bg__rec_hdr) + tl + in_size + out_size;
  if (c->max_bytes && len > c->max_bytes)
    return BG_ERANGE;
  char small[SMALL_REC], *buf = len <= sizeof small ? small : malloc(len);
  if (!buf)
    return BG_ENOMEM;
  bg__rec_hdr h = {.task_len = (uint32_t)tl, .key_len = in_size, .out_len = out_size};
  char *body = buf + sizeof h;
  memcpy(body, task, tl);
  if (in_size)
    memcpy(body + tl, in, in_size);
  if (out_size)
    memcpy(body + tl + in_size, out, out_size);
  h.khash = bg__rec_khash(task, tl, in, in_size);
  bg__rec_seal(&h, body);
  memcpy(buf, &h, sizeof h);
  uint64_t grown = 0;
  pthread_mutex_lock(&c->lock);
  bg__folder_sync(c);
  int rc = bg__folder_append(c, buf, len, h.khash, &grown);
  if (rc == 0) {
    atomic_fetch_add(&c->n->stores, 1);
    trim_if_due(c, grown);
  }
  pthread_mutex_unlock(&c->lock);
  if (buf != small)
    free(buf);
  return rc;
}

/* The segment size for a cap: a sixteenth of it, so that evicting a segment frees little more
 * than the slack trimming keeps, in whole blocks. */
static uint64_t seg_size(uint64_t max_bytes) {
  uint64_t s = max_bytes ? max_bytes / 16 / SEG_MIN * SEG_MIN : SEG_MAX;
  return s < SEG_MIN ? SEG_MIN : s > SEG_MAX ? SEG_MAX : s;
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
  int lockfd = faccessat(dfd, ".", W_OK, AT_EACCESS) == 0 ? bg__open_lockfile(dfd) : -1;
  if (lockfd < 0) {
    /* errno says why (ELOOP: a planted lock link); the clean-up keeps it. */
    int e = errno;
    close(dfd);
    errno = e;
    return BG_ESYS;
  }
  bg_cache_t *c = calloc(1, sizeof *c);
  bg__cache_counters *n =
      mmap(NULL, sizeof *n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (!c || n == MAP_FAILED || pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    if (n != MAP_FAILED)
      munmap(n, sizeof *n);
    close(lockfd);
    close(dfd);
    return BG_ENOMEM;
  }
  memset(n, 0, sizeof *n);
  c->dfd = dfd;
  c->lockfd = lockfd;
  c->max_bytes = max_bytes;
  c->seg_max = seg_size(max_bytes);
  c->n = n;
  c->pid = getpid();
  c->wfd = -1;
  int rc = bg__trim(c, max_bytes ? max_bytes : UINT64_MAX, 1);
  if (rc != 0) {
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
  for (size_t i = 0; i < c->nsegs; i++)
    close(c->segs[i].fd);
  if (c->wfd >= 0)
    close(c->wfd);
  free(c->segs);
  bg__index_free(&c->idx);
  pthread_mutex_destroy(&c->lock);
  close(c->lockfd);
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
  pthread_mutex_lock(&c->lock);
  int rc = bg__trim(c, 0, 0);
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int bg_cache_remove(const char *dir) {
  if (!dir || !*dir)
    return BG_EINVAL;
  /* Not through a link: what is removed is the folder named, never one a link points to. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return errno == ENOENT ? BG_ENOENT : BG_ESYS;
  bg__cache_counters n;
  memset(&n, 0, sizeof n);
  bg_cache_t c = {.dfd = dfd, .n = &n, .wfd = -1};
  /* The lock file goes last, once the segments are gone: it is what other processes would
   * lock, and a lock file removed under a holder no longer excludes anyone. */
  int rc = bg__trim(&c, 0, 0);
  if (rc == 0 && bg__remove_lockfile(dfd) != 0)
    rc = BG_ESYS;
  int e = errno;
  close(dfd);
  errno = e;
  /* rmdir fails (ENOTEMPTY) when files the cache did not write are there: they are kept. */
  if (rc == 0 && rmdir(dir) != 0)
    rc = BG_ESYS;
  return rc;
}
