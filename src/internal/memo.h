/* SPDX-License-Identifier: MIT */
/* The check bg_map makes on a map whose task is bg_memo_task: the memo repeats the map's
 * sizes, and one made for other sizes would store and return results of the wrong length. */
#ifndef BRIGADE_INTERNAL_MEMO_H
#define BRIGADE_INTERNAL_MEMO_H

#include "brigade/map.h"

/* Return: 0 when @d's ctx is a usable bg_memo_t for @d's sizes, else BG_EINVAL. */
int bg__memo_check(const bg_map_desc_t *d);

#endif
