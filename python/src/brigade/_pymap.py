# SPDX-License-Identifier: MIT
"""brigade.map of a Python callable: run in forked procs workers, results sent back as bytes.

The function is not pickled: each worker is a fork of this process and finds it in its own
memory. Its results come back into ``out`` (converted to the array's dtype, one row per item)
or pickled, one slot of ``result_size`` bytes per item. A crash, ``os._exit`` or hang (with
``timeout``) of one item fails that item alone, with its cause; an exception fails it with
code 1 (retried like any failure) and, for pickled results, comes back as an ItemError.
docs/PYTHON.md says why the fork is safe and what the rules are.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from . import _native
from ._errors import translate
from ._report import STATUS_DTYPE, ItemState, MapReport, report

_RAISED, _TOO_LARGE = 1, 2
_in_worker = False  # set in a worker: a map of a Python function cannot nest


class ItemError(Exception):
    """An item's exception, as the worker saw it: ``traceback`` is its formatted traceback."""

    def __init__(self, message: str, traceback_text: str = ""):
        super().__init__(message)
        self.traceback = traceback_text


def _check(backend: str) -> None:
    if _in_worker:
        raise RuntimeError("a map of a Python function cannot run inside another one's item")
    if not backend.startswith("procs"):
        raise ValueError(
            f"a Python function runs on the procs backends ('procs', 'procs-copy', "
            f"'procs-persistent'), not {backend!r}: in this process every item would wait for "
            "the GIL; compile it (numba @cfunc, cffi) to run it on threads"
        )
    # Every thread with a Python thread state, whether started by threading or _thread.
    others = _native.python_threads() - 1
    if others:
        raise RuntimeError(
            "brigade.map forks its workers to run a Python function, which is safe only while "
            f"this process runs one Python thread; {others} other Python thread(s) exist (a "
            "thread waiting in join() counts: call brigade.map from the only thread, or map a "
            "native function)"
        )


def _describe(e: BaseException) -> Tuple[str, str]:
    """An exception's "Type: message" and traceback, whatever its __str__ does."""
    try:
        text = f"{type(e).__name__}: {e}"
    except BaseException:
        text = f"{type(e).__name__} (its message could not be formatted)"
    try:
        tb = traceback.format_exc()
    except BaseException:
        tb = ""
    return text, tb


def _framed_error(e: BaseException, room: int) -> bytes:
    """An exception pickled in at most @room bytes: the traceback, then the message, are cut
    (their ends kept) until it fits."""
    text, tb = _describe(e)
    data = pickle.dumps((_RAISED, text, tb))
    while len(data) > room and (tb or len(text) > 80):
        if tb:
            tb = tb[len(tb) // 2 :] if len(tb) > 80 else ""
        else:
            text = text[:60] + " ..."
        data = pickle.dumps((_RAISED, text, tb))
    return data


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def map_python(
    fn: Callable[[Any], Any],
    n: int,
    out: Optional[np.ndarray],
    items: Optional[Sequence[Any]],
    backend: str,
    workers: int,
    timeout_ms: int,
    retries: int,
    progress: bool,
    result_size: int,
) -> MapReport:
    """brigade.map's path for a Python callable (see brigade.map); arguments checked."""
    _check(backend)
    if items is not None and len(items) < n:
        raise ValueError(f"items has {len(items)} entries, fewer than n = {n}")

    def arg(i: int) -> Any:
        global _in_worker
        _in_worker = True
        return items[i] if items is not None else i

    if out is not None:
        if out.ndim == 0 or out.shape[0] != n or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous array of n = {n} rows")
        row_shape, dtype = out.shape[1:], out.dtype
        buf, size, framed = out, out.itemsize * int(np.prod(row_shape, dtype=np.int64)), False

        def runner(i: int) -> Any:
            try:
                return np.asarray(fn(arg(i)), dtype=dtype).reshape(row_shape).tobytes()
            except BaseException as e:
                text, tb = _describe(e)
                sys.stderr.write(f"brigade.map: item {i} raised {text}\n{tb}")
                return _RAISED
            finally:
                _flush()

    else:
        if not 64 <= result_size <= 1 << 30:
            raise ValueError(f"result_size must be 64 bytes to 1 GiB, not {result_size}")
        buf, size, framed = np.zeros((n, result_size), np.uint8), result_size, True

        def runner(i: int) -> Any:
            # (code, bytes): the bytes go into the item's slot and the code is its outcome,
            # so an exception is a failure that retries cover, and its text comes back.
            try:
                data = pickle.dumps((0, fn(arg(i)), None), pickle.HIGHEST_PROTOCOL)
            except BaseException as e:
                return _RAISED, _framed_error(e, size - 4)
            finally:
                _flush()
            if len(data) > size - 4:
                return _TOO_LARGE, pickle.dumps((_TOO_LARGE, len(data), None))
            return 0, data

    status = np.empty(n, dtype=STATUS_DTYPE)
    try:
        r = _native.map_py(runner, n, buf, size, framed, status, backend, workers, timeout_ms,
                           retries, progress)
    except _native.Error as e:
        raise translate(e) from None
    results = _unpickle(buf, status) if framed else None
    return report(r, backend, status, results)


def _unpickle(buf: np.ndarray, status: np.ndarray) -> list:
    """The results of the items that finished, and an ItemError for each that raised (or
    whose result did not fit its slot); None for the others."""
    results: list = [None] * len(status)
    settled = (status["state"] == ItemState.OK) | (
        (status["state"] == ItemState.FAILED) & np.isin(status["code"], (_RAISED, _TOO_LARGE))
    )
    for i in np.flatnonzero(settled).tolist():
        length = int.from_bytes(buf[i, :4].tobytes(), "little")
        if length == 0:
            results[i] = ItemError("it raised, and its exception did not come back")
            continue
        tag, value, text = pickle.loads(buf[i, 4 : 4 + length].tobytes())
        if tag == 0:
            results[i] = value
        elif tag == _RAISED:
            results[i] = ItemError(value, text)
        else:
            results[i] = ItemError(
                f"the result took {value} bytes, more than result_size - 4 = "
                f"{buf.shape[1] - 4}; give a larger result_size or use out="
            )
    return results
