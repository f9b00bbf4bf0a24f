# SPDX-License-Identifier: MIT
"""brigade.map: a parallel map of a native function over NumPy arrays."""

from __future__ import annotations

import ctypes
import numbers
from typing import Any, Optional

import numpy as np

from . import _native
from ._errors import translate
from ._pymap import map_python
from ._args import check_common
from ._report import STATUS_DTYPE, MapReport, report

def _is_python_callback(fn: Any) -> bool:
    """A ctypes or cffi function pointer made from a Python callable (it calls back into
    Python)."""
    if type(fn).__module__ == "_cffi_backend":  # ffi.callback's repr names what it calls
        return " calling <" in repr(fn)
    objects = getattr(fn, "_objects", None) or {}
    return any(type(v).__name__ == "CThunkObject" for v in objects.values())


def _address(fn: Any) -> Optional[int]:
    """The address of a native function given as a ctypes pointer, a cffi function, a numba
    cfunc or an int; None for anything else."""
    if isinstance(fn, bool):
        return None
    if isinstance(fn, numbers.Integral):
        return int(fn)
    if isinstance(fn, ctypes._CFuncPtr):  # type: ignore[attr-defined]
        return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)
    address = getattr(fn, "address", None)  # numba's @cfunc
    if isinstance(address, int):
        return address
    if type(fn).__module__ == "_cffi_backend":  # a function of an ffi.dlopen'ed library
        import cffi

        return int(cffi.FFI().cast("uintptr_t", fn))
    return None


def _row_bytes(a: np.ndarray, n: int, name: str) -> int:
    if a.ndim == 0 or a.shape[0] != n:
        raise ValueError(f"{name} must have n = {n} rows, not shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray makes it so)")
    return a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))


def map(  # noqa: A001 - the library's word for it
    fn: Any,
    n: Optional[int] = None,
    out: Optional[np.ndarray] = None,
    *,
    items: Optional[Any] = None,
    backend: str = "threads",
    workers: Optional[int] = None,
    timeout: Optional[float] = None,
    retries: int = 0,
    progress: bool = False,
    ctx: Optional[Any] = None,
    result_size: int = 4096,
) -> MapReport:
    """Run the native ``int fn(void *out, const void *in, size_t i, void *ctx)`` on items
    0..n-1 in parallel.

    Item i's input is ``items[i]`` (the bytes of its row) when ``items`` is given, else
    nothing (``in`` is NULL and i is the item); its result goes to ``out[i]`` (``out``'s
    row, written in place; a function must write no more than one row's bytes). ``ctx`` is
    any buffer (bytes, an array) handed to every call. ``backend`` is "threads", "procs" (each
    item in forked worker processes: a crash, exit or ``timeout`` (seconds) fails only that
    item), "procs-copy", "procs-persistent", "openmp" or "seq"; ``workers`` how many run at
    once (None: one per physical core); ``progress`` draws a bar with the time left on a
    terminal's stderr. Items that fail run again up to ``retries`` times. A ctypes callback
    that raises returns 0 for ctypes, so its item counts as ok.
    The GIL is released while the map runs; a function that calls back into Python (a ctypes
    callback of a Python function) takes it for each call, and is refused on the procs
    backends, whose forked workers could wait forever for a GIL held at the fork.

    ``fn`` may also be a plain Python callable, run on the procs backends only: each item
    calls ``fn(items[i])`` (or ``fn(i)``) in a forked worker (nothing is pickled to send it),
    and its result comes back into ``out[i]`` (converted to out's dtype) or, without ``out``,
    pickled in a slot of ``result_size`` bytes into ``report.results``. A crash, ``os._exit``
    or hang past ``timeout`` fails that item alone; an exception fails it with code 1 (an
    ItemError in ``results``). The process must run no other Python thread meanwhile
    (RuntimeError otherwise): docs/PYTHON.md says why.

    Returns a MapReport; failed items are in it, not raised.
    """
    n, timeout_ms, retries, workers = check_common(n, items, out, backend, timeout, retries,
                                                   workers)
    address = _address(fn)
    if address is None and callable(fn):
        return map_python(fn, n, out, items, backend, workers, timeout_ms, retries, progress,
                          result_size)
    if address is None:
        raise TypeError(
            "fn must be a native function int fn(void *out, const void *in, size_t i, void *ctx)"
            " (a ctypes function pointer, a cffi function, a numba @cfunc, an address) or a "
            f"Python callable; got {fn!r}"
        )
    if items is not None and not isinstance(items, np.ndarray):
        items = np.asarray(items)
    if backend.startswith("procs") and _is_python_callback(fn):
        raise ValueError(
            f"a ctypes or cffi callback of a Python function cannot run on the {backend!r} "
            "backend "
            "(its forked workers would need the GIL, which another thread may hold at the "
            "fork); compile it (numba @cfunc, cffi, a C library) or use backend='threads'"
        )
    in_size = _row_bytes(items, n, "items") if items is not None else 0
    out_size = _row_bytes(out, n, "out") if out is not None else 0
    status = np.empty(n, dtype=STATUS_DTYPE)  # bg_map clears it first
    try:
        r = _native.map(
            address, n, items, in_size, out, out_size, status, backend, workers,
            timeout_ms, retries, progress, ctx,
        )
    except _native.Error as e:
        raise translate(e) from None
    return report(r, backend, status)


