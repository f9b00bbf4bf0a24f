/* SPDX-License-Identifier: MIT */
/* A procs worker process: the loop between fork and _exit. It never returns into the caller's
 * code: everything after its last command is its exit callback and _exit, so the parent's
 * atexit handlers and stdio buffers are not run twice. */
#define _GNU_SOURCE
#include "internal/clock.h"
#include "internal/procs.h"
#include "internal/procs_persist.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Moves len bytes through the socket either way, retrying short transfers and EINTR. */
static int sock_io(int fd, char *p, size_t len, int sending) {
  while (len > 0) {
    ssize_t k = sending ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    len -= (size_t)k;
  }
  return 0;
}

int bg__sock_send(int fd, const void *buf, size_t len) {
  /* send() only reads the buffer; the cast lets one loop serve both directions. */
  return sock_io(fd, (char *)(uintptr_t)buf, len, 1);
}

int bg__sock_recv(int fd, void *buf, size_t len) {
  return sock_io(fd, buf, len, 0);
}

/* One control buffer for one descriptor, aligned as a cmsghdr. */
typedef union fdctl {
  struct cmsghdr h;
  char buf[CMSG_SPACE(sizeof(int))];
} fdctl;

int bg__sock_send_fd(int fd, const void *buf, size_t len, int pass) {
  struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
  fdctl ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (pass >= 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof pass);
  }
  ssize_t k;
  while ((k = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
    ;
  /* The descriptor went with the first byte: a short send finishes as plain bytes. */
  if (k < 0 || (size_t)k > len)
    return -1;
  return bg__sock_send(fd, (const char *)buf + k, len - (size_t)k);
}

int bg__sock_recv_fd(int fd, void *buf, size_t len, int *got) {
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  fdctl ctl;
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t k;
  while ((k = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  *got = -1;
  struct cmsghdr *c = k > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
    memcpy(got, CMSG_DATA(c), sizeof *got);
  if (k <= 0 || bg__sock_recv(fd, (char *)buf + k, len - (size_t)k) != 0) {
    if (*got >= 0)
      close(*got);
    *got = -1;
    return -1;
  }
  return 0;
}

long bg__fork_socket(int *mine) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return -1;
  /* Buffered output would otherwise be written once by the parent and again by a child that
   * calls exit(). */
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  close(sv[pid == 0 ? 0 : 1]);
  *mine = sv[pid == 0 ? 1 : 0];
  return (long)pid;
}

void bg__kill_reap(long pid, int *status) {
  kill(-(pid_t)pid, SIGKILL);
  kill((pid_t)pid, SIGKILL);
  while (waitpid((pid_t)pid, status, 0) < 0 && errno == EINTR)
    ;
}

/* Runs items [b, e) with their items at in (item b first) and their results at out. Returns
 * where it stopped: e, or one past a failure when BG_MAP_HALT is set. */
static size_t run(const bg__pchild *c, const bg__pcmd *m, const char *in, char *out,
                  bg__poutcome *oc, size_t *nfailed) {
  const bg_map_desc_t *d = c->d;
  bg__job job = {.d = d, .status = c->status};
  size_t i = m->b;
  while (i < m->e) {
    size_t k = i - m->b;
    if (d->timeout_ms || d->timeout_pct)
      atomic_store_explicit(&c->slot->t0_ns, bg__now_ns(), memory_order_relaxed);
    atomic_store_explicit(&c->slot->cur, i, memory_order_relaxed);
    atomic_store_explicit(&c->slot->running, 1, memory_order_release);
    uint32_t attempts;
    int rc = bg__job_call(d, out ? out + k * d->out_size : NULL, in ? in + k * d->in_size : NULL, i,
                          &attempts);
    atomic_store_explicit(&c->slot->running, 0, memory_order_release);
    attempts += m->prior;
    if (oc)
      oc[k] = (bg__poutcome){rc, attempts};
    else
      bg__job_record(&job, c->stats, i, rc, attempts);
    i++;
    if (rc != 0) {
      ++*nfailed;
      if (c->halt)
        break;
    }
  }
  atomic_store_explicit(&c->slot->cur, i, memory_order_release);
  return i;
}

/* Grows *buf to at least n bytes. */
static int reserve(char **buf, size_t *cap, size_t n) {
  if (n <= *cap)
    return 0;
  char *p = realloc(*buf, n);
  if (!p)
    return -1;
  *buf = p;
  *cap = n;
  return 0;
}

/* Serves commands; returns when told to quit or when the parent is gone. A persistent worker
 * takes each command's map from its arena (cur); the others run c's all their life. */
static void serve(const bg__pchild *c) {
  bg__pchild cur = *c;
  bg__pview view = {0};
  if (c->persist) {
    view.base = c->persist->base;
    view.len = c->persist->len;
  }
  char *buf = NULL;
  size_t cap = 0;
  bg__pcmd m;
  int fd;
  while (bg__sock_recv_fd(c->fd, &m, sizeof m, &fd) == 0) {
    if (m.op == BG__PCMD_ARENA) {
      if (bg__persist_remap(&view, &m, fd) != 0)
        break;
      continue;
    }
    if (fd >= 0)
      close(fd);
    if (m.op != BG__PCMD_RUN)
      break;
    if (c->persist)
      bg__persist_apply(&view, &cur);
    c = &cur;
    const bg_map_desc_t *d = c->d;
    size_t n = (size_t)(m.e - m.b), nfailed = 0, end;
    if (!c->copy) {
      end = run(c, &m, d->in ? (const char *)d->in + m.b * d->in_size : NULL,
                c->out ? c->out + m.b * d->out_size : NULL, NULL, &nfailed);
      bg__preply r = {m.b, end, nfailed};
      if (bg__sock_send(c->fd, &r, sizeof r) != 0)
        break;
      continue;
    }
    /* One buffer: the outcomes, then the results, then the items as they arrive. */
    size_t isz = d->in ? n * d->in_size : 0, osz = d->out ? n * d->out_size : 0;
    size_t ocsz = n * sizeof(bg__poutcome);
    if (reserve(&buf, &cap, ocsz + osz + isz) != 0)
      _exit(127);
    bg__poutcome *oc = (bg__poutcome *)buf;
    char *out = d->out ? buf + ocsz : NULL, *in = d->in ? buf + ocsz + osz : NULL;
    if (in && bg__sock_recv(c->fd, in, isz) != 0)
      break;
    /* A task that fails without writing leaves the caller's value, as on the other backends:
     * the worker's copy-on-write view of the caller's results holds it. */
    if (out)
      memcpy(out, (const char *)d->out + m.b * d->out_size, osz);
    end = run(c, &m, in, out, oc, &nfailed);
    bg__preply r = {m.b, end, nfailed};
    size_t ran = (size_t)(end - m.b);
    if (bg__sock_send(c->fd, &r, sizeof r) != 0 ||
        bg__sock_send(c->fd, oc, ran * sizeof *oc) != 0 ||
        (out && bg__sock_send(c->fd, out, ran * d->out_size) != 0))
      break;
  }
  free(buf);
}

/* Signals whose inherited handlers a worker drops. The parent's Ctrl-C handler is not the
 * worker's: the parent decides when workers stop. A crash must end the worker: an inherited
 * handler for SIGSEGV or SIGABRT (a test framework's, a crash reporter's) could longjmp back
 * into the caller's code, and the worker would go on running the caller's program. */
static const int default_sigs[] = {SIGINT, SIGTERM, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

void bg__procs_child_setup(long parent) {
  for (size_t i = 0; i < sizeof default_sigs / sizeof default_sigs[0]; i++)
    signal(default_sigs[i], SIG_DFL);
  /* A worker whose parent dies is killed by the kernel rather than left unsupervised. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if ((long)getppid() != parent)
    _exit(0);
}

_Noreturn void bg__procs_child(const bg__pchild *c) {
  bg__procs_child_setup(c->parent);
  void *state = NULL;
  if (c->life && c->life->init && c->life->init(c->w, c->life->ctx, &state) != 0)
    _exit(BG__PROCS_INIT_FAILED);
  bg__worker_set((int)c->w, state, NULL);
  bg__task_enter();
  atomic_store_explicit(&c->slot->ready_ns, bg__now_ns(), memory_order_release);
  serve(c);
  bg__task_leave();
  if (c->life && c->life->exit)
    c->life->exit(c->w, c->life->ctx, state);
  /* What the tasks printed is flushed; the parent flushed its own buffers before the fork,
   * so nothing is written twice. */
  fflush(NULL);
  _exit(0);
}
