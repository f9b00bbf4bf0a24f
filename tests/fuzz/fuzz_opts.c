/* SPDX-License-Identifier: MIT */
/* Fuzzes the option parsers of `brigade bench` and `brigade knn`. One body, two drivers
 * (Concurrency Kit's fuzz_harness pattern): built with -DBG_LIBFUZZER and -fsanitize=fuzzer it is a
 * libFuzzer target (`make fuzz`); otherwise main() runs the seed command lines and a fixed number
 * of seeded mutations of them, a regression test that every build (ASan+UBSan included) runs in
 * CTest.
 *
 * An input is a command line: its first byte picks the command (even: bench, odd: knn), the rest
 * is split into arguments at NUL and newline bytes. */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 96
#define MAX_INPUT 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > MAX_INPUT)
    return 0;
  char buf[MAX_INPUT + 1];
  memcpy(buf, data + 1, size - 1);
  buf[size - 1] = '\0';
  char *argv[MAX_ARGS + 1];
  int argc = 0;
  argv[argc++] = (data[0] & 1) ? "knn" : "bench";
  char *p = buf, *end = buf + size - 1;
  while (p <= end && argc < MAX_ARGS) {
    char *q = p;
    while (q < end && *q != '\0' && *q != '\n')
      q++;
    *q = '\0';
    argv[argc++] = p;
    p = q + 1;
  }
  argv[argc] = NULL;
  int rc = (data[0] & 1) ? cmd_knn_check(argc, argv) : cmd_bench_check(argc, argv);
  /* A parser answers 0 or a usage error; anything else is a bug in the parser. */
  if (rc != 0 && rc != 1 && rc != 2)
    abort();
  return 0;
}

#ifndef BG_LIBFUZZER
/* Words the mutations draw from: every option, values near every bound, lists too long. */
static const char *const words[] = {
    "--suite",
    "--workload",
    "--task",
    "--out-size",
    "--n",
    "--param",
    "--size",
    "--backends",
    "--workers",
    "--repeat",
    "--format",
    "--out",
    "--plot",
    "--max-seconds",
    "--mem-budget",
    "--peers",
    "--python",
    "--peers-dir",
    "--ranks",
    "--timeout",
    "--peer-timeout",
    "--quiet-wait",
    "--shapes",
    "--insights",
    "--nb-txt",
    "--dim",
    "--nb-new",
    "--k",
    "--metric",
    "--dtype",
    "--backend",
    "--seed",
    "--db",
    "--queries",
    "--raw",
    "knn",
    "catalogue",
    "overhead",
    "sleep",
    "prime-range,sleep,alloc",
    "sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,"
    "sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,sleep,"
    "sleep,sleep,sleep",
    "1,2,4,8,16,32,64,128,256,512,1024,2048,4096,1,2,4,8",
    "100Kx768x1000,1x1x1",
    "1x2147483648x1",
    "1Tx1x1,x,1xx1",
    "sweep",
    "auto",
    "0",
    "-1",
    "1",
    "4096",
    "4097",
    "1e308",
    "nan",
    "inf",
    "0.0005",
    "18446744073709551616",
    "99999999999999999999999",
    "1G",
    "1.5G",
    "12Q",
    "",
    ",",
    ",,",
    "threads,procs,openmp,seq",
    "python",
    "json",
    "csv",
    "markdown",
    "x:y",
    ":",
    "lib.so:",
    "f32",
    "f64",
    "l2",
    "cosine",
    "ip",
    "/nonexistent/x",
    "lecture",
    "quick"};
enum { NWORDS = sizeof words / sizeof words[0] };

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* Builds a random command line of words into buf (first byte: the command). */
static size_t mutate(uint8_t *buf, size_t cap) {
  size_t len = 0;
  buf[len++] = (uint8_t)(next() & 1);
  unsigned nargs = (unsigned)(next() % 40);
  for (unsigned a = 0; a < nargs; a++) {
    const char *w = words[next() % NWORDS];
    size_t wl = strlen(w);
    if (len + wl + 1 >= cap)
      break;
    memcpy(buf + len, w, wl);
    /* Sometimes a byte of the word is changed, to reach the parsers' character checks. */
    if (wl && next() % 8 == 0)
      buf[len + next() % wl] = (uint8_t)(next() & 0xff);
    len += wl;
    buf[len++] = '\0';
  }
  return len;
}

int main(int argc, char **argv) {
  /* The parsers' usage messages are expected; thousands of them would drown the test log. */
  if (!freopen("/dev/null", "w", stderr))
    return 1;
  long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
  uint8_t buf[MAX_INPUT];
  for (long r = 0; r < rounds; r++) {
    size_t len = mutate(buf, sizeof buf);
    LLVMFuzzerTestOneInput(buf, len);
  }
  printf("fuzz_opts: %ld command lines parsed\n", rounds);
  return 0;
}
#endif
