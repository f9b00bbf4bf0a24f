/* SPDX-License-Identifier: MIT */
/* The journal's records and group commits. Workers (or the procs parent) append the records of
 * the items they settle to one buffer under a lock. During a map a writer thread takes the
 * buffer every group_ms and writes it in one pwrite, and syncs as the policy says, without the
 * lock; under BG_JOURNAL_SYNC_EVERY the worker that settles a group writes and syncs it itself
 * before going on. A record is "committed" once written: from then on a kill of the process
 * cannot lose it, only a power loss before the next sync. */
#define _GNU_SOURCE
#include "internal/clock.h"
#include "internal/journal.h"

#include "brigade/error.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* The group buffer's first size (or one record, if larger). Without a writer thread a full
 * buffer is written at once; with one, it grows until the writer takes it. */
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

/* Writes @len bytes at @off, whole; 0 or -1. */
static int write_all(int fd, const char *p, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(fd, p + done, len - done, (off_t)(off + done));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    done += (size_t)w;
  }
  return 0;
}

/* The group in the buffer has been written (@ok) or lost: the counts follow. Under the lock. */
static void written(bg_journal_t *j, size_t len, int ok, uint64_t now) {
  if (ok) {
    j->end += len;
    j->commits++;
  } else if (!j->write_error) {
    /* The first error is kept and no group is written after it: a later one would follow a
     * hole that a reader takes for whole records. */
    j->write_error = BG_ESYS;
  }
  j->last_write_ns = now;
}

/* Writes the buffer in place, under the lock (no writer thread runs meanwhile). */
static void commit(bg_journal_t *j, uint64_t now) {
  if (j->len && !j->write_error)
    written(j, j->len, write_all(j->fd, j->buf, j->len, j->end) == 0, now);
  j->len = 0;
}

/* Syncs what is written, under the lock. Nothing written since the last sync: nothing to do. */
static void sync_now(bg_journal_t *j, uint64_t now) {
  if (j->write_error || j->end == j->synced_end)
    return;
  if (fdatasync(j->fd) != 0)
    j->write_error = BG_ESYS;
  j->syncs++;
  j->last_sync_ns = now;
  j->synced_end = j->end;
}

/* After a group commit in place: sync as the policy says. */
static void sync_policy(bg_journal_t *j, uint64_t now) {
  if (j->sync == BG_JOURNAL_SYNC_EVERY ||
      (j->sync == BG_JOURNAL_SYNC_INTERVAL && now - j->last_sync_ns >= j->sync_ns))
    sync_now(j, now);
}

/* One round of the writer thread, entered and left under the lock: the group being filled is
 * swapped with the spare buffer and written, then synced when the interval is up, both with
 * the lock released so that workers go on appending. Only this thread writes during a map, so
 * the file's end moves only here. */
static void writer_round(bg_journal_t *j) {
  if (j->len && !j->write_error) {
    char *full = j->buf;
    size_t len = j->len, cap = j->cap;
    j->buf = j->spare, j->cap = j->spare_cap;
    j->spare = full, j->spare_cap = cap;
    j->len = 0;
    uint64_t off = j->end;
    pthread_mutex_unlock(&j->lock);
    int ok = write_all(j->fd, full, len, off) == 0;
    pthread_mutex_lock(&j->lock);
    written(j, len, ok, bg__now_ns());
  }
  uint64_t now = bg__now_ns();
  if (j->sync == BG_JOURNAL_SYNC_INTERVAL && !j->write_error && j->end != j->synced_end &&
      now - j->last_sync_ns >= j->sync_ns) {
    uint64_t end = j->end;
    pthread_mutex_unlock(&j->lock);
    int rc = fdatasync(j->fd);
    pthread_mutex_lock(&j->lock);
    if (rc != 0 && !j->write_error)
      j->write_error = BG_ESYS;
    j->syncs++;
    j->last_sync_ns = now;
    j->synced_end = end;
  }
}

static void *writer_main(void *arg) {
  bg_journal_t *j = arg;
  uint64_t period = j->group_ns;
  if (j->sync == BG_JOURNAL_SYNC_INTERVAL && j->sync_ns < period)
    period = j->sync_ns;
  pthread_mutex_lock(&j->lock);
  while (!j->writer_stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + period;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&j->wake, &j->lock, &until);
    writer_round(j);
  }
  pthread_mutex_unlock(&j->lock);
  return NULL;
}

int bg__journal_writer_start(bg_journal_t *j) {
  /* Under SYNC_EVERY a worker waits for its own group to be synced; with group_ms 0 each
   * settle writes. Both write in place. */
  if (j->sync == BG_JOURNAL_SYNC_EVERY || j->group_ns == 0)
    return BG_OK;
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&j->wake, &a);
  pthread_condattr_destroy(&a);
  j->writer_stop = 0;
  if (pthread_create(&j->writer, NULL, writer_main, j) != 0) {
    pthread_cond_destroy(&j->wake);
    return BG_ESYS;
  }
  pthread_mutex_lock(&j->lock);
  j->writer_on = 1;
  pthread_mutex_unlock(&j->lock);
  return BG_OK;
}

void bg__journal_writer_stop(bg_journal_t *j) {
  if (!j->writer_on)
    return;
  pthread_mutex_lock(&j->lock);
  j->writer_stop = 1;
  pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->lock);
  pthread_join(j->writer, NULL);
  pthread_cond_destroy(&j->wake);
  pthread_mutex_lock(&j->lock);
  j->writer_on = 0;
  pthread_mutex_unlock(&j->lock);
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

/* Room for one more record, under the lock: with a writer thread the buffer grows (the writer
 * empties it every group_ms); without one, the full group is written now. */
static int room(bg_journal_t *j, uint64_t *now) {
  if (j->len + j->rsize <= j->cap)
    return 0;
  if (!j->writer_on) {
    commit(j, *now = bg__now_ns());
    return 0;
  }
  size_t cap = 2 * j->cap;
  char *b = realloc(j->buf, cap);
  if (!b) {
    j->write_error = BG_ENOMEM;
    return -1;
  }
  j->buf = b;
  j->cap = cap;
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
    if (room(j, &now) != 0)
      break;
    bg__journal_encode(j, j->buf + j->len, i, st, j->out ? j->out + i * os : NULL);
    j->len += j->rsize;
    j->state[i] = (uint8_t)st->state;
  }
  if (j->len && !j->writer_on) {
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
  commit(j, now);
  if (force_sync)
    sync_now(j, now);
  else
    sync_policy(j, now);
  int rc = j->write_error;
  pthread_mutex_unlock(&j->lock);
  return rc;
}
