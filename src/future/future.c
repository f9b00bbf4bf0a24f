/* SPDX-License-Identifier: MIT */
/* Futures: the caller's side of a submitted task. Every state change happens under the
 * executor's mutex and is broadcast on its done_cv, so one condition variable serves waits on
 * one future, on any of several, and the as-completed iterator. */
#include "brigade/error.h"
#include "internal/future.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bg_completion {
  bg_executor_t *ex;
  size_t n;
  size_t returned;
  bg_future_t **fs;
  unsigned char *taken;
};

/* An absolute CLOCK_MONOTONIC deadline @timeout_ms from now; timeout_ms < 0: none. */
static bool deadline(int64_t timeout_ms, struct timespec *ts) {
  if (timeout_ms < 0)
    return false;
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(timeout_ms / 1000);
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
  return true;
}

bool bg__future_unref(bg_future_t *f) {
  if (--f->refs > 0)
    return false;
  bg_executor_t *ex = f->ex;
  free(f);
  return --ex->refs == 0;
}

static bool finished(const bg_future_t *f) {
  return f->state == BG_FUTURE_DONE || f->state == BG_FUTURE_CANCELLED;
}

/* Checks that @n futures exist and share one executor, which it returns. */
static bg_executor_t *common_executor(bg_future_t *const *fs, size_t n) {
  if (!fs || n == 0 || !fs[0])
    return NULL;
  for (size_t i = 1; i < n; i++)
    if (!fs[i] || fs[i]->ex != fs[0]->ex)
      return NULL;
  return fs[0]->ex;
}

/* Waits, mutex held, until one of the futures not marked in @taken (NULL: none marked) has
 * finished (@all: until every one has); its index goes to *index. */
static int wait_locked(bg_executor_t *ex, bg_future_t *const *fs, size_t n,
                       const unsigned char *taken, bool all, int64_t timeout_ms, size_t *index) {
  struct timespec ts;
  bool timed = deadline(timeout_ms, &ts);
  for (;;) {
    size_t first = SIZE_MAX, open = 0;
    for (size_t i = 0; i < n; i++) {
      if (taken && taken[i])
        continue;
      if (!finished(fs[i]))
        open++;
      else if (first == SIZE_MAX)
        first = i;
    }
    if (all ? open == 0 : first != SIZE_MAX) {
      if (index)
        *index = first;
      return BG_OK;
    }
    int e = timed ? pthread_cond_timedwait(&ex->done_cv, &ex->mu, &ts)
                  : pthread_cond_wait(&ex->done_cv, &ex->mu);
    if (e == ETIMEDOUT)
      return BG_ETIMEDOUT;
  }
}

static int wait_many(bg_future_t *const *fs, size_t n, bool all, int64_t timeout_ms,
                     size_t *index) {
  bg_executor_t *ex = common_executor(fs, n);
  if (!ex)
    return BG_EINVAL;
  pthread_mutex_lock(&ex->mu);
  int rc = wait_locked(ex, fs, n, NULL, all, timeout_ms, index);
  pthread_mutex_unlock(&ex->mu);
  return rc;
}

int bg_future_wait(bg_future_t *f, int64_t timeout_ms) {
  return wait_many(&f, f ? 1 : 0, true, timeout_ms, NULL);
}

int bg_future_wait_any(bg_future_t *const *fs, size_t n, int64_t timeout_ms, size_t *index) {
  if (!index)
    return BG_EINVAL;
  return wait_many(fs, n, false, timeout_ms, index);
}

int bg_future_wait_all(bg_future_t *const *fs, size_t n, int64_t timeout_ms) {
  return wait_many(fs, n, true, timeout_ms, NULL);
}

int bg_future_state(const bg_future_t *f) {
  if (!f)
    return BG_EINVAL;
  pthread_mutex_lock(&f->ex->mu);
  int s = f->state;
  pthread_mutex_unlock(&f->ex->mu);
  return s;
}

int bg_future_cancel(bg_future_t *f) {
  if (!f)
    return BG_EINVAL;
  bg_executor_t *ex = f->ex;
  pthread_mutex_lock(&ex->mu);
  int rc = BG_OK;
  if (f->state == BG_FUTURE_PENDING) {
    /* It stays in the queue until a worker pops and drops it. */
    f->state = BG_FUTURE_CANCELLED;
    pthread_cond_broadcast(&ex->done_cv);
  } else if (f->state != BG_FUTURE_CANCELLED) {
    rc = BG_EBUSY;
  }
  pthread_mutex_unlock(&ex->mu);
  return rc;
}

static int status_code(const bg_item_status_t *st) {
  switch (st->state) {
  case BG_ITEM_OK:
    return BG_OK;
  case BG_ITEM_FAILED:
    return BG_ETASK;
  case BG_ITEM_TIMEOUT:
    return BG_ETIMEDOUT;
  default:
    return BG_ECRASH;
  }
}

int bg_future_result(const bg_future_t *f, const void **out, bg_item_status_t *st) {
  if (!f)
    return BG_EINVAL;
  pthread_mutex_lock(&f->ex->mu);
  int state = f->state;
  bg_item_status_t s = f->st;
  pthread_mutex_unlock(&f->ex->mu);
  if (state == BG_FUTURE_CANCELLED) {
    if (st)
      *st = (bg_item_status_t){BG_ITEM_PENDING, 0, 0};
    return BG_ECANCELED;
  }
  if (state != BG_FUTURE_DONE)
    return BG_EBUSY;
  if (st)
    *st = s;
  int rc = status_code(&s);
  if (rc == 0 && out)
    *out = f->out;
  return rc;
}

void bg_future_release(bg_future_t *f) {
  if (!f)
    return;
  bg_executor_t *ex = f->ex;
  pthread_mutex_lock(&ex->mu);
  bool last = bg__future_unref(f);
  pthread_mutex_unlock(&ex->mu);
  if (last)
    bg__exec_free(ex);
}

int bg_completion_create(bg_future_t *const *fs, size_t n, bg_completion_t **out) {
  if (!out)
    return BG_EINVAL;
  *out = NULL;
  bg_executor_t *ex = common_executor(fs, n);
  if (!ex)
    return BG_EINVAL;
  bg_completion_t *c = calloc(1, sizeof *c);
  bg_future_t **copy = calloc(n, sizeof *copy);
  unsigned char *taken = calloc(n, 1);
  if (!c || !copy || !taken) {
    free(taken);
    free(copy);
    free(c);
    return BG_ENOMEM;
  }
  memcpy(copy, fs, n * sizeof *copy);
  *c = (bg_completion_t){.ex = ex, .n = n, .fs = copy, .taken = taken};
  *out = c;
  return BG_OK;
}

int bg_completion_next(bg_completion_t *c, int64_t timeout_ms, size_t *index) {
  if (!c || !index)
    return BG_EINVAL;
  if (c->returned == c->n)
    return BG_ENOENT;
  pthread_mutex_lock(&c->ex->mu);
  int rc = wait_locked(c->ex, c->fs, c->n, c->taken, false, timeout_ms, index);
  pthread_mutex_unlock(&c->ex->mu);
  if (rc == 0) {
    c->taken[*index] = 1;
    c->returned++;
  }
  return rc;
}

void bg_completion_destroy(bg_completion_t *c) {
  if (!c)
    return;
  free(c->taken);
  free(c->fs);
  free(c);
}
