/* SPDX-License-Identifier: MIT */
/* Peer processes: spawn the script, read its lines, merge its rows. The child's exit status is
 * part of the result: a peer killed by the kernel (the lecture's "Killed: 9") is a finding. */
#include "peers.h"

#include <errno.h>
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

/* Starts argv with its stdout on a pipe; *out reads it. Returns the pid or -1. */
static pid_t spawn(char *const *argv, FILE **out) {
  int fd[2];
  if (pipe(fd) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]), close(fd[1]);
    return -1;
  }
  if (pid == 0) {
    /* The peer's own Ctrl-C handling is Python's: it gets the same SIGINT from the terminal. */
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]), close(fd[1]);
    execvp(argv[0], argv);
    fprintf(stderr, "brigade bench: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fd[1]);
  *out = fdopen(fd[0], "r");
  if (!*out) {
    close(fd[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
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

void bench_peers_run_script(const bench_peers *p, const bench_peers_cmd *cmd, const char *who,
                            const char *section, const char *workload, size_t n,
                            bench_result *res) {
  FILE *out;
  pid_t pid = spawn(cmd->argv, &out);
  if (pid < 0) {
    bench_note_add(res, section, "Python peers not run: cannot start %s: %s", p->python,
                   strerror(errno));
    return;
  }
  char line[1024], note[BENCH_NOTE_LEN];
  while (fgets(line, sizeof line, out)) {
    if (res->nrows == BENCH_MAX_ROWS)
      break;
    line[strcspn(line, "\n")] = '\0';
    note[0] = '\0';
    if (bench_peers_parse(line, section, workload, n, &res->rows[res->nrows], note, sizeof note) ==
        0)
      res->nrows++;
    if (note[0])
      bench_note_add(res, section, "%s", note);
  }
  fclose(out);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (WIFSIGNALED(status))
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
