"""Benchmarks: engine speed (bench.engine), the live app (bench.gui), drawing latency
(bench.draw), memory (bench.memory); ``python -m convscope.bench`` runs them all and rewrites
bench/README.md. Speed is measured here, never asserted in tests."""
from __future__ import annotations

import os
from pathlib import Path

BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ROOT = Path(__file__).resolve().parents[1]


def measuring_env(**extra: str) -> dict:
    """This process's environment for a measuring child: without the OpenBLAS overrides
    (BLAS_VARS), plus ``extra``. The child imports ``convscope`` the way this process does
    (installed, or the checkout's editable install), never the checkout's folders by name."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    return {**env, **extra}


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank (0.0 when empty)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * q // 100))  # ceil, nearest-rank definition
    return ordered[int(min(rank, len(ordered))) - 1]
