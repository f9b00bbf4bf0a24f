/* SPDX-License-Identifier: MIT */
/* What the parts of brigade._native share: the module's exception and the conversions of
 * libbrigade's errors into it. The GIL is released around every call into libbrigade that can
 * take time (pool start-up, searches, maps), so other Python threads run meanwhile. */
#ifndef BRIGADE_PY_NATIVE_H
#define BRIGADE_PY_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "brigade.h"

/* brigade._native.Error(code, message, details): the Python layer turns it into MemoryError,
 * ValueError or brigade.BrigadeError. */
extern PyObject *bgpy_error;

/* Raises Error for the BG_E* @rc with @msg (a sentence, or NULL for bg_strerror's) and
 * @details (a dict, or NULL). Returns NULL, for `return bgpy_raise(...)`. */
PyObject *bgpy_raise(int rc, const char *msg, PyObject *details);

/* Creates a pool of @backend with @workers (0: the default), GIL released. On failure raises
 * and returns NULL. */
bg_pool_t *bgpy_pool(const char *backend, unsigned workers);

/* A pool of threads with @workers (0: the default), kept for later calls (see module.c);
 * NULL with an exception raised on failure. bgpy_kept says whether a pool is one of those,
 * which the caller must not destroy. */
bg_pool_t *bgpy_threads(unsigned workers);
int bgpy_kept(const bg_pool_t *p);

/* A contiguous buffer of @want bytes from @obj (writable when @writable), or an exception
 * naming @what. Returns 0 or -1. */
int bgpy_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t want, int writable, const char *what);

/* What bg_map's @rc and report @r become: a dict of the counts (brigade.MapReport's), or the
 * exception of an error that stopped the map. */
PyObject *bgpy_map_result(int rc, const bg_map_report_t *r, const char *backend);

PyObject *bgpy_knn(PyObject *self, PyObject *args, PyObject *kw);
PyObject *bgpy_map(PyObject *self, PyObject *args, PyObject *kw);
PyObject *bgpy_map_py(PyObject *self, PyObject *args, PyObject *kw);
PyObject *bgpy_python_threads(PyObject *self, PyObject *unused);

#endif
