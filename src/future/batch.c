/* SPDX-License-Identifier: MIT */
/* A batch of futures as one call (Python's executor.map): submit every item, wait for all,
 * gather results and statuses in order, release the futures. Built on the public calls only. */
#include "brigade/error.h"
#include "brigade/future.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What travels before each item's bytes: the user's function and ctx, and the item's index in
 * the batch (the executor's own index counts all its submissions). Function and ctx pointers
 * are valid in procs workers: they are forked from the caller, not exec'd. */
typedef struct batch_head {
  bg_task_fn fn;
  void *ctx;
  size_t i;
  int has_in;
} batch_head;

/* The item's bytes start on a 16-byte boundary of the copy, as malloc'd memory would. */
#define HEAD_BYTES ((sizeof(batch_head) + 15u) & ~(size_t)15u)

static int run_item(void *out, const void *in, size_t index, void *unused) {
  (void)index, (void)unused;
  batch_head h;
  memcpy(&h, in, sizeof h);
  return h.fn(out, h.has_in ? (const char *)in + HEAD_BYTES : NULL, h.i, h.ctx);
}

/* Waits for the first @n futures (cancelling those not started when @cancel), then releases
 * them. */
static void drop_all(bg_future_t **fs, size_t n, int cancel) {
  for (size_t i = 0; cancel && i < n; i++)
    bg_future_cancel(fs[i]);
  if (n)
    bg_future_wait_all(fs, n, BG_WAIT_FOREVER);
  for (size_t i = 0; i < n; i++)
    bg_future_release(fs[i]);
}

int bg_executor_map(bg_executor_t *ex, bg_task_fn fn, void *ctx, const void *in, size_t in_size,
                    void *out, size_t out_size, size_t n, bg_item_status_t *status) {
  if (!ex || !fn || (in && !in_size) || (out && !out_size))
    return BG_EINVAL;
  if (n == 0)
    return BG_OK;
  if (n > SIZE_MAX / sizeof(bg_future_t *) || in_size > SIZE_MAX / 2 - HEAD_BYTES ||
      (in && in_size > SIZE_MAX / n) || (out && out_size > SIZE_MAX / n))
    return BG_ERANGE;
  size_t item = in ? in_size : 0;
  bg_future_t **fs = malloc(n * sizeof *fs);
  char *buf = malloc(HEAD_BYTES + item);
  if (!fs || !buf) {
    free(fs), free(buf);
    return BG_ENOMEM;
  }
  memset(buf, 0, HEAD_BYTES);
  int rc = BG_OK;
  size_t sent = 0;
  for (; sent < n; sent++) {
    batch_head h = {fn, ctx, sent, in != NULL};
    memcpy(buf, &h, sizeof h);
    if (in)
      memcpy(buf + HEAD_BYTES, (const char *)in + sent * in_size, in_size);
    rc = bg_submit(ex, run_item, NULL, buf, HEAD_BYTES + item, out ? out_size : 0, &fs[sent]);
    if (rc != BG_OK)
      break;
  }
  free(buf);
  if (rc != BG_OK) {
    /* Nothing of a batch that could not be submitted whole keeps running after the call. */
    drop_all(fs, sent, 1);
    free(fs);
    return rc;
  }
  bg_future_wait_all(fs, n, BG_WAIT_FOREVER);
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    const void *res;
    bg_item_status_t st;
    int frc = bg_future_result(fs[i], &res, &st);
    if (frc == BG_OK && out)
      memcpy((char *)out + i * out_size, res, out_size);
    failed += frc != BG_OK;
    if (status)
      status[i] = st;
  }
  drop_all(fs, n, 0);
  free(fs);
  return failed ? BG_ETASK : BG_OK;
}
