/* SPDX-License-Identifier: MIT */
/* The records of a segment file: a header with its own checksum, so that a record's length is
 * trusted only when intact, and a checksum over the body (task name, key, result). Scanning
 * reads headers only and so costs a read per 16 KiB of small records, or one per large one. */
#define _GNU_SOURCE
#include "internal/cache_impl.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* Headers are read this much at a time: on the stack of whichever thread stores or looks up. */
#define SCAN_BUF 16384

uint64_t bg__rec_khash(const char *task, size_t task_len, const void *key, size_t key_len) {
  uint64_t h = XXH3_64bits_withSeed(key_len ? key : "", key_len, XXH3_64bits(task, task_len));
  return h ? h : 1; /* 0 marks an empty slot of the index */
}

void bg__rec_seal(bg__rec_hdr *h, const void *body) {
  h->magic = BG__REC_MAGIC;
  h->sum = XXH3_64bits(body, h->task_len + h->key_len + h->out_len);
  h->hsum = XXH3_64bits(h, offsetof(bg__rec_hdr, hsum));
}

int bg__rec_hdr_ok(const bg__rec_hdr *h, uint64_t *len) {
  if (h->magic != BG__REC_MAGIC || XXH3_64bits(h, offsetof(bg__rec_hdr, hsum)) != h->hsum)
    return 0;
  /* Lengths no writer could have written are damage that happened to keep the checksum. */
  if (h->key_len > UINT64_MAX / 4 || h->out_len > UINT64_MAX / 4)
    return 0;
  *len = sizeof *h + h->task_len + h->key_len + h->out_len;
  return 1;
}

static ssize_t pread_full(int fd, char *buf, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t k = pread(fd, buf + got, len - got, (off_t)(off + got));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

/* Indexes the whole records of segment @num (open on @fd) between @from and @to. Bytes that
 * are not a valid header (a damaged one, or what a writer that died left) are skipped up to
 * the next magic number whose header checks. Return: the end of the last whole record, which
 * is where a record still being written, or a torn tail, begins. */
uint64_t bg__rec_scan(bg_cache_t *c, uint64_t num, int fd, uint64_t from, uint64_t to) {
  char buf[SCAN_BUF];
  const uint32_t magic = BG__REC_MAGIC;
  uint64_t pos = from, last = from;
  while (to - pos >= sizeof(bg__rec_hdr)) {
    size_t want = to - pos < sizeof buf ? (size_t)(to - pos) : sizeof buf;
    ssize_t got = pread_full(fd, buf, want, pos);
    if (got < (ssize_t)sizeof(bg__rec_hdr))
      break;
    uint64_t at = 0;
    while (at + sizeof(bg__rec_hdr) <= (uint64_t)got) {
      bg__rec_hdr h;
      uint64_t len;
      memcpy(&h, buf + at, sizeof h);
      if (bg__rec_hdr_ok(&h, &len)) {
        if (len > to - (pos + at))
          return last; /* not whole (yet) */
        bg__index_set(&c->idx, h.khash, num, pos + at);
        at += len;
        last = pos + at;
        continue;
      }
      const char *m = memmem(buf + at + 1, (size_t)got - at - 1, &magic, sizeof magic);
      /* No magic here: go on from the buffer's last bytes, where one may begin. */
      uint64_t next = m ? (uint64_t)(m - buf) : (uint64_t)got - (sizeof magic - 1);
      at = next > at ? next : at + 1;
      if (!m)
        break;
    }
    pos += at;
  }
  return last;
}
