/* SPDX-License-Identifier: MIT */
/* The module brigade._native: its exception, the shared helpers and the table of functions. */
#include "native.h"

#include <unistd.h>

PyObject *bgpy_error;

PyObject *bgpy_raise(int rc, const char *msg, PyObject *details) {
  PyObject *args =
      Py_BuildValue("(isO)", rc, msg ? msg : bg_strerror(rc), details ? details : Py_None);
  if (args) {
    PyErr_SetObject(bgpy_error, args);
    Py_DECREF(args);
  }
  Py_XDECREF(details);
  return NULL;
}

bg_pool_t *bgpy_pool(const char *backend, unsigned workers) {
  bg_pool_opts_t o;
  bg_pool_opts_init(&o);
  o.backend = backend;
  o.workers = workers;
  bg_pool_t *p = NULL;
  PyThreadState *ts = PyEval_SaveThread();
  int rc = bg_pool_create(&o, &p);
  PyEval_RestoreThread(ts);
  if (rc != 0) {
    char msg[256];
    snprintf(msg, sizeof msg,
             rc == BG_ENOENT ? "unknown backend '%s' (threads, procs, procs-copy, "
                               "procs-persistent, openmp or seq)"
                             : "cannot start the '%s' workers: %s",
             backend, bg_strerror(rc));
    bgpy_raise(rc, msg, NULL);
    return NULL;
  }
  return p;
}

/* Pools of threads kept for the next call, one per worker count: starting a pool reads the
 * machine's topology (hwloc), which costs milliseconds, more than a small search itself (9 ms
 * for a search NumPy answers in 0.3). Created and looked up under the GIL. A pool inherited
 * through a fork (a worker of a Python-function map) has no threads there: the pid tells it. */
#define KEPT 8
static struct {
  pid_t pid;
  unsigned workers;
  bg_pool_t *pool;
} kept[KEPT];

bg_pool_t *bgpy_threads(unsigned workers) {
  pid_t me = getpid();
  for (int i = 0; i < KEPT; i++)
    if (kept[i].pool && kept[i].pid == me && kept[i].workers == workers)
      return kept[i].pool;
  bg_pool_t *p = bgpy_pool("threads", workers);
  for (int i = 0; p && i < KEPT; i++)
    if (!kept[i].pool || kept[i].pid != me) {
      /* A slot of another process's pool is reused without destroying it: its threads are
       * not here to join. */
      kept[i].pid = me, kept[i].workers = workers, kept[i].pool = p;
      return p;
    }
  return p; /* more worker counts than slots: the caller destroys this one */
}

int bgpy_kept(const bg_pool_t *p) {
  for (int i = 0; i < KEPT; i++)
    if (kept[i].pool == p)
      return 1;
  return 0;
}

int bgpy_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t want, int writable, const char *what) {
  int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj, view, flags) != 0)
    return -1;
  if (view->len != want) {
    PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, %zd expected", what, view->len, want);
    PyBuffer_Release(view);
    return -1;
  }
  return 0;
}

static PyMethodDef methods[] = {
    {"knn", (PyCFunction)(void (*)(void))bgpy_knn, METH_VARARGS | METH_KEYWORDS,
     "knn(db, nb, queries, nq, dim, f64, k, metric, backend, mem_budget, workers, idx, scores, "
     "plan_only) -> plan dict"},
    {"map", (PyCFunction)(void (*)(void))bgpy_map, METH_VARARGS | METH_KEYWORDS,
     "map(fn, n, items, in_size, out, out_size, status, backend, workers, timeout_ms, retries, "
     "progress, ctx) -> report dict"},
    {"map_py", (PyCFunction)(void (*)(void))bgpy_map_py, METH_VARARGS | METH_KEYWORDS,
     "map_py(runner, n, out, size, framed, status, backend, workers, timeout_ms, retries, "
     "progress) -> report dict"},
    {"python_threads", bgpy_python_threads, METH_NOARGS,
     "python_threads() -> the thread states of this interpreter"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "brigade._native",
    "libbrigade for Python (private: use brigade)",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__native(void);

PyMODINIT_FUNC PyInit__native(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m)
    return NULL;
  bgpy_error = PyErr_NewException("brigade._native.Error", PyExc_RuntimeError, NULL);
  if (!bgpy_error || PyModule_AddObject(m, "Error", bgpy_error) != 0 ||
      PyModule_AddStringConstant(m, "version", bg_version()) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  Py_INCREF(bgpy_error);
  return m;
}
