/* SPDX-License-Identifier: MIT */
/* Shared arrays: memory that forked workers read and write in place, and that a file can keep
 * for later runs (mmap instead of load-and-copy; joblib's memmapping of large arrays). A map on
 * a procs pool whose `out` lies in a shared array has its workers write the results there
 * directly: no shared arena, no copy back. */
#ifndef BRIGADE_SHARED_H
#define BRIGADE_SHARED_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bg_shared bg_shared_t;

/**
 * bg_shared_create - map @bytes of memory shared with every process forked afterwards.
 * @path: NULL for anonymous shared memory (gone with the last process that maps it), or a
 *        file: an existing file of that size (or any size when @bytes is 0) is mapped as it
 *        is, with its contents, so a later run reuses what an earlier one wrote; otherwise
 *        the file is created or resized to @bytes (new bytes read as zero).
 * @out: OUT: the array, written only on success.
 *
 * Memory (anonymous) or disk space (file) is checked first: a size that cannot fit is refused
 * instead of failing later with SIGBUS or the OOM killer.
 *
 * A mapped file must not be shrunk (truncate, ftruncate, a program that rewrites it) until the
 * array is destroyed: the kernel then raises SIGBUS in every process that touches a page past
 * the new end, workers and caller alike. A procs map notices the shrink, stops, and returns
 * BG_ERANGE (see bg_map); its results in the array are lost, and the caller must not read them.
 * The array keeps the file open until bg_shared_destroy() to be able to see its size.
 * Return: 0; BG_EINVAL (NULL @out, @bytes 0 without a path or with an empty file); BG_ENOMEM (not
 * enough memory available); BG_ERANGE (not enough disk space); BG_ENOENT (the file's folder does
 * not exist, or @bytes is 0 and the file does not exist); BG_ESYS (open, resize or mmap failed:
 * errno says why).
 */
int bg_shared_create(size_t bytes, const char *path, bg_shared_t **out);

/** bg_shared_data - the array's first byte, aligned to a page. */
void *bg_shared_data(const bg_shared_t *s);

/** bg_shared_size - the array's size in bytes. */
size_t bg_shared_size(const bg_shared_t *s);

/** bg_shared_sync - write a file-backed array's changes to its file now (msync); 0 for an
 * anonymous one. Return: 0 or BG_ESYS. */
int bg_shared_sync(bg_shared_t *s);

/** bg_shared_destroy - unmap the array (a file keeps its contents); NULL is a no-op. */
void bg_shared_destroy(bg_shared_t *s);

#ifdef __cplusplus
}
#endif
#endif
