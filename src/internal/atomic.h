/* SPDX-License-Identifier: MIT */
/* Thin wrappers over C11 atomics whose names say the memory order, so every call site shows
 * what it synchronises with (the mimalloc convention). */
#ifndef BRIGADE_INTERNAL_ATOMIC_H
#define BRIGADE_INTERNAL_ATOMIC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define bg_atomic_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define bg_atomic_load_acq(p) atomic_load_explicit((p), memory_order_acquire)
#define bg_atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define bg_atomic_store_rel(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define bg_atomic_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define bg_atomic_sub_acq_rel(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define bg_atomic_cas_weak_relaxed(p, e, v)                                                        \
  atomic_compare_exchange_weak_explicit((p), (e), (v), memory_order_relaxed, memory_order_relaxed)

/* A hint to the CPU that this is a spin-wait loop; it saves power and lets the sibling
 * hyper-thread run. */
static inline void bg__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#define BG_CACHELINE 64

#endif
