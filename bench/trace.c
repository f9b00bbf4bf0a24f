/* SPDX-License-Identifier: MIT */
/* The --trace collection and its Chrome trace-event JSON. Spans are kept as the library
 * recorded them; what lies between them (waiting for the next chunk, idle after the last one)
 * is drawn here, per worker, from the gaps, so a reader sees every worker's whole map. */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

/* Gaps shorter than this between a worker's spans (the hand-out of the next chunk on threads)
 * are not drawn: they would double the file and show nothing at any useful zoom. */
#define WAIT_MIN_NS 1000u

typedef struct trace_row {
  char name[192];
  char why[128];
  unsigned workers;
  uint64_t t0, t1;
  size_t nspans, dropped;
  bg_span_t *spans;
} trace_row;

struct bench_trace {
  trace_row *rows;
  size_t n, cap;
};

bench_trace *bench_trace_new(void) {
  return calloc(1, sizeof(bench_trace));
}

void bench_trace_free(bench_trace *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++)
    free(t->rows[i].spans);
  free(t->rows);
  free(t);
}

size_t bench_trace_rows(const bench_trace *t) {
  return t ? t->n : 0;
}

/* Orders spans by worker, then start. */
static int by_worker_time(const void *a, const void *b) {
  const bg_span_t *x = a, *y = b;
  if (x->worker != y->worker)
    return x->worker < y->worker ? -1 : 1;
  return x->t0_ns < y->t0_ns ? -1 : x->t0_ns > y->t0_ns;
}

int bench_trace_add_row(bench_trace *t, const char *name, unsigned workers, uint64_t t0_ns,
                        uint64_t t1_ns, const bg_trace_t *src, const char *why) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    trace_row *r = realloc(t->rows, cap * sizeof *r);
    if (!r)
      return BG_ENOMEM;
    t->rows = r;
    t->cap = cap;
  }
  trace_row *r = &t->rows[t->n];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->why, sizeof r->why, "%s", why ? why : "");
  r->workers = workers;
  r->t0 = t0_ns;
  r->t1 = t1_ns > t0_ns ? t1_ns : t0_ns;
  size_t n = bg_trace_count(src);
  r->dropped = bg_trace_dropped(src);
  if (n > 0) {
    r->spans = malloc(n * sizeof *r->spans);
    if (!r->spans)
      return BG_ENOMEM;
    memcpy(r->spans, bg_trace_spans(src), n * sizeof *r->spans);
    qsort(r->spans, n, sizeof *r->spans, by_worker_time);
  }
  r->nspans = n;
  t->n++;
  return 0;
}

/* @s as a JSON string's contents. */
static void put_escaped(FILE *f, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
}

/* One complete ("X") event of row @pid, track @tid, from @a to @b ns after the row's start. */
static void put_span(FILE *f, int *first, unsigned pid, unsigned tid, const char *cat,
                     const char *name, uint64_t a, uint64_t b) {
  fprintf(f, "%s\n{\"name\":\"", *first ? "" : ",");
  *first = 0;
  put_escaped(f, name);
  fprintf(f, "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%u,\"tid\":%u,\"ts\":%.3f,\"dur\":%.3f}", cat,
          pid, tid, (double)a / 1e3, (double)(b - a) / 1e3);
}

static void put_meta(FILE *f, int *first, const char *what, unsigned pid, int tid,
                     const char *name) {
  fprintf(f, "%s\n{\"name\":\"%s\",\"ph\":\"M\",\"pid\":%u,", *first ? "" : ",", what, pid);
  *first = 0;
  if (tid >= 0)
    fprintf(f, "\"tid\":%d,", tid);
  fputs("\"args\":{\"name\":\"", f);
  put_escaped(f, name);
  fputs("\"}}", f);
}

/* What a span is called on its track. */
static void span_name(const bg_span_t *s, char *buf, size_t cap) {
  switch (s->kind) {
  case BG_SPAN_STARTUP:
    snprintf(buf, cap, "start-up");
    break;
  case BG_SPAN_LOOP:
    snprintf(buf, cap, "openmp loop (its chunks unseen)");
    break;
  case BG_SPAN_DIED:
    snprintf(buf, cap, "died: items %zu-%zu", s->begin, s->end - 1);
    break;
  default:
    snprintf(buf, cap, "items %zu-%zu", s->begin, s->end - 1);
    break;
  }
}

/* One row: its name, its tracks, and per worker its spans with the waits between them and its
 * idle time after the last. */
static void put_row(FILE *f, int *first, const trace_row *r, unsigned pid) {
  char title[400];
  int len = snprintf(title, sizeof title, "%s", r->name);
  if (r->why[0])
    len += snprintf(title + len, sizeof title - (size_t)len, " (not traced: %s)", r->why);
  if (r->dropped)
    snprintf(title + len, sizeof title - (size_t)len, " (first %zu spans of %zu)", r->nspans,
             r->nspans + r->dropped);
  put_meta(f, first, "process_name", pid, -1, title);
  fprintf(f,
          ",\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%u,\"args\":"
          "{\"sort_index\":%u}}",
          pid, pid);
  size_t k = 0;
  for (unsigned w = 0; w < r->workers; w++) {
    char tname[32];
    snprintf(tname, sizeof tname, "worker %u", w);
    put_meta(f, first, "thread_name", pid, (int)w, tname);
    uint64_t at = 0, end = r->t1 - r->t0;
    for (; k < r->nspans && r->spans[k].worker == w; k++) {
      const bg_span_t *s = &r->spans[k];
      uint64_t a = s->t0_ns > r->t0 ? s->t0_ns - r->t0 : 0;
      uint64_t b = s->t1_ns > r->t0 ? s->t1_ns - r->t0 : 0;
      b = b > end ? end : b;
      a = a > b ? b : a;
      if (a > at + WAIT_MIN_NS)
        put_span(f, first, pid, w, "wait", "waiting for work", at, a);
      char name[64];
      span_name(s, name, sizeof name);
      put_span(f, first, pid, w, bg_span_kind_name((int)s->kind), name, a, b);
      at = b > at ? b : at;
    }
    if (end > at && !r->why[0])
      put_span(f, first, pid, w, "idle", "idle (the map's other work)", at, end);
  }
}

int bench_trace_write(const bench_trace *t, FILE *f) {
  int first = 1;
  fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"tool\":\"brigade bench --trace\"},"
        "\"traceEvents\":[",
        f);
  for (size_t i = 0; i < t->n; i++)
    put_row(f, &first, &t->rows[i], (unsigned)i + 1);
  fputs("\n]}\n", f);
  return ferror(f) ? -1 : 0;
}
