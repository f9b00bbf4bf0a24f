/* SPDX-License-Identifier: MIT */
/* The .npy API: arrays written and read back are identical in every dtype and rank, mapped or
 * copied, from a file or a FIFO; the header is byte for byte what NumPy writes; every refusal
 * (magic, version, header, dtype, order, shape, raw size, bound, truncation, arguments) returns
 * its code and fault with a message naming the file; a large file is mapped without costing
 * heap; a failed write leaves the previous file and no temporary. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"
#include "internal/afile.h"

static char root[256];

static int setup(void **st) {
  (void)st;
  return tk_mkdtemp(root, sizeof root, "bg-npy");
}

static int teardown(void **st) {
  (void)st;
  return tk_rmtree(root);
}

static const char *path_of(const char *name) {
  static char buf[4][512];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", root, name);
  return p;
}

static void put(const char *name, const void *bytes, size_t n) {
  FILE *f = fopen(path_of(name), "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

/* A file with magic, version major.0, a header length field of hlen (the dict's own length
 * when hlen is 0) and the dict, followed by data bytes of zeros. */
static void put_npy(const char *name, int major, const char *dict, size_t hlen, size_t data) {
  size_t dl = strlen(dict), pre = major >= 2 ? 12 : 10;
  unsigned char *b = calloc(1, pre + dl + data);
  assert_non_null(b);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)major;
  hlen = hlen ? hlen : dl;
  for (size_t i = 0; i < pre - 8; i++)
    b[8 + i] = (unsigned char)(hlen >> (8 * i));
  memcpy(b + pre, dict, dl);
  put(name, b, pre + dl + data);
  free(b);
}

/* Opens name with o and expects code and fault, and a message that names the file and says
 * what. */
static void refused(const char *name, const bg_npy_opts_t *o, int code, bg_npy_fault_t fault,
                    const char *what) {
  bg_npy_t *a = (bg_npy_t *)&a; /* must stay untouched */
  bg_npy_error_t e;
  assert_int_equal(bg_npy_open(path_of(name), o, &a, &e), code);
  assert_ptr_equal(a, (bg_npy_t *)&a);
  assert_int_equal(e.fault, fault);
  assert_non_null(strstr(e.msg, name));
  if (!strstr(e.msg, what))
    fail_msg("'%s' does not say '%s'", e.msg, what);
}

/* The names in root that start with a dot: temporaries left behind. */
static int temporaries(void) {
  DIR *d = opendir(root);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

/* The atomic writer's temporary has no name until it is whole (O_TMPFILE, where the file system
 * has it: ext4 and tmpfs do), so a SIGKILL, which no handler sees, leaves nothing: no entry
 * appears until commit, which then leaves the destination only; bg__afile_link gives it a second
 * name (the journal's create-if-absent) and refuses an existing one; discarding leaves nothing.
 * A temporary asked to be named (gnuplot writes it by name) is there from the start. */
static void temporaries_have_no_name_until_whole(void **state) {
  (void)state;
  bg__afile_t f;
  char err[256];
  assert_int_equal(bg__afile_prepare(&f, path_of("whole.bin"), err, sizeof err), 0);
  assert_int_equal(bg__afile_create(&f, err, sizeof err), 0);
  if (!f.unnamed) {
    bg__afile_discard(&f);
    skip(); /* a file system without O_TMPFILE: the named temporary, as before */
  }
  assert_int_equal(temporaries(), 0);
  assert_int_equal(write(f.fd, "whole", 5), 5);
  assert_int_equal(bg__afile_link(&f, path_of("also.bin")), 0);
  assert_int_equal(bg__afile_link(&f, path_of("also.bin")), -1);
  assert_int_equal(errno, EEXIST);
  assert_int_equal(bg__afile_commit(&f, err, sizeof err), 0);
  assert_int_equal(temporaries(), 0);
  char got[8] = {0};
  int fd = open(path_of("whole.bin"), O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(read(fd, got, sizeof got), 5);
  close(fd);
  assert_string_equal(got, "whole");
  struct stat a, b;
  assert_int_equal(stat(path_of("whole.bin"), &a), 0);
  assert_int_equal(stat(path_of("also.bin"), &b), 0);
  assert_true(a.st_ino == b.st_ino);
  assert_int_equal(bg__afile_prepare(&f, path_of("gone.bin"), err, sizeof err), 0);
  assert_int_equal(bg__afile_create(&f, err, sizeof err), 0);
  bg__afile_discard(&f);
  assert_int_equal(temporaries(), 0);
  assert_int_equal(access(path_of("gone.bin"), F_OK), -1);
  assert_int_equal(bg__afile_prepare(&f, path_of("named.bin"), err, sizeof err), 0);
  f.named = 1;
  assert_int_equal(bg__afile_create(&f, err, sizeof err), 0);
  assert_int_equal(temporaries(), 1);
  assert_int_equal(access(f.tmp, F_OK), 0);
  bg__afile_discard(&f);
  assert_int_equal(temporaries(), 0);
  unlink(path_of("whole.bin"));
  unlink(path_of("also.bin"));
}

static void round_trip_every_dtype_and_rank(void **state) {
  (void)state;
  float f[6] = {1.5f, -2, 3, 4, 5, 6.25f};
  double d[4] = {1e300, -0.0, 3, 4};
  int64_t i[1] = {-42};
  int64_t big[24];
  for (int k = 0; k < 24; k++)
    big[k] = k * 1000003;
  const struct {
    bg_npy_dtype_t t;
    int ndim;
    size_t shape[3];
    const void *data;
    size_t bytes;
  } cases[] = {{BG_NPY_F32, 2, {2, 3}, f, sizeof f},
               {BG_NPY_F64, 1, {4}, d, sizeof d},
               {BG_NPY_I64, 0, {0}, i, sizeof i},
               {BG_NPY_I64, 3, {2, 3, 4}, big, sizeof big},
               {BG_NPY_F32, 2, {0, 3}, NULL, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int copy = 0; copy < 2; copy++) {
      bg_npy_error_t e;
      assert_int_equal(bg_npy_write(path_of("rt.npy"), cases[c].t, cases[c].ndim, cases[c].shape,
                                    cases[c].data, &e),
                       0);
      assert_int_equal(e.fault, BG_NPY_NONE);
      assert_string_equal(e.msg, "");
      bg_npy_opts_t o;
      bg_npy_opts_init(&o);
      o.copy = copy;
      bg_npy_t *a = NULL;
      assert_int_equal(bg_npy_open(path_of("rt.npy"), &o, &a, &e), 0);
      assert_int_equal(bg_npy_dtype(a), cases[c].t);
      assert_int_equal(bg_npy_ndim(a), cases[c].ndim);
      for (int k = 0; k < cases[c].ndim; k++)
        assert_int_equal(bg_npy_shape(a)[k], cases[c].shape[k]);
      assert_int_equal(bg_npy_bytes(a), cases[c].bytes);
      if (cases[c].bytes) {
        assert_memory_equal(bg_npy_data(a), cases[c].data, cases[c].bytes);
        assert_int_equal((uintptr_t)bg_npy_data(a) % 16, 0);
        assert_int_equal(bg_npy_mapped(a), !copy);
      } else {
        assert_null(bg_npy_data(a));
        assert_int_equal(bg_npy_mapped(a), 0);
      }
      bg_npy_close(a);
    }
  assert_int_equal(temporaries(), 0);
  bg_npy_close(NULL);
}

/* The preamble NumPy writes for np.save(np.zeros((2, 3), np.int64)) and for a 1-D array: a
 * 1-tuple keeps its comma, and the data starts on a 64-byte boundary (here 128). */
static void header_is_what_numpy_writes(void **state) {
  (void)state;
  int64_t v[6] = {0};
  assert_int_equal(bg_npy_write(path_of("h.npy"), BG_NPY_I64, 2, (size_t[]){2, 3}, v, NULL), 0);
  char want[128];
  memset(want, ' ', sizeof want);
  memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
  const char *dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";
  memcpy(want + 10, dict, strlen(dict));
  want[127] = '\n';
  char got[128 + 48];
  FILE *f = fopen(path_of("h.npy"), "rb");
  assert_int_equal(fread(got, 1, sizeof got, f), sizeof got);
  assert_int_equal(fgetc(f), EOF);
  fclose(f);
  assert_memory_equal(got, want, 128);

  assert_int_equal(bg_npy_write(path_of("h1.npy"), BG_NPY_F32, 1, (size_t[]){0}, NULL, NULL), 0);
  f = fopen(path_of("h1.npy"), "rb");
  assert_int_equal(fread(got, 1, 128, f), 128);
  fclose(f);
  assert_memory_equal(got + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 57);
}

static void dtype_names(void **state) {
  (void)state;
  assert_string_equal(bg_npy_dtype_name(BG_NPY_F32), "f32");
  assert_string_equal(bg_npy_dtype_name(BG_NPY_F64), "f64");
  assert_string_equal(bg_npy_dtype_name(BG_NPY_I64), "i64");
  assert_string_equal(bg_npy_dtype_name(BG_NPY_DTYPE_COUNT_), "?");
  assert_int_equal(BG_NPY_F32, BG_F32);
  assert_int_equal(BG_NPY_F64, BG_F64);
}

static void versions_two_and_three_are_read(void **state) {
  (void)state;
  const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }    \n";
  for (int major = 2; major <= 3; major++) {
    put_npy("v.npy", major, dict, 0, 16);
    bg_npy_t *a = NULL;
    assert_int_equal(bg_npy_open(path_of("v.npy"), NULL, &a, NULL), 0);
    assert_int_equal(bg_npy_shape(a)[0], 2);
    /* 12 + 62 bytes of header: the data is not 16-byte aligned, so it is copied. */
    assert_int_equal(bg_npy_mapped(a), 0);
    assert_int_equal((uintptr_t)bg_npy_data(a) % 16, 0);
    bg_npy_close(a);
  }
}

static void bad_magic_and_version(void **state) {
  (void)state;
  put("bad.npy", "not numpy at all", 16);
  refused("bad.npy", NULL, BG_EFORMAT, BG_NPY_MAGIC, "not a .npy file");
  put("tiny.npy", "\x93NUMPY", 6);
  refused("tiny.npy", NULL, BG_EFORMAT, BG_NPY_MAGIC, "no \\x93NUMPY magic");
  put_npy("v4.npy", 4, "{}", 0, 0);
  refused("v4.npy", NULL, BG_EFORMAT, BG_NPY_VERSION, "version 4.0 is not one brigade reads");
  put("v11.npy", "\x93NUMPY\x01\x01\x02\x00{}", 12);
  refused("v11.npy", NULL, BG_EFORMAT, BG_NPY_VERSION, "version 1.1");
}

static void truncated_or_oversized_header(void **state) {
  (void)state;
  const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  put_npy("th.npy", 1, dict, strlen(dict) + 100, 0);
  refused("th.npy", NULL, BG_EFORMAT, BG_NPY_HEADER, "truncated or oversized header");
  put("th2.npy", "\x93NUMPY\x02\x00\x10\x00", 10);
  refused("th2.npy", NULL, BG_EFORMAT, BG_NPY_HEADER, "truncated header");
  /* A 2 MiB length field: refused before anything that size is allocated or read. */
  put_npy("long.npy", 2, dict, 2u << 20, 0);
  refused("long.npy", NULL, BG_EFORMAT, BG_NPY_HEADER, "oversized");
}

static void header_not_the_dict_numpy_writes(void **state) {
  (void)state;
  const char *bad[][2] = {
      {"{'descr': '<f4', 'fortran_order': False}", "is not the dict NumPy writes"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
       "unexpected or repeated key 'descr'"},
      {"{'x': 1, 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
       "unexpected or repeated key 'x'"},
      {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}",
       "value of key 'fortran_order' is not what NumPy writes (True or False)"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing", "is not the dict"},
      {"['descr', '<f4']", "is not the dict"},
      {"{'descr': '<\\f4', 'fortran_order': False, 'shape': (2,)}", "value of key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", "value of key 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
       "value of key 'shape' is not what NumPy writes (a tuple of whole numbers below 2^63)"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1e5, 17)}", "value of key 'shape'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    put_npy("dict.npy", 1, bad[i][0], 0, 64);
    refused("dict.npy", NULL, BG_EFORMAT, BG_NPY_HEADER, bad[i][1]);
  }
}

static void fortran_order_refused(void **state) {
  (void)state;
  put_npy("f.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 0, 16);
  refused("f.npy", NULL, BG_EFORMAT, BG_NPY_ORDER, "Fortran-ordered array");
}

static void unsupported_dtypes_refused_by_name(void **state) {
  (void)state;
  put_npy("i4.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 0, 8);
  refused("i4.npy", NULL, BG_EFORMAT, BG_NPY_DTYPE,
          "unsupported dtype '<i4' (brigade reads little-endian float32 '<f4', float64 '<f8' or "
          "int64 '<i8'; convert with arr.astype(np.float32))");
  put_npy("be.npy", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", 0, 16);
  refused("be.npy", NULL, BG_EFORMAT, BG_NPY_DTYPE, "unsupported dtype '>f8'");
  /* An int64 file where the caller takes floats only: refused before its data is read. */
  put_npy("i8.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 0, 16);
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.dtypes = 1u << BG_NPY_F32 | 1u << BG_NPY_F64;
  refused("i8.npy", &o, BG_EFORMAT, BG_NPY_DTYPE,
          "(brigade reads little-endian float32 '<f4' or float64 '<f8'; convert with "
          "arr.astype(np.float32))");
  o.dtypes = 1u << BG_NPY_I64;
  bg_npy_t *a = NULL;
  assert_int_equal(bg_npy_open(path_of("i8.npy"), &o, &a, NULL), 0);
  bg_npy_close(a);
}

static void shapes_negative_overflowing_or_too_deep(void **state) {
  (void)state;
  put_npy("neg.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 2), }", 0, 0);
  refused("neg.npy", NULL, BG_EFORMAT, BG_NPY_SHAPE, "negative dimension (-3)");
  put_npy("huge.npy", 1,
          "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0, 0);
  refused("huge.npy", NULL, BG_EFORMAT, BG_NPY_SHAPE, "too large to address");
  char dict[512];
  int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (int i = 0; i <= BG_NPY_MAX_DIMS; i++)
    len += snprintf(dict + len, sizeof dict - (size_t)len, "1, ");
  snprintf(dict + len, sizeof dict - (size_t)len, "), }");
  put_npy("deep.npy", 1, dict, 0, 4);
  refused("deep.npy", NULL, BG_EFORMAT, BG_NPY_SHAPE, "more than 32 dimensions");
}

static void max_bytes_and_truncation(void **state) {
  (void)state;
  float v[6] = {0};
  assert_int_equal(bg_npy_write(path_of("m.npy"), BG_NPY_F32, 2, (size_t[]){2, 3}, v, NULL), 0);
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.max_bytes = 23;
  refused("m.npy", &o, BG_ERANGE, BG_NPY_TOO_BIG, "24 bytes of data do not fit in the 23");
  o.max_bytes = 24;
  bg_npy_t *a = NULL;
  assert_int_equal(bg_npy_open(path_of("m.npy"), &o, &a, NULL), 0);
  bg_npy_close(a);
  put_npy("short.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (9, 2), }", 0, 8);
  refused("short.npy", NULL, BG_ERANGE, BG_NPY_TRUNCATED,
          "truncated: the header promises 72 bytes of data, the file has 8");
}

/* A FIFO cannot be mapped or sized: the data is read until it ends, whole or truncated. */
static void fifo_read_whole_or_truncated(void **state) {
  (void)state;
  double v[3] = {1, 2, 3};
  assert_int_equal(bg_npy_write(path_of("src.npy"), BG_NPY_F64, 1, (size_t[]){3}, v, NULL), 0);
  assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
  for (int cut = 0; cut < 2; cut++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      int in = open(path_of("src.npy"), O_RDONLY), out = open(path_of("fifo"), O_WRONLY);
      char buf[256];
      ssize_t n = read(in, buf, sizeof buf);
      _exit(n > 0 && write(out, buf, (size_t)n - (cut ? 8 : 0)) > 0 ? 0 : 1);
    }
    bg_npy_t *a = NULL;
    bg_npy_error_t e;
    int rc = bg_npy_open(path_of("fifo"), NULL, &a, &e);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (cut) {
      assert_int_equal(rc, BG_ERANGE);
      assert_int_equal(e.fault, BG_NPY_TRUNCATED);
      assert_non_null(strstr(e.msg, "promises 24 bytes of data, the file has 16"));
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(bg_npy_mapped(a), 0);
      assert_memory_equal(bg_npy_data(a), v, sizeof v);
      bg_npy_close(a);
    }
  }
}

static void raw_files_given_their_row(void **state) {
  (void)state;
  float v[6] = {1, 2, 3, 4, 5, 6};
  put("raw.bin", v, sizeof v);
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.raw_cols = 3;
  o.raw_dtype = BG_NPY_F32;
  bg_npy_t *a = NULL;
  assert_int_equal(bg_npy_open(path_of("raw.bin"), &o, &a, NULL), 0);
  assert_int_equal(bg_npy_ndim(a), 2);
  assert_int_equal(bg_npy_shape(a)[0], 2);
  assert_int_equal(bg_npy_shape(a)[1], 3);
  assert_int_equal(bg_npy_mapped(a), 1);
  assert_memory_equal(bg_npy_data(a), v, sizeof v);
  bg_npy_close(a);
  o.raw_cols = 4;
  refused("raw.bin", &o, BG_EFORMAT, BG_NPY_RAW,
          "a raw file of f32 rows with dim 4 must be a non-zero multiple of 16 bytes");
  put("empty.bin", "", 0);
  refused("empty.bin", &o, BG_EFORMAT, BG_NPY_RAW, "non-zero multiple");
}

/* Writes n bytes of buf into the fifo from a child; returns its pid. */
static pid_t feed_fifo(const char *fifo, const void *buf, size_t n) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int out = open(fifo, O_WRONLY);
    size_t done = 0;
    while (out >= 0 && done < n) {
      ssize_t w = write(out, (const char *)buf + done, n - done);
      if (w <= 0)
        _exit(1);
      done += (size_t)w;
    }
    _exit(out >= 0 ? 0 : 1);
  }
  return pid;
}

/* A raw stream (a pipe: no size until its end) is read whole, through buffers that grow (3 MiB
 * here, past the first 1 MiB), and sized by its length; a length that is no whole number of
 * rows, an empty stream, one past max_bytes, one whose buffers together would pass it and a
 * streamed (piecewise) read are refused. */
static void raw_streams_read_whole(void **state) {
  (void)state;
  size_t n = (size_t)3 << 20;
  float *v = malloc(n);
  assert_non_null(v);
  for (size_t i = 0; i < n / 4; i++)
    v[i] = (float)i;
  const char *fifo = path_of("rawfifo");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.raw_cols = 3;
  o.raw_dtype = BG_NPY_F32;
  static const struct {
    size_t bytes;
    uint64_t max;
    int stream, rc;
    const char *msg;
  } cases[] = {
      {(size_t)3 << 20, 0, 0, 0, NULL},
      {10, 0, 0, BG_EFORMAT,
       "a raw stream of f32 rows with dim 3 must be a non-zero multiple of "
       "12 bytes; it had 10"},
      {0, 0, 0, BG_EFORMAT, "it had 0"},
      {120, 100, 0, BG_ERANGE, "more than the 100 bytes available"},
      /* The old and the grown buffer together stay within max_bytes: 1 MiB, then 1.5 MiB, so
       * 1.2 MiB fits 2.5 MiB and 2 MiB does not (doubling would have held 3 MiB). */
      {1258296, (uint64_t)5 << 19, 0, 0, NULL},
      {(size_t)2 << 20, (uint64_t)5 << 19, 0, BG_ERANGE, "the next buffer would pass them"},
      {120, 0, 1, BG_EINVAL, "only a regular file can be streamed"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    bg_npy_opts_init(&o);
    o.raw_cols = 3, o.raw_dtype = BG_NPY_F32, o.stream = cases[c].stream;
    if (cases[c].max)
      o.max_bytes = cases[c].max;
    pid_t pid = feed_fifo(fifo, v, cases[c].bytes);
    bg_npy_t *a = NULL;
    bg_npy_error_t e;
    int rc = bg_npy_open(fifo, &o, &a, &e);
    /* A refused open may leave the writer blocked on a full pipe: end it. */
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rc, cases[c].rc);
    if (rc == 0) {
      assert_int_equal(bg_npy_shape(a)[0], cases[c].bytes / 12);
      assert_int_equal(bg_npy_shape(a)[1], 3);
      assert_int_equal(bg_npy_mapped(a), 0);
      assert_memory_equal(bg_npy_data(a), v, cases[c].bytes);
      float row[3];
      assert_int_equal(bg_npy_read_rows(a, 1000, 1, row, NULL), 0);
      assert_memory_equal(row, v + 3000, sizeof row);
      bg_npy_close(a);
    } else {
      assert_null(a);
      if (!strstr(e.msg, cases[c].msg))
        fail_msg("case %zu: '%s' lacks '%s'", c, e.msg, cases[c].msg);
    }
  }
  free(v);
}

static void open_arguments_and_missing_files(void **state) {
  (void)state;
  bg_npy_t *a = NULL;
  bg_npy_error_t e;
  assert_int_equal(bg_npy_open(NULL, NULL, &a, &e), BG_EINVAL);
  assert_int_equal(e.fault, BG_NPY_ARG);
  assert_int_equal(bg_npy_open(path_of("x"), NULL, NULL, NULL), BG_EINVAL);
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.version = 99;
  assert_int_equal(bg_npy_open(path_of("x"), &o, &a, &e), BG_EINVAL);
  bg_npy_opts_init(&o);
  o.dtypes = 0;
  assert_int_equal(bg_npy_open(path_of("x"), &o, &a, &e), BG_EINVAL);
  o.dtypes = 1u << 20;
  assert_int_equal(bg_npy_open(path_of("x"), &o, &a, &e), BG_EINVAL);
  bg_npy_opts_init(&o);
  o.raw_cols = 2;
  o.raw_dtype = (bg_npy_dtype_t)7;
  assert_int_equal(bg_npy_open(path_of("x"), &o, &a, &e), BG_EINVAL);
  assert_null(a);
  refused("none.npy", NULL, BG_ENOENT, BG_NPY_OPEN, "No such file or directory");
  put("secret.npy", "x", 1);
  chmod(path_of("secret.npy"), 0);
  if (geteuid() != 0)
    refused("secret.npy", NULL, BG_ESYS, BG_NPY_OPEN, "Permission denied");
}

/* 4 GiB of data in a sparse file: mapped, so opening it reads nothing and the heap does not
 * grow; its last element reads as the file's zero. */
static void large_file_is_mapped_not_copied(void **state) {
  (void)state;
  size_t rows = 1u << 20, cols = 1024;
  /* The header for (rows, cols) f32, then the file extended without writing the data. */
  char dict[128] = "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1024), }";
  size_t dl = strlen(dict);
  memset(dict + dl, ' ', 117 - dl);
  dict[117] = '\n';
  dict[118] = '\0';
  put_npy("big.npy", 1, dict, 0, 0);
  assert_int_equal(truncate(path_of("big.npy"), 128 + (off_t)(rows * cols * 4)), 0);
  struct mallinfo2 before = mallinfo2();
  bg_npy_t *a = NULL;
  assert_int_equal(bg_npy_open(path_of("big.npy"), NULL, &a, NULL), 0);
  struct mallinfo2 after = mallinfo2();
  assert_int_equal(bg_npy_mapped(a), 1);
  assert_int_equal(bg_npy_bytes(a), rows * cols * 4);
  assert_true(after.uordblks + after.hblkhd < before.uordblks + before.hblkhd + (1u << 20));
  assert_true(((const float *)bg_npy_data(a))[rows * cols - 1] == 0.0f);
  bg_npy_close(a);
  unlink(path_of("big.npy"));
}

typedef struct counting {
  int allocs, frees;
} counting;

static void *count_alloc(size_t size, void *ud) {
  ((counting *)ud)->allocs++;
  return malloc(size);
}

static void count_free(void *p, void *ud) {
  ((counting *)ud)->frees += p != NULL;
  free(p);
}

static void *no_alloc(size_t size, void *ud) {
  (void)size, (void)ud;
  return NULL;
}

static void allocator_gets_handle_and_copy(void **state) {
  (void)state;
  float v[4] = {1, 2, 3, 4};
  assert_int_equal(bg_npy_write(path_of("al.npy"), BG_NPY_F32, 1, (size_t[]){4}, v, NULL), 0);
  counting c = {0};
  bg_allocator_t al = {count_alloc, count_free, &c};
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.allocator = &al;
  o.copy = 1;
  bg_npy_t *a = NULL;
  assert_int_equal(bg_npy_open(path_of("al.npy"), &o, &a, NULL), 0);
  assert_int_equal(c.allocs, 2);
  assert_memory_equal(bg_npy_data(a), v, sizeof v);
  bg_npy_close(a);
  assert_int_equal(c.frees, 2);
  /* The allocator fails: BG_ENOMEM, nothing leaked (ASan checks). */
  al.alloc = no_alloc;
  refused("al.npy", &o, BG_ENOMEM, BG_NPY_NOMEM, "out of memory");
}

static void write_arguments_refused(void **state) {
  (void)state;
  float v[2] = {0};
  bg_npy_error_t e;
  assert_int_equal(bg_npy_write(NULL, BG_NPY_F32, 1, (size_t[]){2}, v, &e), BG_EINVAL);
  assert_int_equal(e.fault, BG_NPY_ARG);
  assert_int_equal(bg_npy_write(path_of("w.npy"), (bg_npy_dtype_t)9, 1, (size_t[]){2}, v, &e),
                   BG_EINVAL);
  assert_int_equal(bg_npy_write(path_of("w.npy"), BG_NPY_F32, 33, (size_t[33]){0}, v, &e),
                   BG_EINVAL);
  assert_int_equal(bg_npy_write(path_of("w.npy"), BG_NPY_F32, -1, NULL, v, &e), BG_EINVAL);
  assert_int_equal(bg_npy_write(path_of("w.npy"), BG_NPY_F32, 2, NULL, v, &e), BG_EINVAL);
  assert_int_equal(bg_npy_write(path_of("w.npy"), BG_NPY_F32, 1, (size_t[]){2}, NULL, &e),
                   BG_EINVAL);
  assert_int_equal(
      bg_npy_write(path_of("w.npy"), BG_NPY_F64, 2, (size_t[]){SIZE_MAX / 4, 3}, v, &e), BG_EINVAL);
  assert_int_equal(e.fault, BG_NPY_SHAPE);
  assert_int_equal(bg_npy_write_fd(-1, BG_NPY_F32, 1, (size_t[]){2}, v, &e), BG_EINVAL);
  assert_int_equal(e.fault, BG_NPY_ARG);
  char name[5000];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  assert_int_equal(bg_npy_write(name, BG_NPY_F32, 1, (size_t[]){2}, v, &e), BG_ERANGE);
  assert_int_equal(e.fault, BG_NPY_ARG); /* the message is the name, cut to fit */
  assert_int_equal(access(path_of("w.npy"), F_OK), -1);
}

/* The same bytes to a pipe as to a file; a full device fails with the system's reason. */
static void write_fd_to_a_pipe_and_a_full_device(void **state) {
  (void)state;
  int64_t v[6] = {1, 2, 3, 4, 5, 6};
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(bg_npy_write_fd(p[1], BG_NPY_I64, 2, (size_t[]){3, 2}, v, NULL), 0);
  close(p[1]);
  char got[200], want[200];
  ssize_t n = read(p[0], got, sizeof got);
  close(p[0]);
  assert_int_equal(bg_npy_write(path_of("fd.npy"), BG_NPY_I64, 2, (size_t[]){3, 2}, v, NULL), 0);
  FILE *f = fopen(path_of("fd.npy"), "rb");
  assert_int_equal(fread(want, 1, sizeof want, f), 128 + sizeof v);
  fclose(f);
  assert_int_equal(n, 128 + sizeof v);
  assert_memory_equal(got, want, 128 + sizeof v);
  int full = open("/dev/full", O_WRONLY);
  if (full < 0)
    return;
  bg_npy_error_t e;
  assert_int_equal(bg_npy_write_fd(full, BG_NPY_I64, 1, (size_t[]){6}, v, &e), BG_ESYS);
  assert_int_equal(e.fault, BG_NPY_IO);
  assert_string_equal(e.msg, "write failed: No space left on device");
  close(full);
}

/* A symlink's target is replaced and the link kept; an existing file keeps its mode; a device
 * is written in place. */
static void write_through_links_modes_and_devices(void **state) {
  (void)state;
  float v[2] = {7, 8};
  put("target.npy", "old", 3);
  chmod(path_of("target.npy"), 0640);
  assert_int_equal(symlink(path_of("target.npy"), path_of("link.npy")), 0);
  assert_int_equal(bg_npy_write(path_of("link.npy"), BG_NPY_F32, 1, (size_t[]){2}, v, NULL), 0);
  struct stat st;
  assert_int_equal(lstat(path_of("link.npy"), &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(stat(path_of("target.npy"), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  assert_int_equal(st.st_size, 128 + sizeof v);
  assert_int_equal(bg_npy_write("/dev/null", BG_NPY_F32, 1, (size_t[]){2}, v, NULL), 0);
  assert_int_equal(stat("/dev/null", &st), 0);
  assert_true(S_ISCHR(st.st_mode));
  assert_int_equal(temporaries(), 0);
}

/* A write that fails part way (the file size limit: EFBIG, even for root) and a folder that
 * cannot be written leave the previous file as it was and no temporary. */
static void failed_write_keeps_previous_file(void **state) {
  (void)state;
  put("prev.npy", "previous", 8);
  size_t n = 1u << 16;
  int64_t *v = calloc(n, sizeof *v);
  assert_non_null(v);
  struct rlimit old, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 4096;
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  bg_npy_error_t e;
  int rc = bg_npy_write(path_of("prev.npy"), BG_NPY_I64, 1, &n, v, &e);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, was);
  free(v);
  assert_int_equal(rc, BG_ESYS);
  assert_int_equal(e.fault, BG_NPY_IO);
  assert_non_null(strstr(e.msg, "write failed: File too large; the previous file, if any, is "
                                "unchanged"));
  char buf[16] = {0};
  FILE *f = fopen(path_of("prev.npy"), "rb");
  assert_int_equal(fread(buf, 1, sizeof buf, f), 8);
  fclose(f);
  assert_string_equal(buf, "previous");
  assert_int_equal(temporaries(), 0);

  float w[1] = {0};
  assert_int_equal(bg_npy_write(path_of("nofolder/x.npy"), BG_NPY_F32, 1, (size_t[]){1}, w, &e),
                   BG_ESYS);
  assert_non_null(strstr(e.msg, "cannot create a file beside it: No such file or directory"));
  /* A folder that cannot be written; root writes anywhere but in /proc. */
  const char *ro = "/proc/bg-npy-test.npy";
  if (geteuid() != 0) {
    assert_int_equal(mkdir(path_of("ro"), 0555), 0);
    ro = path_of("ro/x.npy");
  }
  assert_int_equal(bg_npy_write(ro, BG_NPY_F32, 1, (size_t[]){1}, w, &e), BG_ESYS);
  assert_non_null(strstr(e.msg, "cannot create a file beside it"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_every_dtype_and_rank),
      cmocka_unit_test(header_is_what_numpy_writes),
      cmocka_unit_test(dtype_names),
      cmocka_unit_test(versions_two_and_three_are_read),
      cmocka_unit_test(bad_magic_and_version),
      cmocka_unit_test(truncated_or_oversized_header),
      cmocka_unit_test(header_not_the_dict_numpy_writes),
      cmocka_unit_test(fortran_order_refused),
      cmocka_unit_test(unsupported_dtypes_refused_by_name),
      cmocka_unit_test(shapes_negative_overflowing_or_too_deep),
      cmocka_unit_test(temporaries_have_no_name_until_whole),
      cmocka_unit_test(max_bytes_and_truncation),
      cmocka_unit_test(fifo_read_whole_or_truncated),
      cmocka_unit_test(raw_files_given_their_row),
      cmocka_unit_test(raw_streams_read_whole),
      cmocka_unit_test(open_arguments_and_missing_files),
      cmocka_unit_test(large_file_is_mapped_not_copied),
      cmocka_unit_test(allocator_gets_handle_and_copy),
      cmocka_unit_test(write_arguments_refused),
      cmocka_unit_test(write_fd_to_a_pipe_and_a_full_device),
      cmocka_unit_test(write_through_links_modes_and_devices),
      cmocka_unit_test(failed_write_keeps_previous_file),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
