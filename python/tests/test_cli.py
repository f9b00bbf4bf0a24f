# SPDX-License-Identifier: MIT
"""python -m brigade and brigade.info(): the command inside the package."""

from __future__ import annotations

import subprocess
import sys

import brigade


def test_python_m_brigade_runs_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "brigade", "--version"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and brigade.__version__ in done.stdout
    done = subprocess.run([sys.executable, "-m", "brigade", "bench", "--frob"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--frob" in done.stderr


def test_info_describes_the_machine() -> None:
    info = brigade.info()
    assert info["version"] == brigade.__version__
    assert info["cpu"] and "memory" in info
    # The instructions the knn kernels use here; bf16 is None where it runs exact.
    kernels = info["knn_kernels"]
    assert kernels["exact"] in ("AVX-512", "AVX2", "portable")
    assert kernels["bf16"] in (None, "AMX", "AVX-512 BF16")
    if kernels["bf16"] is None:
        assert "AVX-512 BF16" in kernels["bf16_why"]
