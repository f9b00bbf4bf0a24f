/* SPDX-License-Identifier: MIT */
/* Report formats. The table and Markdown group rows by case and print the case's explanations
 * under it; CSV and JSON carry every field so a script can redo any ratio. */
#include "report.h"

#include <string.h>

int bench_format_parse(const char *s, bench_format *out) {
  static const char *const names[] = {"table", "csv", "json", "markdown"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (bench_format)i;
      return 0;
    }
  }
  return -1;
}

static void print_notes(FILE *f, const bench_result *r, const char *section, const char *bullet) {
  for (size_t i = 0; i < r->nnotes; i++)
    if (!strcmp(r->notes[i].section, section))
      fprintf(f, "%s%s\n", bullet, r->notes[i].text);
}

static void chunk_text(size_t chunk, char *buf, size_t cap) {
  if (chunk)
    snprintf(buf, cap, "%zu", chunk);
  else
    snprintf(buf, cap, "-");
}

/* Calls row_fn for each row and, when a new section starts or the last one ends, head_fn and
 * tail_fn, so table and Markdown share the grouping. */
typedef struct layout {
  void (*head)(FILE *f, const bench_result *r, const bench_row *first);
  void (*row)(FILE *f, const bench_result *r, const bench_row *x);
  void (*tail)(FILE *f, const bench_result *r, const char *section);
  const char *title; /* a section without rows: its title line, "%s" for its name */
} layout;

static int has_rows(const bench_result *r, const char *section) {
  for (size_t i = 0; i < r->nrows; i++)
    if (!strcmp(r->rows[i].section, section))
      return 1;
  return 0;
}

/* Sections with notes but no rows (a case whose every row was skipped, as the knn suite's
 * memory wall past --max-seconds, or refused for memory) come last, so that the reader learns
 * why they have no table rather than not learning of them at all. */
static void rowless(FILE *f, const bench_result *r, const layout *l) {
  for (size_t i = 0; i < r->nnotes; i++) {
    const char *s = r->notes[i].section;
    int seen = !*s || has_rows(r, s);
    for (size_t j = 0; j < i && !seen; j++)
      seen = !strcmp(r->notes[j].section, s);
    if (seen)
      continue;
    fprintf(f, l->title, s);
    l->tail(f, r, s);
  }
}

static void grouped(FILE *f, const bench_result *r, const layout *l) {
  for (size_t i = 0; i < r->nrows; i++) {
    const bench_row *x = &r->rows[i];
    if (i == 0 || strcmp(r->rows[i - 1].section, x->section) != 0)
      l->head(f, r, x);
    l->row(f, r, x);
    if (i + 1 == r->nrows || strcmp(r->rows[i + 1].section, x->section) != 0)
      l->tail(f, r, x->section);
  }
  rowless(f, r, l);
}

/* "0.1234 s [0.1200-0.1300]", in ms or us when the median is small, so tiny runs keep their
 * digits. */
static void took_text(const bench_summary *w, char *buf, size_t cap) {
  double scale = 1;
  const char *unit = "s";
  if (w->median <= 0) {
    snprintf(buf, cap, "-"); /* a row that failed before a run completed */
    return;
  }
  if (w->median < 1e-3) {
    scale = 1e6;
    unit = "us";
  } else if (w->median < 1) {
    scale = 1e3;
    unit = "ms";
  }
  snprintf(buf, cap, "%.4g %s [%.4g-%.4g]", w->median * scale, unit, w->min * scale,
           w->max * scale);
}

/* With peers, backend names such as py:multiprocessing need a wider column, and the table gains
 * "vs peer": the best Python approach's median over this row's. */
static int backend_width(const bench_result *r) {
  int w = r->peers ? 18 : 10;
  for (size_t i = 0; i < r->nrows; i++) {
    int len = (int)strlen(r->rows[i].backend);
    w = len > w ? len : w;
  }
  return w;
}

static void table_head(FILE *f, const bench_result *r, const bench_row *x) {
  fprintf(f, "\n== %s ==\n", x->section);
  fprintf(f, "%-*s %-8s %5s %3s  %-27s %6s %8s %10s %11s %8s %5s%s\n", backend_width(r), "backend",
          "schedule", "chunk", "wk", "took (median [min-max])", "cpu%", "peak MiB", "ns/item",
          "overhead/it", "speedup", "eff.", r->peers ? "  vs peer" : "");
}

static void table_row(FILE *f, const bench_result *r, const bench_row *x) {
  char chunk[24], took[64];
  chunk_text(x->chunk, chunk, sizeof chunk);
  took_text(&x->wall, took, sizeof took);
  /* A failed row has no figures worth a column: dashes, and the notes say what happened. */
  int timed = x->wall.median > 0 && !x->failed;
  double util = timed ? 100 * x->cpu_s / x->wall.median : 0;
  /* Suites that do not measure CPU time and memory (overhead) show dashes, not zeros. */
  char cpu[16] = "-", peak[16] = "-", nsi[24] = "-", over[24] = "-", sp[16] = "-", eff[16] = "-";
  if (timed && (x->cpu_s > 0 || x->peak_mib > 0)) {
    if (!x->external && !x->cpu_unknown)
      snprintf(cpu, sizeof cpu, "%.0f%%", util);
    snprintf(peak, sizeof peak, "%.1f", x->peak_mib);
  }
  if (timed) {
    snprintf(nsi, sizeof nsi, "%.1f", x->ns_per_item);
    if (!x->external)
      snprintf(over, sizeof over, "%.1f ns", x->overhead_ns);
  }
  if (timed && x->speedup > 0) {
    /* "?": above its workers; the notes give the cause. */
    snprintf(sp, sizeof sp, "%.2fx%s", x->speedup, x->suspect ? "?" : "");
    snprintf(eff, sizeof eff, "%.0f%%", 100 * x->efficiency);
  }
  char vs[24] = "";
  if (r->peers && x->vs_peer > 0)
    snprintf(vs, sizeof vs, " %8.2fx", x->vs_peer);
  else if (r->peers)
    snprintf(vs, sizeof vs, " %9s", "-");
  fprintf(f, "%-*s %-8s %5s %3u  %-27s %6s %8s %10s %11s %8s %5s%s%s\n", backend_width(r),
          x->backend, x->schedule, chunk, x->workers, took, cpu, peak, nsi, over, sp, eff, vs,
          x->failed ? "  FAILED" : "");
}

static void table_tail(FILE *f, const bench_result *r, const char *section) {
  print_notes(f, r, section, "  > ");
}

/* The knn suite's rows: throughput against the bare sgemm and speedup over the naive loop, not
 * over a sequential map. */
static void ratio_text(double v, const char *fmt, double scale, char *buf, size_t cap) {
  if (v > 0)
    snprintf(buf, cap, fmt, v * scale);
  else
    snprintf(buf, cap, "-");
}

/* What ends a knn row that has no figures ("" for one that has): why is in the notes. */
static const char *row_mark(const bench_row *x) {
  return x->failed ? "FAILED" : x->unavailable ? "UNAVAILABLE" : "";
}

static void knn_head(FILE *f, const bench_result *r, const bench_row *x) {
  fprintf(f, "\n== %s ==\n", x->section);
  fprintf(f, "%-12s %3s  %-27s %8s %9s %8s%s %8s  %s\n", "backend", "wk", "took (median [min-max])",
          "GFLOP/s", "vs sgemm", "vs naive", r->peers ? "  vs peer" : "", "peak MiB", "plan");
}

/* The knn row's cells that need formatting, shared by the table and Markdown. */
typedef struct knn_cells {
  char took[64], vs[16], sp[16], peer[16], gf[16];
} knn_cells;

static knn_cells knn_cells_of(const bench_row *x) {
  knn_cells c;
  took_text(&x->wall, c.took, sizeof c.took);
  ratio_text(x->vs_sgemm, "%.0f%%", 100, c.vs, sizeof c.vs);
  ratio_text(x->speedup, "%.1fx", 1, c.sp, sizeof c.sp);
  ratio_text(x->vs_peer, "%.2fx", 1, c.peer, sizeof c.peer);
  ratio_text(x->gflops, "%.1f", 1, c.gf, sizeof c.gf);
  return c;
}

static void knn_row(FILE *f, const bench_result *r, const bench_row *x) {
  knn_cells c = knn_cells_of(x);
  char peer[24] = "";
  if (r->peers)
    snprintf(peer, sizeof peer, " %8s", c.peer);
  const char *mark = row_mark(x);
  fprintf(f, "%-12s %3u  %-27s %8s %9s %8s%s %8.1f  %s%s%s\n", x->backend, x->workers, c.took, c.gf,
          c.vs, c.sp, peer, x->peak_mib, x->plan, *mark ? "  " : "", mark);
}

static void md_knn_head(FILE *f, const bench_result *r, const bench_row *x) {
  fprintf(f, "\n### %s\n\n", x->section);
  fprintf(f,
          "| backend | workers | took (median [min-max]) | GFLOP/s | vs sgemm | vs naive |%s "
          "peak MiB | plan |\n|---|---|---|---|---|---|%s---|---|\n",
          r->peers ? " vs peer |" : "", r->peers ? "---|" : "");
}

static void md_knn_row(FILE *f, const bench_result *r, const bench_row *x) {
  knn_cells c = knn_cells_of(x);
  char peer[24] = "";
  if (r->peers)
    snprintf(peer, sizeof peer, " %s |", c.peer);
  const char *mark = row_mark(x);
  fprintf(f, "| %s | %u | %s | %s | %s | %s |%s %.1f | %s |%s%s\n", x->backend, x->workers, c.took,
          c.gf, c.vs, c.sp, peer, x->peak_mib, x->plan, *mark ? " " : "", mark);
}

static void md_head(FILE *f, const bench_result *r, const bench_row *x) {
  fprintf(f, "\n### %s\n\n", x->section);
  fprintf(f,
          "| backend | schedule | workers | took (median [min-max]) | CPU %% | peak MiB | "
          "speedup | efficiency |%s\n|---|---|---|---|---|---|---|---|%s\n",
          r->peers ? " vs peer |" : "", r->peers ? "---|" : "");
}

static void md_row(FILE *f, const bench_result *r, const bench_row *x) {
  int timed = x->wall.median > 0 && !x->failed;
  char took[64], cpu[16] = "-", vs[24] = "", peak[16] = "-", sp[16] = "-", eff[16] = "-";
  took_text(&x->wall, took, sizeof took);
  if (timed && !x->external && !x->cpu_unknown)
    snprintf(cpu, sizeof cpu, "%.0f%%", 100 * x->cpu_s / x->wall.median);
  if (timed)
    snprintf(peak, sizeof peak, "%.1f", x->peak_mib);
  if (timed && x->speedup > 0) {
    snprintf(sp, sizeof sp, "%.2fx%s", x->speedup, x->suspect ? "?" : "");
    snprintf(eff, sizeof eff, "%.0f%%", 100 * x->efficiency);
  }
  if (r->peers)
    snprintf(vs, sizeof vs, x->vs_peer > 0 ? " %.2fx |" : " - |", x->vs_peer);
  fprintf(f, "| %s | %s | %u | %s | %s | %s | %s | %s |%s%s\n", x->backend, x->schedule, x->workers,
          took, cpu, peak, sp, eff, vs, x->failed ? " FAILED" : "");
}

static void md_tail(FILE *f, const bench_result *r, const char *section) {
  fputc('\n', f);
  print_notes(f, r, section, "- ");
}

/* The others' CPU share as text: @none where it was not measured (csv: empty; json: null). */
static const char *others_text(const bench_row *x, const char *none) {
  static _Thread_local char buf[16];
  if (!x->others_measured)
    return none;
  snprintf(buf, sizeof buf, "%.4f", x->others_cpu);
  return buf;
}

/* A CSV field (RFC 4180): quoted, quotes doubled. A --task row's workload is the plug-in's
 * function name, which may hold anything a symbol can. */
static void csv_field(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', f);
    fputc(*s, f);
  }
  fputs("\",", f);
}

static void print_csv(FILE *f, const bench_result *r) {
  fprintf(f, "suite,section,workload,backend,schedule,chunk,workers,n,median_s,min_s,max_s,cpu_s,"
             "sys_share,peak_mib,ns_per_item,overhead_ns_per_item,speedup,efficiency,failed,"
             "gflops,vs_sgemm,plan,external,vs_peer,n_failed,n_crashed,n_exited,n_timeout,"
             "n_overflow,n_not_run,first_failed,others_cpu,noisy,cpu_unknown,suspect,"
             "unavailable,h2d_s,gemm_s,select_s,d2h_s\n");
  for (size_t i = 0; i < r->nrows; i++) {
    const bench_row *x = &r->rows[i];
    fprintf(f, "%s,", r->suite);
    csv_field(f, x->section);
    csv_field(f, x->workload);
    fprintf(f, "%s,%s,%zu,%u,%zu,%.6f,%.6f,%.6f,%.6f,%.4f,%.2f,%.3f,%.3f,%.4f,%.4f,%d,%.3f,%.4f,",
            x->backend, x->schedule, x->chunk, x->workers, x->n, x->wall.median, x->wall.min,
            x->wall.max, x->cpu_s, x->sys_share, x->peak_mib, x->ns_per_item, x->overhead_ns,
            x->speedup, x->efficiency, x->failed, x->gflops, x->vs_sgemm);
    csv_field(f, x->plan);
    fprintf(f, "%d,%.4f,%zu,%zu,%zu,%zu,%zu,%zu,%lld,%s,%d,%d,%d,%d,%.6f,%.6f,%.6f,%.6f\n",
            x->external, x->vs_peer, x->n_failed, x->n_crashed, x->n_exited, x->n_timeout,
            x->n_overflow, x->n_not_run, x->first_failed, others_text(x, ""), x->noisy,
            x->cpu_unknown, x->suspect, x->unavailable, x->h2d_s, x->gemm_s, x->select_s, x->d2h_s);
  }
}

/* Every string: a --task row's section and workload carry the plug-in's function name. */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(f, "\\u%04x", *s);
    else
      fputc(*s, f);
  }
  fputc('"', f);
}

static void print_json(FILE *f, const bench_result *r, const char *header) {
  fprintf(f, "{\"schema\":%d,\"suite\":", BENCH_JSON_SCHEMA);
  json_string(f, r->suite);
  fprintf(f, ",\"run\":");
  json_string(f, header);
  fprintf(f, ",\"rows\":[");
  for (size_t i = 0; i < r->nrows; i++) {
    const bench_row *x = &r->rows[i];
    fprintf(f, "%s\n{\"section\":", i ? "," : "");
    json_string(f, x->section);
    fprintf(f, ",\"workload\":");
    json_string(f, x->workload);
    fprintf(f, ",\"backend\":");
    json_string(f, x->backend);
    fprintf(f, ",\"schedule\":");
    json_string(f, x->schedule);
    fprintf(f,
            ",\"chunk\":%zu,"
            "\"workers\":%u,\"n\":%zu,\"median_s\":%.6f,\"min_s\":%.6f,\"max_s\":%.6f,"
            "\"cpu_s\":%.6f,\"sys_share\":%.4f,\"peak_mib\":%.2f,\"ns_per_item\":%.3f,"
            "\"overhead_ns_per_item\":%.3f,\"speedup\":%.4f,\"efficiency\":%.4f,\"failed\":%s,"
            "\"gflops\":%.3f,\"vs_sgemm\":%.4f,\"plan\":",
            x->chunk, x->workers, x->n, x->wall.median, x->wall.min, x->wall.max, x->cpu_s,
            x->sys_share, x->peak_mib, x->ns_per_item, x->overhead_ns, x->speedup, x->efficiency,
            x->failed ? "true" : "false", x->gflops, x->vs_sgemm);
    json_string(f, x->plan);
    fprintf(f,
            ",\"external\":%s,\"vs_peer\":%.4f,\"imbalance\":%.4f,\"restarts\":%u,"
            "\"n_failed\":%zu,\"n_crashed\":%zu,\"n_exited\":%zu,\"n_timeout\":%zu,"
            "\"n_overflow\":%zu,\"n_not_run\":%zu,\"first_failed\":%lld,\"others_cpu\":%s,"
            "\"noisy\":%s,\"cpu_unknown\":%s,\"suspect\":%s,\"unavailable\":%s,\"h2d_s\":%.6f,"
            "\"gemm_s\":%.6f,\"select_s\":%.6f,\"d2h_s\":%.6f}",
            x->external ? "true" : "false", x->vs_peer, x->imbalance, x->restarts, x->n_failed,
            x->n_crashed, x->n_exited, x->n_timeout, x->n_overflow, x->n_not_run, x->first_failed,
            others_text(x, "null"), x->noisy ? "true" : "false", x->cpu_unknown ? "true" : "false",
            x->suspect ? "true" : "false", x->unavailable ? "true" : "false", x->h2d_s, x->gemm_s,
            x->select_s, x->d2h_s);
  }
  fprintf(f, "\n],\"notes\":[");
  for (size_t i = 0; i < r->nnotes; i++) {
    fprintf(f, "%s\n{\"section\":", i ? "," : "");
    json_string(f, r->notes[i].section);
    fprintf(f, ",\"text\":");
    json_string(f, r->notes[i].text);
    fputc('}', f);
  }
  fprintf(f, "\n]}\n");
}

void bench_report(FILE *f, bench_format fmt, const bench_result *r, const char *header) {
  int knn = !strcmp(r->suite, "knn");
  static const layout table = {table_head, table_row, table_tail, "\n== %s ==\n"};
  static const layout markdown = {md_head, md_row, md_tail, "\n### %s\n"};
  static const layout knn_table = {knn_head, knn_row, table_tail, "\n== %s ==\n"};
  static const layout knn_markdown = {md_knn_head, md_knn_row, md_tail, "\n### %s\n"};
  switch (fmt) {
  case BENCH_CSV:
    print_csv(f, r);
    return;
  case BENCH_JSON:
    print_json(f, r, header);
    return;
  case BENCH_TABLE:
    fprintf(f, "%s\n", header);
    grouped(f, r, knn ? &knn_table : &table);
    fputc('\n', f);
    print_notes(f, r, "", "");
    return;
  case BENCH_MARKDOWN:
    fprintf(f, "`%s`\n", header);
    grouped(f, r, knn ? &knn_markdown : &markdown);
    fputc('\n', f);
    print_notes(f, r, "", "- ");
    return;
  }
}
