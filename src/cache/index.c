/* SPDX-License-Identifier: MIT */
/* The handle's index of the folder: key hash -> (segment, offset) of the key's newest record,
 * an open-addressing table with linear probing, at most half full. Built by scanning the
 * segments, so it is a cache of the folder: a wrong or stale slot costs a miss, never a wrong
 * result, since every read checks the record against the key it was asked for. */
#include "internal/cache_impl.h"

#include <stdlib.h>

#define INITIAL_CAP 1024

static size_t home(const bg__index *x, uint64_t h) {
  return (size_t)h & (x->cap - 1);
}

const bg__slot *bg__index_find(const bg__index *x, uint64_t h) {
  for (size_t i = x->cap ? home(x, h) : 0; x->cap && x->v[i].h; i = (i + 1) & (x->cap - 1))
    if (x->v[i].h == h)
      return x->v[i].seg ? &x->v[i] : NULL;
  return NULL;
}

void bg__index_forget(bg__index *x, uint64_t h) {
  for (size_t i = x->cap ? home(x, h) : 0; x->cap && x->v[i].h; i = (i + 1) & (x->cap - 1))
    if (x->v[i].h == h)
      x->v[i].seg = 0;
}

/* Sets @h's slot in a table known to have room. */
static void place(bg__index *x, uint64_t h, uint64_t seg, uint64_t off) {
  size_t i = home(x, h);
  while (x->v[i].h && x->v[i].h != h)
    i = (i + 1) & (x->cap - 1);
  if (!x->v[i].h)
    x->used++;
  /* The newest record wins: a later segment, or later in the same one. A scan may meet an
   * older record after a newer one (an older segment's tail read after a newer segment was
   * found), so the order of scanning alone is not enough. */
  else if (x->v[i].seg > seg || (x->v[i].seg == seg && x->v[i].off > off))
    return;
  x->v[i] = (bg__slot){h, seg, off};
}

/* Rebuilds the table at @cap slots, without the damaged slots and, when @c is given, those of
 * segments @c no longer has, which @dropped counts. Return: 0 or -1. */
static int rebuild(bg__index *x, size_t cap, const bg_cache_t *c, size_t *dropped) {
  bg__slot *old = x->v;
  size_t n = x->cap;
  bg__slot *v = calloc(cap, sizeof *v);
  if (!v)
    return -1;
  *x = (bg__index){v, cap, 0};
  for (size_t i = 0; i < n; i++) {
    if (!old[i].h || !old[i].seg)
      continue;
    if (c && !bg__seg_find(c, old[i].seg))
      ++*dropped;
    else
      place(x, old[i].h, old[i].seg, old[i].off);
  }
  free(old);
  return 0;
}

int bg__index_set(bg__index *x, uint64_t h, uint64_t seg, uint64_t off) {
  size_t unused = 0;
  if ((x->used + 1) * 2 > x->cap &&
      rebuild(x, x->cap ? 2 * x->cap : INITIAL_CAP, NULL, &unused) != 0)
    return -1;
  place(x, h, seg, off);
  return 0;
}

size_t bg__index_drop_dead(bg__index *x, const bg_cache_t *c) {
  size_t dropped = 0;
  /* Without memory for a new table the stale slots stay: a lookup checks the segment anyway. */
  if (x->cap)
    rebuild(x, x->cap, c, &dropped);
  return dropped;
}

void bg__index_free(bg__index *x) {
  free(x->v);
  *x = (bg__index){0};
}
