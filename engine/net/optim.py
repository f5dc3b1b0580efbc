"""SGD with optional momentum. The only place weights change."""
from __future__ import annotations

import numpy as np


class SGD:
    """w -= lr * grad, or with momentum: v = momentum * v - lr * grad; w += v."""

    def __init__(self, lr: float = 0.005, momentum: float = 0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.velocity: dict[str, np.ndarray] = {}
        self._flat = None  # (fast pass, flat velocity, [(key, view)]) of update_flat

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.update([(key, w, grads[key]) for key, w in params.items()])

    def update(self, weights: list) -> None:
        """The step on (key, weight, gradient) triples, e.g. ("dense1.W", W, dW)."""
        lr, momentum = self.lr, self.momentum
        for key, w, g in weights:
            if momentum:
                v = self.velocity.get(key)
                if v is None:
                    v = self.velocity[key] = np.zeros_like(w)
                v *= momentum
                v -= lr * g
                w += v
            else:
                w -= w.dtype.type(lr) * g

    def update_flat(self, fused) -> None:
        """The same step on a fast pass's flat weights (engine/fast/): whole-array updates.
        With momentum the velocities are views of one flat array laid out as the weights."""
        w, g, step = fused.flat_w, fused.flat_g, fused.flat_step
        np.multiply(g, w.dtype.type(self.lr), out=step)
        if self.momentum:
            v = self._flat_velocity(fused)
            v *= w.dtype.type(self.momentum)
            v -= step
            w += v
        else:
            w -= step

    def _flat_velocity(self, fused) -> np.ndarray:
        """One flat velocity array for ``fused``; ``self.velocity`` holds views of it (kept
        in step when the velocities were replaced, e.g. by load_state)."""
        flat = self._flat
        if flat is not None and flat[0] is fused and all(
                self.velocity.get(key) is view for key, view in flat[2]):
            return flat[1]
        base = np.zeros_like(fused.flat_w)
        views = []
        for layer, k, w, _ in fused.views:
            key = f"{layer.name}.{k}"
            at = (w.__array_interface__["data"][0]
                  - fused.flat_w.__array_interface__["data"][0]) // w.itemsize
            view = np.lib.stride_tricks.as_strided(base[at:], w.shape, w.strides)
            if key in self.velocity:
                view[...] = self.velocity[key]
            self.velocity[key] = view
            views.append((key, view))
        self._flat = (fused, base, views)
        return base

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.velocity.items()}

    def load_state(self, velocity: dict[str, np.ndarray]) -> None:
        self.velocity = {k: np.array(v) for k, v in velocity.items()}
