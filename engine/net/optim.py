"""SGD with optional momentum, Nesterov momentum and weight decay: the only place weights
change (the learning-rate schedules, how lr moves over a run, are in engine/schedules.py).

    g = grad + weight_decay * w                       (weight decay: pulls weights to 0)
    plain:     w -= lr * g
    momentum:  v = momentum * v - lr * g;  w += v
    Nesterov:  v = momentum * v - lr * g;  w += momentum * v - lr * g
               (the step looks ahead along the new velocity before adding the gradient)
"""
from __future__ import annotations

import numpy as np

from convscope.engine.fast.flat import flat_velocity


class SGD:
    """The update above on every weight; ``velocity`` keeps v per weight key."""

    def __init__(self, lr: float = 0.005, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.velocity: dict[str, np.ndarray] = {}
        self._flat = None  # (fast pass, flat velocity, [(key, view)]): fast/flat.py
        self._work: np.ndarray | None = None  # lr * grad of a flat update

    def step(self, model) -> None:
        """Update every weight of ``model`` from the gradients of its last pass."""
        flat = model.flat_pass()
        if flat is None:
            self.update(model.weights())
            return
        w, g = flat.flat_w, flat.flat_g  # the same update on one flat array
        if self.weight_decay:
            g = g + w.dtype.type(self.weight_decay) * w
        if self._work is None or self._work.shape != w.shape or self._work.dtype != w.dtype:
            self._work = np.empty_like(w)
        step = np.multiply(g, w.dtype.type(self.lr), out=self._work)
        if self.momentum:
            v = flat_velocity(self, flat)
            v *= w.dtype.type(self.momentum)
            v -= step
            if self.nesterov:
                w += w.dtype.type(self.momentum) * v - step
            else:
                w += v
        else:
            w -= step

    def update(self, weights: list) -> None:
        """The step on (key, weight, gradient) triples, e.g. ("dense1.W", W, dW)."""
        lr, momentum, decay = self.lr, self.momentum, self.weight_decay
        for key, w, g in weights:
            if decay:
                g = g + w.dtype.type(decay) * w  # a new array: the layer's gradient stays
            if momentum:
                v = self.velocity.get(key)
                if v is None:
                    v = self.velocity[key] = np.zeros_like(w)
                v *= momentum
                v -= lr * g
                if self.nesterov:
                    w += momentum * v - lr * g
                else:
                    w += v
            else:
                w -= w.dtype.type(lr) * g

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.velocity.items()}

    def load_state(self, velocity: dict[str, np.ndarray]) -> None:
        self.velocity = {k: np.array(v) for k, v in velocity.items()}
