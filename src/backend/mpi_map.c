/* SPDX-License-Identifier: MIT */
/* The mpi backend's map. Chunks of items are handed out by a shared counter on rank 0
 * (MPI_Fetch_and_op, so no rank sits in a receive loop burning a core); each rank runs its
 * chunks on its pool of local threads and sends each chunk's results to rank 0 as soon as the
 * chunk ends, without waiting for them to be received (MPI_Isend). Rank 0 takes in whatever
 * has arrived between its own chunks, and the rest at the end.
 *
 * So rank 0 holds every finished item shortly after it finishes, not only once the whole map
 * is over, and that is what makes a journal possible here: rank 0's journal records the
 * chunks of every rank as they arrive, a kill loses only the chunks in flight, and a resume
 * needs rank 0's file alone, with any number of ranks (docs/JOURNAL.md). Each chunk's message
 * carries its items' outcomes too when rank 0 keeps them (desc.status or a journal). */
#include "brigade/error.h"
#include "internal/clock.h"
#include "internal/mpi_backend.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* With a journal, a chunk lasts about this long once an item's time is known: rank 0 records
 * other ranks' chunks between its own, so this bounds how long a finished item waits to be
 * recorded (and what a kill can lose) without a message per item. */
#define JOURNAL_CHUNK_NS 20000000.0

/* A message's pieces: an int count describes at most this many bytes. */
#define PIECE ((size_t)1 << 30)

enum { TAG_HDR = 2, TAG_BODY = 3 };

/* What every rank must agree on before a map, from rank 0's description. */
typedef struct shape {
  uint64_t n, in_size, out_size, has_in, has_out;
  uint64_t base;    /* the counter's value before this map: it only grows, never reset */
  uint64_t status;  /* rank 0 keeps each item's outcome: chunks carry their statuses */
  uint64_t journal; /* rank 0 journals the map: chunks are sized by time */
  uint64_t skipped; /* rank 0's journal settled items before the map: their bits follow */
  uint64_t scratch; /* the largest chunk of any rank, in items */
  uint64_t fbase;   /* the failure counter's value before this map */
} shape;
#define SHAPE_WORDS (sizeof(shape) / sizeof(uint64_t))

/* A chunk as the local pool sees it: items b.. of the whole map, their indices shifted, and
 * those settled by the journal skipped. */
typedef struct shifted {
  const bg_map_desc_t *d;
  size_t first;
  const uint64_t *skip;
} shifted;

static int skipped(const uint64_t *bits, uint64_t i) {
  return bits && (bits[i >> 6] >> (i & 63) & 1);
}

static int run_shifted(void *out, const void *in, size_t i, void *ctx) {
  const shifted *c = ctx;
  if (skipped(c->skip, c->first + i))
    return 0;
  return c->d->fn(out, in, c->first + i, c->d->ctx);
}

/* A chunk on its way to rank 0: its buffer (header, statuses, results) lives until every piece
 * of it has been received. */
typedef struct sending {
  char *buf;
  size_t first_req, nreq;
} sending;

/* The rank's part of one map. */
typedef struct rank_run {
  bg__mpi_state *s;
  bg__job *job;
  const shape *sh;
  const uint64_t *skip; /* the journal's settled items, or NULL */
  uint64_t ok, failed, crashed, exited, timeouts, first_failed;
  uint64_t chunk_failed; /* in the chunk that just ran */
  int first_code, first_state;
  int rc;
  /* Ranks other than 0: the chunks being sent. */
  sending *out;
  size_t nout, capout, oldest;
  MPI_Request *reqs;
  size_t nreqs, capreqs;
  /* Rank 0: chunks that hold settled items land here first (sh->scratch items), and the ranks
   * that have said they are done. */
  char *scratch;
  int done;
} rank_run;

static size_t round_up(size_t x, size_t a) {
  return (x + a - 1) / a * a;
}

/* Where a chunk of @m items keeps its parts in one buffer: a header of two words, the
 * statuses, the results (at a 64-byte boundary, as a task writing a double expects). */
static size_t status_off(void) {
  return 2 * sizeof(uint64_t);
}

static size_t result_off(const shape *sh, uint64_t m) {
  return round_up(status_off() + (sh->status ? m * sizeof(bg_item_status_t) : 0), 64);
}

static size_t chunk_bytes(const shape *sh, uint64_t m) {
  return result_off(sh, m) + (sh->has_out ? m * sh->out_size : 0);
}

static int any_skipped(const uint64_t *bits, uint64_t b, uint64_t e) {
  for (uint64_t i = b; bits && i < e; i++)
    if (skipped(bits, i))
      return 1;
  return 0;
}

static void recv_bytes(void *p, size_t n, int from, MPI_Comm c) {
  for (size_t off = 0; off < n; off += PIECE)
    MPI_Recv((char *)p + off, (int)(n - off < PIECE ? n - off : PIECE), MPI_BYTE, from, TAG_BODY, c,
             MPI_STATUS_IGNORE);
}

static void bcast_bytes(void *p, size_t n, MPI_Comm c) {
  for (size_t off = 0; off < n; off += PIECE)
    MPI_Bcast((char *)p + off, (int)(n - off < PIECE ? n - off : PIECE), MPI_BYTE, 0, c);
}

/* Rank 0: items [b, e) arrived (or ran here) with their statuses at @st and results at @res,
 * which are either the map's own arrays at b (nothing to copy) or a scratch buffer. Items the
 * journal settled keep their replayed outcome and result: only the others are copied. Then the
 * journal records them and the progress counts them. */
static void deliver(rank_run *r, uint64_t b, uint64_t e, const bg_item_status_t *st,
                    const char *res) {
  const bg_map_desc_t *d = r->job->d;
  size_t os = r->sh->out_size;
  uint64_t ran = 0;
  for (uint64_t i = b; i < e;) {
    if (skipped(r->skip, i)) {
      i++;
      continue;
    }
    uint64_t k = i;
    while (k < e && !skipped(r->skip, k))
      k++;
    if (st && r->job->status && st + (i - b) != r->job->status + i)
      memcpy(r->job->status + i, st + (i - b), (k - i) * sizeof *st);
    if (res && d->out && res + (i - b) * os != (char *)d->out + i * os)
      memcpy((char *)d->out + i * os, res + (i - b) * os, (k - i) * os);
    ran += k - i;
    i = k;
  }
  if (r->job->journal)
    bg__journal_settled(r->job->journal, (size_t)b, (size_t)e);
  if (r->job->progress)
    bg__progress_add(r->job->progress, (size_t)ran);
}

/* Rank 0: receives the chunks that have arrived (@wait: until every rank has said it is done).
 * Nothing here allocates: a chunk goes straight into the map's arrays or into the scratch
 * buffer sized before the map, so rank 0 can always take in what the others send. */
static void drain(rank_run *r, int wait) {
  const shape *sh = r->sh;
  const bg_map_desc_t *d = r->job->d;
  while (r->done < r->s->size - 1) {
    MPI_Status ms;
    int here = 1;
    if (wait)
      MPI_Probe(MPI_ANY_SOURCE, TAG_HDR, r->s->comm, &ms);
    else
      MPI_Iprobe(MPI_ANY_SOURCE, TAG_HDR, r->s->comm, &here, &ms);
    if (!here)
      return;
    uint64_t h[2];
    MPI_Recv(h, 2, MPI_UINT64_T, ms.MPI_SOURCE, TAG_HDR, r->s->comm, MPI_STATUS_IGNORE);
    if (h[0] == UINT64_MAX) {
      r->done++;
      continue;
    }
    uint64_t b = h[0], m = h[1] - h[0];
    int direct = !any_skipped(r->skip, b, h[1]);
    bg_item_status_t *st = NULL;
    char *res = NULL;
    if (sh->status) {
      st = direct ? r->job->status + b : (bg_item_status_t *)(void *)(r->scratch + status_off());
      recv_bytes(st, m * sizeof *st, ms.MPI_SOURCE, r->s->comm);
    }
    if (sh->has_out) {
      res = direct ? (char *)d->out + b * sh->out_size : r->scratch + result_off(sh, sh->scratch);
      recv_bytes(res, m * sh->out_size, ms.MPI_SOURCE, r->s->comm);
    }
    deliver(r, b, h[1], st, res);
  }
}

/* Ranks other than 0: frees the buffers of the chunks rank 0 has taken in, oldest first. */
static void reap(rank_run *r, int wait) {
  while (r->oldest < r->nout) {
    sending *c = &r->out[r->oldest];
    int done = 1;
    if (wait)
      MPI_Waitall((int)c->nreq, r->reqs + c->first_req, MPI_STATUSES_IGNORE);
    else
      MPI_Testall((int)c->nreq, r->reqs + c->first_req, &done, MPI_STATUSES_IGNORE);
    if (!done)
      return;
    free(c->buf);
    c->buf = NULL;
    r->oldest++;
  }
}

static size_t pieces(size_t n) {
  return (n + PIECE - 1) / PIECE;
}

static void isend(rank_run *r, const void *p, size_t n, MPI_Datatype t, int tag) {
  if (t != MPI_BYTE) {
    MPI_Isend(p, (int)n, t, 0, tag, r->s->comm, &r->reqs[r->nreqs++]);
    return;
  }
  for (size_t off = 0; off < n; off += PIECE)
    MPI_Isend((const char *)p + off, (int)(n - off < PIECE ? n - off : PIECE), MPI_BYTE, 0, tag,
              r->s->comm, &r->reqs[r->nreqs++]);
}

/* Ranks other than 0: sends the chunk in @buf (its header says which items) to rank 0; the
 * buffer is freed by reap once received, or here if it cannot be sent. Room for every request
 * of the chunk is made first: a header sent without its body would leave rank 0 waiting. */
static int send_chunk(rank_run *r, char *buf, uint64_t m) {
  const shape *sh = r->sh;
  size_t ss = sh->status ? m * sizeof(bg_item_status_t) : 0,
         rs = sh->has_out ? m * sh->out_size : 0;
  size_t need = r->nreqs + 1 + pieces(ss) + pieces(rs);
  if (need > r->capreqs) {
    size_t cap = r->capreqs ? 2 * r->capreqs : 64;
    while (cap < need)
      cap *= 2;
    MPI_Request *q = realloc(r->reqs, cap * sizeof *q);
    if (!q) {
      free(buf);
      return BG_ENOMEM;
    }
    r->reqs = q, r->capreqs = cap;
  }
  if (r->nout == r->capout) {
    size_t cap = r->capout ? 2 * r->capout : 64;
    sending *o = realloc(r->out, cap * sizeof *o);
    if (!o) {
      free(buf);
      return BG_ENOMEM;
    }
    r->out = o, r->capout = cap;
  }
  sending *c = &r->out[r->nout++];
  c->buf = buf;
  c->first_req = r->nreqs;
  isend(r, buf, 2, MPI_UINT64_T, TAG_HDR);
  isend(r, buf + status_off(), ss, MPI_BYTE, TAG_BODY);
  isend(r, buf + result_off(sh, m), rs, MPI_BYTE, TAG_BODY);
  c->nreq = r->nreqs - c->first_req;
  return BG_OK;
}

/* Items that the journal settled and the local map counted as ok (the trampoline returned 0
 * for them): they are not this map's. */
static uint64_t settled_ok(const rank_run *r, uint64_t b, uint64_t e, const bg_item_status_t *st) {
  uint64_t k = 0;
  for (uint64_t i = b; r->skip && st && i < e; i++)
    k += skipped(r->skip, i) && st[i - b].state == BG_ITEM_OK;
  return k;
}

/* Runs items [b, e) on the local pool; on rank 0 they go to the map's arrays (or the scratch
 * buffer, then to the arrays), elsewhere into a buffer sent to rank 0. */
static int run_chunk(rank_run *r, const char *in, uint64_t b, uint64_t e) {
  const shape *sh = r->sh;
  const bg_map_desc_t *d = r->job->d;
  uint64_t m = e - b;
  char *buf = NULL;
  bg_item_status_t *st = NULL;
  char *res = NULL;
  if (r->s->rank == 0) {
    int direct = !any_skipped(r->skip, b, e);
    if (sh->status)
      st = direct ? r->job->status + b : (bg_item_status_t *)(void *)(r->scratch + status_off());
    if (sh->has_out)
      res = direct ? (char *)d->out + b * sh->out_size : r->scratch + result_off(sh, sh->scratch);
  } else {
    if (!(buf = aligned_alloc(64, round_up(chunk_bytes(sh, m), 64))))
      return BG_ENOMEM;
    uint64_t h[2] = {b, e};
    memcpy(buf, h, sizeof h);
    st = sh->status ? (bg_item_status_t *)(void *)(buf + status_off()) : NULL;
    res = sh->has_out ? buf + result_off(sh, m) : NULL;
  }
  /* What a function leaves unwritten (a failed item's result) is zeros, not a buffer's old
   * bytes, as in a caller's zeroed out. */
  if (res && res != (char *)d->out + b * sh->out_size)
    memset(res, 0, m * sh->out_size);
  shifted ctx = {.d = d, .first = b, .skip = r->skip};
  bg_map_desc_t c;
  bg_map_desc_init(&c);
  c.fn = run_shifted, c.ctx = &ctx, c.n = m, c.flags = d->flags & BG_MAP_HALT;
  c.halt_after = d->halt_after;
  c.in = in ? in + b * sh->in_size : NULL, c.in_size = sh->in_size;
  c.out = res, c.out_size = sh->out_size;
  c.status = st;
  bg_map_report_t rep;
  int rc = bg_map(r->s->local, &c, &rep);
  if (rc != 0 && rc != BG_ETASK) {
    free(buf);
    return rc;
  }
  r->ok += rep.n_ok - settled_ok(r, b, e, st);
  r->failed += rep.n_failed;
  r->chunk_failed = rep.n_failed;
  if (rep.n_failed && b + rep.first_failed < r->first_failed)
    r->first_failed = b + rep.first_failed, r->first_code = rep.first_code,
    r->first_state = rep.first_state;
  if (r->s->rank == 0) {
    deliver(r, b, e, st, res);
    drain(r, 0);
    return rep.n_failed ? BG_ETASK : BG_OK;
  }
  reap(r, 0);
  rc = send_chunk(r, buf, m);
  return rc != 0 ? rc : rep.n_failed ? BG_ETASK : BG_OK;
}

/* Under BG_MAP_HALT, after a chunk with failures: whether the map halts now. With halt_after
 * (> 1) the failures of every rank are counted on rank 0 (the window's second word), so the
 * map halts after that many in all, as on one machine. Called inside the lock_all epoch. */
static int halts(rank_run *r) {
  const bg_map_desc_t *d = r->job->d;
  if (!(d->flags & BG_MAP_HALT))
    return 0;
  if (d->halt_after <= 1)
    return 1;
  uint64_t before;
  MPI_Fetch_and_op(&r->chunk_failed, &before, MPI_UINT64_T, 0, 1, MPI_SUM, r->s->counter);
  MPI_Win_flush(0, r->s->counter);
  return before - r->sh->fbase + r->chunk_failed >= d->halt_after;
}

/* Takes chunks from the shared counter until none is left and runs each. Every rank ends by
 * telling rank 0 it is done (rank 0 then waits for every rank's), whatever went wrong: rank 0
 * must not wait for a rank that stopped. */
static void take_chunks(rank_run *r, const char *in) {
  bg__mpi_state *s = r->s;
  const shape *sh = r->sh;
  uint64_t n = sh->n, workers = bg_pool_workers(s->local);
  uint64_t want = n / ((uint64_t)s->size * workers * 8);
  /* A chunk has at least one item per local worker, or the rank's threads would idle. */
  uint64_t most = want > workers ? want : workers, grab = sh->journal ? workers : most;
  uint64_t b, stop = n;
  MPI_Win_lock_all(MPI_MODE_NOCHECK, s->counter);
  for (;;) {
    MPI_Fetch_and_op(&grab, &b, MPI_UINT64_T, 0, 0, MPI_SUM, s->counter);
    MPI_Win_flush(0, s->counter);
    b -= sh->base;
    if (b >= n)
      break;
    uint64_t e = b + grab < n ? b + grab : n, t0 = bg__now_ns();
    int rc = run_chunk(r, in, b, e);
    if (rc != 0 && rc != BG_ETASK) {
      r->rc = rc;
      break;
    }
    if (sh->journal) {
      /* The next chunk lasts about JOURNAL_CHUNK_NS at this chunk's pace. */
      double per = (double)(bg__now_ns() - t0) / (double)(e - b);
      double k = per > 0 ? JOURNAL_CHUNK_NS / per : (double)most;
      grab = k < (double)workers ? workers : k > (double)most ? most : (uint64_t)k;
    }
    if (rc == BG_ETASK && halts(r)) {
      /* Push the counter past the end: every rank stops at its next request. */
      MPI_Fetch_and_op(&stop, &b, MPI_UINT64_T, 0, 0, MPI_SUM, s->counter);
      MPI_Win_flush(0, s->counter);
      break;
    }
  }
  MPI_Win_unlock_all(s->counter);
  if (s->rank == 0) {
    drain(r, 1);
    return;
  }
  static const uint64_t done[2] = {UINT64_MAX, 0};
  MPI_Send(done, 2, MPI_UINT64_T, 0, TAG_HDR, s->comm);
  reap(r, 1);
}

/* Rank 0: the items its journal settled keep their recorded outcomes, in the statuses and in
 * the counts that every rank's report sums (the other ranks know only the skip bits). */
static void count_replayed(rank_run *r, const bg_item_status_t *rec, uint64_t n) {
  for (uint64_t i = 0; rec && i < n; i++) {
    if (!skipped(r->skip, i))
      continue;
    const bg_item_status_t *s = &rec[i];
    r->job->status[i] = *s;
    if (s->state == BG_ITEM_OK) {
      r->ok++;
      continue;
    }
    r->failed++;
    r->crashed += s->state == BG_ITEM_CRASHED || s->state == BG_ITEM_EXITED;
    r->exited += s->state == BG_ITEM_EXITED;
    r->timeouts += s->state == BG_ITEM_TIMEOUT;
    if (i < r->first_failed)
      r->first_failed = i, r->first_state = s->state,
      r->first_code = s->state == BG_ITEM_FAILED    ? s->code
                      : s->state == BG_ITEM_TIMEOUT ? BG_ETIMEDOUT
                                                    : BG_ECRASH;
  }
}

/* Fails every item of the map on this rank's report, with @code. */
static void fail_all(bg__job *job, int code) {
  bg__wstat *st = &job->stats[0];
  st->failed = job->d->n, st->first_failed = 0, st->first_code = code;
  st->first_state = BG_ITEM_FAILED;
}

void bg__mpi_map(void *state, bg__job *job) {
  bg__mpi_state *s = state;
  const bg_map_desc_t *d = job->d;
  for (unsigned w = 0; w < job->workers; w++)
    bg__wstat_reset(&job->stats[w]);
  uint64_t workers = bg_pool_workers(s->local);
  uint64_t want = d->n / ((uint64_t)s->size * workers * 8), most = want > workers ? want : workers;
  shape sh = {.n = d->n,
              .in_size = d->in_size,
              .out_size = d->out_size,
              .has_in = d->in != NULL,
              .has_out = d->out != NULL,
              .status = job->status != NULL,
              .journal = job->journal != NULL};
  if (s->rank == 0) {
    /* No rank touches the counter now (the last map ended with collectives): read it. */
    uint64_t none = 0;
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->counter);
    MPI_Fetch_and_op(&none, &sh.base, MPI_UINT64_T, 0, 0, MPI_NO_OP, s->counter);
    MPI_Fetch_and_op(&none, &sh.fbase, MPI_UINT64_T, 0, 1, MPI_NO_OP, s->counter);
    MPI_Win_unlock_all(s->counter);
    sh.skipped = job->replayed != NULL; /* the journal settled items before the map */
  }
  MPI_Bcast(&sh, SHAPE_WORDS, MPI_UINT64_T, 0, s->comm);
  /* Rank 0 takes chunks that hold settled items through a scratch buffer: sized now for the
   * largest chunk of any rank, so that nothing is allocated while other ranks send. */
  if (sh.skipped)
    MPI_Allreduce(&most, &sh.scratch, 1, MPI_UINT64_T, MPI_MAX, s->comm);
  /* Every rank must map the same items: a mismatch fails the map everywhere, never hangs. A
   * rank whose bg_map refused the map (job->refuse: a journal on a rank other than 0, or one
   * rank 0 could not use) takes part only to fail it everywhere. */
  uint64_t n = d->n, lo, hi;
  MPI_Allreduce(&n, &lo, 1, MPI_UINT64_T, MPI_MIN, s->comm);
  MPI_Allreduce(&n, &hi, 1, MPI_UINT64_T, MPI_MAX, s->comm);
  int local_ok = lo == hi && !job->refuse && (!sh.has_in || !d->in || d->in_size == sh.in_size) &&
                 (!sh.has_out || !d->out || d->out_size == sh.out_size) &&
                 (!sh.has_out || d->out || !(d->flags & BG_MAP_ALL_RANKS));
  /* When a rank has no inputs of its own, rank 0's are sent to every other rank once. */
  char *copy = NULL;
  const char *in = d->in;
  int lacks = sh.has_in && !d->in, anyone;
  MPI_Allreduce(&lacks, &anyone, 1, MPI_INT, MPI_MAX, s->comm);
  if (anyone && local_ok && s->rank != 0 && !(copy = malloc(sh.n * sh.in_size + 1)))
    local_ok = 0;
  rank_run r = {.s = s, .job = job, .sh = &sh, .first_failed = UINT64_MAX};
  uint64_t *bits = NULL;
  if (sh.skipped && local_ok) {
    if (s->rank == 0)
      local_ok = (r.scratch = aligned_alloc(64, round_up(chunk_bytes(&sh, sh.scratch), 64))) != 0;
    else
      local_ok = (bits = malloc((sh.n + 63) / 64 * sizeof *bits)) != NULL;
  }
  int all_ok;
  MPI_Allreduce(&local_ok, &all_ok, 1, MPI_INT, MPI_MIN, s->comm);
  if (!all_ok) {
    free(copy), free(bits), free(r.scratch);
    fail_all(job, BG_EINVAL);
    return;
  }
  if (anyone) {
    bcast_bytes(s->rank == 0 ? (void *)d->in : copy, sh.n * sh.in_size, s->comm);
    if (copy)
      in = copy;
  }
  if (sh.skipped) {
    r.skip = s->rank == 0 ? job->journal->skip : bits;
    bcast_bytes((void *)(uintptr_t)r.skip, (sh.n + 63) / 64 * sizeof *bits, s->comm);
  }
  if (s->rank == 0)
    count_replayed(&r, job->replayed, sh.n);
  take_chunks(&r, in);
  free(copy), free(bits), free(r.scratch), free(r.out), free(r.reqs);
  /* Outcomes of the whole map, the same on every rank: the sums, and the code and state of the
   * lowest failed item from the rank that has it. */
  uint64_t mine[6] = {r.ok, r.failed, r.crashed, r.exited, r.timeouts, r.rc != 0}, all[6], first;
  MPI_Allreduce(mine, all, 6, MPI_UINT64_T, MPI_SUM, s->comm);
  MPI_Allreduce(&r.first_failed, &first, 1, MPI_UINT64_T, MPI_MIN, s->comm);
  int owner = r.first_failed == first && first != UINT64_MAX;
  int why[2] = {owner ? r.first_code : INT_MIN, owner ? r.first_state : INT_MIN}, first_why[2];
  MPI_Allreduce(why, first_why, 2, MPI_INT, MPI_MAX, s->comm);
  if (sh.has_out && !all[5] && (d->flags & BG_MAP_ALL_RANKS))
    bcast_bytes(d->out, sh.n * sh.out_size, s->comm);
  if (all[5]) {
    /* A rank ran out of memory (or its local pool failed): every item counts as failed. */
    fail_all(job, BG_ENOMEM);
    return;
  }
  bg__wstat *st = &job->stats[0];
  st->ok = all[0], st->failed = all[1], st->crashed = all[2], st->exited = all[3];
  st->timeouts = all[4];
  if (first != UINT64_MAX)
    st->first_failed = first, st->first_code = first_why[0], st->first_state = first_why[1];
}
