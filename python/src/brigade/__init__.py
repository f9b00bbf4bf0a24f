# SPDX-License-Identifier: MIT
"""brigade from Python: the exact nearest-neighbour search that plans its memory before it
allocates (so it answers where NumPy and PyTorch are killed), and a parallel map over native
functions where a crashing or hanging item fails alone.

Both run in libbrigade, the same C library as the ``brigade`` command; the GIL is released
while they run.
"""

from ._errors import BrigadeError
from ._knn import KnnPlan, knn, knn_plan
from ._map import map
from ._pymap import ItemError
from ._report import ItemState, MapReport
from ._cli import info, main
from ._native import version as __version__

__all__ = [
    "BrigadeError",
    "ItemError",
    "ItemState",
    "KnnPlan",
    "MapReport",
    "info",
    "knn",
    "knn_plan",
    "main",
    "map",
    "__version__",
]
