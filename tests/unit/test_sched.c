/* SPDX-License-Identifier: MIT */
/* The scheduler hands out every index of its range exactly once, under every policy, worker
 * count and chunk size, whichever workers actually ask. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal/sched.h"

enum { MAXW = 8 };

/* Asks as the workers in `askers` (a bit mask) in turn until all are told "none", then checks
 * that [begin, end) was covered exactly once. */
static void check_cover(bg_schedule_t kind, size_t begin, size_t end, unsigned workers,
                        size_t chunk, unsigned askers) {
  bg__sched_slot *slots = aligned_alloc(BG_CACHELINE, MAXW * sizeof *slots);
  assert_non_null(slots);
  assert_int_equal(bg__sched_slots_init(slots, workers), 0);
  bg__sched s;
  bg__sched_init(&s, kind, begin, end, workers, chunk, 0, slots);
  unsigned char *seen = calloc(end + 1, 1);
  unsigned live = askers;
  while (live) {
    for (unsigned w = 0; w < workers; w++) {
      if (!(live & (1u << w)))
        continue;
      bg__range r;
      if (!bg__sched_next(&s, w, &r)) {
        live &= ~(1u << w);
        continue;
      }
      assert_true(r.begin < r.end);
      assert_true(r.begin >= begin && r.end <= end);
      for (size_t i = r.begin; i < r.end; i++) {
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
      }
    }
  }
  for (size_t i = begin; i < end; i++)
    assert_int_equal(seen[i], 1);
  free(seen);
  bg__sched_slots_fini(slots, workers);
  free(slots);
}

static void every_policy_covers_its_range_once(void **state) {
  (void)state;
  static const unsigned ws[] = {1, 2, 3, 7};
  static const size_t chunks[] = {0, 1, 3, 100};
  static const size_t sizes[] = {0, 1, 7, 1000, 12345};
  for (int k = 0; k < BG_SCHED_COUNT_; k++)
    for (size_t wi = 0; wi < 4; wi++)
      for (size_t ci = 0; ci < 4; ci++)
        for (size_t si = 0; si < 5; si++)
          check_cover((bg_schedule_t)k, 5, 5 + sizes[si], ws[wi], chunks[ci], (1u << ws[wi]) - 1);
}

/* Stealing must finish the map even if only one worker ever shows up. */
static void a_lone_worker_steals_everything(void **state) {
  (void)state;
  check_cover(BG_SCHED_STEAL, 0, 10000, 4, 0, 1u << 2);
  check_cover(BG_SCHED_STEAL, 0, 10000, 4, 7, 1u);
  /* Shared-counter policies need no stealing for that. */
  check_cover(BG_SCHED_AUTO, 0, 10000, 4, 0, 1u << 3);
  check_cover(BG_SCHED_GUIDED, 0, 10000, 4, 0, 1u);
  check_cover(BG_SCHED_DYNAMIC, 0, 10000, 4, 0, 1u);
}

static void static_gives_contiguous_even_blocks(void **state) {
  (void)state;
  bg__sched_slot *slots = aligned_alloc(BG_CACHELINE, 3 * sizeof *slots);
  bg__sched_slots_init(slots, 3);
  bg__sched s;
  bg__sched_init(&s, BG_SCHED_STATIC, 0, 10, 3, 0, 0, slots);
  bg__range r;
  assert_true(bg__sched_next(&s, 0, &r));
  assert_int_equal(r.begin, 0);
  assert_int_equal(r.end, 4);
  assert_true(bg__sched_next(&s, 2, &r));
  assert_int_equal(r.begin, 7);
  assert_int_equal(r.end, 10);
  assert_false(bg__sched_next(&s, 0, &r));
  bg__sched_slots_fini(slots, 3);
  free(slots);
}

static void guided_chunks_shrink(void **state) {
  (void)state;
  bg__sched_slot *slots = aligned_alloc(BG_CACHELINE, 2 * sizeof *slots);
  bg__sched_slots_init(slots, 2);
  bg__sched s;
  bg__sched_init(&s, BG_SCHED_GUIDED, 0, 1000, 2, 0, 0, slots);
  bg__range r;
  size_t last = SIZE_MAX;
  while (bg__sched_next(&s, 0, &r)) {
    assert_true(r.end - r.begin <= last);
    last = r.end - r.begin;
  }
  assert_int_equal(last, 1);
  bg__sched_slots_fini(slots, 2);
  free(slots);
}

static void halt_stops_every_worker(void **state) {
  (void)state;
  bg__sched_slot *slots = aligned_alloc(BG_CACHELINE, 2 * sizeof *slots);
  bg__sched_slots_init(slots, 2);
  for (int k = 0; k < BG_SCHED_COUNT_; k++) {
    bg__sched s;
    bg__sched_init(&s, (bg_schedule_t)k, 0, 1000, 2, 1, 0, slots);
    bg__range r;
    assert_true(bg__sched_next(&s, 0, &r));
    bg__sched_halt(&s);
    assert_false(bg__sched_next(&s, 0, &r));
    assert_false(bg__sched_next(&s, 1, &r));
  }
  bg__sched_slots_fini(slots, 2);
  free(slots);
}

/* Auto grows its chunks from the seed when items are fast, and the tail cap keeps the last
 * chunks small enough to balance. */
static void auto_grows_chunks_for_fast_items(void **state) {
  (void)state;
  bg__sched_slot *slots = aligned_alloc(BG_CACHELINE, 2 * sizeof *slots);
  bg__sched_slots_init(slots, 2);
  bg__sched s;
  bg__sched_init(&s, BG_SCHED_AUTO, 0, 1u << 24, 2, 0, 1, slots);
  bg__range r;
  size_t biggest = 0, n = 0, last = 0;
  while (bg__sched_next(&s, 0, &r)) {
    last = r.end - r.begin;
    biggest = last > biggest ? last : biggest;
    n++;
  }
  assert_true(biggest >= 1024);
  assert_true(last <= 2);
  assert_true(n < (1u << 24) / 64);
  bg__sched_slots_fini(slots, 2);
  free(slots);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_policy_covers_its_range_once),
      cmocka_unit_test(a_lone_worker_steals_everything),
      cmocka_unit_test(static_gives_contiguous_even_blocks),
      cmocka_unit_test(guided_chunks_shrink),
      cmocka_unit_test(halt_stops_every_worker),
      cmocka_unit_test(auto_grows_chunks_for_fast_items),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
