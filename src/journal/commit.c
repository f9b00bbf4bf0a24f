/* SPDX-License-Identifier: MIT */
/* The journal's records and group commits. Workers (or the procs parent) append the records of
 * the items they settle to one buffer under a lock; the buffer goes to the file in one write
 * when the group's time is up, when it is full, or at the map's end, and is synced as the
 * policy says. A record is "committed" once written: from then on a kill of the process cannot
 * lose it, only a power loss before the next sync. */
#define _GNU_SOURCE
#include "internal/clock.h"
#include "internal/journal.h"

#include "brigade/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* A group is written at the latest when it holds this many bytes (or one record, if larger). */
#define GROUP_BYTES (256u << 10)

void bg__journal_encode(const bg_journal_t *j, char *dst, size_t i, const bg_item_status_t *st,
                        const void *result) {
  bg__jrec r = {.index = i,
                .state = st->state,
                .code = st->code,
                .attempts = st->attempts,
                .magic = BG__JREC_MAGIC};
  size_t os = (size_t)j->h.out_size;
  memcpy(dst, &r, sizeof r);
  if (os) {
    if (result && st->state == BG_ITEM_OK)
      memcpy(dst + sizeof r, result, os);
    else
      memset(dst + sizeof r, 0, os); /* a failed item's result is not kept */
  }
  uint64_t sum = XXH3_64bits_withSeed(dst, sizeof r + os, j->h.sum);
  memcpy(dst + sizeof r + os, &sum, sizeof sum);
}

int bg__journal_decode(const bg_journal_t *j, const char *src, size_t *i, bg_item_status_t *st,
                       const char **result) {
  bg__jrec r;
  uint64_t sum;
  size_t os = (size_t)j->h.out_size;
  memcpy(&r, src, sizeof r);
  memcpy(&sum, src + sizeof r + os, sizeof sum);
  if (r.magic != BG__JREC_MAGIC || r.index >= j->h.n || r.state <= BG_ITEM_PENDING ||
      r.state > BG_ITEM_TIMEOUT || XXH3_64bits_withSeed(src, sizeof r + os, j->h.sum) != sum)
    return 0;
  *i = (size_t)r.index;
  *st = (bg_item_status_t){r.state, r.code, r.attempts};
  *result = src + sizeof r;
  return 1;
}

/* Writes the buffer (under the lock). A failed write keeps the first error and discards the
 * group: a later write after it would leave a hole the reader cannot see. */
static void commit(bg_journal_t *j, uint64_t now) {
  size_t off = 0;
  while (off < j->len && !j->write_error) {
    ssize_t w = pwrite(j->fd, j->buf + off, j->len - off, (off_t)(j->end + off));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      j->write_error = BG_ESYS;
      break;
    }
    off += (size_t)w;
  }
  if (!j->write_error) {
    j->end += j->len;
    j->records += j->len / j->rsize;
    j->commits++;
  }
  j->len = 0;
  j->last_write_ns = now;
}

static void sync_now(bg_journal_t *j, uint64_t now) {
  if (j->write_error)
    return;
  if (fdatasync(j->fd) != 0)
    j->write_error = BG_ESYS;
  j->syncs++;
  j->last_sync_ns = now;
}

/* After a group commit: sync as the policy says. */
static void sync_policy(bg_journal_t *j, uint64_t now) {
  if (j->sync == BG_JOURNAL_SYNC_EVERY ||
      (j->sync == BG_JOURNAL_SYNC_INTERVAL && now - j->last_sync_ns >= j->sync_ns))
    sync_now(j, now);
}

static int reserve(bg_journal_t *j) {
  if (j->buf)
    return 0;
  j->cap = GROUP_BYTES > j->rsize ? GROUP_BYTES / j->rsize * j->rsize : j->rsize;
  j->buf = malloc(j->cap);
  if (!j->buf) {
    j->write_error = BG_ENOMEM;
    return -1;
  }
  return 0;
}

void bg__journal_settled(bg_journal_t *j, size_t b, size_t e) {
  pthread_mutex_lock(&j->lock);
  if (j->write_error || reserve(j) != 0) {
    pthread_mutex_unlock(&j->lock);
    return;
  }
  size_t os = (size_t)j->h.out_size;
  uint64_t now = 0;
  for (size_t i = b; i < e; i++) {
    if (j->skip && (j->skip[i >> 6] >> (i & 63) & 1))
      continue;
    const bg_item_status_t *st = &j->status[i];
    if (st->state == BG_ITEM_PENDING)
      continue;
    if (j->len + j->rsize > j->cap)
      commit(j, now = bg__now_ns());
    bg__journal_encode(j, j->buf + j->len, i, st, j->out ? j->out + i * os : NULL);
    j->len += j->rsize;
    int was = j->state[i];
    j->n_ok -= was == BG_ITEM_OK;
    j->n_failed -= was > BG_ITEM_OK;
    j->state[i] = (uint8_t)st->state;
    j->n_ok += st->state == BG_ITEM_OK;
    j->n_failed += st->state > BG_ITEM_OK;
  }
  if (j->len) {
    now = bg__now_ns();
    if (j->sync == BG_JOURNAL_SYNC_EVERY || now - j->last_write_ns >= j->group_ns) {
      commit(j, now);
      sync_policy(j, now);
    }
  }
  pthread_mutex_unlock(&j->lock);
}

int bg__journal_flush(bg_journal_t *j, int force_sync) {
  pthread_mutex_lock(&j->lock);
  uint64_t now = bg__now_ns();
  if (j->len)
    commit(j, now);
  if (force_sync)
    sync_now(j, now);
  else
    sync_policy(j, now);
  int rc = j->write_error;
  pthread_mutex_unlock(&j->lock);
  return rc;
}
