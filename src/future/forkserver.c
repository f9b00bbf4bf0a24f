/* SPDX-License-Identifier: MIT */
/* The procs executor's fork server (see internal/exec_procs.h for why it exists). It serves
 * one request at a time from the manager thread: fork a worker and pass back its socket
 * (SCM_RIGHTS), or reap a worker (and kill its process group) and pass back its wait status.
 * When the caller process ends, however it ends, the server kills every worker's process
 * group and leaves, so nothing an executor started outlives its caller. */
#define _GNU_SOURCE
#include "brigade/error.h"
#include "internal/exec_procs.h"
#include "internal/procs.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Without a pidfd, how often the server checks that the caller is still its parent: the
 * longest a worker outlives a caller that was killed. */
#define WATCH_MS 250

enum { FS_SPAWN = 1, FS_REAP = 2, FS_QUIT = 3 };

typedef struct fsreq {
  int64_t op, w, pid;
} fsreq;

typedef struct fsrep {
  int64_t pid;    /* SPAWN: the worker's, -1 when fork failed */
  int64_t status; /* REAP: the wait status */
} fsrep;

/* The workers the server has forked and not yet reaped, so that it can kill them when it
 * leaves. */
typedef struct live {
  pid_t *pid;
  size_t n, cap;
} live;

static int live_add(live *l, pid_t pid) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    pid_t *p = realloc(l->pid, cap * sizeof *p);
    if (!p)
      return -1;
    l->pid = p;
    l->cap = cap;
  }
  l->pid[l->n++] = pid;
  return 0;
}

/* Removes @pid from the list. Return: whether it was there. */
static bool live_take(live *l, pid_t pid) {
  for (size_t i = 0; i < l->n; i++)
    if (l->pid[i] == pid) {
      l->pid[i] = l->pid[--l->n];
      return true;
    }
  return false;
}

/* The server's own state: it is one process with one thread, so nothing here needs a lock. */
typedef struct server {
  int ctl;                /* its end of the control socket */
  int pidfd;              /* readable when the caller ends; -1: watch getppid() instead */
  pid_t caller;           /* the process that created the executor */
  const bg__xchild *tmpl; /* what each worker is given */
  live live;              /* workers forked and not yet reaped */
} server;

/* In the server: forks worker w with a new socket; the server keeps no end of it. */
static void serve_spawn(server *sv, unsigned w) {
  live *l = &sv->live;
  fsrep rep = {-1, 0};
  long self = (long)getpid();
  int fd;
  pid_t pid = (pid_t)bg__fork_socket(&fd);
  if (pid == 0) {
    close(sv->ctl);
    if (sv->pidfd >= 0)
      close(sv->pidfd);
    setpgid(0, 0);
    bg__xchild c = *sv->tmpl;
    c.w = w;
    c.fd = fd;
    c.parent = self;
    bg__exec_child(&c);
  }
  if (pid > 0) {
    /* Both sides set the group, so a kill of the group cannot come before it exists. */
    setpgid(pid, pid);
    rep.pid = pid;
    if (live_add(l, pid) != 0) {
      /* A worker the server could not kill when it leaves is not started. */
      kill(-pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
      close(fd);
      pid = -1;
      rep.pid = -1;
    }
  }
  bg__sock_send_fd(sv->ctl, &rep, sizeof rep, pid > 0 ? fd : -1);
  if (pid > 0)
    close(fd);
}

/* In the server: waits for worker @pid to end, kills what is left of its process group, and
 * reaps it. Return: its wait status, or -1 when it is not a worker of this server. */
static int serve_reap(live *l, pid_t pid) {
  if (!live_take(l, pid))
    return -1;
  /* Waited for but not reaped: while the worker is a zombie its pid, and so its group's id,
   * cannot be reused, so the kill reaches only the processes its tasks started (a task's
   * background children are in its group and must not outlive the executor). */
  siginfo_t si;
  while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
    ;
  int status = -1;
  bg__kill_reap(pid, &status);
  return status;
}

/* Opens a descriptor that becomes readable when process @caller ends, or returns -1 where the
 * kernel has none (pidfd_open: Linux 5.3) or forbids it; the server then looks at its parent
 * every WATCH_MS instead. */
static int watch_caller(pid_t caller) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, caller, 0);
#else
  (void)caller;
  return -1;
#endif
}

/* Waits until a request can be read on the control socket. Return: true; false when the
 * caller is gone (its pidfd is readable, or without one the server's parent is no longer the
 * caller). The control socket's end of file alone would not do: a process the caller forked
 * later without exec (a helper it left running) holds a copy of the caller's end and keeps it
 * open after the caller is gone. */
static bool await_request(const server *sv) {
  struct pollfd pf[2] = {{.fd = sv->ctl, .events = POLLIN}, {.fd = sv->pidfd, .events = POLLIN}};
  bool have_pidfd = sv->pidfd >= 0;
  for (;;) {
    int k = poll(pf, have_pidfd ? 2 : 1, have_pidfd ? -1 : WATCH_MS);
    if (k < 0 && errno != EINTR)
      return false;
    if (have_pidfd ? k > 0 && pf[1].revents != 0 : getppid() != sv->caller)
      return false;
    if (k > 0 && pf[0].revents != 0)
      return true;
  }
}

/* Serves requests until told to quit or until the caller is gone, then kills every worker not
 * yet reaped with its process group: a worker (and what its task started) must not outlive
 * the caller, whose manager thread enforced its timeout. Workers also have a parent-death
 * signal, taken relative to this single-threaded server, for a server that is itself killed. */
_Noreturn static void serve(int ctl, const bg__xchild *tmpl, pid_t caller) {
  server sv = {.ctl = ctl, .pidfd = watch_caller(caller), .caller = caller, .tmpl = tmpl};
  /* The caller may have ended before the watch began: its pidfd would then name another
   * process or none, but the server has already been given to another parent. */
  bool up = getppid() == caller;
  fsreq q;
  while (up && await_request(&sv) && bg__sock_recv(ctl, &q, sizeof q) == 0 && q.op != FS_QUIT) {
    if (q.op == FS_SPAWN) {
      serve_spawn(&sv, (unsigned)q.w);
      continue;
    }
    fsrep rep = {q.pid, serve_reap(&sv.live, (pid_t)q.pid)};
    bg__sock_send_fd(ctl, &rep, sizeof rep, -1);
  }
  for (size_t i = 0; i < sv.live.n; i++)
    kill(-sv.live.pid[i], SIGKILL);
  /* No worker outlives the server unreaped. */
  while (wait(NULL) > 0 || errno == EINTR)
    ;
  _exit(0);
}

int bg__forkserver_start(bg__forkserver *fs, const bg__xchild *tmpl) {
  /* The server writes nothing, so buffered output copied into it (flushed first) is never
   * written twice. */
  pid_t caller = getpid();
  int fd;
  pid_t pid = (pid_t)bg__fork_socket(&fd);
  if (pid < 0)
    return BG_ESYS;
  if (pid == 0) {
    /* Its own process group, so a Ctrl-C at the terminal is the caller's to handle, and no
     * parent-death signal: that follows the creating thread, which may end before the
     * executor does. The server leaves when the caller process ends instead (serve), killing
     * its workers. It reaps its workers, so SIGCHLD must not be ignored. */
    setpgid(0, 0);
    signal(SIGCHLD, SIG_DFL);
    serve(fd, tmpl, caller);
  }
  fs->pid = pid;
  fs->fd = fd;
  return BG_OK;
}

int bg__forkserver_spawn(const bg__forkserver *fs, unsigned w, long *pid, int *fd) {
  fsreq q = {FS_SPAWN, w, 0};
  fsrep rep;
  *fd = -1;
  if (bg__sock_send(fs->fd, &q, sizeof q) != 0 ||
      bg__sock_recv_fd(fs->fd, &rep, sizeof rep, fd) != 0 || rep.pid < 0 || *fd < 0) {
    if (*fd >= 0)
      close(*fd);
    return BG_ESYS;
  }
  *pid = (long)rep.pid;
  return BG_OK;
}

int bg__forkserver_reap(const bg__forkserver *fs, long pid) {
  fsreq q = {FS_REAP, 0, pid};
  fsrep rep;
  int fd;
  if (bg__sock_send(fs->fd, &q, sizeof q) != 0 ||
      bg__sock_recv_fd(fs->fd, &rep, sizeof rep, &fd) != 0)
    return -1;
  if (fd >= 0)
    close(fd);
  return (int)rep.status;
}

void bg__forkserver_stop(bg__forkserver *fs) {
  fsreq q = {FS_QUIT, 0, 0};
  bg__sock_send(fs->fd, &q, sizeof q);
  close(fs->fd);
  while (waitpid((pid_t)fs->pid, NULL, 0) < 0 && errno == EINTR)
    ;
}
