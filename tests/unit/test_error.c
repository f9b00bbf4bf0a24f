/* SPDX-License-Identifier: MIT */
/* Status codes: every code has its own message and name, unknown codes are handled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "brigade.h"

static void every_code_has_a_distinct_message_and_name(void **state) {
  (void)state;
  static const int codes[] = {
#define CODE(name, value, msg) BG_##name,
      BG_ERRNO_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_string_not_equal(bg_strerror(codes[i]), "unknown error");
    assert_true(strncmp(bg_errname(codes[i]), "BG_", 3) == 0);
    for (size_t j = 0; j < i; j++) {
      assert_string_not_equal(bg_strerror(codes[i]), bg_strerror(codes[j]));
      assert_string_not_equal(bg_errname(codes[i]), bg_errname(codes[j]));
    }
  }
  assert_string_equal(bg_errname(BG_EINVAL), "BG_EINVAL");
  /* "This build lacks it" and "this backend cannot do it" are told apart. */
  assert_int_not_equal(BG_EBACKEND, BG_ENOTSUP);
  assert_non_null(strstr(bg_strerror(BG_ENOTSUP), "build"));
  assert_non_null(strstr(bg_strerror(BG_EBACKEND), "backend"));
  assert_string_equal(bg_strerror(BG_OK), "success");
}

static void unknown_codes_are_named_as_such(void **state) {
  (void)state;
  assert_string_equal(bg_strerror(-9999), "unknown error");
  assert_string_equal(bg_errname(12345), "BG_EUNKNOWN");
}

static void version_and_build_options_are_set(void **state) {
  (void)state;
  assert_true(strlen(bg_version()) >= 5);
  /* The headers' macros and the library's string name the same version (CMake reads both from
   * version.h: a mismatch means an installed header of another version). */
  char v[32];
  snprintf(v, sizeof v, "%d.%d.%d", BG_VERSION_MAJOR, BG_VERSION_MINOR, BG_VERSION_PATCH);
  assert_string_equal(bg_version(), v);
  assert_int_equal(BG_VERSION_NUMBER,
                   BG_VERSION_MAJOR * 10000 + BG_VERSION_MINOR * 100 + BG_VERSION_PATCH);
  assert_true(BG_VERSION_AT_LEAST(0, 0, 0));
  assert_true(BG_VERSION_AT_LEAST(BG_VERSION_MAJOR, BG_VERSION_MINOR, BG_VERSION_PATCH));
  assert_false(BG_VERSION_AT_LEAST(BG_VERSION_MAJOR + 1, 0, 0));
  assert_non_null(strstr(bg_build_options(), "openmp="));
  assert_non_null(strstr(bg_build_options(), "hwloc="));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_code_has_a_distinct_message_and_name),
      cmocka_unit_test(unknown_codes_are_named_as_such),
      cmocka_unit_test(version_and_build_options_are_set),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
