# SPDX-License-Identifier: MIT
"""brigade.knn: exact top-k search on NumPy arrays, within a memory budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _native
from ._args import count
from ._errors import _EINVAL, translate

Shape = Tuple[int, int]


@dataclass(frozen=True)
class KnnPlan:
    """How a search is cut into tiles, decided before anything is allocated.

    ``bytes`` is what the search allocates besides its inputs and outputs (tiles, packing,
    norms), ``min_bytes`` the least any plan needs, ``budget`` the budget it was made for.
    ``db_slices`` is how many slices of the database are searched side by side, each for all
    the queries, then merged (few queries); 1 otherwise.
    """

    backend: str
    tile_q: int
    tile_db: int
    workers: int
    bytes: int
    min_bytes: int
    budget: int
    blas_bytes: int
    precision: str
    db_slices: int


def _plan(d: dict) -> KnnPlan:
    return KnnPlan(**{f: d[f] for f in KnnPlan.__dataclass_fields__})


def _as_matrix(a: np.ndarray, name: str, dtype: np.dtype) -> np.ndarray:
    """@a as a C-contiguous 2-D array of @dtype: itself when it already is (no copy)."""
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), not of shape {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def _common_dtype(db: np.ndarray, queries: np.ndarray) -> np.dtype:
    """float32 when both are float32; float64 otherwise (other types are converted once)."""
    if db.dtype == np.float32 and queries.dtype == np.float32:
        return np.dtype(np.float32)
    for a, name in ((db, "db"), (queries, "queries")):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{name} has dtype {a.dtype}: give float32 or float64 numbers")
    return np.dtype(np.float64)


PRECISIONS = ("exact", "bf16")


def _check_precision(precision: Any, backend: Any, dtype: np.dtype) -> bool:
    """Whether to search in certified bf16; ValueError where it cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (exact or bf16)")
    if precision == "exact":
        return False
    if dtype != np.float32:
        raise ValueError("precision='bf16' is for float32 data (these are float64)")
    if backend not in ("auto", "blocked"):
        raise ValueError(f"precision='bf16' runs on the blocked backend, not {backend!r}")
    return True


METRICS = ("ip", "cosine", "l2")
BACKENDS = ("auto", "blocked", "blas", "naive", "cuda")


def _check_args(nb: int, dim: int, k: Any, metric: Any, backend: Any, mem_budget: Any,
                workers: Any) -> Tuple[int, int, int]:
    """Checks what libbrigade would refuse with a bare BG_EINVAL, so that the message names
    it; returns k, the budget (0: the default) and workers (0: the default)."""
    if nb < 1:
        raise ValueError("db has no rows: there is nothing to search")
    if dim < 1:
        raise ValueError("the vectors have no dimensions (dim 0)")
    k = count(k, "k", 1, 1 << 62)
    if k > nb:
        raise ValueError(f"k = {k} is more than the {nb} database rows")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (ip, cosine or l2)")
    if backend not in BACKENDS:
        raise ValueError(f"unknown knn backend {backend!r} (auto, blocked, blas, naive or cuda)")
    budget = 0 if mem_budget is None else count(mem_budget, "mem_budget", 1, (1 << 63) - 1)
    threads = 0 if workers is None else count(workers, "workers", 1, 4096)
    return k, budget, threads


def knn(
    db: np.ndarray,
    queries: np.ndarray,
    k: int = 1,
    metric: str = "ip",
    backend: str = "auto",
    mem_budget: Optional[int] = None,
    precision: str = "exact",
    workers: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """The k database rows nearest each query: ``(indices, scores)``, each (len(queries), k).

    ``metric`` is "ip" (largest inner product, the lecture's question), "cosine" or "l2"
    (smallest squared distance). Scores are computed in the inputs' precision (float32 or
    float64, never lower); ties go to the lowest index. ``precision="bf16"`` (float32 only)
    scores every pair from bf16-rounded inputs first (AMX or AVX-512 BF16: faster on some CPUs
    and shapes, slower on others) and again in float32 only where a proven error bound says it
    could matter: the indices and scores are exactly those of ``precision="exact"``; without
    AVX-512 BF16 it runs exact. float32 or float64 C-contiguous arrays are read where they are
    (no copy); anything else is converted once (both to float64 when their types differ).

    ``mem_budget`` is the bytes the search may allocate besides its inputs and outputs (None:
    half the memory available, cgroup- and ulimit-aware); a budget too small for any plan
    raises MemoryError with the numbers, before anything is allocated. ``backend`` is
    "auto", "blocked", "blas" or "naive". The GIL is released during the search.
    """
    db, queries = np.asarray(db), np.asarray(queries)
    dtype = _common_dtype(db, queries)
    bf16 = _check_precision(precision, backend, dtype)
    db = _as_matrix(db, "db", dtype)
    queries = _as_matrix(queries, "queries", dtype)
    if db.shape[1] != queries.shape[1]:
        raise ValueError(
            f"db has {db.shape[1]} dimensions and queries {queries.shape[1]}: they must agree"
        )
    (nb, dim), nq = db.shape, queries.shape[0]
    k, budget, threads = _check_args(nb, dim, k, metric, backend, mem_budget, workers)
    idx = np.empty((nq, k), dtype=np.int64)
    scores = np.empty((nq, k), dtype=dtype)
    try:
        _native.knn(db, nb, queries, nq, dim, dtype == np.float64, k, metric, backend, budget,
                    threads, idx, scores, False, bf16)
    except _native.Error as e:
        if e.args[0] == _EINVAL:  # what the checks above leave: the values themselves
            raise ValueError("db or queries hold NaN or infinity: brigade searches finite "
                             "numbers only") from None
        raise translate(e) from None
    return idx, scores


def knn_plan(
    db: Union[np.ndarray, Shape],
    queries: Union[np.ndarray, Shape],
    k: int = 1,
    metric: str = "ip",
    backend: str = "auto",
    mem_budget: Optional[int] = None,
    precision: str = "exact",
    workers: Optional[int] = None,
    dtype: Union[str, np.dtype, type] = np.float32,
) -> KnnPlan:
    """The plan ``knn`` would follow, without reading or allocating anything.

    ``db`` and ``queries`` are arrays or their shapes ``(rows, dim)`` (then ``dtype`` says
    float32 or float64), so the plan of a search too large to hold in memory can be seen.
    Raises MemoryError when no plan fits ``mem_budget``. ``precision`` says what the search
    would run: "bf16" only where the CPU has AVX-512 BF16.
    """

    def shape_of(a: Union[np.ndarray, Shape], name: str) -> Shape:
        s = tuple(a.shape) if isinstance(a, np.ndarray) else tuple(a)
        if len(s) != 2 or any(int(x) < 0 for x in s):
            raise ValueError(f"{name} must be a 2-D array or a shape (rows, dim), not {a!r}")
        return int(s[0]), int(s[1])

    (nb, dim), (nq, qdim) = shape_of(db, "db"), shape_of(queries, "queries")
    if dim != qdim:
        raise ValueError(f"db has {dim} dimensions and queries {qdim}: they must agree")
    if isinstance(db, np.ndarray) and isinstance(queries, np.ndarray):
        dt = _common_dtype(db, queries)
    else:
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype {dt} is not float32 or float64")
    k, budget, threads = _check_args(nb, dim, k, metric, backend, mem_budget, workers)
    bf16 = _check_precision(precision, backend, dt)
    try:
        d = _native.knn(None, nb, None, nq, dim, dt == np.float64, k, metric, backend, budget,
                        threads, None, None, True, bf16)
    except _native.Error as e:
        raise translate(e) from None
    return _plan(d)

