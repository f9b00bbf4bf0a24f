/* SPDX-License-Identifier: MIT */
/* bg_memo_task: the cache around a map's task. A result that cannot be stored (a full disk)
 * costs only a later recomputation, so store failures do not fail the item. */
#include "brigade/cache.h"

#include <stdint.h>

int bg_memo_task(void *out, const void *in, size_t i, void *memo) {
  const bg_memo_t *m = memo;
  /* Without results there is nothing to keep. */
  if (!out)
    return m->fn(out, in, i, m->ctx);
  uint64_t index = i;
  const void *key = in ? in : &index;
  size_t key_size = in ? m->in_size : sizeof index;
  if (bg_cache_get(m->cache, m->task, key, key_size, out, m->out_size) == 0)
    return 0;
  int rc = m->fn(out, in, i, m->ctx);
  if (rc == 0)
    bg_cache_put(m->cache, m->task, key, key_size, out, m->out_size);
  return rc;
}
