/* SPDX-License-Identifier: MIT */
/* Big buffers: aligned, zeroed, writable end to end, on huge pages where the kernel gives them,
 * refused with a code (never a crash) where the address space is short, and freed whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "testkit.h"

#include "brigade.h"

/* The kB of anonymous huge pages this process has mapped (/proc/self/smaps_rollup). */
static long huge_kb(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (!f)
    return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

static int thp_allowed(void) {
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f)
    return 0;
  char buf[128] = "";
  if (!fgets(buf, sizeof buf, f))
    buf[0] = '\0';
  fclose(f);
  return strstr(buf, "[never]") == NULL && buf[0] != '\0';
}

static void buffers_are_aligned_zeroed_and_whole(void **state) {
  (void)state;
  const size_t sizes[] = {1, 4096, (2u << 20) - 1, 2u << 20, (5u << 20) + 123, 64u << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    void *p = NULL;
    assert_int_equal(bg_big_alloc(sizes[k], &p), 0);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % (2u << 20), 0);
    unsigned char *b = p;
    for (size_t i = 0; i < sizes[k]; i += 4093)
      assert_int_equal(b[i], 0);
    assert_int_equal(b[sizes[k] - 1], 0);
    memset(b, 0xab, sizes[k]); /* every byte is writable */
    bg_big_free(p, sizes[k]);
  }
  bg_big_free(NULL, 123);
}

static void huge_pages_are_used_where_allowed(void **state) {
  (void)state;
  if (!thp_allowed() || huge_kb() < 0) {
    printf("transparent huge pages are off here: nothing to check\n");
    return;
  }
  long before = huge_kb();
  void *p;
  size_t bytes = 64u << 20;
  assert_int_equal(bg_big_alloc(bytes, &p), 0);
  memset(p, 1, bytes);
  long during = huge_kb();
  bg_big_free(p, bytes);
  /* The kernel may be short of free 2 MiB blocks on a busy machine; some are expected, not all. */
  if (during <= before)
    printf("no huge page was granted this time (fragmented memory?): %ld kB\n", during);
  else
    assert_true(during - before >= 2048);
}

static void refusals_are_codes(void **state) {
  (void)state;
  void *p = (void *)1;
  assert_int_equal(bg_big_alloc(0, &p), BG_EINVAL);
  assert_int_equal(bg_big_alloc(10, NULL), BG_EINVAL);
  assert_int_equal(bg_big_alloc(SIZE_MAX - 10, &p), BG_ERANGE);
  /* A small address-space limit (ulimit -v): a code, not a crash (in a child, so that the
   * limit does not outlive the case). Not under the sanitizers, whose shadow memory needs
   * terabytes of address space. */
  if (TK_TSAN)
    return;
#if defined(__SANITIZE_ADDRESS__)
  return;
#endif
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = {(rlim_t)tk_vm_size() + (64u << 20), (rlim_t)tk_vm_size() + (64u << 20)};
    setrlimit(RLIMIT_AS, &rl);
    void *q;
    _exit(bg_big_alloc((size_t)1 << 30, &q) == BG_ENOMEM ? 0 : 1);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(buffers_are_aligned_zeroed_and_whole),
      cmocka_unit_test(huge_pages_are_used_where_allowed),
      cmocka_unit_test(refusals_are_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
