/* SPDX-License-Identifier: MIT */
/* A disk cache of task results (joblib.Memory's idea): an entry is keyed by the task's
 * identity and its input bytes, and checked on every read (a damaged entry is recomputed,
 * never returned). Entries are records packed into append-only segment files, so a small
 * result costs its bytes on disk, not a file and a block; the folder is kept under a size cap,
 * counted in bytes on disk, by evicting whole segments, oldest first, and an entry read from
 * the older half is copied forward so that what is in use stays (least recently used, by
 * segment). Several threads and processes may share one folder and one handle.
 *
 * Trust: share a cache folder only with processes and users you trust. The checksum detects
 * damage, not tampering (it is not a MAC): anyone who can write to the folder can store an
 * entry whose result is wrong and that every reader will return. What brigade does guard
 * against is a folder's files being other than what it wrote: it never follows a link there,
 * never waits on a FIFO there, and treats a segment that is not a regular file as damaged. */
#ifndef BRIGADE_CACHE_H
#define BRIGADE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/map.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_cache bg_cache_t;

/**
 * bg_cache_open - use @dir as a cache, creating it (one level) if missing.
 * @max_bytes: the folder's size cap in bytes on disk (st_blocks); 0: no cap. Each process
 *             writing to the folder may overshoot it by an eighth of the cap before it looks
 *             at the folder again. Segments are a sixteenth of the cap (4 KiB to 64 MiB).
 *
 * The handle keeps an index of the folder's entries in memory (24 to 96 bytes per entry) and
 * each segment open: 16 to 20 files under a cap, one per 64 MiB without one. Its calls are
 * serialised by a mutex; threads that read large results in parallel may each open a handle.
 *
 * Return: 0; BG_EINVAL (NULL or empty dir, NULL out); BG_ENOENT (the parent folder does not
 * exist); BG_ESYS (not a folder, not writable, its lock file is a symbolic link (errno ELOOP)
 * or not a regular file (EINVAL), or another system error: errno says which); BG_ENOMEM.
 */
int bg_cache_open(const char *dir, uint64_t max_bytes, bg_cache_t **out);

/** bg_cache_close - free the handle (the entries stay on disk); NULL is a no-op. Calls on the
 * handle must have returned. */
void bg_cache_close(bg_cache_t *c);

/**
 * bg_cache_get - look up the result of @task on @in.
 * @task: the task's identity, such as "prime-count/v2": change it when the function changes,
 *        since C cannot hash a function's code the way joblib hashes Python source.
 * @out: @out_size bytes, written only on a hit.
 *
 * Return: 0 (hit); BG_ENOENT (miss: absent, stored with another result size, or damaged,
 * which is counted and not read again; a segment that is not a regular file, such as a FIFO
 * or a link, counts as damaged, is removed and never blocks); BG_EINVAL.
 */
int bg_cache_get(bg_cache_t *c, const char *task, const void *in, size_t in_size, void *out,
                 size_t out_size);

/**
 * bg_cache_put - store the result of @task on @in, replacing any entry for the same key.
 * The entry is appended to a segment with one write under the segment's lock, and readers
 * take only whole, checked records, so they see the whole entry or none; then the folder is
 * trimmed to the cap if it may have grown past it.
 *
 * Return: 0; BG_ERANGE (the entry alone is larger than the cap: not stored); BG_ESYS (the
 * write failed, for example a full disk: what was written is cut off again); BG_EINVAL;
 * BG_ENOMEM.
 */
int bg_cache_put(bg_cache_t *c, const char *task, const void *in, size_t in_size, const void *out,
                 size_t out_size);

/* What a handle has seen, counted across the processes forked from its owner after open. */
typedef struct bg_cache_stats {
  uint64_t hits;
  uint64_t misses;    /* corrupt entries included */
  uint64_t corrupt;   /* entries that failed their check, and segments not regular files */
  uint64_t stores;    /* entries written */
  uint64_t evictions; /* entries removed with their segments to keep the folder under the cap */
  uint64_t bytes;     /* bytes on disk at the folder's last scan plus blocks stored since */
} bg_cache_stats_t;

/** bg_cache_stats - the counters above. Return: 0 or BG_EINVAL. */
int bg_cache_stats(const bg_cache_t *c, bg_cache_stats_t *out);

/**
 * bg_cache_clear - remove every segment. The folder and its lock file stay, since other
 * processes may be using them; bg_cache_remove() removes the folder itself.
 *
 * Return: 0, BG_ESYS or BG_EINVAL.
 */
int bg_cache_clear(bg_cache_t *c);

/**
 * bg_cache_remove - remove the cache folder @dir entirely: its segments, the files of the
 * format before them (an entry file per result, temporary files), its lock file and the folder
 * itself. For a folder
 * that is yours alone, such as a temporary one: call it once every handle on the folder is
 * closed and no other process uses it. Files the cache did not write are left alone, and so
 * is the folder then. @dir itself is not followed if it is a symbolic link.
 *
 * Return: 0; BG_EINVAL (NULL or empty dir); BG_ENOENT (no such folder); BG_ESYS (not a folder,
 * a symbolic link, files of others left in it (errno ENOTEMPTY), or another system error:
 * errno says which).
 */
int bg_cache_remove(const char *dir);

/* The longest key a bg_memo_key_fn may give; a longer one fails its item with BG_ERANGE. */
#define BG_MEMO_KEY_MAX (1u << 20)

/**
 * bg_memo_key_fn - the cache key of item @i, for items whose bytes are not their identity: a
 * `char *` path's address changes from run to run, its characters do not.
 * @in, @i, @ctx: what the task gets (@ctx is the memo's ctx); @in is NULL for an index range.
 * @buf: where the key goes, @cap bytes.
 *
 * Called from any worker at once, so it must be thread-safe, and it must give the same key for
 * the same item every time: equal keys mean equal results.
 *
 * Return: the key's length, the key written to @buf when the length is at most @cap. A larger
 * length is a request: the memo calls again with a buffer of that many bytes (up to
 * BG_MEMO_KEY_MAX; beyond it, or if the second call asks for more again, the item fails with
 * BG_ERANGE without running). A negative value fails the item with that code, unrun.
 */
typedef int (*bg_memo_key_fn)(const void *in, size_t i, void *ctx, void *buf, size_t cap);

/* A task wrapped in the cache, for bg_map on any backend: set desc.fn = bg_memo_task and
 * desc.ctx to one of these. The key is the task name and the item's bytes (or its index when
 * the map has no items, or what @key gives); only results of calls that returned 0 are stored.
 *
 * The sizes repeat the map's, and bg_map checks them before any item runs: it fails with
 * BG_EINVAL when out_size differs from the map's (a map that keeps results), when in_size
 * differs (a map with items and no key function), or when cache, task or fn is NULL. Every
 * entry records its result's size, so a lookup for another size is a miss, never a short
 * result, even when bg_memo_task is called other than by bg_map. */
typedef struct bg_memo {
  bg_cache_t *cache;
  const char *task;   /* the identity, as for bg_cache_get */
  bg_task_fn fn;      /* the task computed on a miss */
  void *ctx;          /* its ctx */
  size_t in_size;     /* the map's in_size (unused when the map has no items or key is set) */
  size_t out_size;    /* the map's out_size */
  bg_memo_key_fn key; /* optional: the item's key (NULL: its bytes or index, as above) */
} bg_memo_t;

/** bg_memo_task - a bg_task_fn: the cached result, or fn's, which is then stored. */
int bg_memo_task(void *out, const void *in, size_t i, void *memo);

#ifdef __cplusplus
}
#endif

#endif
