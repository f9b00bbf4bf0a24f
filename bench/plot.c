/* SPDX-License-Identifier: MIT */
/* Plots with gnuplot, fed through a pipe: the data goes inline after each plot command, so
 * nothing is written but the picture. */
#include "plot.h"
#include "outfile.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The gnuplot terminal for the file's extension, @panels stacked charts high; NULL for an
 * extension it does not draw. */
static const char *terminal_for(const char *path, int panels, char *buf, size_t cap) {
  const char *dot = strrchr(path, '.');
  if (dot && !strcmp(dot, ".svg"))
    snprintf(buf, cap, "svg size 1000,%d dynamic background rgb 'white'", 450 * panels);
  else if (dot && !strcmp(dot, ".png"))
    snprintf(buf, cap, "pngcairo size 1000,%d", 450 * panels);
  else
    return NULL;
  return buf;
}

#define MAX_SERIES 16

/* Distinct values of a field, in first-seen order, leaving out skip. */
static size_t distinct(const bench_result *r, size_t off, const char *skip, const char **out,
                       size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < r->nrows; i++) {
    const char *v = *(const char *const *)((const char *)&r->rows[i] + off);
    if (skip && !strcmp(v, skip))
      continue;
    size_t k = 0;
    while (k < n && strcmp(out[k], v))
      k++;
    if (k == n && n < cap)
      out[n++] = v;
  }
  return n;
}

/* What the bars show: speedup over the sequential loop, (knn suite) GFLOP/s, or the fastest
 * time over what the machine's measured limit allows (1: at the limit). */
typedef enum bar_kind { BAR_SPEEDUP, BAR_GFLOPS, BAR_OVER_LIMIT } bar_kind;

typedef struct bar_metric {
  const char *title, *ylabel;
  bar_kind kind;
} bar_metric;

/* The best value of a backend in a section, over worker counts; a wrong answer has none, and
 * neither has a row without a limit to be measured against. */
static double best_of(const bench_result *r, const char *section, const char *backend,
                      const bar_metric *m) {
  double best = 0;
  for (size_t i = 0; i < r->nrows; i++) {
    const bench_row *x = &r->rows[i];
    if (strcmp(x->section, section) || strcmp(x->backend, backend) || x->failed)
      continue;
    if (m->kind == BAR_OVER_LIMIT) {
      double v = x->floor_s > 0 ? x->wall.median / x->floor_s : 0;
      if (v > 0 && (best == 0 || v < best))
        best = v;
      continue;
    }
    double v = m->kind == BAR_GFLOPS ? x->gflops : x->speedup;
    best = v > best ? v : best;
  }
  return best;
}

/* Whether a section has a row with a measured limit. */
static int has_floor(const bench_result *r, const char *section) {
  for (size_t i = 0; i < r->nrows; i++)
    if (!strcmp(r->rows[i].section, section) && r->rows[i].floor_s > 0)
      return 1;
  return 0;
}

static void bars(FILE *g, const bench_result *r, const char **backends, size_t nb,
                 const bar_metric *m) {
  const char *sections[BENCH_MAX_ROWS];
  size_t ns = 0;
  for (size_t i = 0; i < r->nrows; i++)
    if ((ns == 0 || strcmp(sections[ns - 1], r->rows[i].section)) &&
        (m->kind != BAR_OVER_LIMIT || has_floor(r, r->rows[i].section)))
      sections[ns++] = r->rows[i].section;
  fprintf(g,
          "set title '%s'\n"
          "set style data histograms\nset style histogram clustered gap 1\n"
          "set style fill solid 0.8 border -1\nset xtics rotate by -30 noenhanced\n"
          "set ylabel '%s'\nset key top left\n%s\nplot ",
          m->title, m->ylabel,
          m->kind == BAR_OVER_LIMIT ? "set logscale y\nset yrange [*:*]" : "set yrange [0:*]");
  for (size_t b = 0; b < nb; b++)
    fprintf(g, "%s'-' using 2:xtic(1) title '%s' noenhanced", b ? ", " : "", backends[b]);
  if (m->kind == BAR_OVER_LIMIT)
    fprintf(g, ", 1 with lines dashtype 2 lc rgb 'black' title 'the machine''s limit'");
  fputc('\n', g);
  for (size_t b = 0; b < nb; b++) {
    for (size_t s = 0; s < ns; s++) {
      char name[BENCH_SECTION_LEN];
      snprintf(name, sizeof name, "%s", sections[s]);
      for (char *c = name; *c; c++)
        if (*c == '"')
          *c = '\'';
      double v = best_of(r, sections[s], backends[b], m);
      /* A log scale has no 0: a missing bar is left out, not drawn at the bottom. */
      if (v > 0 || m->kind != BAR_OVER_LIMIT)
        fprintf(g, "\"%s\" %.4f\n", name, v);
      else
        fprintf(g, "\"%s\" NaN\n", name);
    }
    fprintf(g, "e\n");
  }
}

static void lines(FILE *g, const bench_result *r, const char **backends, size_t nb) {
  unsigned maxw = 1;
  for (size_t i = 0; i < r->nrows; i++)
    maxw = r->rows[i].workers > maxw ? r->rows[i].workers : maxw;
  fprintf(g,
          "set title 'Speedup against workers'\nset style data linespoints\n"
          "unset xtics\nset xtics\nset xlabel 'workers'\nset ylabel 'speedup'\n"
          "set xrange [0.5:%u.5]\nplot x title 'ideal' with lines dashtype 2",
          maxw);
  const char *workloads[BENCH_MAX_ROWS];
  size_t nw = distinct(r, offsetof(bench_row, workload), NULL, workloads, BENCH_MAX_ROWS);
  for (size_t w = 0; w < nw; w++)
    for (size_t b = 0; b < nb; b++)
      fprintf(g, ", '-' using 1:2 title '%s %s' noenhanced", workloads[w], backends[b]);
  fputc('\n', g);
  for (size_t w = 0; w < nw; w++) {
    for (size_t b = 0; b < nb; b++) {
      for (size_t i = 0; i < r->nrows; i++) {
        const bench_row *x = &r->rows[i];
        if (!strcmp(x->workload, workloads[w]) && !strcmp(x->backend, backends[b]))
          fprintf(g, "%u %.4f\n", x->workers, x->speedup);
      }
      fprintf(g, "e\n");
    }
  }
}

int bench_plot(const bench_result *r, const char *path, char *err, size_t cap) {
  int limits = 0;
  for (size_t i = 0; i < r->nrows; i++)
    limits |= r->rows[i].floor_s > 0;
  int knn = !strcmp(r->suite, "knn"), panels = knn ? 2 : 2 + limits;
  char tbuf[96];
  const char *term = terminal_for(path, panels, tbuf, sizeof tbuf);
  if (!term) {
    snprintf(err, cap, "--plot '%s': the file must end in .svg or .png", path);
    return -1;
  }
  if (strchr(path, '\'') || strchr(path, '\n')) {
    snprintf(err, cap, "--plot '%s': the file name must not contain quotes or newlines", path);
    return -1;
  }
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
    snprintf(err, cap,
             "--plot needs gnuplot: install it with 'apt-get install gnuplot-nox' "
             "(scripts/bootstrap.sh does)");
    return -1;
  }
  /* gnuplot draws into a temporary beside the destination, renamed over it once complete. */
  bench_outfile o;
  /* gnuplot writes the image itself, by the temporary's name. */
  if (bench_outfile_open_named(&o, path, err, cap) != 0)
    return -1;
  FILE *g = popen("gnuplot 2>/dev/null", "w");
  if (!g) {
    snprintf(err, cap, "cannot start gnuplot");
    bench_outfile_discard(&o);
    return -1;
  }
  const char *backends[MAX_SERIES];
  size_t nb = distinct(r, offsetof(bench_row, backend), "seq", backends, MAX_SERIES);
  if (knn) {
    /* One worker count per case: throughput per case is the whole story. */
    static const bar_metric gf = {"GFLOP/s per case (top-k included; sgemm: the bare product)",
                                  "GFLOP/s", BAR_GFLOPS};
    fprintf(g, "set terminal %s\nset output '%s'\n", term, o.af.tmp);
    bars(g, r, backends, nb, &gf);
  } else {
    static const bar_metric sp = {"Speedup over the sequential loop (best worker count)", "speedup",
                                  BAR_SPEEDUP};
    static const bar_metric lim = {
        "Fastest time over what the measured limits of this machine allow (brigade info --limits; "
        "1: at the limit)",
        "times the limit", BAR_OVER_LIMIT};
    fprintf(g, "set terminal %s\nset output '%s'\nset multiplot layout %d,1\n", term, o.af.tmp,
            panels);
    bars(g, r, backends, nb, &sp);
    if (limits) {
      bars(g, r, backends, nb, &lim);
      fprintf(g, "unset logscale y\n");
    }
    lines(g, r, backends, nb);
    fprintf(g, "unset multiplot\n");
  }
  fprintf(g, "set output\n");
  if (pclose(g) != 0) {
    snprintf(err, cap, "gnuplot failed to draw '%s'", path);
    bench_outfile_discard(&o);
    return -1;
  }
  return bench_outfile_commit(&o, err, cap) != 0 ? -1 : 0;
}
