/* SPDX-License-Identifier: MIT */
/* Atomic file replacement: temporary + fsync + rename (see internal/afile.h). */
#define _GNU_SOURCE
#include "internal/afile.h"

#include "brigade/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int bg__afile_prepare(bg__afile_t *f, const char *path, char *err, size_t cap) {
  char dir[4096], base[4096];
  memset(f, 0, sizeof *f);
  f->path = path;
  f->fd = -1;
  struct stat st;
  int exists = stat(path, &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) {
    /* A device, a FIFO or a socket: a rename would replace /dev/null itself. */
    f->direct = 1;
    snprintf(f->tmp, sizeof f->tmp, "%s", path);
    return 0;
  }
  f->replaces = exists;
  f->mode = exists ? st.st_mode & 07777 : 0666;
  /* A link's target is what the user means: it is replaced, and the link stays a link. */
  if (!exists || !realpath(path, f->dest))
    snprintf(f->dest, sizeof f->dest, "%s", path);
  snprintf(dir, sizeof dir, "%s", f->dest);
  snprintf(base, sizeof base, "%s", f->dest);
  int len = snprintf(f->tmp, sizeof f->tmp, "%s/.%s.XXXXXX", dirname(dir), basename(base));
  if (len < 0 || (size_t)len >= sizeof f->tmp) {
    snprintf(err, cap, "'%s': the name is too long", path);
    f->tmp[0] = '\0';
    return BG_ERANGE;
  }
  return 0;
}

/* mkstemp is not used: its 0600 would have to be widened with the umask, and reading the umask
 * means setting it, which races with every other thread of the caller that creates a file. An
 * open with O_EXCL and mode 0666 lets the kernel apply the umask. */
static int create_unique(char *tmp, unsigned mode) {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  char *x = tmp + strlen(tmp) - 6;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t r = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40 ^
               (uint64_t)(uintptr_t)tmp;
  for (int attempt = 0; attempt < 100; attempt++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    uint64_t v = r;
    for (int i = 0; i < 6; i++, v /= 62)
      x[i] = chars[v % 62];
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, (mode_t)mode);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1; /* errno is EEXIST */
}

int bg__afile_create(bg__afile_t *f, char *err, size_t cap) {
  if (f->direct) {
    f->fd = open(f->tmp, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (f->fd < 0) {
      snprintf(err, cap, "'%s': %s", f->path, strerror(errno));
      f->tmp[0] = '\0';
      return BG_ESYS;
    }
    return 0;
  }
  f->fd = create_unique(f->tmp, f->replaces ? f->mode : 0666);
  if (f->fd < 0) {
    snprintf(err, cap, "'%s': cannot create a file beside it: %s", f->path, strerror(errno));
    f->tmp[0] = '\0';
    return BG_ESYS;
  }
  /* The umask narrowed the mode given to open; a replaced file keeps its bits exactly. */
  if (f->replaces && fchmod(f->fd, (mode_t)f->mode) != 0) {
    snprintf(err, cap, "'%s': %s", f->tmp, strerror(errno));
    bg__afile_discard(f);
    return BG_ESYS;
  }
  return 0;
}

int bg__afile_abandon(bg__afile_t *f, const char *why, char *err, size_t cap) {
  snprintf(err, cap, "'%s': %s; the previous file, if any, is unchanged", f->path, why);
  bg__afile_discard(f);
  return BG_ESYS;
}

int bg__afile_commit(bg__afile_t *f, char *err, size_t cap) {
  /* A device or a FIFO has nothing to sync: only its write errors count (/dev/full). */
  int saved = 0;
  if (!f->direct && fsync(f->fd) != 0)
    saved = errno;
  if (close(f->fd) != 0 && !saved)
    saved = errno;
  f->fd = -1;
  if (!saved && !f->direct && rename(f->tmp, f->dest) != 0)
    saved = errno;
  if (saved) {
    char why[160];
    snprintf(why, sizeof why, "write failed: %s", strerror(saved));
    return bg__afile_abandon(f, why, err, cap);
  }
  f->tmp[0] = '\0';
  return 0;
}

void bg__afile_discard(bg__afile_t *f) {
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
  if (f->tmp[0] && !f->direct)
    unlink(f->tmp);
  f->tmp[0] = '\0';
}
