/* SPDX-License-Identifier: MIT */
/* Run under mpirun (tests/mpi/run.sh, 2 and 4 ranks): the mpi backend's maps equal seq's on
 * every workload of the catalogue, with inputs on rank 0 only, results on every rank, failing
 * items and halting, statuses and a journal on rank 0; the distributed knn equals the
 * single-process search on the knn test matrix, uneven slices, empty slices, exact ties and k > 1
 * included. Every rank checks; the job fails when any rank does. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brigade.h"
#include "brigade/dist.h"
#include "workload.h"

static unsigned rank, ranks;
static int failures;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "rank %u: %s:%d: check failed: %s\n", rank, __FILE__, __LINE__, #cond);      \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

static bg_pool_t *pool_of(const char *backend, unsigned workers) {
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = backend;
  o.workers = workers;
  bg_pool_t *p = NULL;
  CHECK(bg_pool_create(&o, &p) == 0);
  return p;
}

/* Every catalogue workload, at a size small enough for a test: mpi's results equal seq's. */
static void catalogue_equals_seq(bg_pool_t *mpi, bg_pool_t *seq) {
  for (size_t i = 0; i < bench_workload_count(); i++) {
    const bench_workload *w = bench_workload_at(i);
    bench_case c = w->quick;
    if (c.n > 2000)
      c.n = 2000;
    if (!strcmp(w->name, "sleep"))
      c.param = 0.001;
    if (!strcmp(w->name, "alloc"))
      c.param = 1;
    void *state = &c;
    char err[256];
    if (w->setup && w->setup(&c, &state, err, sizeof err) != 0) {
      fprintf(stderr, "rank %u: %s: set-up failed: %s\n", rank, w->name, err);
      failures++;
      continue;
    }
    char *want = calloc(c.n, w->out_size), *got = calloc(c.n, w->out_size);
    bg_map_desc_t d;
    bg_map_desc_init(&d);
    d.fn = w->fn, d.ctx = state, d.n = c.n, d.out = want, d.out_size = w->out_size;
    CHECK(bg_map(seq, &d, NULL) == 0);
    d.out = got;
    bg_map_report_t r;
    CHECK(bg_map(mpi, &d, &r) == 0);
    CHECK(r.n_ok == c.n && r.n_failed == 0);
    /* The results arrive on rank 0, equal to seq's and accepted by the workload's check. */
    if (rank == 0) {
      int same = memcmp(want, got, c.n * w->out_size) == 0;
      int checked = !w->check || w->check(state, &c, got, err, sizeof err) == 0;
      if (!same || !checked)
        fprintf(stderr, "rank 0: %s: %s\n", w->name, same ? err : "results differ from seq");
      CHECK(same && checked);
    }
    free(want), free(got);
    if (w->teardown)
      w->teardown(state);
  }
}

static int square(void *out, const void *in, size_t i, void *ctx) {
  (void)ctx;
  uint64_t v = *(const uint64_t *)in;
  *(uint64_t *)out = v * v + i;
  return 0;
}

static int fail_multiples_of_7(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i;
  return i % 7 == 3 ? 40 + (int)(i % 5) : 0;
}

static int fail_without_writing(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i % 7 == 3)
    return 40;
  *(uint64_t *)out = i;
  return 0;
}

/* Inputs on rank 0 only reach every rank; results on every rank with BG_MAP_ALL_RANKS. */
static void inputs_and_results(bg_pool_t *mpi) {
  size_t n = 10007;
  uint64_t *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
  for (size_t i = 0; i < n; i++)
    in[i] = i * 3 + 1;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = square, d.n = n, d.in = rank == 0 ? in : NULL, d.in_size = sizeof *in;
  d.out = out, d.out_size = sizeof *out, d.flags = BG_MAP_ALL_RANKS;
  CHECK(bg_map(mpi, &d, NULL) == 0);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += out[i] != in[i] * in[i] + i;
  CHECK(bad == 0);
  /* Without the flag only rank 0 receives them; the others may pass no out at all. */
  memset(out, 0, n * sizeof *out);
  d.flags = 0;
  d.out = rank == 0 ? out : NULL;
  CHECK(bg_map(mpi, &d, NULL) == 0);
  for (size_t i = 0; rank == 0 && i < n; i++)
    bad += out[i] != in[i] * in[i] + i;
  CHECK(bad == 0);
  /* Results for every rank, but one rank has nowhere to put them: refused on every rank (one
   * rank alone would be a map without results). */
  if (ranks > 1) {
    d.flags = BG_MAP_ALL_RANKS;
    d.out = rank == ranks - 1 ? NULL : out;
    bg_map_report_t r;
    CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
    CHECK(r.first_code == BG_EINVAL);
  }
  free(in), free(out);
}

/* Failing items are counted on every rank and the lowest one is named with its code. */
static void failures_are_reported(bg_pool_t *mpi) {
  size_t n = 5000;
  uint64_t *out = calloc(n, sizeof *out);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = fail_multiples_of_7, d.n = n, d.out = out, d.out_size = sizeof *out;
  bg_map_report_t r;
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  size_t want = 0;
  for (size_t i = 0; i < n; i++)
    want += i % 7 == 3;
  CHECK(r.n_failed == want && r.n_ok == n - want);
  CHECK(r.first_failed == 3 && r.first_code == 43);
  /* BG_MAP_HALT stops every rank soon after the first failure, or after halt_after failures
   * counted over all ranks. */
  d.flags = BG_MAP_HALT;
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  CHECK(r.n_failed >= 1 && r.n_skipped > 0);
  d.halt_after = 300; /* several chunks of every rank: about 22 failures per chunk */
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  CHECK(r.n_failed >= 300 && r.n_skipped > 0);
  d.halt_after = 0;
  /* A failed item's result is zeros wherever it ran, not a buffer's old bytes. */
  d.fn = fail_without_writing, d.flags = 0;
  memset(out, 0, n * sizeof *out);
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  size_t bad = 0;
  for (size_t i = 0; rank == 0 && i < n; i++)
    bad += out[i] != (i % 7 == 3 ? 0 : i);
  CHECK(bad == 0);
  d.fn = fail_multiples_of_7;
  /* Ranks that disagree on n fail the map everywhere instead of hanging. */
  d.flags = 0;
  d.n = rank == 0 ? n : n - 1;
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  CHECK(r.first_code == BG_EINVAL);
  /* An empty map is still a collective: every rank returns. */
  d.n = 0;
  CHECK(bg_map(mpi, &d, &r) == 0);
  free(out);
}

/* Rank 0 gets every item's outcome in desc.status, whichever rank ran it. */
static void statuses_on_rank_0(bg_pool_t *mpi) {
  size_t n = 3001;
  bg_item_status_t *st = calloc(n, sizeof *st);
  uint64_t *out = calloc(n, sizeof *out);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = fail_multiples_of_7, d.n = n, d.out = out, d.out_size = sizeof *out;
  d.status = rank == 0 ? st : NULL;
  CHECK(bg_map(mpi, &d, NULL) == BG_ETASK);
  size_t bad = 0;
  for (size_t i = 0; rank == 0 && i < n; i++)
    bad += i % 7 == 3 ? st[i].state != BG_ITEM_FAILED || st[i].code != 40 + (int)(i % 5)
                      : st[i].state != BG_ITEM_OK;
  CHECK(bad == 0);
  free(st), free(out);
}

/* The item's index plus 1,000,000: what a resumed map writes, unlike the first run's i. */
static int mark_rerun(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i + 1000000;
  return 0;
}

/* Fails every item the first run settled ok: run on a resume-failed map, it shows that only
 * the failed items ran again. */
static int only_the_failed(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i + 1000000;
  return i % 7 == 3 ? 0 : 99;
}

/* Rank 0 opens the journal of a map of @n uint64 results (the others pass none). */
static bg_journal_t *journal_of(const char *path, size_t n, unsigned flags) {
  if (rank != 0)
    return NULL;
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.task = "mpi-test", o.n = n, o.out_size = sizeof(uint64_t), o.flags = flags;
  bg_journal_t *j = NULL;
  char msg[512];
  int rc = bg_journal_open(path, &o, &j, msg, sizeof msg);
  if (rc != 0)
    fprintf(stderr, "rank 0: %s\n", msg);
  CHECK(rc == 0);
  return j;
}

/* Rank 0's journal records every rank's items as they arrive; a resume with any number of
 * ranks replays them and runs only what is missing (or failed, when asked). */
static void journal_across_ranks(bg_pool_t *mpi) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/bg-mpi-journal-%ld", (long)getpid());
  size_t n = 5000, want = 0;
  for (size_t i = 0; i < n; i++)
    want += i % 7 == 3;
  uint64_t *out = calloc(n, sizeof *out);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = fail_multiples_of_7, d.n = n, d.out = out, d.out_size = sizeof *out;
  d.journal = journal_of(path, n, BG_JOURNAL_TRUNCATE);
  bg_map_report_t r;
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  CHECK(r.n_ok == n - want && r.n_failed == want);
  bg_journal_info_t ji;
  if (rank == 0) {
    CHECK(bg_journal_info(d.journal, &ji) == 0);
    CHECK(ji.records == n && ji.n_ok == n - want && ji.n_failed == want && !ji.write_error);
    CHECK(bg_journal_close(d.journal) == 0);
  }
  /* Resume-failed: the ok items come from the journal, only the failed ones run. */
  memset(out, 0, n * sizeof *out);
  d.fn = only_the_failed;
  d.journal = journal_of(path, n, BG_JOURNAL_RERUN_FAILED);
  CHECK(bg_map(mpi, &d, &r) == 0);
  size_t bad = 0;
  for (size_t i = 0; rank == 0 && i < n; i++)
    bad += out[i] != (i % 7 == 3 ? i + 1000000 : i);
  CHECK(bad == 0);
  /* Every rank counts the whole job; rank 0 alone knows which items were replayed. */
  CHECK(r.n_ok == n && r.n_replayed == (rank == 0 ? n - want : 0));
  if (rank == 0)
    CHECK(bg_journal_close(d.journal) == 0);

  /* A map halted partway: its journal holds some items; the resume runs exactly the others. */
  d.fn = fail_multiples_of_7, d.flags = BG_MAP_HALT;
  memset(out, 0, n * sizeof *out);
  d.journal = journal_of(path, n, BG_JOURNAL_TRUNCATE);
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK);
  CHECK(r.n_skipped > 0);
  bg_item_status_t *rec = calloc(n, sizeof *rec);
  if (rank == 0) {
    CHECK(bg_journal_close(d.journal) == 0);
    d.journal = journal_of(path, n, 0);
    CHECK(bg_journal_replay(d.journal, rec, NULL) == 0);
  }
  d.fn = mark_rerun, d.flags = 0;
  memset(out, 0, n * sizeof *out);
  CHECK(bg_map(mpi, &d, &r) == BG_ETASK); /* the recorded failures stay failed */
  size_t replayed = 0;
  for (size_t i = 0; rank == 0 && i < n; i++) {
    replayed += rec[i].state != BG_ITEM_PENDING;
    if (rec[i].state == BG_ITEM_OK)
      bad += out[i] != i;
    else if (rec[i].state == BG_ITEM_PENDING)
      bad += out[i] != i + 1000000;
  }
  CHECK(bad == 0);
  CHECK(r.n_ok + r.n_failed == n && r.n_skipped == 0 && r.first_code >= 40);
  if (rank == 0) {
    CHECK(replayed > 0 && replayed < n && r.n_replayed == replayed);
    CHECK(bg_journal_info(d.journal, &ji) == 0 && ji.n_ok + ji.n_failed == n);
    CHECK(bg_journal_close(d.journal) == 0);
  }
  free(rec);

  /* A journal on a rank other than 0, or one rank 0 cannot use, fails the map on every rank
   * together: no rank is left waiting. */
  char mine[80];
  snprintf(mine, sizeof mine, "%s.rank%u", path, rank);
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.task = "mpi-test", o.n = rank == 0 ? n + 1 : n, o.out_size = sizeof *out;
  bg_journal_t *j = NULL;
  CHECK(bg_journal_open(mine, &o, &j, NULL, 0) == 0);
  d.journal = rank == ranks - 1 ? j : NULL;
  int rc = bg_map(mpi, &d, &r);
  CHECK(rank == ranks - 1 ? rc == BG_EINVAL : rc == BG_ETASK && r.first_code == BG_EINVAL);
  d.journal = rank == 0 ? j : NULL; /* of n + 1 items */
  rc = bg_map(mpi, &d, &r);
  CHECK(rank == 0 ? rc == BG_EINVAL : rc == BG_ETASK && r.first_code == BG_EINVAL);
  CHECK(bg_journal_close(j) == 0);
  unlink(mine);
  if (rank == 0)
    unlink(path);
  free(out);
}

/* Values from a seeded generator, with exact ties planted: rows `tie` and `tie + 1` equal. */
static float *vectors(size_t rows, size_t dim, uint64_t seed) {
  float *v = malloc(rows * dim * sizeof *v + 1);
  uint64_t s = seed * 0x9E3779B97F4A7C15u + 1;
  for (size_t i = 0; i < rows * dim; i++) {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    v[i] = (float)((s * 0x2545F4914F6CDD1Du) >> 40) / (float)(1 << 24) - 0.5f;
  }
  return v;
}

/* This rank's slice of rows: uneven (rank r gets a share weighted by r + 1), the last rank
 * empty when there are more than two ranks, to test both. */
static void slice_of(size_t rows, size_t *first, size_t *count) {
  size_t weight = 0, before = 0;
  for (unsigned r = 0; r < ranks; r++)
    weight += (ranks > 2 && r == ranks - 1) ? 0 : r + 1;
  for (unsigned r = 0; r < rank; r++)
    before += (ranks > 2 && r == ranks - 1) ? 0 : r + 1;
  size_t mine = (ranks > 2 && rank == ranks - 1) ? 0 : rank + 1;
  *first = rows * before / weight;
  *count = rows * (before + mine) / weight - *first;
}

static void knn_equals_single(bg_pool_t *mpi, bg_pool_t *local) {
  static const struct {
    size_t rows, dim, queries, k;
    bg_knn_metric_t metric;
    const char *backend;
  } cases[] = {
      {1000, 100, 100, 1, BG_KNN_IP, "blocked"}, {5003, 33, 70, 1, BG_KNN_IP, "auto"},
      {2000, 64, 50, 5, BG_KNN_IP, "naive"},     {3001, 17, 40, 3, BG_KNN_L2, "auto"},
      {999, 128, 31, 4, BG_KNN_COSINE, "auto"},  {4, 8, 5, 4, BG_KNN_IP, "auto"},
  };
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    size_t rows = cases[t].rows, dim = cases[t].dim, nq = cases[t].queries, k = cases[t].k;
    float *db = vectors(rows, dim, 1 + t), *q = vectors(nq, dim, 100 + t);
    /* Exact ties across slice boundaries: copies of one row spread over the database. */
    for (size_t c = 1; c < 4 && rows > 8; c++)
      memcpy(db + (c * rows / 4) * dim, db + (rows / 8) * dim, dim * sizeof *db);
    size_t n = nq * k;
    int64_t *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    float *ws = malloc(n * sizeof *ws), *gs = malloc(n * sizeof *gs);
    bg_knn_desc_t d;
    bg_knn_desc_init(&d);
    d.db = db, d.nb_txt = rows, d.queries = q, d.nb_new = nq, d.dim = dim, d.k = k;
    d.metric = cases[t].metric, d.backend = cases[t].backend, d.idx = want, d.scores = ws;
    CHECK(bg_knn(local, &d, NULL) == 0);
    size_t first, count;
    slice_of(rows, &first, &count);
    d.db = db + first * dim, d.nb_txt = count, d.db_offset = first, d.idx = got, d.scores = gs;
    CHECK(bg_knn(mpi, &d, NULL) == 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
      bad += want[i] != got[i] || ws[i] != gs[i];
    if (bad)
      fprintf(stderr, "rank %u: knn case %zu: %zu of %zu answers differ\n", rank, t, bad, n);
    CHECK(bad == 0);
    free(db), free(q), free(want), free(got), free(ws), free(gs);
  }
  /* Slices that do not follow each other are refused on every rank. */
  float *db = vectors(100, 4, 9), *q = vectors(3, 4, 10);
  int64_t idx[3];
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  d.db = db, d.nb_txt = 10, d.db_offset = 10 * rank + 1, d.queries = q, d.nb_new = 3, d.dim = 4;
  d.k = 1, d.idx = idx;
  CHECK(bg_knn(mpi, &d, NULL) == BG_EINVAL);
  /* One rank without a place for the answer: every rank is refused, none waits. */
  d.db_offset = 10 * rank, d.idx = rank == 0 ? NULL : idx;
  CHECK(bg_knn(mpi, &d, NULL) == BG_EINVAL);
  d.idx = idx;
  /* k beyond the whole database is refused; beyond one slice it is not. */
  d.db_offset = 10 * rank, d.k = 10 * ranks + 1;
  CHECK(bg_knn(mpi, &d, NULL) == BG_EINVAL);
  free(db), free(q);
}

/* bg_dist_max: the largest value over the ranks, on every rank; refused off an mpi pool. */
static void dist_max(bg_pool_t *mpi, bg_pool_t *seq) {
  int64_t v = rank == ranks - 1 ? 7 : -(int64_t)rank;
  CHECK(bg_dist_max(mpi, &v) == 0);
  CHECK(v == 7);
  v = 1;
  CHECK(bg_dist_max(seq, &v) == BG_EBACKEND && v == 1);
  CHECK(bg_dist_max(mpi, NULL) == BG_EINVAL && bg_dist_max(NULL, &v) == BG_EINVAL);
}

int main(void) {
  if (bg_dist_world(&rank, &ranks) != 0) {
    fprintf(stderr, "MPI is not available\n");
    return 77;
  }
  bg_pool_t *mpi = pool_of("mpi", 2), *seq = pool_of("seq", 1), *local = pool_of("threads", 2);
  if (!mpi || !seq || !local)
    return 1;
  catalogue_equals_seq(mpi, seq);
  inputs_and_results(mpi);
  failures_are_reported(mpi);
  statuses_on_rank_0(mpi);
  journal_across_ranks(mpi);
  dist_max(mpi, seq);
  knn_equals_single(mpi, local);
  bg_pool_destroy(mpi), bg_pool_destroy(seq), bg_pool_destroy(local);
  if (rank == 0 && failures == 0)
    printf("mpi: %u ranks, all checks passed\n", ranks);
  return failures ? 1 : 0;
}
