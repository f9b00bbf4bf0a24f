/* SPDX-License-Identifier: MIT */
/* What a command says when SIGINT or SIGTERM ends it during work that cannot be stopped midway
 * (a map on threads, a knn search): a note of what was kept, then the signal's own ending
 * (exit status 130, 143), so the shell sees the same status as without the note. */
#ifndef BRIGADE_CLI_STOP_H
#define BRIGADE_CLI_STOP_H

/* Installs the note for SIGINT and SIGTERM where their action is the default (a program that
 * set its own keeps it). @note must outlive the guard; it is written whole by the handler
 * (async-signal-safe). Returns which signals it installed, for cli_stop_restore. */
int cli_stop_guard(const char *note);
void cli_stop_restore(int mask);

/* Makes SIGBUS from a fault (a mapped file cut short by another process while it is read)
 * write @note and end the process with exit status 1, where it would die with no word; one sent
 * by kill keeps its default action. Until cli_bus_restore(). @note must outlive the guard. */
void cli_bus_guard(const char *note);
void cli_bus_restore(void);

#endif
