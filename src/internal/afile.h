/* SPDX-License-Identifier: MIT */
/* Files written whole or not at all: a temporary beside the destination, synced, then renamed
 * over it. bg_npy_write uses it, and so does the CLI's output helper (bench/outfile.c), which adds
 * the signal guard a library must not install. */
#ifndef BRIGADE_INTERNAL_AFILE_H
#define BRIGADE_INTERNAL_AFILE_H

#include <stddef.h>

typedef struct bg__afile {
  const char *path; /* the destination as given, borrowed */
  char dest[4096];  /* the destination renamed over: a symlink's target, so the link stays */
  char tmp[4096];   /* what is written: the temporary beside dest, or the destination itself
                       when it is a device or a FIFO (direct); "" when nothing is open */
  int direct;       /* written in place: /dev/null, /dev/stdout, a FIFO cannot be renamed over */
  int replaces;     /* dest exists: the temporary takes its permission bits */
  unsigned mode;    /* those bits */
  int fd;           /* open on tmp after bg__afile_create; -1 before and after */
  int unnamed;      /* fd is an O_TMPFILE file: tmp is only its template until commit links it */
  int named;        /* set after prepare: the temporary must have its name from the start (another
                       program writes it by name) */
} bg__afile_t;

/* Decides what will be written without creating anything: a device, a FIFO or a socket is
 * written in place; a symlink is resolved (its target is replaced, the link kept); otherwise
 * tmp is the template ".NAME.XXXXXX" in the destination's folder, so the rename cannot cross
 * file systems. Returns 0, or BG_ERANGE with "'path': the name is too long" in err. */
int bg__afile_prepare(bg__afile_t *f, const char *path, char *err, size_t cap);

/* Opens the destination (direct) or creates the temporary: with no name in the destination's
 * folder (O_TMPFILE; a kill -9 then leaves nothing), else by name with O_EXCL, which never
 * follows a planted link. Each name tried is written into f->tmp before the file gets it, so a
 * signal handler reading f->tmp always sees the name of the file that exists (or a name that
 * does not exist yet). A new file honours the umask, a replaced one keeps its permission bits.
 * Returns 0, or BG_ESYS with the errno text in err and nothing left behind. */
int bg__afile_create(bg__afile_t *f, char *err, size_t cap);

/* Syncs the temporary, names an unnamed one (linkat), closes it, then renames it over the
 * destination (a direct file is only closed). Returns 0, or BG_ESYS with "'path': write failed:
 * <errno text>; the previous file, if any, is unchanged" in err, the temporary removed and the
 * destination untouched. */
int bg__afile_commit(bg__afile_t *f, char *err, size_t cap);

/* Gives the temporary a second name, @to, where nothing of that name exists (link(2): EEXIST
 * otherwise), without replacing anything; the temporary is still to be committed or discarded.
 * 0, or -1 with errno. */
int bg__afile_link(bg__afile_t *f, const char *to);

/* Discards the temporary after a failed write and says so: "'path': <why>; the previous file,
 * if any, is unchanged" in err. Returns BG_ESYS. */
int bg__afile_abandon(bg__afile_t *f, const char *why, char *err, size_t cap);

/* Closes and removes the temporary, leaving the destination as it was. Safe to call twice. */
void bg__afile_discard(bg__afile_t *f);

#endif
