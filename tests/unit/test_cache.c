/* SPDX-License-Identifier: MIT */
/* The memo cache: a cached map returns results identical to the computed ones without running
 * the task again (threads and procs); bg_map refuses a memo whose sizes are not the map's;
 * a key function keys pointer items by content, across processes and handles, and its
 * failures fail its item; 4,000 small results take under 1 MB on disk; a damaged, cut or torn
 * record is skipped and recomputed, never returned; the folder stays under its cap in bytes
 * on disk, least recently used segments going first; four processes, and four threads on one
 * handle, writing and reading one folder at once only ever read correct results; a planted
 * lock link is never followed and a segment that is not a regular file (a FIFO, a link) is a
 * prompt miss; bg_cache_remove leaves no trace of a cache and nothing of others' is removed;
 * bad arguments are refused. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"
#include "internal/cache_impl.h"

static char root[256];

static int setup(void **st) {
  (void)st;
  snprintf(root, sizeof root, "%s/bg-cache-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **st) {
  (void)st;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", root, name);
}

static bg_cache_t *open_cache(const char *name, uint64_t max) {
  char dir[300];
  path_of(dir, sizeof dir, name);
  bg_cache_t *c = NULL;
  assert_int_equal(bg_cache_open(dir, max, &c), 0);
  return c;
}

/* Files in a folder whose names start with @prefix ("": the segments), and the bytes they
 * take on disk (what the cap counts). */
static size_t count_files(const char *name, const char *prefix, uint64_t *bytes) {
  char dir[300];
  path_of(dir, sizeof dir, name);
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0;
  if (bytes)
    *bytes = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    /* "": the entries, which are the names not starting with a dot. */
    int match = *prefix ? strncmp(e->d_name, prefix, strlen(prefix)) == 0 : e->d_name[0] != '.';
    if (!match)
      continue;
    n++;
    struct stat st;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (bytes && stat(p, &st) == 0)
      *bytes += (uint64_t)st.st_blocks * 512;
  }
  closedir(d);
  return n;
}

static atomic_int calls;

/* A task worth caching: a sum that depends on the item's bytes and its index. */
static int work(void *out, const void *in, size_t i, void *ctx) {
  (void)ctx;
  atomic_fetch_add(&calls, 1);
  uint64_t x = *(const uint64_t *)in, acc = 0;
  for (uint64_t k = 0; k < 1000; k++)
    acc += (x * 2654435761u + k) % 1000003;
  ((uint64_t *)out)[0] = acc;
  ((uint64_t *)out)[1] = x;
  return i == 13 ? 5 : 0; /* a failure: never stored */
}

enum { N_ITEMS = 400 };

static void map_memo(const char *backend, bg_memo_t *m, const uint64_t *in, uint64_t (*out)[2],
                     size_t *failed) {
  bg_pool_t *p = tk_pool(backend, 2);
  bg_map_desc_t d = tk_desc(bg_memo_task, m, N_ITEMS, NULL, 0);
  d.in = in;
  d.in_size = sizeof *in;
  d.out = out;
  d.out_size = sizeof *out;
  bg_map_report_t r = {.version = BG_MAP_REPORT_VERSION};
  assert_int_equal(bg_map(p, &d, &r), BG_ETASK);
  *failed = r.n_failed;
  bg_pool_destroy(p);
}

static void test_identical_results(void **st) {
  (void)st;
  static uint64_t in[N_ITEMS], plain[N_ITEMS][2], first[N_ITEMS][2], second[N_ITEMS][2];
  for (size_t i = 0; i < N_ITEMS; i++) {
    in[i] = i * 7919 + 1;
    assert_int_equal(work(plain[i], &in[i], i, NULL), i == 13 ? 5 : 0);
  }
  const char *backends[] = {"threads", "procs"};
  for (int b = 0; b < 2; b++) {
    bg_cache_t *c = open_cache(backends[b], 0);
    bg_memo_t m = {.cache = c,
                   .task = "work/v1",
                   .fn = work,
                   .in_size = sizeof(uint64_t),
                   .out_size = sizeof first[0]};
    size_t failed;
    atomic_store(&calls, 0);
    map_memo(backends[b], &m, in, first, &failed);
    assert_int_equal(failed, 1);
    bg_cache_stats_t s;
    assert_int_equal(bg_cache_stats(c, &s), 0);
    assert_int_equal(s.misses, N_ITEMS);
    assert_int_equal(s.stores, N_ITEMS - 1);
    assert_int_equal(s.hits, 0);
    /* The second map computes only the item that failed. */
    memset(second, 0, sizeof second);
    atomic_store(&calls, 0);
    map_memo(backends[b], &m, in, second, &failed);
    assert_int_equal(failed, 1);
    assert_int_equal(bg_cache_stats(c, &s), 0);
    assert_int_equal(s.hits, N_ITEMS - 1);
    if (b == 0)
      assert_int_equal(atomic_load(&calls), 1);
    for (size_t i = 0; i < N_ITEMS; i++) {
      assert_memory_equal(first[i], plain[i], sizeof plain[i]);
      assert_memory_equal(second[i], plain[i], sizeof plain[i]);
    }
    /* Another task name, same inputs: nothing shared. */
    bg_memo_t other = m;
    other.task = "work/v2";
    uint64_t r[2];
    assert_int_equal(bg_cache_get(c, other.task, &in[0], sizeof in[0], r, sizeof r), BG_ENOENT);
    assert_int_equal(count_files(backends[b], ".tmp-", NULL), 0);
    bg_cache_close(c);
  }
}

/* An 8-byte result, as in the program. */
static int square(void *out, const void *in, size_t i, void *ctx) {
  (void)i, (void)ctx;
  atomic_fetch_add(&calls, 1);
  uint64_t x = *(const uint64_t *)in;
  *(uint64_t *)out = x * x + 1;
  return 0;
}

/* The program: a memo made for 4-byte results on a map of 8-byte ones returned 100 of
 * 100 results wrong on its second run. bg_map now refuses it before any item runs, and so a
 * memo for other items, and one without a cache, task or function; run after run. */
static void test_memo_mismatch(void **st) {
  (void)st;
  bg_cache_t *c = open_cache("mismatch", 0);
  static uint64_t in[100], out[100];
  for (size_t i = 0; i < 100; i++)
    in[i] = i + 3;
  bg_memo_t m = {
      .cache = c, .task = "square/v1", .fn = square, .in_size = sizeof in[0], .out_size = 4};
  bg_pool_t *p = tk_pool("threads", 2);
  bg_map_desc_t d = tk_desc(bg_memo_task, &m, 100, out, sizeof out[0]);
  d.in = in;
  d.in_size = sizeof in[0];
  atomic_store(&calls, 0);
  for (int run = 0; run < 2; run++)
    assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  m.out_size = sizeof out[0];
  m.in_size = 4;
  assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  m.in_size = sizeof in[0];
  bg_memo_t broken[3] = {m, m, m};
  broken[0].cache = NULL;
  broken[1].task = NULL;
  broken[2].fn = NULL;
  for (int b = 0; b < 3; b++) {
    d.ctx = &broken[b];
    assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  }
  d.ctx = NULL;
  assert_int_equal(bg_map(p, &d, NULL), BG_EINVAL);
  assert_int_equal(atomic_load(&calls), 0);
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_int_equal(s.stores + s.hits + s.misses, 0);
  /* The right sizes: computed once, then every result from the cache and right. */
  d.ctx = &m;
  for (int run = 0; run < 2; run++) {
    memset(out, 0, sizeof out);
    assert_int_equal(bg_map(p, &d, NULL), 0);
    for (size_t i = 0; i < 100; i++)
      assert_int_equal(out[i], in[i] * in[i] + 1);
  }
  assert_int_equal(atomic_load(&calls), 100);
  /* Called directly with another result size: a miss, never a short result. */
  uint32_t small = 0;
  assert_int_equal(bg_cache_get(c, m.task, &in[0], sizeof in[0], &small, sizeof small), BG_ENOENT);
  bg_pool_destroy(p);
  bg_cache_close(c);
}

/* Items that are pointers: a path's characters, not its address, are its key. */
static int path_key(const void *in, size_t i, void *ctx, void *buf, size_t cap) {
  (void)i, (void)ctx;
  const char *path = *(const char *const *)in;
  size_t len = strlen(path);
  if (len <= cap)
    memcpy(buf, path, len);
  return (int)len;
}

static int path_task(void *out, const void *in, size_t i, void *ctx) {
  (void)i, (void)ctx;
  atomic_fetch_add(&calls, 1);
  const char *path = *(const char *const *)in;
  uint64_t h = 1469598103934665603ull;
  for (const char *q = path; *q; q++)
    h = (h ^ (unsigned char)*q) * 1099511628211ull;
  *(uint64_t *)out = h;
  return 0;
}

enum { PATHS = 50 };

/* Maps path_task over PATHS strings laid out at @shift bytes into a fresh buffer (so their
 * addresses differ from any other run's), through a new handle on "paths". The strings are
 * "/data/<i>" padded to @pad characters, so that a key can be longer than the stack buffer.
 * Return: calls made; @addr gets the first string's address. */
static int map_paths(size_t shift, size_t pad, bg_memo_key_fn key, uintptr_t *addr) {
  char *buf = calloc(PATHS, shift + pad + 32);
  const char *items[PATHS];
  uint64_t out[PATHS], want;
  assert_non_null(buf);
  for (size_t i = 0; i < PATHS; i++) {
    char *q = buf + shift + i * (pad + 32);
    int w = snprintf(q, 32, "/data/%zu", i);
    memset(q + w, 'x', pad);
    items[i] = q;
  }
  *addr = (uintptr_t)items[0];
  bg_cache_t *c = open_cache("paths", 0);
  bg_memo_t m = {.cache = c,
                 .task = "path/v1",
                 .fn = path_task,
                 .in_size = sizeof items[0],
                 .out_size = sizeof out[0],
                 .key = key};
  bg_pool_t *p = tk_pool("threads", 2);
  bg_map_desc_t d = tk_desc(bg_memo_task, &m, PATHS, out, sizeof out[0]);
  d.in = items;
  d.in_size = sizeof items[0];
  atomic_store(&calls, 0);
  assert_int_equal(bg_map(p, &d, NULL), 0);
  for (size_t i = 0; i < PATHS; i++) {
    path_task(&want, &items[i], i, NULL);
    assert_int_equal(out[i], want);
  }
  bg_pool_destroy(p);
  bg_cache_close(c);
  free(buf);
  return atomic_load(&calls) - PATHS; /* the checks above counted too */
}

/* With a key function, the same strings at other addresses hit: in another process, and again
 * through another handle. Without one they are keyed by address and miss. Keys longer than
 * the memo's stack buffer take a second call. */
static void test_memo_key(void **st) {
  (void)st;
  for (size_t pad = 0; pad <= 1000; pad += 1000) {
    uintptr_t a0 = 0, a1 = 0;
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0)
      _exit(map_paths(0, pad, path_key, &a0) == PATHS ? 0 : 1);
    int status;
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(map_paths(8, pad, path_key, &a0), 0);
    assert_int_equal(map_paths(24, pad, path_key, &a1), 0);
    assert_true(a0 != a1);
  }
  uintptr_t a;
  assert_int_equal(map_paths(40, 0, NULL, &a), PATHS);
}

static int failing_key(const void *in, size_t i, void *ctx, void *buf, size_t cap) {
  (void)in, (void)ctx, (void)buf, (void)cap;
  return i == 1 ? -7 : (int)BG_MEMO_KEY_MAX + 1;
}

/* Asks for a longer buffer each time it is called. */
static int greedy_key(const void *in, size_t i, void *ctx, void *buf, size_t cap) {
  (void)in, (void)i, (void)ctx, (void)buf;
  return (int)cap + 1;
}

/* A key function's failure is its item's, with its code, and the task does not run: a negative
 * length, a key over BG_MEMO_KEY_MAX, and one that asks for more on the second call. */
static void test_memo_key_errors(void **st) {
  (void)st;
  bg_cache_t *c = open_cache("keyerr", 0);
  uint64_t in[3] = {1, 2, 3}, out[3];
  bg_item_status_t status[3];
  bg_memo_t m = {
      .cache = c, .task = "square/v1", .fn = square, .out_size = sizeof out[0], .key = failing_key};
  bg_pool_t *p = tk_pool("threads", 2);
  bg_map_desc_t d = tk_desc(bg_memo_task, &m, 2, out, sizeof out[0]);
  d.in = in;
  d.in_size = sizeof in[0];
  d.status = status;
  atomic_store(&calls, 0);
  assert_int_equal(bg_map(p, &d, NULL), BG_ETASK);
  assert_int_equal(status[0].code, BG_ERANGE);
  assert_int_equal(status[1].code, -7);
  m.key = greedy_key;
  d.n = 1;
  assert_int_equal(bg_map(p, &d, NULL), BG_ETASK);
  assert_int_equal(status[0].code, BG_ERANGE);
  assert_int_equal(atomic_load(&calls), 0);
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_int_equal(s.stores + s.misses, 0);
  bg_pool_destroy(p);
  bg_cache_close(c);
}

/* Damages the last record of the folder's segment: flips a byte of its result, or cuts the
 * file short. */
static void damage(const char *name, int cut) {
  char dir[300], p[600];
  path_of(dir, sizeof dir, name);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL && !strstr(e->d_name, ".bgs"))
    ;
  assert_non_null(e);
  snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
  closedir(d);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  if (cut) {
    assert_int_equal(truncate(p, st.st_size - 3), 0);
    return;
  }
  int fd = open(p, O_RDWR);
  assert_true(fd >= 0);
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, st.st_size - 1), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, st.st_size - 1), 1);
  close(fd);
}

static void test_corrupt_entry(void **st) {
  (void)st;
  for (int cut = 0; cut < 2; cut++) {
    const char *name = cut ? "cut" : "flip";
    bg_cache_t *c = open_cache(name, 0);
    uint64_t key = 42, val[2] = {0xdeadbeef, 7}, got[2] = {1, 2};
    assert_int_equal(bg_cache_put(c, "t", &key, sizeof key, val, sizeof val), 0);
    assert_int_equal(bg_cache_get(c, "t", &key, sizeof key, got, sizeof got), 0);
    assert_memory_equal(got, val, sizeof val);
    damage(name, cut);
    memset(got, 0x5a, sizeof got);
    assert_int_equal(bg_cache_get(c, "t", &key, sizeof key, got, sizeof got), BG_ENOENT);
    assert_int_equal(got[0], 0x5a5a5a5a5a5a5a5aull); /* nothing of the damaged entry */
    bg_cache_stats_t s;
    assert_int_equal(bg_cache_stats(c, &s), 0);
    assert_int_equal(s.corrupt, 1);
    /* Nor does a new handle return it. */
    bg_cache_t *fresh = open_cache(name, 0);
    assert_int_equal(bg_cache_get(fresh, "t", &key, sizeof key, got, sizeof got), BG_ENOENT);
    assert_int_equal(got[0], 0x5a5a5a5a5a5a5a5aull);
    bg_cache_close(fresh);
    /* Through the memo: recomputed, stored again, then a hit. */
    bg_memo_t m = {
        .cache = c, .task = "t", .fn = work, .in_size = sizeof key, .out_size = sizeof got};
    atomic_store(&calls, 0);
    assert_int_equal(bg_memo_task(got, &key, 0, &m), 0);
    uint64_t want[2];
    assert_int_equal(work(want, &key, 0, NULL), 0);
    assert_memory_equal(got, want, sizeof want);
    damage(name, cut);
    memset(got, 0, sizeof got);
    assert_int_equal(bg_memo_task(got, &key, 0, &m), 0);
    assert_memory_equal(got, want, sizeof want);
    assert_int_equal(atomic_load(&calls), 3);
    assert_int_equal(bg_memo_task(got, &key, 0, &m), 0);
    assert_int_equal(atomic_load(&calls), 3);
    bg_cache_close(c);
  }
}

static void test_eviction(void **st) {
  (void)st;
  enum { VAL = 1000, CAP = 20000 };
  static char val[VAL];
  bg_cache_t *c = open_cache("cap", CAP);
  uint64_t keep = 0;
  memset(val, 'k', sizeof val);
  assert_int_equal(bg_cache_put(c, "t", &keep, sizeof keep, val, sizeof val), 0);
  for (uint64_t k = 1; k <= 200; k++) {
    memset(val, (int)k, sizeof val);
    assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, val, sizeof val), 0);
    /* Used all along: the least recently used entries go, not this one. */
    assert_int_equal(bg_cache_get(c, "t", &keep, sizeof keep, val, sizeof val), 0);
    assert_int_equal(val[0], 'k');
    uint64_t bytes;
    count_files("cap", "", &bytes);
    assert_true(bytes <= CAP + CAP / 8);
  }
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_true(s.evictions >= 150);
  /* The newest survived, the oldest did not. */
  uint64_t k = 200, old = 1;
  assert_int_equal(bg_cache_get(c, "t", &k, sizeof k, val, sizeof val), 0);
  assert_int_equal((unsigned char)val[0], 200);
  assert_int_equal(bg_cache_get(c, "t", &old, sizeof old, val, sizeof val), BG_ENOENT);
  /* An entry larger than the cap is refused, not stored. */
  static char big[CAP + 1];
  assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, big, sizeof big), BG_ERANGE);
  assert_int_equal(bg_cache_clear(c), 0);
  assert_int_equal(count_files("cap", "", NULL), 0);
  bg_cache_close(c);
  /* Reopened on a folder over its (new, smaller) cap: trimmed at open. */
  c = open_cache("cap", CAP);
  for (uint64_t j = 0; j < 15; j++)
    assert_int_equal(bg_cache_put(c, "t", &j, sizeof j, val, sizeof val), 0);
  bg_cache_close(c);
  c = open_cache("cap", 5000);
  uint64_t bytes;
  count_files("cap", "", &bytes);
  assert_true(bytes <= 5000);
  bg_cache_close(c);
}

/* What writer @w stores for key k: a function of k alone, so every writer agrees. */
static void value_of(uint64_t k, uint64_t *v, size_t n) {
  for (size_t j = 0; j < n; j++)
    v[j] = k * 1000003 + j;
}

enum { WRITERS = 4, KEYS = 64, ROUNDS = 600, WORDS = 64 };

static void test_concurrent_writers(void **st) {
  (void)st;
  bg_cache_close(open_cache("shared", 0)); /* creates the folder */
  pid_t kids[WRITERS];
  for (int w = 0; w < WRITERS; w++) {
    kids[w] = fork();
    assert_true(kids[w] >= 0);
    if (kids[w] != 0)
      continue;
    /* Each process has its own handle on the folder, as separate programs would. */
    char dir[300];
    path_of(dir, sizeof dir, "shared");
    bg_cache_t *c = NULL;
    if (bg_cache_open(dir, 12 * (WORDS * 8 + 64), &c) != 0)
      _exit(10);
    srand((unsigned)w + 1);
    int bad = 0;
    for (int r = 0; r < ROUNDS; r++) {
      uint64_t k = (uint64_t)rand() % KEYS, v[WORDS], want[WORDS];
      value_of(k, want, WORDS);
      int rc = bg_cache_get(c, "shared", &k, sizeof k, v, sizeof v);
      if (rc == 0 && memcmp(v, want, sizeof v) != 0)
        bad = 1;
      if (rc != 0 && rc != BG_ENOENT)
        bad = 2;
      if (rc != 0 && bg_cache_put(c, "shared", &k, sizeof k, want, sizeof want) != 0)
        bad = 3;
    }
    bg_cache_stats_t s;
    bg_cache_stats(c, &s);
    bg_cache_close(c);
    _exit(bad ? 10 + bad : s.corrupt ? 20 : s.hits ? 0 : 30);
  }
  for (int w = 0; w < WRITERS; w++) {
    int status;
    assert_int_equal(waitpid(kids[w], &status, 0), kids[w]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  assert_int_equal(count_files("shared", ".tmp-", NULL), 0);
  uint64_t bytes;
  size_t n = count_files("shared", "", &bytes);
  assert_true(n > 0);
  assert_true(bytes <= 12 * (WORDS * 8 + 64) * (1 + WRITERS / 8.0));
  /* Every entry left is whole and right. */
  bg_cache_t *c = open_cache("shared", 0);
  for (uint64_t k = 0; k < KEYS; k++) {
    uint64_t v[WORDS], want[WORDS];
    value_of(k, want, WORDS);
    if (bg_cache_get(c, "shared", &k, sizeof k, v, sizeof v) == 0)
      assert_memory_equal(v, want, sizeof v);
  }
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_int_equal(s.corrupt, 0);
  bg_cache_close(c);
}

/* A store that cannot be written (here: a file size limit, as a full disk would) fails with
 * BG_ESYS and leaves neither the entry nor its temporary file. */
static void test_failed_store(void **st) {
  (void)st;
  bg_cache_t *c = open_cache("full", 0);
  static char big[4096];
  uint64_t k = 9;
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = (struct rlimit){1000, old.rlim_max};
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = bg_cache_put(c, "t", &k, sizeof k, big, sizeof big);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, was);
  assert_int_equal(rc, BG_ESYS);
  assert_int_equal(count_files("full", ".tmp-", NULL), 0);
  assert_int_equal(count_files("full", "", NULL), 0);
  assert_int_equal(bg_cache_get(c, "t", &k, sizeof k, big, sizeof big), BG_ENOENT);
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_int_equal(s.stores, 0);
  /* The limit gone, the same store works. */
  assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, big, sizeof big), 0);
  bg_cache_close(c);
}

/* The path of the folder's only entry. */
static void only_entry(const char *name, char *buf, size_t cap) {
  char dir[300];
  path_of(dir, sizeof dir, name);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.' && n++ == 0)
      snprintf(buf, cap, "%s/%s", dir, e->d_name);
  closedir(d);
  assert_int_equal(n, 1);
}

/* A symbolic link planted as the lock file is never followed: no file appears where it
 * points, and opening (or clearing) the cache fails with ELOOP instead of locking a file
 * elsewhere. */
static void test_planted_lock_link(void **st) {
  (void)st;
  char dir[300], lock[320], victim[300];
  path_of(dir, sizeof dir, "planted");
  path_of(victim, sizeof victim, "victim");
  snprintf(lock, sizeof lock, "%s/.lock", dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  assert_int_equal(symlink(victim, lock), 0);
  bg_cache_t *c = (bg_cache_t *)dir;
  errno = 0;
  assert_int_equal(bg_cache_open(dir, 0, &c), BG_ESYS);
  assert_int_equal(errno, ELOOP);
  assert_null(c);
  assert_int_equal(access(victim, F_OK), -1);
  assert_int_equal(errno, ENOENT);
  /* Planted under an open handle: clear refuses the same way. */
  assert_int_equal(unlink(lock), 0);
  c = open_cache("planted", 0);
  assert_int_equal(unlink(lock), 0);
  assert_int_equal(symlink(victim, lock), 0);
  assert_int_equal(bg_cache_clear(c), BG_ESYS);
  assert_int_equal(access(victim, F_OK), -1);
  bg_cache_close(c);
}

/* An entry replaced by a FIFO, or by a symbolic link (here to a good entry moved elsewhere), is
 * a prompt miss counted as damaged, and is removed so that the entry can be stored again. An
 * alarm ends the lookup if it ever blocks (the FIFO has no writer), so a regression fails
 * rather than hangs. */
static void test_non_regular_entry(void **st) {
  (void)st;
  uint64_t key = 5, val = 55, got = 0;
  char ent[600], moved[300];
  path_of(moved, sizeof moved, "moved-entry");
  bg_cache_t *c = NULL;
  for (int kind = 0; kind < 2; kind++) {
    c = open_cache("odd", 0);
    assert_int_equal(bg_cache_put(c, "t", &key, sizeof key, &val, sizeof val), 0);
    bg_cache_close(c);
    only_entry("odd", ent, sizeof ent);
    if (kind == 0) {
      assert_int_equal(unlink(ent), 0);
      assert_int_equal(mkfifo(ent, 0644), 0);
    } else {
      assert_int_equal(rename(ent, moved), 0);
      assert_int_equal(symlink(moved, ent), 0);
    }
    /* A new handle, which has not opened the segment yet. The lookup runs in a child that an
     * alarm ends if it blocks; its counts are shared. */
    c = open_cache("odd", 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
      signal(SIGALRM, SIG_DFL);
      alarm(10);
      int rc = bg_cache_get(c, "t", &key, sizeof key, &got, sizeof got);
      _exit(rc == BG_ENOENT && got == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_false(WIFSIGNALED(status)); /* SIGALRM: the lookup blocked */
    assert_int_equal(WEXITSTATUS(status), 0);
    bg_cache_stats_t s;
    assert_int_equal(bg_cache_stats(c, &s), 0);
    assert_int_equal(s.corrupt, 1);
    assert_int_equal(count_files("odd", "", NULL), 0);
    if (kind == 0)
      bg_cache_close(c);
  }
  /* The link was removed, not what it pointed to. */
  assert_int_equal(access(moved, F_OK), 0);
  assert_int_equal(bg_cache_put(c, "t", &key, sizeof key, &val, sizeof val), 0);
  assert_int_equal(bg_cache_get(c, "t", &key, sizeof key, &got, sizeof got), 0);
  assert_int_equal(got, val);
  bg_cache_close(c);
}

/* bg_cache_remove takes the folder away entirely (entries, a temporary file, the lock file);
 * with a file of someone else's in it, that file and the folder stay; a link is not
 * followed. */
static void test_remove(void **st) {
  (void)st;
  char dir[300], p[400];
  for (int foreign = 0; foreign < 2; foreign++) {
    const char *name = foreign ? "kept" : "gone";
    path_of(dir, sizeof dir, name);
    bg_cache_t *c = open_cache(name, 0);
    for (uint64_t k = 0; k < 3; k++)
      assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, &k, sizeof k), 0);
    bg_cache_close(c);
    snprintf(p, sizeof p, "%s/%s", dir, foreign ? "notes.txt" : ".tmp-1-1");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    errno = 0;
    assert_int_equal(bg_cache_remove(dir), foreign ? BG_ESYS : 0);
    if (!foreign) {
      assert_int_equal(access(dir, F_OK), -1);
      continue;
    }
    assert_int_equal(errno, ENOTEMPTY);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(count_files(name, "", NULL), 1);
    assert_int_equal(count_files(name, ".", NULL), 2); /* "." and "..": no lock file */
  }
  path_of(p, sizeof p, "link-to-kept");
  assert_int_equal(symlink(dir, p), 0);
  assert_int_equal(bg_cache_remove(p), BG_ESYS);
  assert_int_equal(access(dir, F_OK), 0);
  path_of(p, sizeof p, "never-made");
  assert_int_equal(bg_cache_remove(p), BG_ENOENT);
  assert_int_equal(bg_cache_remove(NULL), BG_EINVAL);
  assert_int_equal(bg_cache_remove(""), BG_EINVAL);
}

static void test_refusals(void **st) {
  (void)st;
  bg_cache_t *c = NULL;
  char p[300];
  assert_int_equal(bg_cache_open(NULL, 0, &c), BG_EINVAL);
  assert_int_equal(bg_cache_open("", 0, &c), BG_EINVAL);
  assert_int_equal(bg_cache_open(root, 0, NULL), BG_EINVAL);
  path_of(p, sizeof p, "missing/parent");
  assert_int_equal(bg_cache_open(p, 0, &c), BG_ENOENT);
  path_of(p, sizeof p, "a-file");
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(bg_cache_open(p, 0, &c), BG_ESYS);
  assert_null(c);
  c = open_cache("refuse", 0);
  uint64_t k = 1, v = 2;
  assert_int_equal(bg_cache_get(NULL, "t", &k, sizeof k, &v, sizeof v), BG_EINVAL);
  assert_int_equal(bg_cache_get(c, NULL, &k, sizeof k, &v, sizeof v), BG_EINVAL);
  assert_int_equal(bg_cache_get(c, "t", NULL, 8, &v, sizeof v), BG_EINVAL);
  assert_int_equal(bg_cache_get(c, "t", &k, sizeof k, NULL, 8), BG_EINVAL);
  assert_int_equal(bg_cache_put(NULL, "t", &k, sizeof k, &v, sizeof v), BG_EINVAL);
  assert_int_equal(bg_cache_put(c, "t", NULL, 8, &v, sizeof v), BG_EINVAL);
  assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, NULL, 8), BG_EINVAL);
  assert_int_equal(bg_cache_stats(NULL, NULL), BG_EINVAL);
  assert_int_equal(bg_cache_clear(NULL), BG_EINVAL);
  /* Empty input and result are keys and values like any other. */
  assert_int_equal(bg_cache_put(c, "empty", NULL, 0, NULL, 0), 0);
  assert_int_equal(bg_cache_get(c, "empty", NULL, 0, NULL, 0), 0);
  /* Same key, another result size: a miss, not a damaged entry. */
  assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, &v, sizeof v), 0);
  uint32_t small;
  assert_int_equal(bg_cache_get(c, "t", &k, sizeof k, &small, sizeof small), BG_ENOENT);
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_int_equal(s.corrupt, 0);
  bg_cache_close(c);
  bg_cache_close(NULL);
}

/* The bytes the folder's regular files take on disk, its lock file included. */
static uint64_t disk_bytes(const char *name) {
  uint64_t segs, dot;
  count_files(name, "", &segs);
  count_files(name, ".lock", &dot);
  return segs + dot;
}

/* The figure: 4,000 8-byte results took 16 MB on disk, a file and a block each. */
static void test_packed_on_disk(void **st) {
  (void)st;
  bg_cache_t *c = open_cache("packed", 0);
  for (uint64_t k = 0; k < 4000; k++) {
    uint64_t v = k * 3;
    assert_int_equal(bg_cache_put(c, "small/v1", &k, sizeof k, &v, sizeof v), 0);
  }
  assert_true(disk_bytes("packed") < 1000000);
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_true(s.bytes < 1000000);
  bg_cache_close(c);
  /* All of them found again by a new handle. */
  c = open_cache("packed", 0);
  for (uint64_t k = 0; k < 4000; k++) {
    uint64_t v = 0;
    assert_int_equal(bg_cache_get(c, "small/v1", &k, sizeof k, &v, sizeof v), 0);
    assert_int_equal(v, k * 3);
  }
  bg_cache_close(c);
}

enum { REC = sizeof(bg__rec_hdr) + 1 + 8 + 8 }; /* a record of task "t", 8-byte key and result */

/* The path of the folder's only segment. */
static void only_entry(const char *name, char *buf, size_t cap);

/* Flips the byte at @off of @name's only segment. */
static void flip_at(const char *name, off_t off) {
  char p[600];
  only_entry(name, p, sizeof p);
  int fd = open(p, O_RDWR);
  assert_true(fd >= 0);
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static void put_three(const char *name) {
  bg_cache_t *c = open_cache(name, 0);
  for (uint64_t k = 0; k < 3; k++)
    assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, &k, sizeof k), 0);
  bg_cache_close(c);
}

/* Which of keys 0-2 a new handle finds, one bit each; *corrupt: what it counted as damaged. */
static unsigned found(const char *name, uint64_t *corrupt) {
  bg_cache_t *c = open_cache(name, 0);
  unsigned bits = 0;
  for (uint64_t k = 0; k < 3; k++) {
    uint64_t v = 99;
    int rc = bg_cache_get(c, "t", &k, sizeof k, &v, sizeof v);
    assert_true(rc == 0 ? v == k : rc == BG_ENOENT && v == 99);
    bits |= (rc == 0) << k;
  }
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  *corrupt = s.corrupt;
  bg_cache_close(c);
  return bits;
}

/* Damage inside a segment costs only the records it touches: a flipped result is a counted
 * miss, a flipped header is skipped over to the next record, and a torn tail (what a writer
 * that died mid-record leaves) is ignored by readers and cut off by the next writer. */
static void test_segment_damage(void **st) {
  (void)st;
  uint64_t corrupt;
  put_three("body");
  flip_at("body", REC + REC - 1);
  assert_int_equal(found("body", &corrupt), 5);
  assert_int_equal(corrupt, 1);
  put_three("header");
  flip_at("header", REC + 2);
  assert_int_equal(found("header", &corrupt), 5);
  assert_int_equal(corrupt, 0);
  put_three("torn");
  char p[600];
  only_entry("torn", p, sizeof p);
  int fd = open(p, O_RDWR | O_APPEND);
  char half[REC / 2];
  assert_int_equal(pread(fd, half, sizeof half, 0), (ssize_t)sizeof half);
  assert_int_equal(write(fd, half, sizeof half), (ssize_t)sizeof half);
  close(fd);
  assert_int_equal(found("torn", &corrupt), 7);
  bg_cache_t *c = open_cache("torn", 0);
  uint64_t k = 3;
  assert_int_equal(bg_cache_put(c, "t", &k, sizeof k, &k, sizeof k), 0);
  bg_cache_close(c);
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_size, 4 * REC);
  c = open_cache("torn", 0);
  assert_int_equal(bg_cache_get(c, "t", &k, sizeof k, &k, sizeof k), 0);
  assert_int_equal(k, 3);
  bg_cache_close(c);
}

/* The cap counts bytes on disk: 8-byte results, which took a 4 KiB block each before, keep
 * the folder's blocks under the cap (and its eighth of slack) all along. */
static void test_cap_on_disk(void **st) {
  (void)st;
  enum { CAP = 64 * 1024 };
  bg_cache_t *c = open_cache("disk-cap", CAP);
  for (uint64_t k = 0; k < 6000; k++) {
    assert_int_equal(bg_cache_put(c, "small/v1", &k, sizeof k, &k, sizeof k), 0);
    if (k % 100 == 0)
      assert_true(disk_bytes("disk-cap") <= CAP + CAP / 8);
  }
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_true(s.evictions > 3000);
  assert_true(s.bytes <= CAP + CAP / 8);
  /* The newest are kept. */
  uint64_t k = 5999, v = 0;
  assert_int_equal(bg_cache_get(c, "small/v1", &k, sizeof k, &v, sizeof v), 0);
  assert_int_equal(v, k);
  bg_cache_close(c);
}

enum { THREADS = 4, THREAD_OPS = 3000 };

static void *hammer(void *arg) {
  bg_cache_t *c = arg;
  unsigned seed = (unsigned)(uintptr_t)pthread_self();
  uintptr_t bad = 0;
  for (int r = 0; r < THREAD_OPS; r++) {
    uint64_t k = (uint64_t)rand_r(&seed) % 500, v[4], want[4];
    value_of(k, want, 4);
    int rc = bg_cache_get(c, "threads", &k, sizeof k, v, sizeof v);
    if (rc == 0 && memcmp(v, want, sizeof v) != 0)
      bad = 1;
    if (rc != 0 && bg_cache_put(c, "threads", &k, sizeof k, want, sizeof want) != 0)
      bad = 2;
  }
  return (void *)bad;
}

/* Threads sharing one handle under a cap that makes them evict: only right results, no
 * damage seen. Also run under ThreadSanitizer (make tsan). */
static void test_threads_one_handle(void **st) {
  (void)st;
  bg_cache_t *c = open_cache("threads", 16 * 1024);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, hammer, c), 0);
  for (int i = 0; i < THREADS; i++) {
    void *bad;
    assert_int_equal(pthread_join(t[i], &bad), 0);
    assert_null(bad);
  }
  bg_cache_stats_t s;
  assert_int_equal(bg_cache_stats(c, &s), 0);
  assert_int_equal(s.corrupt, 0);
  assert_true(s.hits > 0 && s.evictions > 0);
  bg_cache_close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identical_results), cmocka_unit_test(test_corrupt_entry),
      cmocka_unit_test(test_eviction),          cmocka_unit_test(test_concurrent_writers),
      cmocka_unit_test(test_failed_store),      cmocka_unit_test(test_planted_lock_link),
      cmocka_unit_test(test_non_regular_entry), cmocka_unit_test(test_remove),
      cmocka_unit_test(test_refusals),          cmocka_unit_test(test_memo_mismatch),
      cmocka_unit_test(test_memo_key),          cmocka_unit_test(test_memo_key_errors),
      cmocka_unit_test(test_packed_on_disk),    cmocka_unit_test(test_segment_damage),
      cmocka_unit_test(test_cap_on_disk),       cmocka_unit_test(test_threads_one_handle),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
