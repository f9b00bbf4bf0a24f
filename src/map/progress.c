/* SPDX-License-Identifier: MIT */
/* The progress bar. It keeps no lock: bg_map calls its listener from one thread at a time, and
 * a program that shares a bar between concurrent maps gets interleaved but whole redraws. */
#include "brigade/progress.h"
#include "brigade/error.h"
#include "internal/clock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 24

struct bg_progress_bar {
  char label[64];
  int fd;
  int active;
  int drew;
  int clear;
  size_t last;    /* the count of the last update */
  uint64_t t0_ns; /* 0 until the first update */
};

int bg_progress_bar_create(const char *label, int fd, unsigned flags, bg_progress_bar_t **out) {
  if (!out)
    return BG_EINVAL;
  bg_progress_bar_t *b = calloc(1, sizeof *b);
  if (!b)
    return BG_ENOMEM;
  snprintf(b->label, sizeof b->label, "%s", label ? label : "");
  b->fd = fd < 0 ? STDERR_FILENO : fd;
  b->active = (flags & BG_PROGRESS_FORCE) || isatty(b->fd);
  b->clear = (flags & BG_PROGRESS_CLEAR) != 0;
  *out = b;
  return BG_OK;
}

int bg_progress_bar_active(const bg_progress_bar_t *b) {
  return b && b->active;
}

/* 1234567 -> "1.2M"; below 10000 the number itself. */
static void human(double v, char *buf, size_t cap) {
  static const char units[] = " kMGT";
  int u = 0;
  while (v >= 10000 && u < 4) {
    v /= 1000;
    u++;
  }
  if (u == 0)
    snprintf(buf, cap, "%.0f", v);
  else
    snprintf(buf, cap, "%.1f%c", v, units[u]);
}

static void clock_text(double s, char *buf, size_t cap) {
  if (s < 0 || s > 359999) {
    snprintf(buf, cap, "--:--");
    return;
  }
  unsigned t = (unsigned)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, cap, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, cap, "%02u:%02u", t / 60, t % 60);
}

void bg_progress_bar_format(const bg_progress_bar_t *b, size_t done, size_t total, double elapsed_s,
                            char *buf, size_t cap) {
  if (!buf || cap == 0)
    return;
  double frac = total ? (double)done / (double)total : 1.0;
  frac = frac > 1 ? 1 : frac;
  char bar[BAR_WIDTH + 1];
  int full = (int)(frac * BAR_WIDTH);
  for (int k = 0; k < BAR_WIDTH; k++)
    bar[k] = k < full ? '#' : '.';
  bar[BAR_WIDTH] = '\0';
  double rate = elapsed_s > 0 ? (double)done / elapsed_s : 0;
  char rate_s[16], left_s[16], took_s[16];
  human(rate, rate_s, sizeof rate_s);
  clock_text(elapsed_s, took_s, sizeof took_s);
  clock_text(rate > 0 && done < total ? (double)(total - done) / rate
             : done >= total          ? 0
                                      : -1,
             left_s, sizeof left_s);
  snprintf(buf, cap, "%s%s[%s] %zu/%zu %3.0f%% %s/s %s elapsed, %s left", b ? b->label : "",
           b && b->label[0] ? " " : "", bar, done, total, frac * 100, rate_s, took_s, left_s);
}

void bg_progress_bar_update(size_t done, size_t total, void *bar) {
  bg_progress_bar_t *b = bar;
  if (!b || !b->active)
    return;
  uint64_t now = bg__now_ns();
  if (!b->t0_ns || done == 0 || done < b->last)
    b->t0_ns = now;
  b->last = done;
  char line[256];
  line[0] = '\r';
  bg_progress_bar_format(b, done, total, (double)(now - b->t0_ns) * 1e-9, line + 1,
                         sizeof line - 8);
  /* Clear what a longer previous redraw left at the end of the line. */
  strcat(line, "\033[K");
  ssize_t rc = write(b->fd, line, strlen(line));
  (void)rc; /* a progress line that cannot be written is not worth failing a map for */
  b->drew = 1;
}

void bg_progress_bar_destroy(bg_progress_bar_t *b) {
  if (!b)
    return;
  if (b->drew) {
    const char *end = b->clear ? "\r\033[K" : "\n";
    ssize_t rc = write(b->fd, end, strlen(end));
    (void)rc;
  }
  free(b);
}
