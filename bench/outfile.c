/* SPDX-License-Identifier: MIT */
/* Atomic output files: the library's temporary + fsync + rename (src/core/afile.c), plus what a
 * command adds and a library must not: the checks made before long work that a bad path would
 * waste, and a signal guard that removes the temporary. */
#define _GNU_SOURCE
#include "outfile.h"

#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder of path, into buf ("." for a bare name). */
static const char *folder(const char *path, char *buf, size_t cap) {
  snprintf(buf, cap, "%s", path);
  return dirname(buf);
}

/* The canonical name of @path, whose folder must exist: the folder resolved, the base kept. */
static int canonical(const char *path, char *buf, size_t cap) {
  char dir[4096];
  const char *d = folder(path, dir, sizeof dir);
  char real[PATH_MAX];
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (!realpath(d, real))
    return -1;
  int len = snprintf(buf, cap, "%s/%s", real, base);
  return len < 0 || (size_t)len >= cap ? -1 : 0;
}

int bench_same_file(const char *a, const char *b) {
  struct stat x, y;
  if (!strcmp(a, b))
    return 1;
  int ea = stat(a, &x) == 0, eb = stat(b, &y) == 0;
  if (ea && eb)
    return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
  char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
  return canonical(a, ca, sizeof ca) == 0 && canonical(b, cb, sizeof cb) == 0 && !strcmp(ca, cb);
}

int bench_outfile_check(const char *path, const char *const *inputs, char *err, size_t cap) {
  char dir[4096];
  struct stat st, in;
  if (!*path || strlen(path) >= sizeof dir - 32) {
    snprintf(err, cap, "'%s': expected a file name", path);
    return -1;
  }
  const char *d = folder(path, dir, sizeof dir);
  if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, cap, "'%s': cannot write: the folder %s %s", path, d,
             errno == ENOENT || !S_ISDIR(st.st_mode) ? "does not exist; create it first"
                                                     : strerror(errno));
    return -1;
  }
  if (access(d, W_OK | X_OK) != 0) {
    snprintf(err, cap, "'%s': cannot write: the folder %s: %s", path, d, strerror(errno));
    return -1;
  }
  int exists = stat(path, &st) == 0;
  /* access() says yes to root everywhere, also on read-only file systems and in /sys: only
   * creating a file tells (the temporary is made there too). Devices are written in place. */
  if (!exists || S_ISREG(st.st_mode)) {
    char probe[4096 + 32];
    snprintf(probe, sizeof probe, "%s/.brigade-probe-XXXXXX", d);
    int fd = mkstemp(probe);
    if (fd < 0) {
      snprintf(err, cap, "'%s': cannot write: cannot create a file in the folder %s: %s", path, d,
               strerror(errno));
      return -1;
    }
    close(fd);
    unlink(probe);
  }
  if (!exists)
    return 0; /* a new file */
  if (S_ISDIR(st.st_mode)) {
    snprintf(err, cap, "'%s': cannot write: it is a directory; name a file in it", path);
    return -1;
  }
  for (size_t i = 0; inputs && inputs[i]; i++)
    if (stat(inputs[i], &in) == 0 && in.st_dev == st.st_dev && in.st_ino == st.st_ino) {
      snprintf(err, cap,
               "'%s' is the same file as the input '%s': writing it would destroy the input; "
               "name another output file",
               path, inputs[i]);
      return -1;
    }
  return 0;
}

/* A signal that would end the process while a temporary exists removes it first. Blocking the
 * signals is not enough: sigprocmask masks one thread, and a process-directed SIGTERM goes to
 * any thread that does not block it (an OpenMP or OpenBLAS worker of the knn command), whose
 * default action ends the process with the temporary left behind. A handler is process-wide.
 * Only a signal whose action is the default gets it: the bench's own SIGINT/SIGTERM handler
 * (stop after the running row) stays as it is. One temporary at a time is guarded: the commands
 * write their outputs one after the other. */
static const int guarded[] = {SIGINT, SIGTERM, SIGHUP};
static const char *volatile guard_path;
static volatile sig_atomic_t guard_armed;
static int guard_set[3];

static void on_guarded_signal(int sig) {
  int saved = errno;
  if (guard_armed)
    unlink(guard_path); /* after the rename: ENOENT, harmless */
  /* SA_RESETHAND restored the default action; raised again, it ends the process on return. */
  raise(sig);
  errno = saved;
}

/* tmp is the outfile's own buffer, not a copy: bg__afile_create writes each name it tries into
 * it before creating the file, so the handler always sees the name of the file that exists. */
static int guard_arm(const char *tmp) {
  if (guard_armed)
    return 0;
  guard_path = tmp;
  guard_armed = 1;
  struct sigaction sa, cur;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_guarded_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < 3; i++) {
    guard_set[i] = sigaction(guarded[i], NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
                   cur.sa_handler == SIG_DFL && sigaction(guarded[i], &sa, NULL) == 0;
  }
  return 1;
}

static void guard_disarm(void) {
  for (size_t i = 0; i < 3; i++)
    if (guard_set[i]) {
      signal(guarded[i], SIG_DFL);
      guard_set[i] = 0;
    }
  guard_armed = 0;
}

static int outfile_open(bench_outfile *o, const char *path, int named, char *err, size_t cap) {
  memset(o, 0, sizeof *o);
  if (bg__afile_prepare(&o->af, path, err, cap) != 0)
    return -1;
  o->af.named = named;
  /* Armed before the file exists, so no moment has a temporary without its guard. */
  if (!o->af.direct)
    o->guarded = guard_arm(o->af.tmp);
  if (bg__afile_create(&o->af, err, cap) != 0) {
    bench_outfile_discard(o);
    return -1;
  }
  /* The stream writes through a copy of the descriptor: bg__afile_commit syncs and closes the
   * original after the stream is flushed and closed. */
  int fd = dup(o->af.fd);
  if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
    snprintf(err, cap, "'%s': %s", o->af.tmp, strerror(errno));
    if (fd >= 0)
      close(fd);
    bench_outfile_discard(o);
    return -1;
  }
  return 0;
}

int bench_outfile_open(bench_outfile *o, const char *path, char *err, size_t cap) {
  return outfile_open(o, path, 0, err, cap);
}

int bench_outfile_open_named(bench_outfile *o, const char *path, char *err, size_t cap) {
  return outfile_open(o, path, 1, err, cap);
}

static void unguard(bench_outfile *o) {
  if (o->guarded)
    guard_disarm();
  o->guarded = 0;
}

int bench_outfile_abandon(bench_outfile *o, const char *why, char *err, size_t cap) {
  if (o->f)
    fclose(o->f);
  o->f = NULL;
  bg__afile_abandon(&o->af, why, err, cap);
  unguard(o);
  return -1;
}

int bench_outfile_commit(bench_outfile *o, char *err, size_t cap) {
  int bad = ferror(o->f) || fflush(o->f) != 0;
  int saved = errno;
  if (fclose(o->f) != 0 && !bad)
    bad = 1, saved = errno;
  o->f = NULL;
  if (bad) {
    char why[160];
    snprintf(why, sizeof why, "write failed: %s", strerror(saved ? saved : EIO));
    return bench_outfile_abandon(o, why, err, cap);
  }
  int rc = bg__afile_commit(&o->af, err, cap);
  unguard(o);
  return rc == 0 ? 0 : -1;
}

void bench_outfile_discard(bench_outfile *o) {
  if (o->f)
    fclose(o->f);
  o->f = NULL;
  bg__afile_discard(&o->af);
  unguard(o);
}
