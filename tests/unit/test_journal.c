/* SPDX-License-Identifier: MIT */
/* The journal: a map records its items, a resumed map runs only what is missing (or failed),
 * a torn or damaged record is dropped and never trusted, a journal of another job is refused,
 * on every in-process and isolated backend. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "internal/journal.h"
#include "testkit.h"

static char dir[512];

static int setup(void **state) {
  (void)state;
  return tk_mkdtemp(dir, sizeof dir, "bg-journal");
}

static int teardown(void **state) {
  (void)state;
  return tk_rmtree(dir);
}

static void path_of(char *p, size_t cap, const char *name) {
  snprintf(p, cap, "%s/%s", dir, name);
}

/* Which items ran, as a count per item. Shared memory would be needed to count in procs
 * workers, so the count is kept in a file: each run appends its index (O_APPEND writes of a
 * few bytes are not interleaved). */
typedef struct runs_ctx {
  char log[600];
  int fail_mod; /* > 0: items with i % fail_mod == 1 return 7 */
  int crash_at; /* >= 0: this item raises SIGSEGV */
} runs_ctx;

static int task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  const runs_ctx *c = ctx;
  FILE *f = fopen(c->log, "a");
  if (f) {
    fprintf(f, "%zu\n", i);
    fclose(f);
  }
  if (c->crash_at >= 0 && (size_t)c->crash_at == i)
    raise(SIGSEGV);
  if (c->fail_mod > 0 && i % (size_t)c->fail_mod == 1)
    return 7;
  *(uint64_t *)out = i * 2654435761u + 1;
  return 0;
}

/* How many times each of @n items ran since the log was last cleared. */
static void read_runs(const runs_ctx *c, unsigned *runs, size_t n) {
  memset(runs, 0, n * sizeof *runs);
  FILE *f = fopen(c->log, "r");
  if (!f)
    return;
  size_t i;
  while (fscanf(f, "%zu", &i) == 1) {
    assert_true(i < n);
    runs[i]++;
  }
  fclose(f);
}

static void clear_runs(const runs_ctx *c) {
  unlink(c->log);
}

static bg_journal_opts_t opts_for(size_t n) {
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.task = "test-v1";
  o.n = n;
  o.out_size = sizeof(uint64_t);
  return o;
}

static bg_journal_t *open_ok(const char *path, const bg_journal_opts_t *o) {
  bg_journal_t *j = NULL;
  char msg[512];
  int rc = bg_journal_open(path, o, &j, msg, sizeof msg);
  if (rc != 0)
    fail_msg("bg_journal_open: %s", msg);
  return j;
}

/* Runs the map of @n items over @j on @backend; returns bg_map's code. */
static int run_map(const char *backend, bg_journal_t *j, runs_ctx *c, uint64_t *out, size_t n,
                   bg_item_status_t *status, bg_map_report_t *r) {
  bg_pool_t *p = tk_pool(backend, 2);
  bg_map_desc_t d = tk_desc(task, c, n, out, sizeof *out);
  d.status = status;
  d.journal = j;
  if (strcmp(backend, "procs-persistent") == 0)
    d.ctx_size = sizeof *c;
  int rc = bg_map(p, &d, r);
  bg_pool_destroy(p);
  return rc;
}

static runs_ctx ctx_for(const char *name) {
  runs_ctx c = {.crash_at = -1};
  path_of(c.log, sizeof c.log, name);
  clear_runs(&c);
  return c;
}

static void expect_results(const uint64_t *out, size_t n, int fail_mod) {
  for (size_t i = 0; i < n; i++)
    if (!(fail_mod > 0 && i % (size_t)fail_mod == 1))
      assert_int_equal(out[i], i * 2654435761u + 1);
}

/* A fresh journal records every item; reopened, a map runs nothing and gets every result. */
static void resume_backend(const char *backend) {
  enum { N = 300 };
  char jp[600];
  path_of(jp, sizeof jp, "resume.journal");
  unlink(jp);
  runs_ctx c = ctx_for("resume.log");
  bg_journal_opts_t o = opts_for(N);
  uint64_t out[N];
  unsigned runs[N];
  bg_map_report_t r;
  bg_journal_t *j = open_ok(jp, &o);
  assert_int_equal(run_map(backend, j, &c, out, N, NULL, &r), 0);
  assert_int_equal(r.n_ok, N);
  assert_int_equal(r.n_replayed, 0);
  bg_journal_info_t info;
  assert_int_equal(bg_journal_info(j, &info), 0);
  assert_int_equal(info.n_ok, N);
  assert_int_equal(info.records, N);
  assert_int_equal(bg_journal_close(j), 0);
  struct stat st;
  assert_int_equal(stat(jp, &st), 0);
  assert_int_equal((size_t)st.st_size, sizeof(bg__jhdr) + N * (sizeof(bg__jrec) + 8 + 8));

  clear_runs(&c);
  memset(out, 0, sizeof out);
  j = open_ok(jp, &o);
  assert_int_equal(bg_journal_info(j, &info), 0);
  assert_int_equal(info.n_ok, N);
  assert_int_equal(info.n_dropped, 0);
  bg_item_status_t status[N];
  assert_int_equal(run_map(backend, j, &c, out, N, status, &r), 0);
  read_runs(&c, runs, N);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(runs[i], 0);
    assert_int_equal(status[i].state, BG_ITEM_OK);
    assert_int_equal(status[i].attempts, 1);
  }
  assert_int_equal(r.n_ok, N);
  assert_int_equal(r.n_replayed, N);
  expect_results(out, N, 0);
  assert_int_equal(bg_journal_info(j, &info), 0);
  assert_int_equal(info.records, N); /* nothing recorded twice */
  bg_journal_close(j);
  tk_assert_no_children();
}

static void test_resume_threads(void **state) {
  (void)state;
  resume_backend("threads");
}
static void test_resume_seq(void **state) {
  (void)state;
  resume_backend("seq");
}
static void test_resume_openmp(void **state) {
  (void)state;
  resume_backend("openmp");
}
static void test_resume_procs(void **state) {
  (void)state;
  if (TK_TSAN)
    skip();
  resume_backend("procs");
  resume_backend("procs-copy");
  resume_backend("procs-persistent");
}

/* Failed items keep their failure on a plain resume, and only they run under
 * BG_JOURNAL_RERUN_FAILED; a crash is recorded with its signal. */
static void failed_backend(const char *backend, int crash) {
  enum { N = 100 };
  char jp[600];
  path_of(jp, sizeof jp, "failed.journal");
  unlink(jp);
  runs_ctx c = ctx_for("failed.log");
  c.fail_mod = 10;
  c.crash_at = crash ? 55 : -1;
  bg_journal_opts_t o = opts_for(N);
  uint64_t out[N];
  unsigned runs[N];
  bg_item_status_t status[N];
  bg_map_report_t r;
  bg_journal_t *j = open_ok(jp, &o);
  assert_int_equal(run_map(backend, j, &c, out, N, status, &r), BG_ETASK);
  size_t failed = N / 10 + (crash ? 1 : 0);
  assert_int_equal(r.n_failed, failed);
  bg_journal_close(j);

  /* Resumed: nothing runs, the failures are reported as they were recorded. */
  clear_runs(&c);
  j = open_ok(jp, &o);
  bg_journal_info_t info;
  bg_journal_info(j, &info);
  assert_int_equal(info.n_failed, failed);
  assert_int_equal(info.n_ok, N - failed);
  assert_int_equal(run_map(backend, j, &c, out, N, status, &r), BG_ETASK);
  read_runs(&c, runs, N);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(runs[i], 0);
  assert_int_equal(r.n_failed, failed);
  assert_int_equal(r.first_failed, 1);
  assert_int_equal(r.first_state, BG_ITEM_FAILED);
  assert_int_equal(r.first_code, 7);
  assert_int_equal(status[11].state, BG_ITEM_FAILED);
  assert_int_equal(status[11].code, 7);
  if (crash) {
    assert_int_equal(status[55].state, BG_ITEM_CRASHED);
    assert_int_equal(status[55].code, SIGSEGV);
    assert_int_equal(r.n_crashed, 1);
  }
  bg_journal_close(j);

  /* Rerun the failed: exactly they run, now succeeding. */
  clear_runs(&c);
  c.fail_mod = 0;
  c.crash_at = -1;
  o.flags = BG_JOURNAL_RERUN_FAILED;
  memset(out, 0, sizeof out);
  j = open_ok(jp, &o);
  assert_int_equal(run_map(backend, j, &c, out, N, status, &r), 0);
  read_runs(&c, runs, N);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(runs[i], (i % 10 == 1 || (crash && i == 55)) ? 1u : 0u);
  assert_int_equal(r.n_ok, N);
  assert_int_equal(r.n_replayed, N - failed);
  expect_results(out, N, 0);
  bg_journal_info(j, &info);
  assert_int_equal(info.n_ok, N);
  assert_int_equal(info.n_failed, 0);
  bg_journal_close(j);
}

/* A halt before the map reaches replayed items: they still count with their recorded outcome,
 * and the items rerun but not reached are not run. */
static void test_halt_before_replayed(void **state) {
  (void)state;
  enum { N = 100 };
  char jp[600];
  path_of(jp, sizeof jp, "halt.journal");
  unlink(jp);
  runs_ctx c = ctx_for("halt.log");
  c.fail_mod = 2; /* odd items fail */
  bg_journal_opts_t o = opts_for(N);
  uint64_t out[N];
  bg_map_report_t r;
  bg_journal_t *j = open_ok(jp, &o);
  assert_int_equal(run_map("threads", j, &c, out, N, NULL, &r), BG_ETASK);
  bg_journal_close(j);
  o.flags = BG_JOURNAL_RERUN_FAILED;
  j = open_ok(jp, &o);
  bg_pool_t *p = tk_pool("seq", 1);
  bg_item_status_t st[N];
  bg_map_desc_t d = tk_desc(task, &c, N, out, sizeof out[0]);
  d.status = st;
  d.journal = j;
  d.flags = BG_MAP_HALT;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  bg_pool_destroy(p);
  bg_journal_close(j);
  assert_int_equal(r.n_replayed, N / 2);
  assert_int_equal(r.n_ok, N / 2); /* the even items, replayed, most never reached */
  assert_int_equal(r.n_failed, 1); /* item 1, rerun, failed again: the halt */
  assert_int_equal(r.n_skipped, N / 2 - 1);
  assert_int_equal(r.first_failed, 1);
  assert_int_equal(r.first_code, 7);
  assert_int_equal(st[98].state, BG_ITEM_OK);
  assert_int_equal(st[99].state, BG_ITEM_PENDING);
}

static void test_failed_threads(void **state) {
  (void)state;
  failed_backend("threads", 0);
}

static void test_failed_procs(void **state) {
  (void)state;
  if (TK_TSAN)
    skip();
  failed_backend("procs", 1);
  failed_backend("procs-copy", 1);
  failed_backend("procs-persistent", 1);
}

/* Writes a journal of n items, all ok, and returns its size. */
static size_t make_journal(const char *jp, size_t n) {
  unlink(jp);
  runs_ctx c = ctx_for("make.log");
  bg_journal_opts_t o = opts_for(n);
  uint64_t out[64];
  bg_map_report_t r;
  assert_true(n <= 64);
  bg_journal_t *j = open_ok(jp, &o);
  assert_int_equal(run_map("seq", j, &c, out, n, NULL, &r), 0);
  bg_journal_close(j);
  struct stat st;
  assert_int_equal(stat(jp, &st), 0);
  return (size_t)st.st_size;
}

static void copy_file(const char *from, const char *to, size_t len) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  assert_non_null(a);
  assert_non_null(b);
  char buf[4096];
  size_t got;
  while (len > 0 && (got = fread(buf, 1, len < sizeof buf ? len : sizeof buf, a)) > 0) {
    assert_int_equal(fwrite(buf, 1, got, b), got);
    len -= got;
  }
  fclose(a);
  assert_int_equal(fclose(b), 0);
}

/* Resumes @jp and checks that exactly the items in @lost (nlost of them) run again and every
 * result comes out right. */
static void resume_expect(const char *jp, size_t n, const size_t *lost, size_t nlost,
                          size_t dropped) {
  runs_ctx c = ctx_for("check.log");
  bg_journal_opts_t o = opts_for(n);
  bg_journal_t *j = open_ok(jp, &o);
  bg_journal_info_t info;
  bg_journal_info(j, &info);
  assert_int_equal(info.n_dropped, dropped);
  assert_int_equal(info.n_ok, n - nlost);
  uint64_t out[64];
  unsigned runs[64];
  bg_map_report_t r;
  memset(out, 0xee, sizeof out);
  assert_int_equal(run_map("seq", j, &c, out, n, NULL, &r), 0);
  read_runs(&c, runs, n);
  for (size_t i = 0; i < n; i++) {
    unsigned want = 0;
    for (size_t k = 0; k < nlost; k++)
      want |= lost[k] == i;
    assert_int_equal(runs[i], want);
  }
  expect_results(out, n, 0);
  bg_journal_close(j);
}

/* A kill in the middle of a write leaves a torn last record: at every byte offset, the record
 * is dropped, its item runs again, and the file is cut back so that new records line up. */
static void test_torn_tail(void **state) {
  (void)state;
  enum { N = 8 };
  char jp[600], cut[600];
  path_of(jp, sizeof jp, "torn.journal");
  path_of(cut, sizeof cut, "cut.journal");
  size_t len = make_journal(jp, N), rs = sizeof(bg__jrec) + 8 + 8;
  assert_int_equal(len, sizeof(bg__jhdr) + N * rs);
  /* Records go in the order items settle: seq settles them in index order. */
  size_t last = N - 1;
  for (size_t keep = len - rs; keep < len; keep++) {
    copy_file(jp, cut, keep);
    resume_expect(cut, N, &last, 1, keep > len - rs);
    struct stat st;
    assert_int_equal(stat(cut, &st), 0);
    assert_int_equal((size_t)st.st_size, len); /* cut back, then the item appended whole */
    resume_expect(cut, N, NULL, 0, 0);
  }
}

/* One flipped bit anywhere: in the header the journal is refused (never read as another job's
 * or trusted); in a record that record is dropped and its item runs again. */
static void test_flipped_bits(void **state) {
  (void)state;
  enum { N = 6 };
  char jp[600], bad[600];
  path_of(jp, sizeof jp, "flip.journal");
  path_of(bad, sizeof bad, "bad.journal");
  size_t len = make_journal(jp, N), rs = sizeof(bg__jrec) + 8 + 8, hs = sizeof(bg__jhdr);
  FILE *f = fopen(jp, "rb");
  unsigned char orig[1024];
  assert_true(len <= sizeof orig);
  assert_int_equal(fread(orig, 1, len, f), len);
  fclose(f);
  bg_journal_opts_t o = opts_for(N);
  for (size_t byte = 0; byte < len; byte++) {
    for (int bit = 0; bit < 8; bit++) {
      unsigned char b[1024];
      memcpy(b, orig, len);
      b[byte] ^= (unsigned char)(1u << bit);
      f = fopen(bad, "wb");
      assert_int_equal(fwrite(b, 1, len, f), len);
      fclose(f);
      if (byte < hs) {
        bg_journal_t *j = NULL;
        char msg[512];
        int rc = bg_journal_open(bad, &o, &j, msg, sizeof msg);
        assert_int_equal(rc, BG_EFORMAT);
        assert_null(j);
        assert_non_null(strstr(msg, "bad.journal"));
        continue;
      }
      size_t item = (byte - hs) / rs; /* records are in index order */
      resume_expect(bad, N, &item, 1, 1);
    }
  }
}

/* A journal of another job is refused with a message naming the difference. */
static void test_other_job(void **state) {
  (void)state;
  char jp[600];
  path_of(jp, sizeof jp, "other.journal");
  make_journal(jp, 10);
  bg_journal_opts_t o = opts_for(10);
  bg_journal_t *j = NULL;
  char msg[512];
  o.task = "test-v2";
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "another job"));
  assert_non_null(strstr(msg, "task 'test-v1', not 'test-v2'"));
  o = opts_for(11);
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "items [0, 10) of 10, not [0, 11) of 11"));
  o = opts_for(10);
  o.out_size = 4;
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "results of 8, not 0 and 4"));
  o = opts_for(10);
  o.digest = bg_journal_digest("abc", 3);
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "digest"));
  o = opts_for(10);
  o.base = 5;
  o.total = 20;
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_null(j);
  /* The file is untouched by the refusals: the right job still resumes all of it. */
  resume_expect(jp, 10, NULL, 0, 0);
  /* BG_JOURNAL_TRUNCATE starts it anew for the other job. */
  o = opts_for(10);
  o.task = "test-v2";
  o.flags = BG_JOURNAL_TRUNCATE;
  j = open_ok(jp, &o);
  bg_journal_info_t info;
  bg_journal_info(j, &info);
  assert_int_equal(info.n_ok, 0);
  assert_string_equal(info.task, "test-v2");
  bg_journal_close(j);
}

/* Bad arguments and files that are not journals. */
static void test_refusals(void **state) {
  (void)state;
  char jp[600], msg[512];
  bg_journal_t *j = NULL;
  bg_journal_opts_t o = opts_for(4);
  path_of(jp, sizeof jp, "refuse.journal");
  assert_int_equal(bg_journal_open(NULL, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_int_equal(bg_journal_open(jp, NULL, &j, msg, sizeof msg), BG_EINVAL);
  assert_int_equal(bg_journal_open(jp, &o, NULL, msg, sizeof msg), BG_EINVAL);
  o.task = NULL;
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "task name"));
  o.task = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  o = opts_for(4);
  o.base = 3;
  o.total = 5;
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "[3, 7)"));
  o = opts_for(4);
  o.sync = 9;
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EINVAL);
  o = opts_for(4);
  assert_int_equal(bg_journal_open("/dev/null", &o, &j, msg, sizeof msg), BG_EINVAL);
  assert_non_null(strstr(msg, "regular file"));
  /* Not a journal: a text file is refused, and left as it was. */
  FILE *f = fopen(jp, "w");
  fputs("precious user data\n", f);
  fclose(f);
  assert_int_equal(bg_journal_open(jp, &o, &j, msg, sizeof msg), BG_EFORMAT);
  assert_non_null(strstr(msg, "not a brigade journal"));
  struct stat st;
  assert_int_equal(stat(jp, &st), 0);
  assert_int_equal(st.st_size, 19);
  assert_int_equal(bg_journal_info(NULL, NULL), BG_EINVAL);
  assert_int_equal(bg_journal_replay(NULL, NULL, NULL), BG_EINVAL);
  assert_int_equal(bg_journal_close(NULL), 0);
  /* A folder where the journal cannot be created. */
  o = opts_for(4);
  assert_int_equal(bg_journal_open("/nonexistent-dir/j", &o, &j, msg, sizeof msg), BG_ESYS);
  assert_non_null(strstr(msg, "cannot create"));
}

static int nested_journal(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)i;
  runs_ctx c = ctx_for("nested.log");
  bg_pool_t *p = tk_pool("seq", 1);
  uint64_t o[10];
  bg_map_desc_t d = tk_desc(task, &c, 10, o, 8);
  d.journal = ctx;
  int rc = bg_map(p, &d, NULL);
  bg_pool_destroy(p);
  *(uint64_t *)out = 0;
  return rc;
}

/* One journal, one map at a time: a map inside a task of a map over the same journal is
 * refused with BG_EBUSY. */
static void test_one_map_at_a_time(void **state) {
  (void)state;
  char jp[600];
  path_of(jp, sizeof jp, "nested.journal");
  unlink(jp);
  bg_journal_opts_t o = opts_for(10);
  bg_journal_t *j = open_ok(jp, &o);
  bg_pool_t *p = tk_pool("threads", 2);
  uint64_t out[10];
  bg_item_status_t st[10];
  bg_map_desc_t d = tk_desc(nested_journal, j, 10, out, 8);
  d.status = st;
  d.journal = j;
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(st[i].state, BG_ITEM_FAILED);
    assert_int_equal(st[i].code, BG_EBUSY);
  }
  /* The journal is free again after the map: the next one replays the failures. */
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  assert_int_equal(r.n_replayed, 10);
  bg_pool_destroy(p);
  bg_journal_close(j);
}

/* One journal, one process: a second open is refused while the first holds it; a map whose
 * sizes differ from the journal's is refused before any item runs. */
static void test_busy_and_mismatch(void **state) {
  (void)state;
  char jp[600], msg[512];
  path_of(jp, sizeof jp, "busy.journal");
  unlink(jp);
  bg_journal_opts_t o = opts_for(10);
  bg_journal_t *j = open_ok(jp, &o), *k = NULL;
  assert_int_equal(bg_journal_open(jp, &o, &k, msg, sizeof msg), BG_EBUSY);
  assert_non_null(strstr(msg, "in use"));
  runs_ctx c = ctx_for("busy.log");
  uint64_t out[11];
  bg_map_report_t r;
  assert_int_equal(run_map("threads", j, &c, out, 11, NULL, &r), BG_EINVAL);
  bg_pool_t *p = tk_pool("threads", 2);
  bg_map_desc_t d = tk_desc(task, &c, 10, NULL, 0);
  d.journal = j;
  assert_int_equal(bg_map(p, &d, &r), BG_EINVAL); /* the journal keeps results */
  bg_pool_destroy(p);
  unsigned runs[11];
  read_runs(&c, runs, 11);
  for (int i = 0; i < 11; i++)
    assert_int_equal(runs[i], 0);
  bg_journal_close(j);
  j = open_ok(jp, &o); /* closed: free again */
  bg_journal_close(j);
}

/* An item of 2 ms. */
static int slow_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  struct timespec ts = {0, 2000000};
  nanosleep(&ts, NULL);
  *(uint64_t *)out = i;
  return 0;
}

/* The sync policies: every group commit synced, or at most one per interval. */
static void test_sync_policies(void **state) {
  (void)state;
  enum { N = 64 };
  char jp[600];
  path_of(jp, sizeof jp, "sync.journal");
  runs_ctx c = ctx_for("sync.log");
  uint64_t out[N];
  bg_map_report_t r;
  bg_journal_info_t info;
  bg_journal_opts_t o = opts_for(N);
  o.flags = BG_JOURNAL_TRUNCATE;
  o.sync = BG_JOURNAL_SYNC_EVERY;
  bg_journal_t *j = open_ok(jp, &o);
  assert_int_equal(run_map("threads", j, &c, out, N, NULL, &r), 0);
  bg_journal_info(j, &info);
  assert_true(info.commits >= 1);
  assert_true(info.syncs >= info.commits);
  assert_int_equal(info.records, N);
  bg_journal_close(j);
  o.sync = BG_JOURNAL_SYNC_INTERVAL;
  o.sync_ms = 60000;
  o.group_ms = 0;
  j = open_ok(jp, &o);
  assert_int_equal(run_map("seq", j, &c, out, N, NULL, &r), 0);
  bg_journal_info(j, &info);
  assert_true(info.commits >= 2);  /* group_ms 0: a write at each settle */
  assert_int_equal(info.syncs, 1); /* at the map's end: the next period is a minute away */
  bg_journal_close(j);
  resume_expect(jp, N, NULL, 0, 0);
  /* A period of 5 ms over a map of about 130 ms: its own thread syncs while the map runs. */
  o.sync_ms = 5;
  o.group_ms = 2;
  j = open_ok(jp, &o);
  bg_pool_t *p = tk_pool("seq", 1);
  bg_map_desc_t d = tk_desc(slow_task, NULL, N, out, 8);
  d.journal = j;
  assert_int_equal(bg_map(p, &d, &r), 0);
  bg_pool_destroy(p);
  bg_journal_info(j, &info);
  assert_true(info.syncs >= 2); /* at least one during the map, one at its end */
  bg_journal_close(j);
}

static void ignore(int sig) {
  (void)sig;
}

/* A write that fails (the file size limit here; a full disk alike) fails the map with
 * BG_ESYS, never silently: a resume would otherwise run again what the caller thought kept. */
static void test_write_error(void **state) {
  (void)state;
  enum { N = 64 };
  char jp[600];
  path_of(jp, sizeof jp, "full.journal");
  unlink(jp);
  runs_ctx c = ctx_for("full.log");
  uint64_t out[N];
  bg_map_report_t r;
  bg_journal_opts_t o = opts_for(N);
  bg_journal_t *j = open_ok(jp, &o);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 1024; /* the header and a few records */
  void (*prev)(int) = signal(SIGXFSZ, ignore);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = run_map("seq", j, &c, out, N, NULL, &r);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, prev);
  assert_int_equal(rc, BG_ESYS);
  bg_journal_info_t info;
  bg_journal_info(j, &info);
  assert_int_equal(info.write_error, BG_ESYS);
  assert_int_equal(bg_journal_close(j), BG_ESYS);
  /* What reached the file is whole records: a resume takes them and runs the rest. */
  j = open_ok(jp, &o);
  bg_journal_info(j, &info);
  size_t kept = info.n_ok, lost[N];
  assert_true(kept > 0 && kept < N);
  /* The write that hit the limit was cut short: a torn record, dropped and cut off. */
  assert_int_equal(info.n_dropped, (1024 - sizeof(bg__jhdr)) % (sizeof(bg__jrec) + 16) != 0);
  bg_journal_close(j);
  for (size_t i = kept; i < N; i++) /* seq settles items in index order */
    lost[i - kept] = i;
  resume_expect(jp, N, lost, N - kept, 0);
}

/* bg_journal_replay reads a journal without running anything. */
static void test_replay(void **state) {
  (void)state;
  enum { N = 20 };
  char jp[600];
  path_of(jp, sizeof jp, "replay.journal");
  unlink(jp);
  runs_ctx c = ctx_for("replay.log");
  c.fail_mod = 5;
  uint64_t out[N];
  bg_map_report_t r;
  bg_journal_opts_t o = opts_for(N);
  bg_journal_t *j = open_ok(jp, &o);
  assert_int_equal(run_map("threads", j, &c, out, N, NULL, &r), BG_ETASK);
  bg_item_status_t st[N];
  uint64_t got[N];
  memset(got, 0, sizeof got);
  assert_int_equal(bg_journal_replay(j, st, got), 0);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(st[i].state, i % 5 == 1 ? BG_ITEM_FAILED : BG_ITEM_OK);
    if (i % 5 != 1)
      assert_int_equal(got[i], i * 2654435761u + 1);
    else
      assert_int_equal(got[i], 0);
  }
  bg_journal_close(j);
  assert_int_equal(bg_journal_digest("abc", 3), bg_journal_digest("abc", 3));
  assert_int_not_equal(bg_journal_digest("abc", 3), bg_journal_digest("abd", 3));
}

/* What the probe task shares with the test across processes. */
typedef struct probe {
  char path[600];
  _Atomic long long seen; /* the journal's size when item PROBE_AT ran; -1 before */
} probe;
enum { PROBE_N = 2000, PROBE_AT = 300 };

/* Items of a millisecond; item PROBE_AT looks at how much of the journal is on disk. */
static int probe_task(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  probe *p = *(probe **)ctx;
  if (i == PROBE_AT) {
    struct stat st;
    atomic_store(&p->seen, stat(p->path, &st) == 0 ? (long long)st.st_size : -2);
  }
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
  *(uint64_t *)out = i;
  return 0;
}

/* On the procs backends a journal gets the workers' items while the map runs, not when their
 * guided chunk comes back (here [0, 500) and the like, half a second): a kill -9 at item 300
 * once lost every item. */
static void test_procs_record_as_they_go(void **state) {
  (void)state;
  if (TK_TSAN)
    skip();
  const char *backends[] = {"procs", "procs-copy", "procs-persistent"};
  for (int b = 0; b < 3; b++) {
    probe *pr = mmap(NULL, sizeof *pr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(pr != MAP_FAILED);
    path_of(pr->path, sizeof pr->path, "probe.journal");
    atomic_store(&pr->seen, -1);
    bg_journal_opts_t o = opts_for(PROBE_N);
    o.flags = BG_JOURNAL_TRUNCATE;
    bg_journal_t *j = open_ok(pr->path, &o);
    bg_pool_t *p = tk_pool(backends[b], 2);
    uint64_t out[PROBE_N];
    bg_map_desc_t d = tk_desc(probe_task, &pr, PROBE_N, out, sizeof out[0]);
    d.ctx_size = sizeof pr;
    d.journal = j;
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    bg_pool_destroy(p);
    bg_journal_close(j);
    long long seen = atomic_load(&pr->seen);
    size_t records = seen > 0 ? ((size_t)seen - sizeof(bg__jhdr)) / (sizeof(bg__jrec) + 16) : 0;
    /* About 550 had finished (two workers, pieces of about 20 ms): 100 at least. */
    if (records < 100)
      fail_msg("%s: %zu records in the journal when item %d ran", backends[b], records, PROBE_AT);
    munmap(pr, sizeof *pr);
  }
  tk_assert_no_children();
}

/* BG_JOURNAL_INSPECT reads any journal as it is, under a shared lock, and writes nothing. */
static void test_inspect(void **state) {
  (void)state;
  enum { N = 8 };
  char jp[600], msg[512];
  path_of(jp, sizeof jp, "inspect.journal");
  size_t len = make_journal(jp, N);
  assert_int_equal(truncate(jp, (off_t)len - 3), 0); /* a torn tail */
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.flags = BG_JOURNAL_INSPECT; /* no task, no n: they come from the file */
  bg_journal_t *a = NULL, *b = NULL;
  assert_int_equal(bg_journal_open(jp, &o, &a, msg, sizeof msg), 0);
  assert_int_equal(bg_journal_open(jp, &o, &b, msg, sizeof msg), 0); /* readers share */
  bg_journal_info_t info;
  bg_journal_info(a, &info);
  assert_string_equal(info.task, "test-v1");
  assert_int_equal(info.n, N);
  assert_int_equal(info.out_size, 8);
  assert_int_equal(info.n_ok, N - 1);
  assert_int_equal(info.n_dropped, 1);
  bg_item_status_t st[N];
  uint64_t out[N] = {0};
  assert_int_equal(bg_journal_replay(a, st, out), 0);
  assert_int_equal(st[N - 1].state, BG_ITEM_PENDING);
  expect_results(out, N - 1, 0);
  /* A reader cannot run a map, and a writer must wait for the readers. */
  runs_ctx c = ctx_for("inspect.log");
  bg_map_report_t r;
  assert_int_equal(run_map("seq", a, &c, out, N, NULL, &r), BG_EINVAL);
  bg_journal_opts_t w = opts_for(N);
  bg_journal_t *k = NULL;
  assert_int_equal(bg_journal_open(jp, &w, &k, msg, sizeof msg), BG_EBUSY);
  bg_journal_close(a);
  bg_journal_close(b);
  struct stat s;
  assert_int_equal(stat(jp, &s), 0);
  assert_int_equal((size_t)s.st_size, len - 3); /* nothing written, the tail not cut */
  /* A journal a map holds cannot be inspected; a missing one says so. */
  k = open_ok(jp, &w);
  assert_int_equal(bg_journal_open(jp, &o, &a, msg, sizeof msg), BG_EBUSY);
  bg_journal_close(k);
  path_of(jp, sizeof jp, "no-such.journal");
  assert_int_equal(bg_journal_open(jp, &o, &a, msg, sizeof msg), BG_ENOENT);
  assert_null(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_seq),
      cmocka_unit_test(test_resume_threads),
      cmocka_unit_test(test_resume_openmp),
      cmocka_unit_test(test_resume_procs),
      cmocka_unit_test(test_failed_threads),
      cmocka_unit_test(test_halt_before_replayed),
      cmocka_unit_test(test_failed_procs),
      cmocka_unit_test(test_torn_tail),
      cmocka_unit_test(test_flipped_bits),
      cmocka_unit_test(test_other_job),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_busy_and_mismatch),
      cmocka_unit_test(test_sync_policies),
      cmocka_unit_test(test_write_error),
      cmocka_unit_test(test_replay),
      cmocka_unit_test(test_inspect),
      cmocka_unit_test(test_one_map_at_a_time),
      cmocka_unit_test(test_procs_record_as_they_go),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
