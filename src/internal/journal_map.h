/* SPDX-License-Identifier: MIT */
/* What bg_map does around a map with a journal (journal_map.c). */
#ifndef BRIGADE_INTERNAL_JOURNAL_MAP_H
#define BRIGADE_INTERNAL_JOURNAL_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "internal/journal.h"

typedef struct bg__jmap {
  bg_journal_t *j;
  bg_item_status_t *run; /* the statuses the backend writes: the caller's, or ours */
  bg_item_status_t *rec; /* the outcomes replayed from the journal */
  int own_run;
  uint64_t *skip; /* bit i: item i is settled by the journal and not run */
  size_t n_skip;
  void *blob; /* the trampoline's context */
} bg__jmap;

/* Before the map: checks that @d's journal is of @d's n and sizes, replays it into d->out and
 * the statuses, and rewrites @d (a private copy) so that the replayed items are skipped and
 * the statuses land where the journal reads them. Return: 0; BG_EINVAL (another n or sizes);
 * BG_EBUSY (the journal is in another map); BG_ENOMEM; BG_ESYS (the journal cannot be read).
 * On the mpi backend only rank 0 calls it: its journal records the whole map. */
int bg__jmap_begin(bg__jmap *m, bg_map_desc_t *d, int persistent);

/* After the map: writes the records still pending, gives the skipped items their recorded
 * outcomes and recounts @r (when not NULL) over the whole job. Return: 0, or the journal's
 * write error (then the records since it are not in the file). */
int bg__jmap_end(bg__jmap *m, size_t n, bg_map_report_t *r);

/* A map that did not run after bg__jmap_begin: releases what it took. */
void bg__jmap_abort(bg__jmap *m);

#endif
