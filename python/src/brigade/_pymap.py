# SPDX-License-Identifier: MIT
"""brigade.map of a Python callable: run in forked procs workers, results sent back as bytes.

The function is not pickled: each worker is a fork of this process and finds it in its own
memory. Its results come back into ``out`` (converted to the array's dtype, one row per item)
or pickled, one slot of ``result_size`` bytes per item. A crash, ``os._exit`` or hang (with
``timeout``) of one item fails that item alone, with its cause; an exception fails it with
code 1 and, for pickled results, comes back as an ItemError. docs/PYTHON.md says why the fork
is safe and what the rules are.
"""

from __future__ import annotations

import pickle
import sys
import threading
import traceback
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import _native
from ._errors import translate
from ._report import STATUS_DTYPE, ItemState, MapReport, ms, report

_RAISED, _TOO_LARGE = 1, 2


class ItemError(Exception):
    """An item's exception, as the worker saw it: ``traceback`` is its formatted traceback."""

    def __init__(self, message: str, traceback_text: str = ""):
        super().__init__(message)
        self.traceback = traceback_text


def _check(backend: str) -> None:
    if not backend.startswith("procs"):
        raise ValueError(
            f"a Python function runs on the procs backends ('procs', 'procs-copy', "
            f"'procs-persistent'), not {backend!r}: on threads every item would wait for the "
            "GIL; compile it (numba @cfunc, cffi) to run it on threads"
        )
    others = threading.active_count() - 1
    if others:
        raise RuntimeError(
            f"brigade.map forks its workers to run a Python function, which is safe only "
            f"while this process runs one Python thread; {others} other thread(s) are running "
            "(join them first, or map a native function)"
        )


def map_python(
    fn: Callable[[Any], Any],
    n: Optional[int],
    out: Optional[np.ndarray],
    items: Optional[Sequence[Any]],
    backend: str,
    workers: Optional[int],
    timeout: Optional[float],
    retries: int,
    progress: bool,
    result_size: int,
) -> MapReport:
    """brigade.map's path for a Python callable (see brigade.map)."""
    _check(backend)
    if items is not None and n is None:
        n = len(items)
    if n is None or n < 0:
        raise ValueError("give n (the number of items) or items")
    if items is not None and len(items) < n:
        raise ValueError(f"items has {len(items)} entries, fewer than n = {n}")

    def arg(i: int) -> Any:
        return items[i] if items is not None else i

    if out is not None:
        if out.ndim == 0 or out.shape[0] != n or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous array of n = {n} rows")
        row_shape, dtype = out.shape[1:], out.dtype
        buf, size, framed = out, out.itemsize * int(np.prod(row_shape, dtype=np.int64)), False

        def runner(i: int) -> Any:
            try:
                return np.asarray(fn(arg(i)), dtype=dtype).reshape(row_shape).tobytes()
            except BaseException:
                sys.stderr.write(f"brigade.map: item {i} raised:\n{traceback.format_exc()}")
                return _RAISED

    else:
        if result_size < 64:
            raise ValueError(f"result_size must be at least 64 bytes, not {result_size}")
        buf, size, framed = np.zeros((n, result_size), np.uint8), result_size, True

        def runner(i: int) -> Any:
            try:
                data = pickle.dumps((0, fn(arg(i)), None), pickle.HIGHEST_PROTOCOL)
            except BaseException as e:
                data = pickle.dumps((_RAISED, f"{type(e).__name__}: {e}", traceback.format_exc()))
            if len(data) > size - 4:
                data = pickle.dumps((_TOO_LARGE, len(data), None))
            return data

    status = np.empty(n, dtype=STATUS_DTYPE)
    try:
        r = _native.map_py(runner, n, buf, size, framed, status, backend, workers or 0,
                           ms(timeout), retries, progress)
    except _native.Error as e:
        raise translate(e) from None
    results = _unpickle(buf, status, r) if framed else None
    return report(r, backend, status, results)


def _unpickle(buf: np.ndarray, status: np.ndarray, r: dict) -> list:
    """The results of the items that finished; those that raised (or whose result did not fit
    its slot) become failed items with an ItemError, and the counts follow."""
    results: list = [None] * len(status)
    for i in np.flatnonzero(status["state"] == ItemState.OK).tolist():
        length = int.from_bytes(buf[i, :4].tobytes(), "little")
        tag, value, text = pickle.loads(buf[i, 4 : 4 + length].tobytes())
        if tag == 0:
            results[i] = value
            continue
        if tag == _RAISED:
            results[i] = ItemError(value, text)
        else:
            results[i] = ItemError(
                f"the result took {value} bytes, more than result_size - 4 = "
                f"{buf.shape[1] - 4}; give a larger result_size or use out="
            )
        status[i] = (ItemState.FAILED, tag, status[i]["attempts"])
        r["n_ok"] -= 1
        r["n_failed"] += 1
        if r["first_failed"] < 0 or i < r["first_failed"]:
            r["first_failed"] = i
    return results
