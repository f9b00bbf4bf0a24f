# SPDX-License-Identifier: MIT
"""Checks of the integers handed to libbrigade, whose C types would wrap them silently."""

from __future__ import annotations

import numbers
from typing import Any


def count(value: Any, name: str, low: int, high: int) -> int:
    """@value as an int in [low, high], or a ValueError naming @name."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} = {value} is out of range [{low}, {high}]")
    return int(value)
