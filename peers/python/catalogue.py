#!/usr/bin/env python3
"""The lecture's Python frameworks on one case of brigade's catalogue.

Runs one workload case with a plain loop, multiprocessing.Pool.map,
concurrent.futures.ProcessPoolExecutor.map, joblib.Parallel and mpire.WorkerPool.map, each called
the way its documentation shows (default arguments, the pool created and closed inside the timed
region, as a user's script does), plus NumPy's vectorised form where one exists. Every framework's
result is checked against the plain loop's.

Prints one line per approach on stdout, tab-separated key=value fields, for `brigade bench
--peers python` to merge:

  peer<TAB>approach=joblib<TAB>workers=2<TAB>median=0.51<TAB>min=0.50<TAB>max=0.53<TAB>peak_mib=61.2<TAB>status=ok
  peer<TAB>approach=mpire<TAB>status=skipped<TAB>why=not installed<TAB>fix=scripts/bootstrap.sh --peers

Usage: catalogue.py --workload NAME --n N --param P --workers W --repeat R
"""
import argparse
import concurrent.futures
import math
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import string
import sys
import tempfile
import time

FIX = "scripts/bootstrap.sh --peers (or make bench-peers)"
FIXED_NUMBER = 9999991


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    for d in range(3, math.isqrt(n) + 1, 2):
        if n % d == 0:
            return False
    return True


# Tasks are module-level functions so that every framework can pickle them.
def t_sleep(seconds):
    time.sleep(seconds)
    return 0


def t_prime_fixed(_):
    return is_prime(FIXED_NUMBER)


def t_prime_range(i):
    return is_prime(i)


def t_write(job):
    """Writes `size` random letters to a file of its own in `folder`, then deletes it."""
    folder, i, size = job
    path = os.path.join(folder, f"item{i}")
    with open(path, "w") as f:
        f.write("".join(random.choices(string.ascii_letters, k=size)))
    os.remove(path)
    return size


def t_alloc(mib):
    import numpy as np

    a = np.random.random(int(mib * 1048576 / 8))
    return float(a[0] >= 0)


def t_mean(chunk):
    return float(chunk.mean())


def chunks(a, n):
    """n nearly equal consecutive blocks of a, as brigade cuts them."""
    q, r = divmod(len(a), n)
    out, off = [], 0
    for i in range(n):
        size = q + (i < r)
        out.append(a[off:off + size])
        off += size
    return out


def make_case(workload, n, param):
    """Returns (task, items, cleanup, numpy_form or None)."""
    if workload == "sleep":
        return t_sleep, [param] * n, None, None
    if workload == "prime-fixed":
        return t_prime_fixed, list(range(n)), None, None
    if workload == "prime-range":
        return t_prime_range, list(range(n)), None, None
    # disk-dirs and alloc-huge are brigade's ways out of the kernel's limits on the same jobs:
    # the Python peers do the jobs as the lecture's scripts do.
    if workload in ("disk-small", "disk-dirs", "disk-large"):
        folder = tempfile.mkdtemp(prefix="brigade-peer-")
        return t_write, [(folder, i, int(param)) for i in range(n)], lambda: shutil.rmtree(folder), None
    if workload in ("alloc", "alloc-huge"):
        import numpy  # noqa: F401  (skipped cleanly when missing)

        return t_alloc, [param] * n, None, None
    if workload in ("chunk-mean", "vector-mean"):
        import numpy as np

        rng = np.random.default_rng(42)
        a = rng.random(int(param))
        parts = chunks(a, n)
        numpy_form = lambda: [float(p.mean()) for p in parts] if workload == "chunk-mean" else [float(a.mean())]
        return t_mean, parts, None, numpy_form
    raise SystemExit(f"catalogue.py: unknown workload {workload!r}")


def run_seq(task, items, workers):
    return [task(x) for x in items]


def run_multiprocessing(task, items, workers):
    with multiprocessing.Pool(workers) as pool:
        return pool.map(task, items)


def run_futures(task, items, workers):
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(task, items))


def run_joblib(task, items, workers):
    from joblib import Parallel, delayed

    return Parallel(n_jobs=workers)(delayed(task)(x) for x in items)


def stop_joblib():
    # joblib keeps loky's worker processes for the next call, and the interpreter's exit joins
    # them: with 256 idle workers on two CPUs that join never ended. Stop them here, after the
    # timed runs. reuse=True returns the executor joblib made as it is (default arguments would
    # differ from joblib's, and loky would then shut it down without killing its workers and
    # make a new one); kill_workers=True ends the workers rather than queueing a stop for each.
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


def run_mpire(task, items, workers):
    from mpire import WorkerPool

    # mpire unpacks tuples into arguments; wrap each item so the task gets it whole.
    with WorkerPool(n_jobs=workers) as pool:
        return pool.map(task, [(x,) for x in items])


APPROACHES = [
    ("seq", run_seq, None, None),
    ("multiprocessing", run_multiprocessing, None, None),
    ("futures", run_futures, None, None),
    ("joblib", run_joblib, "joblib", stop_joblib),
    ("mpire", run_mpire, "mpire", None),
]


def peak_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def emit(**fields):
    print("peer\t" + "\t".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def same(a, b):
    if len(a) != len(b):
        return False
    return all(x == y or (isinstance(x, float) and math.isclose(x, y, rel_tol=1e-9)) for x, y in zip(a, b))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--param", type=float, default=0)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    try:
        task, items, cleanup, numpy_form = make_case(a.workload, a.n, a.param)
    except ImportError as e:
        for name, _, _, _ in APPROACHES:
            emit(approach=name, status="skipped", why=f"needs {e.name}", fix=FIX)
        return
    want = None
    try:
        for name, run, module, stop in APPROACHES:
            if module:
                try:
                    __import__(module)
                except ImportError:
                    emit(approach=name, status="skipped", why=f"{module} not installed", fix=FIX)
                    continue
            times, ok = [], True
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                got = run(task, items, a.workers)
                times.append(time.perf_counter() - t0)
                if want is None:
                    want = got
                ok = ok and same(got, want)
            if stop:
                stop()
            emit(approach=name, workers=1 if name == "seq" else a.workers,
                 median=f"{statistics.median(times):.6f}", min=f"{min(times):.6f}",
                 max=f"{max(times):.6f}", peak_mib=f"{peak_mib():.1f}",
                 status="ok" if ok else "wrong")
        if numpy_form:
            times = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                numpy_form()
                times.append(time.perf_counter() - t0)
            emit(approach="numpy", workers=1, median=f"{statistics.median(times):.6f}",
                 min=f"{min(times):.6f}", max=f"{max(times):.6f}", peak_mib=f"{peak_mib():.1f}",
                 status="ok")
    finally:
        if cleanup:
            cleanup()


if __name__ == "__main__":
    main()
