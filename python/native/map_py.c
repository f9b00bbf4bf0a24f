/* SPDX-License-Identifier: MIT */
/* brigade._native.map_py: a Python callable run in forked procs workers.
 *
 * Why this is sound (docs/PYTHON.md): the procs backends fork their workers in the thread that
 * called bg_map, during the map, so every fork happens in this function while the GIL is
 * released by this thread and, the Python layer having checked that no other Python thread
 * exists, held by no one; the import lock is held by this thread (PyOS_BeforeFork) for the
 * whole map. Each worker, before its first item, takes the GIL with the thread state this
 * thread saved (PyEval_RestoreThread) and lets the interpreter repair its state after the fork
 * (PyOS_AfterFork_Child, as os.fork() does); it then keeps the GIL: it is the only thread of its
 * process. The item runs the Python layer's runner(i), which returns the result's bytes (or an
 * int code after printing a traceback, or a pair of a code and the bytes of the exception),
 * and those bytes travel back in the map's result slot like any native function's. */
#include "native.h"

#include <stdint.h>
#include <string.h>

/* The items' context, copied to the workers as bytes (procs-persistent needs ctx_size). */
typedef struct py_ctx {
  PyObject *runner;
  size_t size; /* bytes of a result slot */
  int framed;  /* the slot starts with the result's length (pickled results) */
} py_ctx;

static int child_init(unsigned w, void *ctx, void **state) {
  (void)w, (void)state;
  PyEval_RestoreThread(*(PyThreadState **)ctx);
  PyOS_AfterFork_Child();
  return 0;
}

static int py_item(void *out, const void *in, size_t i, void *ctx) {
  (void)in;
  const py_ctx *c = ctx;
  PyObject *r = PyObject_CallFunction(c->runner, "n", (Py_ssize_t)i);
  if (!r) {
    PyErr_Print();
    return 3;
  }
  if (PyLong_Check(r)) {
    long code = PyLong_AsLong(r);
    Py_DECREF(r);
    return code ? (int)code : 3;
  }
  /* Pickled results come as (code, bytes): the bytes fill the slot, the code is the item's. */
  int rc = 0;
  PyObject *bytes = r;
  if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
    rc = (int)PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
    bytes = PyTuple_GET_ITEM(r, 1);
  }
  char *p;
  Py_ssize_t len;
  if (PyBytes_AsStringAndSize(bytes, &p, &len) != 0) {
    PyErr_Print();
    rc = 3;
  } else if ((size_t)len + (c->framed ? 4 : 0) > c->size) {
    rc = 4; /* the runner keeps within the slot: never here */
  } else if (c->framed) {
    uint32_t l = (uint32_t)len;
    memcpy(out, &l, sizeof l);
    memcpy((char *)out + sizeof l, p, (size_t)len);
  } else {
    memcpy(out, p, (size_t)len);
  }
  Py_DECREF(r);
  return rc;
}

PyObject *bgpy_python_threads(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  /* Thread states, not frames: a thread just started by _thread has its state before it runs
   * any Python, and would take the GIL during the map. */
  long k = 0;
  for (PyThreadState *t = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); t;
       t = PyThreadState_Next(t))
    k++;
  return PyLong_FromLong(k);
}

PyObject *bgpy_map_py(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *names[] = {"runner",  "n",       "out",        "size",    "framed",   "status",
                          "backend", "workers", "timeout_ms", "retries", "progress", NULL};
  PyObject *runner, *out, *status;
  Py_ssize_t n, size;
  int framed, progress;
  const char *backend;
  unsigned workers, timeout_ms, retries;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OnOnpOsIIIp", names, &runner, &n, &out, &size,
                                   &framed, &status, &backend, &workers, &timeout_ms, &retries,
                                   &progress))
    return NULL;
  if (strncmp(backend, "procs", 5) != 0) {
    PyErr_Format(PyExc_ValueError, "a Python function runs on the procs backends, not '%s'",
                 backend);
    return NULL;
  }
  Py_buffer bufs[2];
  int held = 0;
  PyObject *ret = NULL;
  if (bgpy_buffer(out, &bufs[held], n * size, 1, "out") != 0)
    goto out;
  void *results = bufs[held++].buf;
  if (bgpy_buffer(status, &bufs[held], n * (Py_ssize_t)sizeof(bg_item_status_t), 1, "status") != 0)
    goto out;
  py_ctx c = {.runner = runner, .size = (size_t)size, .framed = framed};
  bg_map_desc_t d;
  bg_map_desc_init(&d);
  d.fn = py_item, d.ctx = &c, d.ctx_size = sizeof c;
  d.n = (size_t)n, d.out = results, d.out_size = (size_t)size;
  d.status = bufs[held++].buf;
  d.timeout_ms = timeout_ms, d.retries = retries;
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = backend, o.workers = workers;
  PyThreadState *ts = NULL;
  o.worker_init = child_init, o.worker_ctx = &ts;
  bg_progress_bar_t *bar = NULL;
  if (progress && bg_progress_bar_create("map", -1, 0, &bar) == 0 && bg_progress_bar_active(bar))
    d.progress = bg_progress_bar_update, d.progress_ud = bar;
  bg_pool_t *pool = NULL;
  bg_map_report_t r;
  memset(&r, 0, sizeof r);
  PyOS_BeforeFork();
  ts = PyEval_SaveThread();
  int rc = bg_pool_create(&o, &pool);
  if (rc == 0)
    rc = bg_map(pool, &d, &r);
  bg_pool_destroy(pool);
  bg_progress_bar_destroy(bar);
  PyEval_RestoreThread(ts);
  PyOS_AfterFork_Parent();
  ret = bgpy_map_result(rc, &r, backend);
out:
  while (held > 0)
    PyBuffer_Release(&bufs[--held]);
  return ret;
}
