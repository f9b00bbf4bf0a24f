# SPDX-License-Identifier: MIT
"""brigade.map: a parallel map of a native function over NumPy arrays."""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _native
from ._errors import translate

#: One item's outcome, as libbrigade writes it (bg_item_status_t).
STATUS_DTYPE = np.dtype([("state", "<i4"), ("code", "<i4"), ("attempts", "<u4")])


class ItemState(enum.IntEnum):
    """What became of an item (bg_item_state_t)."""

    PENDING = 0  #: not run: the map halted or was interrupted first
    OK = 1  #: the function returned 0
    FAILED = 2  #: it returned non-zero (code: that value)
    CRASHED = 3  #: its worker process died of a signal (code: the signal number)
    EXITED = 4  #: its worker process exited (code: the exit status)
    TIMEOUT = 5  #: it ran past the timeout and its worker was killed (code: the limit in ms)


@dataclass(frozen=True)
class MapReport:
    """What a map did: the counts, and per item ``state`` (ItemState values), ``code`` and
    ``attempts`` as NumPy arrays of length n."""

    n_ok: int
    n_failed: int
    n_skipped: int
    n_crashed: int
    n_exited: int
    n_timeout: int
    n_retries: int
    first_failed: int  #: the lowest failed item, or -1
    wall_s: float
    backend: str
    state: np.ndarray
    code: np.ndarray
    attempts: np.ndarray

    @property
    def ok(self) -> bool:
        """Every item succeeded."""
        return self.n_failed == 0 and self.n_skipped == 0

    def failed(self) -> np.ndarray:
        """The indices of the items that failed, however (crash and timeout included)."""
        return np.flatnonzero(self.state > ItemState.OK)


def _is_python_callback(fn: Any) -> bool:
    """A ctypes function pointer made from a Python callable (it calls back into Python)."""
    objects = getattr(fn, "_objects", None) or {}
    return any(type(v).__name__ == "CThunkObject" for v in objects.values())


def _address(fn: Any) -> int:
    """The address of a native function given as a ctypes pointer, a cffi function, a numba
    cfunc or an int."""
    if isinstance(fn, int):
        return fn
    if isinstance(fn, ctypes._CFuncPtr):  # type: ignore[attr-defined]
        return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)
    address = getattr(fn, "address", None)  # numba's @cfunc
    if isinstance(address, int):
        return address
    try:  # cffi: a function of a compiled or ABI-mode library
        import cffi

        ffi = cffi.FFI()
        return int(ffi.cast("uintptr_t", fn))
    except Exception:
        pass
    raise TypeError(
        "fn must be a native function int fn(void *out, const void *in, size_t i, void *ctx): "
        f"a ctypes function pointer, a cffi function, a numba @cfunc or an address; got {fn!r}"
    )


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
    items: Optional[np.ndarray] = None,
    backend: str = "threads",
    workers: Optional[int] = None,
    timeout: Optional[float] = None,
    retries: int = 0,
    progress: bool = False,
    ctx: Optional[Any] = None,
) -> MapReport:
    """Run the native ``int fn(void *out, const void *in, size_t i, void *ctx)`` on items
    0..n-1 in parallel.

    Item i's input is ``items[i]`` (its row's bytes) when ``items`` is given, else nothing
    (``in`` is NULL and i is the item); its result goes to ``out[i]`` (``out_size`` is the
    bytes of one row), which the map writes in place. ``ctx`` is any buffer (bytes, an array)
    handed to every call. ``backend`` is "threads", "procs" (each item in forked worker
    processes: a crash, exit or ``timeout`` (seconds) fails only that item), "procs-copy",
    "procs-persistent", "openmp" or "seq". Items that fail run again up to ``retries`` times.
    The GIL is released while the map runs; a function that calls back into Python (a ctypes
    callback of a Python function) takes it for each call, and is refused on the procs
    backends, whose forked workers could wait forever for a GIL held at the fork.

    Returns a MapReport; failed items are in it, not raised.
    """
    if items is not None:
        items = np.asarray(items)
        if n is None:
            n = int(items.shape[0]) if items.ndim else 0
    if n is None or n < 0:
        raise ValueError("give n (the number of items) or items")
    in_size = _row_bytes(items, n, "items") if items is not None else 0
    out_size = 0
    if out is not None:
        if not isinstance(out, np.ndarray) or not out.flags.writeable:
            raise ValueError("out must be a writable NumPy array")
        out_size = _row_bytes(out, n, "out")
    if backend.startswith("procs") and _is_python_callback(fn):
        raise ValueError(
            f"a ctypes callback of a Python function cannot run on the {backend!r} backend "
            "(its forked workers would need the GIL, which another thread may hold at the "
            "fork); compile it (numba @cfunc, cffi, a C library) or use backend='threads'"
        )
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, not {timeout}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    status = np.zeros(n, dtype=STATUS_DTYPE)
    timeout_ms = 0 if timeout is None else max(1, int(round(timeout * 1000)))
    try:
        r = _native.map(
            _address(fn), n, items, in_size, out, out_size, status, backend, workers or 0,
            timeout_ms, retries, progress, ctx,
        )
    except _native.Error as e:
        raise translate(e) from None
    if r["interrupted"]:
        raise KeyboardInterrupt
    return MapReport(
        n_ok=r["n_ok"],
        n_failed=r["n_failed"],
        n_skipped=r["n_skipped"],
        n_crashed=r["n_crashed"],
        n_exited=r["n_exited"],
        n_timeout=r["n_timeout"],
        n_retries=r["n_retries"],
        first_failed=r["first_failed"],
        wall_s=r["wall_s"],
        backend=backend,
        state=status["state"].copy(),
        code=status["code"].copy(),
        attempts=status["attempts"].copy(),
    )
