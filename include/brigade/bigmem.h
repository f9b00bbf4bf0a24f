/* SPDX-License-Identifier: MIT */
/* Big buffers on huge pages. Filling fresh memory costs a page fault per 4 KiB page, and the
 * kernel zeroes each page it hands out: for a task that allocates and fills many MiB per item,
 * those faults are most of its time, and threads of one process contend for its address space
 * while they take them. Backed by 2 MiB pages, the same buffer takes one fault per 2 MiB
 * (brigade info --limits measures both costs on the machine at hand). */
#ifndef BRIGADE_BIGMEM_H
#define BRIGADE_BIGMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * bg_big_alloc - @bytes of zeroed memory, aligned to 2 MiB and mapped on its own, with the
 * kernel asked for transparent huge pages (MADV_HUGEPAGE). Where the kernel gives none (huge
 * pages disabled, or none free), the buffer is plain 4 KiB pages: it works either way, only
 * slower. Memory is committed as it is first touched, as with malloc.
 * @out: OUT: the buffer, written only on success; free it with bg_big_free() and the same size.
 *
 * For buffers of a few MiB and more: smaller ones are better served by malloc. This call does
 * not check the memory available (bg_mem_available() reads /proc: once per decision, not per
 * item); the caller admits its work as a whole.
 *
 * Return: 0; BG_EINVAL (@bytes 0, NULL @out); BG_ERANGE (@bytes near SIZE_MAX); BG_ENOMEM (the
 * mapping was refused: RLIMIT_AS, overcommit). Thread-safe.
 */
int bg_big_alloc(size_t bytes, void **out);

/** bg_big_free - unmap a buffer of bg_big_alloc(), given the same @bytes; NULL is a no-op. */
void bg_big_free(void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
