"""Momentum on a fast pass's flat weights: one velocity array laid out as ``flat_w``, whose
views are the optimizer's per-weight velocities (so saving and loading them works as usual)."""
from __future__ import annotations

import numpy as np


def flat_velocity(optimizer, fast) -> np.ndarray:
    """One flat velocity array for ``fast``; ``optimizer.velocity`` holds views of it (made
    again when the velocities were replaced, e.g. by load_state)."""
    kept = getattr(optimizer, "_flat", None)
    if kept is not None and kept[0] is fast and all(
            optimizer.velocity.get(key) is view for key, view in kept[2]):
        return kept[1]
    base = np.zeros_like(fast.flat_w)
    views = []
    for layer, k, w, _ in fast.views:
        key = f"{layer.name}.{k}"
        at = (w.__array_interface__["data"][0]
              - fast.flat_w.__array_interface__["data"][0]) // w.itemsize
        view = np.lib.stride_tricks.as_strided(base[at:], w.shape, w.strides)
        if key in optimizer.velocity:
            view[...] = optimizer.velocity[key]
        optimizer.velocity[key] = view
        views.append((key, view))
    optimizer._flat = (fast, base, views)
    return base
