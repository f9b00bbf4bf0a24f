# SPDX-License-Identifier: MIT
"""The ``brigade`` command inside the package: ``python -m brigade ...`` and brigade.info()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import _native


def _binary() -> str:
    # Beside the extension module, which is where an install puts the package's built files
    # (an editable install keeps the Python files in the source tree, not those).
    path = Path(_native.__file__).parent / "bin" / "brigade"
    if not path.exists():
        raise FileNotFoundError(f"the brigade command is not installed beside the package ({path})")
    return str(path)


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the brigade command with @argv (default: this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    return subprocess.call([_binary(), *args])


def info() -> Dict[str, Any]:
    """This machine as brigade sees it (``brigade info --json``): topology, memory, BLAS, GPU."""
    done = subprocess.run(
        [_binary(), "info", "--json"], capture_output=True, text=True, check=True,
        env={**os.environ},
    )
    return json.loads(done.stdout)
