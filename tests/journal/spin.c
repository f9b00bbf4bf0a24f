/* SPDX-License-Identifier: MIT */
/* The task of the journal's kill test: about 50 us of arithmetic per item, a result that
 * depends only on the index, and, when BG_RUNLOG names a file, one line "i" appended to it each
 * time item i runs, so the test can tell which items ran in which run. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int spin_hash(void *out, const void *in, size_t i, void *ctx);

int spin_hash(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  const char *log = getenv("BG_RUNLOG");
  if (log) {
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      return 1;
    char line[32];
    int len = snprintf(line, sizeof line, "%zu\n", i);
    ssize_t put = write(fd, line, (size_t)len);
    close(fd);
    if (put != len)
      return 1;
  }
  uint64_t x = i * 0x9e3779b97f4a7c15u + 1;
  for (int k = 0; k < 20000; k++)
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  memcpy(out, &x, sizeof x);
  return 0;
}

int first_value(void *out, const void *in, size_t i, void *ctx);
int hang_on_three(void *out, const void *in, size_t i, void *ctx);

/* The item's first 8 bytes as its result: `--in` rows reach the function. */
int first_value(void *out, const void *in, size_t i, void *ctx) {
  (void)i, (void)ctx;
  memcpy(out, in, 8);
  return 0;
}

/* Item 3 never returns (a timeout kills it); the others return their index. */
int hang_on_three(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 3)
    for (;;)
      pause();
  uint64_t v = i;
  memcpy(out, &v, sizeof v);
  return 0;
}

int crash_on_five(void *out, const void *in, size_t i, void *ctx);

/* Item 5 dies of SIGSEGV; the others return their index. */
int crash_on_five(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  if (i == 5)
    raise(SIGSEGV);
  uint64_t v = i;
  memcpy(out, &v, sizeof v);
  return 0;
}
