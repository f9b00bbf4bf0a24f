# SPDX-License-Identifier: MIT
"""Checks of the arguments handed to libbrigade, whose C types would wrap them silently."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple

import numpy as np


def count(value: Any, name: str, low: int, high: int) -> int:
    """@value as an int in [low, high], or a ValueError naming @name."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if int(value) < low:
        raise ValueError(f"{name} = {value} is out of range: it must be at least {low}")
    if int(value) > high:
        raise ValueError(f"{name} = {value} is out of range: it must be at most {high}")
    return int(value)


#: The longest timeout, in seconds: libbrigade counts it in 32-bit milliseconds.
MAX_TIMEOUT_S = 2_000_000


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
