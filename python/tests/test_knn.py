# SPDX-License-Identifier: MIT
"""brigade.knn and brigade.knn_plan against NumPy's float64 reference."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

import brigade


def reference(db: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    """float64 scores of every pair, oriented so that larger is better."""
    db64, q64 = db.astype(np.float64), q.astype(np.float64)
    if metric == "ip":
        return q64 @ db64.T
    if metric == "cosine":
        qn = np.linalg.norm(q64, axis=1, keepdims=True)
        dn = np.linalg.norm(db64, axis=1, keepdims=True)
        return (q64 @ db64.T) / (qn * dn.T)
    return -((q64 * q64).sum(1)[:, None] - 2 * q64 @ db64.T + (db64 * db64).sum(1)[None, :])


SHAPES = [(1, 1, 1, 1), (100, 10, 3, 1), (1000, 100, 100, 1), (1000, 37, 65, 5),
          (5000, 200, 33, 10), (257, 3, 1, 257)]


@pytest.mark.parametrize("nb,nq,dim,k", SHAPES)
@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_answers_equal_the_reference(nb: int, nq: int, dim: int, k: int, metric: str,
                                     dtype: type) -> None:
    rng = np.random.default_rng(nb * 7 + nq * 3 + dim)
    db = rng.standard_normal((nb, dim)).astype(dtype)
    q = rng.standard_normal((nq, dim)).astype(dtype)
    idx, scores = brigade.knn(db, q, k=k, metric=metric)
    assert idx.shape == (nq, k) and scores.shape == (nq, k) and scores.dtype == dtype
    ref = reference(db, q, k, metric)
    best = -np.sort(-ref, axis=1)[:, :k]
    got = np.take_along_axis(ref, idx, axis=1)
    # Every chosen row is as good as the reference's row of its rank (within the dtype's
    # rounding), and no row is chosen twice.
    tol = 1e-9 if dtype == np.float64 else 2e-4
    scale = np.abs(best).max() + 1
    assert np.all(np.abs(got - best) <= tol * scale)
    assert all(len(set(row)) == k for row in idx.tolist())
    # In one dimension every cosine is +-1: ties that rounding orders either way.
    if dtype == np.float64 and not (metric == "cosine" and dim == 1):
        assert np.array_equal(idx, np.argsort(-ref, axis=1, kind="stable")[:, :k])
        want = best if metric != "l2" else -best
        assert np.allclose(scores, want, rtol=1e-9, atol=1e-9 * scale)


def test_ties_go_to_the_lowest_index() -> None:
    db = np.ones((50, 4), dtype=np.float32)
    idx, _ = brigade.knn(db, np.ones((3, 4), dtype=np.float32), k=4)
    assert idx.tolist() == [[0, 1, 2, 3]] * 3


def test_one_query_splits_the_database_and_answers_the_same() -> None:
    rng = np.random.default_rng(5)
    db = rng.standard_normal((30000, 24)).astype(np.float32)
    db[10000::5000] = db[7]  # ties in every slice
    q = db[7:8].copy()
    assert brigade.knn_plan(db, q, k=9, workers=2).db_slices == 2
    assert brigade.knn_plan(db, q, k=9, workers=1).db_slices == 1
    for metric in ("ip", "cosine", "l2"):
        one = brigade.knn(db, q, k=9, metric=metric, workers=1)
        two = brigade.knn(db, q, k=9, metric=metric, workers=2)
        assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert brigade.knn(db, q, k=6, metric="l2", workers=2)[0][0, :5].tolist() == [
        7, 10000, 15000, 20000, 25000]


def test_a_tiny_search_runs_on_one_worker() -> None:
    # 200 x 8 x 4 multiply-adds: waking a second worker costs more than it saves.
    assert brigade.knn_plan((200, 8), (4, 8), workers=2).workers == 1
    assert brigade.knn_plan((20000, 100), (4, 100), workers=2).workers == 2


def test_inputs_are_not_copied() -> None:
    db = np.random.default_rng(1).random((200_000, 64), dtype=np.float32)  # 51 MB
    q = db[:100].copy()
    tracemalloc.start()
    try:
        brigade.knn(db, q, k=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < db.nbytes // 20, f"{peak} bytes allocated through Python for a {db.nbytes}-byte db"


def test_other_layouts_and_types_are_converted_once() -> None:
    rng = np.random.default_rng(2)
    db = rng.standard_normal((300, 16))
    q = rng.standard_normal((16, 5)).T  # not C-contiguous
    idx, scores = brigade.knn(db.astype(np.float32), q, k=3)  # mixed: both in float64
    assert scores.dtype == np.float64
    assert np.array_equal(idx, np.argsort(-(q @ db.T), axis=1, kind="stable")[:, :3])
    ints = (db * 10).astype(np.int32)
    idx, _ = brigade.knn(ints, ints[:4], k=1, metric="l2")
    assert idx[:, 0].tolist() == [0, 1, 2, 3]


def test_the_memory_wall_case_plans_within_a_small_budget() -> None:
    budget = 256 << 20
    plan = brigade.knn_plan((100_000, 1000), (100_000, 1000), k=1, mem_budget=budget)
    assert 0 < plan.bytes <= budget and plan.budget == budget
    assert plan.tile_q >= 1 and plan.tile_db >= 1
    with pytest.raises(MemoryError, match=r"smallest plan needs [\d,]+ bytes; the budget is 1,000"):
        brigade.knn_plan((100_000, 1000), (100_000, 1000), mem_budget=1000)
    db = np.ones((1000, 100), dtype=np.float32)
    with pytest.raises(MemoryError) as err:
        brigade.knn(db, db[:10], mem_budget=1000)
    assert err.value.details["min_bytes"] > 1000  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda db: brigade.knn(db, db[:, :3]), "dimensions"),
        (lambda db: brigade.knn(db, db, k=0), r"k = 0 is out of range: it must be at least 1"),
        (lambda db: brigade.knn(db, db, k=11), "k = 11 is more than the 10 database rows"),
        (lambda db: brigade.knn(db, db, k=None), "k must be an integer"),
        (lambda db: brigade.knn(db[:0], db), "db has no rows"),
        (
            lambda db: brigade.knn(db, db, mem_budget=-1),
            "mem_budget = -1 is out of range: it must be at least 1",
        ),
        (lambda db: brigade.knn(db, db, metric="dot"), "unknown metric 'dot'"),
        (lambda db: brigade.knn(db, db, backend="quantum"), "unknown knn backend 'quantum'"),
        (lambda db: brigade.knn(db, db, precision="fp8"), "unknown precision 'fp8'"),
        (lambda db: brigade.knn(db.astype(np.float64), db.astype(np.float64), precision="bf16"),
         "float32"),
        (lambda db: brigade.knn(db, db, precision="bf16", backend="blas"), "blocked backend"),
        (lambda db: brigade.knn(db[None], db), "2-D"),
        (lambda db: brigade.knn(db.astype(complex), db), "complex"),
        (lambda db: brigade.knn(db, db, workers=0), "workers"),
    ],
)
def test_errors_are_exceptions(call, message: str) -> None:  # type: ignore[no-untyped-def]
    db = np.ones((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        call(db)


def test_nan_is_refused() -> None:
    db = np.ones((10, 4), dtype=np.float32)
    db[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        brigade.knn(db, db[:2])


def watch_gil(call) -> bool:  # type: ignore[no-untyped-def]
    """Whether another Python thread ran in the middle of @call (between 30% and 90% of its
    duration, well away from the switches that may happen just before and after it)."""
    seen: list = []
    stop = threading.Event()

    def counter() -> None:
        while not stop.is_set():
            seen.append(time.perf_counter())

    t = threading.Thread(target=counter)
    t.start()
    try:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
    finally:
        stop.set()
        t.join()
    lo, hi = t0 + 0.3 * (t1 - t0), t0 + 0.9 * (t1 - t0)
    return any(lo < s < hi for s in seen)


def test_the_gil_is_released_during_a_search() -> None:
    rng = np.random.default_rng(3)
    db = rng.random((100_000, 256), dtype=np.float32)
    q = rng.random((1_000, 256), dtype=np.float32)
    assert watch_gil(lambda: brigade.knn(db, q, k=1, workers=1)), "the GIL was held"


@pytest.mark.parametrize("offset", [100.0, 1000.0])
def test_l2_far_from_the_origin(offset: float) -> None:
    rng = np.random.default_rng(2)
    db = (offset + rng.standard_normal((2000, 64)) * 1e-2).astype(np.float32)
    q = db[[5, 17, 1999]].copy()
    idx, scores = brigade.knn(db, q, k=2, metric="l2")
    assert idx[:, 0].tolist() == [5, 17, 1999]
    assert (scores >= 0).all() and np.allclose(scores[:, 0], 0, atol=1e-6)
    ref = -reference(db, q, 2, "l2")
    assert np.allclose(scores[:, 1], np.sort(ref, axis=1)[:, 1], rtol=1e-3)


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_bf16_answers_are_the_exact_ones(metric: str) -> None:
    rng = np.random.default_rng(5)
    db = rng.random((3000, 100), dtype=np.float32)
    q = rng.random((70, 100), dtype=np.float32)
    want = brigade.knn(db, q, k=5, metric=metric)
    got = brigade.knn(db, q, k=5, metric=metric, precision="bf16")
    assert np.array_equal(want[0], got[0])
    assert np.array_equal(want[1], got[1])  # bit for bit, not approximately
    plan = brigade.knn_plan(db, q, k=5, metric=metric, precision="bf16")
    assert plan.precision in ("bf16", "exact")
    assert brigade.knn_plan(db, q, k=5).precision == "exact"
