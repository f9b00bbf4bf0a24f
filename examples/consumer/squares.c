/* SPDX-License-Identifier: MIT */
/* The smallest useful brigade program: square every index below N in parallel, in order,
 * then sum the squares. Usage: squares N */
#include <brigade.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int square(void *out, const void *in, size_t i, void *ctx) {
  (void)in, (void)ctx;
  *(uint64_t *)out = (uint64_t)i * i;
  return 0;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
  uint64_t *out = malloc((n ? n : 1) * sizeof *out);
  bg_pool_t *pool;
  int rc = out ? bg_pool_create(NULL, &pool) : BG_ENOMEM;
  if (rc != 0) {
    fprintf(stderr, "squares: %s\n", bg_strerror(rc));
    return 1;
  }
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = square;
  d.n = n;
  d.out = out;
  d.out_size = sizeof *out;
  bg_map_report_t r;
  rc = bg_map(pool, &d, &r);
  if (rc != 0) {
    fprintf(stderr, "squares: %s\n", bg_strerror(rc));
    return 1;
  }
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += out[i];
  printf("sum of squares below %zu: %llu\n", n, (unsigned long long)sum);
  printf("(%s backend, %u workers, %s schedule%s, %.3f ms)\n", bg_pool_backend(pool),
         bg_pool_workers(pool), bg_schedule_name(r.schedule), r.ran_inline ? ", inline" : "",
         (double)r.wall_ns / 1e6);
  bg_pool_destroy(pool);
  free(out);
  return 0;
}
