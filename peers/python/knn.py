#!/usr/bin/env python3
"""The lecture's part 2 in Python: one similarity search with NumPy, PyTorch or faiss.

For each query, the index of the database vector with the largest dot product. brigade writes
its own inputs to INPUTS/db.f32 and INPUTS/queries.f32 (raw float32, row-major), so the answers
can be compared with its own; this script loads them (untimed, as a user's arrays already in
memory), runs one approach the way its documentation shows, and writes the answer to
INPUTS/APPROACH.i64 (raw native int64):

  numpy  np.argmax(queries @ db.T, axis=1)                       (the lecture's code)
  torch  torch.argmax(queries @ db.T, dim=1) on the CPU          (the lecture's code)
  faiss  faiss.IndexFlatIP(dim); index.add(db); index.search(queries, 1)

The first two build the whole score matrix, as the lecture does: at the memory wall they fail
the way a user sees them fail (MemoryError, or the kernel's SIGKILL), and that is reported.
Each approach runs in a process of its own, so one failing does not hide the others.

Prints one tab-separated line for `brigade bench --suite knn --peers python` to merge:

  peer<TAB>approach=numpy<TAB>workers=2<TAB>median=5.1<TAB>min=5.0<TAB>max=5.3<TAB>peak_mib=4521.0<TAB>status=ok
  peer<TAB>approach=numpy<TAB>workers=2<TAB>status=failed<TAB>why=MemoryError: Unable to allocate ...
  peer<TAB>approach=faiss<TAB>status=skipped<TAB>why=faiss not installed<TAB>fix=...

Usage: knn.py --approach numpy|torch|faiss --inputs DIR --nb-txt N --dim D --nb-new Q
              --workers W --repeat R --row-seconds S
"""
import argparse
import os
import resource
import statistics
import sys
import time

FIX = "scripts/bootstrap.sh --peers (or make bench-peers)"
MODULES = {"numpy": "numpy", "torch": "torch", "faiss": "faiss"}
# Warm-up of short runs: at least this long, at most this many runs (bench/knn.c has the same).
WARM_SECONDS = 0.2
WARM_RUNS = 10000


def emit(**fields):
    print("peer\t" + "\t".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def search_numpy(db, queries, workers):
    import numpy as np

    return lambda: np.argmax(queries @ db.T, axis=1)


def search_torch(db, queries, workers):
    import torch

    torch.set_num_threads(workers)
    tdb, tq = torch.from_numpy(db), torch.from_numpy(queries)
    return lambda: torch.argmax(tq @ tdb.T, dim=1).numpy()


def search_faiss(db, queries, workers):
    import faiss

    faiss.omp_set_num_threads(workers)

    def run():
        index = faiss.IndexFlatIP(db.shape[1])
        index.add(db)
        _, ids = index.search(queries, 1)
        return ids[:, 0]

    return run


SEARCHES = {"numpy": search_numpy, "torch": search_torch, "faiss": search_faiss}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--approach", required=True, choices=sorted(SEARCHES))
    p.add_argument("--inputs", required=True)
    p.add_argument("--nb-txt", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--nb-new", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--row-seconds", type=float, default=10.0)
    a = p.parse_args()
    # NumPy's BLAS reads its thread count when it loads: set it before the import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.workers)
    try:
        import numpy as np

        __import__(MODULES[a.approach])
    except ImportError as e:
        emit(approach=a.approach, status="skipped", why=f"{e.name} not installed", fix=FIX)
        return
    db = np.fromfile(os.path.join(a.inputs, "db.f32"), dtype=np.float32)
    queries = np.fromfile(os.path.join(a.inputs, "queries.f32"), dtype=np.float32)
    db = db.reshape(a.nb_txt, a.dim)
    queries = queries.reshape(a.nb_new, a.dim)
    run = SEARCHES[a.approach](db, queries, a.workers)
    times, answer = [], None
    try:
        # Warm-up when runs are short, WARM_SECONDS of them as brigade's rows have (bench/knn.c):
        # BLAS starts its threads, pages fault in, the cores' clocks settle.
        t0 = time.perf_counter()
        answer = run()
        first = time.perf_counter() - t0
        if first >= 1.0:
            times.append(first)
        else:
            warm, runs = first, 1
            while warm < WARM_SECONDS and runs < WARM_RUNS:
                t0 = time.perf_counter()
                answer = run()
                warm += time.perf_counter() - t0
                runs += 1
        while len(times) < a.repeat and sum(times) <= a.row_seconds:
            t0 = time.perf_counter()
            answer = run()
            times.append(time.perf_counter() - t0)
    except (MemoryError, RuntimeError) as e:
        why = " ".join(f"{type(e).__name__}: {e}".split())
        emit(approach=a.approach, workers=a.workers, status="failed", why=why[:150])
        return
    np.asarray(answer, dtype=np.int64).tofile(os.path.join(a.inputs, f"{a.approach}.i64"))
    emit(approach=a.approach, workers=a.workers, median=f"{statistics.median(times):.6f}",
         min=f"{min(times):.6f}", max=f"{max(times):.6f}", peak_mib=f"{peak_mib():.1f}",
         status="ok")


if __name__ == "__main__":
    sys.exit(main())
