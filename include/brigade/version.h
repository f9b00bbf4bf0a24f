/* SPDX-License-Identifier: MIT */
/* The library's version and the options it was built with. */
#ifndef BRIGADE_VERSION_H
#define BRIGADE_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version of these headers, for tests at compile time. CMake reads the project's version
 * from these three lines. bg_version() says which library is linked at run time: with a shared
 * library the two may differ. */
#define BG_VERSION_MAJOR 0
#define BG_VERSION_MINOR 1
#define BG_VERSION_PATCH 0

/* One number that grows with the version: 10000 * major + 100 * minor + patch. */
#define BG_VERSION_NUMBER (BG_VERSION_MAJOR * 10000 + BG_VERSION_MINOR * 100 + BG_VERSION_PATCH)

/* Nonzero when these headers are version major.minor.patch or later:
 * #if BG_VERSION_AT_LEAST(0, 2, 0) ... #endif */
#define BG_VERSION_AT_LEAST(major, minor, patch)                                                   \
  (BG_VERSION_NUMBER >= (major)*10000 + (minor)*100 + (patch))

/** bg_version - the version of the library in use, such as "0.1.0" (a static string). */
const char *bg_version(void);

/**
 * bg_build_options - how the library was built, as "key=value" words separated by spaces,
 * such as "openmp=on hwloc=2.9.0 build=Release" (a static string).
 */
const char *bg_build_options(void);

#ifdef __cplusplus
}
#endif
#endif
