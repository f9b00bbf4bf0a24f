/* SPDX-License-Identifier: MIT */
/* Native functions for the Python tests, compiled by conftest.py: each has brigade's task
 * signature int fn(void *out, const void *in, size_t i, void *ctx). */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int square(void *out, const void *in, size_t i, void *ctx);
int fail_on_seven(void *out, const void *in, size_t i, void *ctx);
int row_sum(void *out, const void *in, size_t i, void *ctx);
int add_ctx(void *out, const void *in, size_t i, void *ctx);
int misbehave(void *out, const void *in, size_t i, void *ctx);
int nothing(void *out, const void *in, size_t i, void *ctx);

int square(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  int64_t v = (int64_t)i * (int64_t)i;
  memcpy(out, &v, sizeof v);
  return 0;
}

/* Items whose last digit is 7 fail with code 7. */
int fail_on_seven(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  int64_t v = (int64_t)i;
  memcpy(out, &v, sizeof v);
  return i % 10 == 7 ? 7 : 0;
}

/* The sum of a row of 4 doubles. */
int row_sum(void *out, const void *in, size_t i, void *ctx) {
  (void)i, (void)ctx;
  double r[4], s = 0;
  memcpy(r, in, sizeof r);
  for (int k = 0; k < 4; k++)
    s += r[k];
  memcpy(out, &s, sizeof s);
  return 0;
}

/* i plus the int64 in the context. */
int add_ctx(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  int64_t v;
  memcpy(&v, ctx, sizeof v);
  v += (int64_t)i;
  memcpy(out, &v, sizeof v);
  return 0;
}

/* Item 3 segfaults, item 5 exits with status 9, item 8 hangs; the others return i. */
int misbehave(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 3)
    raise(SIGSEGV);
  if (i == 5)
    _exit(9);
  if (i == 8)
    for (;;)
      pause();
  int64_t v = (int64_t)i;
  memcpy(out, &v, sizeof v);
  return 0;
}

/* The cheapest task: for the per-item overhead. */
int nothing(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  return 0;
}

/* About @ctx microseconds of arithmetic (ctx: an int64), for maps long enough to watch. */
int spin(void *out, const void *in, size_t i, void *ctx);

int spin(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  int64_t us;
  memcpy(&us, ctx, sizeof us);
  volatile uint64_t x = i;
  for (int64_t k = 0; k < us * 300; k++)
    x = x * 6364136223846793005u + 1442695040888963407u;
  uint64_t v = x;
  memcpy(out, &v, sizeof v);
  return 0;
}

/* 1 when i is prime, by trial division (the lecture's prime-range work), as an int8. */
int is_prime(void *out, const void *in, size_t i, void *ctx);

int is_prime(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  int8_t p = i >= 2;
  for (size_t d = 2; p && d * d <= i; d++)
    p = i % d != 0;
  memcpy(out, &p, 1);
  return 0;
}
