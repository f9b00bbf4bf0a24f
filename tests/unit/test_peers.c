/* SPDX-License-Identifier: MIT */
/* The peers' protocol: every kind of line a peer may print becomes a row, a note or a refusal;
 * and the knn peers' input folder holds exactly brigade's inputs and is gone after closing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "peers.h"

static int parse(const char *line, bench_row *row, char *note) {
  note[0] = '\0';
  return bench_peers_parse(line, "s", "knn", 100, row, note, 256);
}

static void a_timed_line_is_a_row(void **state) {
  (void)state;
  bench_row row;
  char note[256];
  assert_int_equal(parse("peer\tapproach=joblib\tworkers=2\tmedian=0.5\tmin=0.4\tmax=0.7\t"
                         "peak_mib=12.5\tstatus=ok",
                         &row, note),
                   0);
  assert_string_equal(row.backend, "py:joblib");
  assert_string_equal(row.section, "s");
  assert_int_equal(row.workers, 2);
  assert_true(row.wall.median == 0.5 && row.wall.min == 0.4 && row.wall.max == 0.7);
  assert_true(row.peak_mib == 12.5 && row.external && !row.failed);
  assert_true(row.ns_per_item == 0.5 / 100 * 1e9);
  assert_string_equal(note, "");
}

static void wrong_and_failed_are_failed_rows(void **state) {
  (void)state;
  bench_row row;
  char note[256];
  assert_int_equal(parse("peer\tapproach=futures\tworkers=2\tmedian=1\tmin=1\tmax=1\tpeak_mib=1\t"
                         "status=wrong",
                         &row, note),
                   0);
  assert_true(row.failed);
  assert_non_null(strstr(note, "py:futures returned wrong results"));
  assert_int_equal(
      parse("peer\tapproach=numpy\tworkers=4\tstatus=failed\twhy=MemoryError: 37.3 GiB", &row,
            note),
      0);
  assert_true(row.failed && row.external && row.workers == 4 && row.wall.median == 0);
  assert_string_equal(note, "py:numpy failed: MemoryError: 37.3 GiB");
}

static void skipped_is_a_note_with_the_fix(void **state) {
  (void)state;
  bench_row row;
  char note[256];
  assert_int_equal(parse("peer\tapproach=faiss\tstatus=skipped\twhy=faiss not installed\tfix=make "
                         "bench-peers",
                         &row, note),
                   1);
  assert_string_equal(note, "py:faiss skipped: faiss not installed; install with make bench-peers");
}

static void bad_lines_are_refused(void **state) {
  (void)state;
  bench_row row;
  char note[256];
  assert_int_equal(parse("hello", &row, note), -1);
  assert_non_null(strstr(note, "cannot read: 'hello'"));
  assert_int_equal(parse("peer\tapproach=cobol\tstatus=ok", &row, note), -1);
  assert_non_null(strstr(note, "unknown approach 'cobol'"));
  assert_int_equal(parse("peer\tapproach=seq\tworkers=1\tmedian=fast\tmin=1\tmax=1\tpeak_mib=1\t"
                         "status=ok",
                         &row, note),
                   -1);
  assert_non_null(strstr(note, "malformed"));
  /* A zero time or worker count is not a measurement. */
  assert_int_equal(parse("peer\tapproach=seq\tworkers=0\tmedian=1\tmin=1\tmax=1\tpeak_mib=1\t"
                         "status=ok",
                         &row, note),
                   -1);
  assert_int_equal(parse("peer\tapproach=seq\tworkers=1\tmedian=0\tmin=0\tmax=0\tpeak_mib=1\t"
                         "status=ok",
                         &row, note),
                   -1);
  assert_int_equal(
      parse("peer\tapproach=seq\tworkers=1\tmedian=1\tmin=1\tmax=1\tstatus=ok", &row, note), -1);
}

static char *slurp(const char *dir, const char *name, size_t *len) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = malloc(1 << 16);
  *len = fread(buf, 1, 1 << 16, f);
  fclose(f);
  return buf;
}

static void knn_inputs_are_written_then_removed(void **state) {
  (void)state;
  float db[6] = {1, 2, 3, 4, 5, 6}, q[3] = {7, 8, 9};
  char tmp[] = "/tmp/brigade-test-peers-XXXXXX";
  assert_non_null(mkdtemp(tmp));
  setenv("TMPDIR", tmp, 1);
  bench_peers_knn k = {.db = db, .q = q, .nb_txt = 2, .dim = 3, .nb_new = 1};
  char why[256];
  assert_int_equal(bench_peers_knn_open(&k, why, sizeof why), 0);
  assert_memory_equal(k.dir, tmp, strlen(tmp));
  size_t len;
  char *got = slurp(k.dir, "db.f32", &len);
  assert_non_null(got);
  assert_int_equal(len, sizeof db);
  assert_memory_equal(got, db, sizeof db);
  free(got);
  got = slurp(k.dir, "queries.f32", &len);
  assert_non_null(got);
  assert_int_equal(len, sizeof q);
  assert_memory_equal(got, q, sizeof q);
  free(got);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", k.dir);
  bench_peers_knn_close(&k);
  struct stat st;
  assert_int_not_equal(stat(dir, &st), 0);
  assert_int_equal(rmdir(tmp), 0); /* empty: nothing was left behind */

  setenv("TMPDIR", "/nonexistent/brigade", 1);
  assert_int_equal(bench_peers_knn_open(&k, why, sizeof why), -1);
  assert_non_null(strstr(why, "set TMPDIR"));
  assert_string_equal(k.dir, "");
  bench_peers_knn_close(&k); /* closing a folder never opened is harmless */
  unsetenv("TMPDIR");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_timed_line_is_a_row),
      cmocka_unit_test(wrong_and_failed_are_failed_rows),
      cmocka_unit_test(skipped_is_a_note_with_the_fix),
      cmocka_unit_test(bad_lines_are_refused),
      cmocka_unit_test(knn_inputs_are_written_then_removed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
