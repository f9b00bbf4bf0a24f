/* SPDX-License-Identifier: MIT */
/* The note a command writes when a signal ends it (stop.h). */
#include "stop.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static const char *stop_note = "";

/* Only write(2) and the signal's default action: async-signal-safe. */
static void on_stop(int sig) {
  ssize_t put = write(2, stop_note, strlen(stop_note));
  (void)put;
  signal(sig, SIG_DFL);
  raise(sig);
}

int cli_stop_guard(const char *note) {
  stop_note = note;
  static const int sigs[] = {SIGINT, SIGTERM};
  int mask = 0;
  for (int i = 0; i < 2; i++) {
    struct sigaction old, sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        sigaction(sigs[i], &sa, NULL) == 0)
      mask |= 1 << i;
  }
  return mask;
}

void cli_stop_restore(int mask) {
  if (mask & 1)
    signal(SIGINT, SIG_DFL);
  if (mask & 2)
    signal(SIGTERM, SIG_DFL);
}

static const char *bus_note = "";

/* Only a fault says so: a SIGBUS another process sent (kill -BUS: si_code SI_USER or below)
 * takes its default action, as it would without the guard. */
static void on_bus(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  if (si->si_code <= 0) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  ssize_t put = write(2, bus_note, strlen(bus_note));
  (void)put;
  _exit(1);
}

void cli_bus_guard(const char *note) {
  bus_note = note;
  struct sigaction sa = {.sa_sigaction = on_bus, .sa_flags = SA_SIGINFO};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, NULL);
}

void cli_bus_restore(void) {
  signal(SIGBUS, SIG_DFL);
}
