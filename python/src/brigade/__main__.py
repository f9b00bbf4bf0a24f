# SPDX-License-Identifier: MIT
"""python -m brigade ARGS: the brigade command (bench, knn, map, info)."""

import sys

from ._cli import main

sys.exit(main())
