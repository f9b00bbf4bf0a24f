# SPDX-License-Identifier: MIT
"""What a map returns: each item's state and the counts (shared by both kinds of map)."""

from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from ._args import count

#: The longest timeout, in seconds: libbrigade counts it in 32-bit milliseconds.
MAX_TIMEOUT_S = 2_000_000

#: One item's outcome, as libbrigade writes it (bg_item_status_t).
STATUS_DTYPE = np.dtype([("state", "<i4"), ("code", "<i4"), ("attempts", "<u4")])


class ItemState(enum.IntEnum):
    """What became of an item (bg_item_state_t)."""

    PENDING = 0  #: not run: the map halted first
    OK = 1  #: the function returned 0
    FAILED = 2  #: it returned non-zero (code: that value)
    CRASHED = 3  #: its worker process died of a signal (code: the signal number)
    EXITED = 4  #: its worker process exited (code: the exit status)
    TIMEOUT = 5  #: it ran past the timeout and its worker was killed (code: the limit in ms)


@dataclass(frozen=True)
class MapReport:
    """What a map did: the counts, and per item ``state`` (ItemState values), ``code`` and
    ``attempts`` as NumPy arrays of length n (views of one array of libbrigade's
    bg_item_status_t, which the map wrote in place)."""

    n_ok: int
    n_failed: int
    n_skipped: int
    n_crashed: int  #: items whose worker process died, by a signal or an exit
    n_exited: int  #: of those, the ones whose worker exited
    n_timeout: int
    n_retries: int
    first_failed: int  #: the lowest failed item, or -1
    wall_s: float
    backend: str
    state: np.ndarray
    code: np.ndarray
    attempts: np.ndarray
    #: A Python function's results when no ``out`` was given: item i's value, or an ItemError
    #: for an item that raised; None for items that did not finish. None for native functions.
    results: Optional[list] = None

    @property
    def ok(self) -> bool:
        """Every item succeeded."""
        return self.n_failed == 0 and self.n_skipped == 0

    def failed(self) -> np.ndarray:
        """The indices of the items that failed, however (crash and timeout included)."""
        return np.flatnonzero(self.state > ItemState.OK)


def check_common(n: Any, items: Any, out: Any, backend: str, timeout: Optional[float],
                 retries: Any, workers: Any) -> Tuple[int, int, int, int]:
    """The arguments both kinds of map take, checked: n, the timeout in libbrigade's
    milliseconds (0: none), retries and workers (0: the default)."""
    if n is None and items is not None:
        n = len(items)
    if n is None:
        raise ValueError("give n (the number of items) or items")
    n = count(n, "n", 0, 1 << 62)
    timeout_ms = 0
    if timeout is not None:
        if not (isinstance(timeout, numbers.Real) and 0 < timeout <= MAX_TIMEOUT_S):
            raise ValueError(f"timeout must be seconds in (0, {MAX_TIMEOUT_S}], not {timeout!r}")
        if not backend.startswith("procs"):
            raise ValueError(
                f"timeout needs a procs backend ('procs', 'procs-copy', 'procs-persistent'): "
                f"a running item can be stopped only in a worker process, not on {backend!r}"
            )
        timeout_ms = max(1, int(round(float(timeout) * 1000)))
    retries = count(retries, "retries", 0, 1 << 20)
    workers = 0 if workers is None else count(workers, "workers", 1, 4096)
    if out is not None:
        if not isinstance(out, np.ndarray) or not out.flags.writeable:
            raise ValueError("out must be a writable NumPy array")
        if out.dtype.hasobject:
            raise ValueError(
                f"out's dtype {out.dtype} holds Python objects, which cannot be written from "
                "C or another process; give a numeric dtype (or no out, for pickled results)"
            )
    return n, timeout_ms, retries, workers


def report(
    r: dict, backend: str, status: np.ndarray, results: Optional[list] = None
) -> MapReport:
    """The MapReport of brigade._native's report dict @r and the status array it filled."""
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
        state=status["state"],
        code=status["code"],
        attempts=status["attempts"],
        results=results,
    )
