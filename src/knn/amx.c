/* SPDX-License-Identifier: MIT */
/* precision bf16's products on Intel's AMX tiles (TDPBF16PS), where the CPU has them.
 *
 * Why: on an Intel Xeon of family 6 model 207 (AVX-512 BF16 and AMX) the AVX-512 BF16 register
 * block ran at half the fp32 kernel's rate (docs/PERFORMANCE.md), so precision bf16 was slower
 * than exact there. One TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 one into 16 x 16
 * fp32 sums: 8192 products an instruction against VDPBF16PS's 32.
 *
 * The arithmetic is the one cert.c's bound covers: products of bf16 values (exact in fp32, or
 * flushed below the smallest normal) added into fp32 accumulators, rounded to nearest even, in
 * whatever order the unit uses; the pad (dims past the vectors' end, rows past a tile's) is zero
 * and adds nothing.
 *
 * Layouts. The database tile is row-major bf16 pairs, @xs words a row (the pairs rounded up to
 * 16, the pad zero), so RB consecutive rows are one A tile of RB rows x 64 bytes per 16 pairs.
 * The query block is pair-major (qp[t2 * QB + l], kernel_bf16.h), which is already the B tile's
 * layout: 16 rows of pairs, 16 queries of 4 bytes a row, at a stride of QB words. So the block
 * (row r, query l) lands in out[r * QB + l], as the AVX-512 register block writes it. */
#define _GNU_SOURCE /* syscall */
#include "internal/knn.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define QB (BG_KNN_QBLOCK_BYTES / 4)
#define RB BG_KNN_RBLOCK

typedef float amx_vf __attribute__((vector_size(64)));
typedef uint32_t amx_vu __attribute__((vector_size(64)));

/* What TDPBF16PS computes, in C: each product exact, each sum rounded in fp32 (the build has no
 * contraction), the pair's low product first; 16 queries a vector. It reads what the tiles read,
 * pad included, so the layouts are tested on CPUs without AMX (BRIGADE_KNN_ISA=generic-amx). */
void bg__knn_amx_block_emulated(const uint32_t *qp, const uint32_t *x, size_t xs, float *out) {
  for (size_t r = 0; r < RB; r++)
    for (size_t h = 0; h < QB; h += 16) {
      amx_vf acc = {0};
      for (size_t t2 = 0; t2 < xs; t2++) {
        amx_vu a = (amx_vu){0} + x[r * xs + t2], b;
        memcpy(&b, qp + t2 * QB + h, sizeof b);
        acc = acc + (amx_vf)(a << 16) * (amx_vf)(b << 16);
        acc = acc + (amx_vf)(a & 0xffff0000u) * (amx_vf)(b & 0xffff0000u);
      }
      memcpy(out + r * QB + h, &acc, sizeof acc);
    }
}

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux gives a process AMX's 8 KiB of tile state only when asked (arch_prctl, Linux 5.16);
 * without the permission the first tile instruction raises SIGILL. Linux refuses it while an
 * alternate signal stack too small for the larger signal frame is set (bf16 then runs on
 * AVX-512 BF16), and once granted refuses such stacks to the rest of the process, as it does
 * for every library that uses AMX. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int bg__knn_amx_usable(void) {
  /* 0: not asked yet; 1: usable; -1: not. Two threads asking at once both ask the kernel, which
   * is harmless. */
  static _Atomic int state;
  int s = atomic_load_explicit(&state, memory_order_acquire);
  if (s)
    return s > 0;
  unsigned a, b, c, d;
  int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) /* AMX-BF16 */ &&
           (d >> 24 & 1) /* AMX-TILE */ &&
           syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
  atomic_store_explicit(&state, ok ? 1 : -1, memory_order_release);
  return ok;
}

/* The tile configuration (palette 1): the layout the instruction set defines, 64 bytes. */
typedef struct amx_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_config;

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))

/* tmm0, tmm1: the block's sums for queries 0-15 and 16-31 (RB rows of 16 fp32); tmm2: RB
 * database rows of 16 pairs; tmm3, tmm4: 16 pairs of queries 0-15 and 16-31. */
AMX_TARGET void bg__knn_amx_begin(void) {
  amx_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 5; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = t < 3 ? RB : 16;
  }
  /* Not _tile_loadconfig: GCC 12's names only the first 8 bytes as read, and drops the stores
   * of the rows and widths (seen in its object code). This operand is the whole structure. */
  __asm__ __volatile__("ldtilecfg %0" ::"m"(cfg));
}

AMX_TARGET void bg__knn_amx_end(void) {
  _tile_release();
}

AMX_TARGET void bg__knn_amx_block(const uint32_t *qp, const uint32_t *x, size_t xs, float *out) {
  /* GCC's tile loads are asm statements that do not say they read memory: a compiler barrier
   * keeps the caller's packing stores before them. */
  __asm__ __volatile__("" ::: "memory");
  _tile_zero(0);
  _tile_zero(1);
  for (size_t t2 = 0; t2 < xs; t2 += 16) {
    _tile_loadd(2, x + t2, xs * sizeof *x);
    _tile_loadd(3, qp + t2 * QB, QB * sizeof *qp);
    _tile_loadd(4, qp + t2 * QB + 16, QB * sizeof *qp);
    _tile_dpbf16ps(0, 2, 3);
    _tile_dpbf16ps(1, 2, 4);
  }
  _tile_stored(0, out, QB * sizeof *out);
  _tile_stored(1, out + 16, QB * sizeof *out);
}

#else

int bg__knn_amx_usable(void) {
  return 0;
}

/* Unreachable: bg__knn_amx_usable said no. */
void bg__knn_amx_begin(void) {}

void bg__knn_amx_end(void) {}

void bg__knn_amx_block(const uint32_t *qp, const uint32_t *x, size_t xs, float *out) {
  (void)qp, (void)x, (void)xs, (void)out;
}

#endif
