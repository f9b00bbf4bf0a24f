/* SPDX-License-Identifier: MIT */
/* The SIGINT/SIGTERM guard of process-backed maps. The handler only counts: everything else
 * happens in the supervising loop, which sees poll() fail with EINTR (the handler is installed
 * without SA_RESTART) or the count move at its next wake-up. */
#include "internal/interrupt.h"
#include "internal/atomic.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static const int sigs[] = {SIGINT, SIGTERM};
enum { NSIGS = sizeof sigs / sizeof sigs[0] };

/* Written by the handler: a counter and the last signal. Lock-free atomics, which C allows a
 * handler to write: the handler may run on any thread of the process (a signal raised by, or
 * delivered to, another thread than the map's), where volatile sig_atomic_t orders nothing
 * between threads. Release by the handler, acquire by the readers: the count that moved
 * comes with its signal number. */
static _Atomic unsigned long hits;
static _Atomic int last_sig;
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "a signal handler may only write lock-free atomics");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned users;                /* under lock */
static struct sigaction saved[NSIGS]; /* under lock: the handlers we replaced */
static int installed[NSIGS];          /* under lock */
static unsigned long hits_at_install; /* under lock */

static void on_signal(int sig) {
  bg_atomic_store_relaxed(&last_sig, sig);
  atomic_fetch_add_explicit(&hits, 1, memory_order_release);
}

void bg__interrupt_begin(bg__interrupt *g) {
  pthread_mutex_lock(&lock);
  if (users++ == 0) {
    hits_at_install = bg_atomic_load_acq(&hits);
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
  g->seen = bg_atomic_load_acq(&hits);
  pthread_mutex_unlock(&lock);
}

bool bg__interrupted(const bg__interrupt *g) {
  return bg_atomic_load_acq(&hits) != g->seen;
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
      if (bg_atomic_load_acq(&hits) != hits_at_install &&
          bg_atomic_load_relaxed(&last_sig) == sigs[i] && saved[i].sa_handler != SIG_DFL &&
          saved[i].sa_handler != SIG_IGN)
        resend = sigs[i];
    }
  }
  pthread_mutex_unlock(&lock);
  /* Outside the lock: the application's handler may itself start a map. */
  if (resend)
    raise(resend);
}
