/* SPDX-License-Identifier: MIT */
/* Stress: several threads sharing pools of every backend and schedule, random item counts and
 * costs, failures, maps in a tight loop, pools created and destroyed while others run. Built
 * also under ThreadSanitizer (make sanitize), where any data race fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "brigade.h"

enum { MAXN = 4096 };

/* xorshift: each thread its own seed, so runs are repeatable per seed. */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Item i spins for (i * 7919) % spread iterations and fails when i % fail_every == 1. */
typedef struct load {
  unsigned spread, fail_every;
} load;

static int busy_item(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  const load *l = ctx;
  volatile uint64_t x = i;
  for (unsigned k = 0; k < (i * 7919) % l->spread; k++)
    x = x * 31 + k;
  if (l->fail_every && i % l->fail_every == 1)
    return 3;
  *(uint64_t *)out = i ^ 0x5a5a;
  return 0;
}

static void one_map(bg_pool_t *p, uint64_t *seed) {
  uint64_t out[MAXN];
  load l = {.spread = 1 + (unsigned)(rnd(seed) % 2000),
            .fail_every = rnd(seed) % 4 == 0 ? 2 + (unsigned)(rnd(seed) % 50) : 0};
  size_t n = (size_t)(rnd(seed) % MAXN);
  memset(out, 0, sizeof out);
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = busy_item;
  d.ctx = &l;
  d.n = n;
  d.out = out;
  d.out_size = sizeof out[0];
  bg_map_report_t r;
  int rc = bg_map(p, &d, &r);
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    if (l.fail_every && i % l.fail_every == 1) {
      failed++;
      assert_true(out[i] == 0);
    } else {
      assert_true(out[i] == (i ^ 0x5a5a));
    }
  }
  assert_int_equal(rc, failed ? BG_ETASK : 0);
  assert_int_equal(r.n_failed, failed);
  assert_int_equal(r.n_ok, n - failed);
  if (failed)
    assert_int_equal(r.first_failed, 1);
}

typedef struct shared {
  bg_pool_t *p;
  uint64_t seed;
  int maps;
} shared;

static void *hammer(void *arg) {
  shared *s = arg;
  for (int m = 0; m < s->maps; m++)
    one_map(s->p, &s->seed);
  return NULL;
}

static void threads_share_every_kind_of_pool(void **state) {
  (void)state;
  static const char *const backends[] = {"threads", "openmp", "seq"};
  for (size_t b = 0; b < 3; b++) {
    for (int s = 0; s < BG_SCHED_COUNT_; s++) {
      bg_pool_opts_t o;
      bg_pool_opts_init(&o);
      o.backend = backends[b];
      o.schedule = (bg_schedule_t)s;
      o.workers = 3;
      bg_pool_t *p;
      int rc = bg_pool_create(&o, &p);
      if (rc == BG_ENOTSUP)
        continue;
      assert_int_equal(rc, 0);
      pthread_t t[3];
      shared sh[3];
      for (int k = 0; k < 3; k++) {
        sh[k] = (shared){.p = p, .seed = 0x9e3779b97f4a7c15u * (uint64_t)(k + 1 + s), .maps = 20};
        assert_int_equal(pthread_create(&t[k], NULL, hammer, &sh[k]), 0);
      }
      for (int k = 0; k < 3; k++)
        pthread_join(t[k], NULL);
      bg_pool_destroy(p);
    }
  }
}

static int ident(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = i;
  return 0;
}

static void ten_thousand_maps_in_a_row(void **state) {
  (void)state;
  for (int s = 0; s < BG_SCHED_COUNT_; s++) {
    bg_pool_opts_t o;
    bg_pool_opts_init(&o);
    o.backend = "threads";
    o.schedule = (bg_schedule_t)s;
    o.workers = 2;
    bg_pool_t *p;
    assert_int_equal(bg_pool_create(&o, &p), 0);
    uint64_t out[256];
    bg_map_desc_t d;
    bg_map_desc_init(&d);
    d.fn = ident;
    d.out = out;
    d.out_size = sizeof out[0];
    for (int m = 0; m < 10000; m++) {
      d.n = 1 + (size_t)(m * 37) % 256;
      assert_int_equal(bg_map(p, &d, NULL), 0);
      assert_true(out[d.n - 1] == d.n - 1);
      assert_true(out[0] == 0);
    }
    bg_pool_destroy(p);
  }
}

static void *churn(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  for (int k = 0; k < 30; k++) {
    bg_pool_opts_t o;
    bg_pool_opts_init(&o);
    o.workers = 1 + (unsigned)(rnd(&seed) % 4);
    o.schedule = (bg_schedule_t)(rnd(&seed) % BG_SCHED_COUNT_);
    bg_pool_t *p;
    assert_int_equal(bg_pool_create(&o, &p), 0);
    one_map(p, &seed);
    one_map(p, &seed);
    bg_pool_destroy(p);
  }
  return NULL;
}

static void pools_come_and_go_concurrently(void **state) {
  (void)state;
  pthread_t t[2];
  for (uintptr_t k = 0; k < 2; k++)
    assert_int_equal(pthread_create(&t[k], NULL, churn, (void *)(k * 7 + 11)), 0);
  for (int k = 0; k < 2; k++)
    pthread_join(t[k], NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(threads_share_every_kind_of_pool),
      cmocka_unit_test(ten_thousand_maps_in_a_row),
      cmocka_unit_test(pools_come_and_go_concurrently),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
