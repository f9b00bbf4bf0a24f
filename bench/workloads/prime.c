/* SPDX-License-Identifier: MIT */
/* Trial division, the lecture's f(n). The fixed variant reads its number through ctx so the
 * compiler cannot fold the whole loop into a constant. */
#include "prime.h"

#include <math.h>
#include <stdint.h>

int bench_is_prime(unsigned long n) {
  if (n < 2)
    return 0;
  if (n == 2)
    return 1;
  if (n % 2 == 0)
    return 0;
  unsigned long r = (unsigned long)floor(sqrt((double)n));
  for (unsigned long d = 3; d <= r; d += 2)
    if (n % d == 0)
      return 0;
  return 1;
}

int bench_prime_fixed(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)i;
  int p = bench_is_prime(*(const volatile unsigned long *)ctx);
  if (out)
    *(uint8_t *)out = (uint8_t)p;
  return 0;
}

int bench_prime_range(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  int p = bench_is_prime((unsigned long)i);
  if (out)
    *(uint8_t *)out = (uint8_t)p;
  return 0;
}
