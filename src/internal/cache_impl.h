/* SPDX-License-Identifier: MIT */
/* The memo cache's folder as its files share it: the handle, the record format of the segment
 * files, the in-memory index and the folder operations (docs in src/cache/segment.c). */
#ifndef BRIGADE_INTERNAL_CACHE_IMPL_H
#define BRIGADE_INTERNAL_CACHE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "brigade/cache.h"

/* One record of a segment file: this header, then the task's name, the key and the result. */
typedef struct bg__rec_hdr {
  uint32_t magic; /* BG__REC_MAGIC */
  uint32_t task_len;
  uint64_t key_len, out_len;
  uint64_t khash; /* bg__rec_khash of the task and key: what the index is keyed by */
  uint64_t sum;   /* XXH3-64 of the body */
  uint64_t hsum;  /* XXH3-64 of the fields above: a length is trusted only when this holds */
} bg__rec_hdr;

#define BG__REC_MAGIC 0x31524742u /* "BGR1" */

/* Where the index says a key's newest record is. h == 0: an empty slot; seg == 0: the record
 * was found damaged (the slot stays so that probing past it still works). */
typedef struct bg__slot {
  uint64_t h, seg, off;
} bg__slot;

typedef struct bg__index {
  bg__slot *v;
  size_t cap, used;
} bg__index;

/* A segment file this handle reads. */
typedef struct bg__seg {
  uint64_t num; /* from its name: a newer segment has a larger number */
  int fd;       /* read-only; shared with processes forked later, which only pread it */
  uint64_t end; /* the end of the last whole record indexed */
} bg__seg;

/* Shared with processes forked after open, so a procs map's hits count in the caller. A: all. */
typedef struct bg__cache_counters {
  _Atomic uint64_t hits, misses, corrupt, stores, evictions, bytes;
  _Atomic uint64_t since_scan; /* bytes on disk added since the folder was last scanned */
} bg__cache_counters;

/* Field tags: I immutable after open, A atomic, L under @lock. */
struct bg_cache {
  int dfd;               /* I: the folder */
  int lockfd;            /* I: its lock file, read for the eviction epoch */
  uint64_t max_bytes;    /* I */
  uint64_t seg_max;      /* I: no record is appended to a segment past this size */
  bg__cache_counters *n; /* A */
  pthread_mutex_t lock;
  pid_t pid;            /* L: the process that opened wfd */
  int wfd;              /* L: the segment this process appends to, on its own open file
                         * description so that its flock excludes other processes; -1: none */
  uint64_t wnum;        /* L: wfd's segment number */
  uint64_t epoch;       /* L: the lock file's epoch when the folder was last listed */
  int listed;           /* L: 0 until the folder is first listed */
  uint64_t top;         /* L: the largest segment number seen */
  bg__seg *segs;        /* L: by number, oldest first */
  size_t nsegs, segcap; /* L */
  bg__index idx;        /* L */
};

/* record.c */
uint64_t bg__rec_khash(const char *task, size_t task_len, const void *key, size_t key_len);
void bg__rec_seal(bg__rec_hdr *h, const void *body);
int bg__rec_hdr_ok(const bg__rec_hdr *h, uint64_t *len);
uint64_t bg__rec_scan(bg_cache_t *c, uint64_t num, int fd, uint64_t from, uint64_t to);

/* index.c */
const bg__slot *bg__index_find(const bg__index *x, uint64_t h);
void bg__index_forget(bg__index *x, uint64_t h);
int bg__index_set(bg__index *x, uint64_t h, uint64_t seg, uint64_t off);
size_t bg__index_drop_dead(bg__index *x, const bg_cache_t *c);
void bg__index_free(bg__index *x);

/* segment.c */
bg__seg *bg__seg_find(const bg_cache_t *c, uint64_t num);
void bg__seg_name(uint64_t num, char name[24]);
int bg__seg_parse(const char *name, uint64_t *num);
void bg__folder_sync(bg_cache_t *c);
void bg__folder_catch_up(bg_cache_t *c);
void bg__folder_drop(bg_cache_t *c, uint64_t num);
int bg__folder_append(bg_cache_t *c, const void *rec, size_t len, uint64_t khash, uint64_t *grown);

/* evict.c */
int bg__open_lockfile(int dfd);
int bg__lock_folder(int dfd);
void bg__lock_state(int lockfd, uint64_t st[2]);
int bg__lock_state_write(int lockfd, const uint64_t st[2]);
int bg__trim(bg_cache_t *c, uint64_t target, int evicting);
int bg__remove_lockfile(int dfd);

#endif
