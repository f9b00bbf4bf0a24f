/* SPDX-License-Identifier: MIT */
/* brigade._native.map: bg_map of a native function (its address, from ctypes, cffi or numba)
 * over the caller's arrays, borrowed through the buffer protocol; every item's outcome goes
 * into a status array the Python layer allocated (bg_item_status_t, 12 bytes per item). */
#include "native.h"

#include <stdint.h>
#include <string.h>

static PyObject *report_dict(const bg_map_report_t *r, const char *backend) {
  return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:i,s:i,s:d,s:s,s:i}", "n_ok",
                       (Py_ssize_t)r->n_ok, "n_failed", (Py_ssize_t)r->n_failed, "n_skipped",
                       (Py_ssize_t)r->n_skipped, "n_crashed", (Py_ssize_t)r->n_crashed, "n_exited",
                       (Py_ssize_t)r->n_exited, "n_timeout", (Py_ssize_t)r->n_timeout, "n_retries",
                       (Py_ssize_t)r->n_retries, "first_failed",
                       r->first_failed == SIZE_MAX ? (Py_ssize_t)-1 : (Py_ssize_t)r->first_failed,
                       "first_code", r->first_code, "first_state", r->first_state, "wall_s",
                       (double)r->wall_ns / 1e9, "backend", backend, "interrupted", r->interrupted);
}

PyObject *bgpy_map_result(int rc, const bg_map_report_t *r, const char *backend) {
  /* Failed, crashed or interrupted items are the report's to tell, not an exception. */
  if (rc == 0 || rc == BG_ETASK || rc == BG_ECANCELED)
    return report_dict(r, backend);
  return bgpy_raise(rc, NULL, NULL);
}

PyObject *bgpy_map(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *names[] = {"fn",       "n",        "items",   "in_size", "out",
                          "out_size", "status",   "backend", "workers", "timeout_ms",
                          "retries",  "progress", "ctx",     NULL};
  unsigned long long fn;
  Py_ssize_t n, in_size, out_size;
  PyObject *items, *out, *status, *ctx;
  const char *backend;
  unsigned workers, timeout_ms, retries;
  int progress;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "KnOnOnOsIIIpO", names, &fn, &n, &items, &in_size,
                                   &out, &out_size, &status, &backend, &workers, &timeout_ms,
                                   &retries, &progress, &ctx))
    return NULL;
  if (!fn) {
    PyErr_SetString(PyExc_ValueError, "the function's address is NULL");
    return NULL;
  }
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  /* The address came from ctypes, cffi or numba as an integer: a data-to-function pointer
   * conversion is what those libraries do themselves. */
  uintptr_t addr = (uintptr_t)fn;
  memcpy(&d.fn, &addr, sizeof d.fn);
  d.n = (size_t)n;
  d.timeout_ms = timeout_ms;
  d.retries = retries;
  Py_buffer bufs[4];
  int held = 0;
  PyObject *ret = NULL;
  bg_progress_bar_t *bar = NULL;
  if (items != Py_None) {
    if (bgpy_buffer(items, &bufs[held], n * in_size, 0, "items") != 0)
      goto out;
    d.in = bufs[held++].buf, d.in_size = (size_t)in_size;
  }
  if (out != Py_None) {
    if (bgpy_buffer(out, &bufs[held], n * out_size, 1, "out") != 0)
      goto out;
    d.out = bufs[held++].buf, d.out_size = (size_t)out_size;
  }
  if (bgpy_buffer(status, &bufs[held], n * (Py_ssize_t)sizeof(bg_item_status_t), 1, "status") != 0)
    goto out;
  d.status = bufs[held++].buf;
  if (ctx != Py_None) {
    /* Copied to every worker as bytes (procs-persistent needs that; the others pass it on). */
    if (PyObject_GetBuffer(ctx, &bufs[held], PyBUF_C_CONTIGUOUS) != 0)
      goto out;
    d.ctx = bufs[held].buf, d.ctx_size = (size_t)bufs[held].len;
    held++;
  }
  bg_pool_t *pool =
      strcmp(backend, "threads") == 0 ? bgpy_threads(workers) : bgpy_pool(backend, workers);
  if (!pool)
    goto out;
  if (progress && bg_progress_bar_create("map", -1, 0, &bar) == 0 && bg_progress_bar_active(bar))
    d.progress = bg_progress_bar_update, d.progress_ud = bar;
  bg_map_report_t r;
  memset(&r, 0, sizeof r);
  int keep = bgpy_kept(pool);
  PyThreadState *ts = PyEval_SaveThread();
  int rc = bg_map(pool, &d, &r);
  if (!keep)
    bg_pool_destroy(pool);
  bg_progress_bar_destroy(bar);
  PyEval_RestoreThread(ts);
  ret = bgpy_map_result(rc, &r, backend);
out:
  while (held > 0)
    PyBuffer_Release(&bufs[--held]);
  return ret;
}
