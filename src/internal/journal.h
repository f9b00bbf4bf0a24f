/* SPDX-License-Identifier: MIT */
/* The journal's file format and handle, shared by its opening (journal.c), its group commits
 * (commit.c) and its part in a map (journal_map.c).
 *
 * The file is a 136-byte header and then fixed-size records, appended in the order items
 * settle; an item's latest record is its outcome. Each record is checksummed with the header's
 * own checksum as seed, so a record is valid only in the journal of its job: a record spliced
 * from another job's journal fails its check like a torn one. */
#ifndef BRIGADE_INTERNAL_JOURNAL_H
#define BRIGADE_INTERNAL_JOURNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "brigade/journal.h"

#define BG__JOURNAL_MAGIC "BGJOURN1"
#define BG__JREC_MAGIC 0x4a524742u /* "BGRJ" */

/* On disk, little-endian (brigade runs on little-endian machines only: the .npy reader says
 * so too). */
typedef struct bg__jhdr {
  char magic[8];  /* BG__JOURNAL_MAGIC */
  uint32_t hsize; /* sizeof(bg__jhdr): 136 */
  uint32_t rsize; /* bytes per record: sizeof(bg__jrec) + out_size + 8 */
  uint64_t n, in_size, out_size, digest, base, total;
  char task[BG_JOURNAL_TASK_MAX + 1];
  uint64_t sum; /* XXH3-64 of everything above */
} bg__jhdr;

/* A record: this, then out_size result bytes, then the XXH3-64 of both seeded with the
 * header's sum. */
typedef struct bg__jrec {
  uint64_t index;
  int32_t state; /* bg_item_state_t, never BG_ITEM_PENDING */
  int32_t code;
  uint32_t attempts;
  uint32_t magic; /* BG__JREC_MAGIC */
} bg__jrec;

struct bg_journal {
  int fd;
  bg__jhdr h;
  size_t rsize;
  uint64_t end; /* the file's length: where the next record goes */
  unsigned flags;
  int sync;
  uint64_t sync_ns, group_ns;
  uint8_t *state; /* n: each item's latest recorded state (BG_ITEM_PENDING: none) */
  size_t n_dropped;
  uint64_t commits, syncs;

  /* Group commits. L: under lock. */
  pthread_mutex_t lock;
  char *buf;              /* L: records not yet written */
  size_t len, cap;        /* L */
  uint64_t last_write_ns; /* L */
  uint64_t last_sync_ns;  /* L */
  int write_error;        /* L: the first failed write or sync */
  uint64_t synced_end;    /* L: the file's length at the start of the last sync */

  /* During a map (policies NONE and INTERVAL): a thread of its own writes the groups and syncs,
   * so that no worker waits for the disk (a sync by the worker that committed cost a 2-worker
   * map of 50 us items 19%, and the sync of a thread of its own still blocked the workers'
   * writes behind the inode: 6.7%). Workers only append to buf; the writer swaps it with spare
   * and writes that. */
  char *spare; /* the writer's: the group being written */
  size_t spare_cap;
  pthread_t writer;
  pthread_cond_t wake; /* L: signalled to stop the writer */
  int writer_on;       /* L: the thread runs */
  int writer_stop;     /* L */

  /* Set for the duration of one map (journal_map.c), under lock; read by the settle hook. */
  int busy;
  const bg_item_status_t *status; /* the map's statuses */
  const char *out;                /* the map's results, or NULL */
  const uint64_t *skip;           /* bit i: item i was replayed, not run: not recorded again */
};

/* The hook the backends call: items [b, e) have settled (their outcome is in the map's status
 * array and, when ok, their result in out). Appends their records and commits a group when the
 * policy says so. Thread-safe. */
void bg__journal_settled(bg_journal_t *j, size_t b, size_t e);

/* Writes the pending records and syncs as the policy says (@force_sync: sync whatever the
 * policy). Return: 0 or the journal's write error. */
int bg__journal_flush(bg_journal_t *j, int force_sync);

/* Starts and stops the writer thread for the duration of a map (no-ops under
 * BG_JOURNAL_SYNC_EVERY and group_ms 0, which write in place). Start returns 0 or BG_ESYS. */
int bg__journal_writer_start(bg_journal_t *j);
void bg__journal_writer_stop(bg_journal_t *j);

/* bg_journal_replay without its check that no map holds the journal (the map's own replay). */
int bg__journal_replay(bg_journal_t *j, bg_item_status_t *status, void *out);

/* Encodes one record of item i into @dst (j->rsize bytes). */
void bg__journal_encode(const bg_journal_t *j, char *dst, size_t i, const bg_item_status_t *st,
                        const void *result);

/* Checks one record read from the file; on success fills @st and points @result into it.
 * Return: 1 when it holds, 0 when it must be dropped. */
int bg__journal_decode(const bg_journal_t *j, const char *src, size_t *i, bg_item_status_t *st,
                       const char **result);

#endif
