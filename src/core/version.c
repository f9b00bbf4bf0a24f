/* SPDX-License-Identifier: MIT */
/* Version and build options, both fixed by CMake at configure time. */
#include "brigade/version.h"
#include "brigade_config.h"

const char *bg_version(void) {
  return BG_VERSION_STRING;
}

const char *bg_build_options(void) {
  return BG_BUILD_OPTIONS;
}
