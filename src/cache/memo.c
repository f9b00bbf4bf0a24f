/* SPDX-License-Identifier: MIT */
/* bg_memo_task: the cache around a map's task. A result that cannot be stored (a full disk)
 * costs only a later recomputation, so store failures do not fail the item. */
#include "brigade/cache.h"
#include "brigade/error.h"
#include "internal/memo.h"

#include <stdint.h>
#include <stdlib.h>

/* Keys up to this long (a path, a short record) are built on the stack. */
#define KEY_STACK 256

int bg__memo_check(const bg_map_desc_t *d) {
  const bg_memo_t *m = d->ctx;
  if (!m || !m->cache || !m->task || !m->fn)
    return BG_EINVAL;
  if (d->in && !m->key && m->in_size != d->in_size)
    return BG_EINVAL;
  if (d->out && m->out_size != d->out_size)
    return BG_EINVAL;
  return BG_OK;
}

/* Asks the key function for item @i's key, in @small or, when longer, in a buffer it allocates
 * (*heap, for the caller to free). Return: the key's length, or the item's failure code. */
static int item_key(const bg_memo_t *m, const void *in, size_t i, char *small, char **heap) {
  int len = m->key(in, i, m->ctx, small, KEY_STACK);
  if (len <= KEY_STACK)
    return len;
  if ((unsigned)len > BG_MEMO_KEY_MAX)
    return BG_ERANGE;
  char *buf = malloc((size_t)len);
  if (!buf)
    return BG_ENOMEM;
  int again = m->key(in, i, m->ctx, buf, (size_t)len);
  if (again < 0 || again > len) {
    free(buf);
    return again < 0 ? again : BG_ERANGE;
  }
  *heap = buf;
  return again;
}

int bg_memo_task(void *out, const void *in, size_t i, void *memo) {
  const bg_memo_t *m = memo;
  /* Without results there is nothing to keep. */
  if (!out)
    return m->fn(out, in, i, m->ctx);
  uint64_t index = i;
  char small[KEY_STACK], *heap = NULL;
  const void *key = in ? in : &index;
  size_t key_size = in ? m->in_size : sizeof index;
  if (m->key) {
    int len = item_key(m, in, i, small, &heap);
    if (len < 0)
      return len;
    key = heap ? heap : small;
    key_size = (size_t)len;
  }
  int rc = 0;
  if (bg_cache_get(m->cache, m->task, key, key_size, out, m->out_size) != 0) {
    rc = m->fn(out, in, i, m->ctx);
    if (rc == 0)
      bg_cache_put(m->cache, m->task, key, key_size, out, m->out_size);
  }
  free(heap);
  return rc;
}
