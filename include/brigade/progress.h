/* SPDX-License-Identifier: MIT */
/* A ready-made progress bar for bg_map (tqdm's comfort): count, percentage, rate and time
 * left, redrawn in place on a terminal. It draws only when its file descriptor is a terminal
 * or when forced, so a program's logs and pipes stay clean; nothing is drawn unless the
 * program creates a bar and hands it to a map. */
#ifndef BRIGADE_PROGRESS_H
#define BRIGADE_PROGRESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_progress_bar bg_progress_bar_t;

enum bg_progress_flags {
  BG_PROGRESS_FORCE = 1u << 0, /* draw even when the descriptor is not a terminal */
  BG_PROGRESS_CLEAR = 1u << 1, /* erase the line when destroyed (default: end it, keep it) */
};

/**
 * bg_progress_bar_create - a bar that draws on @fd (-1: standard error).
 * @label: shown before the bar; copied (at most 63 bytes are kept).
 * @out: OUT: the bar, written only on success.
 *
 * Use it as a map's progress listener: desc.progress = bg_progress_bar_update,
 * desc.progress_ud = bar.
 * Return: 0, BG_EINVAL (NULL @out) or BG_ENOMEM.
 */
int bg_progress_bar_create(const char *label, int fd, unsigned flags, bg_progress_bar_t **out);

/**
 * bg_progress_bar_update - redraw with @done of @total items finished; a bg_progress_fn.
 * @bar: the bar (void * so that it fits bg_progress_fn).
 *
 * The first call starts the clock for the rate and the time left, and so does a count of 0 or
 * one lower than the last (the next map with the same bar): bg_map's first call, at its start,
 * has done == 0, so the rate is the count over the time since the map started. One write(2) per
 * call, so lines from several threads never interleave within a redraw.
 */
void bg_progress_bar_update(size_t done, size_t total, void *bar);

/** bg_progress_bar_active - 1 if the bar draws (a terminal, or forced), else 0. */
int bg_progress_bar_active(const bg_progress_bar_t *bar);

/**
 * bg_progress_bar_format - the text a redraw would write, without the leading carriage
 * return, into @buf (always terminated). For tests and for programs that draw elsewhere.
 * @elapsed_s: seconds since the start.
 */
void bg_progress_bar_format(const bg_progress_bar_t *bar, size_t done, size_t total,
                            double elapsed_s, char *buf, size_t cap);

/** bg_progress_bar_destroy - ends the line (or erases it, under BG_PROGRESS_CLEAR) when the
 * bar drew, and frees the bar; NULL is a no-op. */
void bg_progress_bar_destroy(bg_progress_bar_t *bar);

#ifdef __cplusplus
}
#endif
#endif
