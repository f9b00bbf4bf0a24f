/* SPDX-License-Identifier: MIT */
/* A user task for `brigade bench --task`: change the function, rebuild, rerun. This one sums
 * the digits of i squared, a little CPU work per item, and fails on no item.
 *
 *   cc -O2 -shared -fPIC -o libmytask.so mytask.c
 *   brigade bench --task ./libmytask.so:digit_sum --n 1000000
 *
 * The signature is bg_map's: write the result to out (out_size bytes, 8 unless --out-size says
 * otherwise), read nothing from in (the items are the indices 0..n-1), return 0 on success and
 * anything else to mark item i failed. ctx is NULL. */
#include <stddef.h>
#include <stdint.h>

int digit_sum(void *out, const void *in, size_t i, void *ctx);
int fail_on_seven(void *out, const void *in, size_t i, void *ctx);

int digit_sum(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  uint64_t x = (uint64_t)i * i, s = 0;
  for (; x; x /= 10)
    s += x % 10;
  *(uint64_t *)out = s;
  return 0;
}

/* Fails every item whose index ends in 7, to show how failures are reported. */
int fail_on_seven(void *out, const void *in, size_t i, void *ctx) {
  if (i % 10 == 7)
    return 7;
  return digit_sum(out, in, i, ctx);
}
