/* SPDX-License-Identifier: MIT */
/* brigade knn: the lecture's similarity search. Generates seeded random vectors (NumPy's
 * np.random.rand: uniform in [0, 1)) or reads .npy files, finds the k best database vectors
 * for every query within a memory budget, and prints the time, GFLOP/s, the tile plan and the
 * peak memory; --out writes the indices as .npy for checking against NumPy. */
#include "cli.h"
#include "knn.h"
#include "opts.h"
#include "outfile.h"
#include "stats.h"
#include "stop.h"

#include "brigade.h"
#include "brigade/dist.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cmd_knn_help(FILE *f) {
  fprintf(f,
          "usage: brigade knn --nb-txt N --dim D --nb-new M [options]\n"
          "       brigade knn --db FILE --queries FILE [options]\n\n"
          "For each of M query vectors, finds the K database vectors with the largest inner\n"
          "product (the lecture's question), the largest cosine or the smallest L2 distance,\n"
          "exactly, in memory bounded by a budget however large the sizes.\n\n"
          "  --nb-txt N, --dim D, --nb-new M   sizes of random inputs (K/M/G suffixes)\n"
          "  --db FILE, --queries FILE         .npy float32/float64 C-order (rows, dim) arrays,\n"
          "                                    or raw little-endian rows with --raw --dim D\n"
          "  --k K              neighbours per query (default 1)\n"
          "  --metric M         ip (default), cosine or l2\n"
          "  --backend B        auto (default), naive, blocked, blas or cuda (a GPU)\n"
          "  --dtype T          f32 (default) or f64 (random inputs and --raw files)\n"
          "  --precision P      exact (default) or bf16 (f32 inputs, backend auto or blocked):\n"
          "                     scores from bf16 products (AMX or AVX-512 BF16; exact on CPUs\n"
          "                     without them), checked against a proven error bound and scored\n"
          "                     again in fp32 where it matters: the same answer; faster on some\n"
          "                     CPUs, slower on others (brigade bench --suite knn measures it)\n"
          "  --mem-budget B     bytes brigade may allocate beyond inputs and results, e.g. 512M\n"
          "                     (default: half the memory available)\n"
          "  --workers N        threads (default: one per physical core)\n"
          "  --seed S           seed of the random inputs (default 1)\n"
          "  --out FILE.npy     write the (M, K) int64 indices\n"
          "\nBRIGADE_KNN_ISA=generic, avx2 or avx512 caps the instructions the CPU kernels use\n"
          "(avx512 keeps bf16 off AMX), to compare them; `brigade info` names the ones in use.\n"
          "generic and generic-amx also run bf16 in portable C on any CPU, for tests. Another\n"
          "value is a usage error.\n");
}

typedef struct knn_args {
  uint64_t nb_txt, dim, nb_new, k, seed, budget, workers;
  const char *sized;  /* an option that sizes or seeds random inputs, if given */
  const char *shaped; /* --dim or --dtype, if given: the shape of --raw files */
  const char *db_path, *q_path, *out_path, *backend;
  int raw;
  bg_knn_precision_t precision;
  bg_knn_metric_t metric;
  bg_dtype_t dtype;
} knn_args;

static int parse_count(const char *opt, const char *val, uint64_t max, uint64_t *out) {
  const char *why;
  if (cli_parse_count(val, 1, max, out, &why) != 0)
    return cli_usage("knn", "%s '%s': %s", opt, val, why);
  return 0;
}

/* --backend cuda: 0 when a GPU is here; else say why, and what runs instead. */
static int cuda_unusable(void) {
  bg_gpu_info_t g;
  int rc = bg_gpu_query(&g);
  if (rc == 0)
    return 0;
  if (rc == BG_ENOTSUP)
    return cli_usage("knn",
                     "backend 'cuda' is not compiled into this build (%s); --backend auto "
                     "runs on the CPU",
                     g.why);
  return cli_fail("knn", "--backend cuda: No GPU detected (%s; %s); --backend auto runs on the CPU",
                  g.why, bg_errname(rc));
}

static int parse_one(const char *opt, const char *val, knn_args *a) {
  if (!strcmp(opt, "--nb-txt") || !strcmp(opt, "--nb-new") || !strcmp(opt, "--seed"))
    a->sized = opt;
  if (!strcmp(opt, "--dim") || !strcmp(opt, "--dtype"))
    a->shaped = opt;
  if (!strcmp(opt, "--nb-txt"))
    return parse_count(opt, val, UINT64_C(1) << 40, &a->nb_txt);
  if (!strcmp(opt, "--dim"))
    return parse_count(opt, val, UINT64_C(1) << 30, &a->dim);
  if (!strcmp(opt, "--nb-new"))
    return parse_count(opt, val, UINT64_C(1) << 40, &a->nb_new);
  if (!strcmp(opt, "--k"))
    return parse_count(opt, val, UINT64_C(1) << 20, &a->k);
  if (!strcmp(opt, "--seed"))
    return parse_count(opt, val, UINT64_MAX, &a->seed);
  if (!strcmp(opt, "--workers"))
    return parse_count(opt, val, 4096, &a->workers);
  if (!strcmp(opt, "--mem-budget")) {
    const char *why;
    if (cli_parse_size(val, &a->budget, &why) != 0)
      return cli_usage("knn", "--mem-budget '%s': %s", val, why);
    if (a->budget == 0)
      return cli_usage("knn", "--mem-budget '%s': must be more than 0 bytes, e.g. 512M", val);
    return 0;
  }
  if (!strcmp(opt, "--metric")) {
    for (int m = 0; m < BG_KNN_METRIC_COUNT_; m++)
      if (!strcmp(val, bg_knn_metric_name((bg_knn_metric_t)m))) {
        a->metric = (bg_knn_metric_t)m;
        return 0;
      }
    return cli_usage("knn", "unknown metric '%s' (metrics: ip, cosine, l2)", val);
  }
  if (!strcmp(opt, "--precision")) {
    if (strcmp(val, "exact") && strcmp(val, "bf16"))
      return cli_usage("knn", "unknown precision '%s' (precisions: exact, bf16)", val);
    a->precision = strcmp(val, "bf16") ? BG_KNN_EXACT : BG_KNN_BF16;
    return 0;
  }
  if (!strcmp(opt, "--dtype")) {
    if (strcmp(val, "f32") && strcmp(val, "f64"))
      return cli_usage("knn", "unknown dtype '%s' (dtypes: f32, f64)", val);
    a->dtype = strcmp(val, "f64") ? BG_F32 : BG_F64;
    return 0;
  }
  if (!strcmp(opt, "--backend")) {
    if (strcmp(val, "auto") && strcmp(val, "naive") && strcmp(val, "blocked") &&
        strcmp(val, "blas") && strcmp(val, "cuda"))
      return cli_usage("knn", "unknown backend '%s' (backends: auto, naive, blocked, blas, cuda)",
                       val);
    /* cuda's GPU is looked for once the whole command line is checked (a usage error first). */
    if (strcmp(val, "cuda") && !bg_knn_backend_available(val))
      return cli_usage("knn", "backend '%s' is not compiled into this build (no OpenBLAS)", val);
    a->backend = val;
    return 0;
  }
  if (!strcmp(opt, "--db"))
    a->db_path = val;
  else if (!strcmp(opt, "--queries"))
    a->q_path = val;
  else if (!strcmp(opt, "--out"))
    a->out_path = val;
  else
    return cli_unknown_option("knn", opt);
  return 0;
}

static int parse_args(int argc, char **argv, knn_args *a) {
  *a = (knn_args){.k = 1, .seed = 1, .backend = "auto"};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--raw")) {
      a->raw = 1;
      continue;
    }
    if (i + 1 >= argc)
      return cli_needs_value("knn", argv[i]);
    int rc = parse_one(argv[i], argv[i + 1], a);
    if (rc != 0)
      return rc;
    i++;
  }
  if (!a->db_path != !a->q_path)
    return cli_usage("knn", "--db and --queries go together");
  /* With files the sizes and the dtype are the files': an option that says otherwise would be
   * ignored, so it is refused. */
  if (a->db_path && a->sized)
    return cli_usage("knn",
                     "%s applies to random inputs; with --db and --queries the files "
                     "give the sizes: drop it",
                     a->sized);
  if (a->db_path && a->shaped && !a->raw)
    return cli_usage("knn",
                     "%s describes --raw files; a .npy file gives its own shape and "
                     "dtype: drop it, or add --raw",
                     a->shaped);
  if (!a->db_path && (!a->nb_txt || !a->dim || !a->nb_new))
    return cli_usage("knn", "give --nb-txt, --dim and --nb-new, or --db and --queries");
  if (a->raw && (!a->db_path || !a->dim))
    return cli_usage("knn", "--raw reads --db and --queries and needs --dim");
  if (a->precision == BG_KNN_BF16 && strcmp(a->backend, "auto") && strcmp(a->backend, "blocked"))
    return cli_usage("knn",
                     "--precision bf16 runs on the blocked backend: use --backend auto or "
                     "blocked, not '%s'",
                     a->backend);
  if (a->precision == BG_KNN_BF16 && a->dtype == BG_F64)
    return cli_usage("knn", "--precision bf16 is for f32 data: use --dtype f32");
  int no_gpu = !strcmp(a->backend, "cuda") ? cuda_unusable() : 0;
  if (no_gpu)
    return no_gpu;
  /* Checked now, not after the search: a bad folder, a directory, or an input as the output. */
  const char *inputs[] = {a->db_path, a->q_path, NULL};
  char why[512];
  if (a->out_path &&
      bench_outfile_check(a->out_path, a->db_path ? inputs : NULL, why, sizeof why) != 0)
    return cli_usage("knn", "--out %s", why);
  return 0;
}

/* The --db file, searched in pieces by bg_knn (db_view, else db_read) so that a database larger
 * than memory can be searched: this rank's share of the rows, each piece checked for NaN and
 * infinity as it arrives so that the message can name the row. */
typedef struct db_stream {
  const bg_npy_t *file;
  const char *path;
  size_t first, dim;
  bg_dtype_t dtype;
  int bad;                 /* a value that is not finite was found ... */
  size_t bad_row, bad_col; /* ... here */
  int bad_nan;
  char err[512];          /* a read that failed: the library's message */
  bg_npy_view_t views[2]; /* the pieces bg_knn reads where they lie in the file (view_db) */
  unsigned nviews;        /* views made so far */
  char bus_note[1024];    /* what SIGBUS says (cut to fit) */
} db_stream;

typedef struct inputs {
  bg_npy_t *db_file, *q_file; /* --db (streamed) and --queries (read) */
  db_stream stream;
  void *db_made, *q_made; /* the random inputs */
  int stop_mask;          /* the signals whose note cli_stop_guard installed */
  const void *db, *q;     /* whichever of the two */
  unsigned rank, ranks;   /* under mpirun: this rank's share of the database */
  size_t first, rows;     /* the rows of the database this process searches */
} inputs;

/* Rank r's share of n rows: the first n % ranks ranks get one more. */
static void share(size_t n, unsigned r, unsigned ranks, size_t *first, size_t *rows) {
  size_t q = n / ranks, extra = n % ranks;
  *first = r * q + (r < extra ? r : extra);
  *rows = q + (r < extra);
}

/* Whether [i0, i1) holds a value whose exponent bits are all set (NaN or infinity): a loop
 * without an early exit, on the values' bits, which the compiler turns into vector code. */
static int block_has_bad(const void *data, size_t i0, size_t i1, bg_dtype_t t) {
  int any = 0;
  if (t == BG_F64) {
    const uint64_t ex = 0x7ff0000000000000u;
    for (size_t i = i0; i < i1; i++) {
      uint64_t u;
      memcpy(&u, (const double *)data + i, sizeof u);
      any |= (u & ex) == ex;
    }
  } else {
    const uint32_t ex = 0x7f800000u;
    for (size_t i = i0; i < i1; i++) {
      uint32_t u;
      memcpy(&u, (const float *)data + i, sizeof u);
      any |= (u & ex) == ex;
    }
  }
  return any;
}

/* The first value of (rows, cols) that is not finite, as row * cols + col; SIZE_MAX if none.
 * Blocks of values are screened first and only a block with a bad value is searched one by one:
 * value by value, the scan of each piece of a streamed database took a tenth of the search's
 * CPU time (1,000,000 x 1000, 100 queries, 2 cores). */
static size_t first_bad(const void *data, size_t rows, size_t cols, bg_dtype_t t) {
  const size_t block = 4096;
  for (size_t i0 = 0, n = rows * cols; i0 < n; i0 += block) {
    size_t i1 = n - i0 < block ? n : i0 + block;
    if (!block_has_bad(data, i0, i1, t))
      continue;
    for (size_t i = i0; i < i1; i++)
      if (!isfinite(t == BG_F64 ? ((const double *)data)[i] : (double)((const float *)data)[i]))
        return i;
  }
  return SIZE_MAX;
}

static int not_finite(const char *path, size_t row, size_t col, int nan) {
  return cli_usage("knn",
                   "%s contains %s at row %zu, column %zu: brigade searches finite values only",
                   path, nan ? "NaN" : "infinity", row, col);
}

/* 1 when every value of the array is finite; else says which file, row and column is not. */
static int finite_rows(const char *path, const bg_npy_t *m) {
  const size_t *shape = bg_npy_shape(m);
  const void *data = bg_npy_data(m);
  bg_dtype_t t = (bg_dtype_t)bg_npy_dtype(m);
  size_t i = first_bad(data, shape[0], shape[1], t);
  if (i == SIZE_MAX)
    return 1;
  double v = t == BG_F64 ? ((const double *)data)[i] : ((const float *)data)[i];
  not_finite(path, i / shape[1], i % shape[1], isnan(v));
  return 0;
}

static int read_db(void *ctx, size_t row0, size_t rows, void *dst) {
  db_stream *s = ctx;
  bg_npy_error_t e;
  int rc = bg_npy_read_rows(s->file, s->first + row0, rows, dst, &e);
  if (rc != 0) {
    snprintf(s->err, sizeof s->err, "%s", e.msg);
    return rc;
  }
  size_t i = first_bad(dst, rows, s->dim, s->dtype);
  if (i == SIZE_MAX)
    return 0;
  double v = s->dtype == BG_F64 ? ((const double *)dst)[i] : ((const float *)dst)[i];
  s->bad = 1, s->bad_nan = isnan(v);
  s->bad_row = s->first + row0 + i / s->dim, s->bad_col = i % s->dim;
  return BG_EINVAL;
}

/* A piece where it lies in the file, mapped (db_view): cached, copying each piece out of the
 * page cache took the CPU the workers needed (a 4 GB database searched at 0.67x of the
 * in-memory speed on 2 cores). Each view replaces the one from two calls before, which bg_knn no
 * longer reads. Its values are checked here, on bg_knn's reading thread, which also brings the
 * pages in before the workers reach them; a piece with a bad value, or one that cannot be
 * mapped, is left to read_db, which copies it and names the value. */
static const void *view_db(void *ctx, size_t row0, size_t rows) {
  db_stream *s = ctx;
  bg_npy_view_t *v = &s->views[s->nviews++ % 2];
  bg_npy_unview(v);
  if (bg_npy_view_rows(s->file, s->first + row0, rows, v, NULL) != 0)
    return NULL;
  if (first_bad(v->rows, rows, s->dim, s->dtype) != SIZE_MAX) {
    bg_npy_unview(v);
    return NULL;
  }
  return v->rows;
}

/* Opens a (rows, dim) float array through the library: read into memory, or with @stream (a
 * regular file) left in the file, its pieces mapped one by one during the search (view_db; a
 * file cut short meanwhile raises SIGBUS, which search() turns into a message). The queries
 * are read, not mapped. A file that is not what brigade reads is a usage error (exit 2: the
 * library's BG_EFORMAT); one it cannot read, a failure (exit 1). */
static int load_matrix(const char *path, const knn_args *a, uint64_t avail, int stream,
                       bg_npy_t **out) {
  bg_npy_opts_t o;
  bg_npy_opts_init(&o);
  o.dtypes = 1u << BG_NPY_F32 | 1u << BG_NPY_F64;
  o.copy = 1;
  struct stat st;
  int regular = stat(path, &st) == 0 && S_ISREG(st.st_mode);
  o.stream = stream && regular;
  /* A pipe, FIFO or device has no size until its end and is read whole, through a buffer that
   * grows: at most half the memory available (as the default budget), so that one that never
   * ends (/dev/zero) is refused where it took the whole machine's memory. */
  o.max_bytes = regular || avail == UINT64_MAX ? avail : avail / 2;
  o.raw_cols = a->raw ? (size_t)a->dim : 0;
  o.raw_dtype = (bg_npy_dtype_t)a->dtype;
  bg_npy_error_t e;
  int rc = bg_npy_open(path, &o, out, &e);
  if (rc == BG_EFORMAT)
    return cli_usage("knn", "%s%s", e.msg,
                     e.fault == BG_NPY_MAGIC ? "; for raw data give --raw" : "");
  char b[32];
  if (rc == BG_ERANGE && e.fault == BG_NPY_TOO_BIG && !regular)
    return cli_fail("knn",
                    "%s: a pipe or device is read whole into memory, and it passed half the "
                    "memory available (%s); save it to a file, which is read in pieces",
                    path, cli_bytes(o.max_bytes, b, sizeof b));
  if (rc != 0)
    return cli_fail("knn", "%s", e.msg);
  int ndim = bg_npy_ndim(*out);
  const size_t *shape = bg_npy_shape(*out);
  if (ndim != 2)
    rc = cli_usage("knn", "%s: expected a 2-D array (rows, dim), found %d dimension%s", path, ndim,
                   ndim == 1 ? "" : "s");
  else if (shape[0] == 0 || shape[1] == 0)
    rc = cli_usage("knn", "%s: the array is empty", path);
  if (rc != 0) {
    bg_npy_close(*out);
    *out = NULL;
  }
  return rc;
}

static int load_inputs(knn_args *a, uint64_t avail, inputs *in) {
  if (a->db_path) {
    int rc = load_matrix(a->db_path, a, avail, 1, &in->db_file);
    if (rc == 0)
      rc = load_matrix(a->q_path, a, avail, 0, &in->q_file);
    if (rc != 0)
      return rc;
    const size_t *db = bg_npy_shape(in->db_file), *q = bg_npy_shape(in->q_file);
    bg_npy_dtype_t dt = bg_npy_dtype(in->db_file), qt = bg_npy_dtype(in->q_file);
    if (db[1] != q[1] || dt != qt)
      return cli_usage("knn",
                       "--db is (%zu, %zu) %s but --queries is (%zu, %zu) %s: the dims "
                       "and dtypes must match",
                       db[0], db[1], bg_npy_dtype_name(dt), q[0], q[1], bg_npy_dtype_name(qt));
    a->nb_txt = db[0], a->nb_new = q[0], a->dim = db[1], a->dtype = (bg_dtype_t)dt;
    in->q = bg_npy_data(in->q_file);
    if (!finite_rows(a->q_path, in->q_file))
      return CLI_USAGE;
    /* Each rank reads only its share of the rows, piece by piece during the search (a pipe,
     * which cannot be read at an offset, was read whole). */
    share(db[0], in->rank, in->ranks, &in->first, &in->rows);
    in->db = bg_npy_data(in->db_file);
    if (in->db && !finite_rows(a->db_path, in->db_file))
      return CLI_USAGE;
    in->stream = (db_stream){.file = in->db_file,
                             .path = a->db_path,
                             .first = in->first,
                             .dim = db[1],
                             .dtype = (bg_dtype_t)dt};
    return 0;
  }
  double e = a->dtype == BG_F64 ? 8 : 4;
  share((size_t)a->nb_txt, in->rank, in->ranks, &in->first, &in->rows);
  double need = ((double)in->rows + (double)a->nb_new) * (double)a->dim * e +
                (double)a->nb_new * (double)a->k * (8 + e);
  if (need > 0.8 * (double)avail)
    return cli_fail("knn",
                    "the inputs and results need %.2f GiB but only %.2f GiB are available; "
                    "use smaller sizes%s",
                    need / 1073741824, (double)avail / 1073741824,
                    a->dtype == BG_F64 ? " or --dtype f32" : "");
  /* Each rank generates only its rows; together they are the rows one process would make. */
  in->db = in->db_made = bench_knn_random(in->first, in->rows, (size_t)a->dim, a->dtype, a->seed);
  in->q = in->q_made =
      bench_knn_random(0, (size_t)a->nb_new, (size_t)a->dim, a->dtype, a->seed + 1);
  if (!in->db || !in->q)
    return cli_fail("knn", "out of memory generating the inputs");
  return 0;
}

/* Writes the (rows, cols) indices through the CLI's output file, whose signal guard removes
 * the temporary if the command is interrupted (the library's bg_npy_write installs none). */
static int write_indices(const char *path, const int64_t *idx, size_t rows, size_t cols, char *err,
                         size_t cap) {
  bench_outfile o;
  if (bench_outfile_open(&o, path, err, cap) != 0)
    return -1;
  size_t shape[2] = {rows, cols};
  bg_npy_error_t e;
  if (bg_npy_write_fd(fileno(o.f), BG_NPY_I64, 2, shape, idx, &e) != 0)
    return bench_outfile_abandon(&o, e.msg, err, cap);
  return bench_outfile_commit(&o, err, cap);
}

static int search(const knn_args *a, inputs *in) {
  bg_pool_opts_t po;
  bg_pool_opts_init(&po);
  po.workers = (unsigned)a->workers;
  po.backend = in->ranks > 1 ? "mpi" : NULL;
  bg_pool_t *pool;
  int rc = bg_pool_create(&po, &pool);
  if (rc != 0)
    return cli_fail("knn", "cannot start the workers: %s", bg_strerror(rc));
  int64_t *idx = malloc((size_t)(a->nb_new * a->k) * sizeof *idx);
  bg_knn_desc_t d;
  bg_knn_desc_init(&d);
  size_t e = a->dtype == BG_F64 ? 8 : 4;
  int whole = a->db_path != NULL; /* a file was read whole; generated inputs are the slice */
  d.dtype = a->dtype, d.metric = a->metric, d.nb_txt = in->rows, d.db_offset = in->first;
  d.db = in->db ? (const char *)in->db + (whole ? in->first * (size_t)a->dim * e : 0) : NULL;
  if (!d.db) {
    d.db_read = read_db;
    d.db_view = view_db;
    d.db_ctx = &in->stream;
    /* A mapped piece that another process cuts short raises SIGBUS: say so, rather than die. */
    snprintf(in->stream.bus_note, sizeof in->stream.bus_note,
             "\nbrigade knn: %s was cut short by another process during the search (SIGBUS "
             "reading it); nothing written\n",
             a->db_path);
    cli_bus_guard(in->stream.bus_note);
  }
  d.queries = in->q, d.nb_new = (size_t)a->nb_new, d.dim = (size_t)a->dim, d.k = (size_t)a->k;
  d.backend = a->backend, d.mem_budget = a->budget, d.idx = idx, d.precision = a->precision;
  bg_knn_times_t times;
  d.times = &times;
  bg_knn_plan_t plan = {0};
  double t0 = bench_now();
  rc = idx ? bg_knn(pool, &d, &plan) : BG_ENOMEM;
  double dt = bench_now() - t0;
  if (d.db_view) {
    cli_bus_restore();
    for (int i = 0; i < 2; i++)
      bg_npy_unview(&in->stream.views[i]);
  }
  /* From here --out's own guard removes its temporary on a signal. */
  cli_stop_restore(in->stop_mask);
  char b1[32], b2[32];
  int code = CLI_OK;
  if (in->rank != 0 && rc == 0) {
    /* Every rank holds the answer; rank 0 reports it. */
    free(idx);
    bg_pool_destroy(pool);
    return CLI_OK;
  }
  /* The library says which limit refused the search (plan.why); the CLI adds its numbers and
   * the option that changes them. */
  if (rc == BG_EINVAL && in->stream.bad)
    code = not_finite(a->db_path, in->stream.bad_row, in->stream.bad_col, in->stream.bad_nan);
  else if (rc != 0 && in->stream.err[0])
    code = cli_fail("knn", "%s", in->stream.err);
  else if (rc == BG_ENOMEM && plan.min_bytes)
    code =
        cli_fail("knn", "the search needs at least %s beyond its inputs but the budget is %s: %s",
                 cli_bytes(plan.min_bytes, b1, sizeof b1), cli_bytes(plan.budget, b2, sizeof b2),
                 plan.why ? plan.why : "raise --mem-budget");
  else if (rc == BG_ENOMEM && plan.why)
    code = cli_fail("knn", "not enough memory: %s", plan.why);
  else if (rc == BG_ERANGE && plan.why)
    code = cli_fail("knn", "%s", plan.why);
  else if (rc == BG_ENOTSUP && a->precision == BG_KNN_BF16)
    code = cli_usage("knn", "--precision bf16 is for f32 data, and %s holds f64", a->db_path);
  else if (rc == BG_EINVAL && a->k > a->nb_txt)
    code = cli_usage("knn", "--k %llu is more than the %llu database vectors",
                     (unsigned long long)a->k, (unsigned long long)a->nb_txt);
  else if (rc == BG_EINVAL)
    code = cli_usage("knn", "the inputs contain NaN or infinity");
  else if (rc != 0 && plan.why) /* the cuda backend names the CUDA call that failed */
    code = cli_fail("knn", "%s: %s", bg_strerror(rc), plan.why);
  else if (rc != 0)
    code = cli_fail("knn", "%s", bg_strerror(rc));
  if (code == CLI_OK) {
    double flops = 2.0 * (double)a->nb_txt * (double)a->dim * (double)a->nb_new;
    printf("brigade knn: nb_txt=%llu dim=%llu nb_new=%llu k=%llu metric=%s dtype=%s\n",
           (unsigned long long)a->nb_txt, (unsigned long long)a->dim, (unsigned long long)a->nb_new,
           (unsigned long long)a->k, bg_knn_metric_name(a->metric), bg_dtype_name(a->dtype));
    if (in->ranks > 1)
      printf("distributed: %u ranks, rank 0 searched rows 0..%zu of %llu (the plan below is "
             "its own)\n",
             in->ranks, in->rows, (unsigned long long)a->nb_txt);
    printf("plan: backend %s, %u worker%s, tiles of %zu queries x %zu vectors, %s planned "
           "(budget %s)\n",
           plan.backend, plan.workers, plan.workers == 1 ? "" : "s", plan.tile_q, plan.tile_db,
           cli_bytes(plan.bytes, b1, sizeof b1), cli_bytes(plan.budget, b2, sizeof b2));
    if (plan.db_slices > 1)
      printf("database split in %u slices, each searched for all the queries by a worker and "
             "the slices' top-%llu merged (few queries: every worker's vectors stay full)\n",
             plan.db_slices, (unsigned long long)a->k);
    printf("took %.4f s, %.1f GFLOP/s, peak memory %.1f MiB\n", dt, flops / dt / 1e9,
           bench_peak_mib());
    if (a->precision == BG_KNN_BF16 && strcmp(plan.precision, "bf16"))
      printf("precision: exact (%s); the answer is the same\n",
             plan.why ? plan.why : "bf16 ran exact");
    else if (a->precision == BG_KNN_BF16)
      printf("precision: bf16 certified (%s): %llu pairs scored in bf16, %llu of them (%.3f%%) "
             "again in fp32, %llu in fp32 alone (query blocks whose bound ruled out too few "
             "rows); the answer is the exact search's\n",
             bg_knn_cpu_kernel(BG_KNN_BF16) ? bg_knn_cpu_kernel(BG_KNN_BF16) : "?",
             (unsigned long long)plan.pairs, (unsigned long long)plan.rescored,
             plan.pairs ? 100.0 * (double)plan.rescored / (double)plan.pairs : 0.0,
             (unsigned long long)plan.fallback_pairs);
    if (!strcmp(plan.backend, "blas"))
      printf("blas certified: %llu pairs scored by OpenBLAS, %llu of them (%.3f%%) again in the "
             "blocked kernel's order; the answer is the blocked kernel's\n",
             (unsigned long long)plan.pairs, (unsigned long long)plan.rescored,
             plan.pairs ? 100.0 * (double)plan.rescored / (double)plan.pairs : 0.0);
    if (!strcmp(plan.backend, "cuda"))
      printf("GPU time: uploads %.4f s, products %.4f s, top-k selection %.4f s, downloads "
             "%.4f s (uploads overlap the products; the plan's bytes are device memory)\n",
             times.h2d_s, times.gemm_s, times.select_s, times.d2h_s);
    printf("first query: best index %lld\n", (long long)idx[0]);
    char err[640];
    if (a->out_path &&
        write_indices(a->out_path, idx, (size_t)a->nb_new, (size_t)a->k, err, sizeof err) != 0)
      code = cli_fail("knn", "%s", err);
  }
  free(idx);
  bg_pool_destroy(pool);
  return code;
}

int cmd_knn_check(int argc, char **argv) {
  knn_args a;
  return parse_args(argc, argv, &a);
}

int cmd_knn(int argc, char **argv) {
  knn_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0)
    return rc;
  uint64_t avail = 0;
  if (bg_mem_available(&avail) != 0)
    avail = UINT64_MAX;
  inputs in = {.ranks = 1};
  /* Under mpirun every rank runs this command: each searches a share of the database. */
  if (bg_dist_world(&in.rank, &in.ranks) != 0)
    in.rank = 0, in.ranks = 1;
  /* Reading the inputs and the search cannot be stopped midway: SIGINT and SIGTERM end them as
   * they would, saying first that nothing was written. */
  in.stop_mask = cli_stop_guard(a.out_path ? "\nbrigade knn: interrupted; nothing written (--out "
                                             "is written only after the search)\n"
                                           : "\nbrigade knn: interrupted\n");
  rc = load_inputs(&a, avail, &in);
  if (rc == 0)
    rc = search(&a, &in);
  cli_stop_restore(in.stop_mask);
  bg_npy_close(in.db_file);
  bg_npy_close(in.q_file);
  free(in.db_made);
  free(in.q_made);
  return rc;
}
