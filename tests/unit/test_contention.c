/* SPDX-License-Identifier: MIT */
/* Trust in the bench's figures: /proc/stat read and parsed, other processes' share told from
 * the bench's own (a lower bound: never fires on rounding), a busy child detected as
 * contention, and the sentences about contended, noisy and superlinear rows. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "contention.h"
#include "stats.h"
#include "report.h"
#include "runner.h"
#include "workload.h"

/* Two CPUs; hz 100: user nice system idle iowait irq softirq steal. */
static const char stat_a[] = "cpu  1000 0 500 8000 100 10 20 30 0 0\n"
                             "cpu0 500 0 250 4000 50 5 10 15 0 0\n"
                             "cpu1 500 0 250 4000 50 5 10 15 0 0\n"
                             "intr 12345\n";

static void parses_the_machine_line(void **st) {
  (void)st;
  bench_machine_cpu m;
  assert_int_equal(bench_machine_cpu_parse(stat_a, 100, &m), 0);
  assert_true(m.ok);
  assert_float_equal(m.busy, (1000 + 500 + 10 + 20) / 100.0, 1e-9);
  assert_float_equal(m.steal, 0.30, 1e-9);
  assert_float_equal(m.total, (1000 + 500 + 8000 + 100 + 10 + 20 + 30) / 100.0, 1e-9);
  assert_float_equal(m.grain, 2 / 100.0, 1e-9); /* a tick on each of two CPUs */
  /* Old kernels stop after iowait; per-CPU lines alone or other text are not the machine's. */
  assert_int_equal(bench_machine_cpu_parse("cpu  1 2 3 4\n", 100, &m), 0);
  assert_int_equal(bench_machine_cpu_parse("cpu0 1 2 3 4\n", 100, &m), -1);
  assert_int_equal(bench_machine_cpu_parse("intr 5\n", 100, &m), -1);
  assert_int_equal(bench_machine_cpu_parse("cpu  x\n", 100, &m), -1);
  assert_int_equal(bench_machine_cpu_parse(stat_a, 0, &m), -1);
  /* This machine's own /proc/stat reads, and time moves forward. */
  bench_machine_cpu now = bench_machine_cpu_now();
  assert_true(now.ok && now.total > 0 && now.grain > 0);
}

/* A difference over @secs seconds on 2 CPUs at 100 Hz, of which @busy CPU-seconds busy. */
static bench_machine_cpu diff(double secs, double busy, double steal) {
  return (bench_machine_cpu){
      .busy = busy, .steal = steal, .total = 2 * secs, .grain = 4 / 100.0, .ok = 1};
}

static void tells_others_from_its_own(void **st) {
  (void)st;
  /* Only the bench ran: its own CPU time is all the machine's busy time. */
  bench_machine_cpu d = diff(1.0, 1.5, 0);
  assert_float_equal(bench_others_share(&d, 1.5), 0, 1e-9);
  /* Rounding that makes the machine look busier than the bench by a few ticks is not others. */
  d = diff(1.0, 1.53, 0);
  assert_float_equal(bench_others_share(&d, 1.5), 0, 1e-9);
  /* Another process held one of the two CPUs: half the machine, less the reading's grain. */
  d = diff(1.0, 2.0, 0);
  assert_float_equal(bench_others_share(&d, 1.0), (1.0 - 0.04) / 2, 1e-9);
  /* A hypervisor's steal counts as others. */
  d = diff(1.0, 1.0, 0.5);
  assert_float_equal(bench_others_share(&d, 1.0), (0.5 - 0.04) / 2, 1e-9);
  /* Too short to tell, or unreadable. */
  d = diff(0.1, 0.2, 0);
  assert_float_equal(bench_others_share(&d, 0.0), -1, 0);
  d = diff(1.0, 1.0, 0);
  d.ok = 0;
  assert_float_equal(bench_others_share(&d, 0.5), -1, 0);
  /* Sums of readings: ok only when every reading was. */
  bench_machine_cpu a, b, sum = {.ok = 1};
  assert_int_equal(bench_machine_cpu_parse(stat_a, 100, &a), 0);
  b = a;
  b.busy += 1, b.total += 2;
  bench_machine_cpu_add(&sum, &a, &b);
  assert_true(sum.ok);
  assert_float_equal(sum.busy, 1, 1e-9);
  assert_float_equal(sum.grain, 2 * a.grain, 1e-9);
  b.ok = 0;
  bench_machine_cpu_add(&sum, &a, &b);
  assert_false(sum.ok);
}

static int said(const bench_result *res, const char *text) {
  for (size_t i = 0; i < res->nnotes; i++)
    if (strstr(res->notes[i].text, text))
      return 1;
  return 0;
}

static bench_row *add_row(bench_result *res, const char *backend, unsigned workers, double median) {
  bench_row *r = &res->rows[res->nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->section, sizeof r->section, "s");
  r->workload = "prime-fixed";
  r->backend = backend;
  r->schedule = "auto";
  r->workers = workers;
  r->wall = (bench_summary){median, median, median};
  r->cpu_s = median * workers;
  r->speedup = 1.0 / median;
  r->efficiency = r->speedup / workers;
  r->suspect = r->efficiency > BENCH_SUPERLINEAR;
  r->chunks = 10;
  return r;
}

/* A case of a measured sequential row (others' share @others, noisy or not) and a threads row
 * 3x faster on two workers, explained. */
static void superlinear_case(bench_result *res, double others, int noisy) {
  memset(res, 0, sizeof *res);
  bench_row *seq = add_row(res, "seq", 1, 1.0);
  seq->others_measured = 1, seq->others_cpu = others;
  seq->noisy = noisy, seq->wall.max = noisy ? 1.6 : 1.0;
  add_row(res, "threads", 2, 1.0 / 3);
  const bench_workload *w = bench_workload_find("prime-fixed");
  bench_explain(res, w, &w->quick, "s", 2, NULL);
}

static void says_why_a_figure_is_not_to_be_trusted(void **st) {
  (void)st;
  const bench_workload *w = bench_workload_find("prime-fixed");
  bench_case c = w->quick;
  bench_result *res = calloc(1, sizeof *res);
  /* A 3x speedup on two workers, with the sequential reference contended. */
  superlinear_case(res, 0.45, 0);
  assert_true(said(res, "threads with 2 workers shows 3.00x, more than its 2 workers"));
  assert_true(said(res, "the sequential reference ran while other processes took 45%"));
  assert_true(said(res, "Contended: other processes used at least 45%"));
  /* The same with noisy runs and no contention measured: noise is the cause. */
  superlinear_case(res, 0, 1);
  assert_true(said(res, "the runs are noisy"));
  assert_true(said(res, "Noisy: these rows' runs spread by more than 30%"));
  assert_false(said(res, "Contended"));
  /* Nothing measured against it: suspicious, and said so. */
  superlinear_case(res, 0, 0);
  assert_true(said(res, "suspicious: re-run"));
  /* The table marks the speedup above its workers with "?", and shows no CPU share for a row
   * whose CPU time cannot be its own (a 1 ms run, or more CPU than its workers could use). */
  res->rows[0].cpu_unknown = 1;
  res->rows[0].cpu_s = 2.0;
  res->suite = "catalogue";
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  bench_report(f, BENCH_MARKDOWN, res, "run");
  fclose(f);
  char *seq_line = strstr(text, "| seq | auto | 1 | ");
  assert_non_null(seq_line);
  *strchr(seq_line, '\n') = '\0';
  assert_non_null(strstr(seq_line, " | - | "));
  assert_null(strstr(seq_line, "200%"));
  seq_line[strlen(seq_line)] = '\n';
  assert_non_null(strstr(text, "| 3.00x? |"));
  free(text);
  /* A case whose every row was skipped still has its title and its notes, in both formats. */
  bench_note_add(res, "wall", "blocked skipped: predicted 400 s");
  for (int fmt = 0; fmt < 2; fmt++) {
    f = open_memstream(&text, &len);
    bench_report(f, fmt ? BENCH_MARKDOWN : BENCH_TABLE, res, "run");
    fclose(f);
    assert_non_null(strstr(text, fmt ? "\n### wall\n\n- blocked skipped: predicted 400 s\n"
                                     : "\n== wall ==\n  > blocked skipped: predicted 400 s\n"));
    free(text);
  }
  /* Workers that waited while other processes held the cores: contention, not waiting. */
  memset(res, 0, sizeof *res);
  add_row(res, "seq", 1, 1.0);
  bench_row *t = add_row(res, "threads", 2, 0.9);
  t->cpu_s = 0.5, t->others_measured = 1, t->others_cpu = 0.5;
  bench_explain(res, w, &c, "s", 2, NULL);
  assert_true(said(res, "they waited for cores that others held (contention)"));
  assert_false(said(res, "the rest went to waiting"));
  free(res);
}

/* Processes are recommended, with the figures, where they beat threads, and only there. */
static void recommends_processes_where_they_win(void **st) {
  (void)st;
  const bench_workload *w = bench_workload_find("alloc");
  bench_case c = w->quick;
  bench_result *res = calloc(1, sizeof *res);
  add_row(res, "seq", 1, 1.0);
  add_row(res, "threads", 2, 0.8)->sys_share = 0.6;
  add_row(res, "procs", 2, 0.6)->sys_share = 0.55;
  bench_explain(res, w, &c, "s", 2, NULL);
  assert_true(said(res, "Choose processes for this work: procs took 600.0 ms against threads' "
                        "800.0 ms (25% less). 60% of the CPU time was the kernel's (page faults"));
  assert_true(said(res, "in Python, a process pool (multiprocessing), not threads"));
  /* Threads as fast or faster: no such advice. */
  memset(res, 0, sizeof *res);
  add_row(res, "seq", 1, 1.0);
  add_row(res, "threads", 2, 0.6);
  add_row(res, "procs", 2, 0.58);
  bench_explain(res, w, &c, "s", 2, NULL);
  assert_false(said(res, "Choose processes"));
  free(res);
}

/* Spins until killed. */
/* A child that spins for @life seconds at most (SIGALRM ends it): it never outlives a test
 * that died before killing it. */
static pid_t spinner(unsigned life) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(life);
    for (volatile unsigned long x = 0;; x++)
      ;
  }
  assert_true(pid > 0);
  return pid;
}

static double quiet_share(void) {
  bench_machine_cpu a = bench_machine_cpu_now(), d = {.ok = 1};
  struct timespec ts = {0, 500000000};
  nanosleep(&ts, NULL);
  bench_machine_cpu b = bench_machine_cpu_now();
  bench_machine_cpu_add(&d, &a, &b);
  return bench_others_share(&d, 0);
}

static size_t notes_with(const bench_result *res, const char *text) {
  size_t n = 0;
  for (size_t i = 0; i < res->nnotes; i++)
    n += strstr(res->notes[i].text, text) != NULL;
  return n;
}

static long spin_all(pid_t *kids, unsigned life) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  ncpu = ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu;
  for (long i = 0; i < ncpu; i++)
    kids[i] = spinner(life);
  return ncpu;
}

static void reap_all(pid_t *kids, long n) {
  for (long i = 0; i < n; i++) {
    kill(kids[i], SIGKILL);
    waitpid(kids[i], NULL, 0);
  }
}

/* The prime-fixed catalogue on threads beside seq, one run per row. */
static bench_run_opts threads_run(size_t n) {
  bench_run_opts o = {.backends = {"threads"},
                      .nbackends = 1,
                      .workers = {0},
                      .nworkers = 1,
                      .repeat = 1,
                      .n_override = n,
                      .param = -1};
  return o;
}

/* prime-fixed run while a child spins on every CPU for up to @life seconds. */
static bench_result *run_beside_spinners(const bench_run_opts *o, unsigned life) {
  pid_t kids[64];
  long n = spin_all(kids, life);
  bench_result *res = calloc(1, sizeof *res);
  char err[256];
  int rc = bench_run_workload(o, bench_workload_find("prime-fixed"), res, err, sizeof err);
  reap_all(kids, n);
  assert_int_equal(rc, 0);
  return res;
}

static void a_busy_machine_is_detected(void **st) {
  (void)st;
  bench_run_opts o = threads_run(100000);
  bench_result *res = run_beside_spinners(&o, 120);
  char err[256];
  /* One spinner per CPU: the bench's two rows shared the machine with them. */
  const bench_row *seq = &res->rows[0];
  assert_true(seq->others_measured);
  assert_true(seq->others_cpu >= BENCH_OTHERS_NOTICEABLE);
  assert_true(said(res, "Contended: other processes used at least"));
  /* Without them, on a machine that was quiet a moment before, the same run is not flagged.
   * CI's machine may be busy with other work: then this half is skipped, not failed. */
  memset(res, 0, sizeof *res);
  if (quiet_share() == 0) {
    assert_int_equal(
        bench_run_workload(&o, bench_workload_find("prime-fixed"), res, err, sizeof err), 0);
    if (quiet_share() == 0)
      assert_false(res->rows[0].others_cpu >= BENCH_OTHERS_NOTICEABLE);
  } else {
    printf("the machine is busy: the quiet half is skipped\n");
  }
  free(res);
}

/* While a child spins on every CPU the machine never reads as quiet: the wait gives up after
 * its limit, not before, and not long after. */
static void the_quiet_wait_gives_up_on_a_busy_machine(void **st) {
  (void)st;
  pid_t kids[64];
  long n = spin_all(kids, 120);
  double t0 = bench_now(), waited = bench_wait_quiet(2.5);
  double took = bench_now() - t0;
  reap_all(kids, n);
  assert_true(waited < 0);
  assert_true(took >= 2 * BENCH_QUIET_WINDOW);
  assert_true(took < 2.5 + 2 * BENCH_QUIET_WINDOW + 5); /* a loaded machine's sleeps run late */
  if (quiet_share() == 0) {
    double w = bench_wait_quiet(30);
    assert_true(w >= BENCH_QUIET_WINDOW * 0.9 && w < 30);
  } else {
    printf("the machine is busy: the quiet half is skipped\n");
  }
}

/* --quiet-wait: the sequential row runs while children spin on every CPU; they end after 3 s,
 * and the row runs again. Whatever else the machine does, the row was contended, so one of
 * the three sentences says what became of it, and the notes of only one of its runs remain. */
static void a_contended_row_is_run_again(void **st) {
  (void)st;
  bench_run_opts o = threads_run(60000);
  o.insights = 1;
  o.quiet_wait = 15;
  bench_result *res = run_beside_spinners(&o, 3);
  size_t again = notes_with(res, "seq: run again after waiting"),
         first = notes_with(res, "seq: other processes used");
  assert_int_equal(again + first, 1);
  assert_int_equal(notes_with(res, "insights, seq x"), 1);
  assert_int_equal(notes_with(res, "insights, threads x"), 1);
  /* The row kept has its timing, whichever run it is. */
  assert_false(res->rows[0].failed);
  assert_true(res->rows[0].wall.median > 0);
  free(res);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_the_machine_line),
      cmocka_unit_test(tells_others_from_its_own),
      cmocka_unit_test(says_why_a_figure_is_not_to_be_trusted),
      cmocka_unit_test(recommends_processes_where_they_win),
      cmocka_unit_test(a_busy_machine_is_detected),
      cmocka_unit_test(the_quiet_wait_gives_up_on_a_busy_machine),
      cmocka_unit_test(a_contended_row_is_run_again),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
