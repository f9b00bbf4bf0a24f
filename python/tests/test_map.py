# SPDX-License-Identifier: MIT
"""brigade.map over native functions: results, statuses, isolation on procs, errors."""

from __future__ import annotations

import ctypes
import signal

import numpy as np
import pytest

import brigade
from brigade import ItemState

from test_knn import watch_gil

TASK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                        ctypes.c_void_p)


@pytest.mark.parametrize("backend", ["threads", "seq", "procs", "procs-copy", "openmp"])
def test_results_land_in_out(tasks: ctypes.CDLL, backend: str) -> None:
    out = np.zeros(10_000, dtype=np.int64)
    r = brigade.map(tasks.square, len(out), out, backend=backend, workers=2)
    assert r.ok and r.n_ok == len(out) and r.first_failed == -1
    assert np.array_equal(out, np.arange(len(out), dtype=np.int64) ** 2)
    assert (r.state == ItemState.OK).all() and (r.attempts == 1).all()


def test_failures_are_reported_per_item(tasks: ctypes.CDLL) -> None:
    out = np.zeros(1000, dtype=np.int64)
    r = brigade.map(tasks.fail_on_seven, 1000, out)
    assert not r.ok and r.n_failed == 100 and r.n_ok == 900 and r.first_failed == 7
    assert np.array_equal(r.failed(), np.arange(7, 1000, 10))
    assert (r.state[r.failed()] == ItemState.FAILED).all() and (r.code[r.failed()] == 7).all()
    r = brigade.map(tasks.fail_on_seven, 1000, out, retries=2)
    assert (r.attempts[r.failed()] == 3).all()


def test_items_are_rows_and_ctx_is_passed(tasks: ctypes.CDLL) -> None:
    items = np.arange(400, dtype=np.float64).reshape(100, 4)
    out = np.zeros(100)
    assert brigade.map(tasks.row_sum, out=out, items=items).ok
    assert np.array_equal(out, items.sum(axis=1))
    for backend in ("threads", "procs-persistent"):
        got = np.zeros(50, dtype=np.int64)
        r = brigade.map(tasks.add_ctx, 50, got, backend=backend, ctx=np.array([1000], np.int64))
        assert r.ok and np.array_equal(got, 1000 + np.arange(50)), backend


def test_a_crash_an_exit_and_a_hang_fail_only_their_items(tasks: ctypes.CDLL) -> None:
    out = np.full(20, -1, dtype=np.int64)
    r = brigade.map(tasks.misbehave, 20, out, backend="procs", workers=2, timeout=1.0)
    assert r.state[3] == ItemState.CRASHED and r.code[3] == signal.SIGSEGV
    assert r.state[5] == ItemState.EXITED and r.code[5] == 9
    assert r.state[8] == ItemState.TIMEOUT
    good = [i for i in range(20) if i not in (3, 5, 8)]
    assert (r.state[good] == ItemState.OK).all() and np.array_equal(out[good], good)
    assert (r.n_ok, r.n_failed, r.n_crashed, r.n_exited, r.n_timeout) == (17, 3, 2, 1, 1)


def test_python_callbacks_run_on_threads_and_are_refused_on_procs() -> None:
    def py_square(out: int, _in: int, i: int, _ctx: int) -> int:
        ctypes.c_int64.from_address(out).value = i * i
        return 0

    fn = TASK(py_square)
    out = np.zeros(100, dtype=np.int64)
    assert brigade.map(fn, 100, out).ok
    assert np.array_equal(out, np.arange(100) ** 2)
    with pytest.raises(ValueError, match="needs the GIL|would need the GIL"):
        brigade.map(fn, 100, out, backend="procs")


def test_a_function_address_from_cffi(tasks: ctypes.CDLL) -> None:
    cffi = pytest.importorskip("cffi", reason="cffi is not installed")
    ffi = cffi.FFI()
    ffi.cdef("int square(void *out, const void *in, size_t i, void *ctx);")
    lib = ffi.dlopen(tasks._name)
    out = np.zeros(100, dtype=np.int64)
    assert brigade.map(lib.square, 100, out, backend="procs").ok
    assert np.array_equal(out, np.arange(100) ** 2)


def test_a_numba_cfunc() -> None:
    numba = pytest.importorskip("numba", reason="numba is not installed")
    from numba import types

    sig = types.int32(types.voidptr, types.voidptr, types.uintp, types.voidptr)

    @numba.cfunc(sig, nopython=True)
    def cube(out, _in, i, _ctx):  # type: ignore[no-untyped-def]
        arr = numba.carray(out, 1, dtype=np.int64)
        arr[0] = i * i * i
        return 0

    out = np.zeros(1000, dtype=np.int64)
    for backend in ("threads", "procs"):
        out[:] = 0
        assert brigade.map(cube, 1000, out, backend=backend).ok
        assert np.array_equal(out, np.arange(1000, dtype=np.int64) ** 3), backend


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(n=10, out=np.zeros(9, np.int64)), ValueError, "n = 10 rows"),
        (dict(n=10, out=np.zeros((10, 2), np.int64)[:, 0]), ValueError, "C-contiguous"),
        (dict(n=10, backend="gpu"), ValueError, "unknown backend 'gpu'"),
        (dict(n=10, timeout=1.0), ValueError, "timeout needs a procs backend"),
        (dict(n=10, timeout=-1, backend="procs"), ValueError, "timeout must be seconds"),
        (dict(n=10, timeout=1e10, backend="procs"), ValueError, "timeout must be seconds"),
        (dict(n=None), ValueError, "give n"),
        (dict(n=-1), ValueError, "n = -1 is out of range: it must be at least 0"),
        (dict(n=10, workers=0), ValueError, "workers"),
        (dict(n=10, retries=2**32), ValueError, "retries"),
        (dict(n=3, out=np.empty(3, object)), ValueError, "holds Python objects"),
    ],
)
def test_errors_are_exceptions(tasks: ctypes.CDLL, kwargs: dict, error: type,
                               message: str) -> None:
    with pytest.raises(error, match=message):
        brigade.map(tasks.nothing, **kwargs)


def test_a_non_function_is_refused() -> None:
    for fn in ("square", True):
        with pytest.raises(TypeError, match="native function"):
            brigade.map(fn, 10)


def test_a_cffi_callback_of_a_python_function_is_refused_on_procs() -> None:
    cffi = pytest.importorskip("cffi", reason="cffi is not installed")
    ffi = cffi.FFI()
    cb = ffi.callback("int(void *, const void *, size_t, void *)", lambda o, i, n, c: 0)
    with pytest.raises(ValueError, match="callback of a Python function"):
        brigade.map(cb, 10, backend="procs")


def test_the_gil_is_released_during_a_map(tasks: ctypes.CDLL) -> None:
    out = np.zeros(4000, dtype=np.uint64)
    us = np.array([200], dtype=np.int64)
    assert watch_gil(lambda: brigade.map(tasks.spin, 4000, out, ctx=us, workers=1))
