# SPDX-License-Identifier: MIT
"""Shared fixtures: the test tasks compiled into a shared library with the system's cc."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the test tasks")
    lib = tmp_path_factory.mktemp("tasks") / "libtasks.so"
    src = Path(__file__).parent / "native" / "tasks.c"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib))
