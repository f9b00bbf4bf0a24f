/* SPDX-License-Identifier: MIT */
/* The SIGINT/SIGTERM guard of process-backed maps. The handler only counts: everything else
 * happens in the supervising loop, which sees poll() fail with EINTR (the handler is installed
 * without SA_RESTART) or the count move at its next wake-up. */
#include "internal/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static const int sigs[] = {SIGINT, SIGTERM};
enum { NSIGS = sizeof sigs / sizeof sigs[0] };

/* Written by the handler: a counter and the last signal. Plain sig_atomic_t, as C requires of
 * what a handler writes; read outside the handler under no lock, which is what that type is
 * for. */
static volatile sig_atomic_t hits;
static volatile sig_atomic_t last_sig;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned users;                /* under lock */
static struct sigaction saved[NSIGS]; /* under lock: the handlers we replaced */
static int installed[NSIGS];          /* under lock */
static unsigned long hits_at_install; /* under lock */

static void on_signal(int sig) {
  hits = hits + 1;
  last_sig = sig;
}

void bg__interrupt_begin(bg__interrupt *g) {
  pthread_mutex_lock(&lock);
  if (users++ == 0) {
    hits_at_install = (unsigned long)hits;
    for (int i = 0; i < NSIGS; i++) {
      struct sigaction sa;
      installed[i] = 0;
      if (sigaction(sigs[i], NULL, &saved[i]) != 0 || saved[i].sa_handler == SIG_IGN)
        continue;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      installed[i] = sigaction(sigs[i], &sa, NULL) == 0;
    }
  }
  g->seen = (unsigned long)hits;
  pthread_mutex_unlock(&lock);
}

bool bg__interrupted(const bg__interrupt *g) {
  return (unsigned long)hits != g->seen;
}

void bg__interrupt_end(bg__interrupt *g) {
  (void)g;
  int resend = 0;
  pthread_mutex_lock(&lock);
  if (--users == 0) {
    for (int i = 0; i < NSIGS; i++) {
      if (!installed[i])
        continue;
      sigaction(sigs[i], &saved[i], NULL);
      /* A handler of the application's own: let it see the Ctrl-C it would have seen. The
       * default action is not re-raised: the caller learns of the interruption from bg_map's
       * BG_ECANCELED and decides what to do with the results it got. */
      if ((unsigned long)hits != hits_at_install && last_sig == sigs[i] &&
          saved[i].sa_handler != SIG_DFL && saved[i].sa_handler != SIG_IGN)
        resend = sigs[i];
    }
  }
  pthread_mutex_unlock(&lock);
  /* Outside the lock: the application's handler may itself start a map. */
  if (resend)
    raise(resend);
}
