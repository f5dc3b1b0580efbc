"""SGD with optional momentum. The only place weights change."""
from __future__ import annotations

import numpy as np


class SGD:
    """w -= lr * grad, or with momentum: v = momentum * v - lr * grad; w += v."""

    def __init__(self, lr: float = 0.005, momentum: float = 0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.velocity: dict[str, np.ndarray] = {}

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
        """The step on a fused pass's flat weights (engine/fused.py): one update of the
        whole array without momentum, else weight by weight as ``update``."""
        if self.momentum:
            self.update([(f"{layer.name}.{k}", w, g) for layer, k, w, g in fused.views])
        else:
            w, step = fused.flat_w, fused.flat_step
            np.multiply(fused.flat_g, w.dtype.type(self.lr), out=step)
            w -= step

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.velocity.items()}

    def load_state(self, velocity: dict[str, np.ndarray]) -> None:
        self.velocity = {k: np.array(v) for k, v in velocity.items()}
