/* SPDX-License-Identifier: MIT */
/* The procs backends' accounting when workers are killed from outside at random moments (the
 * OOM killer, an operator's kill -9, the timeout's SIGKILL landing just as an item ends): with
 * retries to spare, every item ends OK exactly once, with the right result. A kill that falls
 * between a worker recording an item and its slot moving on once made the item run and count
 * twice (n_ok above n), which ThreadSanitizer's slow CI run hit through the timeout. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

/* Items are cheap, so that a kill often lands between two of them, where the bookkeeping is. */
enum { N = 1000000, KILLS = 200, MAPS_MAX = 100 };

/* Shared with the workers: the pid of the last one to run an item. */
typedef struct board {
  _Atomic int pid;
} board;

typedef struct killer {
  board *b;
  atomic_int stop;
  atomic_int kills;
} killer;

/* The context the persistent mode copies into its workers: the board's address (mapped before
 * any worker is forked, so valid in each). */
typedef struct where {
  board *b;
} where;

static int square(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  board *b = ((const where *)ctx)->b;
  if ((i & 255) == 0)
    atomic_store_explicit(&b->pid, (int)getpid(), memory_order_relaxed);
  *(uint64_t *)out = (uint64_t)i * i;
  return 0;
}

/* SIGKILLs the worker last seen, every 0.2 to 2 ms, until told to stop. */
static void *kill_loop(void *arg) {
  killer *k = arg;
  unsigned seed = 12345;
  while (!atomic_load(&k->stop)) {
    struct timespec ts = {0, 200000 + (long)(rand_r(&seed) % 1800000)};
    nanosleep(&ts, NULL);
    int pid = atomic_exchange(&k->b->pid, 0);
    if (pid > 0 && pid != (int)getpid() && kill(pid, SIGKILL) == 0)
      atomic_fetch_add(&k->kills, 1);
  }
  return NULL;
}

/* Runs maps on one pool until the killer has killed KILLS workers; checks each map. */
static void run_killed(const char *backend) {
  board *b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(b != MAP_FAILED);
  atomic_init(&b->pid, 0);
  uint64_t *out = malloc(N * sizeof *out);
  bg_item_status_t *status = malloc(N * sizeof *status);
  assert_non_null(out);
  assert_non_null(status);
  bg_pool_t *p = tk_pool(backend, 2);
  where at = {b};
  bg_map_desc_t d = tk_desc(square, &at, N, out, sizeof *out);
  d.ctx_size = sizeof at;
  d.status = status;
  d.retries = 1000000; /* every killed item runs again */
  d.breaker = 0;       /* the kills are a storm of one cause, on purpose */
  killer k = {.b = b};
  atomic_init(&k.stop, 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, kill_loop, &k), 0);
  size_t started = 0, retries = 0;
  int maps = 0;
  for (; maps < MAPS_MAX && atomic_load(&k.kills) < KILLS; maps++) {
    memset(out, 0, N * sizeof *out);
    memset(status, 0, N * sizeof *status);
    bg_map_report_t r;
    assert_int_equal(bg_map(p, &d, &r), 0);
    assert_int_equal(r.n_ok, N);
    assert_int_equal(r.n_failed, 0);
    assert_int_equal(r.n_skipped, 0);
    for (size_t i = 0; i < N; i++)
      if (out[i] != (uint64_t)i * i || status[i].state != BG_ITEM_OK)
        fail_msg("%s: item %zu: result %llu, state %s", backend, i, (unsigned long long)out[i],
                 bg_item_state_name(status[i].state));
    started += r.workers_started;
    retries += r.n_retries;
  }
  atomic_store(&k.stop, 1);
  pthread_join(t, NULL);
  printf("%s: %d maps, %d workers killed, %zu processes started, %zu items re-run\n", backend, maps,
         atomic_load(&k.kills), started, retries);
  bg_pool_destroy(p);
  free(out);
  free(status);
  munmap(b, sizeof *b);
  tk_assert_no_children();
}

static void test_killed_shm(void **st) {
  (void)st;
  run_killed("procs");
}

static void test_killed_copy(void **st) {
  (void)st;
  run_killed("procs-copy");
}

static void test_killed_persistent(void **st) {
  (void)st;
  run_killed("procs-persistent");
}

/* Item 50 plays a job scheduler stopping the job (scancel, a time limit, systemd): SIGTERM to
 * the parent and to the worker alike. */
static int term_all(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 50) {
    kill(getppid(), SIGTERM);
    raise(SIGTERM);
  }
  usleep(200);
  *(uint64_t *)out = i;
  return 0;
}

/* The map stops (BG_ECANCELED), and the item whose worker the stopping signal ended is pending,
 * not crashed: recorded as a crash, a resumed map would keep it as a failure (a Slurm array
 * cancelled mid-run once did). */
static void run_term_to_all(const char *backend) {
  enum { M = 400 };
  bg_pool_t *p = tk_pool(backend, 2);
  uint64_t out[M];
  bg_item_status_t status[M];
  bg_map_desc_t d = tk_desc(term_all, NULL, M, out, sizeof out[0]);
  d.status = status;
  bg_map_report_t r;
  assert_int_equal(bg_map(p, &d, &r), BG_ECANCELED);
  assert_int_equal(r.interrupted, 1);
  assert_int_equal(r.n_failed, 0);
  assert_int_equal(r.n_crashed, 0);
  assert_int_equal(status[50].state, BG_ITEM_PENDING);
  for (size_t i = 0; i < M; i++)
    if (status[i].state == BG_ITEM_OK)
      assert_int_equal(out[i], i);
  bg_pool_destroy(p);
  tk_assert_no_children();
}

static void test_term_to_all(void **st) {
  (void)st;
  if (TK_TSAN)
    skip();
  run_term_to_all("procs");
  run_term_to_all("procs-copy");
  run_term_to_all("procs-persistent");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_term_to_all),
      cmocka_unit_test(test_killed_shm),
      cmocka_unit_test(test_killed_copy),
      cmocka_unit_test(test_killed_persistent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
