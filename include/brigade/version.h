/* SPDX-License-Identifier: MIT */
/* The library's version and the options it was built with. */
#ifndef BRIGADE_VERSION_H
#define BRIGADE_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

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
