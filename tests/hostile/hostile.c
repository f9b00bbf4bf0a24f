/* SPDX-License-Identifier: MIT */
/* Hostile --task plug-ins for the bench's supervision tests: functions that crash, abort, call
 * exit(), spin, sleep forever, write past their result, or fail every item. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int segv_some(void *out, const void *in, size_t i, void *ctx);
int abort_one(void *out, const void *in, size_t i, void *ctx);
int exit_one(void *out, const void *in, size_t i, void *ctx);
int exit_zero(void *out, const void *in, size_t i, void *ctx);
int spin_one(void *out, const void *in, size_t i, void *ctx);
int sleep_one(void *out, const void *in, size_t i, void *ctx);
int mixed(void *out, const void *in, size_t i, void *ctx);
int fail_all(void *out, const void *in, size_t i, void *ctx);
int write_16(void *out, const void *in, size_t i, void *ctx);
int write_far(void *out, const void *in, size_t i, void *ctx);
int spawn_sleeper(void *out, const void *in, size_t i, void *ctx);
int noisy(void *out, const void *in, size_t i, void *ctx);

/* Not a function: `--task lib:not_a_function` must be refused, not called. */
int not_a_function = 42;

static int ok(void *out, size_t i) {
  uint64_t v = i * 2654435761u;
  memcpy(out, &v, sizeof v);
  return 0;
}

static void crash(void) {
  raise(SIGSEGV);
}

/* Items 13, 1013, 2013, ...: SIGSEGV. */
int segv_some(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i % 1000 == 13)
    crash();
  return ok(out, i);
}

int abort_one(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 13)
    abort();
  return ok(out, i);
}

int exit_one(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 42)
    exit(3);
  return ok(out, i);
}

/* exit(0) in one item: a script must not read the bench's exit status as success. */
int exit_zero(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 3)
    exit(0);
  return ok(out, i);
}

int spin_one(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 5)
    for (volatile int forever = 1; forever;)
      ;
  return ok(out, i);
}

int sleep_one(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 7)
    for (;;)
      pause();
  return ok(out, i);
}

/* The plug-in: 4 items segfault, 4 abort, 2 call exit(5), one hangs, 10 return 9. */
int mixed(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i % 2500 == 13)
    crash();
  if (i % 2500 == 1000)
    abort();
  if (i % 5000 == 77)
    exit(5);
  if (i == 9000)
    for (;;)
      pause();
  if (i % 1000 == 500)
    return 9;
  return ok(out, i);
}

int fail_all(void *out, const void *in, size_t i, void *ctx) {
  (void)out, (void)in, (void)i, (void)ctx;
  return 1;
}

/* 16 bytes into a result the bench was told (--out-size 4) is 4 bytes. */
int write_16(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  memset(out, (int)(i & 0xff), 16);
  return 0;
}

/* 64 KiB: far past any guard bytes. */
int write_far(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  memset(out, (int)(i & 0xff), 65536);
  return 0;
}

/* Item 0 leaves a process behind (it sleeps for a long time); the bench must not let it
 * outlive the row. */
int spawn_sleeper(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 0 && fork() == 0) {
    execlp("sleep", "sleep", "373", (char *)NULL);
    _exit(127);
  }
  return ok(out, i);
}

/* Prints a lot: the report on standard output must stay parseable. */
int noisy(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  for (int k = 0; k < 200; k++)
    printf("noise %zu %d {\"schema\": 0}\n", i, k);
  return ok(out, i);
}
