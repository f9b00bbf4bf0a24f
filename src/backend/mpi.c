/* SPDX-License-Identifier: MIT */
/* The MPI backend: SPMD over the ranks mpirun started. Every rank creates the pool and calls
 * bg_map with the same n; chunks of items are handed out dynamically by a shared counter on
 * rank 0 (MPI_Fetch_and_op, so no rank sits in a receive loop burning a core), each rank runs
 * its chunks on a pool of local threads, and the results travel to rank 0 once, in one message
 * per rank, after the work. The only file besides knn_mpi.c that includes mpi.h. */
#include "brigade/error.h"
#include "internal/backend.h"
#include "brigade/dist.h"
#include "internal/dist.h"
#include "internal/pool_impl.h"

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct mpi_state {
  bg_pool_t *local;     /* I: this rank's threads */
  MPI_Comm comm;        /* I: a duplicate of MPI_COMM_WORLD, private to the pool */
  MPI_Win counter;      /* I: one uint64 on rank 0: items handed out, over all maps */
  uint64_t *next;       /* I: its memory (rank 0), NULL elsewhere */
  int rank, size;       /* I */
  bg_allocator_t alloc; /* I */
} mpi_state;

/* MPI is started by the first mpi pool when the program has not started it, and finished at
 * exit; a program that calls MPI_Init itself keeps both to itself. */
static void finish_mpi(void) {
  int done;
  MPI_Finalized(&done);
  if (!done)
    MPI_Finalize();
}

/* Whether a launcher (Open MPI's mpirun, MPICH's hydra, a PMIx server) started this process.
 * A singleton MPI_Init outside one costs half a second and, with no launcher helper on the
 * PATH, aborts the process: brigade never tries it. */
static int launched(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int bg__mpi_start(void) {
  int up;
  MPI_Initialized(&up);
  if (up)
    return BG_OK;
  if (!launched())
    return BG_EUNAVAIL;
  int provided;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return BG_EUNAVAIL;
  atexit(finish_mpi);
  return BG_OK;
}

int bg_dist_world(unsigned *rank, unsigned *ranks) {
  if (!rank || !ranks)
    return BG_EINVAL;
  int up;
  MPI_Initialized(&up);
  if (!up && !launched()) {
    *rank = 0, *ranks = 1;
    return BG_OK;
  }
  int rc = bg__mpi_start();
  if (rc != 0)
    return rc;
  int r, s;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  *rank = (unsigned)r, *ranks = (unsigned)s;
  return BG_OK;
}

static int mpi_probe(void) {
  int up;
  MPI_Initialized(&up);
  return up || launched() ? BG_OK : BG_EUNAVAIL;
}

static int mpi_init(const bg__backend_cfg *cfg, void **state) {
  int rc = bg__mpi_start();
  if (rc != 0)
    return rc;
  mpi_state *s = cfg->alloc->alloc(sizeof *s, cfg->alloc->ud);
  if (!s)
    return BG_ENOMEM;
  memset(s, 0, sizeof *s);
  s->alloc = *cfg->alloc;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = cfg->workers > 1 ? "threads" : "seq";
  o.workers = cfg->workers;
  o.pin = cfg->pin;
  o.topo = cfg->topo;
  o.allocator = cfg->alloc;
  rc = bg_pool_create(&o, &s->local);
  if (rc != 0) {
    s->alloc.free(s, s->alloc.ud);
    return rc;
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &s->comm);
  MPI_Comm_rank(s->comm, &s->rank);
  MPI_Comm_size(s->comm, &s->size);
  MPI_Win_allocate(s->rank == 0 ? sizeof(uint64_t) : 0, sizeof(uint64_t), MPI_INFO_NULL, s->comm,
                   &s->next, &s->counter);
  if (s->rank == 0) {
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, s->counter);
    *s->next = 0;
    MPI_Win_unlock(0, s->counter);
  }
  MPI_Barrier(s->comm);
  *state = s;
  return BG_OK;
}

static void mpi_fini(void *state) {
  mpi_state *s = state;
  int done;
  MPI_Finalized(&done);
  if (!done) {
    MPI_Win_free(&s->counter);
    MPI_Comm_free(&s->comm);
  }
  bg_pool_destroy(s->local);
  s->alloc.free(s, s->alloc.ud);
}

/* What every rank must agree on before a map, from rank 0's description. */
typedef struct shape {
  uint64_t n, in_size, out_size, has_in, has_out;
  uint64_t base; /* the counter's value before this map: it only grows, never reset */
} shape;

/* A chunk as the local pool sees it: items b.. of the whole map, their indices shifted. */
typedef struct shifted {
  const bg_map_desc_t *d;
  size_t first;
} shifted;

static int run_shifted(void *out, const void *in, size_t i, void *ctx) {
  const shifted *c = ctx;
  return c->d->fn(out, in, c->first + i, c->d->ctx);
}

/* The rank's bookkeeping of one map: its chunks (begin, end) in the order it ran them, their
 * results packed in that order, and its item outcomes. */
typedef struct rank_run {
  uint64_t *chunks; /* pairs */
  size_t nchunks, cap;
  char *results; /* ranks other than 0: their results, packed */
  size_t packed; /* items in results */
  uint64_t ok, failed, first_failed;
  int first_code;
} rank_run;

static int note_chunk(rank_run *r, size_t b, size_t e) {
  if (r->nchunks == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 64;
    uint64_t *c = realloc(r->chunks, 2 * cap * sizeof *c);
    if (!c)
      return BG_ENOMEM;
    r->chunks = c, r->cap = cap;
  }
  r->chunks[2 * r->nchunks] = b, r->chunks[2 * r->nchunks + 1] = e;
  r->nchunks++;
  return BG_OK;
}

/* Sends or receives a buffer of any size in pieces an int count can describe. */
#define PIECE ((size_t)1 << 30)

static void send_bytes(const void *p, size_t n, int to, MPI_Comm c) {
  for (size_t off = 0; off < n; off += PIECE)
    MPI_Send((const char *)p + off, (int)(n - off < PIECE ? n - off : PIECE), MPI_BYTE, to, 1, c);
}

static void recv_bytes(void *p, size_t n, int from, MPI_Comm c) {
  for (size_t off = 0; off < n; off += PIECE)
    MPI_Recv((char *)p + off, (int)(n - off < PIECE ? n - off : PIECE), MPI_BYTE, from, 1, c,
             MPI_STATUS_IGNORE);
}

static void bcast_bytes(void *p, size_t n, MPI_Comm c) {
  for (size_t off = 0; off < n; off += PIECE)
    MPI_Bcast((char *)p + off, (int)(n - off < PIECE ? n - off : PIECE), MPI_BYTE, 0, c);
}

/* Takes chunks from the shared counter until none is left and runs each on the local pool. A
 * rank that has no out buffer of its own (every rank but 0) keeps its results packed. */
static int take_chunks(mpi_state *s, const bg_map_desc_t *d, const shape *sh, const char *in,
                       rank_run *r) {
  uint64_t n = sh->n, want = n / ((uint64_t)s->size * bg_pool_workers(s->local) * 8);
  /* A chunk has at least one item per local worker, or the rank's threads would idle. */
  uint64_t workers = bg_pool_workers(s->local), grab = want > workers ? want : workers;
  uint64_t b, stop = n;
  int rc = BG_OK;
  MPI_Win_lock_all(MPI_MODE_NOCHECK, s->counter);
  for (;;) {
    MPI_Fetch_and_op(&grab, &b, MPI_UINT64_T, 0, 0, MPI_SUM, s->counter);
    MPI_Win_flush(0, s->counter);
    b -= sh->base;
    if (b >= n)
      break;
    uint64_t e = b + grab < n ? b + grab : n;
    char *out = NULL;
    if (sh->has_out && s->rank == 0) {
      out = (char *)d->out + b * sh->out_size;
    } else if (sh->has_out) {
      char *grown = realloc(r->results, (r->packed + (e - b)) * sh->out_size);
      if (!grown) {
        rc = BG_ENOMEM;
        break;
      }
      r->results = grown;
      out = grown + r->packed * sh->out_size;
      r->packed += e - b;
    }
    if ((rc = note_chunk(r, b, e)) != 0)
      break;
    shifted ctx = {.d = d, .first = b};
    bg_map_desc_t c;
    bg_map_desc_init(&c);
    c.fn = run_shifted, c.ctx = &ctx, c.n = e - b, c.flags = d->flags & BG_MAP_HALT;
    c.in = in ? in + b * sh->in_size : NULL, c.in_size = sh->in_size;
    c.out = out, c.out_size = sh->out_size;
    bg_map_report_t rep;
    int mrc = bg_map(s->local, &c, &rep);
    if (mrc != 0 && mrc != BG_ETASK) {
      rc = mrc;
      break;
    }
    r->ok += rep.n_ok, r->failed += rep.n_failed;
    if (rep.n_failed && b + rep.first_failed < r->first_failed)
      r->first_failed = b + rep.first_failed, r->first_code = rep.first_code;
    if (rep.n_failed && (d->flags & BG_MAP_HALT)) {
      /* Push the counter past the end: every rank stops at its next request. */
      MPI_Fetch_and_op(&stop, &b, MPI_UINT64_T, 0, 0, MPI_SUM, s->counter);
      MPI_Win_flush(0, s->counter);
      break;
    }
  }
  MPI_Win_unlock_all(s->counter);
  return rc;
}

/* Brings every rank's packed results to rank 0's out, in item order, one message per rank.
 * Rank 0 sizes its receive buffers for the largest sender before anyone sends, so running out
 * of memory there is known to every rank (BG_ENOMEM everywhere) instead of a hang. */
static int collect(mpi_state *s, const bg_map_desc_t *d, const shape *sh, const rank_run *r) {
  uint64_t mine[2] = {r->nchunks, r->packed}, most[2];
  MPI_Reduce(mine, most, 2, MPI_UINT64_T, MPI_MAX, 0, s->comm);
  uint64_t *counts = NULL, *chunks = NULL;
  char *results = NULL;
  int ok = 1;
  if (s->rank == 0) {
    counts = malloc(2 * (size_t)s->size * sizeof *counts);
    chunks = malloc(most[0] * 2 * sizeof *chunks + 1);
    results = malloc(most[1] * sh->out_size + 1);
    ok = counts && chunks && results;
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, s->comm);
  if (ok) {
    MPI_Gather(mine, 2, MPI_UINT64_T, counts, 2, MPI_UINT64_T, 0, s->comm);
    if (s->rank != 0) {
      send_bytes(r->chunks, r->nchunks * 2 * sizeof *r->chunks, 0, s->comm);
      send_bytes(r->results, r->packed * sh->out_size, 0, s->comm);
    }
    for (int from = 1; s->rank == 0 && from < s->size; from++) {
      uint64_t nchunks = counts[2 * from];
      recv_bytes(chunks, nchunks * 2 * sizeof *chunks, from, s->comm);
      recv_bytes(results, counts[2 * from + 1] * sh->out_size, from, s->comm);
      const char *p = results;
      for (uint64_t i = 0; i < nchunks; i++) {
        size_t len = (chunks[2 * i + 1] - chunks[2 * i]) * sh->out_size;
        memcpy((char *)d->out + chunks[2 * i] * sh->out_size, p, len);
        p += len;
      }
    }
  }
  free(counts), free(chunks), free(results);
  return ok ? BG_OK : BG_ENOMEM;
}

static void mpi_map(void *state, bg__job *job) {
  mpi_state *s = state;
  const bg_map_desc_t *d = job->d;
  for (unsigned w = 0; w < job->workers; w++)
    bg__wstat_reset(&job->stats[w]);
  shape sh = {d->n, d->in_size, d->out_size, d->in != NULL, d->out != NULL, 0};
  if (s->rank == 0) {
    /* No rank touches the counter now (the last map ended with collectives): read it. */
    uint64_t none = 0;
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->counter);
    MPI_Fetch_and_op(&none, &sh.base, MPI_UINT64_T, 0, 0, MPI_NO_OP, s->counter);
    MPI_Win_unlock_all(s->counter);
  }
  MPI_Bcast(&sh, 6, MPI_UINT64_T, 0, s->comm);
  /* Every rank must map the same items: a mismatch fails the map everywhere, never hangs. */
  uint64_t n = d->n, lo, hi;
  MPI_Allreduce(&n, &lo, 1, MPI_UINT64_T, MPI_MIN, s->comm);
  MPI_Allreduce(&n, &hi, 1, MPI_UINT64_T, MPI_MAX, s->comm);
  int local_ok = lo == hi && (!sh.has_in || !d->in || d->in_size == sh.in_size) &&
                 (!sh.has_out || !d->out || d->out_size == sh.out_size) &&
                 (!sh.has_out || d->out || !(d->flags & BG_MAP_ALL_RANKS));
  /* When a rank has no inputs of its own, rank 0's are sent to every other rank once. */
  char *copy = NULL;
  const char *in = d->in;
  int lacks = sh.has_in && !d->in, anyone;
  MPI_Allreduce(&lacks, &anyone, 1, MPI_INT, MPI_MAX, s->comm);
  if (anyone && local_ok && s->rank != 0 && !(copy = malloc(sh.n * sh.in_size + 1)))
    local_ok = 0;
  int all_ok;
  MPI_Allreduce(&local_ok, &all_ok, 1, MPI_INT, MPI_MIN, s->comm);
  bg__wstat *st = &job->stats[0];
  if (!all_ok) {
    free(copy);
    st->failed = d->n, st->first_failed = 0, st->first_code = BG_EINVAL;
    st->first_state = BG_ITEM_FAILED;
    return;
  }
  if (anyone) {
    bcast_bytes(s->rank == 0 ? (void *)d->in : copy, sh.n * sh.in_size, s->comm);
    if (copy)
      in = copy;
  }
  rank_run r = {.first_failed = UINT64_MAX};
  int rc = take_chunks(s, d, &sh, in, &r);
  free(copy);
  /* Outcomes of the whole map, the same on every rank. */
  uint64_t mine[3] = {r.ok, r.failed, rc != 0}, all[3], first;
  MPI_Allreduce(mine, all, 3, MPI_UINT64_T, MPI_SUM, s->comm);
  MPI_Allreduce(&r.first_failed, &first, 1, MPI_UINT64_T, MPI_MIN, s->comm);
  int code = r.first_failed == first && first != UINT64_MAX ? r.first_code : INT_MIN, first_code;
  MPI_Allreduce(&code, &first_code, 1, MPI_INT, MPI_MAX, s->comm);
  if (sh.has_out && !all[2] && collect(s, d, &sh, &r) != 0)
    all[2] = 1;
  if (sh.has_out && !all[2] && (d->flags & BG_MAP_ALL_RANKS))
    bcast_bytes(d->out, sh.n * sh.out_size, s->comm);
  free(r.chunks), free(r.results);
  if (all[2]) {
    /* A rank (or rank 0 gathering) ran out of memory: every item counts as failed. */
    st->failed = d->n, st->first_failed = 0, st->first_code = BG_ENOMEM;
    st->first_state = BG_ITEM_FAILED;
    return;
  }
  st->ok = all[0], st->failed = all[1];
  if (first != UINT64_MAX)
    st->first_failed = first, st->first_code = first_code, st->first_state = BG_ITEM_FAILED;
}

bg_pool_t *bg__mpi_local(void *state) {
  return ((mpi_state *)state)->local;
}

void *bg__mpi_comm(void *state) {
  return &((mpi_state *)state)->comm;
}

const bg__backend_ops bg__backend_mpi = {
    .abi = BG_BACKEND_ABI,
    .name = "mpi",
    .priority = -10, /* never auto's choice: a map across ranks must be asked for */
    .collective = 1,
    .probe = mpi_probe,
    .init = mpi_init,
    .map = mpi_map,
    .fini = mpi_fini,
};
