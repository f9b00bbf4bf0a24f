# SPDX-License-Identifier: MIT
"""brigade from Python beside brigade from C, in one run (docs/PERFORMANCE.md, "From Python").

    python python/bench/bench.py [--big]      # with the package installed (pip install ./python)
    python python/bench/bench.py --shapes     # only the lecture's knn shapes (below, 4.)

1. knn (100000, 1000, 10000) with --big, else (20000, 1000, 2000): brigade.knn against the
   `brigade` command on the same sizes (its own random inputs: the time does not depend on the
   values), and NumPy's np.argmax(q @ db.T) where it fits.
2. map per-item overhead: brigade.map of an empty native function over 10M items against
   bg_map's own wall time inside it (the C API's cost) and `brigade map` from the command line.
3. prime-range 1e6 (the lecture's work, trial division compiled in C): brigade.map on threads
   and procs against multiprocessing.Pool.map calling the same compiled function through ctypes.
4. --shapes: the lecture's five searchable knn shapes, brigade.knn exact and precision="bf16"
   (checked equal) against np.argmax(q @ db.T) and, where importable, torch's, best of a few.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import brigade
from brigade._cli import _binary

HERE = Path(__file__).resolve().parent
_lib: ctypes.CDLL | None = None


def build_tasks(where: Path) -> Path:
    cc = shutil.which("cc") or "gcc"
    lib = where / "libtasks.so"
    src = HERE.parent / "tests" / "native" / "tasks.c"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def cli_seconds(args: list[str]) -> float:
    done = subprocess.run([_binary(), *args], capture_output=True, text=True, check=False)
    text = done.stdout + done.stderr
    m = re.search(r"([0-9.]+) s\b", text)
    if not m:
        raise RuntimeError(f"no time in: {text}")
    return float(m.group(1))


def best_of(f, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def pool_init(path: str) -> None:
    global _lib
    _lib = ctypes.CDLL(path)


def pool_prime(i: int) -> int:
    out = ctypes.c_int8()
    assert _lib is not None
    _lib.is_prime(ctypes.byref(out), None, ctypes.c_size_t(i), None)
    return out.value


def shapes() -> None:
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        torch = None
    cases = [(1000, 100, 100, 21), (10_000, 100, 1000, 7), (1_000_000, 100, 1000, 2),
             (100_000, 1000, 1000, 2), (100_000, 1000, 10_000, 1)]
    rng = np.random.default_rng(1)
    for nb, dim, nq, rep in cases:
        db = rng.random((nb, dim), dtype=np.float32)
        q = rng.random((nq, dim), dtype=np.float32)
        exact = brigade.knn(db, q)
        bf16 = brigade.knn(db, q, precision="bf16")
        assert np.array_equal(exact[0], bf16[0]) and np.array_equal(exact[1], bf16[1])
        ex = best_of(lambda: brigade.knn(db, q), rep)
        bf = best_of(lambda: brigade.knn(db, q, precision="bf16"), rep)
        npy = best_of(lambda: np.argmax(q @ db.T, axis=1), rep)
        line = (f"knn ({nb}, {dim}, {nq}), best of {rep}: brigade.knn exact {ex * 1e3:.3f} ms, "
                f"bf16 {bf * 1e3:.3f} ms; NumPy {npy * 1e3:.3f} ms")
        best_peer = npy
        if torch is not None:
            tdb, tq = torch.from_numpy(db), torch.from_numpy(q)
            tt = best_of(lambda: torch.argmax(tq @ tdb.T, dim=1), rep)
            line += f"; torch {tt * 1e3:.3f} ms"
            best_peer = min(best_peer, tt)
        print(line + f"; best peer / bf16 {best_peer / bf:.2f}x, / exact {best_peer / ex:.2f}x",
              flush=True)


def main() -> None:
    if "--shapes" in sys.argv:
        shapes()
        return
    big = "--big" in sys.argv
    nb, dim, nq = (100_000, 1000, 10_000) if big else (20_000, 1000, 2_000)
    with tempfile.TemporaryDirectory() as tmp:
        lib_path = build_tasks(Path(tmp))
        lib = ctypes.CDLL(str(lib_path))
        rng = np.random.default_rng(1)
        db = rng.random((nb, dim), dtype=np.float32)
        q = rng.random((nq, dim), dtype=np.float32)
        py = best_of(lambda: brigade.knn(db, q, k=1))
        c = min(cli_seconds(["knn", "--nb-txt", str(nb), "--dim", str(dim), "--nb-new", str(nq)])
                for _ in range(3))
        npy = best_of(lambda: np.argmax(q @ db.T, axis=1), repeat=1)
        print(f"knn ({nb}, {dim}, {nq}): brigade.knn {py:.3f} s, brigade knn (C) {c:.3f} s "
              f"(Python/C {py / c:.3f}), np.argmax(q @ db.T) {npy:.3f} s ({npy / py:.2f}x brigade)")

        n = 10_000_000
        walls: list[float] = []

        def empty() -> None:
            walls.append(brigade.map(lib.nothing, n, workers=2).wall_s)

        total = best_of(empty)
        cli = min(cli_seconds(["map", "--task", f"{lib_path}:nothing", "--n", str(n),
                               "--backend", "threads", "--no-progress"]) for _ in range(3))
        print(f"map of an empty function, {n} items, threads: brigade.map {total / n * 1e9:.2f} "
              f"ns/item (bg_map inside it {min(walls) / n * 1e9:.2f} ns/item; brigade map "
              f"{cli / n * 1e9:.2f} ns/item)")

        n = 1_000_000
        out = np.zeros(n, dtype=np.int8)
        thr = best_of(lambda: brigade.map(lib.is_prime, n, out, backend="threads"))
        assert int(out.sum()) == 78498
        prc = best_of(lambda: brigade.map(lib.is_prime, n, out, backend="procs"))
        assert int(out.sum()) == 78498
        with mp.Pool(initializer=pool_init, initargs=(str(lib_path),)) as pool:
            t0 = time.perf_counter()
            got = pool.map(pool_prime, range(n), chunksize=n // (8 * mp.cpu_count()))
            mpt = time.perf_counter() - t0
        assert sum(got) == 78498
        print(f"prime-range {n}: brigade.map threads {thr:.3f} s, procs {prc:.3f} s; "
              f"multiprocessing.Pool.map (same C function via ctypes) {mpt:.3f} s "
              f"({mpt / thr:.1f}x threads)")


if __name__ == "__main__":
    main()
