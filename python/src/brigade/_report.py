# SPDX-License-Identifier: MIT
"""What a map returns: each item's state and the counts (shared by both kinds of map)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

import numpy as np

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
