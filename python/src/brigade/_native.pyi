# SPDX-License-Identifier: MIT
from typing import Any, Dict, Optional

version: str

class Error(RuntimeError): ...

def knn(
    db: Any, nb: int, queries: Any, nq: int, dim: int, f64: bool, k: int, metric: str,
    backend: str, budget: int, workers: int, idx: Any, scores: Any, plan_only: bool,
) -> Dict[str, Any]: ...
def map(
    fn: int, n: int, items: Any, in_size: int, out: Any, out_size: int, status: Any,
    backend: str, workers: int, timeout_ms: int, retries: int, progress: bool,
    ctx: Optional[Any],
) -> Dict[str, Any]: ...
def map_py(
    runner: Any, n: int, out: Any, size: int, framed: bool, status: Any, backend: str,
    workers: int, timeout_ms: int, retries: int, progress: bool,
) -> Dict[str, Any]: ...
def python_threads() -> int: ...
