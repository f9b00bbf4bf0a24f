/* SPDX-License-Identifier: MIT */
/* What the comforts cost: a future per task against a map's item, and a cache hit against a
 * miss. Notes of the overhead suite. */
#ifndef BRIGADE_BENCH_COMFORTS_H
#define BRIGADE_BENCH_COMFORTS_H

#include <stddef.h>

#include "result.h"

/* Submits @n trivial futures one by one on threads and on procs, waits for them all, and notes
 * the cost per future beside the cost per item of one map of the same items. */
void bench_note_futures(bench_result *res, unsigned workers, size_t n);

/* Maps @n trial divisions of a large prime three ways on threads: bare, through an empty cache
 * (misses and stores) and through the filled cache (hits), and notes the cost of each per item. */
void bench_note_cache(bench_result *res, unsigned workers, size_t n);

#endif
