/* SPDX-License-Identifier: MIT */
/* Reading items, writing results and statuses, naming and merging shards (map_files.h). */
#define _GNU_SOURCE
#include "map_files.h"

#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_npy(const char *path) {
  char magic[6] = {0};
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  size_t got = fread(magic, 1, sizeof magic, f);
  fclose(f);
  return got == sizeof magic && memcmp(magic, "\x93NUMPY", 6) == 0;
}

static int open_npy(map_items *it, const char *path, char *err, size_t cap) {
  bg_npy_error_t e;
  if (bg_npy_open(path, NULL, &it->npy, &e) != 0) {
    snprintf(err, cap, "--in: %s", e.msg);
    return -1;
  }
  int nd = bg_npy_ndim(it->npy);
  const size_t *shape = bg_npy_shape(it->npy);
  if (nd < 1) {
    snprintf(err, cap, "--in '%s' holds a scalar; the items are the rows of an array", path);
    return -1;
  }
  it->n = shape[0];
  it->in_size = it->n ? bg_npy_bytes(it->npy) / it->n : 0;
  it->data = bg_npy_data(it->npy);
  if (it->n == 0 || it->in_size == 0) {
    snprintf(err, cap, "--in '%s' holds no items (shape with a 0)", path);
    return -1;
  }
  return 0;
}

static int open_raw(map_items *it, const char *path, size_t in_size, char *err, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(err, cap, "--in '%s': %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode) || st.st_size == 0 || (uint64_t)st.st_size % in_size != 0) {
    snprintf(err, cap,
             "--in '%s' is %s; raw items must be a regular file of whole records of --in-size "
             "%zu bytes",
             path, !S_ISREG(st.st_mode) ? "not a regular file" : "not a whole number of records",
             in_size);
    close(fd);
    return -1;
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    snprintf(err, cap, "--in '%s': cannot map it: %s", path, strerror(errno));
    return -1;
  }
  it->raw = it->data = m;
  it->raw_len = (size_t)st.st_size;
  it->n = it->raw_len / in_size;
  it->in_size = in_size;
  return 0;
}

int map_items_open(map_items *it, const char *path, size_t in_size, char *err, size_t cap) {
  memset(it, 0, sizeof *it);
  /* Looked at before opening: opening a FIFO waits for a writer, forever. */
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, cap, "--in '%s': %s", path,
             errno == ENOENT && stat(path, &st) != 0 ? "no such file"
             : S_ISDIR(st.st_mode)                   ? "a folder, not a file of items"
                                                     : "not a regular file (a FIFO, a device?); "
                                                       "the items must be in a file");
    return -1;
  }
  int rc;
  if (is_npy(path))
    rc = in_size ? (snprintf(err, cap,
                             "--in '%s' is a .npy: its rows are the items; drop --in-size", path),
                    -1)
                 : open_npy(it, path, err, cap);
  else if (in_size)
    rc = open_raw(it, path, in_size, err, cap);
  else
    rc = (snprintf(err, cap,
                   "--in '%s' is not a .npy file; for raw records give their size with --in-size",
                   path),
          -1);
  if (rc != 0)
    map_items_close(it);
  return rc;
}

void map_items_close(map_items *it) {
  bg_npy_close(it->npy);
  if (it->raw)
    munmap((void *)it->raw, it->raw_len);
  memset(it, 0, sizeof *it);
}

int map_out_write(const char *path, const map_out_format *f, const void *data, size_t n, char *err,
                  size_t cap) {
  bench_outfile o;
  if (bench_outfile_open(&o, path, err, cap) != 0)
    return -1;
  if (f->npy) {
    size_t shape[2] = {n, f->cols};
    bg_npy_error_t e;
    if (bg_npy_write_fd(fileno(o.f), f->dtype, f->cols == 1 ? 1 : 2, shape, data, &e) != 0)
      return bench_outfile_abandon(&o, e.msg, err, cap);
  } else if (n && fwrite(data, f->size, n, o.f) != n) {
    return bench_outfile_abandon(&o, strerror(errno), err, cap);
  }
  return bench_outfile_commit(&o, err, cap);
}

int map_status_write(const char *path, const bg_item_status_t *st, size_t n, uint64_t base,
                     char *err, size_t cap) {
  bench_outfile o;
  if (bench_outfile_open(&o, path, err, cap) != 0)
    return -1;
  fputs("index,state,code,attempts\n", o.f);
  for (size_t i = 0; i < n; i++)
    fprintf(o.f, "%llu,%s,%d,%u\n", (unsigned long long)(base + i), bg_item_state_name(st[i].state),
            st[i].code, st[i].attempts);
  if (ferror(o.f))
    return bench_outfile_abandon(&o, strerror(errno), err, cap);
  return bench_outfile_commit(&o, err, cap);
}

int map_shard_name(const char *path, uint64_t k, uint64_t n, char *buf, size_t cap) {
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash) || dot == path || (slash && dot == slash + 1))
    dot = path + strlen(path);
  int width = snprintf(NULL, 0, "%llu", (unsigned long long)(n - 1));
  int len = snprintf(buf, cap, "%.*s.shard%0*llu-of-%llu%s", (int)(dot - path), path, width,
                     (unsigned long long)k, (unsigned long long)n, dot);
  return len < 0 || (size_t)len >= cap ? -1 : 0;
}

/* One shard's journal, read as it is. */
typedef struct shard {
  bg_journal_t *j;
  bg_journal_info_t info;
  const char *path;
} shard;

static int by_base(const void *a, const void *b) {
  const shard *x = a, *y = b;
  return x->info.base < y->info.base ? -1 : x->info.base > y->info.base;
}

/* The shards must be of one job and tile [0, total) exactly. */
static int check_tiling(shard *s, int count, char *err, size_t cap) {
  qsort(s, (size_t)count, sizeof *s, by_base);
  const bg_journal_info_t *a = &s[0].info;
  uint64_t next = 0;
  for (int k = 0; k < count; k++) {
    const bg_journal_info_t *b = &s[k].info;
    if (strcmp(a->task, b->task) != 0 || a->total != b->total || a->in_size != b->in_size ||
        a->out_size != b->out_size || a->digest != b->digest) {
      snprintf(err, cap,
               "--merge: '%s' (task '%s', %llu items) and '%s' (task '%s', %llu items) are "
               "shards of different jobs",
               s[0].path, a->task, (unsigned long long)a->total, s[k].path, b->task,
               (unsigned long long)b->total);
      return -1;
    }
    if (b->base > next) {
      snprintf(err, cap,
               "--merge: no shard holds items [%llu, %llu) of %llu; give its journal too (or "
               "run that shard: brigade map ... --shard K/N)",
               (unsigned long long)next, (unsigned long long)b->base, (unsigned long long)a->total);
      return -1;
    }
    if (b->base < next) {
      snprintf(err, cap, "--merge: '%s' and '%s' overlap (items from %llu); give each shard once",
               s[k - 1].path, s[k].path, (unsigned long long)b->base);
      return -1;
    }
    next = b->base + b->n;
  }
  if (next != a->total) {
    snprintf(err, cap,
             "--merge: no shard holds items [%llu, %llu) of %llu; give its journal too (or run "
             "that shard: brigade map ... --shard K/N)",
             (unsigned long long)next, (unsigned long long)a->total, (unsigned long long)a->total);
    return -1;
  }
  return 0;
}

static int merge_read(shard *s, int count, map_merged *m, char *err, size_t cap) {
  const bg_journal_info_t *a = &s[0].info;
  if (a->total > SIZE_MAX / (sizeof *m->status + (a->out_size ? a->out_size : 1))) {
    snprintf(err, cap, "--merge: %llu items of %llu bytes do not fit in memory",
             (unsigned long long)a->total, (unsigned long long)a->out_size);
    return -1;
  }
  m->total = (size_t)a->total;
  m->out_size = (size_t)a->out_size;
  snprintf(m->task, sizeof m->task, "%s", a->task);
  m->status = calloc(m->total ? m->total : 1, sizeof *m->status);
  m->out = calloc(m->total && m->out_size ? m->total : 1, m->out_size ? m->out_size : 1);
  if (!m->status || !m->out) {
    snprintf(err, cap, "--merge: out of memory for %zu items", m->total);
    return -1;
  }
  for (int k = 0; k < count; k++) {
    size_t b = (size_t)s[k].info.base;
    char *o = m->out_size ? (char *)m->out + b * m->out_size : NULL;
    if (bg_journal_replay(s[k].j, m->status + b, o) != 0) {
      snprintf(err, cap, "--merge: cannot read '%s': %s", s[k].path, strerror(errno));
      return -1;
    }
    size_t pending = 0, n = (size_t)s[k].info.n;
    for (size_t i = 0; i < n; i++)
      pending += m->status[b + i].state == BG_ITEM_PENDING;
    size_t used = strlen(m->incomplete);
    if (pending && used + 200 < sizeof m->incomplete)
      snprintf(m->incomplete + used, sizeof m->incomplete - used, "%s'%s' (%zu of %zu not run)",
               used ? ", " : "", s[k].path, pending, n);
  }
  return 0;
}

int map_merge(char *const *journals, int count, map_merged *m, char *err, size_t cap) {
  memset(m, 0, sizeof *m);
  shard *s = calloc((size_t)count, sizeof *s);
  if (!s) {
    snprintf(err, cap, "--merge: out of memory");
    return -1;
  }
  bg_journal_opts_t o;
  bg_journal_opts_init(&o);
  o.flags = BG_JOURNAL_INSPECT;
  int rc = 0;
  for (int k = 0; k < count && rc == 0; k++) {
    char msg[768];
    s[k].path = journals[k];
    if (bg_journal_open(journals[k], &o, &s[k].j, msg, sizeof msg) != 0) {
      snprintf(err, cap, "--merge: %s", msg);
      rc = -1;
    } else {
      bg_journal_info(s[k].j, &s[k].info);
    }
  }
  if (rc == 0)
    rc = check_tiling(s, count, err, cap);
  if (rc == 0)
    rc = merge_read(s, count, m, err, cap);
  for (int k = 0; k < count; k++)
    bg_journal_close(s[k].j);
  free(s);
  if (rc != 0)
    map_merged_free(m);
  return rc;
}

void map_merged_free(map_merged *m) {
  free(m->out);
  free(m->status);
  m->out = NULL;
  m->status = NULL;
}
