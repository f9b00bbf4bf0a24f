/* SPDX-License-Identifier: MIT */
/* Fuzzes the .npy reader. One body, two drivers, as tests/fuzz/fuzz_opts.c: built with
 * -DBG_LIBFUZZER and -fsanitize=fuzzer it is a libFuzzer target (`make fuzz-npy`; seeds in
 * tests/fuzz/corpus-npy); otherwise main() runs seeded mutations of valid files, a regression test
 * that every build (ASan+UBSan included) runs in CTest.
 *
 * An input is a file's bytes. It is written to a temporary file and opened mapped and copied;
 * whatever the bytes, the reader answers 0 or a documented code with a fault and a message, and
 * an array it accepts has exactly the bytes its shape says, all of them readable. */
#define _GNU_SOURCE
#include "brigade.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INPUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch_path[256];

static void remove_scratch(void) {
  unlink(scratch_path);
}

/* One temporary file per process, rewritten for each input (libFuzzer runs millions), removed
 * at exit. */
static const char *scratch(void) {
  if (!scratch_path[0]) {
    snprintf(scratch_path, sizeof scratch_path, "%s/bg-fuzz-npy-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(scratch_path);
    if (fd < 0)
      abort();
    close(fd);
    atexit(remove_scratch);
  }
  return scratch_path;
}

static void check(const char *path, int copy) {
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.copy = copy;
  o.max_bytes = 1u << 20;
  bg_npy_t *a = NULL;
  bg_npy_error_t e;
  int rc = bg_npy_open(path, &o, &a, &e);
  if (rc != 0) {
    /* A refusal names its fault and says something. */
    if (rc != BG_EFORMAT && rc != BG_ERANGE && rc != BG_ENOMEM && rc != BG_ESYS)
      abort();
    if (e.fault == BG_NPY_NONE || !e.msg[0])
      abort();
    return;
  }
  size_t n = bg_npy_bytes(a), want = bg_npy_dtype(a) == BG_NPY_F32 ? 4 : 8;
  for (int i = 0; i < bg_npy_ndim(a); i++)
    want *= bg_npy_shape(a)[i];
  if (n != want || (n && !bg_npy_data(a)))
    abort();
  /* Every byte is read, so ASan sees a read past the mapping or the copy. */
  const unsigned char *p = bg_npy_data(a);
  unsigned sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += p[i];
  bg_npy_close(a);
  if (sum == 0xdeadbeef) /* keeps the loop from being optimised away */
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT)
    return 0;
  const char *path = scratch();
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    abort();
  check(path, 0);
  check(path, 1);
  return 0;
}

#ifndef BG_LIBFUZZER
static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* Dicts near the edges the parser decides on; each becomes a file of some version. */
static const char *const dicts[] = {
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
    "{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
    "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
    "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }",
    "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1, 1, 1)}",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807,), }",
    "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
};
enum { NDICTS = sizeof dicts / sizeof dicts[0] };

/* A file: a dict in a random version with a random length field now and then, data of about
 * the promised size, then a few bytes changed, cut or repeated. */
static size_t mutate(uint8_t *buf, size_t cap) {
  const char *d = dicts[next() % NDICTS];
  size_t dl = strlen(d), major = 1 + next() % 3, pre = major >= 2 ? 12 : 10;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (uint8_t)major;
  buf[7] = 0;
  size_t hlen = next() % 16 == 0 ? (size_t)(next() & 0xffff) : dl;
  for (size_t i = 0; i < pre - 8; i++)
    buf[8 + i] = (uint8_t)(hlen >> (8 * i));
  memcpy(buf + pre, d, dl);
  size_t len = pre + dl + next() % 64;
  for (size_t i = pre + dl; i < len; i++)
    buf[i] = (uint8_t)next();
  for (unsigned k = (unsigned)(next() % 4); k > 0; k--)
    buf[next() % len] = (uint8_t)next();
  if (next() % 8 == 0)
    len = next() % len;
  return len < cap ? len : cap;
}

int main(int argc, char **argv) {
  long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
  uint8_t buf[MAX_INPUT];
  for (long r = 0; r < rounds; r++)
    LLVMFuzzerTestOneInput(buf, mutate(buf, sizeof buf));
  printf("fuzz_npy: %ld files read\n", rounds);
  return 0;
}
#endif
