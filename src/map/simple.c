/* SPDX-License-Identifier: MIT */
/* The one-call map and the process-wide pool it runs on. The pool is made at the first call and
 * kept: creating threads is the cost a pool exists to pay once. */
#include "brigade/map.h"
#include "brigade/error.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static bg_pool_t *default_pool;

/* A forked child has the parent's pool struct but none of its threads: a map on it would wait
 * forever. The child starts without a default pool and makes its own at its first call (the
 * parent's copy is left unfreed there: its threads' handles mean nothing in the child). */
static void forget_in_child(void) {
  pthread_mutex_init(&default_lock, NULL);
  default_pool = NULL;
}

static void register_fork_handler(void) {
  pthread_atfork(NULL, NULL, forget_in_child);
}

int bg_pool_default(bg_pool_t **out) {
  if (!out)
    return BG_EINVAL;
  pthread_once(&default_once, register_fork_handler);
  pthread_mutex_lock(&default_lock);
  int rc = BG_OK;
  if (!default_pool)
    rc = bg_pool_create(NULL, &default_pool);
  if (rc == BG_OK)
    *out = default_pool;
  pthread_mutex_unlock(&default_lock);
  return rc;
}

int bg_map_simple(bg_task_fn fn, void *ctx, const void *in, size_t in_size, void *out,
                  size_t out_size, size_t n) {
  bg_pool_t *pool;
  int rc = bg_pool_default(&pool);
  if (rc != BG_OK)
    return rc;
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = fn, d.ctx = ctx, d.n = n;
  d.in = in, d.in_size = in_size;
  d.out = out, d.out_size = out_size;
  return bg_map(pool, &d, NULL);
}
