/* SPDX-License-Identifier: MIT */
/* The catalogue: every workload's check accepts what every backend computes and rejects a
 * corrupted result; the disk workloads leave nothing behind, even when every item fails; the
 * runner refuses what memory cannot hold and explains what it measured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ceilings.h"
#include "runner.h"
#include "workload.h"

static const char *const backends[] = {"seq", "threads", "openmp"};

/* Runs workload w at n items on a backend; returns the map's status; out must hold n results. */
static int run(const bench_workload *w, const bench_case *c, void *state, const char *backend,
               void *out) {
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = backend;
  o.workers = 3;
  bg_pool_t *p;
  int rc = bg_pool_create(&o, &p);
  if (rc != 0)
    return rc;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = w->fn;
  d.ctx = w->setup ? state : (void *)c;
  d.n = c->n;
  d.out = out;
  d.out_size = w->out_size;
  rc = bg_map(p, &d, NULL);
  bg_pool_destroy(p);
  return rc;
}

static void every_check_passes_on_every_backend_and_catches_corruption(void **state) {
  (void)state;
  for (size_t i = 0; i < bench_workload_count(); i++) {
    const bench_workload *w = bench_workload_at(i);
    bench_case c = w->quick;
    c.n = 97;
    if (!strcmp(w->name, "sleep"))
      c.param = 0.001;
    if (!strcmp(w->name, "alloc"))
      c.param = 2;
    if (w->setup_bytes)
      c.param = 1e5;
    for (size_t b = 0; b < 3; b++) {
      void *st = NULL;
      char err[256] = "";
      if (w->setup)
        assert_int_equal(w->setup(&c, &st, err, sizeof err), 0);
      char *out = calloc(c.n, w->out_size);
      int rc = run(w, &c, st, backends[b], out);
      if (rc == BG_ENOTSUP) {
        free(out);
        if (w->teardown)
          w->teardown(st);
        continue;
      }
      assert_int_equal(rc, 0);
      if (w->check(st, &c, out, err, sizeof err) != 0)
        fail_msg("%s on %s: %s", w->name, backends[b], err);
      /* Flip the most significant byte of one result: the check must notice. */
      out[(c.n / 2) * w->out_size + w->out_size - 1] ^= 0x5a;
      if (w->check(st, &c, out, err, sizeof err) == 0)
        fail_msg("%s: the check accepted a corrupted result", w->name);
      free(out);
      if (w->teardown)
        w->teardown(st);
    }
  }
}

static void disk_leaves_nothing_even_when_items_fail(void **state) {
  (void)state;
  char tmp[] = "/tmp/bg_disk_test_XXXXXX";
  assert_non_null(mkdtemp(tmp));
  setenv("TMPDIR", tmp, 1);
  const bench_workload *w = bench_workload_find("disk-small");
  bench_case c = {50, 200};
  void *st;
  char err[256];
  assert_int_equal(w->setup(&c, &st, err, sizeof err), 0);
  uint64_t out[50];
  bench_interrupted = 1;
  assert_int_equal(run(w, &c, st, "threads", out), BG_ETASK);
  bench_interrupted = 0;
  w->teardown(st);
  unsetenv("TMPDIR");
  /* The private directory inside tmp is gone, so tmp itself can be removed. */
  assert_int_equal(rmdir(tmp), 0);
}

static void runner_refuses_what_memory_cannot_hold(void **state) {
  (void)state;
  bench_run_opts o = {.backends = {"threads"},
                      .nbackends = 1,
                      .workers = {2},
                      .nworkers = 1,
                      .repeat = 1,
                      .n_override = 4,
                      .param = 1e9 /* MiB per item */};
  bench_result *res = calloc(1, sizeof *res);
  char err[512] = "";
  assert_int_equal(bench_run_workload(&o, bench_workload_find("alloc"), res, err, sizeof err),
                   BG_ENOMEM);
  assert_non_null(strstr(err, "one item needs"));
  o.param = 1e13; /* doubles in the mean's array */
  assert_int_equal(bench_run_workload(&o, bench_workload_find("chunk-mean"), res, err, sizeof err),
                   BG_ENOMEM);
  assert_non_null(strstr(err, "only"));
  free(res);
}

static void runner_measures_and_explains(void **state) {
  (void)state;
  bench_run_opts o = {.backends = {"threads"},
                      .nbackends = 1,
                      .workers = {0},
                      .nworkers = 1,
                      .repeat = 2,
                      .n_override = 30,
                      .param = 0.005};
  bench_result *res = calloc(1, sizeof *res);
  char err[512] = "";
  assert_int_equal(bench_run_workload(&o, bench_workload_find("sleep"), res, err, sizeof err), 0);
  assert_int_equal(res->nrows, 2);
  const bench_row *seq = &res->rows[0], *par = &res->rows[1];
  assert_string_equal(seq->backend, "seq");
  assert_true(seq->wall.median >= 30 * 0.005);
  assert_true(par->workers > 2); /* blocked items: auto raised the workers */
  assert_true(par->speedup > 2);
  int said_blocked = 0, said_fastest = 0;
  for (size_t i = 0; i < res->nnotes; i++) {
    said_blocked |= strstr(res->notes[i].text, "Waiting, not computing") != NULL;
    said_fastest |= strstr(res->notes[i].text, "Fastest: threads") != NULL;
  }
  assert_true(said_blocked && said_fastest);
  free(res);
}

static int noted(const bench_result *res, const char *text) {
  for (size_t i = 0; i < res->nnotes; i++)
    if (strstr(res->notes[i].text, text))
      return 1;
  return 0;
}

static bench_row *ceiling_row(bench_result *res, const char *backend, unsigned workers,
                              double median) {
  bench_row *r = &res->rows[res->nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->section, sizeof r->section, "s");
  r->backend = backend;
  r->workers = workers;
  r->wall = (bench_summary){median, median, median};
  return r;
}

/* The notes of a case of workload @wl with a sequential row of @seq_s seconds and a best row of
 * @backend on two workers taking @best_s, set against @lim. */
static void ceiling_case(bench_result *res, const char *wl, bench_case c, const char *backend,
                         double seq_s, double best_s, const bench_limits *lim) {
  memset(res, 0, sizeof *res);
  bench_row *seq = ceiling_row(res, "seq", 1, seq_s), *best = ceiling_row(res, backend, 2, best_s);
  bench_explain_ceilings(res, bench_workload_find(wl), &c, "s", seq, best, lim);
}

/* Each bound's sentence, computed from the rows and the limits: memory against the read
 * bandwidth, files against the kernel's create+unlink (the shared folder's lock named only when
 * the limits show it), faults against first touch, and the procs rows' forks. */
static void rows_are_set_against_the_machines_limits(void **state) {
  (void)state;
  bench_limits lim = {.workers = 2,
                      .read_gbs_1 = 20,
                      .read_gbs_all = 40,
                      .fault_us_4k = 1.0,
                      .fault_us_4k_thp = 0.25,
                      .file_us_1 = 20,
                      .file_us_shared = 60,
                      .file_us_private = 21,
                      .fork_us = 500};
  bench_result *res = calloc(1, sizeof *res);
  /* vector-mean of 1e7 doubles (80 MB): 8 ms is 10 GB/s, 4 ms is 20 GB/s, 2.1 ms 38 GB/s. */
  ceiling_case(res, "vector-mean", (bench_case){16, 1e7}, "threads", 0.008, 0.004, &lim);
  assert_true(noted(res, "threads read 20.0 GB/s with 2 workers, 50% of the 40.0 GB/s"));
  assert_true(noted(res, "the sequential loop 10.0 GB/s, 50% of one thread's 20.0 GB/s"));
  assert_true(noted(res, "Not the bandwidth"));
  ceiling_case(res, "vector-mean", (bench_case){16, 1e7}, "threads", 0.008, 0.0021, &lim);
  assert_true(noted(res, "The memory bandwidth is the limit"));
  /* disk-small: 1000 files, 30 ms sequential = 30 us each; 2 workers 20 ms = 40 us each. */
  ceiling_case(res, "disk-small", (bench_case){1000, 200}, "openmp", 0.030, 0.020, &lim);
  assert_true(noted(res, "the sequential loop spent 30.0 us per file, where the kernel's"));
  assert_true(noted(res, "each file took 40.0 us of a worker's time"));
  assert_true(noted(res, "The shared folder is the limit"));
  lim.file_us_shared = 22;
  ceiling_case(res, "disk-small", (bench_case){1000, 200}, "openmp", 0.030, 0.020, &lim);
  assert_true(noted(res, "The folder is not contended here"));
  /* alloc of 8 items of 16 MiB, 80 ms sequential = 10 ms each; 16 MiB = 4096 pages = 4.1 ms. */
  ceiling_case(res, "alloc", (bench_case){8, 16}, "procs", 0.080, 0.050, &lim);
  assert_true(noted(res, "each item's 16 MiB costs 4.1 ms in page faults alone, 41%"));
  assert_true(noted(res, "huge pages (MADV_HUGEPAGE) first touch costs 0.25 us per 4 KiB"));
  /* Whether processes fault faster than threads is measured, not assumed: on Linux 6.18 with
   * per-VMA locks they did not (alloc at 100 x 500 MiB: threads 22.6 s, procs 24.8 s); the
   * advice to choose processes comes only from rows that show it (explain_choice). */
  assert_false(noted(res, "Processes fault in address spaces of their own"));
  assert_true(noted(res, "Each procs map forks its 2 workers; fork + wait costs 500 us"));
  /* CPU-bound work has no measured ceiling beyond the cores; without limits, no sentence. */
  ceiling_case(res, "prime-fixed", (bench_case){8, 16}, "threads", 0.080, 0.040, &lim);
  assert_int_equal(res->nnotes, 0);
  ceiling_case(res, "alloc", (bench_case){8, 16}, "procs", 0.080, 0.050, NULL);
  assert_int_equal(res->nnotes, 0);
  free(res);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_check_passes_on_every_backend_and_catches_corruption),
      cmocka_unit_test(disk_leaves_nothing_even_when_items_fail),
      cmocka_unit_test(runner_refuses_what_memory_cannot_hold),
      cmocka_unit_test(runner_measures_and_explains),
      cmocka_unit_test(rows_are_set_against_the_machines_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
