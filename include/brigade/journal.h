/* SPDX-License-Identifier: MIT */
/* bg_journal: a crash-safe record of a map's finished items, so that a map killed at item
 * 900,000 of 1,000,000 (the OOM killer, a pre-empted node, a time limit, Ctrl-C) resumes where
 * it stopped instead of from item 0.
 *
 * A map whose description names a journal appends one record per finished item: its index,
 * what became of it (bg_item_status_t) and its result bytes, each record checksummed and bound
 * to its job, written in group commits. Opening an existing journal replays it: a map with it
 * then copies the recorded results into its out array and runs only the items the journal
 * lacks (and, with BG_JOURNAL_RERUN_FAILED, the ones that failed). A torn last record (a kill
 * -9 in the middle of a write, a power loss) or a record whose checksum does not hold is
 * dropped, never trusted: its item runs again.
 *
 *   bg_journal_opts_t o;
 *   bg_journal_opts_init(&o);
 *   o.task = "primes-v1"; o.n = n; o.out_size = sizeof(uint64_t);
 *   bg_journal_t *j;
 *   if (bg_journal_open("primes.journal", &o, &j, NULL) == 0) {
 *     d.journal = j;                    // a bg_map_desc_t of the same n and sizes
 *     rc = bg_map(pool, &d, &report);   // report.n_replayed items came from the journal
 *     bg_journal_close(j);
 *   }
 */
#ifndef BRIGADE_JOURNAL_H
#define BRIGADE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "brigade/map.h"

#ifdef __cplusplus
extern "C" {
#endif

/* When the records written reach the disk itself (fdatasync). A record written but not synced
 * survives the process being killed (it is in the kernel's page cache), not a power loss. */
typedef enum bg_journal_sync {
  BG_JOURNAL_SYNC_NONE = 0, /* never during a map; once at bg_journal_close */
  BG_JOURNAL_SYNC_INTERVAL, /* at a group commit when sync_ms have passed since the last sync */
  BG_JOURNAL_SYNC_EVERY,    /* every group commit, before the workers that settled it go on: no
                               finished item is ever lost, at a sync's cost per chunk */
} bg_journal_sync_t;

enum bg_journal_flags {
  /* Failed items recorded in the journal run again (GNU parallel's --resume-failed); without
   * it they keep their recorded failure and only the items never recorded run. */
  BG_JOURNAL_RERUN_FAILED = 1u << 0,
  /* Start a new journal even if @path holds one (its records are discarded). Without it an
   * existing journal of the same job is resumed, and one of another job is refused. */
  BG_JOURNAL_TRUNCATE = 1u << 1,
  /* Read an existing journal as it is, whatever its job: the job is taken from its header
   * (the options' task, n, sizes, digest, base and total are ignored), nothing is created or
   * written, a torn tail is counted but not cut, and the lock is shared, so a journal that a
   * map holds is refused (BG_EBUSY) but several readers may look at once. For showing a
   * journal and merging shards: a map refuses such a journal (BG_EINVAL). */
  BG_JOURNAL_INSPECT = 1u << 2,
};

#define BG_JOURNAL_OPTS_VERSION 1u
/* The longest task name, in bytes (without the terminating NUL). */
#define BG_JOURNAL_TASK_MAX 63u

/* The job a journal belongs to: a resumed journal must repeat every field of it, so that the
 * results of one job are never mixed into another's. */
typedef struct bg_journal_opts {
  uint32_t version; /* BG_JOURNAL_OPTS_VERSION, set by bg_journal_opts_init() */
  const char *task; /* the job's name, versioned by its user ("primes-v2"): change it when
                       the function changes, and the old journal is refused, not mixed in */
  size_t n;         /* items in the map */
  size_t in_size;   /* the map's in_size (0 for an index range) */
  size_t out_size;  /* the map's out_size (0 when results are not kept) */
  uint64_t digest;  /* of the inputs, as the caller computes it (bg_journal_digest); 0: none */
  /* A shard of a larger job: items [base, base + n) of @total. The map still sees indices
   * 0..n-1; the journal keeps base and total so that shards can be merged and checked for
   * gaps and overlaps. total 0 means n (the whole job, base 0). */
  uint64_t base;
  uint64_t total;
  unsigned flags;    /* enum bg_journal_flags */
  int sync;          /* bg_journal_sync_t; default BG_JOURNAL_SYNC_NONE */
  uint32_t sync_ms;  /* BG_JOURNAL_SYNC_INTERVAL's period; default 10 */
  uint32_t group_ms; /* records wait at most about this long in memory before a group commit
                        writes them, unless no item settles meanwhile (the map's end writes
                        the rest); default 2. 0: write at every settle */
} bg_journal_opts_t;

/* What an open journal holds and what its last map added. */
typedef struct bg_journal_info {
  char task[BG_JOURNAL_TASK_MAX + 1];
  uint64_t n, in_size, out_size, digest, base, total;
  size_t n_ok;      /* items whose latest record says ok */
  size_t n_failed;  /* items whose latest record says failed, crashed, exited or timeout */
  size_t n_dropped; /* records dropped at open: a torn tail or a checksum that did not hold */
  uint64_t records; /* records in the file, appended ones included */
  uint64_t commits; /* group commits (writes) since open */
  uint64_t syncs;   /* fdatasyncs since open */
  int write_error;  /* 0, or the BG_E* of the first write or sync that failed: the records
                       since are not in the file, and the map that hit it returned it */
} bg_journal_info_t;

/** bg_journal_opts_init - zero @o, set its version and defaults. */
void bg_journal_opts_init(bg_journal_opts_t *o);

/**
 * bg_journal_digest - the XXH3-64 digest of @len bytes, for bg_journal_opts_t.digest.
 */
uint64_t bg_journal_digest(const void *data, size_t len);

/**
 * bg_journal_open - open, replay or create the journal of a job.
 * @path: the journal file. Created when absent, through a temporary renamed into place, so a
 *        journal file always has a whole header.
 * @o: the job (see bg_journal_opts_t).
 * @out: OUT: the journal; close it with bg_journal_close().
 * @msg, @cap: OUT, optional: a sentence naming the file, the problem and the fix.
 *
 * An existing journal is read whole: records that do not check out are counted as dropped,
 * and a torn tail is cut off so that new records follow the last whole one. The journal is
 * locked (flock) until closed: a second process resuming the same journal is refused.
 *
 * Return: 0; BG_EINVAL (NULL arguments, no task, a task name longer than BG_JOURNAL_TASK_MAX,
 * base + n past total; or the file is the journal of another job: @msg names both); BG_EFORMAT
 * (not a brigade journal, or a header whose checksum fails); BG_EBUSY (another process holds
 * it); BG_ENOENT (BG_JOURNAL_INSPECT of a file that does not exist); BG_ERANGE (sizes that
 * overflow); BG_ENOMEM; BG_ESYS (cannot create, read or lock it).
 */
int bg_journal_open(const char *path, const bg_journal_opts_t *o, bg_journal_t **out, char *msg,
                    size_t cap);

/**
 * bg_journal_close - write what is pending, sync it, unlock and free. Accepts NULL.
 * Return: 0, or the BG_E* of a write or sync that failed (the journal is freed either way).
 */
int bg_journal_close(bg_journal_t *j);

/** bg_journal_info - what the journal holds (see bg_journal_info_t). Return: 0 or BG_EINVAL. */
int bg_journal_info(const bg_journal_t *j, bg_journal_info_t *info);

/**
 * bg_journal_replay - copy the recorded outcomes into @status and results into @out.
 * @status: n entries, or NULL: each item's latest record, BG_ITEM_PENDING where none.
 * @out: n * out_size bytes, or NULL: the results of the items recorded ok (others untouched).
 *
 * A map with the journal does this itself; this is for reading a journal without running
 * anything (merging shards, showing what failed). Return: 0, BG_EINVAL, BG_EBUSY (a map is
 * using the journal), or BG_ESYS.
 */
int bg_journal_replay(const bg_journal_t *j, bg_item_status_t *status, void *out);

#ifdef __cplusplus
}
#endif
#endif
