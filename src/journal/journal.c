/* SPDX-License-Identifier: MIT */
/* Opening a journal: create it whole (temporary + rename), or read an existing one, check that
 * it belongs to the same job, drop the records that do not check out and cut a torn tail off so
 * that new records follow the last whole one. */
#define _GNU_SOURCE
#include "internal/journal.h"

#include "brigade/error.h"
#include "internal/afile.h"
#include "internal/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

_Static_assert(sizeof(bg__jhdr) == 136, "the journal header is 136 bytes on disk");
_Static_assert(sizeof(bg__jrec) == 24, "a record's head is 24 bytes on disk");

/* Records are read in batches of about this many bytes. */
#define READ_BYTES (1u << 20)

void bg_journal_opts_init(bg_journal_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->version = BG_JOURNAL_OPTS_VERSION;
  o->sync_ms = 10;
  o->group_ms = 2;
}

uint64_t bg_journal_digest(const void *data, size_t len) {
  return XXH3_64bits(len ? data : "", len);
}

static int say(char *msg, size_t cap, int rc, const char *fmt, ...) {
  if (msg && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static uint64_t header_sum(const bg__jhdr *h) {
  return XXH3_64bits(h, offsetof(bg__jhdr, sum));
}

static int make_header(const bg_journal_opts_t *o, bg__jhdr *h, char *msg, size_t cap) {
  if (!o->task || !o->task[0])
    return say(msg, cap, BG_EINVAL, "a journal needs a task name (the job's name and version)");
  size_t tlen = strlen(o->task);
  if (tlen > BG_JOURNAL_TASK_MAX)
    return say(msg, cap, BG_EINVAL, "the task name '%.20s...' is %zu bytes; the most is %u",
               o->task, tlen, BG_JOURNAL_TASK_MAX);
  uint64_t total = o->total ? o->total : o->n;
  if (o->base > total || o->n > total - o->base)
    return say(msg, cap, BG_EINVAL,
               "a shard of items [%llu, %llu) does not lie within the job's %llu items",
               (unsigned long long)o->base, (unsigned long long)(o->base + o->n),
               (unsigned long long)total);
  if (o->out_size > (SIZE_MAX >> 4))
    return say(msg, cap, BG_ERANGE, "a result of %zu bytes is too large to journal", o->out_size);
  memset(h, 0, sizeof *h);
  memcpy(h->magic, BG__JOURNAL_MAGIC, 8);
  h->hsize = sizeof *h;
  h->rsize = (uint32_t)(sizeof(bg__jrec) + o->out_size + 8);
  if (h->rsize != sizeof(bg__jrec) + o->out_size + 8)
    return say(msg, cap, BG_ERANGE, "a result of %zu bytes is too large to journal", o->out_size);
  h->n = o->n;
  h->in_size = o->in_size;
  h->out_size = o->out_size;
  h->digest = o->digest;
  h->base = o->base;
  h->total = total;
  memcpy(h->task, o->task, tlen);
  h->sum = header_sum(h);
  return BG_OK;
}

/* The first field in which two jobs differ, said so that the user sees which job the file
 * holds and what to do. */
static int other_job(const char *path, const bg__jhdr *f, const bg__jhdr *w, char *msg,
                     size_t cap) {
  char what[192];
  if (strcmp(f->task, w->task) != 0)
    snprintf(what, sizeof what, "task '%s', not '%s'", f->task, w->task);
  else if (f->n != w->n || f->base != w->base || f->total != w->total)
    snprintf(what, sizeof what, "items [%llu, %llu) of %llu, not [%llu, %llu) of %llu",
             (unsigned long long)f->base, (unsigned long long)(f->base + f->n),
             (unsigned long long)f->total, (unsigned long long)w->base,
             (unsigned long long)(w->base + w->n), (unsigned long long)w->total);
  else if (f->in_size != w->in_size || f->out_size != w->out_size)
    snprintf(what, sizeof what, "items of %llu bytes and results of %llu, not %llu and %llu",
             (unsigned long long)f->in_size, (unsigned long long)f->out_size,
             (unsigned long long)w->in_size, (unsigned long long)w->out_size);
  else
    snprintf(what, sizeof what, "inputs of digest %016llx, not %016llx",
             (unsigned long long)f->digest, (unsigned long long)w->digest);
  return say(msg, cap, BG_EINVAL,
             "'%s' is the journal of another job (%s); resume with the same job, or start "
             "a new journal (another file, or discard this one's records)",
             path, what);
}

/* Creates @path holding only @h, atomically: a journal file always has a whole header. With
 * @replace the new file is renamed over what is there; without, it is linked into place, which
 * fails (BG_EBUSY, *lost set) when another process created the journal meanwhile: two fresh
 * runs started at once must not both go on, each with a file the other replaced. */
static int create_file(const char *path, const bg__jhdr *h, int replace, int *lost, char *msg,
                       size_t cap) {
  bg__afile_t f;
  char err[512];
  int rc = bg__afile_prepare(&f, path, err, sizeof err);
  if (rc == 0 && f.direct)
    return say(msg, cap, BG_EINVAL, "'%s' is not a regular file; a journal must be one", path);
  if (rc == 0)
    rc = bg__afile_create(&f, err, sizeof err);
  if (rc != 0)
    return say(msg, cap, rc, "cannot create the journal: %s", err);
  ssize_t put = write(f.fd, h, sizeof *h);
  if (put != (ssize_t)sizeof *h)
    return say(msg, cap,
               bg__afile_abandon(&f, put < 0 ? strerror(errno) : "short write", err, sizeof err),
               "cannot create the journal: %s", err);
  if (!replace) {
    int linked = fdatasync(f.fd) == 0 ? bg__afile_link(&f, path) : -1;
    int e = errno;
    bg__afile_discard(&f); /* the temporary goes; the link, if made, stays */
    if (linked != 0 && e == EEXIST) {
      *lost = 1;
      return BG_EBUSY;
    }
    if (linked != 0)
      return say(msg, cap, BG_ESYS, "cannot create the journal '%s': %s", path, strerror(e));
    return BG_OK;
  }
  if (bg__afile_commit(&f, err, sizeof err) != 0)
    return say(msg, cap, BG_ESYS, "cannot create the journal: %s", err);
  return BG_OK;
}

/* Opens and locks @path (@shared: read-only, under a shared lock); *fd is -1 when it does not
 * exist. */
static int open_locked(const char *path, int shared, int *fd, char *msg, size_t cap) {
  *fd = open(path, (shared ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
  if (*fd < 0) {
    if (errno == ENOENT)
      return BG_OK;
    return say(msg, cap, BG_ESYS, "cannot open the journal '%s': %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(*fd);
    *fd = -1;
    return say(msg, cap, BG_EINVAL, "'%s' is not a regular file; a journal must be one", path);
  }
  if (flock(*fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    int busy = errno == EWOULDBLOCK;
    close(*fd);
    *fd = -1;
    return busy ? say(msg, cap, BG_EBUSY,
                      "the journal '%s' is in use by another process; wait for it to end", path)
                : say(msg, cap, BG_ESYS, "cannot lock the journal '%s': %s", path, strerror(errno));
  }
  return BG_OK;
}

/* Reads the records after the header, applying each valid one in file order through @apply;
 * counts the invalid ones in *dropped and sets *whole to the end of the last whole record. */
static int scan(const bg_journal_t *j, uint64_t len,
                void (*apply)(void *, size_t, const bg_item_status_t *, const char *), void *ud,
                size_t *dropped, uint64_t *whole) {
  size_t per = READ_BYTES / j->rsize + 1, cap = per * j->rsize;
  char *buf = malloc(cap);
  if (!buf)
    return BG_ENOMEM;
  uint64_t off = sizeof(bg__jhdr);
  size_t bad = 0;
  while (len - off >= j->rsize) {
    uint64_t left = (len - off) / j->rsize * j->rsize;
    size_t want = left < cap ? (size_t)left : cap, got = 0;
    while (got < want) {
      ssize_t r = pread(j->fd, buf + got, want - got, (off_t)(off + got));
      if (r <= 0) {
        if (r < 0 && errno == EINTR)
          continue;
        free(buf);
        return BG_ESYS;
      }
      got += (size_t)r;
    }
    for (size_t p = 0; p < want; p += j->rsize) {
      size_t i;
      bg_item_status_t st;
      const char *res;
      if (bg__journal_decode(j, buf + p, &i, &st, &res))
        apply(ud, i, &st, res);
      else
        bad++;
    }
    off += want;
  }
  free(buf);
  *dropped = bad;
  *whole = off;
  return BG_OK;
}

static void count_state(void *ud, size_t i, const bg_item_status_t *st, const char *res) {
  (void)res;
  bg_journal_t *j = ud;
  j->state[i] = (uint8_t)st->state;
}

/* Reads an existing journal's header and records; cuts a torn tail. */
static int load(bg_journal_t *j, const char *path, const bg__jhdr *want, char *msg, size_t cap) {
  struct stat st;
  if (fstat(j->fd, &st) != 0)
    return say(msg, cap, BG_ESYS, "cannot read the journal '%s': %s", path, strerror(errno));
  bg__jhdr h;
  if (st.st_size < (off_t)sizeof h || pread(j->fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
      memcmp(h.magic, BG__JOURNAL_MAGIC, 8) != 0)
    return say(msg, cap, BG_EFORMAT,
               "'%s' is not a brigade journal (no journal header); give another file name, "
               "or remove it if it is yours to lose",
               path);
  if (h.hsize != sizeof h || h.sum != header_sum(&h) || h.task[BG_JOURNAL_TASK_MAX] != '\0')
    return say(msg, cap, BG_EFORMAT,
               "the journal '%s' has a damaged header (its checksum does not hold); its "
               "records cannot be trusted: start a new journal",
               path);
  if (j->flags & BG_JOURNAL_INSPECT) {
    /* The job is whatever the file says. */
    j->h = h;
    j->rsize = h.rsize;
    free(j->state);
    if (h.rsize != sizeof(bg__jrec) + h.out_size + 8 || h.n > SIZE_MAX / 16 || h.base > h.total ||
        h.n > h.total - h.base)
      return say(msg, cap, BG_EFORMAT,
                 "the journal '%s' has a header whose sizes do not fit together", path);
    if (!(j->state = calloc(h.n ? (size_t)h.n : 1, 1)))
      return say(msg, cap, BG_ENOMEM, "out of memory for a journal of %llu items",
                 (unsigned long long)h.n);
  } else if (memcmp(&h, want, sizeof h) != 0) {
    return other_job(path, &h, want, msg, cap);
  }
  uint64_t whole = 0;
  int rc = scan(j, (uint64_t)st.st_size, count_state, j, &j->n_dropped, &whole);
  if (rc != 0)
    return say(msg, cap, rc, "cannot read the journal '%s': %s", path,
               rc == BG_ENOMEM ? "out of memory" : strerror(errno));
  if (whole != (uint64_t)st.st_size) {
    /* A torn last record: what a kill during a write leaves. New records must start on a
     * record boundary, or every one after it would be read out of step. */
    j->n_dropped++;
    if (!(j->flags & BG_JOURNAL_INSPECT) && ftruncate(j->fd, (off_t)whole) != 0)
      return say(msg, cap, BG_ESYS, "cannot cut the torn end off the journal '%s': %s", path,
                 strerror(errno));
  }
  j->end = j->synced_end = whole;
  return BG_OK;
}

static void journal_free(bg_journal_t *j) {
  if (j->fd >= 0)
    close(j->fd); /* releases the lock */
  pthread_mutex_destroy(&j->lock);
  free(j->state);
  free(j->buf);
  free(j->spare);
  free(j);
}

/* Opens @path as a new journal: created whole, then opened and locked. */
static int start_new(bg_journal_t *j, const char *path, char *msg, size_t cap) {
  int old = j->fd, lost = 0;
  /* A file to replace is one this process has locked (an empty one, or BG_JOURNAL_TRUNCATE). */
  int rc = create_file(path, &j->h, old >= 0, &lost, msg, cap);
  if (lost)
    return BG_EBUSY; /* the caller opens the one that won */
  if (rc == 0)
    rc = open_locked(path, 0, &j->fd, msg, cap);
  if (old >= 0 && old != j->fd)
    close(old);
  if (rc == 0 && j->fd < 0)
    rc = say(msg, cap, BG_ESYS, "the journal '%s' vanished as it was created", path);
  j->end = j->synced_end = sizeof j->h; /* created synced (bg__afile_commit) */
  return rc;
}

int bg_journal_open(const char *path, const bg_journal_opts_t *o, bg_journal_t **out, char *msg,
                    size_t cap) {
  if (msg && cap)
    msg[0] = '\0';
  if (!path || !o || !out || o->version != BG_JOURNAL_OPTS_VERSION)
    return say(msg, cap, BG_EINVAL, "bg_journal_open: a NULL argument or unknown options");
  *out = NULL;
  if (o->sync < BG_JOURNAL_SYNC_NONE || o->sync > BG_JOURNAL_SYNC_EVERY)
    return say(msg, cap, BG_EINVAL, "unknown journal sync policy %d", o->sync);
  bg_journal_t *j = calloc(1, sizeof *j);
  if (!j)
    return say(msg, cap, BG_ENOMEM, "out of memory for a journal");
  j->fd = -1;
  pthread_mutex_init(&j->lock, NULL);
  int inspect = (o->flags & BG_JOURNAL_INSPECT) != 0;
  bg_journal_opts_t any;
  if (inspect) {
    /* Any valid job will do until the header is read. */
    any = *o;
    any.task = "inspect", any.n = 0, any.out_size = 0, any.base = 0, any.total = 0;
    o = &any;
  }
  int rc = make_header(o, &j->h, msg, cap);
  if (rc == 0 && !(j->state = calloc(o->n ? o->n : 1, 1)))
    rc = say(msg, cap, BG_ENOMEM, "out of memory for the journal of %zu items", o->n);
  j->rsize = j->h.rsize;
  j->flags = o->flags;
  j->sync = o->sync;
  j->sync_ns = (uint64_t)o->sync_ms * 1000000u;
  j->group_ns = (uint64_t)o->group_ms * 1000000u;
  j->last_sync_ns = bg__now_ns(); /* a new or read journal is synced: the period starts now */
  if (rc == 0)
    rc = open_locked(path, inspect, &j->fd, msg, cap);
  if (rc == 0 && inspect && j->fd < 0)
    rc = say(msg, cap, BG_ENOENT, "no journal '%s'", path);
  else if (rc == 0 && inspect)
    rc = load(j, path, &j->h, msg, cap);
  else if (rc == 0) {
    struct stat st;
    int fresh = j->fd < 0 || (o->flags & BG_JOURNAL_TRUNCATE) ||
                (fstat(j->fd, &st) == 0 && st.st_size == 0);
    rc = fresh ? start_new(j, path, msg, cap) : load(j, path, &j->h, msg, cap);
    if (rc == BG_EBUSY && j->fd < 0) {
      /* Another process created it first: this one resumes it, or is refused, like any
       * second opener (locked: busy; another job: refused). */
      rc = open_locked(path, 0, &j->fd, msg, cap);
      if (rc == 0)
        rc = j->fd >= 0
                 ? load(j, path, &j->h, msg, cap)
                 : say(msg, cap, BG_EBUSY, "the journal '%s' vanished as it was created", path);
    }
  }
  if (rc != 0) {
    journal_free(j);
    return rc;
  }
  *out = j;
  return BG_OK;
}

int bg_journal_close(bg_journal_t *j) {
  if (!j)
    return BG_OK;
  int rc = j->flags & BG_JOURNAL_INSPECT ? BG_OK : bg__journal_flush(j, 1);
  journal_free(j);
  return rc;
}

int bg_journal_info(const bg_journal_t *j, bg_journal_info_t *info) {
  if (!j || !info)
    return BG_EINVAL;
  bg_journal_t *m = (bg_journal_t *)j;
  pthread_mutex_lock(&m->lock);
  memset(info, 0, sizeof *info);
  memcpy(info->task, j->h.task, sizeof info->task);
  info->n = j->h.n;
  info->in_size = j->h.in_size;
  info->out_size = j->h.out_size;
  info->digest = j->h.digest;
  info->base = j->h.base;
  info->total = j->h.total;
  /* Counted here, not kept up to date by every record under the lock: info is rare. */
  for (uint64_t i = 0; i < j->h.n; i++) {
    info->n_ok += j->state[i] == BG_ITEM_OK;
    info->n_failed += j->state[i] > BG_ITEM_OK;
  }
  info->n_dropped = j->n_dropped;
  info->records = (j->end - sizeof j->h) / j->rsize;
  info->commits = j->commits;
  info->syncs = j->syncs;
  info->write_error = j->write_error;
  pthread_mutex_unlock(&m->lock);
  return BG_OK;
}

typedef struct replay_to {
  bg_item_status_t *status;
  char *out;
  size_t out_size;
} replay_to;

static void put_outcome(void *ud, size_t i, const bg_item_status_t *st, const char *res) {
  replay_to *t = ud;
  if (t->status)
    t->status[i] = *st;
  if (t->out && st->state == BG_ITEM_OK)
    memcpy(t->out + i * t->out_size, res, t->out_size);
}

int bg__journal_replay(bg_journal_t *j, bg_item_status_t *status, void *out) {
  /* Records still in memory are written first, so that the file holds every one. */
  int rc = bg__journal_flush(j, 0);
  if (rc != 0)
    return rc;
  if (status)
    memset(status, 0, j->h.n * sizeof *status);
  replay_to t = {status, out, (size_t)j->h.out_size};
  size_t dropped;
  uint64_t whole;
  return scan(j, j->end, put_outcome, &t, &dropped, &whole);
}

int bg_journal_replay(const bg_journal_t *j, bg_item_status_t *status, void *out) {
  if (!j)
    return BG_EINVAL;
  bg_journal_t *m = (bg_journal_t *)j;
  /* Not during a map: its writer thread owns the file's end. */
  pthread_mutex_lock(&m->lock);
  int busy = m->busy;
  pthread_mutex_unlock(&m->lock);
  return busy ? BG_EBUSY : bg__journal_replay(m, status, out);
}
