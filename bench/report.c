/* SPDX-License-Identifier: MIT */
/* Report formats. The table groups rows by section; CSV and JSON carry every field so a
 * spreadsheet or a script can redo any ratio. The JSON schema is versioned ("schema": 1). */
#include "report.h"

#include <string.h>

int bench_format_parse(const char *s, bench_format *out) {
  static const char *const names[] = {"table", "csv", "json"};
  for (int i = 0; i < 3; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (bench_format)i;
      return 0;
    }
  }
  return -1;
}

static void chunk_text(size_t chunk, char *buf, size_t cap) {
  if (chunk)
    snprintf(buf, cap, "%zu", chunk);
  else
    snprintf(buf, cap, "-");
}

static void print_table(FILE *f, const bench_row *rows, size_t n) {
  const char *section = NULL;
  for (size_t i = 0; i < n; i++) {
    const bench_row *r = &rows[i];
    if (!section || strcmp(section, r->section) != 0) {
      section = r->section;
      fprintf(f, "\n== %s: %zu items ==\n", section, r->n);
      fprintf(f, "%-8s %-8s %6s %3s  %-28s %9s %11s %8s %6s\n", "backend", "schedule", "chunk",
              "wk", "took (median [min-max])", "ns/item", "overhead/it", "speedup", "eff.");
    }
    char chunk[24], took[64];
    chunk_text(r->chunk, chunk, sizeof chunk);
    snprintf(took, sizeof took, "%.4f s [%.4f-%.4f]", r->wall.median, r->wall.min, r->wall.max);
    fprintf(f, "%-8s %-8s %6s %3u  %-28s %9.2f %8.2f ns %7.2fx %5.0f%%\n", r->backend, r->schedule,
            chunk, r->workers, took, r->ns_per_item, r->overhead_ns, r->speedup,
            100 * r->efficiency);
  }
}

static void print_csv(FILE *f, const bench_row *rows, size_t n) {
  fprintf(f, "section,backend,schedule,chunk,workers,n,median_s,min_s,max_s,ns_per_item,"
             "overhead_ns_per_item,speedup,efficiency\n");
  for (size_t i = 0; i < n; i++) {
    const bench_row *r = &rows[i];
    fprintf(f, "%s,%s,%s,%zu,%u,%zu,%.6f,%.6f,%.6f,%.3f,%.3f,%.4f,%.4f\n", r->section, r->backend,
            r->schedule, r->chunk, r->workers, r->n, r->wall.median, r->wall.min, r->wall.max,
            r->ns_per_item, r->overhead_ns, r->speedup, r->efficiency);
  }
}

static void print_json(FILE *f, const bench_row *rows, size_t n) {
  fprintf(f, "{\"schema\":1,\"rows\":[");
  for (size_t i = 0; i < n; i++) {
    const bench_row *r = &rows[i];
    fprintf(f,
            "%s\n{\"section\":\"%s\",\"backend\":\"%s\",\"schedule\":\"%s\",\"chunk\":%zu,"
            "\"workers\":%u,\"n\":%zu,\"median_s\":%.6f,\"min_s\":%.6f,\"max_s\":%.6f,"
            "\"ns_per_item\":%.3f,\"overhead_ns_per_item\":%.3f,\"speedup\":%.4f,"
            "\"efficiency\":%.4f}",
            i ? "," : "", r->section, r->backend, r->schedule, r->chunk, r->workers, r->n,
            r->wall.median, r->wall.min, r->wall.max, r->ns_per_item, r->overhead_ns, r->speedup,
            r->efficiency);
  }
  fprintf(f, "\n]}\n");
}

void bench_report(FILE *f, bench_format fmt, const bench_row *rows, size_t n,
                  const char *const *notes, size_t nnotes) {
  switch (fmt) {
  case BENCH_CSV:
    print_csv(f, rows, n);
    return;
  case BENCH_JSON:
    print_json(f, rows, n);
    return;
  case BENCH_TABLE:
    print_table(f, rows, n);
    fputc('\n', f);
    for (size_t i = 0; i < nnotes; i++)
      fprintf(f, "%s\n", notes[i]);
    return;
  }
}
