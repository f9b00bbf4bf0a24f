/* SPDX-License-Identifier: MIT */
/* The procs executor's fork server (see internal/exec_procs.h for why it exists). It serves
 * one request at a time from the manager thread: fork a worker and pass back its socket
 * (SCM_RIGHTS), or reap a worker and pass back its wait status. */
#define _GNU_SOURCE
#include "brigade/error.h"
#include "internal/exec_procs.h"
#include "internal/procs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { FS_SPAWN = 1, FS_REAP = 2, FS_QUIT = 3 };

typedef struct fsreq {
  int64_t op, w, pid;
} fsreq;

typedef struct fsrep {
  int64_t pid;    /* SPAWN: the worker's, -1 when fork failed */
  int64_t status; /* REAP: the wait status */
} fsrep;

/* Sends @rep with @fd attached when fd >= 0. */
static int send_rep(int sock, const fsrep *rep, int fd) {
  struct iovec iov = {.iov_base = (void *)(uintptr_t)rep, .iov_len = sizeof *rep};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t k;
  while ((k = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
    ;
  return k == (ssize_t)sizeof *rep ? 0 : -1;
}

/* Receives a reply and the descriptor attached to it, if any (*fd = -1 otherwise). */
static int recv_rep(int sock, fsrep *rep, int *fd) {
  struct iovec iov = {.iov_base = rep, .iov_len = sizeof *rep};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t k;
  while ((k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  *fd = -1;
  struct cmsghdr *c = k > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
    memcpy(fd, CMSG_DATA(c), sizeof *fd);
  return k == (ssize_t)sizeof *rep ? 0 : -1;
}

/* In the server: forks worker w with a new socket; the server keeps no end of it. */
static void serve_spawn(int ctl, const bg__xchild *tmpl, unsigned w) {
  fsrep rep = {-1, 0};
  long server = (long)getpid();
  int fd;
  pid_t pid = (pid_t)bg__fork_socket(&fd);
  if (pid == 0) {
    close(ctl);
    setpgid(0, 0);
    bg__xchild c = *tmpl;
    c.w = w;
    c.fd = fd;
    c.parent = server;
    bg__exec_child(&c);
  }
  if (pid > 0) {
    /* Both sides set the group, so a kill of the group cannot come before it exists. */
    setpgid(pid, pid);
    rep.pid = pid;
  }
  send_rep(ctl, &rep, pid > 0 ? fd : -1);
  if (pid > 0)
    close(fd);
}

_Noreturn static void serve(int ctl, const bg__xchild *tmpl) {
  fsreq q;
  while (bg__sock_recv(ctl, &q, sizeof q) == 0 && q.op != FS_QUIT) {
    if (q.op == FS_SPAWN) {
      serve_spawn(ctl, tmpl, (unsigned)q.w);
      continue;
    }
    int status = -1;
    while (waitpid((pid_t)q.pid, &status, 0) < 0 && errno == EINTR)
      ;
    fsrep rep = {q.pid, status};
    send_rep(ctl, &rep, -1);
  }
  /* Told to stop, or the manager is gone: no worker outlives the server unreaped. */
  while (wait(NULL) > 0 || errno == EINTR)
    ;
  _exit(0);
}

int bg__forkserver_start(bg__forkserver *fs, const bg__xchild *tmpl) {
  /* The server writes nothing, so buffered output copied into it (flushed first) is never
   * written twice. */
  int fd;
  pid_t pid = (pid_t)bg__fork_socket(&fd);
  if (pid < 0)
    return BG_ESYS;
  if (pid == 0) {
    /* Its own process group, so a Ctrl-C at the terminal is the caller's to handle, and no
     * parent-death signal: that follows the creating thread, which may end before the
     * executor does. The server leaves when its control socket closes instead. It reaps its
     * workers, so SIGCHLD must not be ignored. */
    setpgid(0, 0);
    signal(SIGCHLD, SIG_DFL);
    serve(fd, tmpl);
  }
  fs->pid = pid;
  fs->fd = fd;
  return BG_OK;
}

int bg__forkserver_spawn(const bg__forkserver *fs, unsigned w, long *pid, int *fd) {
  fsreq q = {FS_SPAWN, w, 0};
  fsrep rep;
  *fd = -1;
  if (bg__sock_send(fs->fd, &q, sizeof q) != 0 || recv_rep(fs->fd, &rep, fd) != 0 || rep.pid < 0 ||
      *fd < 0) {
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
  if (bg__sock_send(fs->fd, &q, sizeof q) != 0 || recv_rep(fs->fd, &rep, &fd) != 0)
    return -1;
  return (int)rep.status;
}

void bg__forkserver_stop(bg__forkserver *fs) {
  fsreq q = {FS_QUIT, 0, 0};
  bg__sock_send(fs->fd, &q, sizeof q);
  close(fs->fd);
  while (waitpid((pid_t)fs->pid, NULL, 0) < 0 && errno == EINTR)
    ;
}
