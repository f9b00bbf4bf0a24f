/* SPDX-License-Identifier: MIT */
/* Atomic file replacement: temporary + fsync + rename (see internal/afile.h). The temporary has
 * no name until it is whole where the kernel allows (O_TMPFILE), so SIGKILL leaves nothing. */
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
static uint64_t name_seed(const char *tmp) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40 ^
         (uint64_t)(uintptr_t)tmp;
}

/* Writes the next random name into the template's last six characters. */
static void next_name(char *tmp, uint64_t *r) {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  char *x = tmp + strlen(tmp) - 6;
  *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
  uint64_t v = *r;
  for (int i = 0; i < 6; i++, v /= 62)
    x[i] = chars[v % 62];
}

static int create_unique(char *tmp, unsigned mode) {
  uint64_t r = name_seed(tmp);
  for (int attempt = 0; attempt < 100; attempt++) {
    next_name(tmp, &r);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, (mode_t)mode);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1; /* errno is EEXIST */
}

/* A file with no name in the destination's folder (O_TMPFILE): a process killed by SIGKILL,
 * which no handler sees, leaves nothing behind; it gets its name only when it is whole
 * (name_unnamed). -1 where the file system or kernel cannot (the named temporary then). */
static int create_unnamed(const char *tmp, unsigned mode) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", tmp);
  char *slash = strrchr(dir, '/');
  if (!slash)
    return -1;
  slash[slash == dir] = '\0'; /* "/.x.XXXXXX" is in "/" */
  return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, (mode_t)mode);
}

/* Links the unnamed file open on @fd at @to: through /proc/self/fd, or by the descriptor itself
 * where /proc is not mounted (which needs CAP_DAC_READ_SEARCH). 0, or -1 with errno. */
static int link_fd(int fd, const char *to) {
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  int rc = linkat(AT_FDCWD, self, AT_FDCWD, to, AT_SYMLINK_FOLLOW);
  if (rc != 0 && errno == ENOENT)
    rc = linkat(fd, "", AT_FDCWD, to, AT_EMPTY_PATH);
  return rc;
}

/* Links the unnamed file at a fresh name from the template (each name written into tmp before
 * it is tried, as create_unique does). 0, or -1 with errno. */
static int name_unnamed(int fd, char *tmp) {
  uint64_t r = name_seed(tmp);
  for (int attempt = 0; attempt < 100; attempt++) {
    next_name(tmp, &r);
    int rc = link_fd(fd, tmp);
    if (rc == 0 || errno != EEXIST)
      return rc;
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
  unsigned mode = f->replaces ? f->mode : 0666;
  f->fd = f->named ? -1 : create_unnamed(f->tmp, mode);
  f->unnamed = f->fd >= 0;
  if (f->fd < 0)
    f->fd = create_unique(f->tmp, mode);
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

int bg__afile_link(bg__afile_t *f, const char *to) {
  return f->unnamed ? link_fd(f->fd, to) : link(f->tmp, to);
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
  /* Still unnamed after a failure: discard must not unlink the template's last name tried. */
  if (!saved && f->unnamed) {
    if (name_unnamed(f->fd, f->tmp) != 0)
      saved = errno;
    else
      f->unnamed = 0;
  }
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
    close(f->fd); /* an unnamed file goes with its last descriptor */
  f->fd = -1;
  if (f->tmp[0] && !f->direct && !f->unnamed)
    unlink(f->tmp);
  f->unnamed = 0;
  f->tmp[0] = '\0';
}
