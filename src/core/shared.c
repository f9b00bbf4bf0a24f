/* SPDX-License-Identifier: MIT */
/* Shared arrays. Every live one is in a list so that the procs backend can tell whether a
 * map's results already lie in memory its workers share (bg__shared_contains), and whether
 * the file behind one shrank under a map (bg__shared_shrunk). */
#define _GNU_SOURCE
#include "brigade/shared.h"
#include "brigade/error.h"
#include "brigade/topo.h"
#include "internal/shared.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct bg_shared {
  void *data;
  size_t size;
  int fd;                 /* the file, kept open to see its size later; -1: anonymous */
  struct bg_shared *next; /* under lock */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct bg_shared *live; /* under lock */

/* Opens or creates the file and gives it the size asked for, checking the disk first. */
static int open_file(const char *path, size_t *bytes, int *fd_out) {
  /* Size 0 means "the file as it is": never create an empty one. */
  int fd = open(path, O_RDWR | O_CLOEXEC | (*bytes ? O_CREAT : 0), 0644);
  if (fd < 0)
    return errno == ENOENT ? BG_ENOENT : BG_ESYS;
  struct stat st;
  if (fstat(fd, &st) != 0)
    goto sys;
  if (*bytes == 0) {
    if (st.st_size == 0) {
      close(fd);
      return BG_EINVAL;
    }
    *bytes = (size_t)st.st_size;
  } else if ((size_t)st.st_size != *bytes) {
    struct statvfs vfs;
    uint64_t grow = *bytes > (size_t)st.st_size ? *bytes - (size_t)st.st_size : 0;
    if (fstatvfs(fd, &vfs) == 0 && grow > (uint64_t)vfs.f_bavail * vfs.f_frsize) {
      close(fd);
      return BG_ERANGE;
    }
    /* posix_fallocate reserves the blocks, so a full disk fails here, not as a SIGBUS when a
     * worker first writes a page. */
    if (ftruncate(fd, (off_t)*bytes) != 0 || (grow && posix_fallocate(fd, 0, (off_t)*bytes) != 0))
      goto sys;
  }
  *fd_out = fd;
  return BG_OK;
sys:
  close(fd);
  return BG_ESYS;
}

int bg_shared_create(size_t bytes, const char *path, bg_shared_t **out) {
  if (!out || (!path && bytes == 0))
    return BG_EINVAL;
  int fd = -1, rc;
  if (path) {
    rc = open_file(path, &bytes, &fd);
    if (rc != 0)
      return rc;
  } else {
    uint64_t avail;
    if (bg_mem_available(&avail) == 0 && bytes > avail)
      return BG_ENOMEM;
  }
  bg_shared_t *s = calloc(1, sizeof *s);
  if (!s) {
    if (fd >= 0)
      close(fd);
    return BG_ENOMEM;
  }
  int flags = MAP_SHARED | (path ? 0 : MAP_ANONYMOUS);
  s->data = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (s->data == MAP_FAILED) {
    if (fd >= 0)
      close(fd);
    free(s);
    return path ? BG_ESYS : BG_ENOMEM;
  }
  /* The mapping alone would keep the file, but the descriptor lets a map ask the file's size:
   * another process that shrinks it makes every access past the new end a SIGBUS. */
  s->fd = fd;
  s->size = bytes;
  pthread_mutex_lock(&lock);
  s->next = live;
  live = s;
  pthread_mutex_unlock(&lock);
  *out = s;
  return BG_OK;
}

void *bg_shared_data(const bg_shared_t *s) {
  return s ? s->data : NULL;
}

size_t bg_shared_size(const bg_shared_t *s) {
  return s ? s->size : 0;
}

int bg_shared_sync(bg_shared_t *s) {
  if (!s)
    return BG_EINVAL;
  if (s->fd < 0)
    return BG_OK;
  return msync(s->data, s->size, MS_SYNC) == 0 ? BG_OK : BG_ESYS;
}

void bg_shared_destroy(bg_shared_t *s) {
  if (!s)
    return;
  pthread_mutex_lock(&lock);
  for (bg_shared_t **p = &live; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
  munmap(s->data, s->size);
  if (s->fd >= 0)
    close(s->fd);
  free(s);
}

int bg__shared_contains(const void *ptr, size_t len) {
  const char *p = ptr;
  int found = 0;
  pthread_mutex_lock(&lock);
  for (const bg_shared_t *s = live; s && !found; s = s->next) {
    const char *b = s->data;
    found = p >= b && len <= s->size && (size_t)(p - b) <= s->size - len;
  }
  pthread_mutex_unlock(&lock);
  return found;
}

int bg__shared_shrunk(const void *ptr, size_t len) {
  const char *p = ptr;
  int shrunk = 0;
  pthread_mutex_lock(&lock);
  for (const bg_shared_t *s = live; s; s = s->next) {
    const char *b = s->data;
    if (s->fd < 0 || p < b || len > s->size || (size_t)(p - b) > s->size - len)
      continue;
    /* The array maps the file from offset 0, so the range needs the file to reach its end. A
     * failed fstat says nothing: the map goes on as if the file were whole. */
    struct stat st;
    shrunk = fstat(s->fd, &st) == 0 && (uint64_t)st.st_size < (uint64_t)(p - b) + len;
    break;
  }
  pthread_mutex_unlock(&lock);
  return shrunk;
}
