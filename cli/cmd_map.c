/* SPDX-License-Identifier: MIT */
/* `brigade map`: run a user's function over a whole job from the command line and keep the
 * results; with --journal, a run killed at any moment resumes where it stopped (--resume), or
 * reruns only what failed (--resume-failed); with --shard K/N (or a Slurm job array), run one
 * contiguous slice of the job, and --merge the shards' journals into one result. */
#include "cli.h"
#include "foreign.h"
#include "map_args.h"
#include "map_files.h"
#include "opts.h"
#include "outfile.h"
#include "plugin.h"
#include "stop.h"

#include "brigade.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "map"

void cmd_map_help(FILE *f) {
  fprintf(
      f,
      "usage: brigade map --task LIB:FN (--n N | --in FILE) [options]\n"
      "       brigade map --merge JOURNAL... --out FILE [--status FILE]\n\n"
      "Runs FN on every item of a job and keeps the results. FN has bg_map's signature:\n"
      "int FN(void *out, const void *in, size_t i, void *ctx), returning 0 for success; i is\n"
      "the item's index in the whole job (also in a shard), ctx is NULL.\n\n"
      "items:\n"
      "  --n N               the indices 0..N-1\n"
      "  --in FILE           a .npy whose rows are the items, or raw records (with --in-size)\n"
      "  --in-size BYTES     the size of a raw record\n"
      "results:\n"
      "  --out FILE          FILE.npy: a .npy of --out-dtype (f32, f64, i64; default i64)\n"
      "                      with --out-cols values per item (default 1); another name: the raw\n"
      "                      results, --out-size bytes each (default 8). Written whole or not\n"
      "                      at all: a killed run never leaves a half-written file\n"
      "  --status FILE       every item's outcome as CSV: index,state,code,attempts\n"
      "running:\n"
      "  --backend NAME      procs (default: a crash or a timeout fails only its item),\n"
      "                      procs-copy, procs-persistent, threads, openmp, seq, or mpi\n"
      "                      under mpirun (rank 0 keeps the journal and writes the files)\n"
      "  --workers N         workers (default: one per core)\n"
      "  --timeout T         per item, on the procs backends: 30s, 500ms, 2m, seconds, or P%%\n"
      "                      of the median item time so far (from the 3rd item on)\n"
      "  --retries N         run a failed item again, up to N times\n"
      "  --retry-on CAUSES   which failures --retries covers: failed (a non-zero return),\n"
      "                      crashed (a signal or exit), timeout; default all, e.g. crashed\n"
      "  --halt soon,fail=N  start no new items after N failures (or fail=P%% of the items);\n"
      "                      now,fail=N also stops the running ones (procs backends): they\n"
      "                      stay not run, for a --resume\n"
      "  --progress, --no-progress   the bar with rate and time left (default: on a terminal)\n"
      "resuming:\n"
      "  --journal FILE      record every finished item, checksummed, so a run stopped at any\n"
      "                      moment (kill -9 included) can resume\n"
      "  --resume            run only the items the journal lacks\n"
      "  --resume-failed     ... and the ones it records as failed\n"
      "  --sync none|every|MS  when records reach the disk (fdatasync): never during the run\n"
      "                      (default: a killed process loses nothing, a power cut may), after\n"
      "                      every group of records, or every MS milliseconds\n"
      "  --name NAME         the job's name in the journal (default FN): change it when FN\n"
      "                      changes, and an old journal is refused instead of mixed in\n"
      "sharding:\n"
      "  --shard K/N         run the K-th of N contiguous slices; its files are named\n"
      "                      NAME.shardK-of-N.EXT. Under a Slurm job array the shard comes from\n"
      "                      SLURM_ARRAY_TASK_ID, _MIN, _STEP and _COUNT: sbatch --array=0-15;\n"
      "                      --shard 0/1 runs the whole job (plain names) in an array task\n"
      "  --merge J...        join the shards' journals into --out and --status; refuses a\n"
      "                      missing or an overlapping shard\n\n"
      "Exit status: 0 when every item succeeded, 1 when any failed or did not run, 2 for a\n"
      "usage error. Example:\n"
      "  brigade map --task ./libmytask.so:digit_sum --n 1M --out sums.npy --journal sums.j\n"
      "  (Ctrl-C, then the same command with --resume)\n");
}

/* The user's function sees the item's index in the whole job. */
typedef struct shard_ctx {
  bg_task_fn fn;
  uint64_t base;
} shard_ctx;

static int shard_task(void *out, const void *in, size_t i, void *ctx) {
  const shard_ctx *s = ctx;
  return s->fn(out, in, (size_t)(i + s->base), NULL);
}

/* The paths this run writes: a shard's have its number in them. */
typedef struct map_paths {
  char out[4096], journal[4096], status[4096];
  const char *o, *j, *s;
} map_paths;

static int shard_path(const map_args *a, const char *path, char *buf, const char **to) {
  *to = NULL;
  if (!path)
    return 0;
  if (!a->sharded) {
    *to = path;
    return 0;
  }
  if (map_shard_name(path, a->shard_k, a->shard_n, buf, 4096) != 0)
    return cli_usage(CMD, "'%s': the name is too long", path);
  *to = buf;
  return 0;
}

/* Refuses outputs that name one file, or one of the command's inputs (the items, the task's
 * library, a merge's journals): writing one would destroy the other. */
static int check_outputs(const char *const *names, const char *const *paths, int count,
                         const char *const *inputs) {
  char why[768];
  for (int i = 0; i < count; i++)
    for (int j = i + 1; j < count; j++)
      if (paths[i] && paths[j] && bench_same_file(paths[i], paths[j]))
        return cli_usage(CMD, "%s and %s both name '%s': give each its own file", names[i],
                         names[j], paths[j]);
  for (int i = 0; i < count; i++)
    if (paths[i] && bench_outfile_check(paths[i], inputs, why, sizeof why) != 0)
      return cli_usage(CMD, "%s: %s", names[i], why);
  return 0;
}

static int make_paths(const map_args *a, map_paths *p) {
  if (shard_path(a, a->out, p->out, &p->o) || shard_path(a, a->journal, p->journal, &p->j) ||
      shard_path(a, a->status, p->status, &p->s))
    return CLI_USAGE;
  /* The task's library, as the loader will find it. */
  char lib[4096];
  const char *colon = strrchr(a->task, ':');
  snprintf(lib, sizeof lib, "%.*s", (int)(colon - a->task), a->task);
  const char *inputs[] = {a->in ? a->in : lib, lib, NULL};
  const char *names[] = {"--out", "--status", "--journal"};
  const char *paths[] = {p->o, p->s, p->j};
  return check_outputs(names, paths, 3, inputs);
}

/* Refuses a job whose results and statuses do not fit in the memory this process may use. */
static int check_memory(size_t n, size_t out_size, int keep, int journal, const char *backend) {
  uint64_t avail;
  if (bg_mem_available(&avail) != 0)
    return 0;
  /* Results and the statuses kept; the journal's state, replayed and running outcomes and skip
   * bits; and the procs backends' shared copy of results and statuses (their arena). */
  double st = (double)sizeof(bg_item_status_t);
  int procs = strncmp(backend, "procs", 5) == 0;
  double need = (double)n * ((double)out_size + (keep ? st : 0) +
                             (journal ? 1.0 + st + (keep ? 0 : st) + 0.125 : 0) +
                             (procs ? (double)out_size + (keep || journal ? st : 0) : 0));
  if (need <= (double)avail * 0.9)
    return 0;
  char b1[32], b2[32];
  return cli_fail(CMD,
                  "%zu items need %s for their results and outcomes, and this process may use "
                  "%s; run it in shards (--shard K/N) or give smaller results",
                  n, cli_bytes((uint64_t)need, b1, sizeof b1), cli_bytes(avail, b2, sizeof b2));
}

/* The journal of this run: a new one, or the one to resume. */
static int open_journal(const map_args *a, const map_paths *p, const map_items *it, uint64_t base,
                        size_t n, uint64_t total, bg_journal_t **out) {
  *out = NULL;
  if (!p->j)
    return 0;
  const char *fn = strrchr(a->task, ':') + 1;
  const char *name = a->name ? a->name : fn;
  if (strlen(name) > BG_JOURNAL_TASK_MAX)
    return cli_usage(CMD, "the job's name '%s' is longer than %u bytes; give a shorter --name",
                     name, BG_JOURNAL_TASK_MAX);
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.task = name;
  o.n = n;
  o.in_size = a->in ? it->in_size : 0;
  o.out_size = a->fmt.size;
  o.digest = a->in ? bg_journal_digest(it->data, it->n * it->in_size) : 0;
  o.base = base;
  o.total = total;
  o.sync = a->sync;
  if (a->sync_ms)
    o.sync_ms = a->sync_ms;
  o.flags = a->resume_failed ? BG_JOURNAL_RERUN_FAILED : 0;
  char msg[768];
  int rc = bg_journal_open(p->j, &o, out, msg, sizeof msg);
  if (rc != 0)
    return rc == BG_EINVAL || rc == BG_EFORMAT || rc == BG_EBUSY ? cli_usage(CMD, "%s", msg)
                                                                 : cli_fail(CMD, "%s", msg);
  bg_journal_info_t info;
  bg_journal_info(*out, &info);
  if (!a->resume && !a->resume_failed && info.records > 0) {
    bg_journal_close(*out);
    *out = NULL;
    return cli_usage(CMD,
                     "the journal '%s' already holds %llu records of this job; give --resume "
                     "to continue it (or --resume-failed), or remove it to start over",
                     p->j, (unsigned long long)info.records);
  }
  if (info.records > 0) {
    fprintf(stderr, "brigade map: resuming from '%s': %zu ok, %zu failed of %zu", p->j, info.n_ok,
            info.n_failed, n);
    if (info.n_dropped)
      fprintf(stderr, " (%zu torn or damaged record%s dropped: %s again)", info.n_dropped,
              info.n_dropped > 1 ? "s" : "",
              info.n_dropped > 1 ? "their items run" : "its item runs");
    fprintf(stderr, "\n");
  } else if (a->resume || a->resume_failed) {
    fprintf(stderr, "brigade map: no records in '%s' yet: starting from the first item\n", p->j);
  }
  return 0;
}

static const char *state_text(const bg_item_status_t *s, char *buf, size_t cap) {
  switch (s->state) {
  case BG_ITEM_FAILED:
    snprintf(buf, cap, "failed with code %d", s->code);
    break;
  case BG_ITEM_CRASHED:
    snprintf(buf, cap, "crashed (SIG%s)", bench_sigabbrev(s->code));
    break;
  case BG_ITEM_EXITED:
    snprintf(buf, cap, "its worker exited with status %d", s->code);
    break;
  case BG_ITEM_TIMEOUT:
    snprintf(buf, cap, "ran past the timeout of %d ms", s->code);
    break;
  default:
    snprintf(buf, cap, "%s", bg_item_state_name(s->state));
  }
  return buf;
}

/* What happened, on stderr: the counts and the first failures with their causes. */
static void summarise(const bg_item_status_t *st, size_t n, uint64_t base, size_t replayed,
                      double secs, unsigned ranks) {
  size_t counts[6] = {0};
  for (size_t i = 0; i < n; i++)
    counts[st[i].state >= 0 && st[i].state < 6 ? st[i].state : 0]++;
  fprintf(stderr, "brigade map: %zu of %zu items ok", counts[BG_ITEM_OK], n);
  if (ranks > 1)
    fprintf(stderr, " on %u ranks", ranks);
  size_t failed = n - counts[BG_ITEM_OK] - counts[BG_ITEM_PENDING];
  if (failed)
    fprintf(stderr, ", %zu failed (%zu returned non-zero, %zu crashed, %zu exited, %zu timed out)",
            failed, counts[BG_ITEM_FAILED], counts[BG_ITEM_CRASHED], counts[BG_ITEM_EXITED],
            counts[BG_ITEM_TIMEOUT]);
  if (counts[BG_ITEM_PENDING])
    fprintf(stderr, ", %zu not run", counts[BG_ITEM_PENDING]);
  if (replayed)
    fprintf(stderr, ", %zu of them from the journal", replayed);
  if (secs > 0)
    fprintf(stderr, "; %.3f s", secs);
  fprintf(stderr, "\n");
  size_t shown = 0;
  for (size_t i = 0; i < n && shown < 10; i++) {
    if (st[i].state == BG_ITEM_OK || st[i].state == BG_ITEM_PENDING)
      continue;
    char buf[160];
    fprintf(stderr, "  item %llu: %s\n", (unsigned long long)(base + i),
            state_text(&st[i], buf, sizeof buf));
    shown++;
  }
  if (failed > shown)
    fprintf(stderr, "  ... and %zu more (--status FILE lists every item)\n", failed - shown);
}

/* Every item ok by its status. The report's counts say the same unless a task wrote past its
 * result into the statuses (procs-persistent keeps both in one mapping): the exit status then
 * follows what the summary printed, never 0 beside "not run". */
static int all_ok(const bg_item_status_t *st, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (st[i].state != BG_ITEM_OK)
      return 0;
  return 1;
}

/* What happened, from the report alone (no per-item outcomes kept: a large map without
 * --status): the counts and the first failure. */
static void summarise_report(const bg_map_report_t *r, size_t n, uint64_t base, unsigned ranks) {
  fprintf(stderr, "brigade map: %zu of %zu items ok", r->n_ok, n);
  if (ranks > 1)
    fprintf(stderr, " on %u ranks", ranks);
  if (r->n_failed)
    fprintf(stderr, ", %zu failed", r->n_failed);
  if (r->n_skipped)
    fprintf(stderr, ", %zu not run", r->n_skipped);
  if (r->n_replayed)
    fprintf(stderr, ", %zu of them from the journal", r->n_replayed);
  fprintf(stderr, "; %.3f s\n", (double)r->wall_ns / 1e9);
  if (!r->n_failed)
    return;
  const char *how = r->first_state == BG_ITEM_FAILED    ? "returned non-zero"
                    : r->first_state == BG_ITEM_TIMEOUT ? "ran past the timeout"
                    : r->first_state == BG_ITEM_EXITED  ? "its worker exited"
                                                        : "crashed";
  fprintf(stderr, "  the first, item %llu: %s", (unsigned long long)(base + r->first_failed), how);
  if (r->first_state == BG_ITEM_FAILED)
    fprintf(stderr, " (%d)", r->first_code);
  fprintf(stderr, "; --status FILE lists every item with its cause\n");
}

/* Per-item outcomes cost 12 bytes and a store per item: kept when asked for, or when the map
 * is small enough that the summary's list of failures is worth it. */
#define STATUS_KEPT_MAX (1u << 20)

/* Everything one run holds, released in one place. */
typedef struct map_run {
  map_items it;
  bench_plugin pl;
  bg_journal_t *j;
  bg_pool_t *pool;
  bg_progress_bar_t *bar;
  void *out;
  bg_item_status_t *status;
} map_run;

static void run_free(map_run *m) {
  bg_progress_bar_destroy(m->bar);
  bg_pool_destroy(m->pool);
  bg_journal_close(m->j);
  if (m->pl.handle)
    bench_plugin_unload(&m->pl);
  map_items_close(&m->it);
  free(m->out);
  free(m->status);
}

static int start_pool(const map_args *a, map_run *m) {
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.backend = a->backend;
  po.workers = (unsigned)a->workers;
  int rc = bg_pool_create(&po, &m->pool);
  if (rc == BG_ENOENT)
    return cli_usage(CMD,
                     "unknown backend '%s' (backends: procs, procs-copy, procs-persistent, "
                     "threads, openmp, seq, mpi)",
                     a->backend);
  if (rc == BG_EUNAVAIL && !strcmp(a->backend, "mpi"))
    return cli_usage(CMD, "the mpi backend runs under mpirun: mpirun -np 4 brigade map ... "
                          "--backend mpi (this process was not started by a launcher)");
  if (rc != 0)
    return cli_fail(CMD, "cannot start the '%s' workers: %s", a->backend, bg_strerror(rc));
  if ((a->timeout_ms || a->timeout_pct) && strncmp(a->backend, "procs", 5) != 0)
    return cli_usage(CMD, "--timeout needs a backend that can stop a running item: procs, "
                          "procs-copy or procs-persistent");
  return 0;
}

/* On threads, openmp and seq a running item cannot be stopped, so SIGINT and SIGTERM end the
 * process as they would (exit status 130, 143); this says first what is kept (stop.h). */
static int guard_stop(int journal) {
  return cli_stop_guard(
      journal ? "\nbrigade map: interrupted; no result file written. The journal keeps what "
                "finished: rerun the same command with --resume\n"
              : "\nbrigade map: interrupted; no result file written, nothing kept (give "
                "--journal FILE to make a run resumable)\n");
}

/* Writes the results and statuses; 0 or 1. */
static int write_outputs(const map_args *a, const map_paths *p, const map_run *m, size_t n) {
  char err[768];
  int rc = 0;
  if (p->o && map_out_write(p->o, &a->fmt, m->out, n, err, sizeof err) != 0)
    rc = cli_fail(CMD, "%s", err);
  if (p->s && map_status_write(p->s, m->status, n, 0, err, sizeof err) != 0)
    rc = cli_fail(CMD, "%s", err);
  return rc;
}

static int run_map(const map_args *a) {
  map_run m = {0};
  map_paths p;
  int code = CLI_OK;
  char err[768];
  if (a->in && map_items_open(&m.it, a->in, (size_t)a->in_size, err, sizeof err) != 0)
    return cli_usage(CMD, "%s", err);
  uint64_t total = a->in ? m.it.n : a->n;
  uint64_t base = a->sharded ? a->shard_k * total / a->shard_n : 0;
  uint64_t end = a->sharded ? (a->shard_k + 1) * total / a->shard_n : total;
  size_t n = (size_t)(end - base);
  int keep = 0;
  /* Under mpirun rank 0 alone keeps the results and outcomes, journals and writes. */
  unsigned rank = 0, ranks = 1;
  int mpi = strcmp(a->backend, "mpi") == 0;
  if (mpi && bg_dist_world(&rank, &ranks) != 0)
    rank = 0, ranks = 1;
  int root = rank == 0;
  if ((code = make_paths(a, &p)) != 0)
    goto out;
  keep = root && (p.s || n <= STATUS_KEPT_MAX);
  if ((code = check_memory(n, a->fmt.size, keep, p.j != NULL, a->backend)) != 0)
    goto out;
  if (bench_plugin_load(a->task, n, a->fmt.size, &m.pl, err, sizeof err) != 0) {
    code = cli_usage(CMD, "%s", err);
    goto out;
  }
  /* The pool first: a launcher missing for --backend mpi is said before a journal is made. */
  if ((code = start_pool(a, &m)) != 0)
    goto out;
  if (root)
    code = open_journal(a, &p, &m.it, base, n, total, &m.j);
  /* Under mpirun the other ranks would wait in the map for a rank 0 that stopped: they stop
   * with its error (it has said why). */
  int64_t agreed = code;
  if (mpi && bg_dist_max(m.pool, &agreed) == 0)
    code = (int)agreed;
  if (code != 0)
    goto out;
  m.out = root ? calloc(n ? n : 1, a->fmt.size) : NULL;
  m.status = keep ? calloc(n ? n : 1, sizeof *m.status) : NULL;
  if ((root && !m.out) || (keep && !m.status)) {
    code = cli_fail(CMD, "out of memory for %zu results", n);
    goto out;
  }
  if (a->sharded)
    fprintf(stderr, "brigade map: shard %llu of %llu (%s): items [%llu, %llu) of %llu\n",
            (unsigned long long)a->shard_k, (unsigned long long)a->shard_n, a->shard_from,
            (unsigned long long)base, (unsigned long long)end, (unsigned long long)total);
  shard_ctx sc = {m.pl.w.fn, base};
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  /* The shift costs an indirect call per item: only a shard past item 0 pays it. */
  d.fn = base ? shard_task : m.pl.w.fn;
  d.ctx = base ? &sc : NULL;
  d.ctx_size = base ? sizeof sc : 0;
  d.n = n;
  d.in = a->in ? (const char *)m.it.data + base * m.it.in_size : NULL;
  d.in_size = a->in ? m.it.in_size : 0;
  d.out = m.out;
  d.out_size = a->fmt.size;
  d.status = m.status;
  d.timeout_ms = a->timeout_ms;
  d.timeout_pct = a->timeout_pct;
  d.retries = (uint32_t)a->retries;
  d.retry_on = a->retry_on;
  d.journal = m.j;
  if (a->halt) {
    d.flags |= BG_MAP_HALT | (a->halt_now ? BG_MAP_HALT_NOW : 0);
    d.halt_after = a->halt_pct > 0 ? (uint32_t)((double)n * a->halt_pct / 100.0 + 0.999999)
                                   : (uint32_t)a->halt_fails;
  }
  if (a->progress != 0 &&
      bg_progress_bar_create("map", -1, a->progress == 1 ? BG_PROGRESS_FORCE : 0, &m.bar) == 0 &&
      bg_progress_bar_active(m.bar)) {
    d.progress = bg_progress_bar_update;
    d.progress_ud = m.bar;
  }
  bg_map_report_t r;
  /* procs and mpi stop a map themselves and say so below. */
  int guarded =
      strncmp(a->backend, "procs", 5) && strcmp(a->backend, "mpi") ? guard_stop(m.j != NULL) : 0;
  int rc = bg_map(m.pool, &d, &r);
  cli_stop_restore(guarded);
  bg_progress_bar_destroy(m.bar);
  m.bar = NULL;
  /* A journal that could not be written loses nothing computed: the results are written all
   * the same, and the run fails so that nobody counts on resuming from that journal. */
  bg_journal_info_t ji = {0};
  int jfail = m.j && bg_journal_info(m.j, &ji) == 0 && ji.write_error;
  if (rc != 0 && rc != BG_ETASK && rc != BG_ECANCELED && !jfail) {
    code =
        cli_fail(CMD, "the map failed: %s%s", bg_strerror(rc),
                 rc == BG_ENOMEM ? "; run it in shards (--shard K/N) or give smaller results" : "");
    goto out;
  }
  if (!root)
    goto out;
  if (m.status) {
    summarise(m.status, n, base, r.n_replayed, (double)r.wall_ns / 1e9, ranks);
  } else {
    summarise_report(&r, n, base, ranks);
  }
  if (rc == BG_ECANCELED) {
    fprintf(stderr, "brigade map: interrupted; no result file written. %s\n",
            m.j ? "The journal keeps what finished: rerun the same command with --resume"
                : "Nothing is kept: give --journal FILE to make a run resumable");
    code = CLI_FAIL;
    goto out;
  }
  code = write_outputs(a, &p, &m, n);
  if (jfail)
    code = cli_fail(CMD,
                    "the journal '%s' could not be written (%s: a full disk, or a file size "
                    "limit?); the results are written, but a --resume would run again the "
                    "items recorded after the failure",
                    p.j, bg_strerror(ji.write_error));
  if (code == CLI_OK && (r.n_failed || r.n_skipped || (m.status && !all_ok(m.status, n))))
    code = CLI_FAIL;
out:
  run_free(&m);
  return code;
}

static int run_merge(const map_args *a) {
  map_merged mg;
  char err[1024];
  const char *names[] = {"--out", "--status"};
  const char *paths[] = {a->out, a->status};
  const char **inputs = calloc((size_t)a->nmerge + 1, sizeof *inputs);
  if (!inputs)
    return cli_fail(CMD, "out of memory");
  for (int i = 0; i < a->nmerge; i++)
    inputs[i] = a->merge[i];
  int bad = check_outputs(names, paths, 2, inputs);
  free(inputs);
  if (bad)
    return bad;
  if (map_merge(a->merge, a->nmerge, &mg, err, sizeof err) != 0)
    return cli_fail(CMD, "%s", err);
  int code = CLI_OK;
  if (a->out && mg.out_size != a->fmt.size) {
    code = cli_usage(CMD,
                     "the shards hold results of %zu bytes, --out asks for %zu; give the "
                     "--out-dtype, --out-cols or --out-size of the run",
                     mg.out_size, a->fmt.size);
  } else {
    map_run m = {.out = mg.out, .status = mg.status};
    /* Shards that did not finish make no result file, as an interrupted run makes none; the
     * statuses say what is missing. */
    map_paths p = {.o = mg.incomplete[0] ? NULL : a->out, .s = a->status};
    code = write_outputs(a, &p, &m, mg.total);
    if (mg.incomplete[0])
      code = cli_fail(CMD,
                      "not merged into %s: %s; resume those shards (the same brigade map "
                      "command with their --shard K/N and --resume), then merge again",
                      a->out ? a->out : "a result", mg.incomplete);
    summarise(mg.status, mg.total, 0, 0, 0, 1);
    size_t ok = 0;
    for (size_t i = 0; i < mg.total; i++)
      ok += mg.status[i].state == BG_ITEM_OK;
    if (code == CLI_OK && ok != mg.total)
      code = CLI_FAIL;
  }
  map_merged_free(&mg);
  return code;
}

int cmd_map(int argc, char **argv) {
  map_args a;
  int rc = map_args_parse(argc, argv, &a);
  if (rc != 0)
    return rc;
  return a.merge ? run_merge(&a) : run_map(&a);
}
