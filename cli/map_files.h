/* SPDX-License-Identifier: MIT */
/* The files of `brigade map`: the items (a .npy whose rows are the items, or raw fixed-size
 * records), the results (.npy of a dtype, or raw bytes), the per-item status file, the names of
 * a shard's files, and the merge of shards' journals into one result. */
#ifndef BRIGADE_CLI_MAP_FILES_H
#define BRIGADE_CLI_MAP_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "brigade.h"

/* The items read from a file, mapped read-only. */
typedef struct map_items {
  bg_npy_t *npy;     /* a .npy, or NULL */
  const void *raw;   /* a raw file's mapping, or NULL */
  size_t raw_len;    /* its length */
  const void *data;  /* the first item */
  size_t n, in_size; /* items and bytes per item */
} map_items;

/* Reads @path: a .npy (by its magic) whose rows are the items, or raw records of @in_size bytes
 * (0: the file must be a .npy). Returns 0, or -1 with the problem and its fix in err. */
int map_items_open(map_items *it, const char *path, size_t in_size, char *err, size_t cap);
void map_items_close(map_items *it);

/* How results are written: a .npy of dtype with cols values per item, or raw bytes. */
typedef struct map_out_format {
  int npy;              /* 1: .npy (the file name ends in .npy) */
  bg_npy_dtype_t dtype; /* when npy */
  size_t cols;          /* values per item when npy */
  size_t size;          /* bytes per result */
} map_out_format;

/* Writes n results of f->size bytes to @path, whole or not at all (temporary + rename).
 * Returns 0, or -1 with the reason in err. */
int map_out_write(const char *path, const map_out_format *f, const void *data, size_t n, char *err,
                  size_t cap);

/* Writes "index,state,code,attempts" for every item, items [0, n) numbered from @base, whole or
 * not at all. Returns 0 or -1 with the reason in err. */
int map_status_write(const char *path, const bg_item_status_t *st, size_t n, uint64_t base,
                     char *err, size_t cap);

/* The name of shard k of n's file: "res.npy" -> "res.shard03-of-16.npy" (the number padded
 * to the width of n - 1; the extension kept when the last dot follows the last slash). Returns
 * 0, or -1 when it does not fit in cap. */
int map_shard_name(const char *path, uint64_t k, uint64_t n, char *buf, size_t cap);

/* What the merge of shards found. */
typedef struct map_merged {
  void *out;                /* total * out_size bytes (malloc'd): the results of the ok items */
  bg_item_status_t *status; /* total entries (malloc'd); pending where a shard never ran it */
  size_t total, out_size;
  char task[BG_JOURNAL_TASK_MAX + 1];
  char incomplete[1024]; /* the shards holding items that never ran, or "" */
} map_merged;

/* Joins the shards' journals into one result: each journal is read as it is (any order), the
 * shards must be of one job (task, total, sizes, digest) and cover its items exactly once.
 * Returns 0, or -1 with the gap, the overlap or the mismatch named in err. */
int map_merge(char *const *journals, int count, map_merged *m, char *err, size_t cap);
void map_merged_free(map_merged *m);

#endif
