# SPDX-License-Identifier: MIT
"""libbrigade's errors as Python exceptions."""

from __future__ import annotations

from typing import Any, Dict, Optional

from . import _native

# The BG_E* codes of include/brigade/error.h that have a natural Python exception.
_EINVAL = -1
_ENOMEM = -2
_ERANGE = -9
_ENOENT = -10
_EBACKEND = -13


class BrigadeError(RuntimeError):
    """An error from libbrigade that no built-in exception names better.

    ``code`` is the library's BG_E* code (negative), ``details`` what the library said about
    it (for a refused search: the plan's numbers), or None.
    """

    def __init__(self, message: str, code: int, details: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.code = code
        self.details = details


def translate(err: _native.Error) -> Exception:
    """The Python exception for an error raised by brigade._native."""
    code, message, details = err.args
    if code == _ENOMEM:
        if details:
            message = (
                f"{message} (the smallest plan needs {details['min_bytes']:,} bytes; the "
                f"budget is {details['budget']:,})"
            )
        exc: Exception = MemoryError(message)
    elif code in (_EINVAL, _ERANGE, _ENOENT, _EBACKEND):
        exc = ValueError(message)
    else:
        return BrigadeError(message, code, details)
    exc.code = code  # type: ignore[attr-defined]
    exc.details = details  # type: ignore[attr-defined]
    return exc
