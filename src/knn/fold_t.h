/* SPDX-License-Identifier: MIT */
/* The blocked kernel's fold of a register block into its queries' top-k, in vectors of FW
 * bytes. Included by kernel_t.h (T, IT, SFX, QB, RB, CAT defined) once per width: 64 for the
 * AVX-512 build (and bf16's), 32 for AVX2's. GCC splits wide vector arithmetic into the target's
 * registers but builds a wide comparison lane by lane on the stack, and reading that back as a
 * vector stalls on store forwarding: the AVX2 build spent a fifth of its time there at 100
 * dimensions with 64-byte comparisons. Define FW before including; it is undefined at the end. */

#define FL ((size_t)(FW / sizeof(T)))
#define FVEC CAT(CAT(fvec, SFX), FW)
#define FIVEC CAT(CAT(fivec, SFX), FW)
typedef T FVEC __attribute__((vector_size(FW)));
typedef IT FIVEC __attribute__((vector_size(FW)));

/* key_of for FL queries against database row j at once, lane for lane the same value; in place
 * and by pointer (a vector passed by value would change the ABI between the compilations). */
static inline __attribute__((always_inline)) void CAT(CAT(key_vec, SFX), FW)(const bg__knn_ctx *c,
                                                                             FVEC *v, size_t j) {
  const T *norm = c->db_norm;
  switch (c->d->metric) {
  case BG_KNN_COSINE:
    *v = norm[j] > 0 ? *v / norm[j] : (FVEC){0};
    break;
  case BG_KNN_L2:
    *v = 2 * *v - norm[j];
    break;
  default:
    break;
  }
}

/* Whether any lane of a comparison's result is set: its 16-byte parts or'ed together. */
static inline __attribute__((always_inline)) int CAT(CAT(any_lane, SFX), FW)(const FIVEC *w) {
  typedef IT part __attribute__((vector_size(16)));
  part p[FW / 16], acc = {0};
  uint64_t u[2];
  memcpy(p, w, sizeof p);
  for (size_t i = 0; i < FW / 16; i++)
    acc |= p[i];
  memcpy(u, &acc, sizeof u);
  return (u[0] | u[1]) != 0;
}

/* Most scores cannot enter: the best key of the block's rows, lane by lane, is compared with the
 * queries' current k-th best (thr) first, and only when some lane wins are the rows taken one by
 * one, and of them only the winning lanes go through the scalar insertion. Rows are taken in
 * increasing index order, so ties still go to the lowest index. A NaN key never wins (key > thr
 * is false) and never becomes the lanes' best (key > best is false), so skipping on the best
 * skips no winner. */
static inline __attribute__((always_inline)) void
CAT(CAT(fold_block, SFX), FW)(const bg__knn_ctx *c, const T *out, size_t i0, size_t nq, size_t j0,
                              size_t nr, T *thr) {
  const bg_knn_desc_t *d = c->d;
  T *keys = c->keys;
  /* Vectors wholly past nq hold only padding, which the register block need not compute. */
  for (size_t h = 0; h < nq; h += FL) {
    FVEC key[RB], best = (FVEC){0} - (T)INFINITY, t;
    for (size_t r = 0; r < nr; r++) {
      memcpy(&key[r], out + r * QB + h, sizeof key[r]);
      CAT(CAT(key_vec, SFX), FW)(c, &key[r], j0 + r);
      FIVEC more = key[r] > best; /* a vector select: C has no ?: on vectors */
      best = (FVEC)(((FIVEC)key[r] & more) | ((FIVEC)best & ~more));
    }
    memcpy(&t, thr + h, sizeof t);
    FIVEC win = best > t;
    if (!CAT(CAT(any_lane, SFX), FW)(&win))
      continue;
    for (size_t r = 0; r < nr; r++) {
      memcpy(&t, thr + h, sizeof t);
      win = key[r] > t;
      if (!CAT(CAT(any_lane, SFX), FW)(&win))
        continue;
      for (size_t lane = 0; lane < FL; lane++) {
        size_t l = h + lane;
        if (l >= nq || !win[lane])
          continue;
        T *kr = keys + (i0 + l) * d->k;
        CAT(fold, SFX)(kr, d->idx + (i0 + l) * d->k, d->k, key[r][lane], c->x_base + j0 + r);
        thr[l] = kr[d->k - 1];
      }
    }
  }
}

#undef FIVEC
#undef FVEC
#undef FL
#undef FW
