/* SPDX-License-Identifier: MIT */
/* Versioned structs a caller fills (bg_pool_opts_t, bg_map_desc_t): a program built against an
 * older header passes a shorter struct, so the library copies what that version has into the
 * current layout and leaves the newer fields zero. */
#ifndef BRIGADE_INTERNAL_UPGRADE_H
#define BRIGADE_INTERNAL_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "brigade/error.h"

/* Copies @src, of version @version, into @dst (@size bytes, the current layout). @v1_size:
 * where version 1 ended. Return: 0, or BG_EINVAL for version 0 or one newer than @latest. */
static inline int bg__upgrade(void *dst, const void *src, uint32_t version, uint32_t latest,
                              size_t v1_size, size_t size) {
  if (version == 0 || version > latest)
    return BG_EINVAL;
  memset(dst, 0, size);
  memcpy(dst, src, version == 1 ? v1_size : size);
  return BG_OK;
}

#endif
