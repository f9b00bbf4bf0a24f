/* SPDX-License-Identifier: MIT */
/* Peer processes: spawn the script, read its lines, merge its rows. The child's exit status is
 * part of the result: a peer killed by the kernel (the lecture's "Killed: 9") is a finding. */
#include "peers.h"
#include "stats.h"
#include "supervise.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Row backends must outlive the parse: the approaches a peer may name. */
static const char *const approaches[] = {
    "py:seq",   "py:multiprocessing", "py:futures", "py:joblib",
    "py:mpire", "py:numpy",           "py:torch",   "py:faiss"};

static const char *approach_name(const char *v) {
  for (size_t i = 0; i < sizeof approaches / sizeof approaches[0]; i++)
    if (!strcmp(approaches[i] + 3, v))
      return approaches[i];
  return NULL;
}

/* The value of key in a tab-separated "key=value" line, copied into buf; NULL if absent. */
static const char *field(const char *line, const char *key, char *buf, size_t cap) {
  size_t klen = strlen(key);
  for (const char *p = line; p && *p; p = strchr(p, '\t')) {
    if (*p == '\t')
      p++;
    if (!strncmp(p, key, klen) && p[klen] == '=') {
      const char *v = p + klen + 1;
      size_t len = strcspn(v, "\t\n");
      if (len >= cap)
        len = cap - 1;
      memcpy(buf, v, len);
      buf[len] = '\0';
      return buf;
    }
  }
  return NULL;
}

static int number(const char *line, const char *key, double *out) {
  char buf[64], *end;
  if (!field(line, key, buf, sizeof buf))
    return -1;
  errno = 0;
  *out = strtod(buf, &end);
  return errno || end == buf || *end || !(*out >= 0) ? -1 : 0;
}

int bench_peers_parse(const char *line, const char *section, const char *workload, size_t n,
                      bench_row *row, char *note, size_t cap) {
  char name[64], status[32], why[160], fix[160];
  if (strncmp(line, "peer\t", 5) || !field(line, "approach", name, sizeof name) ||
      !field(line, "status", status, sizeof status)) {
    snprintf(note, cap, "a peer printed a line brigade cannot read: '%.80s'", line);
    return -1;
  }
  const char *backend = approach_name(name);
  if (!backend) {
    snprintf(note, cap, "a peer named an unknown approach '%.40s'", name);
    return -1;
  }
  if (!strcmp(status, "skipped")) {
    snprintf(note, cap, "%s skipped: %s; install with %s", backend,
             field(line, "why", why, sizeof why) ? why : "not available",
             field(line, "fix", fix, sizeof fix) ? fix : "its package");
    return 1;
  }
  memset(row, 0, sizeof *row);
  snprintf(row->section, sizeof row->section, "%s", section);
  row->workload = workload, row->backend = backend, row->schedule = "-", row->n = n;
  row->external = 1;
  if (!strcmp(status, "failed")) {
    /* A peer that raised (NumPy's MemoryError at the memory wall) is a row of the table. */
    double workers = 1;
    number(line, "workers", &workers);
    row->workers = workers >= 1 ? (unsigned)workers : 1;
    row->failed = 1;
    snprintf(note, cap, "%s failed: %s", backend,
             field(line, "why", why, sizeof why) ? why : "no reason given");
    return 0;
  }
  double workers, med, mn, mx, peak;
  if (number(line, "workers", &workers) || number(line, "median", &med) ||
      number(line, "min", &mn) || number(line, "max", &mx) || number(line, "peak_mib", &peak) ||
      workers < 1 || med <= 0) {
    snprintf(note, cap, "%s: the peer's timing fields are missing or malformed", backend);
    return -1;
  }
  row->workers = (unsigned)workers;
  row->wall = (bench_summary){.median = med, .min = mn, .max = mx};
  row->peak_mib = peak;
  row->ns_per_item = n ? med / (double)n * 1e9 : 0;
  row->failed = strcmp(status, "ok") != 0;
  if (row->failed)
    snprintf(note, cap, "%s returned wrong results (status %s)", backend, status);
  return 0;
}

/* Starts argv in a supervised child (its own process group, killed if the bench dies) with
 * its stdout on a pipe; *out is the pipe's reading end. Returns the pid or -1. */
static pid_t spawn(char *const *argv, int *out) {
  int fd[2];
  if (pipe(fd) != 0)
    return -1;
  pid_t pid = bench_child_fork();
  if (pid < 0) {
    close(fd[0]), close(fd[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]), close(fd[1]);
    execvp(argv[0], argv);
    fprintf(stderr, "brigade bench: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fd[1]);
  *out = fd[0];
  return pid;
}

/* The best (fastest, correct) row of a section whose external flag is `external`. */
static const bench_row *best(const bench_result *res, const char *section, int external) {
  const bench_row *b = NULL;
  for (size_t i = 0; i < res->nrows; i++) {
    const bench_row *x = &res->rows[i];
    if (!strcmp(x->section, section) && x->external == external && !x->failed && !x->reference &&
        x->wall.median > 0 && (!b || x->wall.median < b->wall.median))
      b = x;
  }
  return b;
}

void bench_peers_compare(bench_result *res, const char *section) {
  const bench_row *peer = best(res, section, 1), *ours = best(res, section, 0);
  if (!peer || !ours)
    return;
  for (size_t i = 0; i < res->nrows; i++) {
    bench_row *x = &res->rows[i];
    if (!strcmp(x->section, section) && !x->external && !x->reference && x->wall.median > 0)
      x->vs_peer = peer->wall.median / x->wall.median;
  }
  bench_note_add(res, section,
                 "vs Python: brigade's best (%s, %u workers) took %.4g s, the best Python approach "
                 "(%s, %u workers) %.4g s: %.2fx",
                 ours->backend, ours->workers, ours->wall.median, peer->backend, peer->workers,
                 peer->wall.median, peer->wall.median / ours->wall.median);
}

static unsigned section_workers(const bench_result *res, const char *section) {
  for (size_t i = 0; i < res->nrows; i++)
    if (!strcmp(res->rows[i].section, section) && strcmp(res->rows[i].backend, "seq"))
      return res->rows[i].workers;
  return 1;
}

static double seq_median(const bench_result *res, const char *section) {
  const bench_row *s = bench_find_row(res, section, "seq", "auto");
  return s ? s->wall.median : 0;
}

/* A peer's output, read a line at a time without blocking the bench: lines past the buffer are
 * cut (the rest of the line dropped), and the whole is bounded. */
typedef struct peer_reader {
  char line[1024];
  size_t len, total;
  int cut; /* dropping the rest of an overlong line */
} peer_reader;

static void peer_line(peer_reader *r, const char *section, const char *workload, size_t n,
                      bench_result *res) {
  char note[BENCH_NOTE_LEN];
  r->line[r->len] = '\0';
  r->len = 0;
  if (res->nrows == BENCH_MAX_ROWS)
    return;
  note[0] = '\0';
  if (bench_peers_parse(r->line, section, workload, n, &res->rows[res->nrows], note, sizeof note) ==
      0)
    res->nrows++;
  if (note[0])
    bench_note_add(res, section, "%s", note);
}

static void peer_bytes(peer_reader *r, const char *buf, size_t got, const char *section,
                       const char *workload, size_t n, bench_result *res) {
  for (size_t k = 0; k < got; k++) {
    if (buf[k] == '\n') {
      if (!r->cut)
        peer_line(r, section, workload, n, res);
      r->len = 0, r->cut = 0;
    } else if (r->len + 1 < sizeof r->line) {
      r->line[r->len++] = buf[k];
    } else if (!r->cut) {
      peer_line(r, section, workload, n, res); /* says the line cannot be read */
      r->cut = 1;
    }
  }
}

/* Reads the peer until it closes its output, the bench is interrupted, the peer passes its
 * time limit or prints more than BENCH_PEERS_MAX_OUTPUT. Returns why it stopped reading. */
enum peer_stop { PEER_EOF, PEER_SIGNAL, PEER_TIMEOUT, PEER_FLOOD };

static enum peer_stop peer_read(int fd, double deadline, const char *section, const char *workload,
                                size_t n, bench_result *res) {
  peer_reader r = {.len = 0};
  char buf[4096];
  for (;;) {
    if (bench_interrupted)
      return PEER_SIGNAL;
    if (bench_now() > deadline)
      return PEER_TIMEOUT;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    /* A short wait: the signal flag and the deadline are looked at every 100 ms. */
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      if (r.len && !r.cut)
        peer_line(&r, section, workload, n, res);
      return PEER_EOF;
    }
    if ((r.total += (size_t)got) > BENCH_PEERS_MAX_OUTPUT)
      return PEER_FLOOD;
    peer_bytes(&r, buf, (size_t)got, section, workload, n, res);
  }
}

void bench_peers_run_script(const bench_peers *p, const bench_peers_cmd *cmd, const char *who,
                            const char *section, const char *workload, size_t n,
                            bench_result *res) {
  int fd;
  pid_t pid = spawn(cmd->argv, &fd);
  if (pid < 0) {
    bench_note_add(res, section, "Python peers not run: cannot start %s: %s", p->python,
                   strerror(errno));
    return;
  }
  double limit = p->timeout > 0 ? p->timeout : BENCH_PEERS_TIMEOUT;
  double deadline = bench_now() + limit;
  enum peer_stop why = peer_read(fd, deadline, section, workload, n, res);
  close(fd);
  int status = 0;
  /* After its output closes a peer still has until the deadline to exit. */
  while (why == PEER_EOF && !bench_child_wait(pid, 0.1, &status))
    why = bench_interrupted ? PEER_SIGNAL : bench_now() > deadline ? PEER_TIMEOUT : PEER_EOF;
  if (why != PEER_EOF)
    bench_child_kill(pid, &status);
  if (why == PEER_TIMEOUT)
    bench_note_add(res, section,
                   "%s was still running after %.0f s (--peer-timeout) and was killed; what it "
                   "had not finished is missing from the table",
                   who, limit);
  else if (why == PEER_FLOOD)
    bench_note_add(res, section,
                   "%s printed more than %d KiB, which no peer should, and was killed; what it "
                   "had not finished is missing from the table",
                   who, BENCH_PEERS_MAX_OUTPUT / 1024);
  else if (why == PEER_SIGNAL)
    return;
  else if (WIFSIGNALED(status))
    bench_note_add(res, section,
                   "%s was killed by signal %d%s; what it had not finished is missing from the "
                   "table",
                   who, WTERMSIG(status),
                   WTERMSIG(status) == SIGKILL ? " (SIGKILL: the kernel's out-of-memory killer, "
                                                 "the lecture's 'Killed: 9', or a user)"
                                               : "");
  else if (WEXITSTATUS(status) == 127)
    bench_note_add(res, section, "Python peers not run: %s was not found; install python3",
                   p->python);
  else if (WEXITSTATUS(status) != 0)
    bench_note_add(res, section,
                   "%s failed (exit %d); what it had not finished is missing from the table", who,
                   WEXITSTATUS(status));
}

int bench_peers_cmd_init(bench_peers_cmd *c, const bench_peers *p, const char *script,
                         const char *section, bench_result *res) {
  memset(c, 0, sizeof *c);
  c->argv[c->argc++] = (char *)p->python;
  bench_peers_cmd_arg(c, NULL, "%s/%s", p->dir, script);
  if (access(c->argv[1], R_OK) == 0)
    return 0;
  bench_note_add(res, section, "Python peers not run: %s is missing (--peers-dir)", c->argv[1]);
  return -1;
}

void bench_peers_cmd_arg(bench_peers_cmd *c, const char *opt, const char *fmt, ...) {
  /* The buffers are sized for the peers' few options; a full one drops the option (the peer
   * then refuses its command line, which is reported like any failed peer). */
  if (c->argc + 2 >= BENCH_PEERS_MAX_ARGS)
    return;
  if (opt)
    c->argv[c->argc++] = (char *)opt;
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(c->buf + c->used, sizeof c->buf - c->used, fmt, ap);
  va_end(ap);
  if (len < 0 || (size_t)len >= sizeof c->buf - c->used)
    return;
  c->argv[c->argc++] = c->buf + c->used;
  c->used += (size_t)len + 1;
}

int bench_peers_case(const bench_peers *p, const char *workload, const bench_case *c,
                     unsigned repeat, const char *section, bench_result *res) {
  res->peers = 1;
  bench_peers_cmd cmd;
  if (bench_peers_cmd_init(&cmd, p, "catalogue.py", section, res) != 0)
    return 0;
  bench_peers_cmd_arg(&cmd, "--workload", "%s", workload);
  bench_peers_cmd_arg(&cmd, "--n", "%zu", c->n);
  bench_peers_cmd_arg(&cmd, "--param", "%.17g", c->param);
  bench_peers_cmd_arg(&cmd, "--workers", "%u", section_workers(res, section));
  bench_peers_cmd_arg(&cmd, "--repeat", "%u", repeat);
  size_t first = res->nrows;
  bench_peers_run_script(p, &cmd, "the Python peer process", section, workload, c->n, res);
  double seq = seq_median(res, section);
  for (size_t i = first; i < res->nrows; i++) {
    bench_row *row = &res->rows[i];
    row->speedup = seq > 0 && row->wall.median > 0 ? seq / row->wall.median : 0;
    row->efficiency = row->speedup / row->workers;
  }
  bench_peers_compare(res, section);
  return bench_interrupted ? BG_ECANCELED : 0;
}
