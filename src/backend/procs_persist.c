/* SPDX-License-Identifier: MIT */
/* The persistent procs mode's shared memory (see internal/procs_persist.h): a small control
 * mapping made before the first fork, and a data arena each map is staged in, which workers
 * forked earlier receive as a descriptor. Both sides of the arena live here; procs.c
 * supervises the workers of both modes. */
#define _GNU_SOURCE
#include "internal/procs_persist.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The header at the start of the data arena: one map as its workers see it. Offsets are from
 * the arena's start; a size of 0 means the map has none of that part. The function pointer is
 * valid in the workers: they are forks of the caller, with its code at the same addresses. */
typedef struct pmap {
  bg_task_fn fn;
  uint64_t n;
  uint64_t ctx_off, ctx_size;
  uint64_t in_off, in_size;
  uint64_t out_off, out_size;
  uint64_t status_off; /* 0: no statuses */
  uint32_t retries, timeout_ms, timeout_pct, halt;
} pmap;

static size_t align_up(size_t x) {
  return (x + BG_CACHELINE - 1) & ~(size_t)(BG_CACHELINE - 1);
}

int bg__persist_init(bg__persist *p, unsigned workers) {
  size_t off_stats = align_up(workers * sizeof(bg__pslot));
  size_t len = off_stats + align_up(workers * sizeof(bg__wstat));
  void *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED)
    return BG_ENOMEM;
  *p = (bg__persist){
      .slots = a, .stats = (bg__wstat *)(void *)((char *)a + off_stats), .ctl_len = len, .fd = -1};
  return BG_OK;
}

void bg__persist_release(bg__persist *p) {
  if (p->fd < 0)
    return;
  munmap(p->base, p->len);
  close(p->fd);
  p->fd = -1;
  p->base = NULL;
  p->len = 0;
}

void bg__persist_fini(bg__persist *p) {
  bg__persist_release(p);
  if (p->slots)
    munmap(p->slots, p->ctl_len);
  p->slots = NULL;
  p->stats = NULL;
}

/* A new, larger arena in place of the old. It at least doubles, so that maps of growing size
 * cost few new arenas; the workers get it before their next chunk. */
static int grow(bg__persist *p, size_t need) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t len = need > SIZE_MAX - page ? need : (need + page - 1) / page * page;
  if (p->len && len / 2 < p->len && p->len <= SIZE_MAX / 2)
    len = 2 * p->len;
  if (bg__arena_fits(len) != 0)
    return BG_ENOMEM;
  int fd = memfd_create("brigade-arena", MFD_CLOEXEC);
  if (fd < 0)
    return BG_ESYS;
  void *a = MAP_FAILED;
  if (ftruncate(fd, (off_t)len) == 0)
    a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (a == MAP_FAILED) {
    close(fd);
    return BG_ENOMEM;
  }
  bg__persist_release(p);
  p->fd = fd;
  p->base = a;
  p->len = len;
  p->gen++;
  return BG_OK;
}

/* Adds a part of @bytes at *len, cache-line aligned. Return: its offset, or 0 on overflow
 * (no part starts at 0: the header does). */
static size_t place(size_t *len, size_t bytes) {
  size_t off = *len;
  if (bytes > SIZE_MAX - off - BG_CACHELINE)
    return 0;
  *len = align_up(off + bytes);
  return off;
}

int bg__persist_stage(bg__persist *p, const bg_map_desc_t *d, int copy_in, char **out,
                      bg_item_status_t **status) {
  size_t in_bytes = d->in ? d->n * d->in_size : 0, out_bytes = d->out ? d->n * d->out_size : 0;
  size_t st_bytes = d->status ? d->n * sizeof *d->status : 0;
  size_t len = align_up(sizeof(pmap));
  size_t off_ctx = place(&len, d->ctx_size), off_in = place(&len, in_bytes);
  size_t off_out = place(&len, out_bytes), off_status = place(&len, st_bytes);
  if (!off_ctx || !off_in || !off_out || !off_status)
    return BG_ENOMEM;
  if (len > p->len) {
    int rc = grow(p, len);
    if (rc != 0)
      return rc;
  }
  char *a = p->base;
  *(pmap *)(void *)a = (pmap){.fn = d->fn,
                              .n = d->n,
                              .ctx_off = off_ctx,
                              .ctx_size = d->ctx_size,
                              .in_off = off_in,
                              .in_size = d->in ? d->in_size : 0,
                              .out_off = off_out,
                              .out_size = d->out ? d->out_size : 0,
                              .status_off = d->status ? off_status : 0,
                              .retries = d->retries,
                              .timeout_ms = d->timeout_ms,
                              .timeout_pct = d->timeout_pct,
                              .halt = (d->flags & BG_MAP_HALT) && d->halt_after <= 1};
  if (d->ctx_size)
    memcpy(a + off_ctx, d->ctx, d->ctx_size);
  if (copy_in && in_bytes)
    memcpy(a + off_in, d->in, in_bytes);
  if (copy_in && out_bytes)
    memcpy(a + off_out, d->out, out_bytes);
  *out = d->out ? a + off_out : NULL;
  *status = d->status ? (bg_item_status_t *)(void *)(a + off_status) : NULL;
  return BG_OK;
}

int bg__persist_sync(const bg__persist *p, int fd, unsigned *gen) {
  if (*gen == p->gen)
    return 0;
  bg__pcmd m = {.op = BG__PCMD_ARENA, .b = p->len};
  if (bg__sock_send_fd(fd, &m, sizeof m, p->fd) != 0)
    return -1;
  *gen = p->gen;
  return 0;
}

int bg__persist_remap(bg__pview *v, const bg__pcmd *m, int fd) {
  if (fd < 0)
    return -1;
  void *a = mmap(NULL, (size_t)m->b, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (a == MAP_FAILED)
    return -1;
  if (v->base)
    munmap(v->base, v->len);
  v->base = a;
  v->len = (size_t)m->b;
  return 0;
}

void bg__persist_apply(bg__pview *v, bg__pchild *c) {
  const pmap *h = (const pmap *)(void *)v->base;
  char *a = v->base;
  v->d = (bg_map_desc_t){.version = BG_MAP_DESC_VERSION,
                         .fn = h->fn,
                         .ctx = h->ctx_size ? a + h->ctx_off : NULL,
                         .ctx_size = (size_t)h->ctx_size,
                         .n = (size_t)h->n,
                         .in = h->in_size ? a + h->in_off : NULL,
                         .in_size = (size_t)h->in_size,
                         .out = h->out_size ? a + h->out_off : NULL,
                         .out_size = (size_t)h->out_size,
                         .retries = h->retries,
                         .timeout_ms = h->timeout_ms,
                         .timeout_pct = h->timeout_pct};
  c->d = &v->d;
  c->out = v->d.out;
  c->status = h->status_off ? (bg_item_status_t *)(void *)(a + h->status_off) : NULL;
  c->halt = (int)h->halt;
}
