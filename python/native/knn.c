/* SPDX-License-Identifier: MIT */
/* brigade._native.knn: bg_knn (or bg_knn_plan alone) on the caller's arrays, borrowed through
 * the buffer protocol: the database and queries are read where NumPy keeps them, and the
 * indices and scores written into arrays the Python layer allocated. */
#include "native.h"

#include <string.h>

static PyObject *plan_dict(const bg_knn_plan_t *p) {
  return Py_BuildValue("{s:s,s:n,s:n,s:I,s:K,s:K,s:K,s:K,s:s,s:s,s:K,s:K,s:K,s:I}", "backend",
                       p->backend ? p->backend : "", "tile_q", (Py_ssize_t)p->tile_q, "tile_db",
                       (Py_ssize_t)p->tile_db, "workers", p->workers, "bytes",
                       (unsigned long long)p->bytes, "min_bytes", (unsigned long long)p->min_bytes,
                       "budget", (unsigned long long)p->budget, "blas_bytes",
                       (unsigned long long)p->blas_bytes, "why", p->why ? p->why : "", "precision",
                       p->precision ? p->precision : "exact", "pairs", (unsigned long long)p->pairs,
                       "rescored", (unsigned long long)p->rescored, "fallback_pairs",
                       (unsigned long long)p->fallback_pairs, "db_slices", p->db_slices);
}

static int metric_of(const char *name, bg_knn_metric_t *m) {
  for (int i = 0; i < BG_KNN_METRIC_COUNT_; i++)
    if (strcmp(name, bg_knn_metric_name((bg_knn_metric_t)i)) == 0) {
      *m = (bg_knn_metric_t)i;
      return 0;
    }
  PyErr_Format(PyExc_ValueError, "unknown metric '%s' (ip, cosine or l2)", name);
  return -1;
}

PyObject *bgpy_knn(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *names[] = {"db",     "nb",        "queries", "nq",     "dim",     "f64",
                          "k",      "metric",    "backend", "budget", "workers", "idx",
                          "scores", "plan_only", "bf16",    NULL};
  PyObject *db_obj, *q_obj, *idx_obj, *sc_obj;
  Py_ssize_t nb, nq, dim, k;
  int f64, plan_only, bf16;
  const char *metric, *backend;
  unsigned long long budget;
  unsigned workers;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OnOnnpnssKIOOpp", names, &db_obj, &nb, &q_obj, &nq,
                                   &dim, &f64, &k, &metric, &backend, &budget, &workers, &idx_obj,
                                   &sc_obj, &plan_only, &bf16))
    return NULL;
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  if (metric_of(metric, &d.metric) != 0)
    return NULL;
  d.dtype = f64 ? BG_F64 : BG_F32;
  d.nb_txt = (size_t)nb, d.nb_new = (size_t)nq, d.dim = (size_t)dim, d.k = (size_t)k;
  d.backend = backend, d.mem_budget = budget;
  d.precision = bf16 ? BG_KNN_BF16 : BG_KNN_EXACT;
  Py_ssize_t es = f64 ? 8 : 4;
  Py_buffer bufs[4];
  int held = 0;
  PyObject *ret = NULL;
  /* A plan reads and writes no data: it is made from the shapes alone, for searches too large
   * to hold, and these stand for the arrays it never touches. */
  static const double nothing;
  static int64_t no_idx;
  if (plan_only) {
    d.db = d.queries = &nothing;
    d.idx = &no_idx;
  } else {
    if (bgpy_buffer(db_obj, &bufs[held], nb * dim * es, 0, "db") != 0)
      goto out;
    d.db = bufs[held++].buf;
    if (bgpy_buffer(q_obj, &bufs[held], nq * dim * es, 0, "queries") != 0)
      goto out;
    d.queries = bufs[held++].buf;
    if (bgpy_buffer(idx_obj, &bufs[held], nq * k * 8, 1, "idx") != 0)
      goto out;
    d.idx = bufs[held++].buf;
    if (bgpy_buffer(sc_obj, &bufs[held], nq * k * es, 1, "scores") != 0)
      goto out;
    d.scores = bufs[held++].buf;
  }
  bg_pool_t *pool = bgpy_threads(workers);
  if (!pool)
    goto out;
  bg_knn_plan_t plan;
  memset(&plan, 0, sizeof plan);
  int keep = bgpy_kept(pool);
  PyThreadState *ts = PyEval_SaveThread();
  int rc = plan_only ? bg_knn_plan(pool, &d, &plan) : bg_knn(pool, &d, &plan);
  if (!keep)
    bg_pool_destroy(pool);
  PyEval_RestoreThread(ts);
  if (rc == 0)
    ret = plan_dict(&plan);
  else
    bgpy_raise(rc, plan.why, rc == BG_ENOMEM || rc == BG_ERANGE ? plan_dict(&plan) : NULL);
out:
  while (held > 0)
    PyBuffer_Release(&bufs[--held]);
  return ret;
}
