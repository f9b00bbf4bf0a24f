/* SPDX-License-Identifier: MIT */
/* The Python frameworks beside brigade: peer scripts (peers/python/) run as child processes on
 * the same case, print one tab-separated line per approach, and their rows join brigade's in
 * the same section, so one table compares a C backend with joblib or mpire on the same
 * machine, workload and size. */
#ifndef BRIGADE_BENCH_PEERS_H
#define BRIGADE_BENCH_PEERS_H

#include <stdint.h>

#include "result.h"
#include "workload.h"

typedef struct bench_peers {
  const char *python; /* the interpreter: a virtual environment's, or "python3" */
  const char *dir;    /* the folder holding catalogue.py */
  double timeout;     /* seconds one peer process may run; 0: BENCH_PEERS_TIMEOUT */
} bench_peers;

/* A peer process runs at most this long by default (the lecture's sizes, every approach), and
 * what it prints is bounded: a peer is a program we do not control. */
#define BENCH_PEERS_TIMEOUT 1800.0
#define BENCH_PEERS_MAX_OUTPUT (1 << 20)

/* Runs the catalogue peer on one case already run by brigade (its rows are in section) and
 * appends a row per approach ("py:joblib", ...), a note per skipped or failed approach, and
 * fills each brigade row's vs_peer. Returns 0, or BG_ECANCELED after a Ctrl-C. A peer that
 * cannot start, crashes or is killed is reported in a note, not as an error. */
int bench_peers_case(const bench_peers *p, const char *workload, const bench_case *c,
                     unsigned repeat, const char *section, bench_result *res);

/* Parses one line a peer printed into a row of section (0), or says why not (-1). Skipped
 * approaches become a note instead (1). Exposed for the tests. */
int bench_peers_parse(const char *line, const char *section, const char *workload, size_t n,
                      bench_row *row, char *note, size_t cap);

/* Sets each brigade row's vs_peer in section (the best correct peer's median over its own) and
 * adds the sentence comparing the best of each side. */
void bench_peers_compare(bench_result *res, const char *section);

/* A peer's command line: the interpreter, the script, then options. */
#define BENCH_PEERS_MAX_ARGS 32
typedef struct bench_peers_cmd {
  char *argv[BENCH_PEERS_MAX_ARGS]; /* NULL-terminated */
  int argc;
  char buf[8192]; /* the formatted values */
  size_t used;
} bench_peers_cmd;

/* Starts the command for script (in p->dir): 0, or -1 with a note in section when the script
 * is missing. Then appends "opt value" with value printf-formatted (opt NULL: the value only). */
int bench_peers_cmd_init(bench_peers_cmd *c, const bench_peers *p, const char *script,
                         const char *section, bench_result *res);
void bench_peers_cmd_arg(bench_peers_cmd *c, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs one peer process to its end (or its time limit, or a SIGINT/SIGTERM to the bench, which
 * kill it and whatever it started): its rows are appended from res->nrows on, with a note per
 * skipped, failed or unreadable approach and per unclean exit (of `who`). */
void bench_peers_run_script(const bench_peers *p, const bench_peers_cmd *cmd, const char *who,
                            const char *section, const char *workload, size_t n, bench_result *res);

/* One knn case for the peers (peers/python/knn.py): NumPy's matmul + argmax, PyTorch on the
 * CPU, faiss's IndexFlatIP. */
typedef struct bench_peers_knn {
  const float *db, *q; /* brigade's own inputs, row-major float32 */
  size_t nb_txt, dim, nb_new;
  char dir[4096]; /* the private folder holding them as files; "" when closed */
} bench_peers_knn;

/* Writes the inputs to a new folder under $TMPDIR (or /tmp). Returns 0, or -1 with the reason
 * and its fix in why (no space, not writable): the peers are then not run. */
int bench_peers_knn_open(bench_peers_knn *k, char *why, size_t cap);
/* Removes the folder and everything in it. */
void bench_peers_knn_close(bench_peers_knn *k);

/* Runs one approach ("numpy", "torch", "faiss") on workers threads, repeating until `repeat`
 * runs or row_seconds have passed, and appends its row to section. Its answer (nb_new
 * indices) goes to idx. Returns the row, failed when the peer failed or wrote no answer; or
 * NULL when it printed no row (skipped, missing, killed: a note says which). */
bench_row *bench_peers_knn_run(const bench_peers *p, const bench_peers_knn *k, const char *approach,
                               unsigned workers, unsigned repeat, double row_seconds,
                               const char *section, bench_result *res, int64_t *idx);

#endif
