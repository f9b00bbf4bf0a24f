/* SPDX-License-Identifier: MIT */
/* Output files written whole or not at all: checked before any long work (a folder that
 * exists and can be written, not a directory, not one of the command's inputs), written to a
 * temporary file beside the destination, synced, and renamed over it. An interrupted or failed
 * write leaves the previous file as it was and no temporary behind. */
#ifndef BRIGADE_BENCH_OUTFILE_H
#define BRIGADE_BENCH_OUTFILE_H

#include <stdio.h>

#include "internal/afile.h"

typedef struct bench_outfile {
  bg__afile_t af; /* the library's atomic file: af.tmp is what is written (a device itself) */
  int guarded;    /* a fatal signal removes af.tmp before it ends the process */
  FILE *f;        /* open on af.tmp */
} bench_outfile;

/* Says whether path can be written: 0, or -1 with the reason and its fix in err. inputs is a
 * NULL-terminated list of the files the command reads (NULL for none): an output that is the
 * same file as one of them (same device and inode, whatever the name) is refused. */
int bench_outfile_check(const char *path, const char *const *inputs, char *err, size_t cap);

/* Whether two paths name one file: the same inode when both exist, else the same name once
 * their folders are resolved ("./x" and "x", "d/../x" and "x"). */
int bench_same_file(const char *a, const char *b);

/* Creates the temporary file with bg__afile_create (in the destination's folder, so the rename
 * cannot cross file systems; with no name until commit where the kernel allows, so a kill -9
 * leaves nothing; else named, with O_EXCL, which never follows a planted link). Until commit or
 * discard,
 * a SIGINT, SIGTERM or SIGHUP that would end the process (default action) removes the
 * temporary first, whichever thread it reaches; one the program handles itself is left to it. A
 * symlink is resolved (its target is replaced, the link kept); an existing file keeps its
 * permission bits; a device or a FIFO is written in place, never replaced by a file. Returns 0, or
 * -1 with the errno text in err. */
int bench_outfile_open(bench_outfile *o, const char *path, char *err, size_t cap);

/* The same with a temporary that has its name (af.tmp) from the start, for another program to
 * write by name (gnuplot's `set output`). */
int bench_outfile_open_named(bench_outfile *o, const char *path, char *err, size_t cap);

/* Flushes, syncs and closes the temporary, then renames it over the destination. Returns 0,
 * or -1 with the errno text in err (a full disk: "No space left on device"), the temporary
 * removed and the destination untouched. The signals' default actions are restored either way. */
int bench_outfile_commit(bench_outfile *o, char *err, size_t cap);

/* After a failed write: closes and removes the temporary, and says so in err ("'path': why;
 * the previous file, if any, is unchanged"). Returns -1. */
int bench_outfile_abandon(bench_outfile *o, const char *why, char *err, size_t cap);

/* Closes and removes the temporary, leaving the destination as it was. */
void bench_outfile_discard(bench_outfile *o);

#endif
